package causes

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// shellCause builds a cause whose evaluator is the shell script body
// (written as eval.sh). The space has one float x in [-5, 5].
func shellCause(t *testing.T, script string, mut ...func(*Definition)) *Cause {
	t.Helper()
	lo, hi := -5.0, 5.0
	def := Definition{
		Name:        "shell-test",
		Description: "test cause",
		Metric:      MetricDef{Name: "loss", Direction: "minimize"},
		Space:       []ParamDef{{Name: "x", Kind: "float", Min: &lo, Max: &hi}},
		Baseline:    map[string]any{"x": 1.0},
		Evaluator: EvaluatorDef{
			Command:        []string{"sh", "eval.sh"},
			Files:          map[string]string{"eval.sh": script},
			TimeoutSeconds: 20,
		},
	}
	for _, m := range mut {
		m(&def)
	}
	c, err := New(def)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// quadScript reads x from config.json and an offset from the workdir
// template, and prints (x-1)^2 + offset + seed/1000 (+0.5 on test).
const quadScript = `
x=$(sed -n 's/^ *"x": *\([-0-9.eE+]*\),*$/\1/p' "$HYPERSPACE_CONFIG")
off=$(cat offset.txt)
echo "evaluating x=$x seed=$HYPERSPACE_SEED split=$HYPERSPACE_SPLIT foo=$FOO" >&2
awk -v x="$x" -v o="$off" -v s="$HYPERSPACE_SEED" -v sp="$HYPERSPACE_SPLIT" 'BEGIN {
  m = (x-1)^2 + o + s/1000; if (sp == "test") m += 0.5
  printf "progress line\n{\"metric\": %.6f, \"values\": {\"x\": %s, \"label\": \"text\"}}\n", m, x }'
`

func TestEvaluateMetric(t *testing.T) {
	tmpl := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmpl, "offset.txt"), []byte("0.25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := shellCause(t, quadScript, func(d *Definition) {
		d.Evaluator.Workdir = tmpl
		d.Evaluator.Env = map[string]string{"FOO": "bar"}
	})
	var progress []domains.Progress
	opts := domains.EvalOptions{Progress: func(p domains.Progress) { progress = append(progress, p) }}
	res, err := c.Evaluate(context.Background(), domains.Config{"x": 3.0}, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Metric != 4.257 || res.TestMetric != 4.757 {
		t.Fatalf("metric %v test %v, want 4.257 and 4.757", res.Metric, res.TestMetric)
	}
	if res.Values["x"] != 3 || res.Values["test.x"] != 3 || res.Values["durationSec"] <= 0 {
		t.Fatalf("values %v", res.Values)
	}
	if _, ok := res.Values["label"]; ok {
		t.Fatal("non-numeric value kept")
	}
	if !bytes.Contains(res.Artifacts["stderr.txt"], []byte("x=3 seed=7 split=validation foo=bar")) ||
		!bytes.Contains(res.Artifacts["stderr.test.txt"], []byte("split=test")) ||
		!bytes.Contains(res.Artifacts["stdout.txt"], []byte("progress line")) {
		t.Fatalf("artifacts: %q", res.Artifacts)
	}
	if len(progress) < 2 || progress[0].Fraction != 0 || progress[len(progress)-1].Fraction != 1 || progress[len(progress)-1].Metric != 4.257 {
		t.Fatalf("progress %+v", progress)
	}

	again, err := c.Evaluate(context.Background(), domains.Config{"x": 3.0}, 7, domains.EvalOptions{})
	if err != nil || again.Metric != res.Metric || again.TestMetric != res.TestMetric {
		t.Fatalf("not deterministic: %v %v (%v)", again.Metric, again.TestMetric, err)
	}
	other, err := c.Evaluate(context.Background(), domains.Config{"x": 3.0}, 8, domains.EvalOptions{})
	if err != nil || other.Metric == res.Metric {
		t.Fatalf("seed ignored: %v (%v)", other.Metric, err)
	}
	if _, err := c.Evaluate(context.Background(), domains.Config{"x": 30.0}, 1, domains.EvalOptions{}); err == nil {
		t.Fatal("invalid config evaluated")
	}
}

func TestEvaluateTestMetricSingleRun(t *testing.T) {
	c := shellCause(t, `echo run >> "$HOME_MARK"; echo '{"metric": 1.5, "testMetric": 2.5}'`, func(d *Definition) {
		d.Evaluator.Env = map[string]string{"HOME_MARK": filepath.Join(t.TempDir(), "runs")}
	})
	res, err := c.Evaluate(context.Background(), nil, 1, domains.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Metric != 1.5 || res.TestMetric != 2.5 {
		t.Fatalf("got %v %v", res.Metric, res.TestMetric)
	}
	if _, ok := res.Artifacts["stdout.test.txt"]; ok {
		t.Fatal("ran the test split although testMetric was given")
	}
}

func TestEvaluateEnvLimited(t *testing.T) {
	t.Setenv("HYPERSPACE_LEAK_CHECK", "secret")
	t.Setenv("PASSED_THROUGH", "yes")
	c := shellCause(t, `env >&2; echo '{"metric": 0, "testMetric": 0}'`, func(d *Definition) {
		d.Evaluator.PassEnv = []string{"PASSED_THROUGH", "NOT_SET_ANYWHERE"}
	})
	res, err := c.Evaluate(context.Background(), nil, 42, domains.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env := string(res.Artifacts["stderr.txt"])
	for _, want := range []string{"HYPERSPACE_SEED=42", "HYPERSPACE_SPLIT=validation", "HYPERSPACE_CONFIG=/", "PATH=", "HOME=", "PASSED_THROUGH=yes"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	for _, bad := range []string{"HYPERSPACE_LEAK_CHECK", "NOT_SET_ANYWHERE"} {
		if strings.Contains(env, bad) {
			t.Errorf("env leaks %q", bad)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// readPids waits for n pids in file and returns them.
func readPids(t *testing.T, file string, n int) []int {
	t.Helper()
	var pids []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(file)
		pids = pids[:0]
		for _, f := range strings.Fields(string(data)) {
			p, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, p)
		}
		if len(pids) >= n {
			return pids
		}
	}
	t.Fatalf("only %d of %d pids written", len(pids), n)
	return nil
}

func assertDead(t *testing.T, pids []int) {
	t.Helper()
	for _, p := range pids {
		deadline := time.Now().Add(3 * time.Second)
		for alive(p) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(p) {
			syscall.Kill(p, syscall.SIGKILL)
			t.Errorf("process %d survived", p)
		}
	}
}

// spawnScript starts a two-level tree of sleeps, records their pids and
// waits.
const spawnScript = `
sleep 1000 &
echo $! >> "$PIDS"
sh -c 'sleep 1000 & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; wait' &
echo $! >> "$PIDS"
wait
`

func TestEvaluateTimeoutKillsTree(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	c := shellCause(t, spawnScript, func(d *Definition) {
		d.Evaluator.Env = map[string]string{"PIDS": pidFile}
	})
	t0 := time.Now()
	_, err := c.Evaluate(context.Background(), nil, 1, domains.EvalOptions{BudgetSeconds: 0.7})
	if err == nil || !strings.Contains(err.Error(), "timed out after 0.7s") {
		t.Fatalf("want a timeout error, got %v", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Fatalf("timeout took %v", el)
	}
	assertDead(t, readPids(t, pidFile, 4))
}

func TestEvaluateCancelKillsTree(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	c := shellCause(t, spawnScript, func(d *Definition) {
		d.Evaluator.Env = map[string]string{"PIDS": pidFile}
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		readPids(t, pidFile, 4)
		cancel()
	}()
	_, err := c.Evaluate(ctx, nil, 1, domains.EvalOptions{})
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("want a cancellation error, got %v", err)
	}
	assertDead(t, readPids(t, pidFile, 4))
}

func TestEvaluateStrayChildKilledAfterExit(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	c := shellCause(t, `sleep 1000 & echo $! >> "$PIDS"; echo '{"metric": 1, "testMetric": 1}'`, func(d *Definition) {
		d.Evaluator.Env = map[string]string{"PIDS": pidFile}
	})
	t0 := time.Now()
	if _, err := c.Evaluate(context.Background(), nil, 1, domains.EvalOptions{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > 3*time.Second {
		t.Fatalf("took %v: waited for the stray child", el)
	}
	assertDead(t, readPids(t, pidFile, 1))
}

func TestEvaluateErrors(t *testing.T) {
	cases := []struct {
		name, script string
		want         []string
	}{
		{"non-zero exit", `echo "loading"; echo "boom: out of memory" >&2; exit 3`, []string{"evaluator failed on the validation split", "exit status 3", "boom: out of memory"}},
		{"no JSON", `echo "hello"; echo "world"`, []string{"no JSON result", `"world"`}},
		{"empty output", `true`, []string{"no JSON result"}},
		{"bad JSON", `echo '{"metric": }'`, []string{"invalid JSON result line"}},
		{"missing metric", `echo '{"values": {"a": 1}}'`, []string{"result metric: missing"}},
		{"NaN", `echo '{"metric": NaN}'`, []string{"metric is NaN"}},
		{"string NaN", `echo '{"metric": "nan"}'`, []string{"metric is NaN"}},
		{"infinite test", `echo '{"metric": 1, "testMetric": -Infinity}'`, []string{"testMetric is -Inf"}},
		{"test split fails", `if [ "$HYPERSPACE_SPLIT" = test ]; then exit 4; fi; echo '{"metric": 1}'`, []string{"exit status 4", "test split run"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shellCause(t, tc.script).Evaluate(context.Background(), nil, 1, domains.EvalOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	c := shellCause(t, "", func(d *Definition) { d.Evaluator.Command = []string{"no-such-evaluator-binary"} })
	if _, err := c.Evaluate(context.Background(), nil, 1, domains.EvalOptions{}); err == nil || !strings.Contains(err.Error(), "start evaluator") {
		t.Fatalf("missing binary: %v", err)
	}
	c = shellCause(t, "", func(d *Definition) { d.Evaluator.Workdir = "/nonexistent/template" })
	if _, err := c.Evaluate(context.Background(), nil, 1, domains.EvalOptions{}); err == nil || !strings.Contains(err.Error(), "evaluator.workdir") {
		t.Fatalf("missing workdir: %v", err)
	}
}

func TestEvaluateOutputCaps(t *testing.T) {
	// ~3 MB on each stream, then the result line.
	script := `
i=0; line=$(printf '%0100d' 0)
while [ $i -lt 30000 ]; do echo "$line"; echo "$line" >&2; i=$((i+1)); done
echo '{"metric": 2, "testMetric": 3}'`
	res, err := shellCause(t, script).Evaluate(context.Background(), nil, 1, domains.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Metric != 2 {
		t.Fatalf("metric %v", res.Metric)
	}
	for _, name := range []string{"stdout.txt", "stderr.txt"} {
		a := res.Artifacts[name]
		if len(a) > MaxOutputBytes+200 || len(a) < MaxOutputBytes-200 || !bytes.Contains(a, []byte("bytes of output omitted")) {
			t.Errorf("%s: %d bytes, marker %v", name, len(a), bytes.Contains(a, []byte("omitted")))
		}
	}
}

func TestCapBuffer(t *testing.T) {
	b := newCapBuffer(10)
	var all []byte
	for i := range 100 {
		p := []byte(strconv.Itoa(i))
		all = append(all, p...)
		b.Write(p)
	}
	got := b.Bytes()
	if !bytes.HasPrefix(got, all[:5]) || !bytes.HasSuffix(got, all[len(all)-5:]) || !bytes.Contains(got, []byte("omitted")) {
		t.Fatalf("got %q", got)
	}
	small := newCapBuffer(100)
	small.Write([]byte("hello"))
	small.Write([]byte(" world"))
	if string(small.Bytes()) != "hello world" {
		t.Fatalf("got %q", small.Bytes())
	}
	big := newCapBuffer(10)
	big.Write(all)
	if got := big.Bytes(); !bytes.HasSuffix(got, all[len(all)-5:]) || !bytes.HasPrefix(got, all[:5]) {
		t.Fatalf("got %q", got)
	}
}

func TestParseResultLine(t *testing.T) {
	out, err := parseResultLine([]byte("log\n{\"metric\": 1, \"values\": {\"note\": \"NaN here\", \"v\": 2, \"n\": NaN}, \"curve\": [[0, 3], [1, 2]]}\r\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if out.metric != 1 || out.values["v"] != 2 || len(out.values) != 1 || len(out.curve) != 2 || out.testMetric != nil {
		t.Fatalf("%+v", out)
	}
	if _, err := parseResultLine([]byte(`{"metric": 1, "curve": 5}`)); err == nil {
		t.Fatal("bad curve accepted")
	}
}
