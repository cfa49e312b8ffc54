// Package noise measures the run-to-run noise of an evaluation (the "noise
// floor") and decides whether a candidate result is a real improvement.
//
// A campaign first evaluates its baseline config with several seeds; the
// sample standard deviation of those metrics is the noise. A candidate only
// counts as a new best when it beats the best so far by more than K
// standard deviations (K defaults to 2).
package noise

import (
	"fmt"
	"math"
	"slices"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// DefaultK is the number of standard deviations used when none is given.
const DefaultK = 2.0

// Floor is a measured noise floor.
type Floor struct {
	Mean float64 // mean of the measured values
	SD   float64 // sample standard deviation (n-1 denominator)
	N    int     // number of values measured
	K    float64 // multiples of SD a gain must exceed
}

// Measure computes the noise floor of values (metrics of repeated runs of
// the same config with different seeds). It needs at least two finite
// values. k <= 0 (or non-finite) means DefaultK.
func Measure(values []float64, k float64) (Floor, error) {
	if len(values) < 2 {
		return Floor{}, fmt.Errorf("noise: need at least 2 values to measure a noise floor, got %d", len(values))
	}
	if k <= 0 || math.IsNaN(k) || math.IsInf(k, 0) {
		k = DefaultK
	}
	// Sorted, so the floor does not depend on the order the baseline runs
	// finished in (float addition is not associative).
	values = slices.Sorted(slices.Values(values))
	var sum float64
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Floor{}, fmt.Errorf("noise: value %d is %v", i, v)
		}
		sum += v
	}
	n := float64(len(values))
	mean := sum / n
	var ss float64
	for _, v := range values {
		d := v - mean
		ss += d * d
	}
	if values[0] == values[len(values)-1] {
		// Identical runs (a deterministic evaluation): no spread at all,
		// not the rounding residue of mean = sum/n.
		ss = 0
	}
	return Floor{Mean: mean, SD: math.Sqrt(ss / (n - 1)), N: len(values), K: k}, nil
}

// Threshold is the margin a candidate must beat the best by: K*SD.
func (f Floor) Threshold() float64 { return f.K * f.SD }

// Beats reports whether candidate is better than best, under dir, by MORE
// than the threshold. With SD = 0 any strict improvement beats. Non-finite
// candidates never beat; a non-finite best (nothing measured yet) is beaten
// by any finite candidate.
func (f Floor) Beats(candidate, best float64, dir domains.Direction) bool {
	if math.IsNaN(candidate) || math.IsInf(candidate, 0) {
		return false
	}
	if math.IsNaN(best) || math.IsInf(best, 0) {
		return true
	}
	return gain(candidate, best, dir) > f.Threshold()
}

// gain is the direction-aware absolute gain of candidate over best.
func gain(candidate, best float64, dir domains.Direction) float64 {
	if dir == domains.Maximize {
		return candidate - best
	}
	return best - candidate
}

// zeroGuard is the smallest |best| used as a denominator by Improvement.
const zeroGuard = 1e-12

// Improvement is the relative, direction-aware gain of candidate over best:
// (best-candidate)/|best| when minimising, (candidate-best)/|best| when
// maximising, so positive always means better. When |best| is (nearly)
// zero the absolute gain is returned instead. It is 0 when either value is
// non-finite (e.g. no best yet).
func Improvement(candidate, best float64, dir domains.Direction) float64 {
	if math.IsNaN(candidate) || math.IsInf(candidate, 0) || math.IsNaN(best) || math.IsInf(best, 0) {
		return 0
	}
	g := gain(candidate, best, dir)
	if math.Abs(best) < zeroGuard {
		return g
	}
	return g / math.Abs(best)
}
