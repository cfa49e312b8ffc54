package respcache

import (
	"sync"
	"time"
)

// DefaultMaxBytes bounds a Store unless configured otherwise.
const DefaultMaxBytes = 256 << 20

// entryOverhead is what an entry costs beyond its strings and response:
// the map slot, the list node and the Entry header, roughly.
const entryOverhead = 160

// StoreConfig configures a Store; zero fields take the defaults.
type StoreConfig struct {
	// MaxBytes bounds the entries' size (Size) in total (default
	// DefaultMaxBytes); the least recently used go first.
	MaxBytes int64
	// TTL is the longest an entry is kept after Put (default DefaultTTL);
	// an entry whose proof expires sooner goes at its proof's expiry.
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// StoreStats are a Store's counters and gauges.
type StoreStats struct {
	Hits      uint64 `json:"hits"`
	Misses    uint64 `json:"misses"`    // including expired entries found
	Expired   uint64 `json:"expired"`   // entries dropped because they expired
	Evictions uint64 `json:"evictions"` // entries dropped for space
	Bytes     int64  `json:"bytes"`
	Entries   int    `json:"entries"`
}

// Store is an in-memory cache of entries by request hash with a TTL and a
// byte bound enforced by least-recently-used eviction. A Get is a map
// lookup and a list move under one mutex. It is safe for concurrent use.
//
// Entries are held as given: the Response slice is shared with the caller
// of Put and of Get, and neither may modify it.
type Store struct {
	cfg StoreConfig

	mu    sync.Mutex
	items map[string]*node
	head  node // sentinel: head.next is the most recently used
	bytes int64
	st    StoreStats
}

type node struct {
	prev, next *node
	e          Entry
	size       int64
	expires    int64 // unix nanoseconds
}

// NewStore returns an empty Store.
func NewStore(cfg StoreConfig) *Store {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{cfg: cfg, items: map[string]*node{}}
	s.head.prev, s.head.next = &s.head, &s.head
	return s
}

// Size is what e counts against a Store's MaxBytes.
func Size(e Entry) int64 {
	p := e.Proof
	return int64(len(e.RequestHash) + len(e.Model) + len(e.Response) + len(p.RequestHash) + len(p.ResponseHash) +
		len(p.ProofHash) + len(p.Provider) + len(p.PublicKey) + len(p.Signature) + entryOverhead)
}

func (s *Store) unlink(n *node) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (s *Store) pushFront(n *node) {
	n.prev, n.next = &s.head, s.head.next
	s.head.next.prev = n
	s.head.next = n
}

func (s *Store) drop(n *node) {
	s.unlink(n)
	delete(s.items, n.e.RequestHash)
	s.bytes -= n.size
}

// Get returns the entry of requestHash if it is held and unexpired (an
// expired one is dropped and counted as a miss), and marks it recently used.
func (s *Store) Get(requestHash string) (Entry, bool) {
	now := s.cfg.Now().UnixNano()
	s.mu.Lock()
	n, ok := s.items[requestHash]
	if !ok {
		s.st.Misses++
		s.mu.Unlock()
		return Entry{}, false
	}
	if now >= n.expires {
		s.drop(n)
		s.st.Expired++
		s.st.Misses++
		s.mu.Unlock()
		return Entry{}, false
	}
	if s.head.next != n {
		s.unlink(n)
		s.pushFront(n)
	}
	s.st.Hits++
	e := n.e
	s.mu.Unlock()
	return e, true
}

// Has reports whether requestHash is held and unexpired, without counting
// a hit or a miss or changing the LRU order.
func (s *Store) Has(requestHash string) bool {
	now := s.cfg.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.items[requestHash]
	return ok && now < n.expires
}

// Put stores e under e.RequestHash (replacing what was there), evicting
// least recently used entries until the store fits MaxBytes. It reports
// false, storing nothing, when e alone exceeds MaxBytes or has already
// expired. The Store does not verify e: callers Put what they computed or
// admitted.
func (s *Store) Put(e Entry) bool {
	now := s.cfg.Now()
	exp := now.Add(s.cfg.TTL).UnixNano()
	if e.Proof.ComputedAt > 0 {
		exp = min(exp, e.Proof.Expires().UnixNano())
	}
	size := Size(e)
	if size > s.cfg.MaxBytes || exp <= now.UnixNano() || e.RequestHash == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.items[e.RequestHash]; ok {
		s.drop(old)
	}
	for s.bytes+size > s.cfg.MaxBytes && s.head.prev != &s.head {
		s.drop(s.head.prev)
		s.st.Evictions++
	}
	n := &node{e: e, size: size, expires: exp}
	s.items[e.RequestHash] = n
	s.pushFront(n)
	s.bytes += size
	return true
}

// Delete drops requestHash's entry and reports whether one was held.
func (s *Store) Delete(requestHash string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.items[requestHash]
	if ok {
		s.drop(n)
	}
	return ok
}

// Expire drops every expired entry and returns how many it dropped (Get
// drops expired entries it meets; this bounds what unread ones hold). It
// walks the whole store: call it now and then, not per request.
func (s *Store) Expire() int {
	now := s.cfg.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := 0
	for n := s.head.next; n != &s.head; {
		next := n.next
		if now >= n.expires {
			s.drop(n)
			s.st.Expired++
			k++
		}
		n = next
	}
	return k
}

// Len is the number of entries held (expired ones not yet dropped
// included).
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Bytes = s.bytes
	st.Entries = len(s.items)
	return st
}
