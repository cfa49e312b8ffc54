package workflows

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hyperspace-ai/hyperspace/internal/diloco"
)

// Task queues of the training workers.
const (
	// GPUQueue serves RunExperiment and InnerTrain on workers that declare
	// an accelerator (hyperspace worker --queues experiments-gpu --backend torch).
	GPUQueue = "experiments-gpu"
)

// Training activity names.
const (
	ActTrainingInit      = "TrainingInit"
	ActInnerTrain        = "InnerTrain"
	ActOuterStep         = "OuterStep"
	ActTrainingFinish    = "TrainingFinish"
	ActTrainingStatus    = "TrainingStatus"
	ActAnnounceRound     = "AnnounceTrainingRound"
	ActCollectRemote     = "CollectRemoteDeltas"
	QueryTraining        = "training"
	trainingRoundsPerRun = 10
)

// TrainingAgent is the agent a training run's result is signed by.
const TrainingAgent = "diloco"

// TrainingWorkflowID is the workflow id of a training run.
func TrainingWorkflowID(run string) string { return "training-" + run }

// TrainingRunInput is a TrainingRunWorkflow's input and, across
// ContinueAsNew, its state.
type TrainingRunInput struct {
	RunID string      `json:"runId"`
	Spec  diloco.Spec `json:"spec"` // normalised
	// NodeQueue is the P2P node that announces rounds to other sites and
	// collects their deltas (empty: no remote contributors).
	NodeQueue string `json:"nodeQueue,omitempty"`
	// Archive commits the result to the site's git archive (branch of the
	// run's agent "diloco").
	Archive bool           `json:"archive,omitempty"`
	State   *TrainingState `json:"state,omitempty"`
}

// TrainingState is everything a run needs to resume after its last
// completed round: content hashes of the global parameters, the outer
// optimizer state and each shard's inner state, plus the counters.
type TrainingState struct {
	Round       int              `json:"round"` // completed rounds
	Global      string           `json:"global"`
	Update      string           `json:"update,omitempty"` // S3 key of the broadcast that produced Global
	PrevGlobal  string           `json:"prevGlobal,omitempty"`
	Outer       string           `json:"outer,omitempty"`
	Inner       []string         `json:"inner"` // per shard; "" = fresh
	NumParams   int              `json:"numParams"`
	Arrivals    []float64        `json:"arrivals,omitempty"` // last delta's arrival, seconds, recent rounds
	Progress    TrainingProgress `json:"progress"`
	EmptyRounds int              `json:"emptyRounds,omitempty"`
	Stop        bool             `json:"stop,omitempty"`
}

// TrainingProgress is what the "training" query, the API and `train watch` show.
type TrainingProgress struct {
	RunID        string         `json:"runId"`
	Status       string         `json:"status"` // running, completed, stopped, failed
	Round        int            `json:"round"`  // completed rounds
	Rounds       int            `json:"rounds"`
	Workers      int            `json:"workers"`
	ValLoss      float64        `json:"valLoss,omitempty"` // of the global parameters after the last round
	TestLoss     float64        `json:"testLoss,omitempty"`
	History      []RoundSummary `json:"history,omitempty"` // last rounds (bounded)
	BytesUp      int64          `json:"bytesUp"`
	BytesDown    int64          `json:"bytesDown"`
	TrainSeconds float64        `json:"trainSeconds"` // inner training, summed over shards
	WallSeconds  float64        `json:"wallSeconds"`  // rounds, start to end
	Tokens       int64          `json:"tokens"`
	Contributors map[string]int `json:"contributors"` // worker or node id -> accepted deltas
	Dropped      int            `json:"dropped"`      // late or failed deltas not applied
	Rejected     int            `json:"rejected"`     // deltas that failed admission
	Remote       int            `json:"remote"`       // accepted deltas from other sites
	SoloRounds   int            `json:"soloRounds"`   // rounds closed with a single delta
	Deadline     float64        `json:"deadlineSec,omitempty"`
	Result       string         `json:"result,omitempty"` // receipt id of the finished run
	Checkpoint   string         `json:"checkpoint,omitempty"`
	Error        string         `json:"error,omitempty"`
}

// RoundSummary is one closed round.
type RoundSummary struct {
	Round        int      `json:"round"`
	ValLoss      float64  `json:"valLoss"`
	TrainLoss    float64  `json:"trainLoss"`
	Accepted     int      `json:"accepted"`
	Dropped      int      `json:"dropped"`
	Rejected     int      `json:"rejected"`
	BytesUp      int64    `json:"bytesUp"`
	BytesDown    int64    `json:"bytesDown"`
	Seconds      float64  `json:"seconds"`
	DeadlineSec  float64  `json:"deadlineSec"`
	Contributors []string `json:"contributors"`
}

// TrainingInitInput / TrainingInitResult: the run's initial parameters.
type TrainingInitInput struct {
	RunID string      `json:"runId"`
	Spec  diloco.Spec `json:"spec"`
}

// TrainingInitResult names the initial global parameters.
type TrainingInitResult struct {
	Global    string `json:"global"`
	NumParams int    `json:"numParams"`
}

// InnerTrainInput asks one worker for one shard's round.
type InnerTrainInput struct {
	RunID  string      `json:"runId"`
	Spec   diloco.Spec `json:"spec"`
	Round  int         `json:"round"`
	Shard  int         `json:"shard"`
	Global string      `json:"global"` // content hash of the parameters to start from
	// PrevGlobal and Update let a worker that holds PrevGlobal rebuild
	// Global from the (compressed) broadcast instead of downloading it.
	PrevGlobal string `json:"prevGlobal,omitempty"`
	Update     string `json:"update,omitempty"`
	Inner      string `json:"inner,omitempty"` // content hash of the shard's inner state
}

// InnerTrainResult is one shard's pseudo-gradient.
type InnerTrainResult struct {
	Shard     int     `json:"shard"`
	Delta     string  `json:"delta"` // S3 key
	Inner     string  `json:"inner"` // content hash of the new inner state
	Tokens    int64   `json:"tokens"`
	Loss      float64 `json:"loss"`
	TrainSec  float64 `json:"trainSec"`
	BytesUp   int64   `json:"bytesUp"`
	BytesDown int64   `json:"bytesDown"`
	Worker    string  `json:"worker"`
	Backend   string  `json:"backend"`
}

// DeltaRef is one delta the outer step averages.
type DeltaRef struct {
	Key         string `json:"key"`
	Shard       int    `json:"shard"` // -1 for a remote contributor
	Contributor string `json:"contributor"`
	Remote      bool   `json:"remote,omitempty"`
}

// OuterStepInput closes a round.
type OuterStepInput struct {
	RunID   string       `json:"runId"`
	Spec    diloco.Spec  `json:"spec"`
	Round   int          `json:"round"`
	Global  string       `json:"global"`
	Outer   string       `json:"outer,omitempty"`
	Deltas  []DeltaRef   `json:"deltas"`
	Summary RoundSummary `json:"summary"`
}

// OuterStepResult is the new global state.
type OuterStepResult struct {
	Global   string   `json:"global"`
	Outer    string   `json:"outer"`
	Update   string   `json:"update"` // S3 key of the broadcast
	ValLoss  float64  `json:"valLoss"`
	Rejected []string `json:"rejected,omitempty"` // contributors whose delta failed admission
	Accepted []string `json:"accepted"`
	Tokens   int64    `json:"tokens"`
}

// TrainingFinishInput ends a run.
type TrainingFinishInput struct {
	RunID    string           `json:"runId"`
	Spec     diloco.Spec      `json:"spec"`
	Global   string           `json:"global"`
	Progress TrainingProgress `json:"progress"`
	Status   string           `json:"status"`
	// TimestampMs is the receipt's timestamp (the workflow's clock, so a
	// retried finish signs the same bytes).
	TimestampMs int64 `json:"timestampMs"`
}

// TrainingFinishResult is the signed result.
type TrainingFinishResult struct {
	ReceiptID  string  `json:"receiptId"`
	Checkpoint string  `json:"checkpoint"`
	ValLoss    float64 `json:"valLoss"`
	TestLoss   float64 `json:"testLoss"`
}

// TrainingStatusInput records a run's status.
type TrainingStatusInput struct {
	RunID    string            `json:"runId"`
	Status   string            `json:"status"`
	Progress *TrainingProgress `json:"progress,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// AnnounceRoundInput tells other sites a round is open.
type AnnounceRoundInput struct {
	RunID       string      `json:"runId"`
	Spec        diloco.Spec `json:"spec"`
	Round       int         `json:"round"`
	Global      string      `json:"global"`
	DeadlineSec float64     `json:"deadlineSec"`
}

// CollectRemoteInput asks the node for the round's admitted remote deltas.
type CollectRemoteInput struct {
	RunID  string `json:"runId"`
	Round  int    `json:"round"`
	Global string `json:"global"`
}

// queueFor is the task queue of shard k's InnerTrain.
func queueFor(spec diloco.Spec, k int) string {
	switch spec.Backend {
	case "torch":
		return GPUQueue
	case "any":
		if k%2 == 1 {
			return GPUQueue
		}
	}
	return ExperimentsQueue
}

// TrainingRunWorkflow trains one model with DiLoCo. Each round fans out one
// InnerTrain activity per shard (any worker on the shard's queue runs it,
// so a killed worker's shard is retried elsewhere and, when the round
// closed without it, is trained again next round), waits for the deltas
// until the round's adaptive deadline has passed and a quorum has arrived
// (or every activity has ended), drops the late ones (their activities are
// cancelled; a late delta is never applied: the next round starts from new
// parameters), and closes the round with OuterStep. Every round's inputs and
// outputs are content hashes in S3, so a crashed run resumes at its last
// closed round and recomputes nothing that was accepted. It continues as new
// every few rounds; SignalStop ends it after the current round.
func TrainingRunWorkflow(ctx workflow.Context, in TrainingRunInput) (TrainingProgress, error) {
	log := workflow.GetLogger(ctx)
	spec := in.Spec
	st := in.State
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: []string{"BadSpec"}},
	})
	if st == nil {
		var init TrainingInitResult
		if err := workflow.ExecuteActivity(short, ActTrainingInit, TrainingInitInput{RunID: in.RunID, Spec: spec}).Get(ctx, &init); err != nil {
			return TrainingProgress{}, finishFailed(short, ctx, TrainingProgress{RunID: in.RunID}, fmt.Errorf("init: %w", err))
		}
		st = &TrainingState{Global: init.Global, NumParams: init.NumParams, Inner: make([]string, spec.Workers),
			Progress: TrainingProgress{RunID: in.RunID, Status: "running", Rounds: spec.Rounds, Workers: spec.Workers, Contributors: map[string]int{}}}
		_ = workflow.ExecuteActivity(short, ActTrainingStatus, TrainingStatusInput{RunID: in.RunID, Status: "running"}).Get(ctx, nil)
	}
	if err := workflow.SetQueryHandler(ctx, QueryTraining, func() (TrainingProgress, error) { return st.Progress, nil }); err != nil {
		return TrainingProgress{}, err
	}
	stopCh := workflow.GetSignalChannel(ctx, SignalStop)
	for n := 0; n < trainingRoundsPerRun && st.Round < spec.Rounds && !st.Stop; n++ {
		if err := trainingRound(ctx, in, st, stopCh); err != nil {
			return st.Progress, finishFailed(short, ctx, st.Progress, err)
		}
	}
	for stopCh.ReceiveAsync(nil) {
		st.Stop = true
	}
	if st.Round < spec.Rounds && !st.Stop {
		log.Info("training run continues as new", "run", in.RunID, "round", st.Round)
		in.State = st
		return TrainingProgress{}, workflow.NewContinueAsNewError(ctx, TrainingRunWorkflow, in)
	}
	status := "completed"
	if st.Round < spec.Rounds {
		status = "stopped"
	}
	finish := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute, HeartbeatTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var res TrainingFinishResult
	if err := workflow.ExecuteActivity(finish, ActTrainingFinish, TrainingFinishInput{
		RunID: in.RunID, Spec: spec, Global: st.Global, Progress: st.Progress, Status: status,
		TimestampMs: workflow.Now(ctx).UnixMilli(),
	}).Get(ctx, &res); err != nil {
		return st.Progress, finishFailed(short, ctx, st.Progress, fmt.Errorf("finish: %w", err))
	}
	st.Progress.Status = status
	st.Progress.Result = res.ReceiptID
	st.Progress.Checkpoint = res.Checkpoint
	st.Progress.ValLoss, st.Progress.TestLoss = res.ValLoss, res.TestLoss
	_ = workflow.ExecuteActivity(short, ActTrainingStatus, TrainingStatusInput{RunID: in.RunID, Status: status, Progress: &st.Progress}).Get(ctx, nil)
	if in.Archive {
		requestArchive(ctx, AgentInput{CampaignID: in.RunID, Agent: TrainingAgent, Domain: "ml"}, true)
	}
	return st.Progress, nil
}

func finishFailed(short, ctx workflow.Context, p TrainingProgress, err error) error {
	p.Status, p.Error = "failed", err.Error()
	_ = workflow.ExecuteActivity(short, ActTrainingStatus, TrainingStatusInput{RunID: p.RunID, Status: "failed", Progress: &p, Error: err.Error()}).Get(ctx, nil)
	return err
}

// maxEmptyRounds fails a run whose rounds keep ending without any delta.
const maxEmptyRounds = 3

// trainingRound runs round st.Round and advances st.
func trainingRound(ctx workflow.Context, in TrainingRunInput, st *TrainingState, stopCh workflow.ReceiveChannel) error {
	spec := in.Spec
	r := st.Round
	deadline := diloco.Deadline(st.Arrivals, spec.DeadlineSlack, spec.MinDeadlineSec, spec.MaxDeadlineSec)
	st.Progress.Deadline = deadline.Seconds()
	start := workflow.Now(ctx)
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	if in.NodeQueue != "" && spec.Remote {
		nctx := workflow.WithActivityOptions(short, workflow.ActivityOptions{
			TaskQueue: in.NodeQueue, StartToCloseTimeout: 30 * time.Second, ScheduleToStartTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 2},
		})
		if err := workflow.ExecuteActivity(nctx, ActAnnounceRound, AnnounceRoundInput{
			RunID: in.RunID, Spec: spec, Round: r, Global: st.Global, DeadlineSec: deadline.Seconds(),
		}).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("announce round failed; no remote deltas this round", "run", in.RunID, "round", r, "error", err)
		}
	}
	rctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	type arrival struct {
		res InnerTrainResult
		err error
		at  float64
	}
	sel := workflow.NewSelector(ctx)
	var got []arrival
	pending := spec.Workers
	limit := time.Duration(spec.MaxDeadlineSec*float64(time.Second)) + 5*time.Minute
	for k := 0; k < spec.Workers; k++ {
		actx := workflow.WithActivityOptions(rctx, workflow.ActivityOptions{
			TaskQueue:              queueFor(spec, k),
			ScheduleToCloseTimeout: limit,
			StartToCloseTimeout:    limit,
			HeartbeatTimeout:       30 * time.Second,
			WaitForCancellation:    false,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: time.Second, MaximumAttempts: 3,
				NonRetryableErrorTypes: []string{"BadSpec", "BadState"},
			},
		})
		f := workflow.ExecuteActivity(actx, ActInnerTrain, InnerTrainInput{
			RunID: in.RunID, Spec: spec, Round: r, Shard: k, Global: st.Global,
			PrevGlobal: st.PrevGlobal, Update: st.Update, Inner: st.Inner[k],
		})
		sel.AddFuture(f, func(f workflow.Future) {
			var res InnerTrainResult
			err := f.Get(ctx, &res)
			got = append(got, arrival{res: res, err: err, at: workflow.Now(ctx).Sub(start).Seconds()})
			pending--
		})
	}
	timedOut := false
	timer := workflow.NewTimer(rctx, deadline)
	sel.AddFuture(timer, func(workflow.Future) { timedOut = true })
	stopping := false
	sel.AddReceive(stopCh, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		stopping = true
	})
	quorum := spec.QuorumCount()
	okCount := func() int {
		n := 0
		for _, a := range got {
			if a.err == nil {
				n++
			}
		}
		return n
	}
	for pending > 0 {
		sel.Select(ctx)
		if stopping {
			st.Stop = true
			stopping = false
		}
		if timedOut && okCount() >= quorum {
			break
		}
	}
	// Remote contributors: once every site delta is in, the round stays open
	// for them until its deadline, but no longer than slack × the time the
	// site's own deltas took (at least the minimum deadline), so a run with
	// remote peers does not wait the first round's cap.
	if in.NodeQueue != "" && spec.Remote && !timedOut && !st.Stop {
		el := workflow.Now(ctx).Sub(start)
		wait := min(deadline, time.Duration(max(spec.MinDeadlineSec, spec.DeadlineSlack*el.Seconds())*float64(time.Second)))
		if wait > el {
			_ = workflow.Sleep(ctx, wait-el)
		}
	}
	cancel()
	sum := RoundSummary{Round: r + 1, DeadlineSec: deadline.Seconds()}
	var refs []DeltaRef
	var last float64
	byShard := map[int]InnerTrainResult{}
	for _, a := range got {
		if a.err != nil {
			var ce *temporal.CanceledError
			if !errors.As(a.err, &ce) {
				workflow.GetLogger(ctx).Warn("inner training failed", "run", in.RunID, "round", r, "error", a.err)
			}
			continue
		}
		byShard[a.res.Shard] = a.res
		last = max(last, a.at)
	}
	sum.Dropped = spec.Workers - len(byShard)
	shards := make([]int, 0, len(byShard))
	for k := range byShard {
		shards = append(shards, k)
	}
	sort.Ints(shards)
	var trainLoss float64
	for _, k := range shards {
		res := byShard[k]
		refs = append(refs, DeltaRef{Key: res.Delta, Shard: k, Contributor: res.Worker})
		sum.BytesUp += res.BytesUp
		sum.BytesDown += res.BytesDown
		trainLoss += res.Loss
		st.Progress.TrainSeconds += res.TrainSec
	}
	if in.NodeQueue != "" && spec.Remote {
		nctx := workflow.WithActivityOptions(short, workflow.ActivityOptions{
			TaskQueue: in.NodeQueue, StartToCloseTimeout: 30 * time.Second, ScheduleToStartTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 2},
		})
		var remote []DeltaRef
		if err := workflow.ExecuteActivity(nctx, ActCollectRemote, CollectRemoteInput{RunID: in.RunID, Round: r, Global: st.Global}).Get(ctx, &remote); err == nil {
			refs = append(refs, remote...)
		}
	}
	if len(refs) == 0 {
		st.EmptyRounds++
		st.Progress.Dropped += sum.Dropped
		if st.EmptyRounds >= maxEmptyRounds {
			return fmt.Errorf("round %d: no worker delivered a delta in %d attempts (are workers polling %s?)", r+1, st.EmptyRounds, queueFor(spec, 0))
		}
		return nil // the round is tried again
	}
	st.EmptyRounds = 0
	if len(byShard) > 0 {
		trainLoss /= float64(len(byShard))
	}
	sum.TrainLoss = trainLoss
	outer := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var o OuterStepResult
	if err := workflow.ExecuteActivity(outer, ActOuterStep, OuterStepInput{
		RunID: in.RunID, Spec: spec, Round: r, Global: st.Global, Outer: st.Outer, Deltas: refs, Summary: sum,
	}).Get(ctx, &o); err != nil {
		return fmt.Errorf("round %d outer step: %w", r+1, err)
	}
	if len(o.Accepted) == 0 {
		st.Progress.Rejected += len(o.Rejected)
		st.EmptyRounds++
		if st.EmptyRounds >= maxEmptyRounds {
			return fmt.Errorf("round %d: every delta failed admission", r+1)
		}
		return nil
	}
	// Shards whose delta was applied continue from their new inner state;
	// the others start the next round from their previous one.
	for _, k := range shards {
		st.Inner[k] = byShard[k].Inner
	}
	sum.Accepted = len(o.Accepted)
	sum.Rejected = len(o.Rejected)
	sum.Contributors = o.Accepted
	sum.ValLoss = o.ValLoss
	sum.Seconds = workflow.Now(ctx).Sub(start).Seconds()
	st.Arrivals = append(st.Arrivals, last)
	if len(st.Arrivals) > 5 {
		st.Arrivals = st.Arrivals[len(st.Arrivals)-5:]
	}
	st.PrevGlobal, st.Global, st.Outer, st.Update = st.Global, o.Global, o.Outer, o.Update
	st.Round++
	p := &st.Progress
	p.Round = st.Round
	p.ValLoss = o.ValLoss
	p.BytesUp += sum.BytesUp
	p.BytesDown += sum.BytesDown
	p.Tokens += o.Tokens
	p.WallSeconds += sum.Seconds
	p.Dropped += sum.Dropped
	p.Rejected += sum.Rejected
	if sum.Accepted == 1 {
		p.SoloRounds++
	}
	for _, c := range o.Accepted {
		p.Contributors[c]++
	}
	accepted := map[string]bool{}
	for _, c := range o.Accepted {
		accepted[c] = true
	}
	for _, ref := range refs {
		if ref.Remote && accepted[ref.Contributor] {
			p.Remote++
		}
	}
	p.History = append(p.History, sum)
	if len(p.History) > 20 {
		p.History = p.History[len(p.History)-20:]
	}
	return nil
}
