package webmesh_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// BenchmarkBrowserLatency measures gossip latency from a Go node to a
// browser tab against a Go peer at the same hop distance, in the same run:
// node a publishes findings; b (a Go node) and the tab (headless Chromium,
// WebSockets) are both connected to a directly. It prints p50/p99 of
// publish -> delivered for b, publish -> delivered to the tab's pubsub
// handler, and publish -> verified in the tab (receipt signature and cert
// checked in JavaScript).
//
//	HYPERSPACE_CHROMIUM=/usr/bin/chromium go test -run '^$' -bench BrowserLatency -benchtime 1x ./internal/webmesh
func BenchmarkBrowserLatency(b *testing.B) {
	chromium(b)
	const findings = 100
	gap := 20 * time.Millisecond
	if g, err := time.ParseDuration(os.Getenv("HYPERSPACE_MESH_BENCH_GAP")); err == nil {
		gap = g // the spacing of findings (default 20ms)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := startNode(b, ctx, true)
	peer := startNode(b, ctx, false, a.Addrs()[0].String())
	tb := openTab(b, a)
	tb.join(a)
	topic := p2p.TopicForDomain(p2ptest.Domain)
	waitFor(b, 20*time.Second, "a's mesh to hold b and the tab", func() bool { return a.Stats().Mesh[topic] >= 2 })
	sub, stop := peer.Subscribe()
	defer stop()
	pub := p2ptest.NewPublisher(a.Node, a.key, "bench")

	// The tab's clock (performance.timeOrigin + now()) against ours: the
	// offset of the best of 20 round trips.
	var offset time.Duration
	best := time.Hour
	for range 20 {
		t0 := time.Now()
		var js float64
		tb.mustEval(`performance.timeOrigin + performance.now()`, &js)
		rtt := time.Since(t0)
		if rtt < best {
			best = rtt
			offset = time.Duration(js*float64(time.Millisecond)) - time.Duration(t0.Add(rtt/2).UnixNano())
		}
	}
	fmt.Printf("tab clock offset %s (round trip %s), subtracted\n", offset.Round(10*time.Microsecond), best.Round(10*time.Microsecond))

	// What joining costs the tab: minting a key that passes the identity
	// puzzle at the default difficulty (2^12 tries expected).
	var tries, ms float64
	const mints = 5
	for range mints {
		var m struct{ Tries, Ms float64 }
		tb.mustEval(fmt.Sprintf(`hsMesh.mint(%d)`, p2p.DefaultPoWDifficulty), &m)
		tries += m.Tries
		ms += m.Ms
	}
	fmt.Printf("tab identity at difficulty %d: %.0f tries, %.0f ms per mint (mean of %d; %.0f µs per try)\n",
		p2p.DefaultPoWDifficulty, tries/mints, ms/mints, mints, 1000*ms/tries)

	for b.Loop() {
		sent := map[string]time.Time{}
		goLat := []time.Duration{}
		for i := 0; i < findings; i++ {
			s, err := pub.Next()
			if err != nil {
				b.Fatal(err)
			}
			sent[s.ID] = time.Now()
			if err := a.Publish(ctx, s, pub.Cert); err != nil {
				b.Fatal(err)
			}
			time.Sleep(gap)
		}
		deadline := time.After(30 * time.Second)
		for len(goLat) < findings {
			select {
			case f := <-sub:
				if t0, ok := sent[f.Receipt.ID]; ok {
					goLat = append(goLat, f.ReceivedAt.Sub(t0))
				}
			case <-deadline:
				b.Fatalf("b got %d of %d findings", len(goLat), findings)
			}
		}
		var rec []received
		waitFor(b, 30*time.Second, "the tab to verify every finding", func() bool {
			rec = tb.received()
			n := 0
			for _, r := range rec {
				if _, ok := sent[r.ID]; ok {
					n++
				}
			}
			return n >= findings
		})
		var tabLat, tabVer []time.Duration
		for _, r := range rec {
			t0, ok := sent[r.ID]
			if !ok {
				continue
			}
			ms := func(v float64) time.Duration {
				return time.Duration(v*float64(time.Millisecond)) - offset - time.Duration(t0.UnixNano())
			}
			tabLat = append(tabLat, ms(r.ReceivedAt))
			tabVer = append(tabVer, ms(r.VerifiedAt))
		}
		if os.Getenv("HYPERSPACE_MESH_BENCH_TRACE") != "" {
			fmt.Println("tab delivered, in publish order:", tabLat)
		}
		fmt.Printf("\ngossip latency, a -> one hop, %d findings %s apart (GOMAXPROCS-independent: three processes on one machine)\n", findings, gap)
		fmt.Printf("| receiver | p50 | p99 | max |\n|---|---|---|---|\n")
		for _, row := range []struct {
			name string
			d    []time.Duration
		}{{"Go peer (TCP), delivered", goLat}, {"browser tab (WebSockets), delivered", tabLat}, {"browser tab, verified in JS", tabVer}} {
			fmt.Printf("| %s | %s | %s | %s |\n", row.name, pct(row.d, 0.50), pct(row.d, 0.99), pct(row.d, 1))
		}
		b.ReportMetric(float64(pct(goLat, 0.5).Microseconds())/1000, "go-p50-ms")
		b.ReportMetric(float64(pct(tabVer, 0.5).Microseconds())/1000, "tab-p50-ms")
		b.ReportMetric(float64(pct(tabVer, 0.99).Microseconds())/1000, "tab-p99-ms")
	}
}

// pct is the q-quantile (nearest rank) of d, rounded to 10µs.
func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))].Round(10 * time.Microsecond)
}
