package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// history reads a workflow's full history (latest run).
func history(t *testing.T, c client.Client, wfID string) *historypb.History {
	t.Helper()
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	it := c.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", wfID, err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}

// completedActivities counts completed activities by type in a history, and
// the highest attempt any started activity of each type reached.
func completedActivities(h *historypb.History) (done map[string]int, maxAttempt map[string]int32) {
	types := map[int64]string{}
	done, maxAttempt = map[string]int{}, map[string]int32{}
	for _, ev := range h.Events {
		switch ev.EventType {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			types[ev.EventId] = ev.GetActivityTaskScheduledEventAttributes().ActivityType.Name
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			typ := types[a.ScheduledEventId]
			if a.Attempt > maxAttempt[typ] {
				maxAttempt[typ] = a.Attempt
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			done[types[ev.GetActivityTaskCompletedEventAttributes().ScheduledEventId]]++
		}
	}
	return done, maxAttempt
}

// saveHistory writes a history for the replay tests when HYPERSPACE_RECORD_HISTORIES=1.
func saveHistory(t *testing.T, h *historypb.History, name string) {
	if os.Getenv("HYPERSPACE_RECORD_HISTORIES") != "1" {
		return
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	// protojson is what the replayer reads.
	b, err = marshalHistory(h)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("..", "workflows", "testdata", name)
	_ = os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCampaignEndToEnd runs a 2-agent x 3-experiment ML campaign through
// REST and checks that the rows, the artifacts and the workflow histories agree.
func TestCampaignEndToEnd(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	v := s.startCampaign(map[string]any{"domain": "ml", "agents": 2, "experiments": 3, "seed": 7, "budget": 4, "baseline": tinyML})
	if v.Status != "pending" && v.Status != "running" {
		t.Fatalf("new campaign status %q", v.Status)
	}
	v = s.waitCampaign(v.ID, 5*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign ended %s: %s", v.Status, v.Error)
	}
	sum := s.summary(v)
	const want = 3 + 2*3 // baseline seeds + agents*experiments
	if sum.Experiments != want || sum.Failed != 0 {
		t.Fatalf("summary: %+v", sum)
	}
	if sum.Floor.N != 3 || sum.Floor.SD <= 0 {
		t.Fatalf("noise floor: %+v", sum.Floor)
	}

	// Rows: one per experiment, each a valid signed receipt.
	rows := s.allExperiments(v.ID)
	if len(rows) != want {
		t.Fatalf("%d experiment rows, want %d", len(rows), want)
	}
	runs := map[string]bool{}
	baselines, withParents := 0, 0
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r.ID] = true
	}
	for _, r := range rows {
		key := r.Agent + "/" + string(rune('0'+r.RunNumber))
		if runs[key] {
			t.Fatalf("duplicate run %s", key)
		}
		runs[key] = true
		var sr receipt.Signed
		if err := json.Unmarshal(r.Record, &sr); err != nil {
			t.Fatal(err)
		}
		if err := sr.Verify(); err != nil {
			t.Fatalf("receipt %s does not verify: %v", r.ID, err)
		}
		rc := sr.Receipt
		if sr.ID != r.ID || rc.Metric.Value != r.Metric || rc.Result.ValLoss != r.Metric || rc.Seed != r.Seed {
			t.Fatalf("row and receipt disagree: %+v vs %+v", r, rc)
		}
		if rc.Metric.TestValue <= 0 || rc.Result.Values["valBpb"] <= 0 || len(rc.Result.LossCurve) == 0 {
			t.Fatalf("receipt lacks results: %+v", rc.Result)
		}
		if rc.Baseline {
			baselines++
			if rc.IsNewBest {
				t.Fatal("a baseline run cannot be a new best")
			}
		} else {
			if rc.NoiseFloor == nil || rc.NoiseFloor.N != 3 || rc.Hypothesis == "" || rc.Proposer != "builtin" {
				t.Fatalf("research receipt incomplete: %+v", rc)
			}
			// Every proposal but a uniform exploration names the receipts it builds on.
			if len(rc.Parents) > 0 {
				withParents++
				if rc.InspiredBy == nil || *rc.InspiredBy != rc.Parents[0] {
					t.Fatalf("inspiredBy %v is not the first parent of %v", rc.InspiredBy, rc.Parents)
				}
				for _, p := range rc.Parents {
					if !ids[p] {
						t.Fatalf("parent %s is not an earlier experiment of the campaign", p)
					}
				}
			} else if !strings.Contains(rc.Hypothesis, "uniform sample") {
				t.Fatalf("research receipt names no parents: %+v", rc)
			}
		}
		// Artifacts: in S3 under experiments/<id>/, matching the signed digests.
		if len(rc.Artifacts) == 0 || len(r.Artifacts) != len(rc.Artifacts) {
			t.Fatalf("artifacts: row %v receipt %v", r.Artifacts, rc.Artifacts)
		}
		ctx, cancel := ctxTimeout(10 * time.Second)
		for name, digest := range rc.Artifacts {
			key := r.Artifacts[name]
			if !strings.HasPrefix(key, "experiments/"+r.ID+"/") {
				t.Fatalf("artifact key %q not derived from the experiment id", key)
			}
			data, err := s.blob.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if "sha256:"+hex.EncodeToString(sum[:]) != digest {
				t.Fatalf("artifact %s does not match its signed digest", key)
			}
		}
		cancel()
	}
	if baselines != 3 || withParents == 0 {
		t.Fatalf("%d baseline rows (want 3), %d research rows with parents (want > 0)", baselines, withParents)
	}
	// Staging is empty once everything is recorded.
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	if left, _ := s.blob.List(ctx, "staging/"); len(left) != 0 {
		t.Fatalf("staged artifacts left behind: %v", left)
	}

	// Histories: the campaign ran the baseline activities, each agent child ran its cycles.
	ch := history(t, s.tc, v.WorkflowID)
	done, _ := completedActivities(ch)
	if done[workflows.ActRunExperiment] != 3 || done[workflows.ActRecordResult] != 3 {
		t.Fatalf("campaign history activities: %v", done)
	}
	saveHistory(t, ch, "campaign.json")
	total := done[workflows.ActRecordResult]
	for i := 0; i < 2; i++ {
		ah := history(t, s.tc, v.WorkflowID[len("campaign-"):]+"/"+workflows.AgentName(i))
		d, _ := completedActivities(ah)
		if d[workflows.ActHypothesize] != 3 || d[workflows.ActRunExperiment] != 3 || d[workflows.ActRecordResult] != 3 {
			t.Fatalf("agent %d history activities: %v", i, d)
		}
		total += d[workflows.ActRecordResult]
		if i == 0 {
			saveHistory(t, ah, "agent.json")
		}
	}
	if total != len(rows) {
		t.Fatalf("histories recorded %d results, rows %d", total, len(rows))
	}

	// The leaderboard shows each agent's best with its test metric.
	code, body := s.do(http.MethodGet, "/api/v1/domains/ml/leaderboard", nil)
	if code != http.StatusOK {
		t.Fatalf("leaderboard: %d %s", code, body)
	}
	var lb struct {
		Entries []struct {
			Metric     float64
			TestMetric *float64
			Agent      string
		}
	}
	_ = json.Unmarshal(body, &lb)
	if len(lb.Entries) != 2 || lb.Entries[0].TestMetric == nil || lb.Entries[0].Metric > lb.Entries[1].Metric {
		t.Fatalf("leaderboard: %s", body)
	}
	if sum.Best == nil || sum.Best.Metric != lb.Entries[0].Metric {
		t.Fatalf("summary best %+v vs leaderboard %s", sum.Best, body)
	}
	// One experiment by id, and its artifact over HTTP.
	code, body = s.do(http.MethodGet, "/api/v1/experiments/"+rows[0].ID, nil)
	if code != http.StatusOK || !strings.Contains(string(body), rows[0].ID) {
		t.Fatalf("get experiment: %d %s", code, body)
	}
	code, _ = s.do(http.MethodGet, "/api/v1/experiments/"+rows[0].ID+"/artifacts/result.json", nil)
	if code != http.StatusOK {
		t.Fatalf("artifact over HTTP: %d", code)
	}

	// Determinism through the whole stack: the same campaign seed gives the
	// same baseline val_loss values.
	v2 := s.startCampaign(map[string]any{"domain": "ml", "agents": 1, "experiments": 1, "seed": 7, "budget": 4, "baseline": tinyML})
	v2 = s.waitCampaign(v2.ID, 3*time.Minute)
	a, b := s.summary(v).Floor, s.summary(v2).Floor
	if a.Mean != b.Mean || a.SD != b.SD {
		t.Fatalf("same seed, different baseline: %+v vs %+v", a, b)
	}
}
