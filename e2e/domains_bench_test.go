package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// BenchmarkDomainCampaigns runs a 20-experiment campaign (2 agents x 10 after
// 3 baseline seeds) per domain and logs the baseline metric (validation and
// test), the best found and its test metric, and evaluations per second.
//
//	go test -run '^$' -bench DomainCampaigns -benchtime 1x -timeout 30m ./e2e
func BenchmarkDomainCampaigns(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s := newStackTB(b)
		if code, body := s.post("/api/v1/causes", "application/yaml", quadraticCause); code != 201 {
			b.Fatalf("register cause: %d %s", code, body)
		}
		for _, dom := range []string{"search", "finance", "skills", "quadratic"} {
			start := time.Now()
			v := s.startCampaign(map[string]any{"domain": dom, "agents": 2, "experiments": 10, "seed": 2026, "budget": 60})
			v = s.waitCampaign(v.ID, 20*time.Minute)
			wall := time.Since(start)
			if v.Status != "completed" {
				b.Fatalf("%s campaign %s: %s", dom, v.Status, v.Error)
			}
			sum := s.summary(v)
			var baseVal, baseTest, evalSec float64
			n := 0
			for _, r := range s.allExperiments(v.ID) {
				var sr receipt.Signed
				_ = json.Unmarshal(r.Record, &sr)
				evalSec += sr.Receipt.Result.DurationSec
				if sr.Receipt.Baseline {
					baseVal, baseTest = sr.Receipt.Metric.Value, sr.Receipt.Metric.TestValue
					n++
				}
			}
			b.Logf("%s: baseline %.4f (test %.4f); best %.4f by %s (test %.4f); %d experiments in %.1f s wall, %.3f s evaluating",
				dom, baseVal, baseTest, sum.Best.Metric, sum.Best.Agent, sum.Best.TestMetric, sum.Experiments, wall.Seconds(), evalSec)
			b.ReportMetric(sum.Best.Metric, dom+"_best")
			b.ReportMetric(sum.Best.TestMetric, dom+"_best_test")
			b.ReportMetric(float64(sum.Experiments)/evalSec, dom+"_evals/s")
		}
	}
}
