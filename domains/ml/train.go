package ml

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Evaluation windows: evalSegments evenly spaced segments of evalSegLen
// characters from a split; every character of a segment but the first is
// predicted once, in windows of contextLength starting at the segment start.
// The predicted characters are the same for every config, so losses are
// comparable across context lengths.
const (
	evalSegments = 32
	evalSegLen   = 512
)

// PCG stream constants for the two independent random streams per seed.
const (
	streamInit  = 0x696e6974 // weight initialisation
	streamBatch = 0x62617463 // training-batch sampling
)

// benchLimit, when set, makes run stop after the given wall time without
// evaluating (used by TrainerThroughput).
type benchLimit struct {
	dur time.Duration
}

// run trains a model for a normalised config and evaluates it.
func run(ctx context.Context, corpus *Corpus, cfg domains.Config, seed int64, opts domains.EvalOptions, bench *benchLimit) (domains.Result, error) {
	h := hyperFrom(cfg, corpus.VocabSize())
	if len(corpus.Train) < h.Ctx+2 {
		return domains.Result{}, fmt.Errorf("ml: training split (%d chars) shorter than contextLength+2", len(corpus.Train))
	}
	var log bytes.Buffer
	logf := func(format string, a ...any) { fmt.Fprintf(&log, format+"\n", a...) }
	cfgJSON, _ := json.Marshal(cfg)
	logf("config %s seed %d", cfgJSON, seed)
	logf("corpus %s: %d docs (train %d / val %d / test %d), chars train %d val %d test %d, vocab %d",
		corpus.Path, corpus.Docs, corpus.TrainDocs, corpus.ValDocs, corpus.TestDocs,
		len(corpus.Train), len(corpus.Validation), len(corpus.Test), corpus.VocabSize())

	m := newModel(h)
	m.init(rand.New(rand.NewPCG(uint64(seed), streamInit)))
	a := newActs(h, h.Batch)
	env := newStepEnv(m, a, rand.NewPCG(uint64(seed), streamBatch), corpus.Train, 0, 0, nil)
	tokPerStep := int64(h.Batch * h.Ctx)
	steps := int(max(1, h.TokenBudget/tokPerStep))
	flopStep := flopsPerStep(h, h.Batch)
	logf("params %d, steps %d, tokens/step %d, analytic GFLOP/step %.3f", m.numParams(), steps, tokPerStep, flopStep/1e9)

	curveEvery := max(1, (steps+199)/200)
	var curve [][2]float64
	losses := make([]float64, 0, steps)
	env.steps = steps
	start := time.Now()
	lastProg := start
	truncated := false
	done := 0
	for s := 0; s < steps; s++ {
		if err := ctx.Err(); err != nil {
			return domains.Result{}, err
		}
		loss := env.trainStep()
		losses = append(losses, loss)
		done = s + 1
		if s%curveEvery == 0 || s == steps-1 {
			curve = append(curve, [2]float64{float64(s + 1), loss})
			logf("step %d/%d loss %.4f lr %.3g elapsed %.2fs", s+1, steps, loss, lrAt(h, s, steps), time.Since(start).Seconds())
		}
		now := time.Now()
		if opts.Progress != nil && (now.Sub(lastProg) >= 250*time.Millisecond || s == steps-1) {
			lastProg = now
			opts.Progress(domains.Progress{Fraction: float64(s+1) / float64(steps), Step: s + 1, Metric: loss, Message: "training"})
		}
		el := now.Sub(start)
		if bench != nil && el >= bench.dur {
			break
		}
		if opts.BudgetSeconds > 0 && el.Seconds() > opts.BudgetSeconds && s+1 < steps {
			truncated = true
			logf("wall-clock budget of %.1fs exhausted after step %d/%d: stopping (truncated)", opts.BudgetSeconds, s+1, steps)
			break
		}
	}
	trainSec := time.Since(start).Seconds()
	if done > 0 && curve[len(curve)-1][0] != float64(done) {
		curve = append(curve, [2]float64{float64(done), losses[done-1]})
	}
	vals := TrainValues(losses[:done], tokPerStep, trainSec, flopStep, m.numParams(), truncated)
	trainLoss := vals["trainLoss"]
	if bench != nil {
		return domains.Result{Values: vals}, nil
	}
	if opts.Progress != nil {
		opts.Progress(domains.Progress{Fraction: 1, Step: done, Metric: trainLoss, Message: "evaluating"})
	}
	valLoss, segs, err := evalLossItems(ctx, m, a, corpus.Validation)
	if err != nil {
		return domains.Result{}, err
	}
	testLoss, err := evalLoss(ctx, m, a, corpus.Test)
	if err != nil {
		return domains.Result{}, err
	}
	vals["valLoss"] = valLoss
	vals["valBpb"] = valLoss / math.Ln2
	vals["testLoss"] = testLoss
	vals["durationSec"] = time.Since(start).Seconds()
	logf("train %.2fs, %.0f tokens/s, %.2f GFLOP/s; trainLoss %.4f valLoss %.4f (%.4f bpc) testLoss %.4f truncated %v",
		trainSec, vals["tokensPerSec"], vals["gflops"], trainLoss, valLoss, vals["valBpb"], testLoss, truncated)

	curveJSON, _ := json.Marshal(map[string]any{
		"train":    curve,
		"valLoss":  valLoss,
		"testLoss": testLoss,
		"steps":    done,
	})
	return domains.Result{
		Metric:     valLoss,
		TestMetric: testLoss,
		Values:     vals,
		Curve:      curve,
		Items:      segmentItems(corpus.Validation, segs),
		Artifacts: map[string][]byte{
			"checkpoint.bin":  m.checkpoint(cfg, seed, done, corpus.Vocab),
			"loss_curve.json": curveJSON,
			"log.txt":         log.Bytes(),
		},
	}, nil
}

// sampleBatch fills a's tokens and targets with h.Batch random windows of
// data drawn from rng (one IntN per window, in batch order).
func (m *model) sampleBatch(a *acts, rng *rand.Rand, data []uint8) {
	h := m.h
	for b := 0; b < a.bsz; b++ {
		off := rng.IntN(len(data) - h.Ctx - 1)
		win := data[off : off+h.Ctx+1]
		tk := a.tokens[b*h.Ctx : (b+1)*h.Ctx]
		tg := a.targets[b*h.Ctx : (b+1)*h.Ctx]
		for i := range tk {
			tk[i] = int32(win[i])
			tg[i] = int32(win[i+1])
		}
	}
}

// clipGrads scales the gradient to global L2 norm h.Clip when it exceeds it.
func (m *model) clipGrads(normPart []float64) {
	if m.h.Clip <= 0 {
		return
	}
	if gn := m.gradNorm(normPart); gn > m.h.Clip {
		sc := float32(m.h.Clip / gn)
		parallelFor(len(m.tensors), func(i int) {
			g := m.g(m.tensors[i])
			for j := range g {
				g[j] *= sc
			}
		})
	}
}

// TrainValues are the values a training run reports, from its per-step
// losses (trainLoss: the mean of the last tenth), tokens per step, training
// seconds, analytic flops per step, parameter count and whether a budget
// cut it short. Every backend reports through it.
func TrainValues(losses []float64, tokPerStep int64, trainSec, flopStep float64, params int, truncated bool) map[string]float64 {
	done := len(losses)
	tail := max(1, done/10)
	var trainLoss float64
	for _, l := range losses[max(0, done-tail):] {
		trainLoss += l
	}
	trainLoss /= float64(tail)
	totalTokens := float64(done) * float64(tokPerStep)
	vals := map[string]float64{
		"trainLoss":    trainLoss,
		"tokensPerSec": totalTokens / trainSec,
		"durationSec":  trainSec,
		"totalTokens":  totalTokens,
		"steps":        float64(done),
		"params":       float64(params),
		"gflops":       flopStep * float64(done) / trainSec / 1e9,
		"truncated":    0,
	}
	if truncated {
		vals["truncated"] = 1
	}
	return vals
}

// lrAt is the learning rate for 0-based step s: linear warmup over
// warmupSteps to the peak, then cosine decay to minLRRatio·peak at the end.
func lrAt(h hyper, s, steps int) float64 {
	if s < h.Warmup {
		return h.LR * float64(s+1) / float64(h.Warmup)
	}
	span := steps - h.Warmup
	if span <= 1 {
		return h.LR
	}
	prog := float64(s-h.Warmup) / float64(span-1)
	return h.LR * (h.MinLRRatio + float64((1-h.MinLRRatio)*0.5*(1+math.Cos(math.Pi*prog))))
}

// evalLoss is the mean loss (nats/char) over the fixed evaluation windows
// of split (see evalSegments), using a's batch size.
func evalLoss(ctx context.Context, m *model, a *acts, split []uint8) (float64, error) {
	l, _, err := evalLossItems(ctx, m, a, split)
	return l, err
}

// evalLossItems is evalLoss and the mean loss of each evaluation segment
// (the items a paired comparison of two models on the same split uses).
// The overall loss is summed exactly as evalLoss always has.
func evalLossItems(ctx context.Context, m *model, a *acts, split []uint8) (float64, []float64, error) {
	T := m.h.Ctx
	segLen := min(evalSegLen, len(split)/evalSegments)
	if segLen < 2 {
		return 0, nil, fmt.Errorf("ml: split too short to evaluate (%d chars)", len(split))
	}
	type window struct{ off, n, seg int }
	var wins []window
	for k := 0; k < evalSegments; k++ {
		s0 := k * (len(split) - segLen) / (evalSegments - 1)
		for st := 0; st < segLen-1; st += T {
			wins = append(wins, window{s0 + st, min(T, segLen-1-st), k})
		}
	}
	segSum := make([]float64, evalSegments)
	segN := make([]int, evalSegments)
	var sum float64
	var count int
	for w0 := 0; w0 < len(wins); w0 += a.bsz {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		for b := 0; b < a.bsz; b++ {
			tk := a.tokens[b*T : (b+1)*T]
			tg := a.targets[b*T : (b+1)*T]
			for i := range tk {
				tk[i], tg[i] = 0, -1
			}
			if w0+b >= len(wins) {
				continue
			}
			w := wins[w0+b]
			for i := 0; i < w.n; i++ {
				tk[i] = int32(split[w.off+i])
				tg[i] = int32(split[w.off+i+1])
			}
		}
		s, n := m.forward(a, false)
		sum += s
		count += n
		for b := 0; b < a.bsz && w0+b < len(wins); b++ {
			w := wins[w0+b]
			for i := 0; i < w.n; i++ {
				if l := a.rowLoss[b*T+i]; !math.IsNaN(l) {
					segSum[w.seg] += l
					segN[w.seg]++
				}
			}
		}
	}
	items := make([]float64, evalSegments)
	for k := range items {
		items[k] = segSum[k] / float64(max(segN[k], 1))
	}
	return sum / float64(count), items, nil
}

// TrainerThroughput trains cfg (validated; missing keys from the baseline)
// for about dur of wall time, after one untimed warm-up step, and returns
// the achieved training throughput in characters per second and GFLOP/s
// (analytic flop count, see flopsPerStep). Compare the GFLOP/s with
// MeasureMatmulPeak on the same machine.
func TrainerThroughput(ctx context.Context, dataDir string, cfg domains.Config, seed int64, dur time.Duration) (tokensPerSec, gflops float64, err error) {
	d := New()
	ncfg, err := d.Validate(cfg)
	if err != nil {
		return 0, 0, err
	}
	corpus, err := LoadCorpus(dataDir)
	if err != nil {
		return 0, 0, err
	}
	// Warm up: one step (allocations, page faults, worker start-up).
	warm := ncfg.Clone()
	warm["tokenBudget"] = float64(ncfg.Int("batchSize") * ncfg.Int("contextLength"))
	warm["warmupSteps"] = 0.0
	if _, err := run(ctx, corpus, warm, seed, domains.EvalOptions{}, &benchLimit{dur: 0}); err != nil {
		return 0, 0, err
	}
	res, err := run(ctx, corpus, ncfg, seed, domains.EvalOptions{}, &benchLimit{dur: dur})
	if err != nil {
		return 0, 0, err
	}
	return res.Values["tokensPerSec"], res.Values["gflops"], nil
}

// segmentItems are the validation segments' mean losses, keyed by the
// split's content and the segment layout (equal segments, so their mean is
// the validation loss up to rounding).
func segmentItems(split []uint8, segs []float64) *domains.Items {
	h := sha256.Sum256(split)
	segLen := min(evalSegLen, len(split)/evalSegments)
	return &domains.Items{Agg: domains.ItemsMean, Values: segs,
		Key: domains.ItemsKey("ml/val-loss/segments", hex.EncodeToString(h[:]), fmt.Sprint(evalSegments, "x", segLen))}
}
