// Package diloco is distributed low-communication training (Douillard et
// al., 2023) as pure functions: the run spec and its validation, one
// worker's inner round (H AdamW steps from the global parameters on its
// shard, returning a compressed pseudo-gradient), the outer step (average
// the pseudo-gradients weighted by tokens, Nesterov momentum, a compressed
// broadcast of the global update) and the adaptive round deadline. The
// Temporal workflow, the activities, the benchmark and remote contributors
// all call these, so every path computes the same bits.
//
// Numerics:
//   - A pseudo-gradient is g = θ_global − θ_worker after H inner steps.
//     fp32 sends θ_worker itself (the same 4 bytes per value), and the
//     receiver forms g in float64, which is exact for float32 operands whose
//     exponents differ by less than 29; so K=1, outer lr 1, momentum 0 and
//     fp32 reproduce plain training bit for bit. fp16/int8/int4 send g
//     compressed, with error feedback (the worker adds what the previous
//     round's compression lost before compressing again) when enabled.
//   - The outer step averages in float64 in contributor order (sorted by
//     shard), keeps Nesterov's momentum buffer in float32 and updates
//     θ ← θ − lr·(g + μ·b) with b ← μ·b + g (PyTorch's SGD(nesterov=True)).
//   - The broadcast: with fp32 the new global parameters are sent whole.
//     Otherwise the owner compresses the global update u = θ' − θ (plus its
//     own error-feedback residual) and *defines* the new global parameters
//     as θ + dequant(Q(u)), computed in float32, so a worker holding θ
//     rebuilds θ' bit for bit from the compressed update alone.
package diloco

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
)

// Limits of a run spec.
const (
	MaxWorkers    = 64
	MaxInnerSteps = 10_000
	MaxRounds     = 10_000
)

// Spec is what a user asks for: POST /api/v1/training-runs.
type Spec struct {
	// Config is an ML-domain model config (missing keys from the baseline;
	// tokenBudget is ignored unless TokenBudget is 0 and Rounds is 0).
	Config domains.Config `json:"config"`
	// Workers K: shards trained in parallel each round.
	Workers int `json:"workers"`
	// InnerSteps H per round.
	InnerSteps int `json:"innerSteps"`
	// Rounds R, or 0 to derive it from TokenBudget.
	Rounds int `json:"rounds,omitempty"`
	// TokenBudget is the total training characters over all workers
	// (rounds = ceil(budget / (K·H·batch·context))) when Rounds is 0.
	TokenBudget int64 `json:"tokenBudget,omitempty"`
	// Outer optimizer: Nesterov SGD (defaults lr 0.7, momentum 0.9).
	OuterLR       *float64 `json:"outerLR,omitempty"`
	OuterMomentum *float64 `json:"outerMomentum,omitempty"`
	// FinalStep is the last round's outer step: "average" (default: the
	// new global parameters are the token-weighted average of the last
	// round's workers, outer lr 1 and no momentum) or "outer" (Nesterov
	// as in every other round, the DiLoCo paper's). Nesterov's look-ahead
	// extrapolates along the momentum, which the next round corrects; the
	// last round has none, and on the benchmark the average is 1.5-10 %
	// lower in val_loss (BENCHMARKS.md).
	FinalStep string `json:"finalStep,omitempty"`
	// Compression of pseudo-gradients and of the broadcast: fp32, fp16,
	// int8 (default) or int4.
	Compression string `json:"compression,omitempty"`
	// Block size for int8/int4 scales (default tensor.DefaultBlock).
	Block int `json:"block,omitempty"`
	// ErrorFeedback (default true for int8/int4, meaningless for fp32).
	ErrorFeedback *bool `json:"errorFeedback,omitempty"`
	// Sharding: "interleaved" (default: K disjoint shards of the train
	// split, its documents dealt round-robin, so each shard holds a mix of
	// the whole split), "disjoint" (K disjoint, contiguous ranges cut at
	// document boundaries: the default of runs created before interleaved
	// existed, kept so they resume on the same data) or "full" (every
	// worker samples the whole split with its own stream). Contiguous
	// ranges of Cranfield hold runs of related abstracts, and the workers'
	// models drift apart on them between syncs: on the benchmark
	// interleaved shards give 0.6-4.5 % lower val_loss than contiguous ones
	// at every H tried (BENCHMARKS.md).
	Sharding string `json:"sharding,omitempty"`
	// Quorum: the fraction of K deltas a round needs before its deadline
	// may close it (default 0.75; at least one delta).
	Quorum float64 `json:"quorum,omitempty"`
	// Seed for initialisation and the workers' samplers (default 1).
	Seed int64 `json:"seed,omitempty"`
	// Backend asks for a worker kind: "go" (default, CPU queue) or "torch"
	// (GPU queue; the PyTorch worker).
	Backend string `json:"backend,omitempty"`
	// Deadline tuning: slack × the recent rounds' arrival time of the last
	// delta, clamped to [MinDeadlineSec, MaxDeadlineSec] (defaults 1.5,
	// 5 s, 1800 s). The first round waits up to MaxDeadlineSec.
	DeadlineSlack  float64 `json:"deadlineSlack,omitempty"`
	MinDeadlineSec float64 `json:"minDeadlineSec,omitempty"`
	MaxDeadlineSec float64 `json:"maxDeadlineSec,omitempty"`
	// Remote: accept deltas from nodes of other sites over libp2p.
	Remote bool `json:"remote,omitempty"`
}

// FieldError names the spec field that is wrong.
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Normalize validates s and fills in defaults. Config errors come back as
// FieldError{Field: "config.<name>"}.
func (s Spec) Normalize() (Spec, error) {
	bad := func(f, m string, a ...any) (Spec, error) {
		return Spec{}, &FieldError{Field: f, Message: fmt.Sprintf(m, a...)}
	}
	cfg, err := ml.New().Validate(s.Config)
	if err != nil {
		var fe *domains.FieldError
		if errors.As(err, &fe) {
			return bad("config."+fe.Field, "%s", fe.Message)
		}
		return bad("config", "%v", err)
	}
	s.Config = cfg
	if s.Workers < 1 || s.Workers > MaxWorkers {
		return bad("workers", "%d out of range 1..%d", s.Workers, MaxWorkers)
	}
	if s.InnerSteps < 1 || s.InnerSteps > MaxInnerSteps {
		return bad("innerSteps", "%d out of range 1..%d", s.InnerSteps, MaxInnerSteps)
	}
	tps := ml.TokensPerStep(cfg)
	switch {
	case s.Rounds < 0 || s.Rounds > MaxRounds:
		return bad("rounds", "%d out of range 1..%d", s.Rounds, MaxRounds)
	case s.Rounds == 0 && s.TokenBudget < 0:
		return bad("tokenBudget", "negative")
	case s.Rounds == 0 && s.TokenBudget == 0:
		return bad("rounds", "give rounds or tokenBudget")
	case s.Rounds == 0:
		per := int64(s.Workers) * int64(s.InnerSteps) * tps
		s.Rounds = int((s.TokenBudget + per - 1) / per)
		if s.Rounds > MaxRounds {
			return bad("tokenBudget", "%d needs %d rounds (max %d)", s.TokenBudget, s.Rounds, MaxRounds)
		}
	}
	if int64(s.Rounds)*int64(s.InnerSteps) > 10_000_000 {
		return bad("rounds", "rounds × innerSteps = %d exceeds 10,000,000", int64(s.Rounds)*int64(s.InnerSteps))
	}
	s.TokenBudget = int64(s.Rounds) * int64(s.Workers) * int64(s.InnerSteps) * tps
	lr, mom := 0.7, 0.9
	if s.OuterLR != nil {
		lr = *s.OuterLR
	}
	if s.OuterMomentum != nil {
		mom = *s.OuterMomentum
	}
	if !(lr > 0 && lr <= 10) {
		return bad("outerLR", "%v out of range (0, 10]", lr)
	}
	if !(mom >= 0 && mom < 1) {
		return bad("outerMomentum", "%v out of range [0, 1)", mom)
	}
	s.OuterLR, s.OuterMomentum = &lr, &mom
	switch s.FinalStep {
	case "":
		s.FinalStep = FinalAverage
	case FinalAverage, FinalOuter:
	default:
		return bad("finalStep", "%q is not average or outer", s.FinalStep)
	}
	if s.Compression == "" {
		s.Compression = string(tensor.Int8)
	}
	c, err := tensor.ParseCodec(s.Compression)
	if err != nil {
		return bad("compression", "%v", err)
	}
	if c.Quantised() {
		if s.Block == 0 {
			s.Block = tensor.DefaultBlock
		}
		if s.Block < 16 || s.Block > 1<<20 {
			return bad("block", "%d out of range 16..1048576", s.Block)
		}
	} else {
		s.Block = 0
	}
	ef := c.Quantised()
	if s.ErrorFeedback != nil {
		ef = *s.ErrorFeedback && c != tensor.FP32
	}
	s.ErrorFeedback = &ef
	switch s.Sharding {
	case "":
		s.Sharding = ShardInterleaved
	case ShardInterleaved, ShardDisjoint, ShardFull:
	default:
		return bad("sharding", "%q is not interleaved, disjoint or full", s.Sharding)
	}
	if s.Quorum == 0 {
		s.Quorum = 0.75
	}
	if !(s.Quorum > 0 && s.Quorum <= 1) {
		return bad("quorum", "%v out of range (0, 1]", s.Quorum)
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	switch s.Backend {
	case "":
		s.Backend = "go"
	case "go", "torch", "any":
	default:
		return bad("backend", "%q is not go, torch or any", s.Backend)
	}
	if s.DeadlineSlack == 0 {
		s.DeadlineSlack = 1.5
	}
	if s.MinDeadlineSec == 0 {
		s.MinDeadlineSec = 5
	}
	if s.MaxDeadlineSec == 0 {
		s.MaxDeadlineSec = 1800
	}
	if !(s.DeadlineSlack >= 1 && s.DeadlineSlack <= 100) {
		return bad("deadlineSlack", "%v out of range [1, 100]", s.DeadlineSlack)
	}
	if !(s.MinDeadlineSec > 0 && s.MaxDeadlineSec >= s.MinDeadlineSec && s.MaxDeadlineSec <= 86400) {
		return bad("maxDeadlineSec", "need 0 < minDeadlineSec <= maxDeadlineSec <= 86400")
	}
	return s, nil
}

// Data sharding modes (Spec.Sharding).
const (
	ShardInterleaved = "interleaved"
	ShardDisjoint    = "disjoint"
	ShardFull        = "full"
)

// The last round's outer step (Spec.FinalStep).
const (
	FinalAverage = "average"
	FinalOuter   = "outer"
)

// OuterParams are the outer learning rate and momentum that round's step
// applies: the spec's, or lr 1 and no momentum (the plain average) in the
// last round when FinalStep is "average". Call after Normalize.
func (s Spec) OuterParams(round int) (lr, mu float64) {
	if s.FinalStep == FinalAverage && round == s.Rounds-1 {
		return 1, 0
	}
	return *s.OuterLR, *s.OuterMomentum
}

// Codec is the spec's compression codec (call after Normalize).
func (s Spec) Codec() tensor.Codec { return tensor.Codec(s.Compression) }

// TotalSteps is each worker's inner-step schedule length (R·H).
func (s Spec) TotalSteps() int { return s.Rounds * s.InnerSteps }

// QuorumCount is how many deltas close a round at its deadline.
func (s Spec) QuorumCount() int {
	return max(1, int(math.Ceil(s.Quorum*float64(s.Workers)-1e-9)))
}

// Layout is the parameter layout of the spec's model.
func Layout(cfg domains.Config, vocabSize int) []tensor.Info {
	l := ml.Layout(cfg, vocabSize)
	out := make([]tensor.Info, len(l))
	for i, t := range l {
		out[i] = tensor.Info{Name: t.Name, Offset: t.Offset, Rows: t.Rows, Cols: t.Cols}
	}
	return out
}

// ParamsMeta is the meta of a global-parameters file.
type ParamsMeta struct {
	Run   string `json:"run"`
	Round int    `json:"round"` // rounds completed to reach these parameters
}

// EncodeParams writes global parameters (fp32).
func EncodeParams(run string, round int, layout []tensor.Info, p []float32) ([]byte, error) {
	return tensor.Encode("params", layout, ParamsMeta{Run: run, Round: round}, tensor.Vec{Name: "params", Codec: tensor.FP32, Data: p})
}

// DeltaMeta is the meta of a pseudo-gradient file.
type DeltaMeta struct {
	Run      string  `json:"run"`
	Round    int     `json:"round"`
	Shard    int     `json:"shard"`
	Base     string  `json:"base"`   // content hash of the global parameters trained from
	Tokens   int64   `json:"tokens"` // characters predicted in the round
	Steps    int     `json:"steps"`
	Loss     float64 `json:"loss"` // mean inner training loss
	Backend  string  `json:"backend"`
	TrainSec float64 `json:"trainSec"`
}

// InnerState is what a worker slot carries from round to round besides
// the global parameters: AdamW moments, the optimizer step, the sampler and
// the error-feedback residual. It lives in S3 by content hash so that any
// worker process can continue the slot.
type InnerState struct {
	M, V, EF []float32
	Step     int
	RNG      []byte
}

type innerMeta struct {
	Step int    `json:"step"`
	RNG  []byte `json:"rng"`
}

// EncodeInner writes an inner state (fp32 sections m, v and ef).
func EncodeInner(layout []tensor.Info, s InnerState) ([]byte, error) {
	vecs := []tensor.Vec{{Name: "m", Codec: tensor.FP32, Data: s.M}, {Name: "v", Codec: tensor.FP32, Data: s.V}}
	if s.EF != nil {
		vecs = append(vecs, tensor.Vec{Name: "ef", Codec: tensor.FP32, Data: s.EF})
	}
	return tensor.Encode("inner-state", layout, innerMeta{Step: s.Step, RNG: s.RNG}, vecs...)
}

// DecodeInner reads an inner state.
func DecodeInner(b []byte) (InnerState, error) {
	f, err := tensor.Decode(b)
	if err != nil {
		return InnerState{}, err
	}
	var m innerMeta
	if f.Header.Kind != "inner-state" {
		return InnerState{}, fmt.Errorf("diloco: %q is not an inner state", f.Header.Kind)
	}
	if err := f.Meta(&m); err != nil {
		return InnerState{}, err
	}
	s := InnerState{Step: m.Step, RNG: m.RNG, EF: f.Vecs["ef"]}
	if s.M, err = f.Vec("m"); err != nil {
		return InnerState{}, err
	}
	if s.V, err = f.Vec("v"); err != nil {
		return InnerState{}, err
	}
	return s, nil
}

// NewInner is a slot's state before its first round.
func NewInner(n int, seed int64, shard int, ef bool) InnerState {
	s := InnerState{M: make([]float32, n), V: make([]float32, n), RNG: ml.SamplerState(seed, shard)}
	if ef {
		s.EF = make([]float32, n)
	}
	return s
}

// Work is the result of one inner round.
type Work struct {
	Delta []byte // the pseudo-gradient file (what goes on the wire)
	Inner InnerState
	Stats ml.StepStats
}

// TrainInner runs one worker's round: H steps of spec's inner schedule
// from global on shard, continuing inner, and returns the compressed
// pseudo-gradient. train, when set, replaces the Go trainer (the PyTorch
// backend); it must continue the State for exactly n steps.
func TrainInner(spec Spec, run string, round, shard int, base string, layout []tensor.Info, vocabSize int, global []float32, inner InnerState, data []uint8,
	train func(st *ml.State, data []uint8, n, total int) (ml.StepStats, error)) (Work, error) {
	n := len(global)
	if len(inner.M) != n || len(inner.V) != n || (inner.EF != nil && len(inner.EF) != n) {
		return Work{}, fmt.Errorf("diloco: inner state has %d/%d values, parameters %d", len(inner.M), len(inner.V), n)
	}
	st := &ml.State{
		Config: spec.Config, VocabSize: vocabSize,
		Params: append([]float32(nil), global...),
		M:      append([]float32(nil), inner.M...), V: append([]float32(nil), inner.V...),
		Step: inner.Step, RNG: append([]byte(nil), inner.RNG...),
	}
	stats, err := train(st, data, spec.InnerSteps, spec.TotalSteps())
	if err != nil {
		return Work{}, err
	}
	out := InnerState{M: st.M, V: st.V, Step: st.Step, RNG: st.RNG}
	meta := DeltaMeta{Run: run, Round: round, Shard: shard, Base: base, Tokens: stats.Tokens, Steps: stats.Steps, Loss: stats.MeanLoss(), TrainSec: stats.Seconds}
	codec := spec.Codec()
	var vec tensor.Vec
	if codec == tensor.FP32 {
		vec = tensor.Vec{Name: "final", Codec: tensor.FP32, Data: st.Params}
	} else {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(float64(global[i]) - float64(st.Params[i]))
			if inner.EF != nil {
				d[i] += inner.EF[i]
			}
		}
		if inner.EF != nil {
			sent := tensor.RoundTrip(codec, layout, spec.Block, d)
			out.EF = make([]float32, n)
			for i := range d {
				out.EF[i] = d[i] - sent[i]
			}
		}
		vec = tensor.Vec{Name: "delta", Codec: codec, Block: spec.Block, Data: d, Deflate: codec.Quantised()}
	}
	b, err := tensor.EncodeCompact("delta", layout, meta, vec)
	if err != nil {
		return Work{}, err
	}
	return Work{Delta: b, Inner: out, Stats: stats}, nil
}

// Delta is a decoded, checked pseudo-gradient.
type Delta struct {
	Meta DeltaMeta
	G    []float64 // θ_global − θ_worker
	Norm float64   // L2 norm of G
}

// DecodeDelta decodes a pseudo-gradient file trained from global (whose
// content hash is base) and checks its shape, run, round and values.
func DecodeDelta(b []byte, run string, round int, base string, global []float32) (Delta, error) {
	f, err := tensor.Decode(b)
	if err != nil {
		return Delta{}, err
	}
	if f.Header.Kind != "delta" {
		return Delta{}, fmt.Errorf("diloco: %q file is not a delta", f.Header.Kind)
	}
	var m DeltaMeta
	if err := f.Meta(&m); err != nil {
		return Delta{}, err
	}
	if m.Run != run || m.Round != round || m.Base != base {
		return Delta{}, fmt.Errorf("diloco: delta for %s round %d base %.12s, want %s round %d base %.12s", m.Run, m.Round, m.Base, run, round, base)
	}
	if m.Tokens <= 0 || m.Tokens > 1<<40 {
		return Delta{}, fmt.Errorf("diloco: delta claims %d tokens", m.Tokens)
	}
	d := Delta{Meta: m, G: make([]float64, len(global))}
	if v, ok := f.Vecs["final"]; ok {
		if len(v) != len(global) {
			return Delta{}, fmt.Errorf("diloco: %d parameters, want %d", len(v), len(global))
		}
		for i := range v {
			d.G[i] = float64(global[i]) - float64(v[i])
		}
	} else if v, ok := f.Vecs["delta"]; ok {
		if len(v) != len(global) {
			return Delta{}, fmt.Errorf("diloco: %d values, want %d", len(v), len(global))
		}
		for i := range v {
			d.G[i] = float64(v[i])
		}
	} else {
		return Delta{}, fmt.Errorf("diloco: delta file has no final or delta section")
	}
	var s float64
	for _, g := range d.G {
		s += g * g
	}
	d.Norm = math.Sqrt(s)
	return d, nil
}

// NormBound is the largest pseudo-gradient norm a round accepts: ratio ×
// the median norm of the round's other deltas, or, when there is none to
// compare with, an absolute bound of 10 × the global parameters' norm.
func NormBound(norms []float64, global []float32) float64 {
	if len(norms) > 0 {
		s := append([]float64(nil), norms...)
		sort.Float64s(s)
		return 10 * s[len(s)/2]
	}
	var p float64
	for _, v := range global {
		p += float64(v) * float64(v)
	}
	return 10 * math.Sqrt(p)
}

// OuterState is the outer optimizer's state: Nesterov's momentum buffer
// and the broadcast's error-feedback residual.
type OuterState struct {
	Buf, EF []float32
}

// EncodeOuter writes an outer state.
func EncodeOuter(layout []tensor.Info, s OuterState) ([]byte, error) {
	return tensor.Encode("outer-state", layout, nil, tensor.Vec{Name: "buf", Codec: tensor.FP32, Data: s.Buf}, tensor.Vec{Name: "ef", Codec: tensor.FP32, Data: s.EF})
}

// DecodeOuter reads an outer state.
func DecodeOuter(b []byte) (OuterState, error) {
	f, err := tensor.Decode(b)
	if err != nil {
		return OuterState{}, err
	}
	if f.Header.Kind != "outer-state" {
		return OuterState{}, fmt.Errorf("diloco: %q is not an outer state", f.Header.Kind)
	}
	var s OuterState
	if s.Buf, err = f.Vec("buf"); err != nil {
		return OuterState{}, err
	}
	if s.EF, err = f.Vec("ef"); err != nil {
		return OuterState{}, err
	}
	return s, nil
}

// UpdateMeta is the meta of a broadcast update file.
type UpdateMeta struct {
	Run   string `json:"run"`
	Round int    `json:"round"` // the round this update completes
	Base  string `json:"base"`  // hash of the parameters it applies to
}

// Outer is the result of an outer step.
type Outer struct {
	Global []float32 // new global parameters
	State  OuterState
	// Update is what a worker holding the previous parameters downloads:
	// the compressed global update, or (fp32) the new parameters whole.
	Update []byte
}

// OuterStep averages deltas (weighted by tokens, in the order given),
// applies Nesterov SGD to global (with spec.OuterParams(round)) and builds
// the broadcast. The caller sorts
// deltas by shard first; it must pass at least one.
func OuterStep(spec Spec, run string, round int, base string, layout []tensor.Info, global []float32, st OuterState, deltas []Delta) (Outer, error) {
	if len(deltas) == 0 {
		return Outer{}, errors.New("diloco: outer step without deltas")
	}
	n := len(global)
	if st.Buf == nil {
		st.Buf = make([]float32, n)
	}
	if st.EF == nil {
		st.EF = make([]float32, n)
	}
	if len(st.Buf) != n || len(st.EF) != n {
		return Outer{}, fmt.Errorf("diloco: outer state has %d/%d values, parameters %d", len(st.Buf), len(st.EF), n)
	}
	var tok float64
	for _, d := range deltas {
		tok += float64(d.Meta.Tokens)
	}
	lr, mu := spec.OuterParams(round)
	codec := spec.Codec()
	nb := make([]float32, n)
	u := make([]float32, n)
	next := make([]float64, n)
	for i := 0; i < n; i++ {
		var g float64
		for _, d := range deltas {
			g += float64(d.Meta.Tokens) / tok * d.G[i]
		}
		b := mu*float64(st.Buf[i]) + g
		nb[i] = float32(b)
		next[i] = float64(global[i]) - lr*(g+mu*b)
		u[i] = float32(next[i]-float64(global[i])) + st.EF[i]
	}
	out := Outer{State: OuterState{Buf: nb, EF: make([]float32, n)}, Global: make([]float32, n)}
	meta := UpdateMeta{Run: run, Round: round, Base: base}
	if codec == tensor.FP32 {
		for i := range next {
			out.Global[i] = float32(next[i])
		}
		b, err := tensor.EncodeCompact("update", layout, meta, tensor.Vec{Name: "params", Codec: tensor.FP32, Data: out.Global})
		if err != nil {
			return Outer{}, err
		}
		out.Update = b
		return out, nil
	}
	sent := tensor.RoundTrip(codec, layout, spec.Block, u)
	for i := range u {
		if *spec.ErrorFeedback {
			out.State.EF[i] = u[i] - sent[i]
		}
		out.Global[i] = global[i] + sent[i]
	}
	b, err := tensor.EncodeCompact("update", layout, meta, tensor.Vec{Name: "update", Codec: codec, Block: spec.Block, Data: u, Deflate: codec.Quantised()})
	if err != nil {
		return Outer{}, err
	}
	out.Update = b
	return out, nil
}

// ApplyUpdate rebuilds the new global parameters from the previous ones
// (whose hash is base) and an update file, exactly as OuterStep defined
// them.
func ApplyUpdate(b []byte, run string, round int, base string, global []float32) ([]float32, error) {
	f, err := tensor.Decode(b)
	if err != nil {
		return nil, err
	}
	var m UpdateMeta
	if f.Header.Kind != "update" {
		return nil, fmt.Errorf("diloco: %q is not an update", f.Header.Kind)
	}
	if err := f.Meta(&m); err != nil {
		return nil, err
	}
	if m.Run != run || m.Round != round || m.Base != base {
		return nil, fmt.Errorf("diloco: update for %s round %d base %.12s, want %s round %d base %.12s", m.Run, m.Round, m.Base, run, round, base)
	}
	if p, ok := f.Vecs["params"]; ok {
		if len(p) != len(global) {
			return nil, fmt.Errorf("diloco: %d parameters, want %d", len(p), len(global))
		}
		return p, nil
	}
	u, err := f.Vec("update")
	if err != nil {
		return nil, err
	}
	if len(u) != len(global) {
		return nil, fmt.Errorf("diloco: update has %d values, want %d", len(u), len(global))
	}
	out := make([]float32, len(u))
	for i := range u {
		out[i] = global[i] + u[i]
	}
	return out, nil
}

// Deadline is the time a round waits for deltas before it closes with a
// quorum: slack × the median, over the last (up to 5) rounds, of when the
// last accepted delta arrived, within [min, max]. With no history it is
// max (the first round waits for everyone, up to the cap).
func Deadline(lastArrivals []float64, slack, minSec, maxSec float64) time.Duration {
	if len(lastArrivals) == 0 {
		return time.Duration(maxSec * float64(time.Second))
	}
	h := lastArrivals[max(0, len(lastArrivals)-5):]
	s := append([]float64(nil), h...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	d := math.Min(maxSec, math.Max(minSec, slack*med))
	return time.Duration(d * float64(time.Second))
}
