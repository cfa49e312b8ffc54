package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/workflows"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pulseNodes starts n nodes that publish presences only when told.
func (s *stack) pulseNodes(t *testing.T, n int, iv time.Duration) []*node.Node {
	t.Helper()
	return s.startNodesWith(t, n, func(o *node.Options) { o.PulseInterval, o.NoPulse = iv, true })
}

func (s *stack) runPulse(t *testing.T, id string, in workflows.PulseRoundInput) workflows.PulseRoundResult {
	t.Helper()
	ctx, cancel := ctxTimeout(2 * time.Minute)
	defer cancel()
	run, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, workflows.PulseRoundWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.PulseRoundResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("pulse round %s: %v", id, err)
	}
	return res
}

// TestPulseRound: three nodes of one site publish presences; the round's
// PulseRoundWorkflow asks each to validate the others (liveness probe,
// capability probes, work receipts) and credits the ledger by the formula.
// A presence of a node that is not there, and a forged presence, earn
// nothing; a forged presence is refused by gossip admission; re-running
// the round credits nothing twice; the next round carries the uptime on.
func TestPulseRound(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue}, 0)
	const iv = 20 * time.Second
	nodes := s.pulseNodes(t, 3, iv)
	ctx := context.Background()
	waitMesh(t, nodes)

	// Node 0's agent shares an ML receipt: its work for the round.
	agent := identity.FromSeed(make([]byte, 32))
	rc, err := receipt.Sign(receipt.Receipt{Project: "cranfield", RunNumber: 1, Timestamp: time.Now().UnixMilli(), Hypothesis: "pulse work",
		Config: map[string]any{"dModel": 32.0}, Domain: "ml", Campaign: "c-pulse", Agent: "agent-0", Seed: 3,
		// Its numbers are made up, so it says a wall-clock budget cut it
		// short: validators then check its range only (an untruncated one
		// is re-trained by a sampled few, and this one would fail).
		Result: receipt.Result{ValLoss: 2.1, TotalTokens: 2e6, Values: map[string]float64{"truncated": 1}},
		Metric: receipt.MetricValue{Name: "val_loss", Direction: "minimize", Value: 2.1, TestValue: 2.2}}, agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].Share(ctx, rc, agent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the receipt to reach every replica", func() bool {
		for _, n := range nodes {
			if _, ok := n.Replica.Get(rc.ID); !ok {
				_ = n.P2P.SyncAll(ctx)
				return false
			}
		}
		return true
	})

	// Publish in a round with time left in it.
	for time.Now().UnixMilli()%iv.Milliseconds() > iv.Milliseconds()-8000 {
		time.Sleep(500 * time.Millisecond)
	}
	var round int64
	for _, n := range nodes {
		sp, err := n.PublishPresence(ctx)
		if err != nil {
			t.Fatal(err)
		}
		round = sp.Presence.Round
	}
	// A node that signs a presence and is gone (never answers the
	// liveness probe).
	ghostKey, _, _ := crypto.GenerateEd25519Key(nil)
	ghostID, _ := peer.IDFromPrivateKey(ghostKey)
	gk, _ := admission.NodeIdentity(ghostKey)
	now := time.Now().UnixMilli()
	ghost, err := pulse.SignPresence(pulse.Presence{Node: ghostID.String(), Round: round, IntervalMs: iv.Milliseconds(), Timestamp: now,
		Capabilities: node.DefaultCapabilities}, gk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.InsertPresence(ctx, ghost, "network"); err != nil {
		t.Fatal(err)
	}
	// A forged presence: node 1's presence claiming node 2's identity.
	forged, err := pulse.SignPresence(pulse.Presence{Node: nodes[2].PeerID(), Round: round, IntervalMs: iv.Milliseconds(), Timestamp: now}, nodes[1].NodeKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := forged.Verify(admission.BoundToNode); err == nil {
		t.Fatal("forged presence verifies")
	}
	// Gossip admission refuses it (a node checks its own publications as
	// its peers would).
	if _, err := nodes[1].P2P.PublishPulse(ctx, p2p.PulseMessage{Type: p2p.PulseTypePresence, Presence: &forged}); err == nil {
		t.Fatal("forged presence published")
	}
	// Even stored (say by a buggy relay) it earns nothing: first presence
	// per node and round wins, and validators check every signature.
	forged.Presence.Node = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	forged.ID = "f0" + forged.ID[2:]
	if _, err := s.st.InsertPresence(ctx, forged, "network"); err != nil {
		t.Fatal(err)
	}

	in := workflows.PulseRoundInput{IntervalMs: iv.Milliseconds(), Round: round}
	res := s.runPulse(t, fmt.Sprintf("pulse-test-%d", round), in)
	if res.Presences != 5 || res.Validators != 3 || res.Present != 3 {
		t.Fatalf("round result %+v", res)
	}
	// Expected points: node 0: research (its receipt), storage, validation,
	// orchestration; nodes 1 and 2: storage, validation, orchestration
	// (no research of their own).
	want0 := pulse.PresencePoints(0, []string{"research", "storage", "validation", "orchestration"})
	want12 := pulse.PresencePoints(0, []string{"storage", "validation", "orchestration"})
	work := pulse.WorkPoints(2, 1, 0) // 2 million characters trained, rate 1, U(0)
	bond := math.Min(workflows.DefaultBondPoints, work)
	for i, n := range nodes {
		b, err := s.st.BalanceOf(ctx, n.PeerID())
		if err != nil {
			t.Fatal(err)
		}
		want, bonded := want12, 0.0
		if i == 0 {
			want, bonded = want0+work-bond, bond
		}
		if math.Abs(b.Points-want) > 1e-9 || math.Abs(b.Bonded-bonded) > 1e-9 {
			h, _ := s.st.History(ctx, n.PeerID(), 20, 0)
			hb, _ := json.MarshalIndent(h, "", " ")
			t.Fatalf("node %d: balance %+v, want %.4f points and %.4f bonded\n%s", i, b, want, bonded, hb)
		}
	}
	for _, p := range []string{ghostID.String(), forged.Presence.Node} {
		if b, _ := s.st.BalanceOf(ctx, p); b.Entries != 0 {
			t.Fatalf("%s earned: %+v", p, b)
		}
	}
	// Re-running the round (a retry, or an operator) credits nothing.
	again := s.runPulse(t, fmt.Sprintf("pulse-test-%d-again", round), in)
	if again.Credited != 0 || again.Points != 0 {
		t.Fatalf("re-run credited %+v", again)
	}
	// The API shows balances, histories with evidence, and rounds.
	code, body := s.do(http.MethodGet, "/api/v1/points", nil)
	var bal struct{ Balances []store.Balance }
	if code != 200 || json.Unmarshal(body, &bal) != nil || len(bal.Balances) != 3 {
		t.Fatalf("points: %d %s", code, body)
	}
	code, body = s.do(http.MethodGet, "/api/v1/points/"+nodes[0].PeerID(), nil)
	var hist struct{ History []store.LedgerEntry }
	if code != 200 || json.Unmarshal(body, &hist) != nil || len(hist.History) != 4 {
		t.Fatalf("history: %d %s", code, body)
	}
	code, body = s.do(http.MethodGet, "/api/v1/points/not-a-peer", nil)
	if code != http.StatusBadRequest {
		t.Fatalf("bad peer id: %d %s", code, body)
	}
	code, body = s.do(http.MethodGet, "/api/v1/pulse/rounds", nil)
	var rounds struct{ Rounds []store.PulseRound }
	if code != 200 || json.Unmarshal(body, &rounds) != nil || len(rounds.Rounds) != 1 || rounds.Rounds[0].Credited != res.Credited {
		t.Fatalf("rounds: %d %s", code, body)
	}

	// The next round: nodes 0 and 1 are present again, node 2 is closed;
	// their run of presence goes on (since_round = round).
	for time.Now().UnixMilli()/iv.Milliseconds() == round {
		time.Sleep(250 * time.Millisecond)
	}
	nodes[2].Close()
	for _, n := range nodes[:2] {
		if _, err := n.PublishPresence(ctx); err != nil {
			t.Fatal(err)
		}
	}
	res2 := s.runPulse(t, fmt.Sprintf("pulse-test-%d", round+1), workflows.PulseRoundInput{IntervalMs: iv.Milliseconds(), Round: round + 1})
	if res2.Present != 2 {
		t.Fatalf("second round %+v", res2)
	}
	streak, err := s.st.Streaks(ctx, round+2, []string{nodes[0].PeerID(), nodes[1].PeerID()})
	if err != nil || streak[nodes[0].PeerID()] != round || streak[nodes[1].PeerID()] != round {
		t.Fatalf("uptime streaks %v %v", streak, err)
	}
	h, _ := s.st.History(ctx, nodes[1].PeerID(), 1, 0)
	hours := float64(iv) / float64(time.Hour)
	if want := pulse.PresencePoints(hours, []string{"storage", "validation", "orchestration"}); len(h) != 1 || h[0].Reason != "presence" || math.Abs(h[0].Amount-want) > 1e-9 {
		t.Fatalf("second round: %+v, want presence %.6f (uptime %.4f h)", h, want, hours)
	}
}

// waitMesh waits until every node has every other as a pubsub peer.
func waitMesh(t *testing.T, nodes []*node.Node) {
	t.Helper()
	waitFor(t, 20*time.Second, "the gossip mesh", func() bool {
		for _, n := range nodes {
			if len(n.P2P.Peers()) < len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
