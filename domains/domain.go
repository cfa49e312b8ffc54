// Package domains defines the research-domain contract shared by every domain
// (ml, search, finance, skills, causes): a typed search space, a baseline,
// validation, and a deterministic evaluation given a config, a seed and a split.
//
// Domains are pure cores: Evaluate does no network I/O and is deterministic
// for a given (config, seed, data). The activities layer adapts them to
// Temporal (heartbeats, artifacts, persistence).
package domains

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
)

// Direction says whether a lower or a higher metric is better.
type Direction string

const (
	Minimize Direction = "minimize"
	Maximize Direction = "maximize"
)

// Better reports whether a is strictly better than b under d.
func (d Direction) Better(a, b float64) bool {
	if d == Maximize {
		return a > b
	}
	return a < b
}

// Metric names the number a domain optimises.
type Metric struct {
	Name      string    `json:"name"`
	Direction Direction `json:"direction"`
	Unit      string    `json:"unit,omitempty"`
}

// ParamKind is the type of one hyperparameter.
type ParamKind string

const (
	Int    ParamKind = "int"
	Float  ParamKind = "float"
	Choice ParamKind = "choice"
	Bool   ParamKind = "bool"
)

// Param describes one dimension of a search space.
type Param struct {
	Name    string    `json:"name"`
	Kind    ParamKind `json:"kind"`
	Min     float64   `json:"min,omitempty"`
	Max     float64   `json:"max,omitempty"`
	Log     bool      `json:"log,omitempty"`     // sample/mutate on a log scale
	Choices []string  `json:"choices,omitempty"` // for Choice
	Help    string    `json:"help"`
	// Fixed marks an assumption of the evaluation (e.g. transaction costs),
	// not a choice to optimise: a campaign may set it in its baseline, but
	// agents never change it (the proposer leaves it alone and hypotheses
	// are pinned to the campaign's value).
	Fixed bool `json:"fixed,omitempty"`
}

// Space is an ordered list of parameters.
type Space []Param

// Lookup returns the parameter called name.
func (s Space) Lookup(name string) (Param, bool) {
	for _, p := range s {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Config is one point in a search space: parameter name -> value.
// Values are float64 for int/float params (JSON numbers), string for
// choices and bool for bools. Use Space.Normalize to canonicalise.
type Config map[string]any

// Clone returns a shallow copy (values are immutable scalars).
func (c Config) Clone() Config {
	out := make(Config, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

// Int returns an integer parameter (0 when absent).
func (c Config) Int(name string) int {
	f, _ := toFloat(c[name])
	return int(math.Round(f))
}

// Float returns a float parameter (0 when absent).
func (c Config) Float(name string) float64 {
	f, _ := toFloat(c[name])
	return f
}

// String returns a choice parameter ("" when absent).
func (c Config) String(name string) string {
	s, _ := c[name].(string)
	return s
}

// Bool returns a bool parameter.
func (c Config) Bool(name string) bool {
	b, _ := c[name].(bool)
	return b
}

// Key is a canonical string for the config, used to detect repeats.
func (c Config) Key() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := c[k]
		if f, ok := toFloat(v); ok {
			fmt.Fprintf(&b, "%s=%s;", k, formatFloat(f))
		} else {
			fmt.Fprintf(&b, "%s=%v;", k, v)
		}
	}
	return b.String()
}

func formatFloat(f float64) string {
	return fmt.Sprintf("%.6g", f)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// FieldError names the config field that is wrong and why.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return fmt.Sprintf("config.%s: %s", e.Field, e.Message) }

// Normalize validates cfg against the space and returns a complete config:
// unknown keys are errors, missing keys are filled from base, numbers are
// range-checked and ints rounded-checked. The result holds float64 for
// numeric params, string for choices and bool for bools.
func (s Space) Normalize(cfg, base Config) (Config, error) {
	for k := range cfg {
		if _, ok := s.Lookup(k); !ok {
			return nil, &FieldError{Field: k, Message: fmt.Sprintf("unknown parameter (known: %s)", strings.Join(s.names(), ", "))}
		}
	}
	out := make(Config, len(s))
	for _, p := range s {
		v, ok := cfg[p.Name]
		if !ok {
			v, ok = base[p.Name]
			if !ok {
				return nil, &FieldError{Field: p.Name, Message: "missing and no default"}
			}
		}
		switch p.Kind {
		case Int, Float:
			f, ok := toFloat(v)
			if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, &FieldError{Field: p.Name, Message: fmt.Sprintf("must be a number, got %v", v)}
			}
			if p.Kind == Int && f != math.Trunc(f) {
				return nil, &FieldError{Field: p.Name, Message: fmt.Sprintf("must be an integer, got %v", f)}
			}
			if f < p.Min || f > p.Max {
				return nil, &FieldError{Field: p.Name, Message: fmt.Sprintf("%v out of range [%v, %v]", f, p.Min, p.Max)}
			}
			out[p.Name] = f
		case Choice:
			str, ok := v.(string)
			if !ok || !contains(p.Choices, str) {
				return nil, &FieldError{Field: p.Name, Message: fmt.Sprintf("must be one of %s, got %v", strings.Join(p.Choices, "|"), v)}
			}
			out[p.Name] = str
		case Bool:
			b, ok := v.(bool)
			if !ok {
				return nil, &FieldError{Field: p.Name, Message: fmt.Sprintf("must be true or false, got %v", v)}
			}
			out[p.Name] = b
		default:
			return nil, &FieldError{Field: p.Name, Message: "unsupported parameter kind " + string(p.Kind)}
		}
	}
	return out, nil
}

func (s Space) names() []string {
	n := make([]string, len(s))
	for i, p := range s {
		n[i] = p.Name
	}
	return n
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// Split selects which part of a domain's data an evaluation scores on.
type Split string

const (
	Validation Split = "validation" // what agents optimise
	Test       Split = "test"       // held out; reported, never used for ranking
)

// Progress is reported during long evaluations (for heartbeats and UIs).
type Progress struct {
	Fraction float64 `json:"fraction"` // 0..1
	Step     int     `json:"step"`
	Metric   float64 `json:"metric"` // latest running metric (e.g. train loss)
	Message  string  `json:"message,omitempty"`
}

// EvalOptions carries what the caller injects into an evaluation.
type EvalOptions struct {
	DataDir  string         // root of the data sets (../shared/data layout)
	Progress func(Progress) // optional; called from the evaluating goroutine
	// Budget overrides the domain's own per-evaluation budget when > 0
	// (seconds of wall time or the domain's natural unit, see Describe).
	BudgetSeconds float64
}

// Result is what one evaluation produced.
type Result struct {
	// Metric is the domain metric on the validation split (what ranks).
	Metric float64 `json:"metric"`
	// TestMetric is the same metric on the held-out test split.
	TestMetric float64 `json:"testMetric"`
	// Values holds every other number the domain reports, by name
	// (e.g. valLoss, valBpb, trainLoss, testLoss, tokensPerSec, durationSec).
	Values map[string]float64 `json:"values"`
	// Curve is (step, loss) pairs or the domain's equivalent; may be empty.
	Curve [][2]float64 `json:"curve,omitempty"`
	// Artifacts are named blobs to store (e.g. "checkpoint.bin", "log.txt").
	Artifacts map[string][]byte `json:"-"`
	// Items are the per-item validation scores Metric aggregates (queries,
	// test cases, evaluation segments, months of returns), so two results
	// on the same items can be compared by a paired test; nil when the
	// domain has none.
	Items *Items `json:"items,omitempty"`
}

// Aggregations of Items.
const (
	// ItemsMean: Metric is the mean of Values (one score per item).
	ItemsMean = "mean"
	// ItemsSharpe: Values are (n, sum, sum of squares) triples of the daily
	// excess returns of each month, and Metric is mean/sd*Scale over all
	// the days (sample sd), so months can be resampled as blocks.
	ItemsSharpe = "sharpe"
)

// Items are per-item validation scores (see Result.Items).
type Items struct {
	Agg string `json:"agg"`
	// Key names the items (a hash of their identities: query ids, case
	// names, month starts, segment layout): only results with the same Key
	// are paired.
	Key    string    `json:"key"`
	Values []float64 `json:"values"`
	Scale  float64   `json:"scale,omitempty"`
}

// Len is the number of items.
func (it *Items) Len() int {
	if it == nil {
		return 0
	}
	if it.Agg == ItemsSharpe {
		return len(it.Values) / 3
	}
	return len(it.Values)
}

// ItemsKey is the Key of items named by ids (in order).
func ItemsKey(kind string, ids ...string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, id := range ids {
		h.Write([]byte{0})
		h.Write([]byte(id))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Domain is one research domain.
type Domain interface {
	Name() string
	Metric() Metric
	Space() Space
	// Baseline is the reference config every campaign starts from.
	Baseline() Config
	// Validate normalises cfg (fills defaults, checks types and ranges, and
	// checks cross-parameter constraints such as d_model % heads == 0).
	Validate(cfg Config) (Config, error)
	// Evaluate runs one experiment. It must be deterministic for the same
	// (normalised config, seed, data) and honour ctx cancellation.
	Evaluate(ctx context.Context, cfg Config, seed int64, opts EvalOptions) (Result, error)
	// Describe is a plain-text description an LLM can read to propose configs.
	Describe() string
}

// SelectionDomain is a domain whose metric can be discounted for selection
// bias: after a campaign tried trials configs whose metrics had variance
// trialVar, Deflate gives the probability (0..1) that res's skill is real
// and the metric the best of them is expected to reach by luck alone.
// ok is false when res lacks what the statistic needs.
type SelectionDomain interface {
	Domain
	Deflate(res map[string]float64, trials int, trialVar float64) (method string, expectedMax, deflated float64, ok bool)
}

// CodeDomain is a domain whose candidates may also be source code (written
// by an LLM) instead of a point in the search space alone.
type CodeDomain interface {
	Domain
	// CodeSpec tells an LLM what to write for cfg: language, interface, limits.
	CodeSpec(cfg Config) string
	// EvaluateCode scores code under cfg (e.g. the suite it is written for).
	EvaluateCode(ctx context.Context, cfg Config, code []byte, seed int64, opts EvalOptions) (Result, error)
}

// Registry maps domain names to implementations. It is safe for concurrent
// use: user-defined domains (causes) are registered while campaigns run.
type Registry struct {
	mu     sync.RWMutex
	byName map[string]Domain
	order  []string
}

// NewRegistry builds a registry from domains.
func NewRegistry(ds ...Domain) *Registry {
	r := &Registry{byName: map[string]Domain{}}
	for _, d := range ds {
		r.Register(d)
	}
	return r
}

// Register adds (or replaces) a domain.
func (r *Registry) Register(d Domain) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[d.Name()]; !ok {
		r.order = append(r.order, d.Name())
	}
	r.byName[d.Name()] = d
}

// Get returns the named domain.
func (r *Registry) Get(name string) (Domain, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.byName[name]
	return d, ok
}

// Names lists registered domains in registration order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]string(nil), r.order...)
}
