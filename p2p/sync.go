package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// SyncProtocol is the leaderboard anti-entropy stream protocol. One
// exchange is one stream carrying four length-prefixed (uvarint) frames:
//
//	initiator → responder: request  (Replica.SyncRequest)
//	responder → initiator: response (Replica.HandleSyncRequest)
//	initiator → responder: push     (Replica.HandleSyncResponse)
//	responder → initiator: ack      (uvarint: records the responder added)
//
// so both replicas hold the union of their records when SyncWith returns.
// Both calls that open an exchange name the peer (the authenticated
// remote of the stream), so a replica can remember what it exchanged with
// each peer and send only what changed since (internal/crdt does); the
// framing is the same whatever the messages carry.
const SyncProtocol = protocol.ID("/hyperspace/leaderboard/1.0.0")

// syncConcurrency bounds the exchanges SyncAll runs at once.
const syncConcurrency = 4

// SyncStats describes one exchange.
type SyncStats struct {
	Peer          peer.ID
	BytesSent     int
	BytesReceived int
	Added         int // records this node added
	PeerAdded     int // records the peer added from our push
	Duration      time.Duration
}

func writeFrame(w *bufio.Writer, b []byte) (int, error) {
	var hdr [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(hdr[:], uint64(len(b)))
	if _, err := w.Write(hdr[:k]); err != nil {
		return 0, err
	}
	if _, err := w.Write(b); err != nil {
		return 0, err
	}
	return k + len(b), w.Flush()
}

func readFrame(r *bufio.Reader, limit int) ([]byte, int, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, 0, err
	}
	if l > uint64(limit) {
		return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, l, limit)
	}
	// Allocate as the bytes arrive, never the claimed length up front: a
	// peer that announces a large frame and sends little costs us about
	// what it sent (the buffer at most doubles past the bytes received).
	want := int(l)
	buf := make([]byte, 0, min(want, frameChunk))
	for len(buf) < want {
		k := min(want-len(buf), max(frameChunk, len(buf)))
		buf = slices.Grow(buf, k)
		got, err := io.ReadFull(r, buf[len(buf):len(buf)+k])
		buf = buf[:len(buf)+got]
		if err != nil {
			return nil, 0, err
		}
	}
	var hdr [binary.MaxVarintLen64]byte
	return buf, binary.PutUvarint(hdr[:], l) + want, nil
}

// frameChunk is the first allocation for a frame's body.
const frameChunk = 64 << 10

// ErrFrameTooLarge: a sync frame announced more bytes than the limit; it
// is refused before anything is allocated for it.
var ErrFrameTooLarge = errors.New("p2p: sync frame exceeds the limit")

// Inbound sync streams served at once: per peer and in total. Excess
// streams are reset unread.
const (
	maxInboundSyncPerPeer = 1
	maxInboundSync        = 16
)

// SyncWith runs one anti-entropy exchange with p, started by this node.
func (n *Node) SyncWith(ctx context.Context, p peer.ID) (st SyncStats, err error) {
	st.Peer = p
	start := time.Now()
	defer func() {
		st.Duration = time.Since(start)
		n.stats.syncSent.Add(uint64(st.BytesSent))
		n.stats.syncReceived.Add(uint64(st.BytesReceived))
		n.stats.syncAdded.Add(uint64(max(st.Added, 0)))
		if err != nil {
			n.stats.syncFailures.Add(1)
			err = fmt.Errorf("p2p: sync with %s: %w", p, err)
		} else {
			n.stats.syncRounds.Add(1)
		}
	}()
	if n.ctx.Err() != nil {
		return st, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SyncTimeout)
	defer cancel()
	defer context.AfterFunc(n.ctx, cancel)() // Close aborts the exchange

	s, err := n.host.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		return st, err
	}
	defer s.Close()
	defer context.AfterFunc(ctx, func() { s.Reset() })()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	r, w := bufio.NewReader(s), bufio.NewWriter(s)

	req, err := n.replica.SyncRequest(p, n.cfg.Domains)
	if err != nil {
		s.Reset()
		return st, fmt.Errorf("building request: %w", err)
	}
	k, err := writeFrame(w, req)
	st.BytesSent += k
	if err != nil {
		return st, fmt.Errorf("sending request: %w", err)
	}
	resp, k, err := readFrame(r, n.cfg.MaxSyncBytes)
	st.BytesReceived += k
	if err != nil {
		return st, fmt.Errorf("reading response: %w", err)
	}
	push, added, err := n.replica.HandleSyncResponse(p, req, resp)
	st.Added = added
	if err != nil {
		s.Reset()
		return st, fmt.Errorf("merging response: %w", err)
	}
	k, err = writeFrame(w, push)
	st.BytesSent += k
	if err != nil {
		return st, fmt.Errorf("sending push: %w", err)
	}
	ack, k, err := readFrame(r, binary.MaxVarintLen64)
	st.BytesReceived += k
	if err != nil {
		return st, fmt.Errorf("reading ack: %w", err)
	}
	peerAdded, m := binary.Uvarint(ack)
	if m <= 0 {
		return st, errors.New("malformed ack")
	}
	st.PeerAdded = int(peerAdded)
	if added > 0 || peerAdded > 0 {
		n.log.Debug("synced", "peer", p, "added", added, "peerAdded", peerAdded, "sent", st.BytesSent, "received", st.BytesReceived)
	}
	return st, nil
}

// handleSync serves an exchange started by a peer.
func (n *Node) handleSync(s network.Stream) {
	if !n.track() {
		s.Reset()
		return
	}
	defer n.wg.Done()
	p := s.Conn().RemotePeer()
	n.syncMu.Lock()
	if n.serving[p] >= maxInboundSyncPerPeer || n.servingAll >= maxInboundSync {
		n.syncMu.Unlock()
		n.stats.syncRefused.Add(1)
		s.Reset()
		return
	}
	n.serving[p]++
	n.servingAll++
	n.syncMu.Unlock()
	defer func() {
		n.syncMu.Lock()
		if n.serving[p]--; n.serving[p] <= 0 {
			delete(n.serving, p)
		}
		n.servingAll--
		n.syncMu.Unlock()
	}()
	if err := n.serveSync(s); err != nil {
		n.stats.syncFailures.Add(1)
		n.log.Debug("serving sync", "peer", s.Conn().RemotePeer(), "err", err)
		s.Reset()
		return
	}
	n.stats.syncServed.Add(1)
	s.Close()
}

func (n *Node) serveSync(s network.Stream) error {
	defer context.AfterFunc(n.ctx, func() { s.Reset() })()
	_ = s.SetDeadline(time.Now().Add(n.cfg.SyncTimeout))
	r, w := bufio.NewReader(s), bufio.NewWriter(s)
	var sent, received int
	defer func() {
		n.stats.syncSent.Add(uint64(sent))
		n.stats.syncReceived.Add(uint64(received))
	}()

	req, k, err := readFrame(r, n.cfg.MaxSyncBytes)
	received += k
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	resp, err := n.replica.HandleSyncRequest(s.Conn().RemotePeer(), req)
	if err != nil {
		return fmt.Errorf("answering request: %w", err)
	}
	k, err = writeFrame(w, resp)
	sent += k
	if err != nil {
		return fmt.Errorf("sending response: %w", err)
	}
	push, k, err := readFrame(r, n.cfg.MaxSyncBytes)
	received += k
	if err != nil {
		return fmt.Errorf("reading push: %w", err)
	}
	added := 0
	if len(push) > 0 {
		if added, err = n.replica.HandleSyncPush(s.Conn().RemotePeer(), push); err != nil {
			return fmt.Errorf("merging push: %w", err)
		}
		n.stats.syncAdded.Add(uint64(added))
	}
	ack := binary.AppendUvarint(nil, uint64(added))
	k, err = writeFrame(w, ack)
	sent += k
	if err != nil {
		return fmt.Errorf("sending ack: %w", err)
	}
	return nil
}

// syncPeers returns the connected peers that speak SyncProtocol (or whose
// protocols are not known yet).
func (n *Node) syncPeers() []peer.ID {
	var out []peer.ID
	for _, p := range n.host.Network().Peers() {
		protos, err := n.host.Peerstore().GetProtocols(p)
		if err == nil && len(protos) > 0 && !slices.Contains(protos, SyncProtocol) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// SyncAll runs one exchange with every connected peer that speaks the sync
// protocol, a few at a time, and returns the failures joined.
func (n *Node) SyncAll(ctx context.Context) error {
	peers := n.syncPeers()
	sem := make(chan struct{}, syncConcurrency)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range peers {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := n.SyncWith(ctx, p); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// connected is the network notifiee: the dialling side of a new
// connection starts a sync (one exchange merges both ways, so the other
// side need not).
func (n *Node) connected(_ network.Network, c network.Conn) {
	n.powConnected(c)
	n.peerBack(c.RemotePeer())
	if n.cfg.DisableSyncOnConnect || c.Stat().Direction != network.DirOutbound {
		return
	}
	select {
	case n.kick <- c.RemotePeer():
	default: // the periodic sync will catch up
	}
}

// syncLoop debounces connection events into one exchange per new peer and
// runs SyncAll every SyncInterval.
func (n *Node) syncLoop() {
	var tick <-chan time.Time
	if n.cfg.SyncInterval > 0 {
		t := time.NewTicker(n.cfg.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	pending := map[peer.ID]bool{}
	var debounce <-chan time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case p := <-n.kick:
			pending[p] = true
			if debounce == nil {
				debounce = time.After(n.cfg.SyncDebounce)
			}
		case <-debounce:
			debounce = nil
			for p := range pending {
				delete(pending, p)
				n.goOwned("sync-on-connect", func() { n.autoSync(p) })
			}
		case <-tick:
			if n.syncingAll.CompareAndSwap(false, true) {
				n.goOwned("periodic-sync", func() {
					defer n.syncingAll.Store(false)
					for _, p := range n.syncPeers() {
						if n.ctx.Err() != nil {
							return
						}
						n.autoSync(p)
					}
				})
			}
		}
	}
}

// autoSync syncs with p unless an automatic exchange with p is running.
func (n *Node) autoSync(p peer.ID) {
	n.syncMu.Lock()
	if n.inflight[p] {
		n.syncMu.Unlock()
		return
	}
	n.inflight[p] = true
	n.syncMu.Unlock()
	defer func() {
		n.syncMu.Lock()
		delete(n.inflight, p)
		n.syncMu.Unlock()
	}()
	if n.host.Network().Connectedness(p) != network.Connected {
		return
	}
	if _, err := n.SyncWith(n.ctx, p); err != nil && n.ctx.Err() == nil {
		n.log.Debug("automatic sync failed", "peer", p, "err", err)
	}
}
