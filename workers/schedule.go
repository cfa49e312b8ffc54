package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/hyperspace-ai/hyperspace/workflows"
)

// EnsureSnapshotSchedule creates the Temporal Schedule that starts
// SnapshotWorkflow every `every` (hourly by default), or updates its
// interval when it exists. Overlapping runs are skipped; a missed run is
// caught up within a minute.
func EnsureSnapshotSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	if every <= 0 {
		every = workflows.DefaultSnapshotEvery
	}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	sc := c.ScheduleClient()
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:            workflows.SnapshotScheduleID,
		Spec:          spec,
		CatchupWindow: time.Minute,
		Action: &client.ScheduleWorkflowAction{
			ID:        "snapshot",
			Workflow:  "SnapshotWorkflow",
			Args:      []any{workflows.SnapshotInput{}},
			TaskQueue: workflows.TaskQueue,
		},
		Note: "Writes snapshots/latest.json to the archive (hyperspace)",
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		h := sc.GetHandle(ctx, workflows.SnapshotScheduleID)
		err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec = &spec
			return &client.ScheduleUpdate{Schedule: &s}, nil
		}})
	}
	if err != nil {
		return fmt.Errorf("snapshot schedule: %w", err)
	}
	return nil
}

// EnsurePulseSchedule creates (or updates) the Temporal Schedule that starts
// PulseRoundWorkflow every `every` (90 s by default). Overlapping rounds are
// skipped; a missed round is not caught up (it has no presences left to
// judge live).
func EnsurePulseSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	if every <= 0 {
		every = workflows.DefaultPulseEvery
	}
	// Fire a fifth into each round: the round before has ended and its
	// presences (published a tenth in) are in.
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every, Offset: every / 5}}}
	in := workflows.PulseRoundInput{IntervalMs: every.Milliseconds()}
	action := &client.ScheduleWorkflowAction{
		ID:                       "pulse",
		Workflow:                 "PulseRoundWorkflow",
		Args:                     []any{in},
		TaskQueue:                workflows.TaskQueue,
		WorkflowExecutionTimeout: 2 * every,
	}
	sc := c.ScheduleClient()
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:            workflows.PulseScheduleID,
		Spec:          spec,
		CatchupWindow: every / 2,
		Action:        action,
		Note:          "Judges and credits one pulse round (hyperspace trust economy)",
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		h := sc.GetHandle(ctx, workflows.PulseScheduleID)
		err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(u client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := u.Description.Schedule
			s.Spec = &spec
			s.Action = action
			return &client.ScheduleUpdate{Schedule: &s}, nil
		}})
	}
	if err != nil {
		return fmt.Errorf("pulse schedule: %w", err)
	}
	return nil
}
