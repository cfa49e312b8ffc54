package p2p_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

func nowForTest() time.Time { return time.Now() }

func TestCollector(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Node.Close()
	if _, err := p2ptest.NewPublisher(m.Node, m.Key, "a").Publish(ctx); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(p2p.NewCollector(m.Node)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			if c := mt.GetCounter(); c != nil {
				got[mf.GetName()] += c.GetValue()
			}
		}
	}
	if got["hyperspace_p2p_published_total"] != 1 {
		t.Fatalf("published_total = %v, metrics %v", got["hyperspace_p2p_published_total"], got)
	}
}

// TestCloseStopsGoroutines: Close leaves nothing running (allowing for
// goroutines that exit asynchronously after their context is cancelled).
func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p2ptest.NewCluster(ctx, 3, 2, 1, p2ptest.Options{DHT: true, SyncInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p2ptest.NewPublisher(c[0].Node, c[0].Key, "a").Publish(ctx); err != nil {
		t.Fatal(err)
	}
	_, stop := c[1].Node.Subscribe()
	defer stop()
	time.Sleep(200 * time.Millisecond) // periodic syncs in flight
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c[0].Node.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
