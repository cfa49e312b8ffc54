package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// AgentWorkflow is one research agent. It loops research cycles until it has
// run its experiments or is asked to stop, and continues as new every
// CyclesPerRun cycles so its history stays bounded. It returns its final
// AgentProgress.
//
// One cycle:
//
//	Hypothesize   read what is known, propose a config and a one-line hypothesis
//	RunExperiment evaluate it on the experiments queue (heartbeats; retried elsewhere on a crash)
//	RecordResult  sign the receipt, judge it against the noise floor, store it
//	Share         (seam) publish the receipt to peers: the knowledge-plane issue
//	Synthesize    (seam) write and review papers: the community issue
//	evolve        the next Hypothesize sees this result
func AgentWorkflow(ctx workflow.Context, in AgentInput) (*AgentProgress, error) {
	if in.CyclesPerRun <= 0 {
		in.CyclesPerRun = DefaultCyclesPerRun
	}
	p := &in.Progress
	p.Agent, p.Total = in.Agent, in.Experiments
	if p.Status == "" || p.Status == "pending" {
		p.Status = "running"
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (AgentProgress, error) { return *p, nil }); err != nil {
		return nil, err
	}
	stopCh := workflow.GetSignalChannel(ctx, SignalStop)
	checkStop := func() {
		for stopCh.ReceiveAsync(nil) {
			in.Stopped = true
		}
	}

	arch := &archiver{}
	for cycles := 0; ; cycles++ {
		checkStop()
		if in.Stopped {
			p.Status = "stopped"
			break
		}
		if p.Done+p.Failed >= in.Experiments {
			p.Status = "completed"
			break
		}
		if cycles >= in.CyclesPerRun {
			// Bound the history: carry the state into a fresh run.
			arch.wait(ctx)
			return nil, workflow.NewContinueAsNewError(ctx, AgentWorkflow, in)
		}
		run := in.NextRun
		in.NextRun++
		rec, err := researchCycle(ctx, in, run)
		if err != nil {
			p.Failed++
			p.LastError = err.Error()
			workflow.GetLogger(ctx).Warn("research cycle failed", "agent", in.Agent, "run", run, "error", err)
		} else {
			p.Done++
			if rec.IsNewBest {
				p.NewBests++
			}
			if p.Best == nil || in.Direction.Better(rec.Metric, p.Best.Metric) {
				p.Best = &Best{ExperimentID: rec.ExperimentID, Agent: in.Agent, Metric: rec.Metric, TestMetric: rec.TestMetric}
			}
			community(ctx, &in, rec, arch)
		}
		notifyParent(ctx, in.ParentWorkflowID, *p)
	}
	arch.wait(ctx)
	notifyParent(ctx, in.ParentWorkflowID, *p)
	return p, nil
}

// community runs the stages after a recorded experiment: archive the
// finding, and every PaperEvery experiments synthesize a paper and start
// its peer review. Failures here never fail the research cycle.
func community(ctx workflow.Context, in *AgentInput, rec Recorded, arch *archiver) {
	c := in.Community
	if c == nil {
		return
	}
	log := workflow.GetLogger(ctx)
	if c.Archive {
		arch.archive(ctx, *in)
	}
	if c.PaperEvery <= 0 {
		return
	}
	in.Window = append(in.Window, rec.ExperimentID)
	if len(in.Window) < c.PaperEvery {
		return
	}
	// Synthesize, on the author's node (it gossips the paper).
	o := bookkeepingOptions()
	o.TaskQueue = in.NodeQueue
	o.ScheduleToStartTimeout = nodeWait(in.NodeQueue)
	o.StartToCloseTimeout = 3 * time.Minute // an LLM may write the prose
	o.RetryPolicy.MaximumAttempts = 5
	var ref PaperRef
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), ActWritePaper, PaperInput{
		CampaignID: in.CampaignID, Domain: in.Domain, Agent: in.Agent, Number: in.Papers + 1,
		Window: in.Window, Floor: in.Floor, LLM: in.LLM, TimestampMs: workflow.Now(ctx).UnixMilli(),
	}).Get(ctx, &ref)
	in.Window = nil
	if err != nil {
		log.Warn("paper synthesis failed", "agent", in.Agent, "error", err)
		return
	}
	in.Papers++
	in.Progress.Papers = in.Papers
	if c.Archive {
		arch.archive(ctx, *in)
	}
	// Peer review, as its own workflow on other nodes.
	if err := startReview(ctx, *in, ref); err != nil {
		log.Warn("peer review did not start", "paper", ref.PaperID, "error", err)
	}
}

// archiver runs ArchiveAgent without holding up the research loop; the
// agent waits for outstanding archive work before it continues as new or
// ends, and coalesces requests made while one is in flight.
type archiver struct {
	running, again bool
	in             AgentInput
}

func (a *archiver) archive(ctx workflow.Context, in AgentInput) {
	a.in = in
	if a.running {
		a.again = true
		return
	}
	a.running = true
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			a.again = false
			actx := workflow.WithActivityOptions(ctx, archiveOptions())
			err := workflow.ExecuteActivity(actx, ActArchiveAgent, ArchiveInput{
				CampaignID: a.in.CampaignID, Agent: a.in.Agent, Domain: a.in.Domain,
			}).Get(ctx, nil)
			if err != nil {
				workflow.GetLogger(ctx).Warn("archive failed", "agent", a.in.Agent, "error", err)
			}
			if !a.again {
				break
			}
		}
		a.running = false
	})
}

func (a *archiver) wait(ctx workflow.Context) {
	_ = workflow.Await(ctx, func() bool { return !a.running })
}

// researchCycle is one hypothesize -> experiment -> record pass.
func researchCycle(ctx workflow.Context, in AgentInput, run int) (Recorded, error) {
	seed := ExperimentSeed(in.Seed, in.Agent, run)

	// Hypothesize.
	hctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              in.NodeQueue, // empty: the workflow's own queue
		ScheduleToStartTimeout: nodeWait(in.NodeQueue),
		StartToCloseTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 5,
		},
	})
	var prop Proposal
	err := workflow.ExecuteActivity(hctx, ActHypothesize, HypothesizeInput{
		CampaignID: in.CampaignID, Domain: in.Domain, Agent: in.Agent, RunNumber: run, Seed: seed, LLM: in.LLM,
		Isolated: in.Isolated, NoEvolve: in.Community != nil && in.Community.NoEvolve,
	}).Get(ctx, &prop)
	if err != nil {
		return Recorded{}, fmt.Errorf("hypothesize run %d: %w", run, err)
	}

	// RunExperiment + RecordResult.
	floor := in.Floor
	var rec Recorded
	if err := cycleRun(ctx, cycleParams{campaign: in.CampaignID, domain: in.Domain, agent: in.Agent, run: run, seed: seed,
		prop: prop, budget: in.BudgetSeconds, heartbeatSecs: in.HeartbeatSeconds, floor: &floor, nodeQueue: in.NodeQueue}).Get(ctx, &rec); err != nil {
		return Recorded{}, err
	}
	// Share happens inside cycleRun on the agent's node (gossip + CRDT).
	// Synthesize/Review: the community issue adds paper synthesis and peer
	// review here, every few cycles.
	return rec, nil
}

// NodeWait is how long an activity waits for its P2P node to pick it up:
// a node that is gone fails the cycle instead of stalling the campaign.
const NodeWait = 10 * time.Minute

func nodeWait(queue string) time.Duration {
	if queue == "" {
		return 0 // the shared queue: any worker will do, wait as long as it takes
	}
	return NodeWait
}

// cycleParams are the inputs of one RunExperiment + RecordResult (+ Share).
type cycleParams struct {
	campaign, domain, agent string
	run                     int
	seed                    int64
	prop                    Proposal
	budget                  float64
	heartbeatSecs           int
	baseline                bool
	floor                   *NoiseFloor
	// nodeQueue runs RecordResult and Share on the agent's P2P node; empty:
	// RecordResult on the workflow's queue and no Share.
	nodeQueue string
}

// cycleRun runs RunExperiment, RecordResult and (on a P2P node) Share, and
// resolves with Recorded.
func cycleRun(ctx workflow.Context, c cycleParams) workflow.Future {
	campaign, domain, agent, run, seed, prop := c.campaign, c.domain, c.agent, c.run, c.seed, c.prop
	budget, heartbeatSecs, baseline, floor := c.budget, c.heartbeatSecs, c.baseline, c.floor
	if heartbeatSecs <= 0 {
		heartbeatSecs = DefaultHeartbeatSecs
	}
	fut, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		ectx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           ExperimentsQueue,
			StartToCloseTimeout: activityTimeouts(budget),
			HeartbeatTimeout:    time.Duration(heartbeatSecs) * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5,
				NonRetryableErrorTypes: []string{"InvalidConfig", "UnknownDomain"},
			},
		})
		var out Outcome
		err := workflow.ExecuteActivity(ectx, ActRunExperiment, ExperimentInput{
			CampaignID: campaign, Agent: agent, Domain: domain, RunNumber: run,
			Config: prop.Config, Seed: seed, BudgetSeconds: budget, Code: prop.Code,
		}).Get(ctx, &out)
		if err != nil {
			set.Set(nil, fmt.Errorf("experiment run %d: %w", run, err))
			return
		}
		ropts := bookkeepingOptions()
		ropts.TaskQueue = c.nodeQueue
		ropts.ScheduleToStartTimeout = nodeWait(c.nodeQueue)
		rctx := workflow.WithActivityOptions(ctx, ropts)
		var rec Recorded
		err = workflow.ExecuteActivity(rctx, ActRecordResult, RecordInput{
			CampaignID: campaign, Agent: agent, Domain: domain, RunNumber: run, Seed: seed,
			Proposal: prop, Outcome: out, Baseline: baseline, Floor: floor,
			TimestampMs: workflow.Now(ctx).UnixMilli(),
		}).Get(ctx, &rec)
		if err != nil {
			set.Set(nil, fmt.Errorf("record run %d: %w", run, err))
			return
		}
		if c.nodeQueue != "" {
			// Share: publish the signed receipt over gossip and merge it into
			// the node's CRDT replica. A failure to share loses nothing (the
			// CRDT anti-entropy catches up later), so it never fails the cycle.
			sopts := bookkeepingOptions()
			sopts.TaskQueue = c.nodeQueue
			sopts.ScheduleToStartTimeout = nodeWait(c.nodeQueue)
			sopts.RetryPolicy.MaximumAttempts = 3
			err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, sopts), ActShare,
				ShareInput{ExperimentID: rec.ExperimentID, CampaignID: campaign, Agent: agent}).Get(ctx, nil)
			if err != nil {
				workflow.GetLogger(ctx).Warn("share failed; anti-entropy will catch up", "experiment", rec.ExperimentID, "error", err)
			}
		}
		set.Set(rec, nil)
	})
	return fut
}

// notifyParent signals the campaign with this agent's progress (best effort).
func notifyParent(ctx workflow.Context, parentID string, p AgentProgress) {
	if parentID == "" {
		return
	}
	_ = workflow.SignalExternalWorkflow(ctx, parentID, "", SignalAgentProgress, p).Get(ctx, nil)
}
