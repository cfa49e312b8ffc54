package p2p

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
)

// Stats is a snapshot of a node's counters (monotonic since New) and
// gauges.
type Stats struct {
	Published       uint64            // findings this node published
	Delivered       uint64            // remote findings accepted by gossip and new to the replica
	Duplicates      uint64            // accepted by gossip but already in the replica
	Rejected        map[string]uint64 // messages not accepted, by reason (Reason*)
	SubscriberDrops uint64            // findings a slow Subscribe channel missed

	Peers int            // connected peers
	Mesh  map[string]int // GossipSub mesh size by topic

	SyncRounds        uint64 // exchanges this node started and completed
	SyncServed        uint64 // exchanges peers started with this node and completed
	SyncFailures      uint64 // exchanges (either side) that failed
	SyncBytesSent     uint64
	SyncBytesReceived uint64
	SyncAdded         uint64 // records this node added through sync
	SyncRefused       uint64 // inbound sync streams reset because the peer (or the node) had too many open
	// Redialed counts lost peers reconnected by the redialer.
	Redialed uint64

	// PoWRefused counts connections refused (or closed) because the peer's
	// identity failed a puzzle, by "<direction>/<reason>" (PoWInbound or
	// PoWOutbound, and a PoW* reason).
	PoWRefused map[string]uint64

	// Admission counts every record from the network by path, kind and
	// reason (see package admission).
	Admission admission.Stats
}

// counters is the live, concurrently updated form of Stats.
type counters struct {
	published, delivered, duplicates, subscriberDrops atomic.Uint64
	syncRounds, syncServed, syncFailures              atomic.Uint64
	syncSent, syncReceived, syncAdded, syncRefused    atomic.Uint64
	redialed                                          atomic.Uint64

	mu         sync.Mutex
	rejected   map[string]uint64
	powRefused map[string]uint64
}

func newCounters() *counters {
	return &counters{rejected: map[string]uint64{}, powRefused: map[string]uint64{}}
}

func (c *counters) powRefuse(direction, reason string) {
	c.mu.Lock()
	c.powRefused[direction+"/"+reason]++
	c.mu.Unlock()
}

func (c *counters) reject(reason string) {
	c.mu.Lock()
	c.rejected[reason]++
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	rej := maps.Clone(c.rejected)
	powRefused := maps.Clone(c.powRefused)
	c.mu.Unlock()
	return Stats{
		Published:         c.published.Load(),
		Delivered:         c.delivered.Load(),
		Duplicates:        c.duplicates.Load(),
		Rejected:          rej,
		PoWRefused:        powRefused,
		SubscriberDrops:   c.subscriberDrops.Load(),
		SyncRounds:        c.syncRounds.Load(),
		SyncServed:        c.syncServed.Load(),
		SyncFailures:      c.syncFailures.Load(),
		SyncBytesSent:     c.syncSent.Load(),
		SyncBytesReceived: c.syncReceived.Load(),
		SyncAdded:         c.syncAdded.Load(),
		SyncRefused:       c.syncRefused.Load(),
		Redialed:          c.redialed.Load(),
	}
}

// meshTracer follows GossipSub's mesh through the raw tracer hooks (the
// router does not expose it). Pubsub calls it from its event loop, so every
// method only takes a short lock.
type meshTracer struct {
	mu    sync.Mutex
	mesh  map[string]map[peer.ID]struct{}
	stats *counters
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer(stats *counters) *meshTracer {
	return &meshTracer{mesh: map[string]map[peer.ID]struct{}{}, stats: stats}
}

func (t *meshTracer) sizes() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.mesh))
	for topic, m := range t.mesh {
		out[topic] = len(m)
	}
	return out
}

func (t *meshTracer) peers(topic string) map[peer.ID]struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.mesh[topic])
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.mesh[topic]
	if m == nil {
		m = map[peer.ID]struct{}{}
		t.mesh[topic] = m
	}
	m[p] = struct{}{}
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[topic], p)
}

// OnClosedOutboundStream is how the router learns a peer is gone; it drops
// the peer from every mesh without a Prune event.
func (t *meshTracer) OnClosedOutboundStream(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.mesh {
		delete(m, p)
	}
}

func (t *meshTracer) Join(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mesh[topic] == nil {
		t.mesh[topic] = map[peer.ID]struct{}{}
	}
}

func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, topic)
}

func (t *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (t *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (t *meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (t *meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (t *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (t *meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (t *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
