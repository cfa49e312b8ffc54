package crdt

import (
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

func TestRankings(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	type row struct {
		key    int
		agent  string
		camp   string
		run    int
		metric float64
		act    string
	}
	rows := []row{
		{1, "a", "c1", 1, 2.0, "gelu"},
		{1, "a", "c1", 2, 1.5, "relu"}, // a's best when minimising
		{1, "a", "c1", 3, 3.0, "gelu"}, // a's best when maximising
		{1, "b", "c1", 4, 1.8, "silu"},
		{1, "b", "c1", 5, 2.9, "silu"},
		{1, "a", "c2", 6, 1.2, "tanh"}, // same agent name, other campaign: its own row
		{2, "a", "c1", 1, 1.9, "gelu"}, // same agent name, other peer: its own row
		{2, "a", "c1", 2, 1.9, "relu"}, // tie with run 1: smaller id wins
	}
	keys := map[int]int{1: 1, 2: 2}
	var recs []receipt.Signed
	for _, r := range rows {
		recs = append(recs, sign(t, spec{key: testKey(keys[r.key]), agent: r.agent, campaign: r.camp, run: r.run, metric: r.metric, act: r.act}))
	}
	// A record in another domain never shows up.
	recs = append(recs, sign(t, spec{key: k1, domain: "search", run: 7, metric: 0.1}))
	rep := replicaOf(t, recs)
	tieWinner := min(recs[6].ID, recs[7].ID)

	best := rep.BestPerAgent("ml", domains.Minimize)
	wantMin := []struct {
		peer, camp, agent string
		metric            float64
	}{
		{k1.ID(), "c2", "a", 1.2},
		{k1.ID(), "c1", "a", 1.5},
		{k1.ID(), "c1", "b", 1.8},
		{k2.ID(), "c1", "a", 1.9},
	}
	if len(best) != len(wantMin) {
		t.Fatalf("BestPerAgent(min) has %d rows: %+v", len(best), best)
	}
	for i, w := range wantMin {
		e := best[i]
		if e.PeerID != w.peer || e.Campaign != w.camp || e.Agent != w.agent || e.Metric != w.metric {
			t.Errorf("min row %d = %s/%s/%s %v; want %s/%s/%s %v", i, e.PeerID, e.Campaign, e.Agent, e.Metric, w.peer, w.camp, w.agent, w.metric)
		}
	}
	if best[3].ID != tieWinner {
		t.Error("tie not broken by the smaller id")
	}
	if best[1].TestMetric != 1.51 || best[1].Config["activation"] != "relu" || best[1].Hypothesis == "" || best[1].RunNumber != 2 {
		t.Errorf("entry fields: %+v", best[1])
	}
	best[1].Config["activation"] = "changed" // entries own their config
	if rep.BestPerAgent("ml", domains.Minimize)[1].Config["activation"] != "relu" {
		t.Error("entry config aliases the stored record")
	}

	// An empty direction uses the receipts' (minimize here).
	if got := rep.BestPerAgent("ml", ""); got[0].Metric != 1.2 {
		t.Errorf("default direction: first row %v", got[0].Metric)
	}

	maxBest := rep.BestPerAgent("ml", domains.Maximize)
	wantMax := []float64{3.0, 2.9, 1.9, 1.2}
	for i, w := range wantMax {
		if maxBest[i].Metric != w {
			t.Errorf("max row %d = %v; want %v", i, maxBest[i].Metric, w)
		}
	}

	if top := rep.Top("ml", domains.Minimize, 2); len(top) != 2 || top[0].Metric != 1.2 || top[1].Metric != 1.5 {
		t.Errorf("Top(2) = %+v", top)
	}
	if top := rep.Top("ml", domains.Minimize, 0); len(top) != 4 {
		t.Errorf("Top(0) has %d rows", len(top))
	}
	if top := rep.Top("absent", domains.Minimize, 3); len(top) != 0 {
		t.Errorf("Top(absent) = %+v", top)
	}

	byMin := rep.ByTechnique("ml", domains.Minimize, "activation")
	for act, want := range map[string]float64{"gelu": 1.9, "relu": 1.5, "silu": 1.8, "tanh": 1.2} {
		if byMin[act].Metric != want {
			t.Errorf("ByTechnique(min)[%s] = %v; want %v", act, byMin[act].Metric, want)
		}
	}
	if byMin["gelu"].ID != recs[6].ID {
		t.Error("unexpected gelu winner")
	}
	if len(byMin) != 4 {
		t.Errorf("ByTechnique has %d keys", len(byMin))
	}
	byMax := rep.ByTechnique("ml", domains.Maximize, "activation")
	for act, want := range map[string]float64{"gelu": 3.0, "relu": 1.9, "silu": 2.9, "tanh": 1.2} {
		if byMax[act].Metric != want {
			t.Errorf("ByTechnique(max)[%s] = %v; want %v", act, byMax[act].Metric, want)
		}
	}
	// Numeric and boolean parameters are keyed by their text.
	if byTied := rep.ByTechnique("ml", domains.Minimize, "tied"); len(byTied) != 2 || byTied["true"].ID == "" {
		t.Errorf("ByTechnique(tied) = %v", byTied)
	}
	if byLR := rep.ByTechnique("ml", domains.Minimize, "learningRate"); byLR["0.006"].ID == "" {
		t.Errorf("ByTechnique(learningRate) keys: %v", byLR)
	}
	if got := rep.ByTechnique("ml", domains.Minimize, "absent"); len(got) != 0 {
		t.Errorf("ByTechnique(absent) = %v", got)
	}
}

func TestRankingsMaximizeFromReceipts(t *testing.T) {
	var recs []receipt.Signed
	for run, m := range []float64{0.3, 0.9, 0.5} {
		recs = append(recs, sign(t, spec{key: testKey(1), domain: "search", run: run + 1, metric: m, dir: "maximize"}))
	}
	rep := replicaOf(t, recs)
	if top := rep.Top("search", "", 1); len(top) != 1 || top[0].Metric != 0.9 {
		t.Fatalf("Top with the receipts' direction = %+v", top)
	}
}
