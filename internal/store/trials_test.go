package store_test

import (
	"math"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// TestTrialsWith: adding observations one by one gives the batch mean and
// sample variance.
func TestTrialsWith(t *testing.T) {
	xs := []float64{0.4, 1.1, -0.2, 0.9, 0.35, 2.0}
	var tr store.Trials
	for i, x := range xs {
		tr = tr.With(x)
		var mean float64
		for _, y := range xs[:i+1] {
			mean += y
		}
		mean /= float64(i + 1)
		var ss float64
		for _, y := range xs[:i+1] {
			ss += (y - mean) * (y - mean)
		}
		want := 0.0
		if i > 0 {
			want = ss / float64(i)
		}
		if tr.N != i+1 || math.Abs(tr.Mean-mean) > 1e-12 || math.Abs(tr.Var-want) > 1e-12 {
			t.Fatalf("after %d: %+v, want mean %v var %v", i+1, tr, mean, want)
		}
	}
}
