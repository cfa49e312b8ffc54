package diloco

import (
	"context"
	"fmt"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
)

// RoundStat is one simulated round.
type RoundStat struct {
	Round     int
	TrainLoss float64
	BytesUp   int64
	BytesDown int64
}

// SimResult is the outcome of Simulate.
type SimResult struct {
	Params    []float32
	Rounds    []RoundStat
	BytesUp   int64 // pseudo-gradient files, all workers
	BytesDown int64 // broadcast files, all workers
	TrainSec  float64
	WallSec   float64
	Tokens    int64
}

// GoTrainer is the pure-Go inner trainer.
func GoTrainer(ctx context.Context) func(st *ml.State, data []uint8, n, total int) (ml.StepStats, error) {
	return func(st *ml.State, data []uint8, n, total int) (ml.StepStats, error) {
		return ml.TrainSteps(ctx, st, data, n, total, nil)
	}
}

// WorkerShards returns the K training texts of spec: interleaved or
// contiguous disjoint shards, or the whole split K times.
func WorkerShards(spec Spec, c *ml.Corpus) ([][]uint8, error) {
	switch spec.Sharding {
	case ShardFull:
		out := make([][]uint8, spec.Workers)
		for i := range out {
			out[i] = c.Train
		}
		return out, nil
	case ShardDisjoint:
		return c.Shards(spec.Workers, spec.Config.Int("contextLength"))
	}
	return c.InterleavedShards(spec.Workers, spec.Config.Int("contextLength"))
}

// Simulate runs a whole DiLoCo run in this process, the K workers of a
// round one after another, through exactly the functions the Temporal
// activities use (TrainInner, DecodeDelta, OuterStep, ApplyUpdate), and
// counts the bytes every file on the wire would take. It is the reference
// the workflow is tested against and what the benchmark measures.
func Simulate(ctx context.Context, spec Spec, c *ml.Corpus, run string) (SimResult, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return SimResult{}, err
	}
	shards, err := WorkerShards(spec, c)
	if err != nil {
		return SimResult{}, err
	}
	st0, err := ml.NewState(spec.Config, c.VocabSize(), spec.Seed, 0)
	if err != nil {
		return SimResult{}, err
	}
	layout := Layout(spec.Config, c.VocabSize())
	global := st0.Params
	n := len(global)
	inners := make([]InnerState, spec.Workers)
	for k := range inners {
		inners[k] = NewInner(n, spec.Seed, k, *spec.ErrorFeedback)
	}
	var outer OuterState
	res := SimResult{}
	start := time.Now()
	for r := 0; r < spec.Rounds; r++ {
		pb, err := EncodeParams(run, r, layout, global)
		if err != nil {
			return SimResult{}, err
		}
		base := tensor.Hash(pb)
		var deltas []Delta
		rs := RoundStat{Round: r + 1}
		for k := 0; k < spec.Workers; k++ {
			w, err := TrainInner(spec, run, r, k, base, layout, c.VocabSize(), global, inners[k], shards[k], GoTrainer(ctx))
			if err != nil {
				return SimResult{}, fmt.Errorf("round %d worker %d: %w", r, k, err)
			}
			inners[k] = w.Inner
			res.TrainSec += w.Stats.Seconds
			res.Tokens += w.Stats.Tokens
			rs.TrainLoss += w.Stats.MeanLoss() / float64(spec.Workers)
			rs.BytesUp += int64(len(w.Delta))
			d, err := DecodeDelta(w.Delta, run, r, base, global)
			if err != nil {
				return SimResult{}, err
			}
			deltas = append(deltas, d)
		}
		o, err := OuterStep(spec, run, r, base, layout, global, outer, deltas)
		if err != nil {
			return SimResult{}, err
		}
		// Every worker downloads the broadcast and rebuilds the parameters.
		rebuilt, err := ApplyUpdate(o.Update, run, r, base, global)
		if err != nil {
			return SimResult{}, err
		}
		for i := range rebuilt {
			if rebuilt[i] != o.Global[i] {
				return SimResult{}, fmt.Errorf("round %d: rebuilt parameters differ at %d", r, i)
			}
		}
		rs.BytesDown = int64(len(o.Update)) * int64(spec.Workers)
		res.BytesUp += rs.BytesUp
		res.BytesDown += rs.BytesDown
		res.Rounds = append(res.Rounds, rs)
		global, outer = o.Global, o.State
	}
	res.Params = global
	res.WallSec = time.Since(start).Seconds()
	return res, nil
}
