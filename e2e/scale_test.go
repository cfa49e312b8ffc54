package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// runLengths returns the number of events of every run of workflow id,
// following ContinueAsNew from its first run.
func runLengths(t testing.TB, tc client.Client, id, firstRun string) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []int
	run := firstRun
	for run != "" && len(out) < 10000 {
		it := tc.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n, next := 0, ""
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("history of %s/%s: %v", id, run, err)
			}
			n++
			if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
		}
		out = append(out, n)
		run = next
	}
	return out
}

// campaignHistories returns the largest history of a campaign's workflow
// and of every run of its agents' workflows, and the number of runs.
func campaignHistories(t testing.TB, tc client.Client, wfID string) (campaignEvents, maxAgentEvents, agentRuns int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	it := tc.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	type child struct{ id, run string }
	var children []child
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		campaignEvents++
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
			children = append(children, child{a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId()})
		}
	}
	for _, c := range children {
		for _, n := range runLengths(t, tc, c.id, c.run) {
			maxAgentEvents = max(maxAgentEvents, n)
			agentRuns++
		}
	}
	return
}

// flatCause is the cheapest honest evaluator: one awk process reads x and
// y from config.json and prints the quadratic's value.
const flatCause = `
name: flat
description: (x-2)^2 + (y+1)^2 in one awk process, for orchestration at scale.
metric: {name: loss, direction: minimize}
space:
  - {name: x, kind: float, min: -5, max: 5}
  - {name: y, kind: float, min: -5, max: 5}
baseline: {x: 0, y: 0}
evaluator:
  command: [awk, -f, eval.awk, config.json]
  timeoutSeconds: 10
  files:
    eval.awk: |
      { s = s $0 }
      END {
        gsub(/[ \t\n]/, "", s)
        match(s, /"x":-?[0-9.eE+-]+/); x = substr(s, RSTART+4, RLENGTH-4) + 0
        match(s, /"y":-?[0-9.eE+-]+/); y = substr(s, RSTART+4, RLENGTH-4) + 0
        printf "{\"metric\": %.6f, \"testMetric\": %.6f}\n", (x-2)^2+(y+1)^2, (x-2.1)^2+(y+1)^2
      }
`

// scaleSize is the campaign the scale test runs: 64 agents x 200 cheap
// experiments by default (HYPERSPACE_SCALE_AGENTS / _EXPERIMENTS override).
func scaleSize() (agents, experiments int) {
	agents, experiments = 64, 200
	if v, err := strconv.Atoi(os.Getenv("HYPERSPACE_SCALE_AGENTS")); err == nil && v > 0 {
		agents = v
	}
	if v, err := strconv.Atoi(os.Getenv("HYPERSPACE_SCALE_EXPERIMENTS")); err == nil && v > 0 {
		experiments = v
	}
	return
}

// TestCampaignAtScale: a campaign at the API's limit on agents with
// hundreds of cheap experiments each (a cause whose evaluator is a shell
// one-liner) runs through a real Temporal server to completion, with every
// experiment recorded once, and no workflow history grows past a few
// thousand events: the campaign takes no signal per experiment and each
// agent continues as new every few cycles. Stopping a campaign at any
// moment (right after its start, in its baseline, in its research) ends it
// as stopped, with what it recorded accounted for.
func TestCampaignAtScale(t *testing.T) {
	agents, per := scaleSize()
	s := newStackSlots(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0, 16)
	if code, body := s.post("/api/v1/causes", "application/yaml", flatCause); code != http.StatusCreated {
		t.Fatalf("register cause: %d %s", code, body)
	}
	start := time.Now()
	v := s.startCampaign(map[string]any{"domain": "flat", "agents": agents, "experiments": per, "seed": 3, "paperEvery": 0})
	v = s.waitCampaign(v.ID, 25*time.Minute)
	wall := time.Since(start)
	if v.Status != store.StatusCompleted {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	sum := s.summary(v)
	n, err := s.st.CountExperiments(context.Background(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 + agents*per; sum.Experiments != want || n != want || sum.Failed != 0 {
		t.Fatalf("%d completed (%d failed), %d rows; want %d", sum.Experiments, sum.Failed, n, want)
	}
	ce, ae, runs := campaignHistories(t, s.tc, v.WorkflowID)
	const limit = 5000
	if ce > limit || ae > limit {
		t.Fatalf("largest histories: campaign %d events, agent run %d events (limit %d)", ce, ae, limit)
	}
	t.Logf("scale: %d agents x %d experiments (+3 baseline) in %s (%.0f experiments/s); largest history: campaign %d events, agent run %d events over %d agent runs",
		agents, per, wall.Round(time.Second), float64(n)/wall.Seconds(), ce, ae, runs)

	// Stop at any moment.
	for _, after := range []time.Duration{0, 300 * time.Millisecond, 3 * time.Second} {
		t.Run(fmt.Sprintf("stop after %s", after), func(t *testing.T) {
			v := s.startCampaign(map[string]any{"domain": "flat", "agents": agents, "experiments": per, "seed": 4, "paperEvery": 0})
			time.Sleep(after)
			if code, body := s.do(http.MethodPost, "/api/v1/campaigns/"+v.ID+"/stop", nil); code != http.StatusAccepted {
				t.Fatalf("stop: %d %s", code, body)
			}
			stopped := time.Now()
			v = s.waitCampaign(v.ID, 3*time.Minute)
			if v.Status != store.StatusStopped {
				t.Fatalf("campaign ended %s after a stop", v.Status)
			}
			sum := s.summary(v)
			n, _ := s.st.CountExperiments(context.Background(), v.ID)
			if n != sum.Experiments {
				t.Fatalf("stopped campaign: %d rows, summary says %d", n, sum.Experiments)
			}
			t.Logf("stopped %s after its start: ended in %s with %d experiments recorded",
				after, time.Since(stopped).Round(100*time.Millisecond), n)
		})
	}
}

// BenchmarkCampaignAtScale runs TestCampaignAtScale's campaign (64 agents x
// 200 cheap experiments by default) and, in the same run, one agent x the
// same number of experiments, and reports the throughput of each, their
// ratio (how much 64 parallel agents gain over one on this machine) and
// the largest workflow histories.
//
//	go test -run '^$' -bench CampaignAtScale -benchtime 1x -timeout 60m ./e2e
func BenchmarkCampaignAtScale(b *testing.B) {
	agents, per := scaleSize()
	for i := 0; i < b.N; i++ {
		s := newStackSlots(b, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0, 16)
		if code, body := s.post("/api/v1/causes", "application/yaml", flatCause); code != http.StatusCreated {
			b.Fatalf("register cause: %d %s", code, body)
		}
		one := func(agents, per int) (time.Duration, int, int, int) {
			start := time.Now()
			v := s.startCampaign(map[string]any{"domain": "flat", "agents": agents, "experiments": per, "seed": 3, "paperEvery": 0})
			v = s.waitCampaign(v.ID, 55*time.Minute)
			wall := time.Since(start)
			if v.Status != store.StatusCompleted {
				b.Fatalf("campaign %s", v.Status)
			}
			n, _ := s.st.CountExperiments(context.Background(), v.ID)
			ce, ae, _ := campaignHistories(b, s.tc, v.WorkflowID)
			return wall, n, ce, ae
		}
		w1, n1, _, _ := one(1, per)
		w, n, ce, ae := one(agents, per)
		r1, r := float64(n1)/w1.Seconds(), float64(n)/w.Seconds()
		b.ReportMetric(w.Seconds(), "wall_s")
		b.ReportMetric(r, "exp/s")
		b.ReportMetric(r1, "exp/s_one_agent")
		b.ReportMetric(r/r1, "parallel_gain")
		b.ReportMetric(float64(ce), "campaign_events")
		b.ReportMetric(float64(ae), "max_agent_run_events")
		b.Logf("%d agents x %d: %d experiments in %s (%.1f/s); 1 agent x %d: %d in %s (%.1f/s); largest histories: campaign %d, agent run %d events",
			agents, per, n, w.Round(time.Second), r, per, n1, w1.Round(time.Second), r1, ce, ae)
	}
}
