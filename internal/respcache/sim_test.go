package respcache

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The hit-rate simulation of the shared L1 cache against network size.
//
// Assumptions (the model, stated so the figures can be argued with):
//
//   - Requests are deterministic requests for one model and parameter set,
//     drawn independently from a catalogue of C distinct prompts with Zipf
//     popularity p_i ∝ i^-s (rank i = 1..C).
//   - Every node issues q = 100 such requests a day, as a Poisson stream;
//     the network has N such nodes.
//   - An entry lives TTL = 24 h from its computation. A fetched copy keeps
//     the computing node's proof and so its expiry: replication does not
//     extend an entry's life, and the request after expiry recomputes it.
//   - Each node holds K = 10,000 entries, more than the q·TTL = 100 it
//     computes or fetches within a TTL, so capacity never binds and only
//     the TTL decides; lookups always find a live copy if there is one
//     (no churn, DHT and announcements work). These favour sharing.
//   - local-only: a node hits only what it computed itself within the TTL;
//     network-shared: it hits what any node computed within the TTL.
//   - Every request is cacheable and comes from the Zipf catalogue. Real
//     traces also carry one-off prompts (never repeated): with a fraction u
//     of those, every figure of the table scales by (1 - u).
//
// Under these assumptions each prompt is a renewal process: a miss starts
// a TTL window in which every request of that prompt hits, so the hit
// probability of prompt i with request rate λ_i is λ_i·TTL / (1 + λ_i·TTL),
// with λ_i = q·p_i locally and N·q·p_i network-wide. The analytic figures
// sum that over the catalogue; a Monte Carlo run of the same process checks
// them for N ≤ 1,000.
const (
	simRequestsPerDay = 100
	simCapacity       = 10_000
)

// zipfNorm returns the sum of i^-s for i = 1..c, and sumOver evaluates
// sum_i f(i) · i^-s exactly for small ranks and over geometric buckets
// beyond (error well under 0.1 percentage points).
func sumOver(c float64, s float64, f func(rank float64) float64) float64 {
	const exact = 100_000
	var sum float64
	lim := math.Min(c, exact)
	for i := 1.0; i <= lim; i++ {
		sum += f(i) * math.Pow(i, -s)
	}
	for a := exact + 1.0; a <= c; {
		b := math.Min(math.Floor(a*1.005)+1, c+1)
		mid := math.Sqrt(a * (b - 1))
		sum += (b - a) * f(mid) * math.Pow(mid, -s)
		a = b
	}
	return sum
}

// analyticHitRate is the model's hit rate for nodes requesting each q
// requests a day with TTL one day (λ·TTL = nodes·q·p_i).
func analyticHitRate(nodes, c, s float64) float64 {
	one := func(float64) float64 { return 1 }
	h := sumOver(c, s, one)
	rate := nodes * simRequestsPerDay / h // λ_i·TTL = rate · i^-s
	return sumOver(c, s, func(i float64) float64 {
		x := rate * math.Pow(i, -s)
		return x / (1 + x)
	}) / h
}

// monteCarlo runs the process for days (the first one warms up) and returns
// the shared and local-only hit rates.
func monteCarlo(nodes int, c uint64, s float64, days int, seed uint64) (shared, local float64) {
	r := rand.New(rand.NewPCG(seed, 2))
	z := rand.NewZipf(r, s, 1, c-1)
	const ttl = 1.0                  // day
	computed := map[uint64]float64{} // prompt → last computation anywhere
	mine := map[[2]uint64]float64{}  // (node, prompt) → last own computation
	total := nodes * simRequestsPerDay * days
	var n, hs, hl int
	for k := range total {
		t := float64(k) / float64(nodes*simRequestsPerDay) // uniform arrivals stand in for Poisson
		node := uint64(r.IntN(nodes))
		item := z.Uint64()
		warm := t >= 1
		if at, ok := computed[item]; ok && t < at+ttl {
			if warm {
				hs++
			}
		} else {
			computed[item] = t
		}
		key := [2]uint64{node, item}
		if at, ok := mine[key]; ok && t < at+ttl {
			if warm {
				hl++
			}
		} else {
			mine[key] = t
		}
		if warm {
			n++
		}
	}
	return float64(hs) / float64(n), float64(hl) / float64(n)
}

// TestZipfHitRate prints the table (run with -v) and checks the analytic
// model against the Monte Carlo run where both are computable.
func TestZipfHitRate(t *testing.T) {
	if simCapacity < simRequestsPerDay {
		t.Fatal("the model assumes capacity does not bind")
	}
	sizes := []float64{10, 100, 1e3, 1e4, 1e5, 1e6}
	type col struct {
		c, s float64
	}
	cols := []col{{1e6, 1.05}, {1e8, 1.05}, {1e10, 1.05}, {1e8, 1.0}, {1e8, 1.1}}
	var b strings.Builder
	fmt.Fprintf(&b, "\nhit rate, q=%d requests/node/day, TTL 24h, capacity %d/node\n%-9s", simRequestsPerDay, simCapacity, "nodes")
	for _, c := range cols {
		fmt.Fprintf(&b, " | C=%.0e s=%.2f: local shared", c.c, c.s)
	}
	b.WriteString("\n")
	local := make([]float64, len(cols))
	for j, c := range cols {
		local[j] = analyticHitRate(1, c.c, c.s)
	}
	for _, n := range sizes {
		fmt.Fprintf(&b, "%-9.0f", n)
		for j, c := range cols {
			fmt.Fprintf(&b, " |                %5.1f%%  %5.1f%%", 100*local[j], 100*analyticHitRate(n, c.c, c.s))
		}
		b.WriteString("\n")
	}
	t.Log(b.String())

	for _, n := range []int{10, 100, 1000} {
		shared, loc := monteCarlo(n, 1e8, 1.05, 3, uint64(n))
		wantShared, wantLocal := analyticHitRate(float64(n), 1e8, 1.05), analyticHitRate(1, 1e8, 1.05)
		t.Logf("Monte Carlo N=%d, C=1e8, s=1.05: shared %.1f%% (model %.1f%%), local %.1f%% (model %.1f%%)",
			n, 100*shared, 100*wantShared, 100*loc, 100*wantLocal)
		if math.Abs(shared-wantShared) > 0.03 || math.Abs(loc-wantLocal) > 0.03 {
			t.Errorf("N=%d: the model and the Monte Carlo disagree by more than 3 points", n)
		}
	}
}
