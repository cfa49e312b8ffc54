package crdt

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Honest origins: any two replicas are identical after one exchange, in
// either role, over all domains or one.
func TestSyncConvergesInOneRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	all := pool(t, rng, 6, 12, []string{"ml", "search"}, false)
	for i := 0; i < 40; i++ {
		x, y := subset(rng, all, rng.Float64()), subset(rng, all, rng.Float64())
		a, b := replicaOf(t, x), replicaOf(t, y)
		want := hashOf(t, x, y)
		mustSync(t, a, b)
		if a.StateHash("") != want || b.StateHash("") != want {
			t.Fatalf("iteration %d: not converged after one exchange (|a|=%d |b|=%d)", i, len(x), len(y))
		}
	}
	// Scoped to one domain: only that domain converges.
	a, b := replicaOf(t, subset(rng, all, 0.5)), replicaOf(t, subset(rng, all, 0.5))
	otherA, otherB := a.StateHash("search"), b.StateHash("search")
	if _, _, err := syncOf(a, b, "ml"); err != nil {
		t.Fatal(err)
	}
	if a.StateHash("ml") != b.StateHash("ml") {
		t.Fatal("domain ml did not converge")
	}
	if a.StateHash("search") != otherA || b.StateHash("search") != otherB {
		t.Fatal("a scoped exchange touched another domain")
	}
}

// Equivocating origins: replicas converge within two exchanges.
func TestSyncEquivocation(t *testing.T) {
	k := testKey(7)
	rec := func(run, variant int) receipt.Signed {
		return sign(t, spec{key: k, run: run, metric: 2, variant: variant})
	}
	common := []receipt.Signed{rec(1, 0), rec(2, 0), rec(3, 0), rec(4, 0)}
	x5, y5 := rec(5, 0), rec(5, 1)

	// Same run numbers, different ids: the digest catches it in one exchange.
	a := replicaOf(t, append(slices.Clone(common), x5))
	b := replicaOf(t, append(slices.Clone(common), y5))
	mustSync(t, a, b)
	want := hashOf(t, common, []receipt.Signed{x5, y5})
	if a.StateHash("") != want || b.StateHash("") != want {
		t.Fatal("equivocation at equal run sets: not converged in one exchange")
	}
	if e := a.Summary().Origins[OriginKey(k.ID())]; len(e.Dups[5]) != 2 {
		t.Fatalf("summary does not list the equivocation: %+v", e)
	}

	// Each side also holds a run the other lacks: neither can check the
	// digest in the first message, so a second exchange finishes the job.
	a = replicaOf(t, append(slices.Clone(common), x5, rec(6, 0)))
	b = replicaOf(t, append(slices.Clone(common), y5, rec(7, 0)))
	want = hashOf(t, common, []receipt.Signed{x5, y5, rec(6, 0), rec(7, 0)})
	for round := 1; ; round++ {
		mustSync(t, a, b)
		if a.StateHash("") == want && b.StateHash("") == want {
			break
		}
		if round == 2 {
			t.Fatal("equivocation across divergent runs: not converged in two exchanges")
		}
	}

	// Random states with several equivocating origins.
	rng := rand.New(rand.NewPCG(12, 13))
	all := pool(t, rng, 6, 10, []string{"ml", "search"}, true)
	for i := 0; i < 30; i++ {
		x, y := subset(rng, all, rng.Float64()), subset(rng, all, rng.Float64())
		a, b := replicaOf(t, x), replicaOf(t, y)
		want := hashOf(t, x, y)
		mustSync(t, a, b)
		mustSync(t, a, b)
		if a.StateHash("") != want || b.StateHash("") != want {
			t.Fatalf("iteration %d: not converged after two exchanges", i)
		}
	}
}

func TestNewNodeGetsFullSnapshotInOneSync(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	recs := pool(t, rng, 10, 20, []string{"ml", "search", "finance"}, false)
	if len(recs) != 200 {
		t.Fatalf("pool has %d records", len(recs))
	}
	full := replicaOf(t, recs)
	size := 0
	for _, s := range recs {
		size += recordSize(t, s)
	}

	// The new node asks.
	fresh := New()
	ab, ba := mustSync(t, fresh, full)
	if fresh.StateHash("") != full.StateHash("") || fresh.Len("") != 200 {
		t.Fatalf("new node (initiator) has %d of 200 records", fresh.Len(""))
	}
	t.Logf("new node as initiator: %d records (%d bytes) cost %d bytes (request %d, response %d)", len(recs), size, ab+ba, ab, ba)

	// The new node is asked.
	fresh = New()
	ab, ba = mustSync(t, full, fresh)
	if fresh.StateHash("") != full.StateHash("") {
		t.Fatalf("new node (responder) has %d of 200 records", fresh.Len(""))
	}
	t.Logf("new node as responder: cost %d bytes (a->b %d, b->a %d)", ab+ba, ab, ba)
	if ab+ba > size+size/4 {
		t.Fatalf("snapshot cost %d bytes for %d bytes of records", ab+ba, size)
	}
}

// In steady state (the peers have met: the first exchange below) a new
// record costs at most 1.5 times its own size.
func TestSyncBytesPerNewRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 17))
	recs := pool(t, rng, 8, 25, []string{"ml", "search"}, false)
	a, b := replicaOf(t, recs), replicaOf(t, recs)
	ab, ba := mustSync(t, a, b)
	t.Logf("idle exchange, %d records from 8 origins in 2 domains: %d bytes (a->b %d, b->a %d)", len(recs), ab+ba, ab, ba)

	for i, side := range []string{"initiator", "responder"} {
		s := sign(t, spec{key: testKey(3), run: 26 + i, metric: 1.5, domain: "ml"})
		target := a
		if side == "responder" {
			target = b
		}
		if _, err := target.Add(s); err != nil {
			t.Fatal(err)
		}
		ab, ba := mustSync(t, a, b)
		size := recordSize(t, s)
		ratio := float64(ab+ba) / float64(size)
		t.Logf("new record on the %s: record %d bytes, exchange %d bytes (a->b %d, b->a %d), ratio %.2f", side, size, ab+ba, ab, ba, ratio)
		if a.StateHash("") != b.StateHash("") {
			t.Fatal("not converged")
		}
		if 2*(ab+ba) > 3*size {
			t.Fatalf("exchange cost %d bytes > 1.5 x record size %d", ab+ba, size)
		}
	}
}

func TestSyncPagesAtMessageBudget(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 19))
	recs := pool(t, rng, 4, 15, []string{"ml"}, true)
	budget := 4 * recordSize(t, recs[0])
	full := New(WithMaxMessageSize(budget))
	mustMerge(t, full, recs)
	fresh := New(WithMaxMessageSize(budget))

	resp, err := full.Respond("fresh", fresh.Request("full", nil))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.More || len(resp.Records) == 0 || len(resp.Records) >= len(recs) {
		t.Fatalf("response: %d records, more=%v; want a page", len(resp.Records), resp.More)
	}
	b, _ := json.Marshal(resp.Records)
	if len(b) > budget {
		t.Fatalf("page of %d bytes over budget %d", len(b), budget)
	}
	exchanges := 0
	for fresh.StateHash("") != full.StateHash("") {
		if exchanges++; exchanges > 2*len(recs) {
			t.Fatal("paged sync does not converge")
		}
		mustSync(t, fresh, full)
	}
	t.Logf("%d records paged over %d exchanges", len(recs), exchanges)

	// And the other way round (the push pages).
	fresh = New(WithMaxMessageSize(budget))
	for exchanges = 0; fresh.StateHash("") != full.StateHash(""); {
		if exchanges++; exchanges > 2*len(recs) {
			t.Fatal("paged push does not converge")
		}
		mustSync(t, full, fresh)
	}
}

func TestWireMessages(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 21))
	recs := pool(t, rng, 3, 5, []string{"ml"}, true)
	a := replicaOf(t, recs)
	req := a.Request("b", nil)
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalSyncRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := back.Marshal()
	if string(b) != string(b2) {
		t.Fatalf("request does not round-trip:\n%s\n%s", b, b2)
	}
	if !strings.Contains(string(b), `":"1-5/`) || !strings.Contains(string(b), `"x":{`) {
		t.Fatalf("unexpected request encoding: %s", b)
	}
	t.Logf("request: %s", b)

	push := SyncPush{Records: recs[:2]}
	pb, err := push.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pback, err := UnmarshalSyncPush(pb)
	if err != nil || len(pback.Records) != 2 || pback.Records[0].ID != recs[0].ID {
		t.Fatalf("push round trip: %v", err)
	}
	if pback.Records[1].Verify() != nil {
		t.Fatal("record does not verify after the wire")
	}

	huge := make([]byte, MaxMessageSize+1)
	if _, err := UnmarshalSyncPush(huge); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized message accepted: %v", err)
	}
	if _, err := UnmarshalSyncRequest([]byte(`{"summary":{"o":{"hs1x":"5-1/AAAAAAAAAAAAAAAAAAAAAA"}}}`)); err == nil {
		t.Fatal("malformed summary accepted")
	}
	if _, err := UnmarshalSyncResponse([]byte(`{"records":[`)); err == nil {
		t.Fatal("truncated response accepted")
	}
}
