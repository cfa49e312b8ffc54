// Package proposer is the built-in, deterministic experiment proposer: an
// informed search over a domain's space that needs no LLM.
//
// Given the history of evaluated configs, Propose ranks them by the
// domain's metric direction and picks one of three strategies:
//
//   - mutate: pick a parent from the top of the ranking by tournament
//     selection and perturb one or two of its parameters. Numeric
//     parameters move by a Gaussian step whose width is a fraction of the
//     range (of log(range) when Param.Log, i.e. a multiplicative step);
//     ints are rounded, floats kept to 4 significant digits, and both are
//     clamped to [Min, Max]. Choices switch to another choice, bools flip.
//   - crossover: uniform crossover of two tournament-selected top configs.
//   - explore: a fresh sample biased towards the baseline: half the time a
//     Gaussian around the baseline value with a wide step (choices keep the
//     baseline value with probability 1/2), otherwise a uniform sample of
//     the space (log-uniform for Log params).
//
// # Surrogate screening
//
// Once at least 5 distinct configs have been evaluated, an exploit call
// generates ScreenSize new valid mutation/crossover candidates and returns
// the one a small surrogate model ranks best: a ridge-regressed separable
// quadratic response surface fitted to the ranks of the history (see
// surrogate.go). Explore moves are never screened.
//
// # Schedule
//
// With n distinct configs evaluated (finite metric), the probability of
// exploring is ExploreProbability(n) = 0.1 + 0.4·exp(-n/8): 0.45 after the
// first run, ~0.21 after 10, ~0.11 after 30. Otherwise it exploits: a
// crossover with probability 0.3 when at least two configs are ranked, a
// mutation otherwise. The mutation step shrinks as the history grows,
// StepScale(n) = 0.05 + 0.25·exp(-n/20) of the (log) range, and widens on
// each retry within one call so a saturated neighbourhood is escaped.
//
// # Guarantees
//
// Every proposal is passed through Domain.Validate (invalid candidates,
// e.g. violating cross-parameter constraints, are retried with a new
// perturbation) and is never a config whose Key() already appears in the
// history. After MaxAttempts random attempts it scans the single-parameter
// neighbours of every ranked config; if none is new it returns an error
// wrapping ErrExhausted. The baseline is the config of the history's
// entries marked Baseline (else the domain's); when it has not been
// evaluated yet it is proposed first. The result depends only on (domain, history, seed).
package proposer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Entry is one evaluated experiment as the proposer sees it.
type Entry struct {
	ID       string         // receipt id
	Agent    string         // agent that ran it
	Config   domains.Config // the evaluated config
	Metric   float64        // the domain metric (validation split); NaN/Inf = failed run
	Baseline bool           // a noise-floor baseline run
	CodeHash string         // sha256 of the candidate's source code, if it had any
	// Breakthrough marks the key result of a peer-reviewed breakthrough
	// paper (evolve): such configs are preferred as parents.
	Breakthrough bool
	// Key, on an entry without Config, marks a config key as tried without
	// ranking it (the caller knows it was run; a proposal must not repeat it).
	Key string
}

// BreakthroughParentProbability is the share of exploit moves whose first
// parent is a breakthrough's config, when the history has any (evolve).
const BreakthroughParentProbability = 0.5

// Proposal is the next experiment to run.
type Proposal struct {
	Config     domains.Config // normalised by the domain's Validate
	Hypothesis string         // one line explaining the proposal
	Parents    []string       // receipt ids it was derived from (best first)
	Strategy   string         // "baseline" | "mutate" | "crossover" | "explore" (or "llm" from package llm)
	Code       string         // source code of the candidate (LLM proposals for a domains.CodeDomain)
}

// Strategies.
const (
	StrategyBaseline  = "baseline"
	StrategyMutate    = "mutate"
	StrategyCrossover = "crossover"
	StrategyExplore   = "explore"
)

// MaxAttempts bounds the random attempts of one Propose call before the
// systematic neighbour scan.
const MaxAttempts = 200

// ErrExhausted is returned (wrapped) when no new valid config can be found.
var ErrExhausted = errors.New("proposer: no new valid config found (search space exhausted)")

// ExploreProbability is the chance of exploring after n distinct evaluated
// configs: 0.1 + 0.4·exp(-n/8).
func ExploreProbability(n int) float64 { return 0.1 + 0.4*math.Exp(-float64(n)/8) }

// StepScale is the mutation step, as a fraction of a parameter's (log)
// range, after n distinct evaluated configs: 0.05 + 0.25·exp(-n/20).
func StepScale(n int) float64 { return 0.05 + 0.25*math.Exp(-float64(n)/20) }

// ScreenSize is how many new valid exploit candidates one call generates
// and screens with the surrogate model before returning the most promising.
const ScreenSize = 8

// crossoverProbability is the share of exploit moves that recombine.
const crossoverProbability = 0.3

// ranked is one distinct evaluated config.
type ranked struct {
	id     string // first entry with this config
	cfg    domains.Config
	key    string
	metric float64 // mean over the entries with this config
	n      int
	// breakthrough: some entry with this config is a breakthrough's key result.
	breakthrough bool
}

type state struct {
	d          domains.Domain
	space      domains.Space
	dir        domains.Direction
	metricName string
	rng        *rand.Rand
	seen       map[string]bool
	ranked     []*ranked // best first
	breaks     []*ranked // breakthrough configs, best first
	evolve     bool      // this proposal builds on a breakthrough
	base       domains.Config
	baseID     string  // id of the evaluated baseline, if any
	scale      float64 // mutation step: StepScale(len(ranked))
}

// Propose returns the next config to evaluate for d given history. It is
// deterministic for the same (domain, history, seed).
func Propose(d domains.Domain, history []Entry, seed int64) (Proposal, error) {
	space := d.Space()
	// The campaign's baseline is the one its history marks (a campaign may
	// override the domain's defaults); without one, the domain's.
	baseCfg := d.Baseline()
	for _, e := range history {
		if e.Baseline && e.Config != nil {
			baseCfg = e.Config
			break
		}
	}
	base, err := d.Validate(baseCfg)
	if err != nil {
		return Proposal{}, fmt.Errorf("proposer: %s baseline is invalid: %w", d.Name(), err)
	}
	s := &state{
		d:          d,
		space:      space,
		dir:        d.Metric().Direction,
		metricName: d.Metric().Name,
		rng:        rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		seen:       map[string]bool{},
		base:       base,
	}
	s.index(history)
	baseKey := base.Key()
	if !s.seen[baseKey] {
		return Proposal{
			Config:     base,
			Hypothesis: fmt.Sprintf("Run the %s baseline config to anchor comparisons on %s (baseline)", d.Name(), s.metricName),
			Parents:    []string{},
			Strategy:   StrategyBaseline,
		}, nil
	}
	for _, r := range s.ranked {
		if r.key == baseKey {
			s.baseID = r.id
		}
	}

	if len(s.breaks) > 0 {
		// Decided once per proposal, so the surrogate screen compares
		// candidates that all build on the breakthrough.
		s.evolve = s.rng.Float64() < BreakthroughParentProbability
	}
	n := len(s.ranked)
	s.scale = StepScale(n)
	invalid, repeats := 0, 0
	var lastInvalid error
	exploring := n == 0 || s.rng.Float64() < ExploreProbability(n)
	model := s.fitSurrogate()
	var pool []Proposal // valid, new exploit candidates to screen
	for attempt := 0; attempt < MaxAttempts; attempt++ {
		widen := 1 + float64(attempt)/10
		var p Proposal
		switch {
		case exploring || attempt >= MaxAttempts/2 && attempt%2 == 0:
			p = s.explore()
		case n >= 2 && s.rng.Float64() < crossoverProbability:
			p = s.crossover(widen)
		default:
			p = s.mutate(widen)
		}
		if p.Config == nil {
			continue
		}
		v, err := d.Validate(p.Config)
		if err != nil {
			invalid++
			lastInvalid = err
			continue
		}
		if s.seen[v.Key()] || containsKey(pool, v.Key()) {
			repeats++
			continue
		}
		p.Config = v
		if p.Strategy == StrategyExplore || model == nil {
			p.Hypothesis = s.hypothesis(p, v)
			return p, nil
		}
		pool = append(pool, p)
		if len(pool) == ScreenSize {
			break
		}
	}
	if len(pool) > 0 {
		best, bestScore := 0, math.Inf(1)
		for i, p := range pool {
			if sc := model.predict(p.Config); sc < bestScore {
				best, bestScore = i, sc
			}
		}
		p := pool[best]
		p.Hypothesis = s.hypothesis(p, p.Config)
		return p, nil
	}
	if p, ok := s.scan(); ok {
		return p, nil
	}
	msg := fmt.Sprintf("%d attempts: %d invalid, %d repeats, and no untried single-parameter neighbour of %d evaluated configs", MaxAttempts, invalid, repeats, n)
	if lastInvalid != nil {
		msg += fmt.Sprintf(" (last validation error: %v)", lastInvalid)
	}
	return Proposal{}, fmt.Errorf("%w: %s", ErrExhausted, msg)
}

// index fills seen and ranked from history.
func (s *state) index(history []Entry) {
	byKey := map[string]*ranked{}
	var order []*ranked
	for _, e := range history {
		if e.Config == nil {
			if e.Key != "" {
				s.seen[e.Key] = true
			}
			continue
		}
		s.seen[e.Config.Key()] = true
		v, err := s.d.Validate(e.Config)
		if err != nil {
			continue
		}
		key := v.Key()
		s.seen[key] = true
		if math.IsNaN(e.Metric) || math.IsInf(e.Metric, 0) {
			continue
		}
		r := byKey[key]
		if r == nil {
			r = &ranked{id: e.ID, cfg: v, key: key}
			byKey[key] = r
			order = append(order, r)
		}
		r.metric += (e.Metric - r.metric) / float64(r.n+1) // running mean
		r.n++
		r.breakthrough = r.breakthrough || e.Breakthrough
	}
	sort.SliceStable(order, func(i, j int) bool { return s.dir.Better(order[i].metric, order[j].metric) })
	s.ranked = order
	for _, r := range order {
		if r.breakthrough {
			s.breaks = append(s.breaks, r)
		}
	}
}

// parent picks the first parent of an exploit move: when this proposal
// evolves (with BreakthroughParentProbability, if there are breakthroughs)
// a breakthrough's config (a size-2 tournament among them), otherwise the
// tournament over the ranking. Without breakthroughs it draws exactly what
// tournament draws, so evolve changes nothing until a breakthrough exists.
func (s *state) parent() *ranked {
	if s.evolve {
		i, j := s.rng.IntN(len(s.breaks)), s.rng.IntN(len(s.breaks))
		return s.breaks[min(i, j)]
	}
	return s.tournament(nil)
}

// tournament returns a ranked config chosen by a size-2 tournament among
// the top of the ranking (the top quarter, at least 3).
func (s *state) tournament(exclude *ranked) *ranked {
	pool := min(len(s.ranked), max(3, len(s.ranked)/4))
	best := -1
	for range 2 {
		i := s.rng.IntN(pool)
		if s.ranked[i] == exclude {
			continue
		}
		if best < 0 || i < best {
			best = i
		}
	}
	if best < 0 {
		for i := range pool {
			if s.ranked[i] != exclude {
				return s.ranked[i]
			}
		}
		return nil
	}
	return s.ranked[best]
}

// mutable reports whether p can take more than one value.
func mutable(p domains.Param) bool {
	if p.Fixed {
		return false
	}
	switch p.Kind {
	case domains.Int, domains.Float:
		return p.Max > p.Min
	case domains.Choice:
		return len(p.Choices) >= 2
	case domains.Bool:
		return true
	}
	return false
}

func (s *state) mutate(widen float64) Proposal {
	parent := s.parent()
	cfg := parent.cfg.Clone()
	if !s.perturb(cfg, 1+boolInt(s.rng.Float64() < 0.4), widen) {
		return Proposal{}
	}
	return Proposal{Config: cfg, Parents: []string{parent.id}, Strategy: StrategyMutate}
}

// perturb changes k distinct mutable parameters of cfg in place.
func (s *state) perturb(cfg domains.Config, k int, widen float64) bool {
	var idx []int
	for i, p := range s.space {
		if mutable(p) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return false
	}
	k = min(k, len(idx))
	for _, j := range s.rng.Perm(len(idx))[:k] {
		p := s.space[idx[j]]
		cfg[p.Name] = s.perturbParam(p, cfg[p.Name], math.Min(1, s.scale*widen))
	}
	return true
}

func (s *state) perturbParam(p domains.Param, v any, scale float64) any {
	switch p.Kind {
	case domains.Choice:
		cur, _ := v.(string)
		var others []string
		for _, c := range p.Choices {
			if c != cur {
				others = append(others, c)
			}
		}
		return others[s.rng.IntN(len(others))]
	case domains.Bool:
		b, _ := v.(bool)
		return !b
	}
	x := domains.Config{"v": v}.Float("v")
	for range 8 {
		if nx := s.step(p, x, scale); nx != x {
			return nx
		}
	}
	if p.Kind == domains.Int { // a step too small to survive rounding
		if x+1 <= p.Max {
			return x + 1
		}
		return x - 1
	}
	return x
}

// step draws a Gaussian step of width scale (a fraction of the range, or
// of log-range when p.Log) from x, then rounds and clamps.
func (s *state) step(p domains.Param, x, scale float64) float64 {
	var nx float64
	if p.Log && p.Min > 0 {
		lo, hi := math.Log(p.Min), math.Log(p.Max)
		nx = math.Exp(math.Log(math.Max(x, p.Min)) + s.rng.NormFloat64()*scale*(hi-lo))
	} else {
		nx = x + s.rng.NormFloat64()*scale*(p.Max-p.Min)
	}
	return roundClamp(p, nx)
}

// roundClamp rounds ints to integers and floats to 4 significant digits,
// then clamps to [Min, Max].
func roundClamp(p domains.Param, x float64) float64 {
	if p.Kind == domains.Int {
		x = math.Round(x)
		lo, hi := math.Ceil(p.Min), math.Floor(p.Max)
		return math.Max(lo, math.Min(hi, x))
	}
	if x != 0 {
		x, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', 4, 64), 64)
	}
	return math.Max(p.Min, math.Min(p.Max, x))
}

func (s *state) crossover(widen float64) Proposal {
	a := s.parent()
	b := s.tournament(a)
	if b == nil {
		return s.mutate(widen)
	}
	if s.dir.Better(b.metric, a.metric) {
		a, b = b, a
	}
	child := make(domains.Config, len(s.space))
	for _, p := range s.space {
		if s.rng.Float64() < 0.5 {
			child[p.Name] = b.cfg[p.Name]
		} else {
			child[p.Name] = a.cfg[p.Name]
		}
	}
	if k := child.Key(); k == a.key || k == b.key {
		s.perturb(child, 1, widen)
	}
	return Proposal{Config: child, Parents: []string{a.id, b.id}, Strategy: StrategyCrossover}
}

// exploreScale is the step width of exploration around the baseline.
const exploreScale = 0.35

// explore draws a fresh sample biased towards the baseline: with
// probability 1/2 a Gaussian around the baseline (exploreScale of each
// range, choices and bools kept with probability 1/2), otherwise a uniform
// sample of the whole space (log-uniform for Log params).
func (s *state) explore() Proposal {
	cfg := s.base.Clone()
	uniform := s.rng.Float64() < 0.5
	for _, p := range s.space {
		if !mutable(p) {
			continue
		}
		switch p.Kind {
		case domains.Choice:
			if uniform || s.rng.Float64() < 0.5 {
				cfg[p.Name] = p.Choices[s.rng.IntN(len(p.Choices))]
			}
		case domains.Bool:
			if uniform || s.rng.Float64() < 0.5 {
				cfg[p.Name] = s.rng.Float64() < 0.5
			}
		default:
			if uniform {
				cfg[p.Name] = roundClamp(p, denorm(p, s.rng.Float64()))
			} else {
				cfg[p.Name] = s.step(p, cfg.Float(p.Name), exploreScale)
			}
		}
	}
	var parents []string
	if s.baseID != "" && !uniform {
		parents = []string{s.baseID}
	}
	return Proposal{Config: cfg, Parents: orEmpty(parents), Strategy: StrategyExplore}
}

// norm maps a numeric value of p to [0, 1] (on a log scale when p.Log).
func norm(p domains.Param, x float64) float64 {
	if p.Max <= p.Min {
		return 0
	}
	if p.Log && p.Min > 0 {
		return (math.Log(math.Max(x, p.Min)) - math.Log(p.Min)) / (math.Log(p.Max) - math.Log(p.Min))
	}
	return (x - p.Min) / (p.Max - p.Min)
}

// denorm is the inverse of norm.
func denorm(p domains.Param, u float64) float64 {
	if p.Log && p.Min > 0 {
		return math.Exp(math.Log(p.Min) + u*(math.Log(p.Max)-math.Log(p.Min)))
	}
	return p.Min + u*(p.Max-p.Min)
}

// scan tries every single-parameter neighbour of every ranked config (best
// first), then of the baseline, and returns the first new valid one.
func (s *state) scan() (Proposal, bool) {
	sources := append([]*ranked(nil), s.ranked...)
	if s.baseID == "" {
		sources = append(sources, &ranked{cfg: s.base, key: s.base.Key()})
	}
	for _, src := range sources {
		for _, p := range s.space {
			if !mutable(p) {
				continue
			}
			for _, nv := range neighbours(p, src.cfg[p.Name]) {
				cfg := src.cfg.Clone()
				cfg[p.Name] = nv
				v, err := s.d.Validate(cfg)
				if err != nil || s.seen[v.Key()] {
					continue
				}
				prop := Proposal{Config: v, Parents: []string{}, Strategy: StrategyMutate}
				if src.id != "" {
					prop.Parents = []string{src.id}
				}
				prop.Hypothesis = s.hypothesis(prop, v)
				return prop, true
			}
		}
	}
	return Proposal{}, false
}

// neighbours lists the values next to v for a systematic scan.
func neighbours(p domains.Param, v any) []any {
	switch p.Kind {
	case domains.Choice:
		out := []any{}
		for _, c := range p.Choices {
			if c != v {
				out = append(out, c)
			}
		}
		return out
	case domains.Bool:
		b, _ := v.(bool)
		return []any{!b}
	}
	x := domains.Config{"v": v}.Float("v")
	var cands []float64
	if p.Kind == domains.Int {
		cands = []float64{x - 1, x + 1}
	} else {
		d := (p.Max - p.Min) / 20
		cands = []float64{x - d, x + d}
		if p.Log && p.Min > 0 {
			cands = append(cands, x/1.5, x*1.5)
		}
	}
	cands = append(cands, p.Min, p.Max, (p.Min+p.Max)/2)
	var out []any
	for _, c := range cands {
		if c = roundClamp(p, c); c != x {
			out = append(out, c)
		}
	}
	return out
}

// hypothesis writes the one-line explanation of p (whose config is v).
func (s *state) hypothesis(p Proposal, v domains.Config) string {
	byID := map[string]*ranked{}
	for _, r := range s.ranked {
		byID[r.id] = r
	}
	var parent *ranked
	if len(p.Parents) > 0 {
		parent = byID[p.Parents[0]]
	}
	ref := s.base
	if parent != nil {
		ref = parent.cfg
	}
	changes := s.describe(ref, v)
	switch p.Strategy {
	case StrategyCrossover:
		other := byID[p.Parents[1]]
		return fmt.Sprintf("Combine %s with %s: %s (exploit, crossover)",
			s.label(parent), s.label(other), changes)
	case StrategyExplore:
		if parent != nil {
			return fmt.Sprintf("Explore around the baseline %s: %s (explore, fresh sample)", s.label(parent), changes)
		}
		return fmt.Sprintf("Explore a fresh region of the space (uniform sample), relative to the baseline: %s (explore, fresh sample)", changes)
	default:
		if parent == nil {
			return fmt.Sprintf("Try a neighbour of the baseline: %s (exploit, mutation)", changes)
		}
		return fmt.Sprintf("Improve on %s: %s (exploit, mutation)", s.label(parent), changes)
	}
}

// label is "<first 8 chars of id> (<metric>=<value>)".
func (s *state) label(r *ranked) string {
	if r == nil {
		return "?"
	}
	id := r.id
	if len(id) > 8 {
		id = id[:8]
	}
	if r.breakthrough {
		return fmt.Sprintf("breakthrough %s (%s=%s)", id, s.metricName, formatMetric(r.metric))
	}
	return fmt.Sprintf("%s (%s=%s)", id, s.metricName, formatMetric(r.metric))
}

// describe lists what changed from ref to v in space order.
func (s *state) describe(ref, v domains.Config) string {
	var parts []string
	for _, p := range s.space {
		a, b := ref[p.Name], v[p.Name]
		switch p.Kind {
		case domains.Int, domains.Float:
			x, y := ref.Float(p.Name), v.Float(p.Name)
			if x == y {
				continue
			}
			verb := "raise"
			if y < x {
				verb = "lower"
			}
			parts = append(parts, fmt.Sprintf("%s %s %s -> %s", verb, p.Name, formatNum(x), formatNum(y)))
		case domains.Bool:
			if a == b {
				continue
			}
			if v.Bool(p.Name) {
				parts = append(parts, "enable "+p.Name)
			} else {
				parts = append(parts, "disable "+p.Name)
			}
		default:
			if a == b {
				continue
			}
			parts = append(parts, fmt.Sprintf("switch %s %v -> %v", p.Name, a, b))
		}
	}
	if len(parts) == 0 {
		return "no parameter change"
	}
	return strings.Join(parts, ", ")
}

func formatNum(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return strconv.FormatInt(int64(x), 10)
	}
	return strconv.FormatFloat(x, 'g', 6, 64)
}

func formatMetric(x float64) string {
	if a := math.Abs(x); a != 0 && (a >= 1e6 || a < 1e-3) {
		return strconv.FormatFloat(x, 'g', 4, 64)
	}
	return strconv.FormatFloat(x, 'f', 4, 64)
}

func containsKey(ps []Proposal, key string) bool {
	for _, p := range ps {
		if p.Config.Key() == key {
			return true
		}
	}
	return false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
