package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TestJudgedCampaign: a finance campaign with the default judgement (alpha
// 0.05 over agents x experiments, 2 confirmations) on the real stack: every
// research receipt records the paired interval it was judged by, every
// candidate's confirmations are rows of their own naming it, and only a
// confirmation that completes its set is signed as a new best.
func TestJudgedCampaign(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	v := s.startCampaign(map[string]any{"domain": "finance", "agents": 2, "experiments": 6, "seed": 9, "budget": 30, "confirmations": 2})
	v = s.waitCampaign(v.ID, 4*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	sum := s.summary(v)
	rows := s.allExperiments(v.ID)
	if sum.Floor.Trials != 12 || sum.Floor.Confirmations != 2 || len(rows) != sum.Experiments+sum.ConfirmationRuns {
		t.Fatalf("%d rows, summary %+v", len(rows), sum)
	}
	byID := map[string]receipt.Receipt{}
	for _, r := range rows {
		var sr receipt.Signed
		if err := json.Unmarshal(r.Record, &sr); err != nil {
			t.Fatal(err)
		}
		if err := sr.Verify(); err != nil {
			t.Fatal(err)
		}
		byID[sr.ID] = sr.Receipt
	}
	candidates, confirmations := 0, 0
	configs := map[string]bool{}
	for _, rc := range byID {
		configs[domains.Config(rc.Config).Key()] = true
	}
	for id, rc := range byID {
		if rc.Result.Items == nil || rc.Result.Items.Agg != "sharpe" {
			t.Fatalf("%s: no per-month items", id)
		}
		// The deflated Sharpe ratio given the configs tried by then: at
		// least this one, at most every config of the campaign.
		if sel := rc.Selection; sel == nil || sel.Method != "deflated-sharpe" || sel.Trials < 1 || sel.Trials > len(configs) ||
			!(sel.Deflated >= 0 && sel.Deflated <= 1) {
			t.Fatalf("%s: selection %+v (%d configs in the campaign)", id, rc.Selection, len(configs))
		}
		if rc.Baseline {
			continue
		}
		j := rc.Judgement
		if j == nil || (j.Method != "paired-bootstrap" && j.Method != "unpaired-bootstrap") || j.Trials != 12 || j.Items < 12 {
			t.Fatalf("%s: judgement %+v", id, j)
		}
		if rc.Candidate {
			candidates++
			if rc.IsNewBest || !j.Pass {
				t.Fatalf("%s: candidate %+v", id, rc)
			}
		}
		if rc.ConfirmationOf != "" {
			confirmations++
			c, ok := byID[rc.ConfirmationOf]
			if !ok || !c.Candidate || len(rc.Parents) == 0 || rc.Parents[0] != rc.ConfirmationOf {
				t.Fatalf("%s: confirms %s (found %v, candidate %v), parents %v", id, rc.ConfirmationOf, ok, c.Candidate, rc.Parents)
			}
			// A deterministic backtest: the fresh seed reproduces it.
			if rc.Metric.Value != c.Metric.Value {
				t.Fatalf("confirmation %s of a deterministic backtest differs: %v vs %v", id, rc.Metric.Value, c.Metric.Value)
			}
		} else if rc.IsNewBest {
			t.Fatalf("%s: a new best that is not a confirmation", id)
		}
	}
	if confirmations != sum.ConfirmationRuns {
		t.Fatalf("%d confirmation receipts, summary says %d", confirmations, sum.ConfirmationRuns)
	}
	t.Logf("%d research runs, %d candidates, %d confirmation runs, %d new bests", sum.Experiments-3, candidates, confirmations, sum.NewBests)
}
