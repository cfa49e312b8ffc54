package workflows

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/noise"
)

// ErrInvalidInput is the ApplicationError type of a rejected campaign input.
const ErrInvalidInput = "InvalidCampaignInput"

// ValidateCampaign checks a campaign input; it is pure and shared with the API.
func ValidateCampaign(in CampaignInput) error {
	switch {
	case in.CampaignID == "":
		return errors.New("campaignId: required")
	case in.Domain == "":
		return errors.New("domain: required")
	case in.Agents < 1 || in.Agents > MaxAgents:
		return fmt.Errorf("agents: must be between 1 and %d, got %d", MaxAgents, in.Agents)
	case in.ExperimentsPerAgent < 1 || in.ExperimentsPerAgent > MaxExperiments:
		return fmt.Errorf("experiments: must be between 1 and %d, got %d", MaxExperiments, in.ExperimentsPerAgent)
	case in.Judge != nil && (in.Judge.Confirmations < 0 || in.Judge.Confirmations > MaxConfirmations):
		return fmt.Errorf("confirmations: must be between 0 and %d, got %d", MaxConfirmations, in.Judge.Confirmations)
	case in.Judge != nil && !(in.Judge.Alpha > 0 && in.Judge.Alpha <= 0.5):
		return fmt.Errorf("alpha: must be > 0 and <= 0.5, got %v", in.Judge.Alpha)
	case in.BaselineSeeds < MinBaselineSeeds || in.BaselineSeeds > MaxBaselineSeeds:
		return fmt.Errorf("baselineSeeds: must be between %d and %d, got %d", MinBaselineSeeds, MaxBaselineSeeds, in.BaselineSeeds)
	case in.BudgetSeconds < 0 || in.BudgetSeconds > MaxBudgetSeconds || math.IsNaN(in.BudgetSeconds):
		return fmt.Errorf("budget: seconds per experiment must be between 0 and %d, got %v", MaxBudgetSeconds, in.BudgetSeconds)
	case in.Direction != domains.Minimize && in.Direction != domains.Maximize:
		return fmt.Errorf("direction: must be %q or %q, got %q", domains.Minimize, domains.Maximize, in.Direction)
	case len(in.Baseline) == 0:
		return errors.New("baseline: required (the normalised baseline config)")
	}
	return nil
}

// nodeQueueFor spreads agents over the campaign's nodes round-robin.
func nodeQueueFor(in CampaignInput, agent int) string {
	if len(in.NodeQueues) == 0 {
		return ""
	}
	return in.NodeQueues[agent%len(in.NodeQueues)]
}

// AgentName is the name of agent i (0-based) of a campaign.
func AgentName(i int) string { return fmt.Sprintf("agent-%d", i+1) }

// MaxSeed bounds seeds to what a JSON number (an IEEE double) holds exactly,
// so a signed receipt covers the exact seed.
const MaxSeed = 1<<53 - 1

// ExperimentSeed derives a run's seed from the campaign seed, agent and run number.
func ExperimentSeed(campaignSeed int64, agent string, run int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", campaignSeed, agent, run)
	return int64(h.Sum64() & MaxSeed)
}

// campaignState is the mutable state behind the progress query.
type campaignState struct {
	Progress
	dir domains.Direction
}

// CampaignWorkflow runs a research campaign: validate, register agents,
// measure the noise floor with the baseline config over several seeds, run
// one AgentWorkflow child per agent, aggregate, and record the summary.
// Query "progress" returns Progress (agents' own progress comes from their
// workflows' queries: see MergeAgent); signal "stop" asks every agent to
// finish its current cycle and stop.
//
// Its history is bounded whatever the campaign's size: it takes no signal
// per experiment (agents are queried, not heard), registers and measures
// the baseline in O(agents + seeds) events, and waits for its children,
// whose own histories ContinueAsNew every CyclesPerRun cycles.
func CampaignWorkflow(ctx workflow.Context, in CampaignInput) (*Summary, error) {
	if err := ValidateCampaign(in); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, err)
	}
	if in.CyclesPerRun <= 0 {
		in.CyclesPerRun = DefaultCyclesPerRun
	}
	if in.HeartbeatSeconds <= 0 {
		in.HeartbeatSeconds = DefaultHeartbeatSecs
	}
	logger := workflow.GetLogger(ctx)
	st := &campaignState{dir: in.Direction, Progress: Progress{
		CampaignID: in.CampaignID, Domain: in.Domain, Direction: in.Direction, Phase: "baseline",
		Total:    in.BaselineSeeds + in.Agents*in.ExperimentsPerAgent,
		Baseline: BaselineProgress{Total: in.BaselineSeeds},
		Agents:   map[string]*AgentProgress{},
	}}
	agents := make([]string, in.Agents)
	routes := make([]*route, in.Agents)
	for i := range agents {
		agents[i] = AgentName(i)
		routes[i] = &route{agent: agents[i], queue: nodeQueueFor(in, i)}
		st.Agents[agents[i]] = &AgentProgress{Agent: agents[i], Total: in.ExperimentsPerAgent, Status: "pending"}
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) { return st.snapshot(), nil }); err != nil {
		return nil, err
	}
	stopCh := workflow.GetSignalChannel(ctx, SignalStop)

	bctx := workflow.WithActivityOptions(ctx, bookkeepingOptions())
	if err := workflow.ExecuteActivity(bctx, ActSetCampaignStatus, StatusInput{CampaignID: in.CampaignID, Status: "running"}).Get(ctx, nil); err != nil {
		return nil, fmt.Errorf("mark campaign running: %w", err)
	}
	// Each agent's key is created here, once for the site.
	regs := make([]workflow.Future, len(agents))
	for i, a := range agents {
		regs[i] = workflow.ExecuteActivity(bctx, ActRegisterAgent, RegisterAgentInput{CampaignID: in.CampaignID, Agent: a})
	}
	for i, f := range regs {
		if err := f.Get(ctx, nil); err != nil {
			return nil, fail(ctx, in, fmt.Errorf("register %s: %w", agents[i], err))
		}
	}

	// Phase 1: the noise floor. Baseline seeds run in parallel, assigned
	// round-robin to the agents (each agent signs its own runs).
	floor, runsPerAgent, err := runBaseline(ctx, in, agents, routes, st, stopCh)
	if err != nil && !(st.Stopped && errors.Is(err, errStoppedInBaseline)) {
		return nil, fail(ctx, in, err)
	}
	logger.Info("noise floor measured", "mean", floor.Mean, "sd", floor.SD, "n", floor.N)

	// Phase 2: one AgentWorkflow child per agent.
	st.Phase = "research"
	if st.Stopped {
		st.Phase = "stopping"
	}
	var children []workflow.ChildWorkflowFuture
	sel := workflow.NewSelector(ctx)
	pending := 0
	for i, a := range agents {
		if st.Stopped {
			break
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:        AgentWorkflowID(in.CampaignID, a),
			TaskQueue:         TaskQueue,
			ParentClosePolicy: 1, // terminate children if the campaign is terminated
		})
		f := workflow.ExecuteChildWorkflow(cctx, AgentWorkflow, AgentInput{
			CampaignID: in.CampaignID,
			Agent:      a, Domain: in.Domain, Direction: in.Direction, Experiments: in.ExperimentsPerAgent,
			NextRun: runsPerAgent[i] + 1, Seed: in.Seed, Floor: floor, Baseline: in.Baseline,
			LLM: in.LLM, BudgetSeconds: in.BudgetSeconds, CyclesPerRun: in.CyclesPerRun,
			HeartbeatSeconds: in.HeartbeatSeconds, Isolated: in.Isolated, NodeQueue: routes[i].queue,
			AllNodeQueues: in.NodeQueues, Community: in.Community, ExperimentsQueue: in.ExperimentsQueue,
			Progress: AgentProgress{Agent: a, Total: in.ExperimentsPerAgent, Moves: routes[i].moves},
		})
		children = append(children, f)
		st.Agents[a].Status = "running"
		pending++
		agent := a
		sel.AddFuture(f, func(f workflow.Future) {
			pending--
			var p AgentProgress
			if err := f.Get(ctx, &p); err != nil {
				logger.Error("agent failed", "agent", agent, "error", err)
				st.Agents[agent].Status = "failed"
				st.Agents[agent].LastError = err.Error()
				return
			}
			st.applyAgent(p)
		})
	}
	sel.AddReceive(stopCh, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		if st.Stopped {
			return
		}
		st.Stopped, st.Phase = true, "stopping"
		for _, f := range children {
			f.SignalChildWorkflow(ctx, SignalStop, nil) // best effort; a finished child ignores it
		}
	})
	for pending > 0 {
		sel.Select(ctx)
	}

	st.Phase = "done"
	sum := st.makeSummary(floor)
	if err := workflow.ExecuteActivity(bctx, ActSetCampaignStatus, StatusInput{CampaignID: in.CampaignID, Status: sum.Status, Summary: &sum}).Get(ctx, nil); err != nil {
		return nil, fmt.Errorf("record summary: %w", err)
	}
	return &sum, nil
}

// AgentWorkflowID is the workflow id of a campaign's agent.
func AgentWorkflowID(campaign, agent string) string { return campaign + "/" + agent }

func bookkeepingOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		},
	}
}

// fail records a failed campaign and returns err.
func fail(ctx workflow.Context, in CampaignInput, err error) error {
	bctx := workflow.WithActivityOptions(ctx, bookkeepingOptions())
	_ = workflow.ExecuteActivity(bctx, ActSetCampaignStatus, StatusInput{CampaignID: in.CampaignID, Status: "failed", Error: err.Error()}).Get(ctx, nil)
	return err
}

// runBaseline runs the baseline config with BaselineSeeds seeds and measures the noise floor.
// errStoppedInBaseline: the campaign was stopped before its noise floor was measured.
var errStoppedInBaseline = errors.New("stopped during the baseline")

func runBaseline(ctx workflow.Context, in CampaignInput, agents []string, routes []*route, st *campaignState, stopCh workflow.ReceiveChannel) (NoiseFloor, []int, error) {
	// A stop cancels the baseline runs that have not finished.
	bctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	type job struct {
		agent string
		run   int
		seed  int64
		f     workflow.Future
	}
	runs := make([]int, len(agents))
	var jobs []*job
	for i := 0; i < in.BaselineSeeds; i++ {
		ai := i % len(agents)
		runs[ai]++
		j := &job{agent: agents[ai], run: runs[ai]}
		j.seed = ExperimentSeed(in.Seed, "baseline", i)
		jobs = append(jobs, j)
	}
	prop := Proposal{Config: in.Baseline, Strategy: "baseline", Proposer: "baseline", Parents: []string{}}
	sel := workflow.NewSelector(ctx)
	values := make([]float64, 0, len(jobs))
	var firstErr error
	pending := 0
	for i, j := range jobs {
		p := prop
		p.Hypothesis = fmt.Sprintf("Baseline: the reference config with seed %d (%d of %d), measuring the noise floor", j.seed, i+1, len(jobs))
		jj := j
		jj.f = cycleRun(bctx, cycleParams{campaign: in.CampaignID, domain: in.Domain, agent: jj.agent, run: jj.run, seed: jj.seed,
			prop: p, budget: in.BudgetSeconds, heartbeatSecs: in.HeartbeatSeconds, baseline: true, queue: in.ExperimentsQueue,
			route: routes[agentIndex(agents, jj.agent)]})
		pending++
		sel.AddFuture(jj.f, func(f workflow.Future) {
			pending--
			var rec Recorded
			if err := f.Get(ctx, &rec); err != nil {
				if st.Stopped {
					return // cancelled by the stop: not a failure
				}
				st.Baseline.Failed++
				st.Progress.Failed++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			st.Done++
			st.Baseline.Done++
			values = append(values, rec.Metric)
			st.Baseline.Values = append(st.Baseline.Values, rec.Metric)
			st.offerBest(Best{ExperimentID: rec.ExperimentID, Agent: jj.agent, Metric: rec.Metric, TestMetric: rec.TestMetric, Hypothesis: p.Hypothesis})
		})
	}
	sel.AddReceive(stopCh, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		st.Stopped = true
		cancel()
	})
	for pending > 0 {
		sel.Select(ctx)
	}
	if st.Stopped && len(values) < len(jobs) {
		f := NoiseFloor{}
		if len(values) >= 2 {
			f = measureFloor(values, 2)
		}
		return f, runs, errStoppedInBaseline
	}
	if len(values) < 2 {
		return NoiseFloor{}, runs, fmt.Errorf("noise floor: only %d of %d baseline runs succeeded: %v", len(values), len(jobs), firstErr)
	}
	floor := measureFloor(values, 2)
	if j := in.Judge; j != nil {
		floor.Alpha, floor.Confirmations = j.Alpha, j.Confirmations
		floor.Trials = max(in.Agents*in.ExperimentsPerAgent, 1)
	}
	st.Baseline.Floor = &floor
	return floor, runs, nil
}

func agentIndex(agents []string, a string) int {
	for i, x := range agents {
		if x == a {
			return i
		}
	}
	return 0
}

// measureFloor is the noise floor of the baseline runs (noise.Measure: the
// mean and sample standard deviation, summed in sorted order so that the
// floor does not depend on the order the runs finished in). Callers pass at
// least two finite values.
func measureFloor(values []float64, k float64) NoiseFloor {
	f, err := noise.Measure(values, k)
	if err != nil {
		return NoiseFloor{N: len(values), K: k}
	}
	return NoiseFloor{Mean: f.Mean, SD: f.SD, N: f.N, K: f.K}
}

// offerBest keeps b if it beats the campaign's best so far.
func (st *campaignState) offerBest(b Best) {
	if st.Best == nil || st.dir.Better(b.Metric, st.Best.Metric) {
		bb := b
		st.Best = &bb
	}
}

func (st *campaignState) applyAgent(p AgentProgress) {
	st.Agents[p.Agent] = &p
	st.recount()
}

func (st *campaignState) recount() {
	st.Progress.recount(st.dir)
}

// recount derives the totals and the best from the agents and the baseline.
func (p *Progress) recount(dir domains.Direction) {
	done, failed := p.Baseline.Done, p.Baseline.Failed
	for _, a := range p.Agents {
		done += a.Done
		failed += a.Failed
		if a.Best != nil && (p.Best == nil || dir.Better(a.Best.Metric, p.Best.Metric)) {
			b := *a.Best
			p.Best = &b
		}
	}
	p.Done = done
	p.Failed = failed
}

// MergeAgent puts a running agent's own progress (from its workflow's
// query) into a campaign's Progress and recounts the totals: the campaign
// does not hear from its agents while they run, so that its history stays
// bounded. A later state never goes backwards.
func (p *Progress) MergeAgent(a AgentProgress) {
	if p.Agents == nil {
		p.Agents = map[string]*AgentProgress{}
	}
	if cur := p.Agents[a.Agent]; cur != nil && a.Done+a.Failed < cur.Done+cur.Failed {
		return
	}
	p.Agents[a.Agent] = &a
	p.recount(p.Direction)
}

func (st *campaignState) snapshot() Progress {
	p := st.Progress
	p.Agents = make(map[string]*AgentProgress, len(st.Agents))
	for k, v := range st.Agents {
		vv := *v
		p.Agents[k] = &vv
	}
	p.Baseline.Values = append([]float64(nil), st.Baseline.Values...)
	return p
}

func (st *campaignState) makeSummary(floor NoiseFloor) Summary {
	st.recount()
	s := Summary{CampaignID: st.CampaignID, Domain: st.Domain, Status: "completed", Floor: floor, Best: st.Best,
		Experiments: st.Done, Failed: st.Progress.Failed}
	if st.Stopped {
		s.Status = "stopped"
	}
	names := make([]string, 0, len(st.Agents))
	for n := range st.Agents {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := *st.Agents[n]
		s.NewBests += a.NewBests
		s.ConfirmationRuns += a.ConfirmationRuns
		s.Agents = append(s.Agents, a)
	}
	return s
}
