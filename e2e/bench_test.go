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
