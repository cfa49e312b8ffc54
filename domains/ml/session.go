package ml

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Segmented training: the pure functions distributed training (DiLoCo)
// needs. A State is everything that determines the rest of a training run:
// parameters, AdamW moments, the optimizer step and the batch sampler's
// random state. TrainSteps continues a State for exactly n steps on a given
// shard of text; the result depends only on its inputs, so the same State,
// shard and step count give bit-identical parameters on any machine and any
// GOMAXPROCS, and running TrainSteps(n1) then TrainSteps(n2) equals
// TrainSteps(n1+n2) equals plain training (Evaluate) for n1+n2 steps on the
// same text.

// TensorInfo is one named parameter tensor inside the flat parameter vector
// (row-major, Rows×Cols float32 at Offset).
type TensorInfo struct {
	Name   string `json:"name"`
	Offset int    `json:"offset"`
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
}

// State is a model's complete training state.
type State struct {
	// Config is the normalised ML-domain config (see Domain.Validate).
	Config domains.Config
	// VocabSize is the number of token ids (Corpus.VocabSize).
	VocabSize int
	// Params, M and V are the parameters and AdamW's first and second
	// moments, in the layout Layout returns.
	Params, M, V []float32
	// Step is the number of optimizer steps taken so far.
	Step int
	// RNG is the batch sampler's PCG state (16 bytes, see rand.PCG).
	RNG []byte
}

// ErrShape reports a parameter vector whose length does not match its config.
var ErrShape = errors.New("ml: parameter vector does not match the config")

// NewState validates cfg and returns a freshly initialised State: weights
// drawn from seed exactly as plain training draws them, zero moments, and
// the batch sampler of the given stream. Stream 0 is the sampler plain
// training uses; distributed workers use streams 0..K-1 so that their
// batches are independent.
func NewState(cfg domains.Config, vocabSize int, seed int64, stream int) (*State, error) {
	ncfg, err := New().Validate(cfg)
	if err != nil {
		return nil, err
	}
	if vocabSize < 2 || vocabSize > 256 {
		return nil, fmt.Errorf("ml: vocabulary size %d out of range 2..256", vocabSize)
	}
	m := newModel(hyperFrom(ncfg, vocabSize))
	m.init(rand.New(rand.NewPCG(uint64(seed), streamInit)))
	return &State{
		Config:    ncfg,
		VocabSize: vocabSize,
		Params:    m.params,
		M:         m.m,
		V:         m.v,
		RNG:       SamplerState(seed, stream),
	}, nil
}

// SamplerState is the initial batch-sampler state for seed and stream.
func SamplerState(seed int64, stream int) []byte {
	b, _ := rand.NewPCG(uint64(seed), streamBatch+uint64(stream)).MarshalBinary()
	return b
}

// Layout returns the parameter tensors of cfg (normalised) for a vocabulary
// of vocabSize ids, in the order of the flat parameter vector.
func Layout(cfg domains.Config, vocabSize int) []TensorInfo {
	m := newModel(hyperFrom(cfg, vocabSize))
	out := make([]TensorInfo, len(m.tensors))
	for i, t := range m.tensors {
		out[i] = TensorInfo{Name: t.Name, Offset: t.Off, Rows: t.Rows, Cols: t.Cols}
	}
	return out
}

// NumParams is the length of cfg's parameter vector.
func NumParams(cfg domains.Config, vocabSize int) int {
	_, n := newLayout(hyperFrom(cfg, vocabSize))
	return n
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	c := *s
	c.Config = s.Config.Clone()
	c.Params = append([]float32(nil), s.Params...)
	c.M = append([]float32(nil), s.M...)
	c.V = append([]float32(nil), s.V...)
	c.RNG = append([]byte(nil), s.RNG...)
	return &c
}

// model returns a model over s's slices (shared, not copied).
func (s *State) model() (*model, error) {
	m := newModel(hyperFrom(s.Config, s.VocabSize))
	n := len(m.params)
	if len(s.Params) != n || len(s.M) != n || len(s.V) != n {
		return nil, fmt.Errorf("%w: want %d values, have params %d, m %d, v %d", ErrShape, n, len(s.Params), len(s.M), len(s.V))
	}
	m.params, m.m, m.v = s.Params, s.M, s.V
	return m, nil
}

func (s *State) sampler() (*rand.PCG, error) {
	p := new(rand.PCG)
	if err := p.UnmarshalBinary(s.RNG); err != nil {
		return nil, fmt.Errorf("ml: sampler state: %w", err)
	}
	return p, nil
}

// StepStats describes one TrainSteps call.
type StepStats struct {
	Steps   int       // steps taken
	Tokens  int64     // characters predicted (steps × batch × context)
	Losses  []float64 // per-step mean training loss
	Seconds float64   // wall time spent training
}

// MeanLoss is the mean of the per-step losses (0 when none).
func (st StepStats) MeanLoss() float64 {
	if len(st.Losses) == 0 {
		return 0
	}
	var s float64
	for _, l := range st.Losses {
		s += l
	}
	return s / float64(len(st.Losses))
}

// TrainSteps continues s in place for exactly n optimizer steps on shard
// (token ids of a text at least contextLength+2 long), following the
// learning-rate schedule of a run of totalSteps steps (warmup then cosine
// over totalSteps). progress, when set, is called after every step.
func TrainSteps(ctx context.Context, s *State, shard []uint8, n, totalSteps int, progress func(done int, loss float64)) (StepStats, error) {
	m, err := s.model()
	if err != nil {
		return StepStats{}, err
	}
	h := m.h
	if len(shard) < h.Ctx+2 {
		return StepStats{}, fmt.Errorf("ml: shard (%d chars) shorter than contextLength+2", len(shard))
	}
	if n < 0 || totalSteps < s.Step+n {
		return StepStats{}, fmt.Errorf("ml: %d steps from step %d exceed the schedule of %d steps", n, s.Step, totalSteps)
	}
	pcg, err := s.sampler()
	if err != nil {
		return StepStats{}, err
	}
	env := newStepEnv(m, newActs(h, h.Batch), pcg, shard, s.Step, totalSteps, nil)
	st := StepStats{Losses: make([]float64, 0, n)}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return StepStats{}, err
		}
		loss := env.trainStep()
		s.Step = env.step
		st.Losses = append(st.Losses, loss)
		if progress != nil {
			progress(i+1, loss)
		}
	}
	st.Steps = n
	st.Tokens = int64(n) * int64(h.Batch*h.Ctx)
	st.Seconds = time.Since(start).Seconds()
	s.RNG, _ = pcg.MarshalBinary()
	return st, nil
}

// TrainDataParallel is synchronous data-parallel training over len(shards)
// workers: for each of n steps every worker draws a batch from its own
// shard with its own sampler (samplers[k], advanced in place), the
// gradients of the K batch losses are averaged, clipped and applied in one
// AdamW step on s. s.RNG is not used. It is the baseline DiLoCo is compared
// against (every step exchanges a full gradient).
func TrainDataParallel(ctx context.Context, s *State, shards [][]uint8, samplers [][]byte, n, totalSteps int) (StepStats, error) {
	m, err := s.model()
	if err != nil {
		return StepStats{}, err
	}
	h := m.h
	K := len(shards)
	if K == 0 || len(samplers) != K {
		return StepStats{}, fmt.Errorf("ml: %d shards and %d samplers", K, len(samplers))
	}
	rngs := make([]*rand.Rand, K)
	pcgs := make([]*rand.PCG, K)
	for k := range shards {
		if len(shards[k]) < h.Ctx+2 {
			return StepStats{}, fmt.Errorf("ml: shard %d (%d chars) shorter than contextLength+2", k, len(shards[k]))
		}
		pcgs[k] = new(rand.PCG)
		if err := pcgs[k].UnmarshalBinary(samplers[k]); err != nil {
			return StepStats{}, fmt.Errorf("ml: sampler %d: %w", k, err)
		}
		rngs[k] = rand.New(pcgs[k])
	}
	a := newActs(h, h.Batch)
	normPart := make([]float64, len(m.tensors))
	inv := float32(1) / float32(K)
	st := StepStats{Losses: make([]float64, 0, n)}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return StepStats{}, err
		}
		clear(m.grads)
		var loss float64
		for k := 0; k < K; k++ {
			m.sampleBatch(a, rngs[k], shards[k])
			sum, cnt := m.forward(a, true)
			m.backward(a) // accumulates
			loss += sum / float64(cnt)
		}
		if K > 1 {
			parallelFor(len(m.tensors), func(t int) {
				g := m.g(m.tensors[t])
				for j := range g {
					g[j] *= inv
				}
			})
		}
		m.clipGrads(normPart)
		m.adamW(lrAt(h, s.Step, totalSteps), h.WD, s.Step+1)
		s.Step++
		st.Losses = append(st.Losses, loss/float64(K))
	}
	st.Steps = n
	st.Tokens = int64(n) * int64(K*h.Batch*h.Ctx)
	st.Seconds = time.Since(start).Seconds()
	for k := range pcgs {
		samplers[k], _ = pcgs[k].MarshalBinary()
	}
	return st, nil
}

// EvalParams is the mean validation-style loss (nats/char) of params under
// cfg on split, over the fixed evaluation windows plain training uses.
func EvalParams(ctx context.Context, cfg domains.Config, vocabSize int, params []float32, split []uint8) (float64, error) {
	m := newModel(hyperFrom(cfg, vocabSize))
	if len(params) != len(m.params) {
		return 0, fmt.Errorf("%w: want %d values, have %d", ErrShape, len(m.params), len(params))
	}
	m.params = params
	return evalLoss(ctx, m, newActs(m.h, m.h.Batch), split)
}

// TokensPerStep is batchSize × contextLength of a normalised config.
func TokensPerStep(cfg domains.Config) int64 {
	return int64(cfg.Int("batchSize") * cfg.Int("contextLength"))
}

// Shards cuts the training split into k disjoint, contiguous pieces of
// about equal length, each cut made at the document separator nearest its
// ideal position so that no abstract is split between workers. It fails
// when a piece would be too short to train on with contextLength ctx.
func (c *Corpus) Shards(k, ctx int) ([][]uint8, error) {
	if k < 1 {
		return nil, fmt.Errorf("ml: %d shards", k)
	}
	nl := c.newlineID()
	cuts := []int{0}
	for i := 1; i < k; i++ {
		ideal := i * len(c.Train) / k
		cut := ideal
		for d := 0; d < len(c.Train); d++ {
			if j := ideal + d; j < len(c.Train) && c.Train[j] == nl {
				cut = j + 1
				break
			}
			if j := ideal - d; j > 0 && c.Train[j] == nl {
				cut = j + 1
				break
			}
		}
		cuts = append(cuts, cut)
	}
	cuts = append(cuts, len(c.Train))
	out := make([][]uint8, k)
	for i := range out {
		lo, hi := cuts[i], cuts[i+1]
		if hi-lo < ctx+2 {
			return nil, fmt.Errorf("ml: shard %d of %d has %d chars, fewer than contextLength+2 = %d", i, k, max(hi-lo, 0), ctx+2)
		}
		out[i] = c.Train[lo:hi:hi]
	}
	return out, nil
}

// InterleavedShards deals the training split's documents to k disjoint
// pieces round-robin (document i goes to piece i mod k, in order), so that
// every piece samples the whole split's mix of topics where Shards' k
// contiguous ranges each hold a run of neighbouring documents. Every
// character is in exactly one piece; no document is split. It fails when a
// piece would be too short to train on with contextLength ctx.
func (c *Corpus) InterleavedShards(k, ctx int) ([][]uint8, error) {
	if k < 1 {
		return nil, fmt.Errorf("ml: %d shards", k)
	}
	nl := c.newlineID()
	out := make([][]uint8, k)
	doc := 0
	for start := 0; start < len(c.Train); doc++ {
		end := start
		for end < len(c.Train) && c.Train[end] != nl {
			end++
		}
		if end < len(c.Train) {
			end++ // the separator ends its document
		}
		out[doc%k] = append(out[doc%k], c.Train[start:end]...)
		start = end
	}
	for i, s := range out {
		if len(s) < ctx+2 {
			return nil, fmt.Errorf("ml: shard %d of %d has %d chars, fewer than contextLength+2 = %d", i, k, len(s), ctx+2)
		}
		out[i] = s[:len(s):len(s)]
	}
	return out, nil
}

func (c *Corpus) newlineID() uint8 {
	for i, b := range c.Vocab {
		if b == '\n' {
			return uint8(i + 1)
		}
	}
	return 0
}

// Checkpoint encodes params (under the normalised cfg) in the ML domain's
// checkpoint format (see model.checkpoint), as plain training writes it.
func Checkpoint(cfg domains.Config, vocab []byte, params []float32, seed int64, steps int) ([]byte, error) {
	m := newModel(hyperFrom(cfg, len(vocab)+1))
	if len(params) != len(m.params) {
		return nil, fmt.Errorf("%w: want %d values, have %d", ErrShape, len(m.params), len(params))
	}
	m.params = params
	return m.checkpoint(cfg, seed, steps, vocab), nil
}

// SampleOffsets draws the window offsets of the next n steps' batches
// from s's sampler exactly as TrainSteps would (batchSize offsets per step,
// each window data[off : off+contextLength+1]) and advances s.RNG. Another
// backend (the PyTorch worker) trains on these windows so that both
// backends see the same batches.
func SampleOffsets(s *State, dataLen, n int) ([][]int, error) {
	h := hyperFrom(s.Config, s.VocabSize)
	if dataLen < h.Ctx+2 {
		return nil, fmt.Errorf("ml: shard (%d chars) shorter than contextLength+2", dataLen)
	}
	pcg, err := s.sampler()
	if err != nil {
		return nil, err
	}
	rng := rand.New(pcg)
	out := make([][]int, n)
	for i := range out {
		out[i] = make([]int, h.Batch)
		for b := range out[i] {
			out[i][b] = rng.IntN(dataLen - h.Ctx - 1)
		}
	}
	s.RNG, _ = pcg.MarshalBinary()
	return out, nil
}

// LRAt is the learning rate of 0-based step s in a schedule of steps for
// the normalised cfg (warmup, then cosine to minLRRatio of the peak).
func LRAt(cfg domains.Config, s, steps int) float64 {
	return lrAt(hyperFrom(cfg, 2), s, steps)
}
