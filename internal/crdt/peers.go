package crdt

import (
	"container/list"
	"maps"
	"sync"
)

// Peer memory: what a replica remembers of its exchanges with each peer, so
// that a later exchange sends only the origins whose entries changed.
//
// Per peer it keeps up to basesPerPeer summaries (bases) by Summary.Hash:
// the summaries it sent to the peer and those it received from it. A base
// is confirmed once this replica knows the peer holds it too; only
// confirmed bases are named in requests, while any base held may resolve a
// base the peer names. The rules, for an exchange A -> B:
//
//   - A remembers its own summary S_A unconfirmed when it builds the
//     request. A response that acknowledges it (Ack) confirms it, and A
//     remembers B's summary S_B (rebuilt from the response) confirmed: B
//     remembered both while answering.
//   - B remembers S_A (when it could rebuild it) and S_B unconfirmed while
//     answering; A's push, which A sends only after taking the response in,
//     confirms them.
//   - A response saying NoBase means B holds none of A's bases (a restart,
//     an eviction): both sides forget what they remembered of each other
//     and keep only S_B, which B sent in full.
//   - A peer that speaks the protocol without bases (no Hash in its
//     requests, no Ack or NoBase in its responses) is marked legacy and
//     gets full summaries only, and is not remembered.
//
// The memory is bounded: at most maxPeers peers (least recently used
// evicted first) and about maxBytes of summaries in all. Losing a base only
// costs bytes: the exchange that names it falls back to a full summary.
type peerMemory struct {
	mu       sync.Mutex
	maxPeers int
	maxBytes int
	bytes    int
	lru      *list.List               // of *peerState, most recently used first
	byID     map[string]*list.Element // peer id -> element of lru
}

// basesPerPeer is the number of summaries remembered per peer: the two of
// the last exchange in each role, so a lost message rarely costs a base;
// pendingPerPeer is the number of unanswered requests remembered.
const (
	basesPerPeer   = 4
	pendingPerPeer = 4
)

// Defaults for WithPeerMemory.
const (
	// DefaultPeerMemory is the number of peers whose summaries a replica
	// remembers.
	DefaultPeerMemory = 256
	// DefaultPeerMemoryBytes bounds the summaries remembered, in all (an
	// estimate of their size in memory; about 100 bytes per origin).
	DefaultPeerMemoryBytes = 32 << 20
)

type peerState struct {
	id     string
	legacy bool    // the peer does not speak bases: send it full summaries
	bases  []*base // most recently used first
	// pending holds this replica's own summaries of its last requests to
	// the peer, not yet acknowledged (oldest first), so that a response
	// can be read against the summary its request described.
	pending []*base
	// confirmOnPush lists the bases remembered while answering the peer's
	// last request; its push confirms them.
	confirmOnPush []string
	bytes         int
}

// base is one remembered summary; s is never modified once remembered.
type base struct {
	hash      string
	s         Summary
	bytes     int
	confirmed bool
}

func newPeerMemory(maxPeers, maxBytes int) *peerMemory {
	return &peerMemory{maxPeers: maxPeers, maxBytes: maxBytes, lru: list.New(), byID: map[string]*list.Element{}}
}

// state returns the peer's entry, created when create is set, and marks
// it most recently used.
func (m *peerMemory) state(id string, create bool) *peerState {
	if el, ok := m.byID[id]; ok {
		m.lru.MoveToFront(el)
		return el.Value.(*peerState)
	}
	if !create {
		return nil
	}
	ps := &peerState{id: id}
	m.byID[id] = m.lru.PushFront(ps)
	m.evict()
	return ps
}

// evict drops least recently used peers until the bounds hold; the most
// recent peer is kept (its bases are bounded by remember).
func (m *peerMemory) evict() {
	for m.lru.Len() > 1 && (m.lru.Len() > m.maxPeers || m.bytes > m.maxBytes) {
		el := m.lru.Back()
		ps := el.Value.(*peerState)
		m.bytes -= ps.bytes
		delete(m.byID, ps.id)
		m.lru.Remove(el)
	}
}

// summaryBytes estimates the memory a remembered summary takes.
func summaryBytes(s Summary) int {
	n := 64
	for key, e := range s.Origins {
		n += len(key) + len(e.Runs) + len(e.Digest) + 64
		for _, ids := range e.Dups {
			n += 32
			for _, id := range ids {
				n += len(id) + 16
			}
		}
	}
	return n
}

// remember stores s (whose Hash is hash) as a base of peer id, or marks
// the base it already has as used (and confirmed, when confirmed is set;
// a base is never unconfirmed). A summary over a quarter of the memory is
// not remembered.
func (m *peerMemory) remember(id, hash string, s Summary, confirmed bool) {
	size := summaryBytes(s)
	if size > m.maxBytes/4 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.state(id, true)
	for i, b := range ps.bases {
		if b.hash == hash {
			b.confirmed = b.confirmed || confirmed
			copy(ps.bases[1:i+1], ps.bases[:i])
			ps.bases[0] = b
			return
		}
	}
	b := &base{hash: hash, s: Summary{Origins: maps.Clone(s.Origins)}, bytes: size, confirmed: confirmed}
	ps.bases = append([]*base{b}, ps.bases...)
	ps.bytes += size
	m.bytes += size
	for len(ps.bases) > basesPerPeer {
		old := ps.bases[len(ps.bases)-1]
		ps.bases = ps.bases[:len(ps.bases)-1]
		ps.bytes -= old.bytes
		m.bytes -= old.bytes
	}
	m.evict()
}

// request remembers s (whose Hash is hash), the summary of a request to
// peer id, until its response arrives.
func (m *peerMemory) request(id, hash string, s Summary) {
	size := summaryBytes(s)
	if size > m.maxBytes/4 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.state(id, true)
	for _, b := range ps.pending {
		if b.hash == hash {
			return
		}
	}
	ps.pending = append(ps.pending, &base{hash: hash, s: Summary{Origins: maps.Clone(s.Origins)}, bytes: size})
	ps.bytes += size
	m.bytes += size
	if len(ps.pending) > pendingPerPeer {
		old := ps.pending[0]
		ps.pending = ps.pending[1:]
		ps.bytes -= old.bytes
		m.bytes -= old.bytes
	}
	m.evict()
}

// lookup returns the summary with hash remembered of peer id: a base,
// confirmed or not, or the summary of a pending request.
func (m *peerMemory) lookup(id, hash string) (Summary, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.state(id, false)
	if ps == nil {
		return Summary{}, false
	}
	for _, b := range ps.bases {
		if b.hash == hash {
			return b.s, true
		}
	}
	for _, b := range ps.pending {
		if b.hash == hash {
			return b.s, true
		}
	}
	return Summary{}, false
}

// candidates returns the confirmed bases of peer id, or none when the peer
// is legacy.
func (m *peerMemory) candidates(id string) (out []*base, legacy bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.state(id, false)
	if ps == nil {
		return nil, false
	}
	if ps.legacy {
		return nil, true
	}
	for _, b := range ps.bases {
		if b.confirmed {
			out = append(out, b)
		}
	}
	return out, false
}

// forget drops every base of peer id and sets its legacy mark.
func (m *peerMemory) forget(id string, legacy bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.state(id, legacy)
	if ps == nil {
		return
	}
	kept := 0 // pending requests may still be answered
	for _, b := range ps.pending {
		kept += b.bytes
	}
	m.bytes -= ps.bytes - kept
	ps.bytes, ps.bases, ps.confirmOnPush, ps.legacy = kept, nil, nil, legacy
}

// answered drops the pending request to peer id with hash.
func (m *peerMemory) answered(id, hash string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.state(id, false)
	if ps == nil {
		return
	}
	for i, b := range ps.pending {
		if b.hash == hash {
			ps.pending = append(ps.pending[:i:i], ps.pending[i+1:]...)
			ps.bytes -= b.bytes
			m.bytes -= b.bytes
			return
		}
	}
}

// setLegacy sets peer id's legacy mark (creating no entry to clear it).
func (m *peerMemory) setLegacy(id string, legacy bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps := m.state(id, legacy); ps != nil {
		ps.legacy = legacy
	}
}

// awaitPush records the bases a push from peer id will confirm.
func (m *peerMemory) awaitPush(id string, hashes ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps := m.state(id, false); ps != nil {
		ps.confirmOnPush = hashes
	}
}

// pushed confirms the bases remembered while answering peer id's request.
func (m *peerMemory) pushed(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.state(id, false)
	if ps == nil {
		return
	}
	for _, h := range ps.confirmOnPush {
		for _, b := range ps.bases {
			if b.hash == h {
				b.confirmed = true
			}
		}
	}
	ps.confirmOnPush = nil
}
