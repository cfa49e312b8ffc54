package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// fakeActs are stand-in activities for the SDK's workflow test environment:
// a deterministic "metric" that improves with the run number.
type fakeActs struct {
	failRun int // RunExperiment fails (non-retryably) for this run number
	shared  []string
	// Under a judged floor (Trials > 0): results under 2.7 pass; a
	// confirmation of a candidate of run failConfirmOf fails.
	failConfirmOf string
	mu            sync.Mutex
	records       []RecordInput
}

func (f *fakeActs) Hypothesize(_ context.Context, in HypothesizeInput) (Proposal, error) {
	return Proposal{Config: domains.Config{"x": float64(in.RunNumber)}, Hypothesis: fmt.Sprintf("try x=%d", in.RunNumber), Parents: []string{}, Strategy: "mutate", Proposer: "builtin"}, nil
}

func (f *fakeActs) RunExperiment(_ context.Context, in ExperimentInput) (Outcome, error) {
	if in.RunNumber == f.failRun && in.Agent == "agent-1" {
		return Outcome{}, temporal.NewNonRetryableApplicationError("boom", "InvalidConfig", nil)
	}
	m := 3.0 - 0.1*in.Config.Float("x") + float64(in.Seed%7)*0.001
	return Outcome{Metric: m, TestMetric: m + 0.01, Values: map[string]float64{"valLoss": m}}, nil
}

func (f *fakeActs) RecordResult(_ context.Context, in RecordInput) (Recorded, error) {
	f.mu.Lock()
	f.records = append(f.records, in)
	f.mu.Unlock()
	id := fmt.Sprintf("%s-%s-%d", in.CampaignID, in.Agent, in.RunNumber)
	if in.Floor != nil && in.Floor.Trials > 0 {
		pass := !in.Baseline && in.Outcome.Metric < 2.7
		r := Recorded{ExperimentID: id, Metric: in.Outcome.Metric, TestMetric: in.Outcome.TestMetric, Inserted: true}
		switch {
		case in.Confirm != nil:
			f.mu.Lock()
			if f.failConfirmOf == "first:"+in.Agent {
				f.failConfirmOf = in.Confirm.Of
			}
			fail := in.Confirm.Of == f.failConfirmOf
			f.mu.Unlock()
			r.BeatsNoise = pass && !fail
			r.IsNewBest = r.BeatsNoise && in.Confirm.Index == in.Confirm.Total
		default:
			r.BeatsNoise, r.Candidate = pass, pass
		}
		return r, nil
	}
	return Recorded{ExperimentID: fmt.Sprintf("%s-%s-%d", in.CampaignID, in.Agent, in.RunNumber), Metric: in.Outcome.Metric,
		TestMetric: in.Outcome.TestMetric, IsNewBest: !in.Baseline && in.Outcome.Metric < 2.7, Inserted: true}, nil
}

func (f *fakeActs) Share(_ context.Context, in ShareInput) error {
	f.shared = append(f.shared, in.ExperimentID)
	return nil
}

func (f *fakeActs) SetCampaignStatus(context.Context, StatusInput) error    { return nil }
func (f *fakeActs) RegisterAgent(context.Context, RegisterAgentInput) error { return nil }

func newEnv(t *testing.T, acts *fakeActs) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(CampaignWorkflow)
	env.RegisterWorkflow(AgentWorkflow)
	env.RegisterActivityWithOptions(acts.Hypothesize, activity.RegisterOptions{Name: ActHypothesize})
	env.RegisterActivityWithOptions(acts.RunExperiment, activity.RegisterOptions{Name: ActRunExperiment})
	env.RegisterActivityWithOptions(acts.RecordResult, activity.RegisterOptions{Name: ActRecordResult})
	env.RegisterActivityWithOptions(acts.SetCampaignStatus, activity.RegisterOptions{Name: ActSetCampaignStatus})
	env.RegisterActivityWithOptions(acts.RegisterAgent, activity.RegisterOptions{Name: ActRegisterAgent})
	env.RegisterActivityWithOptions(acts.Share, activity.RegisterOptions{Name: ActShare})
	return env
}

func input() CampaignInput {
	return CampaignInput{CampaignID: "c1", Domain: "fake", Direction: domains.Minimize, Agents: 2, ExperimentsPerAgent: 4,
		BaselineSeeds: 3, Baseline: domains.Config{"x": 0.0}, Seed: 42, CyclesPerRun: 3}
}

func TestCampaignRunsBaselineThenAgents(t *testing.T) {
	env := newEnv(t, &fakeActs{})
	env.ExecuteWorkflow(CampaignWorkflow, input())
	if !env.IsWorkflowCompleted() {
		t.Fatal("not completed")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := env.GetWorkflowResult(&s); err != nil {
		t.Fatal(err)
	}
	if s.Status != "completed" || s.Experiments != 3+2*4 || s.Failed != 0 {
		t.Fatalf("summary = %+v", s)
	}
	if s.Floor.N != 3 || s.Floor.K != 2 {
		t.Fatalf("floor = %+v", s.Floor)
	}
	if s.Best == nil || s.Best.Metric > 2.7 {
		t.Fatalf("best = %+v", s.Best)
	}
	if len(s.Agents) != 2 || s.Agents[0].Done != 4 || s.Agents[0].Status != "completed" {
		t.Fatalf("agents = %+v", s.Agents)
	}
	// Agent runs are numbered after each agent's baseline runs: agent-1 ran
	// baseline seeds 1 and 3 (runs 1, 2) so its research runs are 3..6.
	if s.Agents[0].Best.ExperimentID != "c1-agent-1-6" {
		t.Fatalf("agent-1 best = %+v", s.Agents[0].Best)
	}
	q, err := env.QueryWorkflow(QueryProgress)
	if err != nil {
		t.Fatal(err)
	}
	var p Progress
	if err := q.Get(&p); err != nil {
		t.Fatal(err)
	}
	if p.Phase != "done" || p.Done != 11 || p.Total != 11 || p.Baseline.Done != 3 {
		t.Fatalf("progress = %+v", p)
	}
}

func TestFailedExperimentIsCountedNotFatal(t *testing.T) {
	env := newEnv(t, &fakeActs{failRun: 4})
	env.ExecuteWorkflow(CampaignWorkflow, input())
	var s Summary
	if err := env.GetWorkflowResult(&s); err != nil {
		t.Fatal(err)
	}
	if s.Failed != 1 || s.Experiments != 10 {
		t.Fatalf("summary = %+v", s)
	}
}

func TestStopSignalEndsCampaign(t *testing.T) {
	env := newEnv(t, &fakeActs{})
	in := input()
	in.ExperimentsPerAgent = 1000
	in.CyclesPerRun = 2000
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalStop, nil) }, time.Millisecond)
	env.ExecuteWorkflow(CampaignWorkflow, in)
	var s Summary
	if err := env.GetWorkflowResult(&s); err != nil {
		t.Fatal(err)
	}
	if s.Status != "stopped" || s.Experiments >= 3+2*1000 {
		t.Fatalf("summary = %+v", s)
	}
}

func TestInvalidInputIsRejected(t *testing.T) {
	for name, mut := range map[string]func(*CampaignInput){
		"no agents":     func(in *CampaignInput) { in.Agents = 0 },
		"too many":      func(in *CampaignInput) { in.Agents = MaxAgents + 1 },
		"few seeds":     func(in *CampaignInput) { in.BaselineSeeds = 2 },
		"neg budget":    func(in *CampaignInput) { in.BudgetSeconds = -1 },
		"no baseline":   func(in *CampaignInput) { in.Baseline = nil },
		"bad direction": func(in *CampaignInput) { in.Direction = "up" },
	} {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t, &fakeActs{})
			in := input()
			mut(&in)
			env.ExecuteWorkflow(CampaignWorkflow, in)
			err := env.GetWorkflowError()
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != ErrInvalidInput || !ae.NonRetryable() {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestAgentContinuesAsNew(t *testing.T) {
	env := newEnv(t, &fakeActs{})
	env.ExecuteWorkflow(AgentWorkflow, AgentInput{CampaignID: "c1", Agent: "agent-1", Domain: "fake", Direction: domains.Minimize,
		Experiments: 5, NextRun: 2, Seed: 1, Floor: NoiseFloor{Mean: 3, SD: 0.01, N: 3, K: 2}, CyclesPerRun: 2})
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("want ContinueAsNew after 2 cycles, got %v", err)
	}
}

func TestExperimentSeedIsStableAndDistinct(t *testing.T) {
	a := ExperimentSeed(1, "agent-1", 3)
	if a != ExperimentSeed(1, "agent-1", 3) {
		t.Fatal("not stable")
	}
	if a == ExperimentSeed(1, "agent-2", 3) || a == ExperimentSeed(1, "agent-1", 4) || a == ExperimentSeed(2, "agent-1", 3) {
		t.Fatal("collision")
	}
	if a < 0 {
		t.Fatal("negative seed")
	}
}

func TestNodesShareEveryRecordedExperiment(t *testing.T) {
	acts := &fakeActs{}
	env := newEnv(t, acts)
	in := input()
	in.NodeQueues = []string{NodeQueue("peerA"), NodeQueue("peerB")}
	env.ExecuteWorkflow(CampaignWorkflow, in)
	var s Summary
	if err := env.GetWorkflowResult(&s); err != nil {
		t.Fatal(err)
	}
	if len(acts.shared) != s.Experiments || s.Experiments != 11 {
		t.Fatalf("shared %d of %d experiments", len(acts.shared), s.Experiments)
	}
}

func TestWithoutNodesNothingIsShared(t *testing.T) {
	acts := &fakeActs{}
	env := newEnv(t, acts)
	env.ExecuteWorkflow(CampaignWorkflow, input())
	if err := env.GetWorkflowError(); err != nil || len(acts.shared) != 0 {
		t.Fatalf("err %v, shared %d", err, len(acts.shared))
	}
}

func TestStopDuringBaselineEndsStoppedNotFailed(t *testing.T) {
	env := newEnv(t, &fakeActs{})
	in := input()
	in.BaselineSeeds = 32
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalStop, nil) }, 0)
	env.ExecuteWorkflow(CampaignWorkflow, in)
	var s Summary
	if err := env.GetWorkflowResult(&s); err != nil {
		t.Fatal(err)
	}
	if s.Status != "stopped" || s.Failed != 0 {
		t.Fatalf("summary = %+v", s)
	}
	for _, a := range s.Agents {
		if a.Done != 0 {
			t.Fatalf("agent %s ran %d experiments after a stop in the baseline", a.Agent, a.Done)
		}
	}
}

// failoverActs are fakeActs whose node "node-dead" never picks anything up
// (its steps fail with the schedule-to-start timeout Temporal reports).
type failoverActs struct {
	fakeActs
	mu       sync.Mutex
	recorded map[string]RecordInput // first RecordResult input per run, by the live node
	onDead   int
	picked   []PickNodeInput
}

func (f *failoverActs) dead(ctx context.Context) bool {
	if activity.GetInfo(ctx).TaskQueue == "node-dead" {
		f.mu.Lock()
		f.onDead++
		f.mu.Unlock()
		return true
	}
	return false
}

func (f *failoverActs) Hypothesize(ctx context.Context, in HypothesizeInput) (Proposal, error) {
	if f.dead(ctx) {
		return Proposal{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
	}
	return f.fakeActs.Hypothesize(ctx, in)
}

func (f *failoverActs) RecordResult(ctx context.Context, in RecordInput) (Recorded, error) {
	if f.dead(ctx) {
		return Recorded{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
	}
	f.mu.Lock()
	k := fmt.Sprintf("%s/%d", in.Agent, in.RunNumber)
	if _, ok := f.recorded[k]; !ok {
		f.recorded[k] = in
	}
	f.mu.Unlock()
	return f.fakeActs.RecordResult(ctx, in)
}

func (f *failoverActs) PickNode(_ context.Context, in PickNodeInput) (string, error) {
	f.mu.Lock()
	f.picked = append(f.picked, in)
	f.mu.Unlock()
	return "node-live", nil
}

func (f *failoverActs) LiveNodes(context.Context) ([]string, error) {
	return []string{"node-live"}, nil
}

// TestAgentMovesOffADeadNode: an agent whose node never picks its steps up
// moves to the node PickNode gives (excluding the dead one) and carries on:
// its experiments are all recorded, none failed, by the live node, and the
// agent's progress says where it is and that it moved once.
func TestAgentMovesOffADeadNode(t *testing.T) {
	acts := &failoverActs{recorded: map[string]RecordInput{}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(AgentWorkflow)
	env.RegisterActivityWithOptions(acts.Hypothesize, activity.RegisterOptions{Name: ActHypothesize})
	env.RegisterActivityWithOptions(acts.RunExperiment, activity.RegisterOptions{Name: ActRunExperiment})
	env.RegisterActivityWithOptions(acts.RecordResult, activity.RegisterOptions{Name: ActRecordResult})
	env.RegisterActivityWithOptions(acts.Share, activity.RegisterOptions{Name: ActShare})
	env.RegisterActivityWithOptions(acts.PickNode, activity.RegisterOptions{Name: ActPickNode})
	env.RegisterActivityWithOptions(acts.LiveNodes, activity.RegisterOptions{Name: ActLiveNodes})
	env.ExecuteWorkflow(AgentWorkflow, AgentInput{CampaignID: "c1", Agent: "agent-1", Domain: "fake", Direction: domains.Minimize,
		Experiments: 4, NextRun: 2, Seed: 1, Floor: NoiseFloor{Mean: 3, SD: 0.01, N: 3, K: 2}, CyclesPerRun: 10, NodeQueue: "node-dead"})
	var p AgentProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if p.Done != 4 || p.Failed != 0 || p.Moves != 1 || p.Node != "node-live" {
		t.Fatalf("progress %+v: want 4 done, 0 failed, moved once to node-live", p)
	}
	if len(acts.picked) != 1 || len(acts.picked[0].Exclude) != 1 || acts.picked[0].Exclude[0] != "node-dead" {
		t.Fatalf("PickNode calls %+v", acts.picked)
	}
	if len(acts.recorded) != 4 || len(acts.shared) != 4 {
		t.Fatalf("recorded %d, shared %d; want 4 each", len(acts.recorded), len(acts.shared))
	}
}

// TestRecordMovesWithTheSameInput: when the node dies between the
// experiment and its recording, the live node records the experiment
// that ran (no second run) with the input fixed before the first attempt.
func TestRecordMovesWithTheSameInput(t *testing.T) {
	acts := &failoverActs{recorded: map[string]RecordInput{}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(AgentWorkflow)
	runs := 0
	env.RegisterActivityWithOptions(acts.fakeActs.Hypothesize, activity.RegisterOptions{Name: ActHypothesize}) // the node answers Hypothesize...
	env.RegisterActivityWithOptions(func(ctx context.Context, in ExperimentInput) (Outcome, error) {
		runs++
		return acts.RunExperiment(ctx, in)
	}, activity.RegisterOptions{Name: ActRunExperiment})
	env.RegisterActivityWithOptions(acts.RecordResult, activity.RegisterOptions{Name: ActRecordResult}) // ...then dies
	env.RegisterActivityWithOptions(acts.Share, activity.RegisterOptions{Name: ActShare})
	env.RegisterActivityWithOptions(acts.PickNode, activity.RegisterOptions{Name: ActPickNode})
	env.ExecuteWorkflow(AgentWorkflow, AgentInput{CampaignID: "c1", Agent: "agent-1", Domain: "fake", Direction: domains.Minimize,
		Experiments: 1, NextRun: 2, Seed: 1, Floor: NoiseFloor{Mean: 3, SD: 0.01, N: 3, K: 2}, CyclesPerRun: 10, NodeQueue: "node-dead"})
	var p AgentProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if p.Done != 1 || runs != 1 || p.Moves != 1 || acts.onDead != 1 {
		t.Fatalf("progress %+v, %d experiment runs, %d steps on the dead node: want 1 done, 1 run, 1 move", p, runs, acts.onDead)
	}
}

// TestCandidatesConfirmed: under a judged floor every passing result is a
// candidate, re-run with fresh seeds (their own run numbers, parents the
// candidate and the earlier confirmations); the last confirmation is the
// new best; a failed confirmation ends the set and leaves the candidate
// unconfirmed.
func TestCandidatesConfirmed(t *testing.T) {
	acts := &fakeActs{failConfirmOf: "first:agent-1"}
	env := newEnv(t, acts)
	in := input()
	in.Judge = &JudgeConfig{Alpha: 0.05, Confirmations: 2}
	env.ExecuteWorkflow(CampaignWorkflow, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := env.GetWorkflowResult(&s); err != nil {
		t.Fatal(err)
	}
	if s.Floor.Trials != 8 || s.Floor.Confirmations != 2 || s.Floor.Alpha != 0.05 {
		t.Fatalf("floor %+v", s.Floor)
	}
	seeds := map[int64]bool{}
	confirms := map[string][]RecordInput{}
	for _, r := range acts.records {
		if seeds[r.Seed] && !r.Baseline {
			t.Fatalf("seed %d reused (run %s/%d)", r.Seed, r.Agent, r.RunNumber)
		}
		seeds[r.Seed] = true
		if r.Confirm != nil {
			confirms[r.Confirm.Of] = append(confirms[r.Confirm.Of], r)
			want := []string{r.Confirm.Of}
			for _, c := range confirms[r.Confirm.Of][:r.Confirm.Index-1] {
				want = append(want, fmt.Sprintf("%s-%s-%d", c.CampaignID, c.Agent, c.RunNumber))
			}
			if fmt.Sprint(r.Proposal.Parents) != fmt.Sprint(want) || r.Proposal.Strategy != "confirm" {
				t.Fatalf("confirmation %d of %s: parents %v, want %v", r.Confirm.Index, r.Confirm.Of, r.Proposal.Parents, want)
			}
		}
	}
	// agent-1's first candidate's first confirmation fails: one
	// confirmation run, no second.
	if c := confirms[acts.failConfirmOf]; len(c) != 1 {
		t.Fatalf("failed candidate had %d confirmation runs, want 1", len(c))
	}
	var newBests, confirmed, candidates, runs, done int
	for _, a := range s.Agents {
		newBests += a.NewBests
		confirmed += a.Confirmed
		candidates += a.Candidates
		runs += a.ConfirmationRuns
		done += a.Done
	}
	if done != 8 || candidates == 0 || confirmed != candidates-1 || newBests != confirmed || s.NewBests != newBests {
		t.Fatalf("done %d candidates %d confirmed %d newBests %d (summary %d)", done, candidates, confirmed, newBests, s.NewBests)
	}
	if runs != 2*confirmed+1 || s.ConfirmationRuns != runs {
		t.Fatalf("%d confirmation runs for %d confirmed and one failed", runs, confirmed)
	}
}
