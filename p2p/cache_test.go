package p2p_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/respcache"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// A test "model": the record of request q names its request hash (which
// checkRecord checks, as inference.CheckRecord does) and an answer that
// honestRecord computes deterministically.
type testRecord struct {
	Request string `json:"request"`
	Text    string `json:"text"`
}

func requestHash(q string) string {
	h := sha256.Sum256([]byte("cache test " + q))
	return hex.EncodeToString(h[:])
}

func honestRecord(h string) []byte {
	b, _ := json.Marshal(testRecord{Request: h, Text: "the answer to " + h[:8]})
	return b
}

func checkRecord(h string, rec []byte) error {
	var r testRecord
	if err := json.Unmarshal(rec, &r); err != nil {
		return err
	}
	if r.Request != h {
		return fmt.Errorf("record answers %s, not %s", r.Request, h)
	}
	return nil
}

func recompute(_ context.Context, h string, rec []byte) ([]byte, error) {
	if err := checkRecord(h, rec); err != nil {
		return nil, err
	}
	return honestRecord(h), nil
}

// cacheNode is a DHT node, optionally with a SharedCache.
type cacheNode struct {
	m     *p2ptest.Member
	cache *p2p.SharedCache
}

func startCacheNodes(t testing.TB, k int) []*cacheNode {
	t.Helper()
	ctx := context.Background()
	o := p2ptest.Options{DHT: true}
	if os.Getenv("CACHE_TEST_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var out []*cacheNode
	var boot string
	for i := range k {
		var m *p2ptest.Member
		var err error
		if i == 0 {
			m, err = p2ptest.NewMember(ctx, o)
		} else {
			m, err = p2ptest.NewMember(ctx, o, boot)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Node.Close() })
		if i == 0 {
			boot = m.Node.Addrs()[0].String()
		}
		for _, prev := range out {
			if err := m.Node.Connect(ctx, prev.m.Node.Addrs()[0].String()); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, &cacheNode{m: m})
	}
	return out
}

func (c *cacheNode) share(t testing.TB, cfg p2p.SharedCacheConfig) *p2p.SharedCache {
	t.Helper()
	if cfg.CheckContent == nil {
		cfg.CheckContent = checkRecord
	}
	sc, err := p2p.NewSharedCache(c.m.Node, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.cache = sc
	return sc
}

// waitAnnounceMesh waits until every node has a mesh peer on the
// announcements topic.
func waitAnnounceMesh(t testing.TB, nodes ...*cacheNode) {
	t.Helper()
	waitFor(t, "announcement mesh", func() bool {
		for _, n := range nodes {
			if n.m.Node.Stats().Mesh[p2p.TopicCacheAnnouncements] < 1 {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond every 20ms for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestCacheSharedAcrossPeers(t *testing.T) {
	ns := startCacheNodes(t, 3)
	for _, n := range ns {
		n.share(t, p2p.SharedCacheConfig{Recompute: recompute, SampleRate: 1})
	}
	waitAnnounceMesh(t, ns...)
	ctx := context.Background()
	h := requestHash("lift of a delta wing")
	rec := honestRecord(h)
	ns[0].cache.Put(ctx, h, "tiny-lm", rec)
	if got, src, ok := ns[0].cache.Lookup(ctx, h); !ok || src != "local" || string(got) != string(rec) {
		t.Fatalf("node 1's own entry: %q %s %v", got, src, ok)
	}
	eventually(t, 10*time.Second, "node 1 to provide its entry", func() bool { return ns[0].cache.Stats().Provided >= 1 })

	got, src, ok := ns[1].cache.Lookup(ctx, h)
	if !ok || src != "peer" || string(got) != string(rec) {
		t.Fatalf("node 2 lookup: %q %s %v (stats %+v)", got, src, ok, ns[1].cache.Stats())
	}
	if _, src, ok := ns[1].cache.Lookup(ctx, h); !ok || src != "local" {
		t.Fatalf("node 2 second lookup: %s %v", src, ok)
	}
	if st := ns[1].cache.Stats(); st.Recomputed != 1 || st.Mismatches != 0 {
		t.Fatalf("node 2 stats %+v", st)
	}
	eventually(t, 10*time.Second, "node 2 to provide the fetched entry", func() bool { return ns[1].cache.Stats().Provided >= 1 })

	// Node 1 leaves: node 3 gets the entry from node 2, the fetcher that
	// became a provider, with node 1's proof.
	if err := ns[0].m.Node.Close(); err != nil {
		t.Fatal(err)
	}
	got, src, ok = ns[2].cache.Lookup(ctx, h)
	if !ok || src != "peer" || string(got) != string(rec) {
		t.Fatalf("node 3 lookup after node 1 left: %q %s %v (stats %+v)", got, src, ok, ns[2].cache.Stats())
	}
	e, ok := ns[2].cache.Store().Get(h)
	if !ok || e.Proof.Provider != ns[0].m.Node.ID().String() {
		t.Fatalf("node 3 holds %+v, want node 1's proof", e.Proof)
	}
	// An unknown request misses within the lookup timeout.
	start := time.Now()
	if _, _, ok := ns[2].cache.Lookup(ctx, requestHash("never computed")); ok {
		t.Fatal("hit for a request nobody computed")
	}
	if d := time.Since(start); d > p2p.DefaultCacheLookupTimeout+time.Second {
		t.Errorf("a miss took %v", d)
	}
}

// poison returns entries for request hashes of a malicious server: each
// fails admission for the reason it is keyed with.
func poison(t testing.TB, honest, evil crypto.PrivKey) map[string]respcache.Entry {
	t.Helper()
	now := time.Now()
	sign := func(q string, key crypto.PrivKey, at time.Time, ttl time.Duration) respcache.Entry {
		h := requestHash(q)
		e := respcache.Entry{RequestHash: h, Model: "tiny-lm", Response: honestRecord(h), Proof: respcache.Proof{ComputedAt: at.UnixMilli()}}
		if err := respcache.Sign(&e, key, ttl); err != nil {
			t.Fatal(err)
		}
		return e
	}
	out := map[string]respcache.Entry{}

	e := sign("bad signature", honest, now, time.Hour)
	sig, _ := base64.StdEncoding.DecodeString(e.Proof.Signature)
	sig[3] ^= 0x40
	e.Proof.Signature = base64.StdEncoding.EncodeToString(sig)
	out[admission.ReasonBadSignature] = e

	e = sign("tampered response", honest, now, time.Hour)
	lie, _ := json.Marshal(testRecord{Request: e.RequestHash, Text: "a lie"})
	e.Response = lie
	out[admission.ReasonBadID] = e

	e = sign("expired", honest, now.Add(-2*time.Hour), time.Hour)
	out[admission.ReasonInvalid] = e

	// Evil's lie, signed by evil but naming the honest node as provider.
	e = sign("signer not provider", evil, now, time.Hour)
	lie, _ = json.Marshal(testRecord{Request: e.RequestHash, Text: "a lie"})
	e.Response = lie
	e.Proof.ResponseHash = respcache.HashResponse(lie)
	hid, _ := peer.IDFromPrivateKey(honest)
	e.Proof.Provider = hid.String()
	e.Proof.ProofHash = respcache.ComputeProofHash(e.Proof, e.Model)
	raw, _ := hex.DecodeString(e.Proof.ProofHash)
	sig, _ = evil.Sign(raw)
	e.Proof.Signature = base64.StdEncoding.EncodeToString(sig)
	out[admission.ReasonSignerMismatch] = e
	return out
}

func TestCachePoisonedEntriesRejected(t *testing.T) {
	ns := startCacheNodes(t, 2)
	victim, evil := ns[0], ns[1]
	victim.share(t, p2p.SharedCacheConfig{})
	entries := poison(t, p2ptest.NodeKey(), evil.m.Key)
	// The malicious node answers each poisoned request hash with its entry,
	// and one more with an honest-looking proof for another request.
	other := entries[admission.ReasonInvalid]
	wrongReq := requestHash("proof for another request")
	served := map[string]respcache.Entry{wrongReq: other}
	for _, e := range entries {
		served[e.RequestHash] = e
	}
	evil.m.Node.ServeCache(func(h string) (respcache.Entry, bool) { e, ok := served[h]; return e, ok })
	ctx := context.Background()

	for reason, e := range entries {
		_, err := victim.m.Node.FetchCache(ctx, evil.m.Node.ID(), e.RequestHash)
		if got := admission.ReasonOf(err); got != reason {
			t.Errorf("poisoned entry for %s: FetchCache error %v (reason %q)", reason, err, got)
		}
	}
	if _, err := victim.m.Node.FetchCache(ctx, evil.m.Node.ID(), wrongReq); admission.ReasonOf(err) != admission.ReasonInvalid || !errors.Is(err, respcache.ErrWrongRequest) {
		t.Errorf("proof for another request: %v", err)
	}
	if _, err := victim.m.Node.FetchCache(ctx, evil.m.Node.ID(), requestHash("not held")); !errors.Is(err, p2p.ErrCacheNotFound) {
		t.Errorf("unheld entry: %v", err)
	}

	// Through Lookup and the DHT: the malicious node provides them all.
	for h := range served {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := evil.m.Node.Provide(pctx, p2p.CacheKey(h)); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	for _, reason := range []string{admission.ReasonInvalid, admission.ReasonBadSignature} {
		if rec, _, ok := victim.cache.Lookup(ctx, entries[reason].RequestHash); ok {
			t.Fatalf("%s entry served: %q", reason, rec)
		}
	}
	st := victim.cache.Stats()
	if st.Rejected[admission.ReasonInvalid] != 1 || st.Rejected[admission.ReasonBadSignature] != 1 || st.HitsPeer != 0 || st.Misses != 2 {
		t.Fatalf("stats after two poisoned lookups: %+v", st)
	}
	// A forger is skipped from then on: no more fetches from it.
	if _, _, ok := victim.cache.Lookup(ctx, entries[admission.ReasonSignerMismatch].RequestHash); ok {
		t.Fatal("signer-mismatch entry served")
	}
	if st2 := victim.cache.Stats(); st2.Rejected[admission.ReasonSignerMismatch] != 0 || st2.Misses != 3 {
		t.Fatalf("a forger was asked again: %+v", st2)
	}
	if victim.cache.Store().Len() != 0 {
		t.Fatal("a poisoned entry was stored")
	}
	adm := victim.m.Node.Admission().Stats()
	if adm.Rejected[admission.PathCache+"/"+admission.KindCacheEntry+"/"+admission.ReasonBadID] != 1 {
		t.Fatalf("admission counters %+v", adm.Rejected)
	}
}

func TestCacheSampledRecomputeCatchesLiar(t *testing.T) {
	ns := startCacheNodes(t, 2)
	liar, victim := ns[0], ns[1]
	liar.share(t, p2p.SharedCacheConfig{})
	var mu sync.Mutex
	var caught []peer.ID
	victim.share(t, p2p.SharedCacheConfig{Recompute: recompute, SampleRate: 1, OnMismatch: func(p peer.ID, e respcache.Entry) {
		mu.Lock()
		caught = append(caught, p)
		mu.Unlock()
	}})
	waitAnnounceMesh(t, ns...)
	ctx := context.Background()
	h := requestHash("a question the liar answers wrongly")
	lie, _ := json.Marshal(testRecord{Request: h, Text: "a plausible lie"})
	liar.cache.Put(ctx, h, "tiny-lm", lie) // self-signed: the proof verifies
	eventually(t, 10*time.Second, "the liar's announcement", func() bool { return victim.cache.Stats().AnnouncesHeard >= 1 })

	if rec, _, ok := victim.cache.Lookup(ctx, h); ok {
		t.Fatalf("a wrong response was served: %q", rec)
	}
	mu.Lock()
	if len(caught) != 1 || caught[0] != liar.m.Node.ID() {
		t.Fatalf("OnMismatch calls %v, want the liar %s", caught, liar.m.Node.ID())
	}
	mu.Unlock()
	st := victim.cache.Stats()
	if st.Mismatches != 1 || st.Recomputed != 1 || st.Rejected["mismatch"] != 1 || victim.cache.Store().Len() != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The liar is skipped from then on.
	if _, _, ok := victim.cache.Lookup(ctx, h); ok {
		t.Fatal("served on the second lookup")
	}
	if st := victim.cache.Stats(); st.Recomputed != 1 {
		t.Fatalf("the liar was asked again: %+v", st)
	}
}

// BenchmarkCacheLookup compares a local hit with a fetch from a loopback
// peer that announced the entry (stream, admission with signature check,
// content check, store; the entry is dropped again after each iteration) and a miss (the DHT of
// two nodes finds no provider). x_local is the cost as a multiple of the
// local hit measured in the same run.
func BenchmarkCacheLookup(b *testing.B) {
	ns := startCacheNodes(b, 2)
	ns[0].share(b, p2p.SharedCacheConfig{SampleRate: -1})
	ns[1].share(b, p2p.SharedCacheConfig{SampleRate: -1, NoReprovide: true, LookupTimeout: 500 * time.Millisecond})
	waitAnnounceMesh(b, ns...)
	ctx := context.Background()
	h := requestHash("benchmark")
	ns[0].cache.Put(ctx, h, "tiny-lm", honestRecord(h))
	waitFor(b, "the announcement", func() bool { return ns[1].cache.Stats().AnnouncesHeard >= 1 })
	if _, src, ok := ns[1].cache.Lookup(ctx, h); !ok || src != "peer" {
		b.Fatalf("warm-up fetch: %s %v", src, ok)
	}
	var local float64
	b.Run("local", func(b *testing.B) {
		for b.Loop() {
			if _, src, ok := ns[1].cache.Lookup(ctx, h); !ok || src != "local" {
				b.Fatal("not a local hit")
			}
		}
		local = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	ratio := func(b *testing.B) {
		if local > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/local, "x_local")
		}
	}
	b.Run("peer", func(b *testing.B) {
		for b.Loop() {
			ns[1].cache.Store().Delete(h)
			if _, src, ok := ns[1].cache.Lookup(ctx, h); !ok || src != "peer" {
				b.Fatalf("not a peer hit: %+v", ns[1].cache.Stats())
			}
		}
		ratio(b)
	})
	b.Run("miss", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if _, _, ok := ns[1].cache.Lookup(ctx, requestHash(fmt.Sprint("miss ", i))); ok {
				b.Fatal("hit")
			}
		}
		ratio(b)
	})
}

// inferenceCache is inference.Cache, which SharedCache implements.
type inferenceCache interface {
	Lookup(ctx context.Context, requestHash string) (record []byte, source string, ok bool)
	Put(ctx context.Context, requestHash, model string, record []byte)
}

var _ inferenceCache = (*p2p.SharedCache)(nil)
