package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/finance"
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
	return recorderSiteFor(t, n, search.New())
}

// recorderSiteFor is recorderSite for a campaign in domain d.
func recorderSiteFor(t *testing.T, n int, d domains.Domain) (*Activities, context.Context) {
	t.Helper()
	st, _ := testenv.Database(t)
	b, _ := testenv.Blob(t)
	ctx := context.Background()
	if err := st.CreateCampaign(ctx, store.Campaign{ID: "c1", Domain: d.Name(), Status: store.StatusRunning, Agents: n, Experiments: 1,
		BaselineSeeds: 3, BudgetSeconds: 1, Request: []byte(`{}`), WorkflowID: "campaign-c1"}); err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(ctx, st, []byte("record-test-site-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{Store: st, Blob: b, Keys: ks, Domains: domains.NewRegistry(d),
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

// judgedInput is recordInput under noise.Judge (40 planned trials, 2
// confirmations), with per-query scores: base + gain on 45 queries, and a
// per-query spread of sd around the gain.
func judgedInput(agent string, run int, base []float64, gain, sd float64, baseline bool, confirm *workflows.Confirm) workflows.RecordInput {
	in := recordInput(agent, run, 0, baseline)
	in.Floor = &workflows.NoiseFloor{Mean: 0.30, SD: 0, N: 3, K: 2, Alpha: 0.05, Trials: 40, Confirmations: 2}
	v := make([]float64, len(base))
	var m float64
	for i, b := range base {
		// A fixed, zero-mean pattern of per-query differences.
		v[i] = b + gain + sd*float64((i*7)%5-2)/1.414
		m += v[i]
	}
	in.Outcome.Metric = m / float64(len(v))
	in.Outcome.TestMetric = in.Outcome.Metric
	in.Outcome.Items = &domains.Items{Agg: domains.ItemsMean, Key: "q45", Values: v}
	in.Confirm = confirm
	return in
}

// TestJudgedCandidateConfirmed: under noise.Judge a passing result is a
// candidate (not yet a new best); its confirmations are judged in turn and
// the last one is signed as the new best; a tiny deterministic gain is not
// a candidate; an unconfirmed candidate does not raise the bar.
func TestJudgedCandidateConfirmed(t *testing.T) {
	a, ctx := recorderSite(t, 2)
	base := make([]float64, 45)
	for i := range base {
		base[i] = 0.1 + 0.6*float64((i*13)%45)/45
	}
	ag := workflows.AgentName(0)
	if _, err := a.RecordResult(ctx, judgedInput(ag, 1, base, 0, 0, true, nil)); err != nil {
		t.Fatal(err)
	}
	// +0.004 NDCG@10 with a per-query spread of 0.05: not a candidate.
	small, err := a.RecordResult(ctx, judgedInput(ag, 2, base, 0.004, 0.05, false, nil))
	if err != nil || small.Candidate || small.IsNewBest || small.BeatsNoise {
		t.Fatalf("small gain: %+v %v", small, err)
	}
	cand, err := a.RecordResult(ctx, judgedInput(ag, 3, base, 0.08, 0.05, false, nil))
	if err != nil || !cand.Candidate || cand.IsNewBest || !cand.BeatsNoise {
		t.Fatalf("candidate: %+v %v", cand, err)
	}
	c1, err := a.RecordResult(ctx, judgedInput(ag, 4, base, 0.08, 0.05, false, &workflows.Confirm{Of: cand.ExperimentID, Index: 1, Total: 2}))
	if err != nil || c1.Candidate || c1.IsNewBest || !c1.BeatsNoise {
		t.Fatalf("confirmation 1: %+v %v", c1, err)
	}
	c2, err := a.RecordResult(ctx, judgedInput(ag, 5, base, 0.08, 0.05, false, &workflows.Confirm{Of: cand.ExperimentID, Index: 2, Total: 2}))
	if err != nil || !c2.IsNewBest {
		t.Fatalf("confirmation 2: %+v %v", c2, err)
	}
	e, err := a.Store.GetRun(ctx, "c1", ag, 5)
	if err != nil {
		t.Fatal(err)
	}
	var s receipt.Signed
	if err := json.Unmarshal(e.Record, &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	r := s.Receipt
	if !r.IsNewBest || r.ConfirmationOf != cand.ExperimentID || r.Judgement == nil || r.Judgement.Method != "paired-t" ||
		r.Judgement.Items != 45 || r.Judgement.Trials != 40 || !r.Judgement.Pass || r.Result.Items == nil {
		t.Fatalf("confirming receipt: %+v judgement %+v", r, r.Judgement)
	}
	ce, _ := a.Store.GetRun(ctx, "c1", ag, 3)
	var cs receipt.Signed
	_ = json.Unmarshal(ce.Record, &cs)
	if !cs.Receipt.Candidate || cs.Receipt.IsNewBest || ce.IsNewBest {
		t.Fatalf("candidate receipt: %+v", cs.Receipt)
	}
	// A lucky unconfirmed candidate far ahead (+0.3) ...
	lucky, err := a.RecordResult(ctx, judgedInput(ag, 6, base, 0.3, 0.05, false, nil))
	if err != nil || !lucky.Candidate {
		t.Fatalf("lucky: %+v %v", lucky, err)
	}
	// ... does not raise the bar: +0.16 over the baseline is +0.08 over
	// the incumbent (the confirmed best), a candidate again.
	next, err := a.RecordResult(ctx, judgedInput(workflows.AgentName(1), 1, base, 0.16, 0.05, false, nil))
	if err != nil || !next.Candidate {
		t.Fatalf("judged against the unconfirmed run instead of the incumbent: %+v %v", next, err)
	}
}

// TestFinanceReceiptDeflated: a finance receipt carries the deflated Sharpe
// ratio given the configs the campaign has tried (this one included), and
// the same Sharpe is deflated more as the campaign tries more configs.
func TestFinanceReceiptDeflated(t *testing.T) {
	a, ctx := recorderSiteFor(t, 1, finance.New())
	ag := workflows.AgentName(0)
	sharpes := []float64{0.55, 0.62, 0.48, 0.9, 0.71}
	var prev *receipt.Selection
	var tried store.Trials
	for i, sr := range sharpes {
		in := recordInput(ag, i+1, sr, i == 0)
		in.Domain = "finance"
		in.Outcome.Values = map[string]float64{"valSharpe": sr, "valDays": 1200, "valSkew": -0.4, "valKurtosis": 7}
		if _, err := a.RecordResult(ctx, in); err != nil {
			t.Fatal(err)
		}
		tried = tried.With(sr)
		e, err := a.Store.GetRun(ctx, "c1", ag, i+1)
		if err != nil {
			t.Fatal(err)
		}
		var s receipt.Signed
		if err := json.Unmarshal(e.Record, &s); err != nil {
			t.Fatal(err)
		}
		sel := s.Receipt.Selection
		if sel == nil || sel.Method != "deflated-sharpe" || sel.Trials != i+1 || math.Abs(sel.TrialVar-tried.Var) > 1e-12 {
			t.Fatalf("run %d: selection %+v, want %d trials var %v", i+1, sel, i+1, tried.Var)
		}
		if want := finance.DeflatedSharpe(sr, 1200, -0.4, 7, i+1, tried.Var); sel.Deflated != want {
			t.Fatalf("run %d: deflated %v, want %v", i+1, sel.Deflated, want)
		}
		if prev != nil && !(sel.ExpectedMax > prev.ExpectedMax) && tried.Var > 0 {
			t.Fatalf("run %d: expected max %v did not grow from %v", i+1, sel.ExpectedMax, prev.ExpectedMax)
		}
		prev = sel
	}
	// A second run of the last config (another seed, or a confirmation) is
	// not another trial: it stands for its config in place of the first.
	in := recordInput(ag, len(sharpes)+1, 0.8, false)
	in.Domain = "finance"
	in.Proposal.Config = recordInput(ag, len(sharpes), 0, false).Proposal.Config
	in.Outcome.Values = map[string]float64{"valSharpe": 0.8, "valDays": 1200, "valSkew": -0.4, "valKurtosis": 7}
	if _, err := a.RecordResult(ctx, in); err != nil {
		t.Fatal(err)
	}
	var others store.Trials
	for _, sr := range sharpes[:len(sharpes)-1] {
		others = others.With(sr)
	}
	e, _ := a.Store.GetRun(ctx, "c1", ag, len(sharpes)+1)
	var rs receipt.Signed
	_ = json.Unmarshal(e.Record, &rs)
	if sel := rs.Receipt.Selection; sel == nil || sel.Trials != len(sharpes) || math.Abs(sel.TrialVar-others.With(0.8).Var) > 1e-12 {
		t.Fatalf("repeated config: selection %+v, want %d trials var %v", sel, len(sharpes), others.With(0.8).Var)
	}
	// A search receipt has no selection statistic.
	b, bctx := recorderSite(t, 1)
	if _, err := b.RecordResult(bctx, recordInput(ag, 1, 0.3, true)); err != nil {
		t.Fatal(err)
	}
	se, _ := b.Store.GetRun(bctx, "c1", ag, 1)
	var s receipt.Signed
	_ = json.Unmarshal(se.Record, &s)
	if s.Receipt.Selection != nil {
		t.Fatalf("search receipt has selection %+v", s.Receipt.Selection)
	}
}
