package p2ptest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// BenchmarkPropagation measures publish-to-delivery latency at every node
// of 10, 50 and 100 loopback nodes (default 1s GossipSub heartbeat; the
// mesh is given time to form before publishing; see
// MeasurePropagationOpts). Each iteration publishes 100 findings from
// random nodes, 100ms apart. Run with:
//
//	go test ./p2p/p2ptest -run '^$' -bench Propagation -benchtime 1x
func BenchmarkPropagation(b *testing.B) {
	for _, nodes := range []int{10, 50, 100} {
		b.Run(fmt.Sprint(nodes), func(b *testing.B) {
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				r, err := p2ptest.MeasurePropagationOpts(ctx, nodes, 100, p2ptest.PropagationOptions{Seed: 1})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(r.Max.Microseconds())/1000, "max-ms")
				b.ReportMetric(r.Ratio, "delivery-ratio")
				b.Logf("%d nodes: p50 %v p99 %v max %v delivery %.4f (mesh ready after %v)", nodes, r.P50, r.P99, r.Max, r.Ratio, r.MeshWait)
			}
		})
	}
}

// TestPropagationSmall is a quick functional check of the measurement.
func TestPropagationSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := p2ptest.MeasurePropagationOpts(ctx, 6, 10, p2ptest.PropagationOptions{Heartbeat: 100 * time.Millisecond, Degree: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("6 nodes: p50 %v p99 %v delivery %.3f", r.P50, r.P99, r.Ratio)
	if r.Ratio != 1 {
		t.Fatalf("delivery ratio %.3f, want 1", r.Ratio)
	}
}
