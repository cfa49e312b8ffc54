package ml

import (
	"context"
	"testing"
	"time"
)

func BenchmarkZZProf(b *testing.B) {
	dir := testDataDir(b)
	t, _, err := TrainerThroughput(context.Background(), dir, New().Baseline(), 1, 4*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(t, "tokens/s")
}
