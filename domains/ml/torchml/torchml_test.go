package torchml

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
)

// Tolerances of TestTrainStepsMatchesGo (8 steps after 3 Go warm-up steps,
// lr 1e-2). Both backends start from the same bits and batches; they differ
// only in float32 rounding (reduction order, float64 vs float32 sums), and
// AdamW's normalised update amplifies the tiny gradient differences of
// near-zero gradients to at most a few lr-sized steps on single elements.
// Measured (2 cores, OpenBLAS): max |Δparam| 3e-6..5e-3, relative L2
// (over the update's norm) 2e-6..2.5e-3, moments 3e-8..7e-7, per-step loss
// 2e-7..6e-7; the largest are kaiming init without warmup (full lr from
// step 1) and relu (its kink). The max bound is two lr-sized AdamW steps
// on one element (a flipped update sign).
const (
	tolParamMax   = 2e-2 // max |Δparam|
	tolParamRelL2 = 1e-2 // ‖p_torch − p_go‖ / ‖p_go − p_start‖
	tolMomentRel  = 2e-2 // ‖m_torch − m_go‖ / ‖m_go‖, same for v
	tolLoss       = 1e-4 // |Δ per-step loss|
	tolFirstLoss  = 1e-5 // the first step's loss: same parameters, same batch
)

func relL2(a, b, ref []float32) float64 {
	var d, r float64
	for i := range a {
		x := float64(a[i]) - float64(b[i])
		d += x * x
		if ref != nil {
			y := float64(b[i]) - float64(ref[i])
			r += y * y
		} else {
			r += float64(b[i]) * float64(b[i])
		}
	}
	if r == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / r)
}

func maxAbs(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// TestTrainStepsMatchesGo (a): one TrainSteps call of each backend from
// the same State (already 3 steps into training, so the moments are not
// zero) on the same shard: same step count, sampler state, tokens and LR
// schedule; parameters, moments and per-step losses within the stated
// tolerances, for every activation, both norms and every init.
func TestTrainStepsMatchesGo(t *testing.T) {
	b := backend(t)
	c := corpus(t)
	ctx := context.Background()
	cases := [][]any{
		{},
		{"normalization", "rmsnorm", "activation", "swiglu"},
		{"activation", "relu", "initType", "xavier", "gradientClipNorm", 0.0},
		{"nLayers", 2.0, "initType", "kaiming", "weightDecay", 0.0, "warmupSteps", 0.0},
		{"normalization", "rmsnorm", "activation", "gelu", "nHeads", 4.0, "gradientClipNorm", 0.05},
	}
	for _, kv := range cases {
		cfg := withCfg(t, tinyConfig(t), kv...)
		const warm, n, total = 3, 8, 40
		st0, err := ml.NewState(cfg, c.VocabSize(), 11, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ml.TrainSteps(ctx, st0, c.Train, warm, total, nil); err != nil {
			t.Fatal(err)
		}
		gs, ts := st0.Clone(), st0.Clone()
		gst, err := ml.TrainSteps(ctx, gs, c.Train, n, total, nil)
		if err != nil {
			t.Fatal(err)
		}
		tst, resp, err := b.trainSteps(ctx, ts, c.Train, n, total, trainOpts{})
		if err != nil {
			t.Fatalf("%v: %v", kv, err)
		}
		if tst.Steps != n || tst.Tokens != gst.Tokens || ts.Step != gs.Step || !bytes.Equal(ts.RNG, gs.RNG) {
			t.Fatalf("%v: torch stats %+v step %d; go %+v step %d; RNG equal %v", kv, tst, ts.Step, gst, gs.Step, bytes.Equal(ts.RNG, gs.RNG))
		}
		for i, lr := range resp.LRs {
			if want := ml.LRAt(cfg, warm+i, total); math.Abs(lr-want) > 1e-15*want {
				t.Fatalf("%v: step %d lr %v, Go %v", kv, warm+i, lr, want)
			}
		}
		var dl float64
		for i := range gst.Losses {
			dl = max(dl, math.Abs(gst.Losses[i]-tst.Losses[i]))
		}
		pmax, prel := maxAbs(ts.Params, gs.Params), relL2(ts.Params, gs.Params, st0.Params)
		mrel, vrel := relL2(ts.M, gs.M, nil), relL2(ts.V, gs.V, nil)
		t.Logf("%v: max|Δp| %.2g, rel L2 %.2g, m %.2g, v %.2g, max|Δloss| %.2g (first %.7f vs %.7f)", kv, pmax, prel, mrel, vrel, dl, tst.Losses[0], gst.Losses[0])
		if math.Abs(tst.Losses[0]-gst.Losses[0]) > tolFirstLoss || dl > tolLoss || pmax > tolParamMax || prel > tolParamRelL2 || mrel > tolMomentRel || vrel > tolMomentRel {
			t.Errorf("%v: torch and Go disagree beyond tolerance", kv)
		}
	}
}

// TestMixedBackends: a State handed back and forth (Go 4 steps, torch 4,
// Go 4) stays close to 12 Go steps: the state format carries everything.
func TestMixedBackends(t *testing.T) {
	b := backend(t)
	c := corpus(t)
	ctx := context.Background()
	cfg := tinyConfig(t)
	const total = 12
	st, err := ml.NewState(cfg, c.VocabSize(), 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := st.Clone()
	if _, err := ml.TrainSteps(ctx, ref, c.Train, total, total, nil); err != nil {
		t.Fatal(err)
	}
	start := st.Clone()
	train := b.Trainer(ctx)
	goTrain := func(st *ml.State, data []uint8, n, total int) (ml.StepStats, error) {
		return ml.TrainSteps(ctx, st, data, n, total, nil)
	}
	for _, f := range []func(*ml.State, []uint8, int, int) (ml.StepStats, error){goTrain, train, goTrain} {
		if _, err := f(st, c.Train, 4, total); err != nil {
			t.Fatal(err)
		}
	}
	if st.Step != ref.Step || !bytes.Equal(st.RNG, ref.RNG) {
		t.Fatalf("step %d, want %d; RNG equal %v", st.Step, ref.Step, bytes.Equal(st.RNG, ref.RNG))
	}
	if d := relL2(st.Params, ref.Params, start.Params); d > tolParamRelL2 {
		t.Fatalf("mixed training relative L2 %.3g from Go-only training", d)
	}
}

// TestDeterministicCPU: on CPU the same request gives the same bits.
func TestDeterministicCPU(t *testing.T) {
	b := backend(t)
	c := corpus(t)
	ctx := context.Background()
	nb := &Backend{Python: b.Python, Script: b.Script, Device: "cpu"}
	defer nb.Close()
	st, err := ml.NewState(withCfg(t, tinyConfig(t), "activation", "swiglu"), c.VocabSize(), 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, bb := st.Clone(), st.Clone()
	if _, err := nb.TrainSteps(ctx, a, c.Train, 6, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := nb.TrainSteps(ctx, bb, c.Train, 6, 10); err != nil {
		t.Fatal(err)
	}
	for i := range a.Params {
		if math.Float32bits(a.Params[i]) != math.Float32bits(bb.Params[i]) || math.Float32bits(a.V[i]) != math.Float32bits(bb.V[i]) {
			t.Fatalf("value %d differs between identical CPU runs", i)
		}
	}
}

// Val-loss agreement of TestValLossAgrees: both backends train the same
// config from the same weights on the same batches for the same budget.
// Measured: |Δ val_loss| / val_loss about 1e-4 (0.01%); the stated bound
// leaves room for the chaotic growth of float32 differences over a run.
const tolValLossRel = 0.02

// agreementConfig is the config of TestValLossAgrees: 2 layers of 48,
// 128k characters (500 steps of 8×32): a few seconds per backend.
func agreementConfig(t testing.TB) domains.Config {
	return withCfg(t, tinyConfig(t), "nLayers", 2.0, "dModel", 48.0, "nHeads", 4.0, "tokenBudget", 128000.0, "warmupSteps", 20.0)
}

// TestValLossAgrees (b): Evaluate on both backends reaches the same
// val_loss (and test_loss) within tolValLossRel, with the same result
// keys; the torch backend's Eval of the Go-trained parameters matches
// ml.EvalParams.
func TestValLossAgrees(t *testing.T) {
	b := backend(t)
	dir := testDataDir(t)
	ctx := context.Background()
	cfg := agreementConfig(t)
	opts := domains.EvalOptions{DataDir: dir}
	var progress []domains.Progress
	topts := opts
	topts.Progress = func(p domains.Progress) { progress = append(progress, p) }
	tr, err := b.Evaluate(ctx, cfg, 1, topts)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := ml.New().Evaluate(ctx, cfg, 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	rel := math.Abs(tr.Metric-gr.Metric) / gr.Metric
	relTest := math.Abs(tr.TestMetric-gr.TestMetric) / gr.TestMetric
	t.Logf("val_loss go %.5f torch %.5f (rel %.2g); test_loss go %.5f torch %.5f (rel %.2g); tokens/s go %.0f torch %.0f; steps %v",
		gr.Metric, tr.Metric, rel, gr.TestMetric, tr.TestMetric, relTest, gr.Values["tokensPerSec"], tr.Values["tokensPerSec"], gr.Values["steps"])
	if rel > tolValLossRel || relTest > tolValLossRel {
		t.Fatalf("val/test loss disagree beyond %.0f%%", 100*tolValLossRel)
	}
	keys := func(m map[string]float64) []string {
		var k []string
		for s := range m {
			k = append(k, s)
		}
		sort.Strings(k)
		return k
	}
	if g, tk := strings.Join(keys(gr.Values), ","), strings.Join(keys(tr.Values), ","); g != tk {
		t.Fatalf("value keys differ: go %s, torch %s", g, tk)
	}
	for _, k := range []string{"steps", "totalTokens", "params", "truncated"} {
		if gr.Values[k] != tr.Values[k] {
			t.Errorf("%s: go %v torch %v", k, gr.Values[k], tr.Values[k])
		}
	}
	// GFLOP/s on the same analytic scale (ml.FlopsPerStep).
	fpt := func(r domains.Result) float64 { return r.Values["gflops"] * 1e9 / r.Values["tokensPerSec"] }
	if g, tk := fpt(gr), fpt(tr); math.Abs(g-tk) > 1e-9*g {
		t.Errorf("flops per token: go %v torch %v", g, tk)
	}
	if len(tr.Curve) != len(gr.Curve) {
		t.Errorf("curve has %d points, Go's %d", len(tr.Curve), len(gr.Curve))
	}
	for _, a := range []string{"checkpoint.bin", "loss_curve.json", "log.txt", "backend.json"} {
		if len(tr.Artifacts[a]) == 0 {
			t.Errorf("artifact %s missing", a)
		}
	}
	if len(tr.Artifacts["checkpoint.bin"]) != len(gr.Artifacts["checkpoint.bin"]) {
		t.Errorf("checkpoint sizes differ: %d vs %d", len(tr.Artifacts["checkpoint.bin"]), len(gr.Artifacts["checkpoint.bin"]))
	}
	if !strings.Contains(string(tr.Artifacts["log.txt"]), "backend torch") {
		t.Error("log.txt does not name the backend")
	}
	if len(progress) == 0 || progress[len(progress)-1].Message != "evaluating" {
		t.Errorf("progress reports %+v", progress)
	}

	// Evaluation alone: the torch Eval of fixed parameters equals Go's.
	c := corpus(t)
	st, err := ml.NewState(cfg, c.VocabSize(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ml.TrainSteps(ctx, st, c.Train, 30, 500, nil); err != nil {
		t.Fatal(err)
	}
	gv, err := ml.EvalParams(ctx, cfg, c.VocabSize(), st.Params, c.Validation)
	if err != nil {
		t.Fatal(err)
	}
	tv, err := b.Eval(ctx, cfg, c.VocabSize(), st.Params, c.Validation)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("eval of the same parameters: go %.7f torch %.7f", gv, tv)
	if math.Abs(gv-tv) > 1e-5*gv {
		t.Fatalf("eval of the same parameters: go %v torch %v", gv, tv)
	}
}

// TestTensorRoundTrip (c): a State encoded by Go, decoded by the worker
// into torch tensors and written back decodes in Go to the same bits,
// layout, kind and meta; the worker refuses codecs it does not read.
func TestTensorRoundTrip(t *testing.T) {
	b := backend(t)
	ctx := context.Background()
	cfg := withCfg(t, tinyConfig(t), "normalization", "rmsnorm", "activation", "swiglu")
	const vocab = 53
	st, err := ml.NewState(cfg, vocab, 9, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.Step = 17
	r := rand.New(rand.NewPCG(1, 2))
	specials := []float32{0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32, 1e-38, 3.4e38, 1}
	for i := range st.Params {
		st.M[i] = float32(r.NormFloat64())
		st.V[i] = math.Float32frombits(r.Uint32() & 0x7f7fffff) // any finite non-negative
		if i < len(specials) {
			st.Params[i] = specials[i]
		}
	}
	in, err := EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inPath, outPath := filepath.Join(dir, "in.hst"), filepath.Join(dir, "out.hst")
	if err := os.WriteFile(inPath, in, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Raw(ctx, map[string]any{"op": "echo", "input": inPath, "output": outPath}); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := tensor.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.Kind != KindState {
		t.Fatalf("kind %q", f.Header.Kind)
	}
	wantLayout, _ := json.Marshal(Layout(cfg, vocab))
	gotLayout, _ := json.Marshal(f.Header.Layout)
	if !bytes.Equal(wantLayout, gotLayout) {
		t.Fatalf("layout changed:\n%s\n%s", gotLayout, wantLayout)
	}
	back := st.Clone()
	clear(back.Params)
	clear(back.M)
	clear(back.V)
	step, err := DecodeState(out, back)
	if err != nil {
		t.Fatal(err)
	}
	if step != 17 {
		t.Fatalf("step %d", step)
	}
	for name, pair := range map[string][2][]float32{"params": {st.Params, back.Params}, "m": {st.M, back.M}, "v": {st.V, back.V}} {
		for i := range pair[0] {
			if math.Float32bits(pair[0][i]) != math.Float32bits(pair[1][i]) {
				t.Fatalf("%s[%d]: %x became %x", name, i, math.Float32bits(pair[0][i]), math.Float32bits(pair[1][i]))
			}
		}
	}
	// The worker's own layout for the config matches ml.Layout: a train
	// request accepts the file (no layout error) ...
	// ... and a file in a codec it does not read is refused clearly.
	fp16, err := tensor.Encode(KindParams, Layout(cfg, vocab), nil, tensor.Vec{Name: "params", Codec: tensor.FP16, Data: st.Params})
	if err != nil {
		t.Fatal(err)
	}
	p16 := filepath.Join(dir, "fp16.hst")
	if err := os.WriteFile(p16, fp16, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = b.Raw(ctx, map[string]any{"op": "echo", "input": p16, "output": outPath})
	var re *RequestError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "fp32 only") {
		t.Fatalf("fp16 file: %v", err)
	}
}

// TestLayoutMismatch: a state whose layout does not belong to the config
// is refused by the worker with a message naming the tensor.
func TestLayoutMismatch(t *testing.T) {
	b := backend(t)
	c := corpus(t)
	ctx := context.Background()
	cfg := tinyConfig(t)
	other := withCfg(t, cfg, "normalization", "rmsnorm")
	st, err := ml.NewState(other, c.VocabSize(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	in, err := EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "in.hst")
	if err := os.WriteFile(p, in, 0o600); err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(dir, "shard.u8")
	if err := os.WriteFile(sp, c.Train[:1000], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = b.Raw(ctx, map[string]any{"op": "train", "config": cfg, "vocabSize": c.VocabSize(), "input": p, "output": filepath.Join(dir, "out.hst"),
		"shard": sp, "offsets": [][]int{{0, 1, 2, 3, 4, 5, 6, 7}}, "totalSteps": 10})
	var re *RequestError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "does not match the config") {
		t.Fatalf("layout mismatch: %v", err)
	}
}

// TestErrors (d): bad requests come back as errors with the Python
// traceback's last lines and leave the worker running; TrainSteps checks
// its arguments like ml.TrainSteps and leaves the State unchanged on
// error; a worker killed mid-call or crashing gives an ErrWorker error and
// the next call starts a new one; a cancelled context kills the worker
// promptly.
func TestErrors(t *testing.T) {
	b := freshBackend(t)
	c := corpus(t)
	ctx := context.Background()
	if _, err := b.Info(ctx); err != nil {
		t.Fatal(err)
	}
	pid := b.PID()
	if pid == 0 {
		t.Fatal("no worker pid")
	}

	// Bad requests.
	var re *RequestError
	if _, err := b.Raw(ctx, map[string]any{"op": "nope"}); !errors.As(err, &re) || !strings.Contains(err.Error(), "unknown op") {
		t.Fatalf("unknown op: %v", err)
	}
	_, err := b.Raw(ctx, map[string]any{"op": "eval", "config": tinyConfig(t), "vocabSize": c.VocabSize(), "params": "/nonexistent/params.hst", "split": "/nonexistent/split.u8"})
	if !errors.As(err, &re) || !strings.Contains(re.Message, "FileNotFoundError") || !strings.Contains(err.Error(), "Traceback") && !strings.Contains(err.Error(), "line ") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := b.Raw(ctx, map[string]any{"op": "train", "config": map[string]any{"nLayers": 1}, "vocabSize": 53}); !errors.As(err, &re) || !strings.Contains(re.Message, "config has no") {
		t.Fatalf("incomplete config: %v", err)
	}
	if b.PID() != pid {
		t.Fatal("a bad request restarted the worker")
	}

	// Argument checks, as ml.TrainSteps makes them; the State is unchanged.
	cfg := tinyConfig(t)
	st, err := ml.NewState(cfg, c.VocabSize(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	orig := st.Clone()
	if _, err := b.TrainSteps(ctx, st, c.Train[:20], 1, 10); err == nil || !strings.Contains(err.Error(), "shorter than contextLength+2") {
		t.Fatalf("short shard: %v", err)
	}
	if _, err := b.TrainSteps(ctx, st, c.Train, 11, 10); err == nil || !strings.Contains(err.Error(), "exceed the schedule") {
		t.Fatalf("too many steps: %v", err)
	}
	bad := st.Clone()
	bad.M = bad.M[1:]
	if _, err := b.TrainSteps(ctx, bad, c.Train, 1, 10); !errors.Is(err, ml.ErrShape) {
		t.Fatalf("bad shape: %v", err)
	}
	if _, err := b.Eval(ctx, cfg, c.VocabSize(), st.Params[1:], c.Validation); !errors.Is(err, ml.ErrShape) {
		t.Fatalf("eval bad shape: %v", err)
	}
	stats, err := b.TrainSteps(ctx, st, c.Train, 0, 10)
	if err != nil || stats.Steps != 0 || st.Step != 0 {
		t.Fatalf("zero steps: %+v %v", stats, err)
	}
	g0 := orig.Clone()
	if _, err := ml.TrainSteps(ctx, g0, c.Train, 0, 10, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.RNG, g0.RNG) {
		t.Fatal("zero steps moved the sampler differently from ml.TrainSteps")
	}

	// Killed mid-call.
	errc := make(chan error, 1)
	go func() {
		_, err := b.Raw(ctx, map[string]any{"op": "sleep", "seconds": 60})
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrWorker) || !strings.Contains(err.Error(), "exited") {
			t.Fatalf("killed worker: %v", err)
		}
		t.Logf("killed mid-call: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("call did not return after the worker was killed")
	}
	// The next call starts a new worker and works.
	before := st.Clone()
	if _, err := b.TrainSteps(ctx, st, c.Train, 2, 10); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if b.PID() == 0 || b.PID() == pid {
		t.Fatalf("worker pid %d after restart (was %d)", b.PID(), pid)
	}
	if st.Step != 2 || relL2(st.Params, before.Params, nil) == 0 {
		t.Fatal("training after restart did nothing")
	}

	// A crash reports the worker's stderr.
	pid = b.PID()
	if _, err := b.Raw(ctx, map[string]any{"op": "crash", "code": 7}); !errors.Is(err, ErrWorker) || !strings.Contains(err.Error(), "crash requested") {
		t.Fatalf("crash: %v", err)
	}
	if b.PID() != 0 {
		t.Fatal("pid still set after crash")
	}

	// Cancellation kills the worker promptly and leaves the State alone.
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := b.Raw(cctx, map[string]any{"op": "sleep", "seconds": 60}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled call: %v", err)
	}
	if el := time.Since(t0); el > 15*time.Second {
		t.Fatalf("cancellation took %v", el)
	}
	snap := st.Clone()
	cctx2, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := b.TrainSteps(cctx2, st, c.Train, 2, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled TrainSteps: %v", err)
	}
	if st.Step != snap.Step || !bytes.Equal(st.RNG, snap.RNG) || relL2(st.Params, snap.Params, nil) != 0 {
		t.Fatal("a cancelled TrainSteps changed the State")
	}
	if _, err := b.Info(ctx); err != nil {
		t.Fatalf("after cancellation: %v", err)
	}
}

// TestCLI: the script's one-shot mode answers a request from stdin and
// exits 1 on a bad one.
func TestCLI(t *testing.T) {
	b := backend(t)
	run := func(req string) (map[string]any, error) {
		cmd := exec.Command(b.Python, b.Script, "run", "-")
		cmd.Stdin = strings.NewReader(req)
		out, err := cmd.Output()
		var res map[string]any
		if jerr := json.Unmarshal(out, &res); jerr != nil {
			t.Fatalf("output %q: %v (%v)", out, jerr, err)
		}
		return res, err
	}
	res, err := run(`{"op": "info", "device": "cpu"}`)
	if err != nil || res["ok"] != true || res["torch"] == nil {
		t.Fatalf("info: %v %v", res, err)
	}
	blas, _ := res["blas"].(map[string]any)
	t.Logf("torch %v, threads %v, BLAS %v (%v)", res["torch"], res["threads"], blas["backend"], blas["library"])
	res, err = run(`{"op": "info", "device": "tpu"}`)
	if err == nil || res["ok"] != false {
		t.Fatalf("bad device: %v %v", res, err)
	}
}

// TestScriptLinked: scripts/torch/hs_torch.py is the embedded script.
func TestScriptLinked(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "scripts", "torch", "hs_torch.py"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, script) {
		t.Fatal("scripts/torch/hs_torch.py differs from the embedded domains/ml/torchml/hs_torch.py")
	}
}

// TestBaselineAgreement is TestValLossAgrees on the baseline config itself
// (700k characters, about 30 s for the Go trainer on an idle 2-core
// machine). Opt-in: HYPERSPACE_TORCH_LONG=1.
func TestBaselineAgreement(t *testing.T) {
	if os.Getenv("HYPERSPACE_TORCH_LONG") != "1" {
		t.Skip("set HYPERSPACE_TORCH_LONG=1 to train the baseline on both backends")
	}
	b := backend(t)
	ctx := context.Background()
	opts := domains.EvalOptions{DataDir: testDataDir(t)}
	cfg := ml.New().Baseline()
	tr, err := b.Evaluate(ctx, cfg, 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := ml.New().Evaluate(ctx, cfg, 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	rel := math.Abs(tr.Metric-gr.Metric) / gr.Metric
	t.Logf("baseline val_loss go %.5f torch %.5f (rel %.2g); test_loss go %.5f torch %.5f; tokens/s go %.0f torch %.0f; train+eval s go %.1f torch %.1f",
		gr.Metric, tr.Metric, rel, gr.TestMetric, tr.TestMetric, gr.Values["tokensPerSec"], tr.Values["tokensPerSec"], gr.Values["durationSec"], tr.Values["durationSec"])
	if rel > tolValLossRel {
		t.Fatalf("baseline val_loss disagrees beyond %.0f%%", 100*tolValLossRel)
	}
}

// TestBudgetTruncates: a wall-clock budget stops the torch training early
// and marks the result truncated, as the Go trainer does; Domain serves
// the ML domain's description with Evaluate on torch.
func TestBudgetTruncates(t *testing.T) {
	b := backend(t)
	d := NewDomain(b)
	if d.Name() != "ml" || d.Metric().Name != "val_loss" {
		t.Fatalf("domain %s / %s", d.Name(), d.Metric().Name)
	}
	cfg := withCfg(t, agreementConfig(t), "tokenBudget", 2e6)
	res, err := d.Evaluate(context.Background(), cfg, 1, domains.EvalOptions{DataDir: testDataDir(t), BudgetSeconds: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	total := float64(int(2e6) / int(ml.TokensPerStep(cfg)))
	if res.Values["truncated"] != 1 || res.Values["steps"] >= total || res.Values["steps"] < 1 || math.IsNaN(res.Metric) {
		t.Fatalf("truncated %v after %v of %v steps, val_loss %v", res.Values["truncated"], res.Values["steps"], total, res.Metric)
	}
	if !strings.Contains(string(res.Artifacts["log.txt"]), "truncated") {
		t.Fatal("log does not say truncated")
	}
}
