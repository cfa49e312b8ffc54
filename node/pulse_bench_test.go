package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// BenchmarkPulseRound measures one pulse round at 10 and 100 nodes (real
// libp2p hosts on 127.0.0.1 in this process, no DHT): every node gossips
// its signed presence on hyperspace/pulse/1, three validators each probe
// every node (liveness: a nonce signed with the node key; storage: serve a
// record; validation: judge a genuine and an altered receipt) and sign a
// verdict, and the verdicts are combined and priced (pulse.Combine,
// pulse.PresencePoints). It reports the round's wall time (from the first
// presence to the last outcome), the presence bytes (message size x
// receivers: every node receives every presence at least once; GossipSub's
// duplicate deliveries are not counted), and the probe and verdict bytes.
//
//	go test -run '^$' -bench PulseRound -benchtime 1x ./node
func BenchmarkPulseRound(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			nodes := pulseMesh(b, n)
			for range b.N {
				pulseRoundOnce(b, nodes)
			}
		})
	}
}

func pulseMesh(b *testing.B, n int) []*node.Node {
	b.Helper()
	base := b.TempDir()
	var out []*node.Node
	var boot []string
	for i := range n {
		nd, err := node.Start(context.Background(), node.Options{
			Dir: filepath.Join(base, fmt.Sprint(i)), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: boot,
			Domains: []string{p2ptest.Domain}, NoPulse: true, PulseInterval: time.Minute,
			P2P: func(c *p2p.Config) { c.DisableDHT = true; c.ConnLow, c.ConnHigh = 200, 400 },
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nd.Close)
		if i < 3 {
			boot = append(boot, addrs(nd)...)
		}
		out = append(out, nd)
	}
	// One record every replica holds (for the storage and validation probes).
	s, err := p2ptest.Receipt(p2ptest.AgentKey("pulse-bench"), p2ptest.Domain, 1, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	for _, nd := range out {
		if _, err := nd.Replica.Add(s); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, nd := range out {
		for len(nd.P2P.Peers()) < 3 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out
}

func pulseRoundOnce(b *testing.B, nodes []*node.Node) {
	ctx := context.Background()
	var heard atomic.Int64
	var leaves []func()
	for _, nd := range nodes {
		leave, err := nd.P2P.JoinPulse(func(m p2p.PulseMessage, _ peer.ID) {
			if m.Type == p2p.PulseTypePresence {
				heard.Add(1)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		leaves = append(leaves, leave)
	}
	defer func() {
		for _, l := range leaves {
			l()
		}
	}()
	time.Sleep(2 * time.Second) // pulse mesh forms
	start := time.Now()
	var presences []pulse.SignedPresence
	var presenceBytes int64
	for _, nd := range nodes {
		sp, err := nd.PublishPresence(ctx)
		if err != nil {
			b.Fatal(err)
		}
		presences = append(presences, sp)
	}
	n := int64(len(nodes))
	want := n * (n - 1)
	for heard.Load() < want && time.Since(start) < 60*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	gossipSec := time.Since(start).Seconds()
	for _, sp := range presences {
		b, _ := p2pSize(sp)
		presenceBytes += int64(b) * (n - 1)
	}
	var mu sync.Mutex
	var verdicts []pulse.Verdict
	var probeBytes int64
	var wg sync.WaitGroup
	for _, v := range nodes[:3] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sv, pb, err := v.Validate(ctx, activities.PulseValidateRequest{Round: presences[0].Presence.Round, Presences: presences})
			if err != nil {
				b.Error(err)
				return
			}
			vb, _ := p2pSize(sv)
			mu.Lock()
			verdicts = append(verdicts, sv.Verdict)
			probeBytes += pb + int64(vb)*(n-1)
			mu.Unlock()
		}()
	}
	wg.Wait()
	outs := pulse.Combine(verdicts, func(string) float64 { return 1 })
	present, points := 0, 0.0
	for _, o := range outs {
		if o.Present {
			present++
			points += pulse.PresencePoints(0, o.Verified)
		}
	}
	wall := time.Since(start)
	b.ReportMetric(wall.Seconds(), "round-s")
	b.ReportMetric(gossipSec, "gossip-s")
	b.ReportMetric(float64(presenceBytes), "presence-B")
	b.ReportMetric(float64(probeBytes), "probe+verdict-B")
	b.ReportMetric(float64(heard.Load())/float64(want), "delivered")
	b.ReportMetric(float64(present), "present")
	if present != len(nodes) {
		b.Errorf("%d of %d nodes judged present", present, len(nodes))
	}
	_ = points
}

func p2pSize(v any) (int, error) {
	b, err := json.Marshal(v)
	return len(b), err
}
