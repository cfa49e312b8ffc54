package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/internal/keystore"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// recorderSite is a site database with a campaign of n registered agents
// and activities that record for it.
func recorderSite(t *testing.T, n int) (*Activities, context.Context) {
	t.Helper()
	st, _ := testenv.Database(t)
	b, _ := testenv.Blob(t)
	ctx := context.Background()
	if err := st.CreateCampaign(ctx, store.Campaign{ID: "c1", Domain: "search", Status: store.StatusRunning, Agents: n, Experiments: 1,
		BaselineSeeds: 3, BudgetSeconds: 1, Request: []byte(`{}`), WorkflowID: "campaign-c1"}); err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(ctx, st, []byte("record-test-site-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{Store: st, Blob: b, Keys: ks, Domains: domains.NewRegistry(search.New()),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i := range n {
		if err := a.RegisterAgent(ctx, workflows.RegisterAgentInput{CampaignID: "c1", Agent: workflows.AgentName(i)}); err != nil {
			t.Fatal(err)
		}
	}
	return a, ctx
}

func recordInput(agent string, run int, metric float64, baseline bool) workflows.RecordInput {
	return workflows.RecordInput{
		CampaignID: "c1", Agent: agent, Domain: "search", RunNumber: run, Seed: int64(run),
		Proposal:    workflows.Proposal{Config: domains.Config{"k1": 1.2 + float64(run)/100, "agent": agent}, Hypothesis: "h", Parents: []string{}, Proposer: "builtin"},
		Outcome:     workflows.Outcome{Metric: metric, TestMetric: metric, Values: map[string]float64{}, StagingPrefix: fmt.Sprintf("staging/c1/%s/%d/", agent, run)},
		Baseline:    baseline,
		Floor:       &workflows.NoiseFloor{Mean: 0.30, SD: 0.01, N: 3, K: 2},
		TimestampMs: 1767225600000 + int64(run),
	}
}

// TestConcurrentRecordersJudgedInTurn: eight agents record at once results
// that all beat the campaign's best (0.30) by far but equal each other.
// Judged one after the other, only the first is a new best (the others
// only tie it); judged against the same old best, all eight would be.
func TestConcurrentRecordersJudgedInTurn(t *testing.T) {
	const agents = 8
	a, ctx := recorderSite(t, agents)
	if _, err := a.RecordResult(ctx, recordInput(workflows.AgentName(0), 1, 0.30, true)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	recs := make([]workflows.Recorded, agents)
	errs := make([]error, agents)
	start := make(chan struct{})
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			recs[i], errs[i] = a.RecordResult(ctx, recordInput(workflows.AgentName(i), 2, 0.50, false))
		}()
	}
	close(start)
	wg.Wait()
	newBests := 0
	for i, r := range recs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.IsNewBest {
			newBests++
		}
	}
	if newBests != 1 {
		t.Fatalf("%d of %d equal results were judged new bests; judged in turn, exactly one is", newBests, agents)
	}
	// The stored receipts say the same.
	rows, _, err := a.Store.ListExperiments(ctx, store.ExperimentFilter{CampaignID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	signedBest := 0
	for _, r := range rows {
		var s receipt.Signed
		if err := json.Unmarshal(r.Record, &s); err != nil {
			t.Fatal(err)
		}
		if s.Receipt.IsNewBest != r.IsNewBest {
			t.Fatalf("row and receipt disagree for %s", r.ID)
		}
		if s.Receipt.IsNewBest {
			signedBest++
		}
	}
	if signedBest != 1 || len(rows) != agents+1 {
		t.Fatalf("%d rows, %d signed as new best", len(rows), signedBest)
	}
}

// TestRetriedRecordSignsOnce: attempts of one run racing (a retry, or the
// same step on the node the agent moved to) store one row and all report
// its receipt, even when the campaign's best changes between them.
func TestRetriedRecordSignsOnce(t *testing.T) {
	a, ctx := recorderSite(t, 2)
	if _, err := a.RecordResult(ctx, recordInput("agent-2", 1, 0.30, true)); err != nil {
		t.Fatal(err)
	}
	const attempts = 6
	var wg sync.WaitGroup
	ids := make([]string, attempts)
	errs := make([]error, attempts)
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == attempts/2 {
				// Another agent moves the best meanwhile.
				_, errs[i] = a.RecordResult(ctx, recordInput("agent-2", 2, 0.9, false))
				return
			}
			r, err := a.RecordResult(ctx, recordInput("agent-1", 5, 0.5, false))
			ids[i], errs[i] = r.ExperimentID, err
		}()
	}
	wg.Wait()
	var first string
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if i == attempts/2 {
			continue
		}
		if first == "" {
			first = id
		}
		if id != first {
			t.Fatalf("attempts signed different receipts: %s and %s", first, id)
		}
	}
	e, err := a.Store.GetRun(ctx, "c1", "agent-1", 5)
	if err != nil || e.ID != first {
		t.Fatalf("stored %s (%v), attempts say %s", e.ID, err, first)
	}
	// A later retry still signs nothing new.
	r, err := a.RecordResult(ctx, recordInput("agent-1", 5, 0.5, false))
	if err != nil || r.ExperimentID != first || r.Inserted {
		t.Fatalf("late retry: %+v %v", r, err)
	}
}
