package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains/skills"
	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TestLLMWrittenSkill: an LLM (llmtest, standing in for a hosted model)
// answers with Go source for a JSON parser; the worker compiles it to
// wasip1, scores it in the sandbox, and the signed receipt carries the code.
// A second reply with code that does not compile fails that experiment
// for good (no retries) without harming the campaign.
func TestLLMWrittenSkill(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	srv := llmtest.New()
	defer srv.Close()
	s.allowLLM(srv.BaseURL()) // the operator lists the endpoint (--llm-allow)
	d := skills.New()
	strict := d.Baseline().Clone()
	for k, v := range map[string]any{"strictNumbers": true, "allowLeadingZeros": false, "allowTrailingCommas": false,
		"allowComments": false, "rejectControlChars": true} {
		strict[k] = v
	}
	src, err := skills.GenerateSource(strict)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(map[string]any{"hypothesis": "A strict RFC 8259 parser rejects what the lenient one accepts",
		"config": d.Baseline(), "code": string(src)})
	bad, _ := json.Marshal(map[string]any{"hypothesis": "Broken code", "config": d.Baseline(), "code": "package main\nfunc main() { undefined() }\n"})
	srv.EnqueueContent(string(good), string(bad))
	v := s.startCampaign(map[string]any{"domain": "skills", "agents": 1, "experiments": 2, "seed": 5, "budget": 120,
		"llm": map[string]any{"baseUrl": srv.BaseURL(), "model": "coder"}})
	v = s.waitCampaign(v.ID, 4*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	sum := s.summary(v)
	if sum.Experiments != 3+1 || sum.Failed != 1 {
		t.Fatalf("want the good candidate recorded and the broken one failed: %+v", sum)
	}
	var base, llmRun *receipt.Receipt
	for _, r := range s.allExperiments(v.ID) {
		var sr receipt.Signed
		_ = json.Unmarshal(r.Record, &sr)
		rc := sr.Receipt
		switch {
		case rc.Baseline:
			base = &rc
		case rc.Proposer == "llm:coder":
			llmRun = &rc
		}
	}
	if base == nil || llmRun == nil || llmRun.Code != string(src) {
		t.Fatalf("receipts: baseline %v, llm run %v", base != nil, llmRun != nil)
	}
	if llmRun.Metric.Value <= base.Metric.Value {
		t.Fatalf("the strict parser (%.4f) should beat the lenient baseline (%.4f)", llmRun.Metric.Value, base.Metric.Value)
	}
}
