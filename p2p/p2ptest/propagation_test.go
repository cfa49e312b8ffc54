package p2ptest_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/gcpolicy"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// BenchmarkPropagation measures publish-to-delivery latency at every node
// of 10, 50 and 100 loopback nodes (default 1s GossipSub heartbeat; the
// mesh is given time to form before publishing; see
// MeasurePropagationOpts). Each iteration publishes 100 findings
// (HYPERSPACE_PROPAGATION_MESSAGES) from random nodes, 100ms apart. The
// process runs under the hyperspace binary's collector policy (package
// gcpolicy; GOGC=100 in the environment measures Go's default). Run with:
//
//	go test ./p2p/p2ptest -run '^$' -bench Propagation -benchtime 1x
func BenchmarkPropagation(b *testing.B) {
	pol := gcpolicy.Apply(os.Getenv, 0)
	b.Logf("garbage collector: %v", pol)
	msgs := 100
	if v, err := strconv.Atoi(os.Getenv("HYPERSPACE_PROPAGATION_MESSAGES")); err == nil && v > 0 {
		msgs = v
	}
	for _, nodes := range []int{10, 50, 100} {
		b.Run(fmt.Sprint(nodes), func(b *testing.B) {
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+time.Duration(msgs)*200*time.Millisecond)
				r, err := p2ptest.MeasurePropagationOpts(ctx, nodes, msgs, p2ptest.PropagationOptions{Seed: 1})
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
