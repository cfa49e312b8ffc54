package sim

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Packet loss, modelled as TCP experiences it.
//
// mocknet's streams are reliable, ordered byte pipes (io.Pipe plus a
// per-write arrival time of now + Latency); it has no loss option
// (LinkOptions has Latency and Bandwidth only, and its doc says they
// "dont work yet" although Latency does). Dropping bytes on such a stream
// would break the framing of every protocol on it, which a real TCP
// connection never does: a lost segment is retransmitted, and what the
// application sees is that segment, and everything behind it on the same
// connection (head-of-line blocking), arriving one retransmission timeout
// late. So a lossy stream here delays a write by RTO with the probability
// that at least one of its segments is lost, 1-(1-Loss)^segments with
// MSS-sized segments, and it does so by blocking the writer, which holds
// back every later write on that stream as TCP would. Loss is applied per
// direction (each side wraps the streams it writes to).
//
// What this leaves out: congestion control (a loss also halves the
// window; with findings of a few KiB the window is rarely the limit),
// fast retransmit (needs three later segments in flight, rare for sparse
// gossip, so the timeout is the usual case), and the yamux layer (every
// mocknet stream behaves as its own TCP connection, so a loss on one
// protocol's stream does not hold back another's, where over one real
// yamux connection it would).
type lossModel struct {
	loss    float64
	rto     time.Duration
	mu      sync.Mutex
	rng     *rand.Rand
	writes  atomic.Uint64
	delayed atomic.Uint64
}

// mss is the segment size the loss probability is applied to.
const mss = 1460

func newLossModel(loss float64, rto time.Duration, seed uint64) *lossModel {
	return &lossModel{loss: loss, rto: rto, rng: rand.New(rand.NewPCG(seed, 3))}
}

// delay is how long a write of n bytes is held back.
func (m *lossModel) delay(n int) time.Duration {
	m.writes.Add(1)
	if m.loss <= 0 {
		return 0
	}
	segs := max(1, (n+mss-1)/mss)
	m.mu.Lock()
	lost := false
	for range segs {
		if m.rng.Float64() < m.loss {
			lost = true
			break
		}
	}
	m.mu.Unlock()
	if !lost {
		return 0
	}
	m.delayed.Add(1)
	return m.rto
}

// lossyHost wraps a mocknet host so that every stream it opens or accepts
// writes through the loss model.
type lossyHost struct {
	host.Host
	m *lossModel
}

func (h lossyHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return lossyStream{s, h.m}, nil
}

func (h lossyHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(lossyStream{s, h.m}) })
}

func (h lossyHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(lossyStream{s, h.m}) })
}

type lossyStream struct {
	network.Stream
	m *lossModel
}

func (s lossyStream) Write(p []byte) (int, error) {
	if d := s.m.delay(len(p)); d > 0 {
		time.Sleep(d)
	}
	return s.Stream.Write(p)
}
