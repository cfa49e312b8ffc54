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
// AgentProgress; while it runs, its "progress" query answers the same.
//
// One cycle:
//
//	Hypothesize   read what is known, propose a config and a one-line hypothesis
//	RunExperiment evaluate it on the experiments queue (heartbeats; retried elsewhere on a crash)
//	RecordResult  sign the receipt, judge it against the noise floor, store it
//	Share         publish the receipt to peers (gossip + the node's CRDT replica)
//	Synthesize    every PaperEvery experiments: a paper, then its peer review
//	evolve        the next Hypothesize sees this result (and breakthroughs first)
//
// The agent-side steps run on the agent's P2P node (NodeQueue). A node that
// stops answering (it does not pick a step up within NodeFailover) is left:
// the agent moves to a live node of the site (PickNode) and carries on
// there, under the same key (the site's keystore), with the step it was
// doing; an experiment that already ran is recorded once, on the new node.
func AgentWorkflow(ctx workflow.Context, in AgentInput) (*AgentProgress, error) {
	if in.CyclesPerRun <= 0 {
		in.CyclesPerRun = DefaultCyclesPerRun
	}
	p := &in.Progress
	p.Agent, p.Total = in.Agent, in.Experiments
	if p.Status == "" || p.Status == "pending" {
		p.Status = "running"
	}
	r := &route{agent: in.Agent, queue: in.NodeQueue, moves: in.Progress.Moves}
	sync := func() { in.NodeQueue, p.Node, p.Moves = r.queue, r.queue, r.moves }
	sync()
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (AgentProgress, error) { return *p, nil }); err != nil {
		return nil, err
	}
	stopCh := workflow.GetSignalChannel(ctx, SignalStop)
	checkStop := func() {
		for stopCh.ReceiveAsync(nil) {
			in.Stopped = true
		}
	}

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
			// Bound the history: carry the state into a fresh run. Nothing
			// waits here, so no signal can arrive between the last look at
			// the stop channel and the new run (one that arrives while this
			// task completes makes the server retry it with the signal).
			return nil, workflow.NewContinueAsNewError(ctx, AgentWorkflow, in)
		}
		run := in.NextRun
		in.NextRun++
		rec, prop, err := researchCycle(ctx, in, r, run)
		sync()
		if err == nil && rec.Candidate && in.Floor.Confirmations > 0 {
			rec = confirmCandidate(ctx, &in, r, prop, rec)
			sync()
		}
		if err != nil {
			p.Failed++
			p.LastError = err.Error()
			workflow.GetLogger(ctx).Warn("research cycle failed", "agent", in.Agent, "run", run, "error", err)
			continue
		}
		p.Done++
		if rec.IsNewBest {
			p.NewBests++
		}
		if p.Best == nil || in.Direction.Better(rec.Metric, p.Best.Metric) {
			p.Best = &Best{ExperimentID: rec.ExperimentID, Agent: in.Agent, Metric: rec.Metric, TestMetric: rec.TestMetric}
		}
		community(ctx, &in, r, rec)
		sync()
	}
	if in.Community != nil && in.Community.Archive {
		requestArchive(ctx, in, true)
	}
	return p, nil
}

// community runs the stages after a recorded experiment: archive the
// finding, and every PaperEvery experiments synthesize a paper and start
// its peer review. Failures here never fail the research cycle.
func community(ctx workflow.Context, in *AgentInput, r *route, rec Recorded) {
	c := in.Community
	if c == nil {
		return
	}
	log := workflow.GetLogger(ctx)
	if c.Archive {
		requestArchive(ctx, *in, false)
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
	o.StartToCloseTimeout = 3 * time.Minute // an LLM may write the prose
	o.HeartbeatTimeout = nodeHeartbeat
	o.RetryPolicy.MaximumAttempts = 5
	var ref PaperRef
	err := r.execute(ctx, o, ActWritePaper, PaperInput{
		CampaignID: in.CampaignID, Domain: in.Domain, Agent: in.Agent, Number: in.Papers + 1,
		Window: in.Window, Floor: in.Floor, LLM: in.LLM, TimestampMs: workflow.Now(ctx).UnixMilli(),
	}, &ref)
	in.Window = nil
	if err != nil {
		log.Warn("paper synthesis failed", "agent", in.Agent, "error", err)
		return
	}
	in.Papers++
	in.Progress.Papers = in.Papers
	if c.Archive {
		requestArchive(ctx, *in, false)
	}
	// Peer review, as its own workflow on other nodes.
	if err := startReview(ctx, *in, r, ref); err != nil {
		log.Warn("peer review did not start", "paper", ref.PaperID, "error", err)
	}
}

// ArchiverID is the workflow id of an agent's ArchiveWorkflow.
func ArchiverID(campaign, agent string) string { return "archive-" + campaign + "/" + agent }

// requestArchive asks the agent's ArchiveWorkflow to commit its branch,
// starting the archiver when none runs. The agent never waits for the
// archive: a slow or absent archive worker cannot hold up research.
func requestArchive(ctx workflow.Context, in AgentInput, final bool) {
	id := ArchiverID(in.CampaignID, in.Agent)
	req := ArchiveRequest{Final: final}
	if err := workflow.SignalExternalWorkflow(ctx, id, "", SignalArchive, req).Get(ctx, nil); err == nil {
		return
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        id,
		TaskQueue:         TaskQueue,
		ParentClosePolicy: parentAbandon,
	})
	f := workflow.ExecuteChildWorkflow(cctx, ArchiveWorkflow, ArchiverInput{
		CampaignID: in.CampaignID, Agent: in.Agent, Domain: in.Domain, Pending: true, Final: final,
	})
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		// Started meanwhile by an earlier request of ours: it will pick up
		// what the database holds when it next runs.
		workflow.GetLogger(ctx).Debug("archiver not started", "id", id, "error", err)
	}
}

// researchCycle is one hypothesize -> experiment -> record -> share pass.
func researchCycle(ctx workflow.Context, in AgentInput, r *route, run int) (Recorded, Proposal, error) {
	seed := ExperimentSeed(in.Seed, in.Agent, run)

	// Hypothesize.
	var prop Proposal
	err := r.execute(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    nodeHeartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{"SearchExhausted", "InvalidConfig"},
		},
	}, ActHypothesize, HypothesizeInput{
		CampaignID: in.CampaignID, Domain: in.Domain, Agent: in.Agent, RunNumber: run, Seed: seed, LLM: in.LLM,
		Isolated: in.Isolated, NoEvolve: in.Community != nil && in.Community.NoEvolve,
	}, &prop)
	if err != nil {
		return Recorded{}, prop, fmt.Errorf("hypothesize run %d: %w", run, err)
	}

	// RunExperiment + RecordResult + Share.
	floor := in.Floor
	var rec Recorded
	if err := cycleRun(ctx, cycleParams{campaign: in.CampaignID, domain: in.Domain, agent: in.Agent, run: run, seed: seed,
		prop: prop, budget: in.BudgetSeconds, heartbeatSecs: in.HeartbeatSeconds, floor: &floor, route: r, queue: in.ExperimentsQueue}).Get(ctx, &rec); err != nil {
		return Recorded{}, prop, err
	}
	return rec, prop, nil
}

// confirmCandidate re-runs a candidate's config with fresh seeds (run
// numbers of their own, on the experiments queue, so any worker of it may
// take them), one after the other, each judged against the incumbent best
// at the time it is recorded. The first that fails ends it: the candidate
// stays unconfirmed and its Recorded is returned. The last that passes is
// signed as the new best (its parents: the candidate and the earlier
// confirmations), and its Recorded is returned.
func confirmCandidate(ctx workflow.Context, in *AgentInput, r *route, prop Proposal, cand Recorded) Recorded {
	p := &in.Progress
	p.Candidates++
	total := in.Floor.Confirmations
	parents := []string{cand.ExperimentID}
	for i := 1; i <= total; i++ {
		run := in.NextRun
		in.NextRun++
		p.ConfirmationRuns++
		cp := prop
		cp.Parents = append([]string(nil), parents...)
		cp.Strategy = "confirm"
		cp.Hypothesis = fmt.Sprintf("confirmation %d/%d of %s with a fresh seed: %s", i, total, shortID(cand.ExperimentID), prop.Hypothesis)
		floor := in.Floor
		var rec Recorded
		err := cycleRun(ctx, cycleParams{campaign: in.CampaignID, domain: in.Domain, agent: in.Agent, run: run,
			seed: ExperimentSeed(in.Seed, in.Agent, run), prop: cp, budget: in.BudgetSeconds, heartbeatSecs: in.HeartbeatSeconds,
			floor: &floor, route: r, queue: in.ExperimentsQueue,
			confirm: &Confirm{Of: cand.ExperimentID, Index: i, Total: total}}).Get(ctx, &rec)
		if err != nil {
			workflow.GetLogger(ctx).Warn("confirmation run failed; candidate left unconfirmed", "candidate", cand.ExperimentID, "run", run, "error", err)
			return cand
		}
		if !rec.BeatsNoise {
			return cand
		}
		if rec.IsNewBest {
			p.Confirmed++
			return rec
		}
		parents = append(parents, rec.ExperimentID)
	}
	return cand
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
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
	confirm                 *Confirm
	// route runs RecordResult and Share on the agent's P2P node (moving it
	// when the node is gone); an empty queue: RecordResult on the
	// workflow's queue and no Share.
	route *route
	// queue runs RunExperiment (empty: ExperimentsQueue).
	queue string
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
		queue := c.queue
		if queue == "" {
			queue = ExperimentsQueue
		}
		ectx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           queue,
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
		// The input is fixed before the first attempt (its time included),
		// so a retry, on this node or on the one the agent moves to, signs
		// the same receipt or finds it stored.
		in := RecordInput{
			CampaignID: campaign, Agent: agent, Domain: domain, RunNumber: run, Seed: seed,
			Proposal: prop, Outcome: out, Baseline: baseline, Floor: floor,
			TimestampMs: workflow.Now(ctx).UnixMilli(), Confirm: c.confirm,
		}
		// An experiment that has run is recorded even when a stop cancels
		// the cycle meanwhile: the row and the count it makes must agree
		// (a cancelled RecordResult may still have committed its row).
		rctx := ctx
		if workflow.GetVersion(ctx, "record-despite-stop", workflow.DefaultVersion, 1) == 1 {
			rctx, _ = workflow.NewDisconnectedContext(ctx)
		}
		var rec Recorded
		if err := c.route.execute(rctx, bookkeepingOptions(), ActRecordResult, in, &rec); err != nil {
			set.Set(nil, fmt.Errorf("record run %d: %w", run, err))
			return
		}
		if c.route.queue != "" {
			// Share: publish the signed receipt over gossip and merge it into
			// the node's CRDT replica. A failure to share loses nothing (the
			// CRDT anti-entropy catches up later), so it never fails the cycle.
			o := bookkeepingOptions()
			o.RetryPolicy.MaximumAttempts = 3
			if err := c.route.execute(ctx, o, ActShare, ShareInput{ExperimentID: rec.ExperimentID, CampaignID: campaign, Agent: agent}, nil); err != nil {
				workflow.GetLogger(ctx).Warn("share failed; anti-entropy will catch up", "experiment", rec.ExperimentID, "error", err)
			}
		}
		set.Set(rec, nil)
	})
	return fut
}
