package respcache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func newClock(t time.Time) *clock        { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func plain(key string, n int) Entry {
	return Entry{RequestHash: key, Model: "m", Response: make([]byte, n)}
}
func keyN(i int) string { return reqHash(fmt.Sprint(i)) }
func mustPut(t *testing.T, s *Store, e Entry) {
	t.Helper()
	if !s.Put(e) {
		t.Fatalf("Put(%s) refused", e.RequestHash)
	}
}

func TestStoreTTL(t *testing.T) {
	c := newClock(t0)
	s := NewStore(StoreConfig{TTL: time.Hour, Now: c.now})
	mustPut(t, s, plain("a", 10))
	// A proof that expires before the store's TTL bounds the entry.
	k := testKey(t, "a")
	short := signed(t, k, "short", []byte("r"), 10*time.Minute)
	mustPut(t, s, short)
	if _, ok := s.Get("a"); !ok {
		t.Fatal("fresh entry missing")
	}
	c.advance(10 * time.Minute)
	if _, ok := s.Get(short.RequestHash); ok {
		t.Fatal("entry served past its proof's expiry")
	}
	if _, ok := s.Get("a"); !ok {
		t.Fatal("entry missing before the store TTL")
	}
	c.advance(50 * time.Minute)
	if s.Has("a") {
		t.Fatal("Has reports an expired entry")
	}
	if _, ok := s.Get("a"); ok {
		t.Fatal("entry served past the store TTL")
	}
	st := s.Stats()
	if st.Entries != 0 || st.Bytes != 0 || st.Expired != 2 || st.Hits != 2 || st.Misses != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Already expired: refused.
	if s.Put(short) {
		t.Fatal("Put took an expired entry")
	}
	// Expire sweeps unread entries.
	mustPut(t, s, plain("b", 1))
	mustPut(t, s, plain("c", 1))
	c.advance(2 * time.Hour)
	if k := s.Expire(); k != 2 || s.Len() != 0 {
		t.Fatalf("Expire dropped %d, %d left", k, s.Len())
	}
}

func TestStoreLRUByBytes(t *testing.T) {
	one := Size(plain(keyN(0), 1000))
	s := NewStore(StoreConfig{MaxBytes: 3 * one})
	for i := range 3 {
		mustPut(t, s, plain(keyN(i), 1000))
	}
	// Touch 0 so that 1 is the least recently used.
	if _, ok := s.Get(keyN(0)); !ok {
		t.Fatal("missing 0")
	}
	mustPut(t, s, plain(keyN(3), 1000))
	if s.Has(keyN(1)) {
		t.Fatal("least recently used entry kept")
	}
	for _, i := range []int{0, 2, 3} {
		if !s.Has(keyN(i)) {
			t.Fatalf("entry %d evicted", i)
		}
	}
	// A big entry evicts as many as it needs.
	mustPut(t, s, plain(keyN(4), 2500))
	st := s.Stats()
	if st.Bytes > 3*one || st.Entries != 1 || st.Evictions != 4 {
		t.Fatalf("stats %+v (limit %d)", st, 3*one)
	}
	// Too big for the store at all: refused, nothing evicted.
	if s.Put(plain(keyN(5), int(3*one))) {
		t.Fatal("oversized entry stored")
	}
	if !s.Has(keyN(4)) {
		t.Fatal("refused Put evicted an entry")
	}
	// Replacing an entry does not double count it.
	mustPut(t, s, plain(keyN(4), 10))
	if st := s.Stats(); st.Bytes != Size(plain(keyN(4), 10)) || st.Entries != 1 {
		t.Fatalf("after replace: %+v", st)
	}
	if !s.Delete(keyN(4)) || s.Delete(keyN(4)) || s.Stats().Bytes != 0 {
		t.Fatal("Delete")
	}
}

// TestStoreConcurrent is for -race: readers, writers and sweeps at once,
// with the byte bound holding throughout.
func TestStoreConcurrent(t *testing.T) {
	c := newClock(t0)
	limit := 50 * Size(plain(keyN(0), 100))
	s := NewStore(StoreConfig{MaxBytes: limit, TTL: time.Second, Now: c.now})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := keyN((i * (w + 1)) % 200)
				if i%3 == 0 {
					s.Put(plain(k, 100))
				} else {
					s.Get(k)
				}
				if i%500 == 0 {
					c.advance(100 * time.Millisecond)
					s.Expire()
				}
				if b := s.Stats().Bytes; b > limit {
					t.Errorf("bytes %d over the limit %d", b, limit)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.Hits+st.Misses == 0 || st.Entries != s.Len() {
		t.Fatalf("stats %+v", st)
	}
}

func BenchmarkStoreHit(b *testing.B) {
	s := NewStore(StoreConfig{})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = keyN(i)
		s.Put(plain(keys[i], 512))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := s.Get(keys[i&1023]); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkStoreHitParallel(b *testing.B) {
	s := NewStore(StoreConfig{})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = keyN(i)
		s.Put(plain(keys[i], 512))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := s.Get(keys[i&1023]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkStorePut(b *testing.B) {
	s := NewStore(StoreConfig{MaxBytes: 4096 * Size(plain(keyN(0), 512))})
	keys := make([]string, 8192)
	for i := range keys {
		keys[i] = keyN(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s.Put(plain(keys[i&8191], 512))
	}
}
