package ml

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// tinyConfig trains in well under a second.
func tinyConfig() domains.Config {
	return domains.Config{
		"nLayers": 1.0, "dModel": 32.0, "nHeads": 2.0, "contextLength": 32.0, "dFFMult": 2.0,
		"batchSize": 8.0, "tokenBudget": 8192.0, "warmupSteps": 4.0, "learningRate": 1e-2,
	}
}

func TestValidate(t *testing.T) {
	d := New()
	base, err := d.Validate(d.Baseline())
	if err != nil {
		t.Fatalf("baseline invalid: %v", err)
	}
	if len(base) != len(d.Space()) {
		t.Fatalf("normalised baseline has %d keys, space %d", len(base), len(d.Space()))
	}
	cases := []struct {
		cfg   domains.Config
		field string
	}{
		{domains.Config{"bogus": 1.0}, "bogus"},
		{domains.Config{"nLayers": 9.0}, "nLayers"},
		{domains.Config{"dModel": 8.0}, "dModel"},
		{domains.Config{"learningRate": 0.5}, "learningRate"},
		{domains.Config{"nLayers": "two"}, "nLayers"},
		{domains.Config{"nLayers": 2.5}, "nLayers"},
		{domains.Config{"activation": "tanh"}, "activation"},
		{domains.Config{"activation": 1.0}, "activation"},
		{domains.Config{"dModel": 100.0, "nHeads": 8.0}, "dModel"},
		{domains.Config{"dModel": 96.0, "nHeads": 32.0}, "nHeads"},
		{domains.Config{"batchSize": 128.0, "contextLength": 256.0, "nLayers": 8.0, "dModel": 256.0}, "batchSize"},
	}
	for _, c := range cases {
		_, err := d.Validate(c.cfg)
		var fe *domains.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%v: want FieldError, got %v", c.cfg, err)
			continue
		}
		if fe.Field != c.field {
			t.Errorf("%v: error names %q, want %q (%v)", c.cfg, fe.Field, c.field, err)
		}
	}
	// Partial configs are filled from the baseline; ints accept int values.
	got, err := d.Validate(domains.Config{"nLayers": 3, "activation": "swiglu"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Int("nLayers") != 3 || got.String("activation") != "swiglu" || got.Int("dModel") != base.Int("dModel") {
		t.Fatalf("unexpected normalised config %v", got)
	}
	if !strings.Contains(d.Describe(), "val_loss") || !strings.Contains(d.Describe(), "tokenBudget") {
		t.Fatal("Describe lacks the metric or parameters")
	}
}

func TestCorpusSplits(t *testing.T) {
	dir := testDataDir(t)
	c, err := LoadCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := LoadCorpus(dir); c2 != c {
		t.Fatal("corpus not cached")
	}
	if len(c.Train) == 0 || len(c.Validation) == 0 || len(c.Test) == 0 {
		t.Fatal("empty split")
	}
	if c.TrainDocs+c.ValDocs+c.TestDocs != c.Docs || c.TrainDocs*10 < 8*c.Docs-10 || c.ValDocs == 0 || c.TestDocs == 0 {
		t.Fatalf("bad document split %d/%d/%d of %d", c.TrainDocs, c.ValDocs, c.TestDocs, c.Docs)
	}
	// The splits are fixed, disjoint, contiguous ranges of documents in
	// file order: re-derive them from the raw abstracts.
	raw, err := os.ReadFile(CorpusPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	docs := parseAbstracts(raw)
	if len(docs) != c.Docs {
		t.Fatalf("doc count %d vs %d", len(docs), c.Docs)
	}
	dec := func(ids []uint8) string {
		b := make([]byte, len(ids))
		for i, id := range ids {
			if id == 0 {
				t.Fatal("unknown id inside corpus")
			}
			b[i] = c.Vocab[id-1]
		}
		return string(b)
	}
	tr, va, te := dec(c.Train), dec(c.Validation), dec(c.Test)
	if tr != strings.Join(docs[:c.TrainDocs], "\n") ||
		va != strings.Join(docs[c.TrainDocs:c.TrainDocs+c.ValDocs], "\n") ||
		te != strings.Join(docs[c.TrainDocs+c.ValDocs:], "\n") {
		t.Fatal("splits are not the contiguous document ranges")
	}
	if strings.ToLower(tr) != tr || strings.Contains(tr, "  ") || strings.Contains(tr, "\t") {
		t.Fatal("text not lowercased / whitespace-normalised")
	}
	for i := 1; i < len(c.Vocab); i++ {
		if c.Vocab[i-1] >= c.Vocab[i] {
			t.Fatal("vocabulary not sorted/unique")
		}
	}
	t.Logf("docs %d (train %d, val %d, test %d), chars %d/%d/%d, vocab %d",
		c.Docs, c.TrainDocs, c.ValDocs, c.TestDocs, len(c.Train), len(c.Validation), len(c.Test), c.VocabSize())
}

func TestMissingData(t *testing.T) {
	_, err := New().Evaluate(context.Background(), tinyConfig(), 1, domains.EvalOptions{DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cran.all.1400") || !strings.Contains(err.Error(), "HYPERSPACE_DATA_DIR") {
		t.Fatalf("want a clear missing-data error, got %v", err)
	}
}

func TestDeterminism(t *testing.T) {
	opts := evalOpts(t)
	d := New()
	ctx := context.Background()
	r1, err := d.Evaluate(ctx, tinyConfig(), 42, opts)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := d.Evaluate(ctx, tinyConfig(), 42, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Metric != r2.Metric || r1.TestMetric != r2.TestMetric || !bytes.Equal(r1.Artifacts["checkpoint.bin"], r2.Artifacts["checkpoint.bin"]) {
		t.Fatalf("same seed, different results: %v vs %v", r1.Metric, r2.Metric)
	}
	old := runtime.GOMAXPROCS(1)
	r3, err := d.Evaluate(ctx, tinyConfig(), 42, opts)
	runtime.GOMAXPROCS(max(old, 3))
	r4, err4 := d.Evaluate(ctx, tinyConfig(), 42, opts)
	runtime.GOMAXPROCS(old)
	if err != nil || err4 != nil {
		t.Fatal(err, err4)
	}
	if r3.Metric != r1.Metric || r4.Metric != r1.Metric || r3.TestMetric != r1.TestMetric {
		t.Fatalf("GOMAXPROCS changed the result: %v %v %v", r1.Metric, r3.Metric, r4.Metric)
	}
	r5, err := d.Evaluate(ctx, tinyConfig(), 43, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r5.Metric == r1.Metric {
		t.Fatalf("different seeds gave identical val_loss %v", r1.Metric)
	}
	t.Logf("val_loss seed 42: %v, seed 43: %v", r1.Metric, r5.Metric)
}

func TestEvaluateResult(t *testing.T) {
	opts := evalOpts(t)
	var calls int
	opts.Progress = func(p domains.Progress) { calls++ }
	cfg := tinyConfig()
	cfg["normalization"] = "rmsnorm"
	cfg["activation"] = "swiglu"
	cfg["initType"] = "kaiming"
	r, err := New().Evaluate(context.Background(), cfg, 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"valLoss", "valBpb", "trainLoss", "testLoss", "tokensPerSec", "durationSec", "totalTokens", "steps", "params", "gflops", "truncated"} {
		v, ok := r.Values[k]
		if !ok || math.IsNaN(v) {
			t.Errorf("value %s missing or NaN", k)
		}
	}
	if r.Values["valLoss"] != r.Metric || r.Values["testLoss"] != r.TestMetric || r.Values["steps"] != 32 || r.Values["truncated"] != 0 {
		t.Errorf("inconsistent values %v", r.Values)
	}
	// Items: one mean loss per evaluation segment; equal segments, so
	// their mean is the validation loss.
	if r.Items == nil || r.Items.Agg != domains.ItemsMean || len(r.Items.Values) != evalSegments || r.Items.Key == "" {
		t.Fatalf("items %+v", r.Items)
	}
	var segMean float64
	for _, v := range r.Items.Values {
		segMean += v / evalSegments
	}
	if math.Abs(segMean-r.Metric) > 1e-9*math.Abs(r.Metric) {
		t.Errorf("mean of segment losses %v, valLoss %v", segMean, r.Metric)
	}
	if calls == 0 || len(r.Curve) == 0 || len(r.Curve) > 201 {
		t.Errorf("progress calls %d, curve points %d", calls, len(r.Curve))
	}
	ck := r.Artifacts["checkpoint.bin"]
	if len(ck) < 16 || string(ck[:8]) != "HSMLCKPT" {
		t.Fatal("bad checkpoint magic")
	}
	n := binary.LittleEndian.Uint32(ck[12:16])
	var hdr struct {
		Config    map[string]any `json:"config"`
		NumParams int            `json:"numParams"`
	}
	if err := json.Unmarshal(ck[16:16+n], &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.NumParams != int(r.Values["params"]) || len(ck) != 16+int(n)+8+4*hdr.NumParams || hdr.Config["activation"] != "swiglu" {
		t.Fatalf("checkpoint header/size mismatch: %+v, %d bytes", hdr, len(ck))
	}
	if !json.Valid(r.Artifacts["loss_curve.json"]) || len(r.Artifacts["log.txt"]) == 0 {
		t.Fatal("bad loss_curve.json or log.txt")
	}
}

func TestCancellationAndBudget(t *testing.T) {
	opts := evalOpts(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New().Evaluate(ctx, tinyConfig(), 1, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	cfg := tinyConfig()
	cfg["tokenBudget"] = 5e6
	opts.BudgetSeconds = 0.3
	start := time.Now()
	r, err := New().Evaluate(context.Background(), cfg, 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Values["truncated"] != 1 || time.Since(start) > 20*time.Second {
		t.Fatalf("budget not honoured: truncated=%v after %v", r.Values["truncated"], time.Since(start))
	}
}

func TestTrainingLearns(t *testing.T) {
	opts := evalOpts(t)
	cfg := domains.Config{
		"nLayers": 2.0, "dModel": 48.0, "nHeads": 2.0, "contextLength": 32.0, "dFFMult": 2.0,
		"batchSize": 16.0, "tokenBudget": 80_000.0, "warmupSteps": 10.0, "learningRate": 1e-2,
	}
	r, err := New().Evaluate(context.Background(), cfg, 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := LoadCorpus(opts.DataDir)
	chance := math.Log(float64(c.VocabSize()))
	t.Logf("val_loss %.4f (chance %.4f), train %.4f, test %.4f, %.1fs, %.0f tok/s, %.2f GFLOP/s",
		r.Metric, chance, r.Values["trainLoss"], r.TestMetric, r.Values["durationSec"], r.Values["tokensPerSec"], r.Values["gflops"])
	if !(r.Metric < chance-1) {
		t.Fatalf("val_loss %.4f not well below chance %.4f", r.Metric, chance)
	}
}

// TestOddShapes trains tiny models with awkward sizes (odd widths and head
// sizes, batch 1, a context that is not a multiple of the kernel tiles) to
// exercise every edge path; the losses must stay finite.
func TestOddShapes(t *testing.T) {
	opts := evalOpts(t)
	cfgs := []domains.Config{
		{"nLayers": 1.0, "dModel": 18.0, "nHeads": 3.0, "contextLength": 17.0, "dFFMult": 1.0, "batchSize": 1.0, "tokenBudget": 1000.0, "activation": "swiglu"},
		{"nLayers": 2.0, "dModel": 17.0, "nHeads": 1.0, "contextLength": 33.0, "dFFMult": 3.0, "batchSize": 3.0, "tokenBudget": 2000.0, "activation": "relu", "normalization": "rmsnorm", "gradientClipNorm": 0.0},
		{"nLayers": 1.0, "dModel": 16.0, "nHeads": 8.0, "contextLength": 16.0, "dFFMult": 2.0, "batchSize": 2.0, "tokenBudget": 1000.0, "warmupSteps": 2000.0, "initType": "xavier"},
	}
	for _, cfg := range cfgs {
		r, err := New().Evaluate(context.Background(), cfg, 3, opts)
		if err != nil {
			t.Fatalf("%v: %v", cfg, err)
		}
		if math.IsNaN(r.Metric) || math.IsInf(r.Metric, 0) || math.IsNaN(r.TestMetric) || r.Metric > 10 {
			t.Fatalf("%v: bad losses %v %v", cfg, r.Metric, r.TestMetric)
		}
	}
}

// Documents 576 and 578 of cran.all.1400 have two ".W" sections; the corpus
// keeps the text of both (the search domain's parser once kept only the last).
func TestRepeatedAbstractSections(t *testing.T) {
	docs := parseAbstracts([]byte(".I 1\r\n.T\r\nt .\r\n.W\r\nFirst part .\r\n.W\r\nsecond part .\r\n.I 2\r\n.W\r\nonly .\r\n"))
	if len(docs) != 2 || docs[0] != "first part . second part ." || docs[1] != "only ." {
		t.Fatalf("abstracts %q", docs)
	}
	raw, err := os.ReadFile(CorpusPath(testDataDir(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, parts := range [][2]string{
		{"viscous and inviscid stagnation flow in a dissociated hypervelocity free stream", "limit characteristics . the analysis indicated that all these problems"},
		{"dissociation scaling for nonequilibrium blunt nose flows . stage-stacking study", "compressor operation with one or more blade rows stalled"},
	} {
		found := false
		for _, d := range parseAbstracts(raw) {
			if strings.HasPrefix(d, parts[0]) {
				found = true
				if !strings.Contains(d, parts[1]) {
					t.Errorf("abstract %q... lacks its second section %q", parts[0], parts[1])
				}
			}
		}
		if !found {
			t.Errorf("no abstract starts with %q", parts[0])
		}
	}
}
