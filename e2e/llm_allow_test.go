package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TestLLMAllowList: campaigns may use only the LLM endpoints the operator
// listed (--llm-allow).
//   - The API refuses an unlisted endpoint (a link-local metadata address,
//     an in-process LLM on loopback) with 422 on llm.baseUrl.
//   - A campaign started directly through Temporal, bypassing the API, whose
//     LLM (llmtest on 127.0.0.1) is not on the workers' list: the endpoint
//     gets no request at all (so never the worker's key), and the receipts
//     and the paper say "builtin (llm fallback: endpoint_not_allowed)".
//   - A listed endpoint is used, with the key; when it answers 500 with a
//     long body, the receipt and the paper carry only the code http_500,
//     none of the provider's text.
func TestLLMAllowList(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	unlisted := llmtest.New()
	defer unlisted.Close()
	listed := llmtest.New()
	defer listed.Close()
	s.acts.LLMAPIKey = "sk-worker-key"
	s.allowLLM(listed.BaseURL())

	// Scripted answers that would be used if anything reached them.
	cfg := map[string]any{}
	for k, v := range tinyML {
		cfg[k] = v
	}
	cfg["learningRate"] = 0.006
	good, _ := json.Marshal(map[string]any{"hypothesis": "should never be used", "config": cfg})
	unlisted.EnqueueContent(string(good), string(good))
	const providerText = "PROVIDER-DETAIL upstream overloaded; request id req_123; org org-secret"
	listed.Enqueue(llmtest.Reply{Status: 500, ErrorMessage: providerText + strings.Repeat(" more provider text", 100)})

	for _, base := range []string{"http://169.254.169.254/latest/v1", unlisted.BaseURL()} {
		code, body := s.do(http.MethodPost, "/api/v1/campaigns", map[string]any{"domain": "ml", "agents": 1, "experiments": 1,
			"llm": map[string]any{"baseUrl": base, "model": "m"}})
		var e api.ErrorBody
		_ = json.Unmarshal(body, &e)
		if code != http.StatusUnprocessableEntity || e.Error.Field != "llm.baseUrl" {
			t.Fatalf("unlisted %s: %d %s", base, code, body)
		}
	}

	// Bypass the API: start the workflow directly.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := ml.New()
	base := d.Baseline().Clone()
	for k, v := range tinyML {
		base[k] = v
	}
	baseline, err := d.Validate(base)
	if err != nil {
		t.Fatal(err)
	}
	in := workflows.CampaignInput{CampaignID: "direct-unlisted", Domain: "ml", Direction: d.Metric().Direction, Agents: 1, ExperimentsPerAgent: 1,
		BaselineSeeds: 3, BudgetSeconds: 4, Baseline: baseline, Seed: 3, LLM: &workflows.LLMConfig{BaseURL: unlisted.BaseURL(), Model: "m"},
		CyclesPerRun: workflows.DefaultCyclesPerRun, HeartbeatSeconds: workflows.DefaultHeartbeatSecs,
		Community: &workflows.Community{PaperEvery: 1, Reviewers: workflows.DefaultReviewers}}
	reqJSON, _ := json.Marshal(in)
	if err := s.st.CreateCampaign(ctx, store.Campaign{ID: in.CampaignID, Domain: "ml", Agents: 1, Experiments: 1, BaselineSeeds: 3,
		BudgetSeconds: 4, Request: reqJSON, WorkflowID: api.WorkflowID(in.CampaignID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: api.WorkflowID(in.CampaignID), TaskQueue: workflows.TaskQueue},
		workflows.CampaignWorkflow, in); err != nil {
		t.Fatal(err)
	}
	// And one through the API with the listed endpoint.
	v := s.startCampaign(map[string]any{"domain": "ml", "agents": 1, "experiments": 1, "seed": 4, "budget": 4, "baseline": tinyML,
		"paperEvery": 1, "llm": map[string]any{"baseUrl": listed.BaseURL(), "model": "m"}})

	check := func(id, want string) {
		t.Helper()
		c := s.waitCampaign(id, 3*time.Minute)
		if c.Status != "completed" {
			t.Fatalf("campaign %s %s: %s", id, c.Status, c.Error)
		}
		n := 0
		for _, r := range s.allExperiments(id) {
			var sr receipt.Signed
			_ = json.Unmarshal(r.Record, &sr)
			if strings.Contains(string(r.Record), "PROVIDER-DETAIL") {
				t.Fatalf("provider text in receipt %s", r.ID)
			}
			if sr.Receipt.Baseline {
				continue
			}
			n++
			if sr.Receipt.Proposer != want {
				t.Fatalf("campaign %s: proposer %q, want %q", id, sr.Receipt.Proposer, want)
			}
		}
		if n != 1 {
			t.Fatalf("campaign %s: %d research receipts", id, n)
		}
		ps, err := s.st.ListPapers(ctx, store.PaperFilter{CampaignID: id})
		if err != nil || len(ps) != 1 {
			t.Fatalf("campaign %s: %d papers %v", id, len(ps), err)
		}
		if strings.Contains(string(ps[0].Record), "PROVIDER-DETAIL") || strings.Contains(string(ps[0].Record), "no scripted reply") {
			t.Fatalf("provider text in paper %s", ps[0].ID)
		}
		var sp struct{ Paper struct{ Writer string } }
		_ = json.Unmarshal(ps[0].Record, &sp)
		if sp.Paper.Writer != want {
			t.Fatalf("campaign %s: paper writer %q, want %q", id, sp.Paper.Writer, want)
		}
	}
	check(in.CampaignID, "builtin (llm fallback: endpoint_not_allowed)")
	check(v.ID, "builtin (llm fallback: http_500)")

	if reqs := unlisted.Requests(); len(reqs) != 0 {
		t.Fatalf("the unlisted endpoint got %d requests (first with Authorization %q)", len(reqs), reqs[0].Authorization)
	}
	reqs := listed.Requests()
	if len(reqs) != 2 { // the hypothesis and the paper's prose
		t.Fatalf("the listed endpoint got %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.Authorization != "Bearer sk-worker-key" {
			t.Fatalf("the listed endpoint got Authorization %q", r.Authorization)
		}
	}
}
