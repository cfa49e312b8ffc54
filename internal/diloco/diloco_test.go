package diloco

import (
	"math"

	"context"
	"errors"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
	"os"
	"path/filepath"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

func corpus(t testing.TB) *ml.Corpus {
	dir := os.Getenv("HYPERSPACE_DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	if _, err := os.Stat(ml.CorpusPath(dir)); err != nil {
		t.Skip("no Cranfield corpus")
	}
	c, err := ml.LoadCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tiny() domains.Config {
	return domains.Config{"nLayers": 1.0, "dModel": 16.0, "nHeads": 2.0, "contextLength": 16.0, "dFFMult": 2.0,
		"batchSize": 4.0, "warmupSteps": 3.0, "learningRate": 0.01}
}

func f(v float64) *float64 { return &v }

// TestEquivalence: K=1, outer lr 1, momentum 0, fp32 is plain training
// for the same steps, bit for bit.
func TestEquivalence(t *testing.T) {
	c := corpus(t)
	spec := Spec{Config: tiny(), Workers: 1, InnerSteps: 7, Rounds: 5, OuterLR: f(1), OuterMomentum: f(0), Compression: "fp32", Seed: 11}
	res, err := Simulate(context.Background(), spec, c, "eq")
	if err != nil {
		t.Fatal(err)
	}
	ns, _ := spec.Normalize()
	plain, err := ml.NewState(ns.Config, c.VocabSize(), 11, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ml.TrainSteps(context.Background(), plain, c.Train, 35, 35, nil); err != nil {
		t.Fatal(err)
	}
	for i := range plain.Params {
		if plain.Params[i] != res.Params[i] {
			t.Fatalf("parameter %d: DiLoCo %v, plain %v", i, res.Params[i], plain.Params[i])
		}
	}
	// The same through Evaluate (the ML domain's own training path).
	cfg := ns.Config.Clone()
	cfg["tokenBudget"] = float64(35 * ml.TokensPerStep(cfg))
	ev, err := ml.New().Evaluate(context.Background(), cfg, 11, domains.EvalOptions{DataDir: filepath.Dir(filepath.Dir(c.Path))})
	if err != nil {
		t.Fatal(err)
	}
	val, _ := ml.EvalParams(context.Background(), ns.Config, c.VocabSize(), res.Params, c.Validation)
	if val != ev.Metric {
		t.Fatalf("val_loss %v vs Evaluate %v", val, ev.Metric)
	}
}

// TestCompressedRuns: every codec trains (loss falls), bytes shrink in
// codec order, and the run is deterministic.
func TestCompressedRuns(t *testing.T) {
	c := corpus(t)
	ctx := context.Background()
	var prevUp int64
	for _, codec := range []string{"fp32", "fp16", "int8", "int4"} {
		spec := Spec{Config: tiny(), Workers: 3, InnerSteps: 10, Rounds: 4, Compression: codec, Block: 64}
		a, err := Simulate(ctx, spec, c, "c")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Simulate(ctx, spec, c, "c")
		for i := range a.Params {
			if a.Params[i] != b.Params[i] {
				t.Fatalf("%s: not deterministic", codec)
			}
		}
		first, last := a.Rounds[0].TrainLoss, a.Rounds[len(a.Rounds)-1].TrainLoss
		if !(last < first) {
			t.Fatalf("%s: train loss %v -> %v", codec, first, last)
		}
		if prevUp != 0 && a.BytesUp >= prevUp {
			t.Fatalf("%s: %d bytes up, previous codec %d", codec, a.BytesUp, prevUp)
		}
		prevUp = a.BytesUp
		t.Logf("%s: loss %.3f -> %.3f, up %d down %d", codec, first, last, a.BytesUp, a.BytesDown)
	}
}

func TestWorkerShards(t *testing.T) {
	c := corpus(t)
	base := Spec{Config: tiny(), Workers: 3, InnerSteps: 5, Rounds: 1}
	ctxLen := base.Config.Int("contextLength")
	interleaved, err := c.InterleavedShards(3, ctxLen)
	if err != nil {
		t.Fatal(err)
	}
	contiguous, err := c.Shards(3, ctxLen)
	if err != nil {
		t.Fatal(err)
	}
	for mode, want := range map[string][][]uint8{
		"":               interleaved, // the default
		ShardInterleaved: interleaved,
		ShardDisjoint:    contiguous,
		ShardFull:        {c.Train, c.Train, c.Train},
	} {
		s := base
		s.Sharding = mode
		s, err := s.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		got, err := WorkerShards(s, c)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("%q: %d shards", mode, len(got))
		}
		for i := range got {
			if string(got[i]) != string(want[i]) {
				t.Fatalf("%q: shard %d differs", mode, i)
			}
		}
	}
	// The two disjoint modes cut the split differently.
	if string(interleaved[0]) == string(contiguous[0]) {
		t.Fatal("interleaved shard 0 equals the contiguous one")
	}
}

func TestNormalize(t *testing.T) {
	ok := Spec{Config: tiny(), Workers: 4, InnerSteps: 50, Rounds: 3}
	n, err := ok.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if *n.OuterLR != 0.7 || *n.OuterMomentum != 0.9 || n.FinalStep != FinalAverage || n.Compression != "int8" || !*n.ErrorFeedback || n.QuorumCount() != 3 || n.Sharding != ShardInterleaved {
		t.Fatalf("defaults %+v", n)
	}
	// A stored spec of a run created before interleaved shards resumes on
	// its contiguous ones.
	if n, err := (Spec{Config: tiny(), Workers: 4, InnerSteps: 50, Rounds: 3, Sharding: ShardDisjoint}).Normalize(); err != nil || n.Sharding != ShardDisjoint {
		t.Fatalf("disjoint: %q, %v", n.Sharding, err)
	}
	tb := Spec{Config: tiny(), Workers: 2, InnerSteps: 10, TokenBudget: 10_000}
	if n, err := tb.Normalize(); err != nil || n.Rounds != 8 { // 2·10·64 = 1280 per round
		t.Fatalf("token budget: %v rounds, %v", n.Rounds, err)
	}
	for field, s := range map[string]Spec{
		"workers":        {Config: tiny(), Workers: 0, InnerSteps: 5, Rounds: 1},
		"innerSteps":     {Config: tiny(), Workers: 1, InnerSteps: 100000, Rounds: 1},
		"compression":    {Config: tiny(), Workers: 1, InnerSteps: 5, Rounds: 1, Compression: "int3"},
		"config.dModel":  {Config: domains.Config{"dModel": 17.0, "nHeads": 2.0}, Workers: 1, InnerSteps: 5, Rounds: 1},
		"config.nLayers": {Config: domains.Config{"nLayers": 99.0}, Workers: 1, InnerSteps: 5, Rounds: 1},
		"rounds":         {Config: tiny(), Workers: 1, InnerSteps: 5},
		"outerMomentum":  {Config: tiny(), Workers: 1, InnerSteps: 5, Rounds: 1, OuterMomentum: f(1)},
		"sharding":       {Config: tiny(), Workers: 1, InnerSteps: 5, Rounds: 1, Sharding: "random"},
		"quorum":         {Config: tiny(), Workers: 1, InnerSteps: 5, Rounds: 1, Quorum: 2},
		"finalStep":      {Config: tiny(), Workers: 1, InnerSteps: 5, Rounds: 1, FinalStep: "nesterov"},
	} {
		_, err := s.Normalize()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

// TestFinalStep: every round but the last applies Nesterov; with
// finalStep "average" the last round's new parameters are the
// token-weighted average of its workers' (global − mean g), with "outer"
// Nesterov again.
func TestFinalStep(t *testing.T) {
	global := []float32{1, -2, 0.5, 4}
	layout := []tensor.Info{{Name: "w", Offset: 0, Rows: 2, Cols: 2}}
	deltas := []Delta{
		{Meta: DeltaMeta{Tokens: 100}, G: []float64{0.1, -0.2, 0.3, 0.4}},
		{Meta: DeltaMeta{Tokens: 300}, G: []float64{0.5, 0.2, -0.1, 0}},
	}
	mean := []float64{0.4, 0.1, 0, 0.1} // (100·g0 + 300·g1) / 400
	buf := OuterState{Buf: []float32{0.2, 0.2, -0.2, 1}}
	for _, tc := range []struct {
		final string
		round int
		avg   bool
	}{{"", 2, true}, {FinalAverage, 2, true}, {FinalAverage, 1, false}, {FinalAverage, 0, false}, {FinalOuter, 2, false}} {
		spec, err := Spec{Config: tiny(), Workers: 2, InnerSteps: 5, Rounds: 3, Compression: "fp32", FinalStep: tc.final}.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		o, err := OuterStep(spec, "r", tc.round, "b", layout, global, buf, deltas)
		if err != nil {
			t.Fatal(err)
		}
		for i := range global {
			lr, mu := 0.7, 0.9
			if tc.avg {
				lr, mu = 1, 0
			}
			b := mu*float64(buf.Buf[i]) + mean[i]
			want := float32(float64(global[i]) - lr*(mean[i]+mu*b))
			if math.Abs(float64(o.Global[i]-want)) > 1e-6 {
				t.Fatalf("final %q round %d: parameter %d = %v, want %v", tc.final, tc.round, i, o.Global[i], want)
			}
		}
	}
}

func TestDeltaChecks(t *testing.T) {
	c := corpus(t)
	spec, _ := Spec{Config: tiny(), Workers: 2, InnerSteps: 3, Rounds: 2, Compression: "int8"}.Normalize()
	st, _ := ml.NewState(spec.Config, c.VocabSize(), 1, 0)
	layout := Layout(spec.Config, c.VocabSize())
	inner := NewInner(len(st.Params), 1, 0, true)
	w, err := TrainInner(spec, "r", 0, 0, "base", layout, c.VocabSize(), st.Params, inner, c.Train, GoTrainer(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeDelta(w.Delta, "r", 0, "base", st.Params); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][3]any{"run": {"x", 0, "base"}, "round": {"r", 1, "base"}, "base": {"r", 0, "other"}} {
		if _, err := DecodeDelta(w.Delta, args[0].(string), args[1].(int), args[2].(string), st.Params); err == nil {
			t.Errorf("wrong %s accepted", name)
		}
	}
	if _, err := DecodeDelta(w.Delta, "r", 0, "base", st.Params[:10]); err == nil {
		t.Error("wrong shape accepted")
	}
	d, _ := DecodeDelta(w.Delta, "r", 0, "base", st.Params)
	if b := NormBound([]float64{d.Norm, d.Norm}, st.Params); d.Norm > b || 11*d.Norm < b {
		t.Errorf("norm bound %v for norm %v", b, d.Norm)
	}
}

func FuzzDecodeDelta(f *testing.F) {
	global := []float32{0.5, -1, 2, 0.25}
	layout := []tensor.Info{{Name: "w", Offset: 0, Rows: 2, Cols: 2}}
	for _, c := range tensor.Codecs {
		name := "delta"
		if c == tensor.FP32 {
			name = "final"
		}
		b, _ := tensor.EncodeCompact("delta", layout, DeltaMeta{Run: "r", Round: 1, Base: "b", Tokens: 10, Steps: 1},
			tensor.Vec{Name: name, Codec: c, Block: 16, Data: []float32{0.1, 0.2, -0.3, 0}})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDelta(b, "r", 1, "b", global)
		if err != nil {
			return
		}
		if len(d.G) != len(global) || math.IsNaN(d.Norm) || math.IsInf(d.Norm, 0) || d.Meta.Tokens <= 0 {
			t.Fatalf("accepted %+v", d)
		}
		_, _ = ApplyUpdate(b, "r", 1, "b", global)
		_, _ = DecodeInner(b)
		_, _ = DecodeOuter(b)
	})
}
