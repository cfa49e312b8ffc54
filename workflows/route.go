package workflows

import (
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Failover of an agent's node.
const (
	// NodeFailover is how long an agent-side step waits for the agent's
	// node to pick it up; after that the node is presumed gone and the
	// agent moves to a live one. Node workers poll continuously, so a live
	// node starts a step within milliseconds.
	NodeFailover = 20 * time.Second
	// nodeHeartbeat: the longer agent-side steps (Hypothesize, WritePaper)
	// heartbeat, so a node killed in the middle of one is noticed within
	// this, not at the step's start-to-close timeout.
	nodeHeartbeat = 15 * time.Second
	// NodeWait bounds how long an agent looks for a live node (PickNode
	// retries meanwhile); with none for this long, the step fails.
	NodeWait = 10 * time.Minute
	// maxMoves bounds the moves of one step.
	maxMoves = 8
)

// route is where an agent's node-side steps run: the task queue of its
// current node. It is shared by the coroutines of one agent (workflow code
// is single-threaded, so this is deterministic).
type route struct {
	agent string
	queue string // "" : the workflow's own queue (no P2P node)
	moves int
}

// nodeGone reports whether err says that a node queue's worker did not
// pick a task up: the node is dead or unreachable.
func nodeGone(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}

// execute runs activity name on the agent's node; when the node does not
// pick it up within NodeFailover, the agent moves to a live node (PickNode)
// and the step runs there, with the same input. res may be nil.
func (r *route) execute(ctx workflow.Context, o workflow.ActivityOptions, name string, arg, res any) error {
	for moves := 0; ; moves++ {
		o.TaskQueue = r.queue
		o.ScheduleToStartTimeout = 0
		if r.queue != "" {
			o.ScheduleToStartTimeout = NodeFailover
		}
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), name, arg).Get(ctx, res)
		if err == nil || r.queue == "" || !nodeGone(err) || moves >= maxMoves {
			return err
		}
		if err := r.move(ctx); err != nil {
			return err
		}
	}
}

// move picks a live node other than the current one.
func (r *route) move(ctx workflow.Context) error {
	from := r.queue
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              TaskQueue,
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: NodeWait,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 1.5, MaximumInterval: 10 * time.Second,
		},
	})
	var to string
	if err := workflow.ExecuteActivity(actx, ActPickNode, PickNodeInput{Agent: r.agent, Exclude: []string{from}}).Get(ctx, &to); err != nil {
		return err
	}
	r.queue = to
	r.moves++
	workflow.GetLogger(ctx).Warn("agent moved to another node: its node stopped answering", "agent", r.agent, "from", from, "to", to)
	return nil
}

// liveCandidates returns the node queues that are live now, except
// exclude (for reviewers: the author's); on failure, fallback.
func liveCandidates(ctx workflow.Context, exclude string, fallback []string) []string {
	actx := workflow.WithActivityOptions(ctx, bookkeepingOptions())
	var live []string
	if err := workflow.ExecuteActivity(actx, ActLiveNodes).Get(ctx, &live); err != nil {
		live = fallback
	}
	var out []string
	for _, q := range live {
		if q != exclude {
			out = append(out, q)
		}
	}
	return out
}
