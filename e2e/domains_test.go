package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TestDomainCampaigns runs a small campaign of every non-ML domain through
// REST and Temporal and checks the receipts carry both splits' metrics and
// that fixed evaluation assumptions were never changed by agents.
func TestDomainCampaigns(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	for _, dom := range []string{"search", "finance", "skills"} {
		t.Run(dom, func(t *testing.T) {
			v := s.startCampaign(map[string]any{"domain": dom, "agents": 2, "experiments": 3, "seed": 4, "budget": 30})
			v = s.waitCampaign(v.ID, 3*time.Minute)
			if v.Status != "completed" {
				t.Fatalf("campaign %s: %s", v.Status, v.Error)
			}
			sum := s.summary(v)
			rows := s.allExperiments(v.ID)
			if len(rows) != 3+2*3 || sum.Experiments != len(rows) {
				t.Fatalf("%d rows, summary %+v", len(rows), sum)
			}
			d, _ := s.registry.Get(dom)
			var base map[string]any
			for _, r := range rows {
				var sr receipt.Signed
				_ = json.Unmarshal(r.Record, &sr)
				if sr.Receipt.Baseline {
					base = sr.Receipt.Config
				}
			}
			for _, r := range rows {
				var sr receipt.Signed
				_ = json.Unmarshal(r.Record, &sr)
				if r.TestMetric == nil || sr.Receipt.Metric.Name != d.Metric().Name {
					t.Fatalf("receipt %s lacks metrics: %+v", r.ID, sr.Receipt.Metric)
				}
				for _, p := range d.Space() {
					if p.Fixed && sr.Receipt.Config[p.Name] != base[p.Name] {
						t.Fatalf("fixed %s changed: %v vs baseline %v", p.Name, sr.Receipt.Config[p.Name], base[p.Name])
					}
				}
			}
		})
	}
}
