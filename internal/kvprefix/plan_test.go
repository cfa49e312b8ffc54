package kvprefix

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestProbeMath(t *testing.T) {
	// C(31,7) = 2,629,575 and C(64,7) = 621,216,192.
	want := 2629575.0 / 621216192.0
	got := ProbeMissProbability(64, 32, 7)
	if math.Abs(got-want) > 1e-15 {
		t.Fatalf("miss probability %v, want %v", got, want)
	}
	if got >= 0.01 {
		t.Fatalf("7 probes miss with %v >= 1%%", got)
	}
	// Six probes already reach 1% (C(31,6)/C(64,6) ≈ 0.98%); the default
	// seven keep a margin below it (0.42%).
	if ProbesFor(64, 32, 0.01) != 6 || ProbesFor(64, 32, 0.005) != 7 {
		t.Fatalf("probes for 1%%: %d, for 0.5%%: %d", ProbesFor(64, 32, 0.01), ProbesFor(64, 32, 0.005))
	}
	if ProbeMissProbability(64, 32, 32) != 0 || ProbeMissProbability(64, 32, 0) != 1 {
		t.Fatal("edge cases")
	}
	// Simulate the worst case: 31 of 64 chunks available.
	r := rand.New(rand.NewPCG(1, 2))
	const trials = 200_000
	hits := 0
	for range trials {
		all := true
		for _, i := range ProbePlan(r, 64, 7) {
			if i >= 31 { // chunks 0..30 are the available ones
				all = false
				break
			}
		}
		if all {
			hits++
		}
	}
	freq := float64(hits) / trials
	// Standard deviation of the frequency is about 1.5e-4.
	if math.Abs(freq-want) > 8e-4 {
		t.Fatalf("simulated miss frequency %v, formula %v", freq, want)
	}
}

func TestProbePlan(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	seen := make([]int, 64)
	for range 2000 {
		p := ProbePlan(r, 64, 0)
		if len(p) != DefaultProbes {
			t.Fatalf("plan of %d", len(p))
		}
		s := slices.Clone(p)
		slices.Sort(s)
		if len(slices.Compact(s)) != len(p) {
			t.Fatalf("repeated index in %v", p)
		}
		for _, i := range p {
			if i < 0 || i >= 64 {
				t.Fatalf("index %d", i)
			}
			seen[i]++
		}
	}
	for i, c := range seen {
		if c < 100 { // expected 2000·7/64 ≈ 219
			t.Fatalf("index %d probed %d times", i, c)
		}
	}
	if p := ProbePlan(r, 3, 7); len(p) != 3 {
		t.Fatalf("plan over 3 chunks: %v", p)
	}
	a := ProbePlan(rand.New(rand.NewPCG(9, 9)), 64, 7)
	b := ProbePlan(rand.New(rand.NewPCG(9, 9)), 64, 7)
	if !slices.Equal(a, b) {
		t.Fatal("plan not deterministic under a seed")
	}
}

func peers(t testing.TB, n int) []peer.ID {
	out := make([]peer.ID, n)
	for i := range out {
		id, err := peer.IDFromPrivateKey(testKey(t, uint64(100+i)))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = id
	}
	return out
}

func TestPlace(t *testing.T) {
	m, _ := signed(t, randomState(1, 1000), 32, 64)
	ps := peers(t, 9)
	self, cands := ps[0], ps[1:]
	for _, reps := range []int{1, 2, 3} {
		pl := Place(m, append(cands, self, cands[0]), self, reps)
		if len(pl) != 64 {
			t.Fatalf("%d chunks placed", len(pl))
		}
		load := map[peer.ID]int{}
		for i := range 64 {
			got := pl[i]
			if len(got) != reps {
				t.Fatalf("chunk %d on %d peers, want %d", i, len(got), reps)
			}
			s := slices.Clone(got)
			slices.Sort(s)
			if len(slices.Compact(s)) != reps {
				t.Fatalf("chunk %d on repeated peers %v", i, got)
			}
			for _, p := range got {
				if p == self {
					t.Fatalf("self chosen among 8 candidates")
				}
				load[p]++
			}
		}
		capacity := (64*reps + 7) / 8
		for p, l := range load {
			if l > capacity+reps-1 {
				t.Fatalf("replicas %d: %s holds %d > %d", reps, p, l, capacity)
			}
		}
		if len(load) != 8 {
			t.Fatalf("only %d peers used", len(load))
		}
		// Deterministic, whatever the candidates' order.
		rev := slices.Clone(cands)
		slices.Reverse(rev)
		again := Place(m, rev, self, reps)
		for i := range 64 {
			if !slices.Equal(pl[i], again[i]) {
				t.Fatalf("placement depends on candidate order at chunk %d", i)
			}
		}
	}
	// One other candidate: it alone would hold 64 > N-K chunks, so self joins.
	pl := Place(m, cands[:1], self, 1)
	used := map[peer.ID]bool{}
	for _, ps := range pl {
		used[ps[0]] = true
	}
	if !used[self] || !used[cands[0]] {
		t.Fatalf("self not used with one candidate: %v", used)
	}
	// No other candidate: all on self; none at all: empty.
	if pl := Place(m, nil, self, 1); len(pl) != 64 || pl[0][0] != self {
		t.Fatal("self alone")
	}
	if pl := Place(m, nil, "", 1); len(pl) != 0 {
		t.Fatal("nothing to place on")
	}
}

func TestTracker(t *testing.T) {
	m, _ := signed(t, randomState(1, 1000), 32, 64)
	ps := peers(t, 9)
	self, cands := ps[0], ps[1:]
	tr := NewTracker(0)
	pl := Place(m, cands, self, 1)
	tr.Track(m, pl)
	if tr.Live(m.Root) != 64 || tr.NeedsRepair(m.Root) || len(tr.Missing(m.Root)) != 0 {
		t.Fatal("fresh set")
	}
	if len(tr.Providers(m.Root)) != 8 {
		t.Fatalf("providers %v", tr.Providers(m.Root))
	}
	// The holder of chunk 0 fails a probe.
	bad := pl[0][0]
	held := 0
	for _, p := range pl {
		if p[0] == bad {
			held++
		}
	}
	tr.ProbeResult(m.Root, bad, 0, false)
	if tr.Reputation(bad) != ReputationStart/2 {
		t.Fatalf("reputation %v", tr.Reputation(bad))
	}
	if slices.Contains(tr.Providers(m.Root), bad) || !slices.Contains(tr.Removed(m.Root), bad) {
		t.Fatal("failed provider still listed")
	}
	if tr.Live(m.Root) != 64-held || len(tr.Missing(m.Root)) != held {
		t.Fatalf("live %d, held %d", tr.Live(m.Root), held)
	}
	// A good probe raises reputation, capped at the start.
	good := pl[1][0]
	tr.ProbeResult(m.Root, good, 1, true)
	if tr.Reputation(good) != ReputationStart {
		t.Fatal("reputation above start")
	}
	// Repair places the missing chunks elsewhere.
	plan := tr.RepairPlan(m.Root, append(cands, self), self, 1)
	if len(plan) != held {
		t.Fatalf("plan for %d chunks, want %d", len(plan), held)
	}
	for i, ps := range plan {
		if slices.Contains(ps, bad) {
			t.Fatalf("chunk %d re-placed on the failed provider", i)
		}
		tr.AddHolder(m.Root, i, ps[0])
	}
	if tr.Live(m.Root) != 64 {
		t.Fatalf("live after repair %d", tr.Live(m.Root))
	}
	// NeedsRepair at K+margin.
	for i := range 64 - (32 + DefaultMargin) {
		for _, p := range tr.Holders(m.Root, i) {
			tr.RemoveHolder(m.Root, i, p)
		}
	}
	if tr.Live(m.Root) != 40 || !tr.NeedsRepair(m.Root) {
		t.Fatalf("live %d, needs repair %v", tr.Live(m.Root), tr.NeedsRepair(m.Root))
	}
	tr.Forget(m.Root)
	if tr.NeedsRepair(m.Root) || len(tr.Roots()) != 0 {
		t.Fatal("forgotten set")
	}
}

func TestTrackerBounded(t *testing.T) {
	tr := NewTracker(0)
	tr.maxSets = 3
	for i := range 5 {
		m, _ := signed(t, randomState(uint64(i), 100+i), 4, 8)
		tr.Track(m, nil)
	}
	if len(tr.Roots()) != 3 {
		t.Fatalf("%d sets tracked", len(tr.Roots()))
	}
	_ = fmt.Sprint()
}
