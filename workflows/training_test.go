package workflows

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/hyperspace-ai/hyperspace/internal/diloco"
)

// fakeTraining stands in for the DiLoCo activities: shards listed in slow
// never finish on their own (they wait for cancellation).
type fakeTraining struct {
	mu       sync.Mutex
	slow     map[int]bool
	inner    map[int]int // InnerTrain calls per round
	finished *TrainingFinishInput
}

func (f *fakeTraining) TrainingInit(context.Context, TrainingInitInput) (TrainingInitResult, error) {
	return TrainingInitResult{Global: "g0", NumParams: 10}, nil
}

func (f *fakeTraining) InnerTrain(ctx context.Context, in InnerTrainInput) (InnerTrainResult, error) {
	f.mu.Lock()
	f.inner[in.Round]++
	f.mu.Unlock()
	if f.slow[in.Shard] {
		select {
		case <-ctx.Done():
			return InnerTrainResult{}, ctx.Err()
		case <-time.After(20 * time.Second):
			return InnerTrainResult{}, fmt.Errorf("test: slow shard was not cancelled")
		}
	}
	return InnerTrainResult{Shard: in.Shard, Delta: fmt.Sprintf("d%d-%d", in.Round, in.Shard), Inner: "i", Tokens: 100,
		Loss: 2, TrainSec: 0.1, BytesUp: 10, Worker: fmt.Sprintf("w%d", in.Shard)}, nil
}

func (f *fakeTraining) OuterStep(_ context.Context, in OuterStepInput) (OuterStepResult, error) {
	var acc []string
	for _, d := range in.Deltas {
		acc = append(acc, d.Contributor)
	}
	return OuterStepResult{Global: fmt.Sprintf("g%d", in.Round+1), Outer: "o", Update: "u", ValLoss: 3 - 0.1*float64(in.Round), Accepted: acc, Tokens: 100 * int64(len(acc))}, nil
}

func (f *fakeTraining) TrainingFinish(_ context.Context, in TrainingFinishInput) (TrainingFinishResult, error) {
	f.mu.Lock()
	f.finished = &in
	f.mu.Unlock()
	return TrainingFinishResult{ReceiptID: "r", Checkpoint: "c", ValLoss: in.Progress.ValLoss}, nil
}

func (f *fakeTraining) TrainingStatus(context.Context, TrainingStatusInput) error { return nil }

func trainingEnv(t *testing.T, f *fakeTraining) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(TrainingRunWorkflow)
	env.RegisterActivityWithOptions(f.TrainingInit, activity.RegisterOptions{Name: ActTrainingInit})
	env.RegisterActivityWithOptions(f.InnerTrain, activity.RegisterOptions{Name: ActInnerTrain})
	env.RegisterActivityWithOptions(f.OuterStep, activity.RegisterOptions{Name: ActOuterStep})
	env.RegisterActivityWithOptions(f.TrainingFinish, activity.RegisterOptions{Name: ActTrainingFinish})
	env.RegisterActivityWithOptions(f.TrainingStatus, activity.RegisterOptions{Name: ActTrainingStatus})
	env.SetTestTimeout(time.Minute)
	return env
}

func trainSpec(t *testing.T, k, rounds int) diloco.Spec {
	s, err := diloco.Spec{Workers: k, InnerSteps: 5, Rounds: rounds, MinDeadlineSec: 1, MaxDeadlineSec: 2}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A straggler never holds a round past its deadline once a quorum is in:
// its delta is dropped (the activity cancelled) and the run completes.
func TestTrainingQuorumDropsStragglers(t *testing.T) {
	f := &fakeTraining{slow: map[int]bool{3: true}, inner: map[int]int{}}
	env := trainingEnv(t, f)
	env.ExecuteWorkflow(TrainingRunWorkflow, TrainingRunInput{RunID: "t", Spec: trainSpec(t, 4, 3)})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p TrainingProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if p.Status != "completed" || p.Round != 3 || p.Dropped != 3 || p.Contributors["w3"] != 0 || p.Contributors["w0"] != 3 || p.SoloRounds != 0 {
		t.Fatalf("progress %+v", p)
	}
	for _, h := range p.History {
		if h.Accepted != 3 || h.Dropped != 1 {
			t.Fatalf("round %+v", h)
		}
	}
}

// One worker: every round is solo, and the run's record says so.
func TestTrainingSolo(t *testing.T) {
	f := &fakeTraining{slow: map[int]bool{}, inner: map[int]int{}}
	env := trainingEnv(t, f)
	env.ExecuteWorkflow(TrainingRunWorkflow, TrainingRunInput{RunID: "t", Spec: trainSpec(t, 1, 2)})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if f.finished == nil || f.finished.Progress.SoloRounds != 2 || f.finished.Progress.Round != 2 {
		t.Fatalf("finish %+v", f.finished)
	}
}

// A stop signal ends the run after the current round, as stopped.
func TestTrainingStop(t *testing.T) {
	f := &fakeTraining{slow: map[int]bool{}, inner: map[int]int{}}
	env := trainingEnv(t, f)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalStop, nil) }, 0)
	env.ExecuteWorkflow(TrainingRunWorkflow, TrainingRunInput{RunID: "t", Spec: trainSpec(t, 2, 50)})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p TrainingProgress
	_ = env.GetWorkflowResult(&p)
	if p.Status != "stopped" || p.Round >= 50 || f.finished == nil || f.finished.Status != "stopped" {
		t.Fatalf("progress %+v", p)
	}
}
