package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/internal/fraud"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// TestChallengeML: node 0 vouched for an ML receipt whose training it
// corrupted at one step (a bit of one parameter); node 1 re-trains it and
// disagrees; ChallengeWorkflow bisects the 1,000-step trace between them on
// real Temporal and libp2p nodes, node 2 referees the one op, and the
// defender loses: its bond is slashed to the challenger, its work credit
// reversed, and the outcome is signed by the referee and gossiped. Then a
// defender that stops answering loses on the clock.
func TestChallengeML(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue}, 0)
	const corruptStep = 617
	var defender string
	s.acts.Cheat = func(n, _ string) *ml.Corruption {
		if n == defender {
			return &ml.Corruption{Step: corruptStep, Index: 7, Bit: 20}
		}
		return nil
	}
	nodes := s.pulseNodes(t, 3, time.Minute)
	defender = nodes[0].PeerID()
	waitMesh(t, nodes)
	ctx := context.Background()
	var outcomes = make(chan pulse.SignedOutcome, 4)
	leave, err := nodes[1].P2P.JoinPulse(func(m p2p.PulseMessage, _ peer.ID) {
		if m.Type == p2p.PulseTypeOutcome {
			outcomes <- *m.Outcome
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer leave()

	agent := identity.FromSeed([]byte("challenge-agent-0123456789abcdef"))
	cfg := map[string]any{"nLayers": 1.0, "dModel": 16.0, "nHeads": 2.0, "contextLength": 16.0, "dFFMult": 2.0,
		"batchSize": 2.0, "tokenBudget": 32000.0, "warmupSteps": 10.0, "learningRate": 1e-2}
	ncfg, err := ml.New().Validate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := receipt.Sign(receipt.Receipt{Project: "cranfield", RunNumber: 1, Timestamp: time.Now().UnixMilli(), Hypothesis: "a corrupt run",
		Config: ncfg, Domain: "ml", Campaign: "c-challenge", Agent: "agent-0", Seed: 5,
		Result: receipt.Result{ValLoss: 2.5, TotalTokens: 32000, Values: map[string]float64{"steps": 1000, "truncated": 0}},
		Metric: receipt.MetricValue{Name: "val_loss", Direction: "minimize", Value: 2.5, TestValue: 2.6}}, agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].Share(ctx, rc, agent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the receipt on every node", func() bool {
		for _, n := range nodes {
			if _, ok := n.Replica.Get(rc.ID); !ok {
				_ = n.P2P.SyncAll(ctx)
				return false
			}
		}
		return true
	})
	held, _ := nodes[1].Replica.Get(rc.ID)
	// The defender earned a bond-backed work credit for it.
	r0 := int64(1)
	if _, _, err := s.st.AppendLedger(ctx, []store.LedgerEntry{
		{Key: "work/" + rc.ID, PeerID: defender, Round: &r0, Amount: 30, Reason: "work"},
		{Key: "bond/" + rc.ID + "/post", PeerID: defender, Round: &r0, Amount: -20, Reason: "bond"},
		{Key: "bond/" + rc.ID + "/lock", PeerID: defender, Round: &r0, Bucket: "bond", Amount: 20, Reason: "bond"},
	}); err != nil {
		t.Fatal(err)
	}

	in, err := activities.PlanChallenge(ctx, s.st, activities.Dispute{Receipt: held, Challenger: nodes[1].PeerID(), Source: "test"}, 10, 60)
	if err != nil {
		t.Fatal(err)
	}
	if in.Defender != defender || in.Referee != nodes[2].PeerID() {
		t.Fatalf("plan %+v", in)
	}
	res := runChallenge(t, s, in)
	v := res.Verdict
	if res.Winner != nodes[1].PeerID() || res.Loser != defender || v.Stage != fraud.StageReferee || v.Step != corruptStep || v.OpName != "adamw" {
		t.Fatalf("verdict %+v (winner %s)", v, res.Winner)
	}
	if v.StepRounds > 3 { // 1,000 steps at k=10
		t.Fatalf("%d step rounds for 1,000 steps at k=10", v.StepRounds)
	}
	dB, _ := s.st.BalanceOf(ctx, defender)
	cB, _ := s.st.BalanceOf(ctx, nodes[1].PeerID())
	if dB.Points != -20 || dB.Bonded != 0 || cB.Points != 20 || cB.Bonded != 0 {
		t.Fatalf("after the challenge: defender %+v, challenger %+v", dB, cB)
	}
	ch, err := s.st.GetChallenge(ctx, in.ID)
	if err != nil || ch.Status != "done" || ch.Winner != nodes[1].PeerID() || res.RecordID == "" {
		t.Fatalf("challenge row %+v %v", ch, err)
	}
	select {
	case so := <-outcomes:
		if so.ID != res.RecordID || so.Verify(admission.BoundToNode) != nil || so.Outcome.Referee != nodes[2].PeerID() {
			t.Fatalf("gossiped outcome %+v", so)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the outcome was not gossiped")
	}

	// A cheap domain: the referee re-runs the whole evaluation. Node 0
	// claims an NDCG@10 its config does not give.
	scfg, err := search.New().Validate(search.New().Baseline())
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := receipt.Sign(receipt.Receipt{Project: "cranfield", RunNumber: 3, Timestamp: time.Now().UnixMilli(), Hypothesis: "an inflated claim",
		Config: scfg, Domain: "search", Campaign: "c-challenge", Agent: "agent-0", Seed: 1,
		Metric: receipt.MetricValue{Name: "ndcg@10", Direction: "maximize", Value: 0.99, TestValue: 0.99}}, agent)
	if err := nodes[0].Share(ctx, rs, agent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the search receipt", func() bool {
		_, a := nodes[1].Replica.Get(rs.ID)
		_, b := nodes[2].Replica.Get(rs.ID)
		return a && b
	})
	heldS, _ := nodes[1].Replica.Get(rs.ID)
	inS, err := activities.PlanChallenge(ctx, s.st, activities.Dispute{Receipt: heldS, Challenger: nodes[1].PeerID(), Source: "test"}, 0, 120)
	if err != nil {
		t.Fatal(err)
	}
	resS := runChallenge(t, s, inS)
	if resS.Loser != defender || resS.Verdict.Stage != fraud.StageFull {
		t.Fatalf("search challenge %+v", resS)
	}

	// A defender that stops answering loses on the clock.
	rc2, _ := receipt.Sign(receipt.Receipt{Project: "cranfield", RunNumber: 2, Timestamp: time.Now().UnixMilli(), Hypothesis: "honest",
		Config: ncfg, Domain: "ml", Campaign: "c-challenge", Agent: "agent-0", Seed: 6,
		Result: receipt.Result{ValLoss: 2.5, Values: map[string]float64{"steps": 1000, "truncated": 0}},
		Metric: receipt.MetricValue{Name: "val_loss", Direction: "minimize", Value: 2.5, TestValue: 2.6}}, agent)
	if err := nodes[0].Share(ctx, rc2, agent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the second receipt", func() bool { _, ok := nodes[1].Replica.Get(rc2.ID); return ok })
	// Through the API (admin scope): bad input is refused by field, then
	// the challenge starts and the defender goes away.
	s.serve(&api.Server{Store: s.st, Blob: s.blob, Temporal: s.tc, Domains: s.registry, Logger: s.acts.Logger,
		Namespace: s.ts.GetDefaultNamespace(), Node: &api.NetworkNode{P2P: nodes[1].P2P, Replica: nodes[1].Replica}})
	if code, body := s.do(http.MethodPost, "/api/v1/challenges", map[string]any{"receiptId": rc2.ID, "k": 1}); code != 422 || !strings.Contains(string(body), `"field":"k"`) {
		t.Fatalf("k=1: %d %s", code, body)
	}
	if code, body := s.do(http.MethodPost, "/api/v1/challenges", map[string]any{"receiptId": strings.Repeat("0", 64)}); code != 404 {
		t.Fatalf("unknown receipt: %d %s", code, body)
	}
	code, body := s.do(http.MethodPost, "/api/v1/challenges", map[string]any{"receiptId": rc2.ID, "challenger": nodes[1].PeerID(), "moveTimeoutSec": 5})
	var started struct {
		ID         string `json:"id"`
		WorkflowID string `json:"workflowId"`
	}
	if code != http.StatusAccepted || json.Unmarshal(body, &started) != nil {
		t.Fatalf("start challenge: %d %s", code, body)
	}
	nodes[0].Close()
	wctx, cancel := ctxTimeout(2 * time.Minute)
	defer cancel()
	var res2 workflows.ChallengeResult
	if err := s.tc.GetWorkflow(wctx, started.WorkflowID, "").Get(wctx, &res2); err != nil {
		t.Fatal(err)
	}
	if res2.Loser != defender || res2.Verdict.Stage != fraud.StageForfeit {
		t.Fatalf("timeout verdict %+v", res2)
	}
	code, body = s.do(http.MethodGet, "/api/v1/challenges/"+started.ID, nil)
	if code != 200 || !strings.Contains(string(body), `"status":"done"`) {
		t.Fatalf("challenge view: %d %s", code, body)
	}
}

func runChallenge(t *testing.T, s *stack, in workflows.ChallengeInput) workflows.ChallengeResult {
	t.Helper()
	ctx, cancel := ctxTimeout(3 * time.Minute)
	defer cancel()
	run, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ChallengeWorkflowID(in.ID), TaskQueue: workflows.TaskQueue},
		workflows.ChallengeWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.ChallengeResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("challenge: %v", err)
	}
	return res
}
