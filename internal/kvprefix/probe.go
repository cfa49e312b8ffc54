package kvprefix

import "math/rand/v2"

// DefaultProbes is the number of chunks an availability probe reads.
const DefaultProbes = 7

// ProbePlan returns samples distinct chunk indices of [0, n) drawn from rng
// (samples <= 0: DefaultProbes; at most n). A probe is an ordinary chunk
// read (a holder cannot tell it from a fetch), so a holder that dropped its
// chunks cannot keep answering probes only.
//
// What the probes tell: the set is recoverable when at least K chunks are
// available. If it is not (at most K-1 of N available), all samples
// probes succeed with probability C(K-1, s)/C(N, s) (hypergeometric: every
// probe must land on an available chunk), ProbeMissProbability. For
// RS(32, 64) and 7 probes that is C(31,7)/C(64,7) = 2,629,575 /
// 621,216,192 ≈ 0.42%: seven successes give more than 99% confidence that
// the set is recoverable.
func ProbePlan(rng *rand.Rand, n, samples int) []int {
	if samples <= 0 {
		samples = DefaultProbes
	}
	if n <= 0 {
		return nil
	}
	samples = min(samples, n)
	// A partial Fisher-Yates shuffle over a sparse permutation: O(samples).
	swapped := make(map[int]int, samples)
	at := func(i int) int {
		if v, ok := swapped[i]; ok {
			return v
		}
		return i
	}
	out := make([]int, samples)
	for i := range samples {
		j := i + rng.IntN(n-i)
		out[i] = at(j)
		swapped[j] = at(i)
	}
	return out
}

// ProbeMissProbability is the probability that samples distinct random
// probes all succeed although the set is not recoverable, in the worst case
// of exactly k-1 of n chunks available: C(k-1, s)/C(n, s) (0 when s >
// k-1). It is 1 for no probes.
func ProbeMissProbability(n, k, samples int) float64 {
	if samples <= 0 {
		return 1
	}
	if samples > k-1 || samples > n {
		return 0
	}
	p := 1.0
	for j := range samples {
		p *= float64(k-1-j) / float64(n-j)
	}
	return p
}

// ProbesFor is the fewest probes whose miss probability for RS(k, n) is
// at most miss (n, if none is).
func ProbesFor(n, k int, miss float64) int {
	for s := 1; s <= n; s++ {
		if ProbeMissProbability(n, k, s) <= miss {
			return s
		}
	}
	return n
}
