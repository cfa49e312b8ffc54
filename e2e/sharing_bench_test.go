package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// BenchmarkSharing asks whether sharing helps: the same campaign budget
// (4 agents x 8 experiments after 3 baseline seeds, small ML config) with
// agents on 4 P2P nodes that gossip and read each other's findings, and with
// isolated agents that see only their own runs (and the baseline), over
// several campaign seeds.
//
//	go test -run '^$' -bench Sharing -benchtime 1x -timeout 60m ./e2e
func BenchmarkSharing(b *testing.B) {
	seeds := []int64{1, 2, 3}
	type outcome struct {
		best, bestTest float64
		untilBeat      int // research experiments (in time order) until one beat the floor; -1: never
		adopters       int // agents other than the best's author that ran its technique
	}
	results := map[bool][]outcome{}
	for i := 0; i < b.N; i++ {
		s := newStackTB(b)
		s.startNodes(b, 4) // each agent on its own P2P node
		base := map[string]any{}
		for k, v := range tinyML {
			base[k] = v
		}
		base["tokenBudget"] = 60000
		for _, seed := range seeds {
			for _, isolated := range []bool{false, true} {
				v := s.startCampaign(map[string]any{"domain": "ml", "agents": 4, "experiments": 8, "seed": seed,
					"budget": 10, "baseline": base, "isolated": isolated})
				v = s.waitCampaign(v.ID, 20*time.Minute)
				if v.Status != "completed" {
					b.Fatalf("campaign %s: %s", v.Status, v.Error)
				}
				sum := s.summary(v)
				rows := s.allExperiments(v.ID)
				sort.SliceStable(rows, func(i, j int) bool { return rows[i].CreatedAt.Before(rows[j].CreatedAt) })
				var recs []receipt.Receipt
				for _, r := range rows {
					var sr receipt.Signed
					_ = json.Unmarshal(r.Record, &sr)
					recs = append(recs, sr.Receipt)
				}
				o := outcome{best: sum.Best.Metric, bestTest: sum.Best.TestMetric, untilBeat: -1}
				n := 0
				var best receipt.Receipt
				for _, r := range recs {
					if r.Baseline {
						continue
					}
					n++
					if o.untilBeat < 0 && r.Metric.Value < sum.Floor.Mean-sum.Floor.Threshold() {
						o.untilBeat = n
					}
					if best.Agent == "" || r.Metric.Value < best.Metric.Value {
						best = r
					}
				}
				var baseCfg domains.Config
				for _, r := range recs {
					if r.Baseline {
						baseCfg = domains.Config(r.Config)
						break
					}
				}
				o.adopters = adopters(recs, best, baseCfg)
				results[isolated] = append(results[isolated], o)
				b.Logf("seed %d isolated=%v: best %.4f (test %.4f), beat the floor after %d research runs, %d other agents adopted the best's technique",
					seed, isolated, o.best, o.bestTest, o.untilBeat, o.adopters)
			}
		}
	}
	for _, isolated := range []bool{false, true} {
		var best, until, adopt float64
		var beat int
		for _, o := range results[isolated] {
			best += o.best
			adopt += float64(o.adopters)
			if o.untilBeat > 0 {
				until += float64(o.untilBeat)
				beat++
			}
		}
		n := float64(len(results[isolated]))
		name := "shared"
		if isolated {
			name = "isolated"
		}
		b.ReportMetric(best/n, name+"_best_val_loss")
		b.ReportMetric(adopt/n, name+"_adopters")
		if beat > 0 {
			b.ReportMetric(until/float64(beat), name+"_runs_until_beat")
		}
		b.Logf("%s: mean best %.4f, floor beaten in %d of %d campaigns, mean adopters %.2f", name, best/n, beat, len(results[isolated]), adopt/n)
	}
}

// adopters counts agents, other than the best run's own agent, with a run
// whose config carries every parameter value by which the best differs from
// the baseline (its "technique").
func adopters(recs []receipt.Receipt, best receipt.Receipt, base domains.Config) int {
	tech := map[string]string{}
	for k, v := range best.Config {
		if fmt.Sprint(base[k]) != fmt.Sprint(v) {
			tech[k] = fmt.Sprint(v)
		}
	}
	if len(tech) == 0 {
		return 0
	}
	agents := map[string]bool{}
	for _, r := range recs {
		if r.Agent == best.Agent || r.Baseline {
			continue
		}
		match := true
		for k, v := range tech {
			if fmt.Sprint(r.Config[k]) != v {
				match = false
				break
			}
		}
		if match {
			agents[r.Agent] = true
		}
	}
	return len(agents)
}
