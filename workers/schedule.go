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
