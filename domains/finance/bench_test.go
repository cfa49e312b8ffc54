package finance

import (
	"context"
	"testing"
)

// BenchmarkEvaluateBaseline runs the full baseline evaluation (validation
// and test backtests, statistics and artifacts; data parsed once and
// cached) and reports backtests/s. Run with:
//
//	go test -run '^$' -bench EvaluateBaseline ./domains/finance/
func BenchmarkEvaluateBaseline(b *testing.B) {
	opts := evalOpts(b)
	d := New()
	cfg := d.Baseline()
	if _, err := d.Evaluate(context.Background(), cfg, 1, opts); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		if _, err := d.Evaluate(context.Background(), cfg, 1, opts); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "backtests/s")
}
