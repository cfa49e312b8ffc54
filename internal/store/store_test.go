package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
)

func TestMigrationsUpDownUp(t *testing.T) {
	st, _ := testenv.Database(t)
	ctx := context.Background()
	ms, err := store.MigrationsStatus(ctx, st.Pool)
	if err != nil || len(ms) == 0 || !ms[0].Applied {
		t.Fatalf("status after up: %+v %v", ms, err)
	}
	down, err := store.MigrateDown(ctx, st.Pool, 100)
	if err != nil || len(down) != len(ms) {
		t.Fatalf("down: %v %v", down, err)
	}
	var n int
	if err := st.Pool.QueryRow(ctx, `select count(*) from information_schema.tables where table_name='experiments'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("experiments table still there after down: %d %v", n, err)
	}
	up, err := store.MigrateUp(ctx, st.Pool)
	if err != nil || len(up) != len(ms) {
		t.Fatalf("up again: %v %v", up, err)
	}
	again, err := store.MigrateUp(ctx, st.Pool)
	if err != nil || len(again) != 0 {
		t.Fatalf("second up should be a no-op: %v %v", again, err)
	}
}

func TestExperimentInsertIsIdempotent(t *testing.T) {
	st, _ := testenv.Database(t)
	ctx := context.Background()
	if err := st.CreateCampaign(ctx, store.Campaign{ID: "c1", Domain: "ml", Agents: 1, Experiments: 2, BaselineSeeds: 3, Request: json.RawMessage(`{}`), WorkflowID: "campaign-c1"}); err != nil {
		t.Fatal(err)
	}
	e := store.Experiment{ID: "abc", CampaignID: "c1", Agent: "agent-1", Domain: "ml", RunNumber: 1, Metric: 2.5, Seed: 7, ConfigKey: "k", Record: json.RawMessage(`{"id":"abc"}`)}
	ins, err := st.InsertExperiment(ctx, e)
	if err != nil || !ins {
		t.Fatalf("first insert: %v %v", ins, err)
	}
	ins, err = st.InsertExperiment(ctx, e)
	if err != nil || ins {
		t.Fatalf("same id again must be a no-op: %v %v", ins, err)
	}
	e2 := e
	e2.ID = "def" // a retry that re-signed the same run
	ins, err = st.InsertExperiment(ctx, e2)
	if err != nil || ins {
		t.Fatalf("same run with another id must be a no-op: %v %v", ins, err)
	}
	n, _ := st.CountExperiments(ctx, "c1")
	if n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
	// Pagination.
	for i := 2; i <= 5; i++ {
		e3 := e
		e3.ID = string(rune('a'+i)) + "x"
		e3.RunNumber = i
		e3.Metric = float64(i)
		if _, err := st.InsertExperiment(ctx, e3); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	cursor := ""
	for page := 0; page < 10; page++ {
		rows, next, err := st.ListExperiments(ctx, store.ExperimentFilter{CampaignID: "c1", Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != 5 {
		t.Fatalf("paged through %d rows, want 5: %v", len(got), got)
	}
	if _, _, err := st.ListExperiments(ctx, store.ExperimentFilter{Cursor: "!!bad"}); err == nil {
		t.Fatal("bad cursor accepted")
	}
	best, ok, err := st.BestInCampaign(ctx, "c1", true)
	if err != nil || !ok || best.Metric != 2 {
		t.Fatalf("best = %+v %v %v", best, ok, err)
	}
	lb, err := st.Leaderboard(ctx, "ml", true, 10)
	if err != nil || len(lb) != 1 || lb[0].Metric != 2 {
		t.Fatalf("leaderboard = %+v %v", lb, err)
	}
}
