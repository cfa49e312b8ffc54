// Package repro measures how often a campaign's "new best" results
// reproduce: it runs campaigns in process (the built-in proposer, the
// domain's real evaluation, the production seeds), judges every result
// under two rules, and re-runs each new best and the reference it beat
// with fresh seeds, counting how many still hold.
//
// The rules are the two paths of activities.RecordResult:
//
//   - Before: the noise floor alone (a gain beats the campaign's best run so
//     far by more than K x the baseline seeds' SD; SD is 0 where the
//     evaluation is deterministic, so any strict gain is a new best), no
//     confirmations;
//   - After: noise.Judge against the incumbent (the best of the baselines
//     and the confirmed new bests), the paired item term plus the seed
//     term, Bonferroni over the planned trials, and C confirmation runs
//     with fresh seeds, each judged against the incumbent.
//
// A new best holds when, re-run with R fresh seeds (paired: the same seeds
// for it and for its reference), its mean gain over the reference is
// positive on the held-out test split. That is the question a reviewer's
// re-run asks: fresh seeds catch a lucky seed where training is stochastic,
// and the test split catches a lucky fit to the validation items where it
// is not (there a fresh seed re-computes the same number). The report also
// gives the fresh-seed rate on validation alone.
//
// Both rules see the same sequence of experiments (the proposer ranks by
// metric, not by the new-best flag), so the comparison is paired; the
// After rule's confirmation runs are extra evaluations the proposer does
// not see (in a real campaign they are rows of the history too).
package repro

import (
	"context"
	"fmt"
	"math"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/noise"
	"github.com/hyperspace-ai/hyperspace/internal/proposer"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// Spec is one domain's measurement.
type Spec struct {
	Domain        domains.Domain
	Opts          domains.EvalOptions
	Campaigns     int     // campaigns (campaign seeds 1..Campaigns)
	Experiments   int     // research experiments per campaign (one agent)
	BaselineSeeds int     // seeds of the noise floor (default 3)
	Reruns        int     // fresh seeds per re-run (default 3)
	K             float64 // the Before rule's floor multiple (default noise.DefaultK)
	Alpha         float64 // the After rule's family-wise rate (default noise.DefaultAlpha)
	Confirmations int     // the After rule's confirmation runs (default 2; < 0: none)
	// Progress, when set, is told what runs (one line per evaluation).
	Progress func(string)
}

// Rule names.
const (
	Before = "before" // K x SD floor against the best run so far
	After  = "after"  // noise.Judge against the incumbent, with confirmations
)

// NewBest is one result a rule signed as a new best, with its re-run.
type NewBest struct {
	Campaign  int
	Run       int
	Config    string  // config key
	Ref       string  // the reference's config key
	Gain      float64 // its gain over the reference when judged (direction-aware)
	ValGain   float64 // mean gain over R fresh seeds, validation split
	TestGain  float64 // the same on the test split
	HoldsVal  bool    // ValGain > 0
	HoldsTest bool    // TestGain > 0: the rate's definition
}

// Outcome is one rule's result on one domain.
type Outcome struct {
	Rule       string
	NewBests   []NewBest
	Candidates int // After: results that passed before confirmation
}

// Holds counts the new bests that hold on test (and on validation).
func (o Outcome) Holds() (test, val int) {
	for _, b := range o.NewBests {
		if b.HoldsTest {
			test++
		}
		if b.HoldsVal {
			val++
		}
	}
	return test, val
}

// Rate is the share of new bests that hold on test (NaN with none).
func (o Outcome) Rate() float64 {
	if len(o.NewBests) == 0 {
		return math.NaN()
	}
	t, _ := o.Holds()
	return float64(t) / float64(len(o.NewBests))
}

// Report is one domain's measurement.
type Report struct {
	Domain      string
	Campaigns   int
	Experiments int
	Evaluations int // distinct (config, seed) evaluations run
	Before      Outcome
	After       Outcome
}

// run is one evaluated (config, seed).
type run struct {
	cfg    domains.Config
	key    string
	metric float64
	test   float64
	items  *domains.Items
}

// evaluator evaluates each (config, seed) once.
type evaluator struct {
	spec  *Spec
	cache map[string]run
}

func (e *evaluator) eval(ctx context.Context, cfg domains.Config, seed int64, what string) (run, error) {
	key := cfg.Key()
	ck := fmt.Sprintf("%s|%d", key, seed)
	if r, ok := e.cache[ck]; ok {
		return r, nil
	}
	if e.spec.Progress != nil {
		e.spec.Progress(fmt.Sprintf("%s %s: %s seed %d", e.spec.Domain.Name(), what, key, seed))
	}
	res, err := e.spec.Domain.Evaluate(ctx, cfg, seed, e.spec.Opts)
	if err != nil {
		return run{}, fmt.Errorf("repro: %s %s: %w", what, key, err)
	}
	r := run{cfg: cfg, key: key, metric: res.Metric, test: res.TestMetric, items: res.Items}
	e.cache[ck] = r
	return r, nil
}

// Run measures spec's domain.
func Run(ctx context.Context, spec Spec) (Report, error) {
	if spec.Campaigns < 1 || spec.Experiments < 1 {
		return Report{}, fmt.Errorf("repro: need at least one campaign and one experiment, got %d and %d", spec.Campaigns, spec.Experiments)
	}
	if spec.BaselineSeeds < 2 {
		spec.BaselineSeeds = 3
	}
	if spec.Reruns < 1 {
		spec.Reruns = 3
	}
	if spec.K <= 0 {
		spec.K = noise.DefaultK
	}
	if spec.Alpha <= 0 {
		spec.Alpha = noise.DefaultAlpha
	}
	if spec.Confirmations == 0 {
		spec.Confirmations = 2
	}
	spec.Confirmations = max(spec.Confirmations, 0)
	ev := &evaluator{spec: &spec, cache: map[string]run{}}
	rep := Report{Domain: spec.Domain.Name(), Campaigns: spec.Campaigns, Experiments: spec.Experiments,
		Before: Outcome{Rule: Before}, After: Outcome{Rule: After}}
	for c := 1; c <= spec.Campaigns; c++ {
		if err := campaign(ctx, ev, c, &rep); err != nil {
			return rep, err
		}
	}
	rep.Evaluations = len(ev.cache)
	return rep, nil
}

// better reports whether a beats b strictly under dir.
func better(a, b float64, dir domains.Direction) bool { return gain(a, b, dir) > 0 }

// gain is a's direction-aware advantage over b (> 0: a is better).
func gain(a, b float64, dir domains.Direction) float64 {
	if dir == domains.Minimize {
		return b - a
	}
	return a - b
}

// campaign runs campaign c under both rules and re-runs their new bests.
func campaign(ctx context.Context, ev *evaluator, c int, rep *Report) error {
	spec := ev.spec
	d := spec.Domain
	dir := d.Metric().Direction
	const agent = "agent-0"
	seedOf := func(run int) int64 { return workflows.ExperimentSeed(int64(c), agent, run) }
	base, err := d.Validate(d.Baseline())
	if err != nil {
		return fmt.Errorf("repro: baseline: %w", err)
	}
	var history []proposer.Entry
	var baselines []run
	var values []float64
	runNo := 0
	for range spec.BaselineSeeds {
		runNo++
		r, err := ev.eval(ctx, base, seedOf(runNo), "baseline")
		if err != nil {
			return err
		}
		baselines = append(baselines, r)
		values = append(values, r.metric)
		history = append(history, proposer.Entry{ID: fmt.Sprintf("c%d-r%d", c, runNo), Agent: agent, Config: base, Metric: r.metric, Baseline: true})
	}
	floor, err := noise.Measure(values, spec.K)
	if err != nil {
		return err
	}
	// The best of the baselines starts both references.
	first := baselines[0]
	for _, b := range baselines[1:] {
		if better(b.metric, first.metric, dir) {
			first = b
		}
	}
	bestRun, incumbent := first, first // Before: best run so far; After: incumbent
	trials := spec.Experiments
	var pendingBefore, pendingAfter []pending
	confirmRun := 1_000_000 // seeds of confirmation runs: a stream of their own
	for e := 1; e <= spec.Experiments; e++ {
		runNo++
		seed := seedOf(runNo)
		p, err := proposer.Propose(d, history, seed)
		if err != nil {
			break // the space is exhausted: the campaign ends early
		}
		r, err := ev.eval(ctx, p.Config, seed, fmt.Sprintf("campaign %d experiment %d", c, e))
		if err != nil {
			return err
		}
		history = append(history, proposer.Entry{ID: fmt.Sprintf("c%d-r%d", c, runNo), Agent: agent, Config: r.cfg, Metric: r.metric})

		// Before: K x SD against the best run so far.
		if floor.Beats(r.metric, bestRun.metric, dir) {
			pendingBefore = append(pendingBefore, pending{run: e, cand: r, ref: bestRun, gain: gain(r.metric, bestRun.metric, dir)})
		}
		if better(r.metric, bestRun.metric, dir) {
			bestRun = r
		}

		// After: noise.Judge against the incumbent, then confirmations.
		judge := func(x run, nonce int) noise.Judgement {
			return noise.Judge(noise.JudgeInput{Candidate: x.metric, Best: incumbent.metric, Dir: dir,
				CandItems: x.items, BestItems: incumbent.items, SeedSD: floor.SD, SeedN: floor.N,
				Alpha: spec.Alpha, Trials: trials, Confirmations: spec.Confirmations,
				Seed: noise.BootstrapSeed(fmt.Sprint(c), agent, nonce)})
		}
		j := judge(r, runNo)
		if !j.Pass {
			continue
		}
		rep.After.Candidates++
		last, ok := r, true
		for i := 1; i <= spec.Confirmations && ok; i++ {
			confirmRun++
			cr, err := ev.eval(ctx, p.Config, seedOf(confirmRun), fmt.Sprintf("campaign %d confirmation %d/%d of experiment %d", c, i, spec.Confirmations, e))
			if err != nil {
				return err
			}
			ok = judge(cr, confirmRun).Pass
			last = cr
		}
		if ok {
			pendingAfter = append(pendingAfter, pending{run: e, cand: r, ref: incumbent, gain: j.Gain})
			incumbent = last
		}
	}
	for _, x := range []struct {
		out     *Outcome
		pending []pending
	}{{&rep.Before, pendingBefore}, {&rep.After, pendingAfter}} {
		for _, p := range x.pending {
			nb, err := rerun(ctx, ev, c, p, dir)
			if err != nil {
				return err
			}
			x.out.NewBests = append(x.out.NewBests, nb)
		}
	}
	return nil
}

// pending is a new best waiting for its re-run.
type pending struct {
	run       int
	cand, ref run
	gain      float64
}

// rerun re-runs a new best and its reference with the same fresh seeds.
func rerun(ctx context.Context, ev *evaluator, c int, p pending, dir domains.Direction) (NewBest, error) {
	nb := NewBest{Campaign: c, Run: p.run, Config: p.cand.key, Ref: p.ref.key, Gain: p.gain}
	for k := 1; k <= ev.spec.Reruns; k++ {
		seed := workflows.ExperimentSeed(int64(c), "reproduction", k)
		a, err := ev.eval(ctx, p.cand.cfg, seed, fmt.Sprintf("campaign %d re-run %d of experiment %d", c, k, p.run))
		if err != nil {
			return nb, err
		}
		b, err := ev.eval(ctx, p.ref.cfg, seed, fmt.Sprintf("campaign %d re-run %d of its reference", c, k))
		if err != nil {
			return nb, err
		}
		nb.ValGain += gain(a.metric, b.metric, dir)
		nb.TestGain += gain(a.test, b.test, dir)
	}
	nb.ValGain /= float64(ev.spec.Reruns)
	nb.TestGain /= float64(ev.spec.Reruns)
	nb.HoldsVal, nb.HoldsTest = nb.ValGain > 0, nb.TestGain > 0
	return nb, nil
}
