package diloco

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
)

// BenchmarkDiLoCo compares, for one model and the same total training
// tokens: (a) one worker alone, (b) synchronous data-parallel K=4
// (gradients averaged every step), (c) DiLoCo K=4 at H = 10, 50, 100, 500
// with fp32, fp16 and int8 (and int4 at H=100), each H also with the
// paper's Nesterov step in the last round instead of the default average
// (finalStep "outer") and with contiguous instead of interleaved shards
// (sharding "disjoint"). It prints one table:
// final val/test loss, bytes communicated (both directions, exact file
// sizes), wall time, and utilisation (inner training time / wall).
//
//	go test -run '^$' -bench DiLoCo -benchtime 1x -timeout 60m ./internal/diloco
//
// HYPERSPACE_DILOCO_STEPS sets the steps per worker (default 4000; at
// 1000 DiLoCo has not yet caught up with data-parallel, see BENCHMARKS.md).
// HYPERSPACE_DILOCO_H and HYPERSPACE_DILOCO_CODECS (comma lists) keep only
// those DiLoCo rows, for longer budgets (the baselines always run).
func BenchmarkDiLoCo(b *testing.B) {
	c := corpus(b)
	ctx := context.Background()
	cfg := domains.Config{"nLayers": 2.0, "dModel": 32.0, "nHeads": 2.0, "contextLength": 32.0, "dFFMult": 4.0,
		"batchSize": 8.0, "warmupSteps": 50.0, "learningRate": 0.01}
	steps := 4000
	if v, err := strconv.Atoi(os.Getenv("HYPERSPACE_DILOCO_STEPS")); err == nil && v > 0 {
		steps = v
	}
	const K = 4
	ncfg, err := ml.New().Validate(cfg)
	if err != nil {
		b.Fatal(err)
	}
	// Data-parallel trains on the DiLoCo runs' default (interleaved) shards.
	shards, err := c.InterleavedShards(K, 32)
	if err != nil {
		b.Fatal(err)
	}
	eval := func(p []float32) (float64, float64) {
		v, _ := ml.EvalParams(ctx, ncfg, c.VocabSize(), p, c.Validation)
		t, _ := ml.EvalParams(ctx, ncfg, c.VocabSize(), p, c.Test)
		return v, t
	}
	type row struct {
		name       string
		val, test  float64
		bytes      int64
		wall, util float64
	}
	var rows []row
	for i := 0; i < b.N; i++ {
		rows = rows[:0]
		// (a) one worker alone, K·steps steps on the whole split.
		st, _ := ml.NewState(ncfg, c.VocabSize(), 1, 0)
		t0 := time.Now()
		s, err := ml.TrainSteps(ctx, st, c.Train, K*steps, K*steps, nil)
		if err != nil {
			b.Fatal(err)
		}
		w := time.Since(t0).Seconds()
		v, te := eval(st.Params)
		rows = append(rows, row{"single worker", v, te, 0, w, s.Seconds / w})
		// (b) synchronous data-parallel: every step each worker sends its
		// gradient (fp32) and receives the average.
		dp, _ := ml.NewState(ncfg, c.VocabSize(), 1, 0)
		samplers := make([][]byte, K)
		for k := range samplers {
			samplers[k] = ml.SamplerState(1, k)
		}
		t0 = time.Now()
		s, err = ml.TrainDataParallel(ctx, dp, shards, samplers, steps, steps)
		if err != nil {
			b.Fatal(err)
		}
		w = time.Since(t0).Seconds()
		g, _ := tensor.EncodeCompact("gradient", Layout(ncfg, c.VocabSize()), nil, tensor.Vec{Name: "grad", Codec: tensor.FP32, Data: dp.Params})
		dpBytes := int64(steps) * K * 2 * int64(len(g))
		v, te = eval(dp.Params)
		rows = append(rows, row{"data-parallel K=4", v, te, dpBytes, w, s.Seconds / w})
		dpVal := v
		// (c) DiLoCo.
		type variant struct {
			h      int
			codec  string
			noEF   bool
			outer  bool // the paper's Nesterov step in the last round too
			contig bool // contiguous shards (sharding "disjoint")
		}
		var vs []variant
		for _, h := range []int{10, 50, 100, 500} {
			for _, codec := range []string{"fp32", "fp16", "int8"} {
				vs = append(vs, variant{h: h, codec: codec})
			}
			vs = append(vs, variant{h: h, codec: "fp32", outer: true}, variant{h: h, codec: "fp32", contig: true})
			if h == 100 {
				vs = append(vs, variant{h: h, codec: "int8", noEF: true}, variant{h: h, codec: "int4"}, variant{h: h, codec: "int4", noEF: true})
			}
		}
		for _, vr := range vs {
			if steps%vr.h != 0 || !keep("HYPERSPACE_DILOCO_H", strconv.Itoa(vr.h)) || !keep("HYPERSPACE_DILOCO_CODECS", vr.codec) {
				continue
			}
			spec := Spec{Config: cfg, Workers: K, InnerSteps: vr.h, Rounds: steps / vr.h, Compression: vr.codec, Seed: 1}
			name := fmt.Sprintf("DiLoCo K=4 H=%d %s", vr.h, vr.codec)
			if vr.noEF {
				no := false
				spec.ErrorFeedback = &no
				name += " (no error feedback)"
			}
			if vr.outer {
				spec.FinalStep = FinalOuter
				name += " (Nesterov last round)"
			}
			if vr.contig {
				spec.Sharding = ShardDisjoint
				name += " (contiguous shards)"
			}
			res, err := Simulate(ctx, spec, c, "bench")
			if err != nil {
				b.Fatal(err)
			}
			v, te := eval(res.Params)
			rows = append(rows, row{name, v, te, res.BytesUp + res.BytesDown, res.WallSec, res.TrainSec / res.WallSec})
		}
		var tb strings.Builder
		fmt.Fprintf(&tb, "\nmodel %d params, %d steps per worker, %d total tokens\n", NumParamsOf(ncfg, c), steps, int64(K*steps)*ml.TokensPerStep(ncfg))
		fmt.Fprintf(&tb, "| run | val_loss | vs DP | test_loss | bytes | DP bytes / bytes | wall s | utilisation |\n|---|---|---|---|---|---|---|---|\n")
		for _, r := range rows {
			ratio := "-"
			if r.bytes > 0 && r.name != "data-parallel K=4" {
				ratio = fmt.Sprintf("%.1fx", float64(dpBytes)/float64(r.bytes))
			}
			fmt.Fprintf(&tb, "| %s | %.4f | %+.2f%% | %.4f | %s | %s | %.1f | %.1f%% |\n", r.name, r.val, 100*(r.val-dpVal)/dpVal, r.test,
				fmtBytes(r.bytes), ratio, r.wall, 100*r.util)
		}
		b.Log(tb.String())
		fmt.Print(tb.String())
	}
}

// keep reports whether the comma list in env (all when unset) holds v.
func keep(env, v string) bool {
	l := os.Getenv(env)
	if l == "" {
		return true
	}
	for _, x := range strings.Split(l, ",") {
		if strings.TrimSpace(x) == v {
			return true
		}
	}
	return false
}

// NumParamsOf is the parameter count of cfg on c's vocabulary.
func NumParamsOf(cfg domains.Config, c *ml.Corpus) int { return ml.NumParams(cfg, c.VocabSize()) }

func fmtBytes(n int64) string {
	switch {
	case n == 0:
		return "0"
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
