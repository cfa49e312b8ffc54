package causes

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// tinyTrain mimics autoresearch's train.py: top-level constants, a fixed
// seed call, a summary after "---". It computes a fake val_bpb from the
// constants and the seed in well under a second.
const tinyTrain = `import math, random, time
from prepare import TIME_BUDGET

ASPECT_RATIO = 64       # model_dim = depth * ASPECT_RATIO
WINDOW_PATTERN = "SSSL" # sliding window pattern
TOTAL_BATCH_SIZE = 2**19 # tokens per optimizer step
EMBEDDING_LR = 0.6
UNEMBEDDING_LR = 0.004
MATRIX_LR = 0.04
SCALAR_LR = 0.5
WEIGHT_DECAY = 0.2
WARMUP_RATIO = 0.0
WARMDOWN_RATIO = 0.5
DEPTH = 8
DEVICE_BATCH_SIZE = 128

if __name__ == "__main__":
    random.seed(42)
    assert TOTAL_BATCH_SIZE % (DEVICE_BATCH_SIZE * 2048) == 0
    print("Time budget: %ds" % TIME_BUDGET)
    for step in range(3):
        print("\rstep %05d | loss: %.4f" % (step, 3.0 - step), end="", flush=True)
    print()
    bpb = (1.0 + 0.1 * (math.log10(MATRIX_LR) + 1.4) ** 2 + 0.05 * abs(DEPTH - 10)
           + 0.01 * len(WINDOW_PATTERN) + 0.001 * random.random())
    print("---")
    print(f"val_bpb:          {bpb:.6f}")
    print(f"training_seconds: {0.1:.1f}")
    print(f"num_params_M:     {DEPTH * ASPECT_RATIO / 100:.1f}")
    print(f"depth:            {DEPTH}")
`

func tinyAutoresearch(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found in PATH: skipping the autoresearch adapter test")
	}
	dir := t.TempDir()
	for name, src := range map[string]string{"train.py": tinyTrain, "prepare.py": "TIME_BUDGET = 300\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var valBpbRE = regexp.MustCompile(`(?m)^val_bpb:\s+(\S+)$`)

func printedBpb(t *testing.T, stdout []byte) float64 {
	t.Helper()
	m := valBpbRE.FindSubmatch(stdout)
	if m == nil {
		t.Fatalf("no val_bpb line in:\n%s", stdout)
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAutoresearch(t *testing.T) {
	dir := tinyAutoresearch(t)
	c, err := AutoresearchCause(dir, WithTimeout(60))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "autoresearch" || c.Metric().Name != "val_bpb" || c.Metric().Direction != domains.Minimize {
		t.Fatalf("bad cause %q %+v", c.Name(), c.Metric())
	}
	ctx := context.Background()
	base, err := c.Evaluate(ctx, nil, 1, domains.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := printedBpb(t, base.Artifacts["stdout.txt"]); base.Metric != want || base.TestMetric != want {
		t.Fatalf("metric %v test %v, printed %v", base.Metric, base.TestMetric, want)
	}
	if base.Values["depth"] != 8 || base.Values["num_params_M"] != 5.1 {
		t.Fatalf("values %v", base.Values)
	}
	if _, ok := base.Artifacts["stdout.test.txt"]; ok {
		t.Fatal("ran a second (test) training")
	}

	cfg := domains.Config{"depth": 12.0, "matrixLr": 0.1, "windowPattern": "L", "totalBatchSize": "1048576"}
	r1, err := c.Evaluate(ctx, cfg, 5, domains.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Values["depth"] != 12 || r1.Metric == base.Metric || r1.Metric != printedBpb(t, r1.Artifacts["stdout.txt"]) {
		t.Fatalf("config not applied: %v %v", r1.Metric, r1.Values)
	}
	r2, err := c.Evaluate(ctx, cfg, 5, domains.EvalOptions{})
	if err != nil || r2.Metric != r1.Metric {
		t.Fatalf("not deterministic: %v vs %v (%v)", r2.Metric, r1.Metric, err)
	}
	r3, err := c.Evaluate(ctx, cfg, 6, domains.EvalOptions{})
	if err != nil || r3.Metric == r1.Metric {
		t.Fatalf("seed not applied: %v (%v)", r3.Metric, err)
	}
	// The template directory itself is left untouched.
	if src, _ := os.ReadFile(filepath.Join(dir, "train.py")); string(src) != tinyTrain {
		t.Fatal("train.py in the template directory was modified")
	}
}

func TestAutoresearchErrors(t *testing.T) {
	if _, err := AutoresearchCause(t.TempDir()); err == nil || !strings.Contains(err.Error(), "train.py") {
		t.Fatalf("missing train.py: %v", err)
	}
	dir := tinyAutoresearch(t)
	// A parameter with no constant in train.py.
	src := strings.Replace(tinyTrain, "WEIGHT_DECAY = 0.2\n", "", 1)
	if err := os.WriteFile(filepath.Join(dir, "train.py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := AutoresearchCause(dir, WithName("ar-fork"), WithPython("python3"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Evaluate(context.Background(), nil, 1, domains.EvalOptions{})
	if err == nil || !strings.Contains(err.Error(), "no top-level assignment WEIGHT_DECAY") {
		t.Fatalf("want a missing-constant error, got %v", err)
	}
	// A training failure.
	if err := os.WriteFile(filepath.Join(dir, "train.py"), []byte(tinyTrain+"    raise SystemExit('FAIL')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = c.Evaluate(context.Background(), nil, 1, domains.EvalOptions{})
	if err == nil || !strings.Contains(err.Error(), "train.py exited with status 1") {
		t.Fatalf("want a training failure, got %v", err)
	}
}

func TestAutoresearchTemplateParses(t *testing.T) {
	c, err := Parse(AutoresearchTemplate())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Space()) != 12 || c.Baseline().Int("depth") != 8 {
		t.Fatalf("template: %v", c.Baseline())
	}
}

// TestAutoresearchCodeEdit: an LLM's rewritten train.py replaces the
// template's for one evaluation (the hyperparameter rewrite still applies)
// and the template directory stays untouched.
func TestAutoresearchCodeEdit(t *testing.T) {
	dir := tinyAutoresearch(t)
	c, err := AutoresearchCause(dir, WithTimeout(60))
	if err != nil {
		t.Fatal(err)
	}
	cd, ok := c.Domain().(domains.CodeDomain)
	if !ok {
		t.Fatal("the autoresearch cause does not accept code")
	}
	if !strings.Contains(cd.CodeSpec(nil), "train.py") {
		t.Fatalf("code spec does not name train.py: %s", cd.CodeSpec(nil))
	}
	ctx := context.Background()
	base, err := c.Evaluate(ctx, nil, 1, domains.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The edit halves the reported val_bpb.
	edited := strings.Replace(tinyTrain, `    print("---")`, `    bpb = bpb / 2
    print("---")`, 1)
	if edited == tinyTrain {
		t.Skip("tiny train.py has no val_bpb print line to edit")
	}
	r, err := cd.EvaluateCode(ctx, nil, []byte(edited), 1, domains.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Metric-base.Metric/2) > 2e-6 || string(r.Artifacts["train.py"]) != edited {
		t.Fatalf("edited metric %v, base %v", r.Metric, base.Metric)
	}
	if src, _ := os.ReadFile(filepath.Join(dir, "train.py")); string(src) != tinyTrain {
		t.Fatal("train.py in the template directory was modified")
	}
	// A cause without codeFile is not a CodeDomain.
	plain, err := Parse([]byte(`{"name":"plain","description":"a plain cause","metric":{"name":"m","direction":"minimize"},"space":[{"name":"x","kind":"float","min":0,"max":1}],"baseline":{"x":0.5},"evaluator":{"command":["true"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := plain.Domain().(domains.CodeDomain); ok {
		t.Fatal("a cause without codeFile accepts code")
	}
}
