package crdt

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// inSync returns two replicas holding the same 600 records of the given
// number of origins in 3 domains (about 1.1 KB each), and the next run
// number of every origin.
func inSync(tb testing.TB, origins int) (x, y *Replica, nextRun int) {
	rng := rand.New(rand.NewPCG(50, 51))
	perOrigin := max(600/origins, 1)
	base := pool(tb, rng, origins, perOrigin, []string{"ml", "search", "finance"}, false)
	return replicaOf(tb, base), replicaOf(tb, base), perOrigin + 1
}

// The second exchange with the same peer after one new record moves at
// most 1.5 times the record's size, at any number of origins, whichever
// side gained the record and whichever side starts; so does every later
// one (the steady state).
func TestSyncDeltaBytesPerNewRecord(t *testing.T) {
	for _, origins := range []int{5, 10, 20, 40, 100} {
		t.Run(fmt.Sprintf("origins=%d", origins), func(t *testing.T) {
			x, y, next := inSync(t, origins)
			ab, ba := mustSync(t, x, y)
			t.Logf("first exchange, nothing new: %d bytes", ab+ba)
			run := map[int]int{}
			for i, c := range []struct{ gains, starts string }{
				{"initiator", "x"}, {"responder", "x"}, {"initiator", "y"}, {"responder", "y"},
				{"initiator", "x"}, {"initiator", "x"}, {"responder", "x"}, {"responder", "y"},
			} {
				init, resp := x, y
				if c.starts == "y" {
					init, resp = y, x
				}
				target := init
				if c.gains == "responder" {
					target = resp
				}
				o := i % origins
				s := sign(t, spec{key: testKey(o), run: next + run[o], metric: 1.5, domain: "ml"})
				run[o]++
				if _, err := target.Add(s); err != nil {
					t.Fatal(err)
				}
				ab, ba := mustSync(t, init, resp)
				size := recordSize(t, s)
				ratio := float64(ab+ba) / float64(size)
				if x.StateHash("") != y.StateHash("") {
					t.Fatalf("exchange %d: not converged", i)
				}
				t.Logf("exchange %d: new record (%d bytes) on the %s, %s starts: %d bytes (%d + %d), ratio %.2f", i+2, size, c.gains, c.starts, ab+ba, ab, ba, ratio)
				if ratio > 1.5 {
					t.Fatalf("exchange %d moved %d bytes for a %d-byte record: ratio %.2f > 1.5", i+2, ab+ba, size, ratio)
				}
			}
			// Idle: nothing new on either side.
			if ab, ba := mustSync(t, x, y); ab+ba > 400 {
				t.Fatalf("idle exchange moved %d bytes", ab+ba)
			}
		})
	}
}

// syncNamed runs Sync between a and b known by the given names.
func syncNamed(tb testing.TB, a *Replica, aID string, b *Replica, bID string) (int, int) {
	tb.Helper()
	ab, ba, err := Sync(a, aID, b, bID)
	if err != nil {
		tb.Fatal(err)
	}
	return ab, ba
}

// respondTo runs the first half of an exchange and returns the messages.
func respondTo(t *testing.T, a *Replica, aID string, b *Replica, bID string) (SyncRequest, SyncResponse) {
	t.Helper()
	req, err := UnmarshalSyncRequest(mustMarshal(t, a.Request(bID, nil)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.Respond(aID, req)
	if err != nil {
		t.Fatal(err)
	}
	return req, resp
}

// A responder that does not hold the base the request names says so, the
// initiator still pushes everything the responder lacks in that exchange,
// and the next exchange brings the rest: no record is ever missed.
func TestSyncDeltaFallback(t *testing.T) {
	rng := rand.New(rand.NewPCG(60, 61))
	all := pool(t, rng, 30, 6, []string{"ml", "search"}, false)
	common, onlyA, onlyB := all[:120], all[120:150], all[150:]
	union := hashOf(t, all)

	t.Run("responder restarted", func(t *testing.T) {
		dir := t.TempDir()
		a := replicaOf(t, common)
		b, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		mustMerge(t, b, common)
		syncNamed(t, a, "a", b, "b") // both remember
		if req := a.Request("b", nil); req.Base == "" {
			t.Fatal("after an exchange the request is not a delta")
		}
		mustMerge(t, a, onlyA)
		mustMerge(t, b, onlyB)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if b, err = Open(dir); err != nil { // same peer, memory lost
			t.Fatal(err)
		}
		defer b.Close()
		req, resp := respondTo(t, a, "a", b, "b")
		if req.Base == "" || !resp.NoBase || resp.Ack != "" || len(resp.Records) != 0 {
			t.Fatalf("request base %q; response nobase %v ack %q with %d records; want a nobase answer to a delta", req.Base, resp.NoBase, resp.Ack, len(resp.Records))
		}
		push, _, _, err := a.HandleResponse("b", req, resp)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.HandlePush("a", push); err != nil {
			t.Fatal(err)
		}
		for _, s := range onlyA {
			if !b.Has(s.ID) {
				t.Fatal("the fallback exchange did not push what the responder lacks")
			}
		}
		// The next exchange is a delta against the summary the nobase
		// answer carried, and completes the union.
		req, resp = respondTo(t, a, "a", b, "b")
		if req.Base == "" || resp.Ack != req.Hash {
			t.Fatalf("second exchange: base %q ack %q; want a delta against the responder's summary", req.Base, resp.Ack)
		}
		syncNamed(t, a, "a", b, "b")
		if a.StateHash("") != union || b.StateHash("") != union {
			t.Fatal("not converged after the fallback")
		}
	})

	t.Run("initiator restarted", func(t *testing.T) {
		a, b := replicaOf(t, common), replicaOf(t, common)
		syncNamed(t, a, "a", b, "b")
		mustMerge(t, a, onlyA)
		mustMerge(t, b, onlyB)
		a = replicaOf(t, a.Records("")) // memory lost: a full request
		if req := a.Request("b", nil); req.Base != "" {
			t.Fatal("a replica that remembers nothing sent a delta")
		}
		syncNamed(t, a, "a", b, "b")
		if a.StateHash("") != union || b.StateHash("") != union {
			t.Fatal("not converged in one exchange after the initiator restarted")
		}
	})

	t.Run("another peer names the base", func(t *testing.T) {
		a, b := replicaOf(t, common), replicaOf(t, common)
		syncNamed(t, a, "a", b, "b")
		mustMerge(t, a, onlyA)
		req := a.Request("b", nil)
		resp, err := b.Respond("mallory", req) // the same bytes from another peer
		if err != nil {
			t.Fatal(err)
		}
		if !resp.NoBase || len(resp.Records) != 0 {
			t.Fatalf("a base named by another peer was resolved (nobase %v, %d records)", resp.NoBase, len(resp.Records))
		}
	})

	t.Run("fresh responder", func(t *testing.T) {
		a, b := replicaOf(t, common), replicaOf(t, common)
		syncNamed(t, a, "a", b, "b")
		mustMerge(t, a, onlyA)
		fresh := New() // a new node that took over b's address
		ab, ba := syncNamed(t, a, "a", fresh, "b")
		if fresh.StateHash("") != a.StateHash("") {
			t.Fatalf("a new node got %d of %d records in its first exchange", fresh.Len(""), a.Len(""))
		}
		t.Logf("fresh responder behind a remembered peer id: %d bytes (%d + %d)", ab+ba, ab, ba)
	})

	t.Run("fresh initiator", func(t *testing.T) {
		a := replicaOf(t, all)
		fresh := New()
		syncNamed(t, fresh, "f", a, "a")
		if fresh.StateHash("") != union {
			t.Fatal("a new node did not get the full state in its first exchange")
		}
	})

	t.Run("older peers", func(t *testing.T) {
		// An older initiator sends full summaries without a hash: it is
		// answered as before and not remembered, so this replica never
		// names a base to it.
		a, b := replicaOf(t, append(slices.Clone(common), onlyA...)), replicaOf(t, append(slices.Clone(common), onlyB...))
		old := a.Request("", nil)
		resp, err := b.Respond("a", old)
		if err != nil || resp.Ack != "" || resp.NoBase {
			t.Fatalf("response to an older initiator: ack %q nobase %v err %v", resp.Ack, resp.NoBase, err)
		}
		push, _, _, err := a.HandleResponse("", old, resp)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.HandlePush("a", push); err != nil {
			t.Fatal(err)
		}
		if req := b.Request("a", nil); req.Base != "" {
			t.Fatal("a delta for a peer known to be older")
		}
		if a.StateHash("") != union || b.StateHash("") != union {
			t.Fatal("not converged with an older initiator")
		}

		// An older responder ignores base and hash and takes the delta for
		// a full summary; the initiator reads its answer against the delta
		// as sent, pushes what it lacks, and sends it full summaries from
		// then on.
		a, b = replicaOf(t, common), replicaOf(t, common)
		syncNamed(t, a, "a", b, "b")
		mustMerge(t, a, onlyA)
		mustMerge(t, b, onlyB)
		req := a.Request("b", nil)
		if req.Base == "" {
			t.Fatal("no delta")
		}
		oldResp, err := b.Respond("", SyncRequest{Domains: req.Domains, Summary: req.Summary}) // what an older responder sees
		if err != nil || oldResp.Ack != "" || oldResp.NoBase {
			t.Fatalf("older responder: ack %q nobase %v err %v", oldResp.Ack, oldResp.NoBase, err)
		}
		push, _, _, err = a.HandleResponse("b", req, oldResp)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.HandlePush("", push); err != nil {
			t.Fatal(err)
		}
		if a.StateHash("") != union || b.StateHash("") != union {
			t.Fatal("not converged with an older responder")
		}
		if req := a.Request("b", nil); req.Base != "" {
			t.Fatal("a delta for a responder known to be older")
		}
	})

	t.Run("hostile deltas", func(t *testing.T) {
		a, b := replicaOf(t, common), replicaOf(t, common)
		syncNamed(t, a, "a", b, "b")
		req := a.Request("b", nil)
		bad := req
		bad.Summary = Summary{Origins: map[string]OriginSummary{"nosuchorigin": {}}}
		if _, err := b.Respond("a", bad); !errors.Is(err, ErrBadDelta) {
			t.Fatalf("a delta removing an unknown origin: %v", err)
		}
		bad = req
		bad.Hash = req.Base // a delta that does not rebuild the summary its hash names
		bad.Summary = Summary{Origins: map[string]OriginSummary{OriginKey(testKey(0).ID()): {}}}
		if resp, err := b.Respond("a", bad); err != nil || !resp.NoBase {
			t.Fatalf("a delta that does not match its hash: nobase %v err %v", resp.NoBase, err)
		}
		resp, err := b.Respond("a", req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Ack = Summary{}.Hash()
		if _, _, _, err := a.HandleResponse("b", req, resp); !errors.Is(err, ErrBadDelta) {
			t.Fatalf("an ack of another summary: %v", err)
		}
		resp.Ack = req.Hash
		resp.Summary = Summary{Origins: map[string]OriginSummary{"nosuchorigin": {}}}
		if _, _, _, err := a.HandleResponse("b", req, resp); !errors.Is(err, ErrBadDelta) {
			t.Fatalf("a response delta removing an unknown origin: %v", err)
		}
	})
}

// The peer memory stays within its bounds: peers beyond the limit are
// forgotten least recently used first, and so are bytes beyond the budget.
func TestPeerMemoryBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(62, 63))
	recs := pool(t, rng, 20, 2, []string{"ml"}, false)
	hub := New(WithPeerMemory(8, 0))
	for i := range 20 {
		syncNamed(t, New(), fmt.Sprint("p", i), hub, "hub")
	}
	mustMerge(t, hub, recs)
	spokes := map[string]*Replica{}
	for i := range 20 {
		id := fmt.Sprint("s", i)
		spokes[id] = replicaOf(t, recs)
		syncNamed(t, spokes[id], id, hub, "hub")
	}
	checkMemory(t, hub)
	if n := hub.peers.lru.Len(); n != 8 {
		t.Fatalf("hub remembers %d peers, limit 8", n)
	}
	// The 8 most recent spokes send deltas the hub resolves; the others
	// are answered nobase.
	for i := 19; i >= 0; i-- { // the remembered first: a nobase answer evicts one
		id := fmt.Sprint("s", i)
		req, resp := respondTo(t, spokes[id], id, hub, "hub")
		if req.Base == "" {
			t.Fatalf("%s: no delta", id)
		}
		if want := i < 12; resp.NoBase != want {
			t.Fatalf("%s: nobase %v, want %v", id, resp.NoBase, want)
		}
	}

	small := New(WithPeerMemory(100, 4*summaryBytes(hub.Summary())))
	for i := range 10 {
		syncNamed(t, replicaOf(t, recs), fmt.Sprint("q", i), small, "small")
		checkMemory(t, small)
	}
	if small.peers.bytes > small.peers.maxBytes {
		t.Fatalf("memory holds %d bytes, budget %d", small.peers.bytes, small.peers.maxBytes)
	}
}

// Two replicas with arbitrary histories converge through repeated delta
// exchanges in both roles while records arrive on either side, messages
// are lost, and either side restarts (losing its memory; one side is
// persistent and reopens its log). Checked after every exchange that runs
// to the end: the responder holds everything the initiator held, and the
// initiator everything the responder held unless the responder had lost
// the base (then the next exchange delivers it); whenever a responder
// rebuilds a delta, it rebuilds exactly the initiator's summary. With
// equivocating origins, a few lossless exchanges reach the union.
func TestSyncDeltaConverges(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { deltaHistory(t, seed, seed%3 == 0) })
	}
}

func deltaHistory(t *testing.T, seed uint64, equivocate bool) {
	rng := rand.New(rand.NewPCG(seed, 77))
	const origins = 8
	doms := []string{"ml", "search", "finance"}
	dir := t.TempDir()
	open := func() *Replica {
		r, err := Open(dir, WithPeerMemory(1+rng.IntN(4), 0))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	type side struct {
		r  *Replica
		id string
	}
	a := &side{New(), "a"}
	b := &side{open(), "b"}
	defer func() { b.r.Close() }()
	var created []receipt.Signed
	nextRun := make([]int, origins)
	publish := func(s *side) {
		o := rng.IntN(origins)
		nextRun[o]++
		sp := spec{key: testKey(200 + o), domain: doms[rng.IntN(len(doms))], run: nextRun[o], metric: rng.Float64()}
		rec := sign(t, sp)
		created = append(created, rec)
		if _, err := s.r.Add(rec); err != nil {
			t.Fatal(err)
		}
		if equivocate && o == 0 && rng.IntN(2) == 0 {
			sp.variant = 1
			rec2 := sign(t, sp)
			created = append(created, rec2)
			other := a
			if s == a {
				other = b
			}
			if _, err := other.r.Add(rec2); err != nil {
				t.Fatal(err)
			}
		}
	}
	restart := func(s *side) {
		if s == b {
			if err := b.r.Close(); err != nil {
				t.Fatal(err)
			}
			b.r = open()
			return
		}
		a.r = replicaOf(t, a.r.Records(""))
	}
	// exchange runs init -> resp; lose is 0 (none), 1 (request), 2
	// (response) or 3 (push).
	exchange := func(init, resp *side, domains []string, lose int) {
		before := map[*side][]string{init: ids(init.r.Records("")), resp: ids(resp.r.Records(""))}
		full := init.r.Summary(domains...)
		req, err := UnmarshalSyncRequest(mustMarshal(t, init.r.Request(resp.id, domains)))
		if err != nil {
			t.Fatal(err)
		}
		if lose == 1 {
			return
		}
		rs, err := resp.r.Respond(init.id, req)
		if err != nil {
			t.Fatal(err)
		}
		if rs.Ack != "" {
			got, ok := resp.r.peers.lookup(init.id, rs.Ack)
			if !ok || !summariesEqual(got, full) {
				t.Logf("found %v\n got %v\nwant %v resp %s lru %d bytes %d/%d", ok, got, full, resp.id, resp.r.peers.lru.Len(), resp.r.peers.bytes, resp.r.peers.maxBytes)
				t.Fatalf("the responder rebuilt a summary other than the initiator's (base %q)", req.Base)
			}
		}
		if req.Base != "" && !rs.NoBase && rs.Ack == "" {
			t.Fatal("a delta answered with neither ack nor nobase")
		}
		if lose == 2 {
			return
		}
		rs, err = UnmarshalSyncResponse(mustMarshal(t, rs))
		if err != nil {
			t.Fatal(err)
		}
		push, _, _, err := init.r.HandleResponse(resp.id, req, rs)
		if err != nil {
			t.Fatal(err)
		}
		if lose == 3 {
			return
		}
		push, err = UnmarshalSyncPush(mustMarshal(t, push))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := resp.r.HandlePush(init.id, push); err != nil {
			t.Fatal(err)
		}
		if equivocate || len(domains) > 0 {
			return
		}
		for _, id := range before[init] {
			if !resp.r.Has(id) {
				t.Fatalf("after a complete exchange the responder lacks %s, which the initiator held", receipt.ShortID(id))
			}
		}
		if !rs.NoBase {
			for _, id := range before[resp] {
				if !init.r.Has(id) {
					t.Fatalf("after a complete exchange (base %q) the initiator lacks %s, which the responder held", req.Base, receipt.ShortID(id))
				}
			}
		}
	}
	for step := 0; step < 300; step++ {
		switch p := rng.IntN(20); {
		case p < 5:
			publish([]*side{a, b}[rng.IntN(2)])
		case p == 5:
			restart([]*side{a, b}[rng.IntN(2)])
		default:
			init, resp := a, b
			if rng.IntN(2) == 0 {
				init, resp = b, a
			}
			var domains []string
			if rng.IntN(5) == 0 {
				domains = []string{doms[rng.IntN(len(doms))]}
			}
			lose := 0
			if rng.IntN(6) == 0 {
				lose = 1 + rng.IntN(3)
			}
			exchange(init, resp, domains, lose)
		}
	}
	want := hashOf(t, created)
	for round := 0; a.r.StateHash("") != want || b.r.StateHash("") != want; round++ {
		if round == 4 {
			t.Fatalf("not converged after %d lossless exchanges (%d and %d of %d records)", round, a.r.Len(""), b.r.Len(""), len(created))
		}
		if round%2 == 0 {
			exchange(a, b, nil, 0)
		} else {
			exchange(b, a, nil, 0)
		}
	}
	checkMemory(t, a.r)
	checkMemory(t, b.r)
	t.Logf("%d records, equivocating %v: converged", len(created), equivocate)
}

func summariesEqual(x, y Summary) bool {
	return maps.EqualFunc(x.Origins, y.Origins, OriginSummary.equal)
}
