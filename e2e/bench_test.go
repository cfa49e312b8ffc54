package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// BenchmarkOrchestration runs a campaign of 20 very short ML experiments
// (19 baseline seeds + 1 agent x 1 research experiment, so every run has a
// known small cost) through REST, Temporal, PostgreSQL and S3,
// then evaluates the same 20 (config, seed) pairs directly in this process,
// and reports the per-experiment overhead of the durable path.
//
//	go test -run '^$' -bench Orchestration -benchtime 1x ./e2e
func BenchmarkOrchestration(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchOrchestrationOnce(b)
	}
}

func benchOrchestrationOnce(b *testing.B) {
	s := newStackTB(b)
	start := time.Now()
	v := s.startCampaign(map[string]any{"domain": "ml", "agents": 1, "experiments": 1, "baselineSeeds": 19, "seed": 5, "budget": 5, "baseline": tinyML})
	v = s.waitCampaign(v.ID, 15*time.Minute)
	temporalWall := time.Since(start)
	if v.Status != "completed" {
		b.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	rows := s.allExperiments(v.ID)
	if len(rows) != 20 {
		b.Fatalf("%d rows", len(rows))
	}
	d, _ := s.registry.Get("ml")
	start = time.Now()
	var evalSum float64
	for _, r := range rows {
		var sr receipt.Signed
		_ = json.Unmarshal(r.Record, &sr)
		res, err := d.Evaluate(context.Background(), domains.Config(sr.Receipt.Config), r.Seed, domains.EvalOptions{DataDir: s.dataDir, BudgetSeconds: 5})
		if err != nil {
			b.Fatal(err)
		}
		if res.Values["truncated"] == 0 && res.Metric != r.Metric {
			b.Fatalf("direct evaluation of %s gave %v, the campaign recorded %v", r.ID, res.Metric, r.Metric)
		}
		evalSum += res.Values["durationSec"]
	}
	directWall := time.Since(start)
	overhead := (temporalWall - directWall).Seconds() / float64(len(rows))
	b.ReportMetric(temporalWall.Seconds(), "temporal_s")
	b.ReportMetric(directWall.Seconds(), "direct_s")
	b.ReportMetric(temporalWall.Seconds()/directWall.Seconds(), "ratio")
	b.ReportMetric(overhead, "overhead_s/exp")
	b.ReportMetric(100*overhead/(30+overhead), "overhead_%_at_30s")
}

// BenchmarkOrchestrationDevPath is BenchmarkOrchestration on the default
// `hyperspace dev` path: two P2P nodes in the process (agents' steps on
// their queues, every receipt shared over gossip and the CRDT), a paper
// every 5 experiments peer-reviewed on the other node (which re-runs the
// key experiment), and the git archive. 20 experiments (10 baseline seeds
// + 1 agent x 10), against the same 20 evaluations called directly, and
// against the plain path (no nodes, no community) in the same run.
//
//	go test -run '^$' -bench OrchestrationDevPath -benchtime 1x ./e2e
func BenchmarkOrchestrationDevPath(b *testing.B) {
	for i := 0; i < b.N; i++ {
		plain := orchestrationRun(b, false)
		dev := orchestrationRun(b, true)
		b.ReportMetric(plain.wall.Seconds(), "plain_s")
		b.ReportMetric(dev.wall.Seconds(), "dev_s")
		b.ReportMetric(dev.direct.Seconds(), "direct_s")
		b.ReportMetric(plain.wall.Seconds()/plain.direct.Seconds(), "plain_ratio")
		b.ReportMetric(dev.wall.Seconds()/dev.direct.Seconds(), "dev_ratio")
		b.ReportMetric(dev.overhead, "dev_overhead_s/exp")
		b.ReportMetric(100*dev.overhead/(30+dev.overhead), "dev_overhead_%_at_30s")
		b.ReportMetric(dev.reviews.Seconds(), "reviews_done_after_s")
		b.Logf("plain: %.1f s for 20 experiments (direct %.1f s, overhead %.3f s/exp); dev path: %.1f s (direct %.1f s, overhead %.3f s/exp, %d papers, reviews done %.1f s after the campaign)",
			plain.wall.Seconds(), plain.direct.Seconds(), plain.overhead, dev.wall.Seconds(), dev.direct.Seconds(), dev.overhead, dev.papers, dev.reviews.Seconds())
	}
}

type orchestrationResult struct {
	wall, direct, reviews time.Duration
	overhead              float64
	papers                int
}

func orchestrationRun(b *testing.B, devPath bool) orchestrationResult {
	b.Helper()
	var s *stack
	req := map[string]any{"domain": "ml", "agents": 1, "experiments": 10, "baselineSeeds": 10, "seed": 5, "budget": 5, "baseline": tinyML, "paperEvery": 0}
	var cs *communityStack
	if devPath {
		cs = newCommunityStack(b)
		cs.acts.Archive.Remote, cs.acts.Archive.GitHub = "", nil // dev archives locally
		s = cs.stack
		s.startNodes(b, 2)
		req["paperEvery"] = 5
		req["reviewers"] = 1
	} else {
		s = newStackTB(b)
	}
	start := time.Now()
	v := s.startCampaign(req)
	v = s.waitCampaign(v.ID, 15*time.Minute)
	res := orchestrationResult{wall: time.Since(start)}
	if v.Status != "completed" {
		b.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	if devPath {
		ps := cs.waitReviewed(v.ID, 2, 10*time.Minute)
		res.papers = len(ps)
		res.reviews = time.Since(start) - res.wall
	}
	rows := s.allExperiments(v.ID)
	if len(rows) != 20 {
		b.Fatalf("%d rows", len(rows))
	}
	d, _ := s.registry.Get("ml")
	t0 := time.Now()
	for _, r := range rows {
		var sr receipt.Signed
		_ = json.Unmarshal(r.Record, &sr)
		if _, err := d.Evaluate(context.Background(), domains.Config(sr.Receipt.Config), r.Seed, domains.EvalOptions{DataDir: s.dataDir, BudgetSeconds: 5}); err != nil {
			b.Fatal(err)
		}
	}
	res.direct = time.Since(t0)
	res.overhead = (res.wall - res.direct).Seconds() / float64(len(rows))
	return res
}
