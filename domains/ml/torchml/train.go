package torchml

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/diloco"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
)

// Tensor-file kinds the backend writes.
const (
	KindState  = "ml-state"  // sections params, m, v; meta {"step": s}
	KindParams = "ml-params" // section params
)

// StateMeta is the meta of a KindState tensor file.
type StateMeta struct {
	Step int `json:"step"`
}

// Layout is ml.Layout in the tensor format's terms (diloco.Layout).
func Layout(cfg domains.Config, vocabSize int) []tensor.Info { return diloco.Layout(cfg, vocabSize) }

// EncodeState writes st's parameters and AdamW moments as a KindState
// tensor file (fp32 sections params, m, v; meta {"step": st.Step}).
func EncodeState(st *ml.State) ([]byte, error) {
	return tensor.Encode(KindState, Layout(st.Config, st.VocabSize), StateMeta{Step: st.Step},
		tensor.Vec{Name: "params", Codec: tensor.FP32, Data: st.Params},
		tensor.Vec{Name: "m", Codec: tensor.FP32, Data: st.M},
		tensor.Vec{Name: "v", Codec: tensor.FP32, Data: st.V})
}

// DecodeState reads a KindState tensor file into st's Params, M and V (in
// place; lengths must match) and returns the step of its meta.
func DecodeState(b []byte, st *ml.State) (int, error) {
	f, err := tensor.Decode(b)
	if err != nil {
		return 0, err
	}
	var meta StateMeta
	if err := f.Meta(&meta); err != nil {
		return 0, err
	}
	for _, s := range []struct {
		name string
		dst  []float32
	}{{"params", st.Params}, {"m", st.M}, {"v", st.V}} {
		v, err := f.Vec(s.name)
		if err != nil {
			return 0, err
		}
		if len(v) != len(s.dst) {
			return 0, fmt.Errorf("%w: section %s has %d values, want %d", ml.ErrShape, s.name, len(v), len(s.dst))
		}
	}
	for _, s := range []struct {
		name string
		dst  []float32
	}{{"params", st.Params}, {"m", st.M}, {"v", st.V}} {
		copy(s.dst, f.Vecs[s.name])
	}
	return meta.Step, nil
}

// trainResponse is the worker's reply to a train request.
type trainResponse struct {
	Steps     int       `json:"steps"`
	Step      int       `json:"step"`
	Losses    []float64 `json:"losses"`
	LRs       []float64 `json:"lrs"`
	Tokens    int64     `json:"tokens"`
	Seconds   float64   `json:"seconds"`
	Truncated bool      `json:"truncated"`
	Device    string    `json:"device"`
	Torch     string    `json:"torch"`
	Threads   int       `json:"threads"`
	BLAS      struct {
		Backend  string `json:"backend"`
		Library  string `json:"library"`
		BLASInfo string `json:"blasInfo"`
	} `json:"blas"`
}

// trainOpts are the optional parts of a train request.
type trainOpts struct {
	progress      func(done int, loss float64)
	budgetSeconds float64
}

// checkState validates st like ml.TrainSteps does before training.
func checkState(st *ml.State, shard []uint8, n, total int) error {
	if st == nil {
		return fmt.Errorf("torchml: nil state")
	}
	want := ml.NumParams(st.Config, st.VocabSize)
	if len(st.Params) != want || len(st.M) != want || len(st.V) != want {
		return fmt.Errorf("%w: want %d values, have params %d, m %d, v %d", ml.ErrShape, want, len(st.Params), len(st.M), len(st.V))
	}
	if ctxLen := st.Config.Int("contextLength"); len(shard) < ctxLen+2 {
		return fmt.Errorf("ml: shard (%d chars) shorter than contextLength+2", len(shard))
	}
	if n < 0 || total < st.Step+n {
		return fmt.Errorf("ml: %d steps from step %d exceed the schedule of %d steps", n, st.Step, total)
	}
	return nil
}

// TrainSteps is ml.TrainSteps on the torch backend: it continues st in
// place for exactly n optimizer steps on shard, following the LR schedule
// of a run of total steps, on the batches ml.TrainSteps would draw (the
// offsets come from ml.SampleOffsets, which advances st.RNG the same way).
// On success st.Params, st.M and st.V are overwritten in place, st.Step
// advances by n and st.RNG moves on; on error st is left unchanged
// (ml.TrainSteps may leave a partly trained State behind when its context
// is cancelled). Stats.Seconds is the wall time of the whole call
// (including the transfer to and from the worker).
//
// One difference from ml.TrainSteps: the tensor format carries finite
// values only, so a diverging run (NaN or Inf parameters) is an error here
// instead of NaN parameters.
func (b *Backend) TrainSteps(ctx context.Context, st *ml.State, shard []uint8, n, total int) (ml.StepStats, error) {
	stats, _, err := b.trainSteps(ctx, st, shard, n, total, trainOpts{})
	return stats, err
}

// Trainer returns b.TrainSteps as the inner-trainer function DiLoCo takes
// (the same shape as diloco.GoTrainer's), bound to ctx.
func (b *Backend) Trainer(ctx context.Context) func(st *ml.State, data []uint8, n, total int) (ml.StepStats, error) {
	return func(st *ml.State, data []uint8, n, total int) (ml.StepStats, error) {
		return b.TrainSteps(ctx, st, data, n, total)
	}
}

func (b *Backend) trainSteps(ctx context.Context, st *ml.State, shard []uint8, n, total int, o trainOpts) (ml.StepStats, trainResponse, error) {
	var resp trainResponse
	if err := checkState(st, shard, n, total); err != nil {
		return ml.StepStats{}, resp, err
	}
	if err := ctx.Err(); err != nil {
		return ml.StepStats{}, resp, err
	}
	start := time.Now()
	next := *st // shallow: SampleOffsets replaces next.RNG, not st.RNG's bytes
	offsets, err := ml.SampleOffsets(&next, len(shard), n)
	if err != nil {
		return ml.StepStats{}, resp, err
	}
	if n == 0 {
		st.RNG = next.RNG
		return ml.StepStats{Losses: []float64{}}, resp, nil
	}
	in, err := EncodeState(st)
	if err != nil {
		return ml.StepStats{}, resp, fmt.Errorf("torchml: encoding state: %w", err)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	dir, err := b.tempDirLocked()
	if err != nil {
		return ml.StepStats{}, resp, err
	}
	shardPath, err := b.tokenFileLocked(shard)
	if err != nil {
		return ml.StepStats{}, resp, err
	}
	b.nextID++
	inPath := filepath.Join(dir, fmt.Sprintf("state-in-%d.hst", b.nextID))
	outPath := filepath.Join(dir, fmt.Sprintf("state-out-%d.hst", b.nextID))
	defer os.Remove(inPath)
	defer os.Remove(outPath)
	if err := os.WriteFile(inPath, in, 0o600); err != nil {
		return ml.StepStats{}, resp, fmt.Errorf("torchml: %w", err)
	}
	req := map[string]any{
		"op":         "train",
		"config":     st.Config,
		"vocabSize":  st.VocabSize,
		"input":      inPath,
		"output":     outPath,
		"shard":      shardPath,
		"offsets":    offsets,
		"totalSteps": total,
	}
	if b.Threads > 0 {
		req["threads"] = b.Threads
	}
	if o.progress != nil {
		req["progress"] = true
	}
	if o.budgetSeconds > 0 {
		req["budgetSeconds"] = o.budgetSeconds
	}
	if err := b.callLocked(ctx, req, &resp, o.progress); err != nil {
		return ml.StepStats{}, resp, err
	}
	done := resp.Steps
	if done < 0 || done > n || (done < n && !resp.Truncated) || len(resp.Losses) != done || resp.Step != st.Step+done {
		return ml.StepStats{}, resp, fmt.Errorf("%w: train reply for %d steps from %d: steps %d, step %d, %d losses", ErrWorker, n, st.Step, done, resp.Step, len(resp.Losses))
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		return ml.StepStats{}, resp, fmt.Errorf("torchml: reading the worker's state: %w", err)
	}
	// Decode into a scratch state first so that st stays unchanged on error.
	tmp := &ml.State{Params: make([]float32, len(st.Params)), M: make([]float32, len(st.M)), V: make([]float32, len(st.V))}
	step, err := DecodeState(out, tmp)
	if err != nil {
		return ml.StepStats{}, resp, fmt.Errorf("torchml: the worker's state: %w", err)
	}
	if step != st.Step+done {
		return ml.StepStats{}, resp, fmt.Errorf("%w: worker state at step %d, want %d", ErrWorker, step, st.Step+done)
	}
	copy(st.Params, tmp.Params)
	copy(st.M, tmp.M)
	copy(st.V, tmp.V)
	st.Step = step
	if done == n {
		st.RNG = next.RNG
	} else {
		// Truncated (Evaluate's wall-clock budget): the sampler state after
		// the steps actually taken.
		again := *st
		again.RNG = append([]byte(nil), st.RNG...)
		if _, err := ml.SampleOffsets(&again, len(shard), done); err != nil {
			return ml.StepStats{}, resp, err
		}
		st.RNG = again.RNG
	}
	return ml.StepStats{
		Steps:   done,
		Tokens:  int64(done) * ml.TokensPerStep(st.Config),
		Losses:  resp.Losses,
		Seconds: time.Since(start).Seconds(),
	}, resp, nil
}

type evalResponse struct {
	Loss   float64 `json:"loss"`
	Count  int     `json:"count"`
	Device string  `json:"device"`
}

// Eval is ml.EvalParams on the torch backend: the mean loss (nats/char)
// of params under the normalised cfg on split, over the fixed evaluation
// windows plain training uses.
func (b *Backend) Eval(ctx context.Context, cfg domains.Config, vocabSize int, params []float32, split []uint8) (float64, error) {
	if want := ml.NumParams(cfg, vocabSize); len(params) != want {
		return 0, fmt.Errorf("%w: want %d values, have %d", ml.ErrShape, want, len(params))
	}
	file, err := tensor.Encode(KindParams, Layout(cfg, vocabSize), nil, tensor.Vec{Name: "params", Codec: tensor.FP32, Data: params})
	if err != nil {
		return 0, fmt.Errorf("torchml: encoding params: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dir, err := b.tempDirLocked()
	if err != nil {
		return 0, err
	}
	splitPath, err := b.tokenFileLocked(split)
	if err != nil {
		return 0, err
	}
	b.nextID++
	p := filepath.Join(dir, fmt.Sprintf("params-%d.hst", b.nextID))
	defer os.Remove(p)
	if err := os.WriteFile(p, file, 0o600); err != nil {
		return 0, fmt.Errorf("torchml: %w", err)
	}
	var resp evalResponse
	req := map[string]any{"op": "eval", "config": cfg, "vocabSize": vocabSize, "params": p, "split": splitPath}
	if b.Threads > 0 {
		req["threads"] = b.Threads
	}
	if err := b.callLocked(ctx, req, &resp, nil); err != nil {
		return 0, err
	}
	return resp.Loss, nil
}

// Evaluate is ml.Domain.Evaluate on the torch backend: it initialises the
// parameters exactly as the Go trainer does (ml.NewState with seed, stream
// 0), trains on the Go trainer's batches for tokenBudget characters, and
// evaluates the validation and test splits. The Values keys are the Go
// trainer's (trainLoss, valLoss, valBpb, testLoss, tokensPerSec, gflops,
// durationSec, totalTokens, steps, params, truncated); tokensPerSec and
// gflops use the worker's training-loop time, as the Go trainer uses its
// loop's. The artifacts are checkpoint.bin (ml.Checkpoint), loss_curve.json,
// log.txt (with the backend: device, torch version, BLAS) and backend.json.
func (b *Backend) Evaluate(ctx context.Context, cfg domains.Config, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	ncfg, err := ml.New().Validate(cfg)
	if err != nil {
		return domains.Result{}, err
	}
	dir := opts.DataDir
	if dir == "" {
		dir = os.Getenv("HYPERSPACE_DATA_DIR")
	}
	if dir == "" {
		return domains.Result{}, fmt.Errorf("ml: no data directory: set EvalOptions.DataDir or HYPERSPACE_DATA_DIR (expects cranfield/cran.all.1400 under it)")
	}
	corpus, err := ml.LoadCorpus(dir)
	if err != nil {
		return domains.Result{}, err
	}
	ctxLen := ncfg.Int("contextLength")
	if len(corpus.Train) < ctxLen+2 {
		return domains.Result{}, fmt.Errorf("ml: training split (%d chars) shorter than contextLength+2", len(corpus.Train))
	}
	start := time.Now()
	var log bytes.Buffer
	logf := func(format string, a ...any) { fmt.Fprintf(&log, format+"\n", a...) }
	cfgJSON, _ := json.Marshal(ncfg)
	logf("config %s seed %d", cfgJSON, seed)
	logf("corpus %s: %d docs (train %d / val %d / test %d), chars train %d val %d test %d, vocab %d",
		corpus.Path, corpus.Docs, corpus.TrainDocs, corpus.ValDocs, corpus.TestDocs,
		len(corpus.Train), len(corpus.Validation), len(corpus.Test), corpus.VocabSize())

	st, err := ml.NewState(ncfg, corpus.VocabSize(), seed, 0)
	if err != nil {
		return domains.Result{}, err
	}
	tokPerStep := ml.TokensPerStep(ncfg)
	budget := int64(math.Round(ncfg.Float("tokenBudget")))
	steps := int(max(1, budget/tokPerStep))
	flopStep := ml.FlopsPerStep(ncfg, corpus.VocabSize())
	logf("params %d, steps %d, tokens/step %d, analytic GFLOP/step %.3f", len(st.Params), steps, tokPerStep, flopStep/1e9)

	info, err := b.Info(ctx)
	if err != nil {
		return domains.Result{}, err
	}
	infoJSON, _ := json.Marshal(info)
	logf("backend torch: python %s, script %s, device %s, info %s", b.Python, b.Script, b.Device, infoJSON)

	lastProg := time.Time{}
	progress := func(done int, loss float64) {
		if opts.Progress == nil {
			return
		}
		if now := time.Now(); now.Sub(lastProg) >= 250*time.Millisecond || done == steps {
			lastProg = now
			opts.Progress(domains.Progress{Fraction: float64(done) / float64(steps), Step: done, Metric: loss, Message: "training"})
		}
	}
	stats, resp, err := b.trainSteps(ctx, st, corpus.Train, steps, steps, trainOpts{progress: progress, budgetSeconds: opts.BudgetSeconds})
	if err != nil {
		return domains.Result{}, err
	}
	done := stats.Steps
	losses := stats.Losses
	trainSec := resp.Seconds
	if trainSec <= 0 {
		trainSec = stats.Seconds
	}
	curveEvery := max(1, (steps+199)/200)
	var curve [][2]float64
	for s := 0; s < done; s++ {
		if s%curveEvery == 0 || s == steps-1 {
			curve = append(curve, [2]float64{float64(s + 1), losses[s]})
			logf("step %d/%d loss %.4f lr %.3g", s+1, steps, losses[s], ml.LRAt(ncfg, s, steps))
		}
	}
	if done > 0 && curve[len(curve)-1][0] != float64(done) {
		curve = append(curve, [2]float64{float64(done), losses[done-1]})
	}
	if resp.Truncated {
		logf("wall-clock budget of %.1fs exhausted after step %d/%d: stopping (truncated)", opts.BudgetSeconds, done, steps)
	}
	vals := ml.TrainValues(losses[:done], int64(tokPerStep), trainSec, flopStep, len(st.Params), resp.Truncated)
	vals["durationSec"] = time.Since(start).Seconds()
	trainLoss := vals["trainLoss"]
	if opts.Progress != nil {
		opts.Progress(domains.Progress{Fraction: 1, Step: done, Metric: trainLoss, Message: "evaluating"})
	}
	valLoss, err := b.Eval(ctx, ncfg, corpus.VocabSize(), st.Params, corpus.Validation)
	if err != nil {
		return domains.Result{}, err
	}
	testLoss, err := b.Eval(ctx, ncfg, corpus.VocabSize(), st.Params, corpus.Test)
	if err != nil {
		return domains.Result{}, err
	}
	vals["valLoss"] = valLoss
	vals["valBpb"] = valLoss / math.Ln2
	vals["testLoss"] = testLoss
	vals["durationSec"] = time.Since(start).Seconds()
	logf("train %.2fs (worker loop; %.2fs with transfers), %.0f tokens/s, %.2f GFLOP/s; trainLoss %.4f valLoss %.4f (%.4f bpc) testLoss %.4f truncated %v",
		trainSec, stats.Seconds, vals["tokensPerSec"], vals["gflops"], trainLoss, valLoss, vals["valBpb"], testLoss, resp.Truncated)

	ck, err := ml.Checkpoint(ncfg, corpus.Vocab, st.Params, seed, done)
	if err != nil {
		return domains.Result{}, err
	}
	curveJSON, _ := json.Marshal(map[string]any{
		"train":    curve,
		"valLoss":  valLoss,
		"testLoss": testLoss,
		"steps":    done,
	})
	backendJSON, _ := json.Marshal(map[string]any{
		"backend":       "torch",
		"python":        b.Python,
		"script":        b.Script,
		"device":        resp.Device,
		"torch":         resp.Torch,
		"threads":       resp.Threads,
		"blas":          resp.BLAS.Backend,
		"blasLibrary":   resp.BLAS.Library,
		"blasInfo":      resp.BLAS.BLASInfo,
		"trainSeconds":  trainSec,
		"callSeconds":   stats.Seconds,
		"tokensPerSec":  vals["tokensPerSec"],
		"workerRequest": "train",
	})
	return domains.Result{
		Metric:     valLoss,
		TestMetric: testLoss,
		Values:     vals,
		Curve:      curve,
		Artifacts: map[string][]byte{
			"checkpoint.bin":  ck,
			"loss_curve.json": curveJSON,
			"log.txt":         log.Bytes(),
			"backend.json":    backendJSON,
		},
	}, nil
}

// Domain wraps a Backend as a domains.Domain: the ML domain (name, metric,
// space, baseline, validation, description) with Evaluate on torch. A
// worker serving GPU queues registers it in place of ml.New().
type Domain struct {
	*ml.Domain
	Backend *Backend
}

// NewDomain returns the ML domain evaluated on b.
func NewDomain(b *Backend) *Domain { return &Domain{Domain: ml.New(), Backend: b} }

var _ domains.Domain = (*Domain)(nil)

// Evaluate implements domains.Domain on the torch backend.
func (d *Domain) Evaluate(ctx context.Context, cfg domains.Config, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	return d.Backend.Evaluate(ctx, cfg, seed, opts)
}

// TrainStepsWithProgress is TrainSteps with a per-step progress callback
// (the shape activities.InnerTrainer takes).
func (b *Backend) TrainStepsWithProgress(ctx context.Context, st *ml.State, shard []uint8, n, total int, progress func(done int, loss float64)) (ml.StepStats, error) {
	stats, _, err := b.trainSteps(ctx, st, shard, n, total, trainOpts{progress: progress})
	return stats, err
}
