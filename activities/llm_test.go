package activities

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// Hypothesize checks the worker's allow-list before it sends anything: an
// unlisted endpoint gets no request (so never the key), a listed one gets
// the key, and a provider error leaves only a short code in the proposer
// name that goes into the signed receipt.
func TestHypothesizeLLMAllowList(t *testing.T) {
	st, _ := testenv.Database(t)
	srv := llmtest.New()
	defer srv.Close()
	a := &Activities{Store: st, Domains: domains.NewRegistry(ml.New()), LLMAPIKey: "sk-worker",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	in := workflows.HypothesizeInput{CampaignID: "c1", Domain: "ml", Agent: "agent-1", RunNumber: 1, Seed: 1,
		LLM: &workflows.LLMConfig{BaseURL: srv.BaseURL(), Model: "m"}}
	ctx := context.Background()

	for name, allow := range map[string]*llm.AllowList{
		"no list":     nil,
		"empty list":  llm.MustAllowList(""),
		"other entry": llm.MustAllowList("http://127.0.0.1:1/v1," + strings.TrimSuffix(srv.BaseURL(), "/v1") + "/v2"),
	} {
		a.LLMAllow = allow
		p, err := a.Hypothesize(ctx, in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Proposer != "builtin (llm fallback: endpoint_not_allowed)" {
			t.Fatalf("%s: proposer %q", name, p.Proposer)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("the unlisted endpoint got %d requests", n)
	}

	a.LLMAllow = llm.MustAllowList(srv.BaseURL())
	srv.Enqueue(llmtest.Reply{Status: 500, ErrorMessage: "upstream exploded: PROVIDER-DETAIL " + strings.Repeat("x", 2000)})
	p, err := a.Hypothesize(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if p.Proposer != "builtin (llm fallback: http_500)" {
		t.Fatalf("proposer %q", p.Proposer)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Authorization != "Bearer sk-worker" {
		t.Fatalf("listed endpoint: %d requests %+v", len(reqs), reqs)
	}
}
