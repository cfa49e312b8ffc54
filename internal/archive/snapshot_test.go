package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

func snapshotRuns(t testing.TB) []receipt.Signed {
	k1, k2, k3 := key(11), key(12), key(13)
	long := strings.Repeat("x", 200)
	return []receipt.Signed{
		// ml, minimize: k1 best 0.9 (baseline 1.5), k2 best 0.8 (a baseline).
		sign(t, k1, spec{num: 1, value: 1.5, baseline: true}),
		sign(t, k1, spec{num: 2, value: 0.9, hyp: long, gpu: "NVIDIA H100"}),
		sign(t, k1, spec{num: 3, value: 1.1}),
		sign(t, k2, spec{num: 1, value: 0.8, baseline: true}),
		// search, maximize.
		sign(t, k1, spec{num: 1, domain: "search", dir: "maximize", value: 0.31}),
		sign(t, k3, spec{num: 1, domain: "search", dir: "maximize", value: 0.42}),
		sign(t, k3, spec{num: 2, domain: "search", dir: "maximize", value: 0.40}),
		// finance, maximize.
		sign(t, k2, spec{num: 1, domain: "finance", dir: "maximize", value: 1.7}),
		// causes: one maximize, one minimize.
		sign(t, k3, spec{num: 1, domain: "p2p-network", dir: "maximize", value: 10}),
		sign(t, k2, spec{num: 1, domain: "p2p-network", dir: "maximize", value: 12}),
		sign(t, k1, spec{num: 1, domain: "protein", dir: "minimize", value: 5}),
		sign(t, k1, spec{num: 2, domain: "protein", dir: "minimize", value: 4}),
	}
}

func TestBuildSnapshot(t *testing.T) {
	t.Parallel()
	runs := snapshotRuns(t)
	k1, k2, k3 := key(11).ID(), key(12).ID(), key(13).ID()
	s := BuildSnapshot(t0, "test-node", 7, 12.5, runs)

	if s.Version != 2 || s.Timestamp != "2026-03-11T05:07:35.490147+00:00" || s.GeneratedBy != "test-node" {
		t.Errorf("header: %d %q %q", s.Version, s.Timestamp, s.GeneratedBy)
	}
	if want := "3 unique agents, 12 total runs, 2 agents with published ML results, 5 domains active"; s.Summary != want {
		t.Errorf("summary %q, want %q", s.Summary, want)
	}
	if s.Network != (Network{ConnectedPeers: 7, UptimeHours: 12.5}) {
		t.Errorf("network %+v", s.Network)
	}
	ml := s.Leaderboards.MachineLearning
	if ml.PeerCount != 2 || ml.EntryCount != 2 || len(ml.Top10) != 2 {
		t.Fatalf("ml board %+v", ml)
	}
	if g := ml.GlobalBest; g == nil || g.PeerID != k2 || *g.ValLoss != 0.8 || g.RunNumber != 1 {
		t.Errorf("ml global best %+v", g)
	}
	e := ml.Top10[1]
	if e.PeerID != k1 || *e.ValLoss != 0.9 || e.RunNumber != 2 || e.Dataset != "astrophysics" || e.GPU == nil || *e.GPU != "NVIDIA H100" {
		t.Errorf("ml second entry %+v", e)
	}
	if n := len([]rune(e.Hypothesis)); n != 120 || !strings.HasSuffix(e.Hypothesis, "...") {
		t.Errorf("hypothesis not cut to 120: %d %q", n, e.Hypothesis)
	}
	if key, v, ok := e.Score(); key != "valLoss" || v != 0.9 || !ok {
		t.Errorf("Score = %s %v %v", key, v, ok)
	}
	search := s.Leaderboards.SearchEngine
	if search.PeerCount != 2 || search.GlobalBest == nil || search.GlobalBest.PeerID != k3 || *search.GlobalBest.Ndcg10 != 0.42 ||
		*search.Top10[1].Ndcg10 != 0.31 {
		t.Errorf("search board %+v", search)
	}
	if f := s.Leaderboards.Finance; f.PeerCount != 1 || *f.GlobalBest.Sharpe != 1.7 {
		t.Errorf("finance board %+v", f)
	}
	if sk := s.Leaderboards.Skills; sk.PeerCount != 0 || sk.GlobalBest != nil || sk.Top10 == nil || len(sk.Top10) != 0 {
		t.Errorf("skills board %+v", sk)
	}
	c := s.Leaderboards.Causes
	if c.PeerCount != 3 || c.EntryCount != 3 || strings.Join(c.ActiveCauses, ",") != "p2p-network,protein" {
		t.Errorf("causes %+v", c)
	}
	p2p := c.PerCause["p2p-network"]
	if p2p.GlobalBest == nil || p2p.GlobalBest.PeerID != k2 || *p2p.GlobalBest.Value != 12 || p2p.GlobalBest.Metric != "val_loss" || len(p2p.Top5) != 2 {
		t.Errorf("p2p-network %+v", p2p)
	}
	if pr := c.PerCause["protein"]; pr.GlobalBest == nil || *pr.GlobalBest.Value != 4 || len(pr.Top5) != 1 {
		t.Errorf("protein %+v", pr)
	}
	want := ExperimentCounts{MLTotalRuns: 4, MLBestValLoss: 0.8, SearchTotalRuns: 3, SearchBestNdcg10: 0.42,
		FinanceTotalRuns: 1, FinanceBestSharpe: 1.7, CausesTotalRuns: 4}
	if s.ExperimentCounts != want {
		t.Errorf("counts %+v, want %+v", s.ExperimentCounts, want)
	}
	if !strings.Contains(s.Disclaimer, "noise floor") || !strings.Contains(s.Disclaimer, "2 sigma") || !strings.Contains(s.Disclaimer, "held-out test") {
		t.Errorf("disclaimer %q", s.Disclaimer)
	}

	// JSON is deterministic, parses back, and does not depend on input order.
	js, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(js, []byte("}\n")) || !bytes.HasPrefix(js, []byte("{\n  \"version\": 2,\n")) {
		t.Errorf("layout:\n%s", js)
	}
	back, err := ParseSnapshot(js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("round trip changed the snapshot:\n%+v\n%+v", back, s)
	}
	rev := append([]receipt.Signed(nil), runs...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	rev = append(rev, runs[0]) // a repeated receipt counts once
	js2, _ := BuildSnapshot(t0, "test-node", 7, 12.5, rev).JSON()
	if !bytes.Equal(js, js2) {
		t.Error("input order changed the snapshot")
	}
	// Entry keys follow the public format.
	var raw struct {
		Leaderboards map[string]json.RawMessage `json:"leaderboards"`
	}
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatal(err)
	}
	for board, key := range boardKey {
		var b struct{ Top10 []map[string]any }
		if err := json.Unmarshal(raw.Leaderboards[board], &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Top10 {
			if _, ok := e[key]; !ok || len(e) != 6 {
				t.Errorf("%s entry %v: want 6 keys incl. %s", board, e, key)
			}
		}
	}
}

func TestBuildSnapshotEmpty(t *testing.T) {
	t.Parallel()
	s := BuildSnapshot(t0, "x", 0, 0, nil)
	js, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"top10": []`, `"globalBest": null`, `"activeCauses": []`, `"perCause": {}`, `"summary": "0 unique agents, 0 total runs, 0 agents with published ML results, 0 domains active"`} {
		if !bytes.Contains(js, []byte(want)) {
			t.Errorf("empty snapshot lacks %s:\n%s", want, js)
		}
	}
	if _, err := ParseSnapshot(js); err != nil {
		t.Error(err)
	}
	// A zero Snapshot (nil slices) still writes lists, not null.
	js, _ = Snapshot{Version: 2, Timestamp: s.Timestamp}.JSON()
	if bytes.Contains(js, []byte(`"top10": null`)) || bytes.Contains(js, []byte(`"activeCauses": null`)) {
		t.Errorf("nulls in:\n%s", js)
	}
}

func TestParseSnapshotReferenceExample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../shared/reference/hyperspace-snapshot-example.json")
	if err != nil {
		t.Skipf("reference example not available: %v", err)
	}
	s, err := ParseSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	ml := s.Leaderboards.MachineLearning
	if s.Version != 2 || s.Network.ConnectedPeers != 100 || ml.PeerCount != 83 || ml.GlobalBest == nil || *ml.GlobalBest.ValLoss != 0.9963 ||
		len(ml.Top10) != 2 || ml.Top10[0].RunNumber != 1168 || s.ExperimentCounts.MLTotalRuns != 2548 ||
		strings.Join(s.Leaderboards.Causes.ActiveCauses, ",") != "p2p-network" {
		t.Errorf("parsed example: %+v", s)
	}
	// Our output of it parses again.
	js, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSnapshot(js); err != nil {
		t.Error(err)
	}
}

func TestParseSnapshotStrict(t *testing.T) {
	t.Parallel()
	good, _ := BuildSnapshot(t0, "x", 1, 1, snapshotRuns(t)).JSON()
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	lb := func(m map[string]any) map[string]any { return m["leaderboards"].(map[string]any) }
	cases := map[string][]byte{
		"version 1":        mutate(func(m map[string]any) { m["version"] = 1 }),
		"no version":       mutate(func(m map[string]any) { delete(m, "version") }),
		"bad timestamp":    mutate(func(m map[string]any) { m["timestamp"] = "yesterday" }),
		"no disclaimer":    mutate(func(m map[string]any) { delete(m, "disclaimer") }),
		"no network peers": mutate(func(m map[string]any) { delete(m["network"].(map[string]any), "connectedPeers") }),
		"no finance":       mutate(func(m map[string]any) { delete(lb(m), "finance") }),
		"null top10":       mutate(func(m map[string]any) { lb(m)["machineLearning"].(map[string]any)["top10"] = nil }),
		"entry without key": mutate(func(m map[string]any) {
			delete(lb(m)["machineLearning"].(map[string]any)["globalBest"].(map[string]any), "valLoss")
		}),
		"no perCause":    mutate(func(m map[string]any) { delete(lb(m)["causes"].(map[string]any), "perCause") }),
		"no mlTotalRuns": mutate(func(m map[string]any) { delete(m["experimentCounts"].(map[string]any), "mlTotalRuns") }),
		"cause without top5": mutate(func(m map[string]any) {
			delete(lb(m)["causes"].(map[string]any)["perCause"].(map[string]any)["protein"].(map[string]any), "top5")
		}),
		"array": []byte("[]"),
	}
	for name, b := range cases {
		if _, err := ParseSnapshot(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Our optional additions may be missing.
	b := mutate(func(m map[string]any) { delete(m["experimentCounts"].(map[string]any), "skillsTotalRuns") })
	if _, err := ParseSnapshot(b); err != nil {
		t.Errorf("without skillsTotalRuns: %v", err)
	}
}

func TestWriteSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := tempRepo(t)
	s := BuildSnapshot(t0, "x", 1, 1, snapshotRuns(t))
	c1, changed, err := r.WriteSnapshot(ctx, s, t0)
	if err != nil || !changed {
		t.Fatalf("WriteSnapshot: %v %v", changed, err)
	}
	if c2, changed, err := r.WriteSnapshot(ctx, s, t0); err != nil || changed || c2 != c1 {
		t.Errorf("rewrite: %v %v", changed, err)
	}
	f := files(t, r, SnapshotBranch)
	if len(f) != 1 {
		t.Fatalf("files %v", names(f))
	}
	back, err := ParseSnapshot(f[SnapshotPath])
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("stored snapshot: %v", err)
	}
}
