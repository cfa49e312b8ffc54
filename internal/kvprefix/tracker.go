package kvprefix

import (
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// Tracker defaults.
const (
	// DefaultMargin: a set needs repair when at most K+DefaultMargin of its
	// chunks are live.
	DefaultMargin = 8
	// DefaultMaxSets bounds the sets a Tracker follows (the oldest tracked
	// is forgotten first).
	DefaultMaxSets = 4096
	// maxPeers bounds the reputation table.
	maxPeers = 16384
)

// Reputation steps: a provider starts at 1, loses half on a failed probe
// and regains ReputationGain (up to 1) per good one.
const (
	ReputationStart = 1.0
	ReputationGain  = 0.05
)

// Tracker records, per set (manifest root), which peers hold which chunks,
// and, per provider, a reputation fed by probe results. A failed probe
// lowers the provider's reputation and removes it from that set's
// providers (and it is not chosen again for the set). It does no I/O and is
// safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	margin  int
	maxSets int
	sets    map[merkle.Hash]*trackedSet
	order   []merkle.Hash // tracking order, for eviction
	rep     map[peer.ID]float64
}

type trackedSet struct {
	m       Manifest
	holders []map[peer.ID]bool // by chunk index
	removed map[peer.ID]bool   // providers dropped after a failed probe
}

// NewTracker returns a tracker whose repair margin is margin chunks above
// K (<= 0: DefaultMargin).
func NewTracker(margin int) *Tracker {
	if margin <= 0 {
		margin = DefaultMargin
	}
	return &Tracker{margin: margin, maxSets: DefaultMaxSets, sets: map[merkle.Hash]*trackedSet{}, rep: map[peer.ID]float64{}}
}

// Track starts following m (a verified manifest) with the holders of
// placement (chunk index -> peers), merged with what is already known.
func (t *Tracker) Track(m Manifest, placement map[int][]peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.set(m)
	for i, ps := range placement {
		if i < 0 || i >= m.N {
			continue
		}
		for _, p := range ps {
			s.holders[i][p] = true
			delete(s.removed, p)
		}
	}
}

// set returns (creating) the state of m; t.mu is held.
func (t *Tracker) set(m Manifest) *trackedSet {
	if s := t.sets[m.Root]; s != nil {
		return s
	}
	for len(t.sets) >= t.maxSets && len(t.order) > 0 {
		delete(t.sets, t.order[0])
		t.order = t.order[1:]
	}
	s := &trackedSet{m: m, holders: make([]map[peer.ID]bool, m.N), removed: map[peer.ID]bool{}}
	for i := range s.holders {
		s.holders[i] = map[peer.ID]bool{}
	}
	t.sets[m.Root] = s
	t.order = append(t.order, m.Root)
	return s
}

// AddHolder records that p holds chunk index of the set root (false: the
// set is not tracked or the index is out of range).
func (t *Tracker) AddHolder(root merkle.Hash, index int, p peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sets[root]
	if s == nil || index < 0 || index >= s.m.N {
		return false
	}
	s.holders[index][p] = true
	delete(s.removed, p)
	return true
}

// RemoveHolder records that p no longer holds chunk index of root.
func (t *Tracker) RemoveHolder(root merkle.Hash, index int, p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sets[root]; s != nil && index >= 0 && index < s.m.N {
		delete(s.holders[index], p)
	}
}

// ProbeResult records the answer of provider p to a probe of chunk index
// of root. A good answer raises p's reputation and records it as a holder;
// a failed one (not found, a chunk that does not verify, no answer) halves
// its reputation and removes p from every chunk of the set.
func (t *Tracker) ProbeResult(root merkle.Hash, p peer.ID, index int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, known := t.rep[p]
	if !known {
		if len(t.rep) >= maxPeers {
			t.rep = map[peer.ID]float64{} // crude but bounded
		}
		r = ReputationStart
	}
	s := t.sets[root]
	if ok {
		t.rep[p] = min(ReputationStart, r+ReputationGain)
		if s != nil && index >= 0 && index < s.m.N {
			s.holders[index][p] = true
		}
		return
	}
	t.rep[p] = r / 2
	if s != nil {
		for _, h := range s.holders {
			delete(h, p)
		}
		s.removed[p] = true
	}
}

// Reputation is p's reputation in (0, 1] (ReputationStart if never probed).
func (t *Tracker) Reputation(p peer.ID) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.rep[p]; ok {
		return r
	}
	return ReputationStart
}

// Manifest returns the tracked manifest of root.
func (t *Tracker) Manifest(root merkle.Hash) (Manifest, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sets[root]; s != nil {
		return s.m, true
	}
	return Manifest{}, false
}

// Live is the number of chunks of root with at least one holder.
func (t *Tracker) Live(root merkle.Hash) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sets[root]
	if s == nil {
		return 0
	}
	live := 0
	for _, h := range s.holders {
		if len(h) > 0 {
			live++
		}
	}
	return live
}

// NeedsRepair reports whether root is tracked and at most K+margin of its
// chunks are live (while at least K are, repair can regenerate the rest).
func (t *Tracker) NeedsRepair(root merkle.Hash) bool {
	m, ok := t.Manifest(root)
	return ok && t.Live(root) <= m.K+t.margin
}

// Missing lists the chunk indices of root without a holder, ascending.
func (t *Tracker) Missing(root merkle.Hash) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sets[root]
	if s == nil {
		return nil
	}
	var out []int
	for i, h := range s.holders {
		if len(h) == 0 {
			out = append(out, i)
		}
	}
	return out
}

// Holders lists the holders of chunk index of root, sorted.
func (t *Tracker) Holders(root merkle.Hash, index int) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sets[root]
	if s == nil || index < 0 || index >= s.m.N {
		return nil
	}
	out := make([]peer.ID, 0, len(s.holders[index]))
	for p := range s.holders[index] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Providers lists the distinct holders of any chunk of root, sorted.
func (t *Tracker) Providers(root merkle.Hash) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sets[root]
	if s == nil {
		return nil
	}
	seen := map[peer.ID]bool{}
	for _, h := range s.holders {
		for p := range h {
			seen[p] = true
		}
	}
	out := make([]peer.ID, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Removed lists the providers of root dropped after a failed probe, sorted.
func (t *Tracker) Removed(root merkle.Hash) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sets[root]
	if s == nil {
		return nil
	}
	out := make([]peer.ID, 0, len(s.removed))
	for p := range s.removed {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// RepairPlan places the missing chunks of root on candidates that are not
// removed providers of the set, by the same rendezvous hashing as Place
// (holders of other chunks are allowed: the load stays even). It returns
// nil when nothing is missing or the set is not tracked.
func (t *Tracker) RepairPlan(root merkle.Hash, candidates []peer.ID, self peer.ID, replicas int) map[int][]peer.ID {
	m, ok := t.Manifest(root)
	missing := t.Missing(root)
	if !ok || len(missing) == 0 {
		return nil
	}
	removed := t.Removed(root)
	var pool []peer.ID
	for _, p := range candidates {
		if !slices.Contains(removed, p) {
			pool = append(pool, p)
		}
	}
	full := Place(m, pool, self, replicas)
	out := make(map[int][]peer.ID, len(missing))
	for _, i := range missing {
		if ps := full[i]; len(ps) > 0 {
			out[i] = ps
		}
	}
	return out
}

// Roots lists the tracked sets in tracking order.
func (t *Tracker) Roots() []merkle.Hash {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.order)
}

// Forget stops following root.
func (t *Tracker) Forget(root merkle.Hash) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sets, root)
	if i := slices.Index(t.order, root); i >= 0 {
		t.order = slices.Delete(t.order, i, i+1)
	}
}
