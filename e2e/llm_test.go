package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TestCampaignWithLLM runs a campaign whose hypotheses come from an
// OpenAI-compatible endpoint (llmtest: an in-process stand-in for a hosted
// LLM, which cannot be reached here). The first reply is a valid proposal and
// is used; the second is out of range and falls back to the built-in
// proposer, and the receipts say which is which. The API key reaches the
// endpoint from the worker's configuration, never from workflow history.
func TestCampaignWithLLM(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	srv := llmtest.New()
	defer srv.Close()
	s.allowLLM(srv.BaseURL()) // the operator lists the endpoint (--llm-allow)
	srv.RequireKey("sk-test")
	s.acts.LLMAPIKey = "sk-test"
	cfg := map[string]any{}
	for k, v := range tinyML {
		cfg[k] = v
	}
	cfg["learningRate"] = 0.006
	good, _ := json.Marshal(map[string]any{"hypothesis": "A higher learning rate converges faster on a short budget", "config": cfg})
	bad, _ := json.Marshal(map[string]any{"hypothesis": "Huge learning rate", "config": map[string]any{"learningRate": 7}})
	srv.EnqueueContent(string(good), string(bad))

	v := s.startCampaign(map[string]any{"domain": "ml", "agents": 1, "experiments": 2, "seed": 3, "budget": 4, "baseline": tinyML,
		"llm": map[string]any{"baseUrl": srv.BaseURL(), "model": "test-model"}})
	v = s.waitCampaign(v.ID, 3*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	var proposers []string
	for _, r := range s.allExperiments(v.ID) {
		var sr receipt.Signed
		_ = json.Unmarshal(r.Record, &sr)
		if !sr.Receipt.Baseline {
			proposers = append(proposers, sr.Receipt.Proposer)
			if sr.Receipt.Proposer == "llm:test-model" && sr.Receipt.Config["learningRate"] != 0.006 {
				t.Fatalf("LLM config not used: %v", sr.Receipt.Config)
			}
		}
	}
	if len(proposers) != 2 || proposers[0] != "llm:test-model" || proposers[1] != "builtin (llm fallback: invalid_config)" {
		t.Fatalf("proposers = %q", proposers)
	}
	if n := len(srv.Requests()); n != 2 {
		t.Fatalf("LLM got %d requests, want 2", n)
	}
	b, _ := json.Marshal(history(t, s.tc, v.WorkflowID[len("campaign-"):]+"/"+workflows.AgentName(0)))
	if strings.Contains(string(b), "sk-test") {
		t.Fatal("the API key leaked into workflow history")
	}
}
