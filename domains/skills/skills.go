// Package skills is the "skills" research domain: small parsers compiled to
// WebAssembly ("skills"), scored by the fraction of a public conformance
// suite's cases they pass (test_pass_rate, higher is better).
//
// # Suites
//
//   - csv: csv-spectrum (skills/csv-spectrum under the data directory), 11
//     cases. location_coordinates is left out: its expected JSON disagrees
//     with its CSV upstream. The data dir's *_crlf files have LF line ends
//     (the npm package ships them with CRLF, the shared copy and `hyperspace
//     data fetch` with LF); the loader restores CRLF line endings in them.
//   - json: JSONTestSuite (skills/json-test-suite/parsing.json), 318
//     cases: 95 y_ (must accept), 188 n_ (must reject), 35 i_ (either, but
//     cleanly). Invalid UTF-8 in the original files arrives as U+FFFD.
//
// # ABI
//
// A skill is a WASI preview 1 command module: a Go main package built with
// GOOS=wasip1 GOARCH=wasm (the sandbox itself accepts any module that
// imports nothing but wasi_snapshot_preview1). For
// each case it is instantiated afresh and its _start run with:
//   - stdin: the case's input bytes, then EOF;
//   - args: ["skill"]; no environment variables; no preopened directories
//     (so no files at all), no sockets; fake, deterministic clocks and
//     random source;
//   - limits: 64 MiB of linear memory, 2 s of wall time, 1 MiB of stdout
//     and 64 KiB of stderr (DefaultLimits).
//
// What it must do:
//   - csv: exit 0 and write to stdout a JSON array of arrays of strings:
//     every record of the input in order, the header record first (e.g.
//     [["a","b"],["1","2"]]). The harness keys each later record by the
//     header and compares with the suite's expected objects; a record with
//     a different field count than the header fails the case. Whitespace
//     around the JSON is ignored. Any non-zero exit fails the case.
//   - json: exit 0 to accept the input as one JSON text (RFC 8259), exit 1
//     to reject it; stdout is ignored. y_ cases pass on exit 0, n_ on exit
//     1, i_ on exit 0 or 1. Any other exit code (a Go panic exits 2), a
//     trap, a timeout or an output overflow fails the case whatever its
//     prefix.
//
// # Candidates
//
// A config picks a suite and the options of that suite's parser template
// (see Space and Describe); GenerateSource renders it as Go source, which
// is built with the local go toolchain (`go build`, GOOS=wasip1
// GOARCH=wasm) and cached by source hash under
// os.UserCacheDir()/hyperspace/skills. EvaluateSource scores arbitrary Go
// source (for LLM-written skills) the same way.
//
// # Splits
//
// Each case belongs to validation or test by FNV-1a 64 of
// "skills-split-v2:"+name mod 10 (< 7 is validation): csv 8 validation /
// 3 test, json 225 / 93. Metric is the validation pass rate of the chosen
// suite, TestMetric the test pass rate.
//
// # Determinism
//
// The sandbox exposes no clock, randomness or environment that varies, so
// the same module gives the same outputs; the seed is ignored. The only
// source of variation is the per-case wall-clock limit, which a correct
// skill never approaches (cases take milliseconds).
package skills

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Domain implements domains.Domain for WebAssembly parser skills.
type Domain struct{}

// New returns the skills domain.
func New() *Domain { return &Domain{} }

var _ domains.Domain = (*Domain)(nil)

// Name implements domains.Domain.
func (*Domain) Name() string { return "skills" }

// Metric implements domains.Domain.
func (*Domain) Metric() domains.Metric {
	return domains.Metric{Name: "test_pass_rate", Direction: domains.Maximize, Unit: "fraction of cases"}
}

var space = domains.Space{
	{Name: "suite", Kind: domains.Choice, Choices: []string{SuiteCSV, SuiteJSON}, Help: "which conformance suite the parser is written for and scored on (csv: csv-spectrum, json: JSONTestSuite); fixed per campaign: pass rates of different suites are not comparable", Fixed: true},
	// CSV parser options.
	{Name: "delimiter", Kind: domains.Choice, Choices: []string{"comma", "semicolon", "tab"}, Help: "csv: field separator"},
	{Name: "quoteHandling", Kind: domains.Choice, Choices: []string{"none", "rfc4180"}, Help: "csv: none = quotes are ordinary characters; rfc4180 = a field starting with \" is quoted (may hold separators)"},
	{Name: "allowEscapedQuotes", Kind: domains.Bool, Help: "csv (rfc4180): \"\" inside a quoted field is a literal quote; otherwise the first quote closes the field"},
	{Name: "allowEmbeddedNewlines", Kind: domains.Bool, Help: "csv (rfc4180): line breaks inside quoted fields are data; otherwise they end the record"},
	{Name: "lazyQuotes", Kind: domains.Bool, Help: "csv: tolerate bare quotes in unquoted fields, text after a closing quote and unterminated quotes instead of failing"},
	{Name: "trimSpace", Kind: domains.Bool, Help: "csv: trim leading/trailing white space of unquoted fields"},
	{Name: "crlf", Kind: domains.Choice, Choices: []string{"keep", "strip", "any"}, Help: "csv: record terminators outside quotes: keep = only \\n (a preceding \\r stays in the field); strip = \\n or \\r\\n; any = \\n, \\r\\n or a lone \\r"},
	{Name: "skipEmptyLines", Kind: domains.Bool, Help: "csv: drop empty lines instead of emitting a record with one empty field"},
	// JSON parser options.
	{Name: "strictNumbers", Kind: domains.Bool, Help: "json: RFC 8259 number grammar; false also accepts a leading +, .5 and 1."},
	{Name: "allowLeadingZeros", Kind: domains.Bool, Help: "json: accept 007"},
	{Name: "allowNonFinite", Kind: domains.Bool, Help: "json: accept NaN, Infinity, -Infinity"},
	{Name: "allowTrailingCommas", Kind: domains.Bool, Help: "json: accept [1,] and {\"a\":1,}"},
	{Name: "allowComments", Kind: domains.Bool, Help: "json: accept // and /* */ comments where white space may appear"},
	{Name: "allowSingleQuotes", Kind: domains.Bool, Help: "json: accept 'single-quoted' strings and keys"},
	{Name: "rejectControlChars", Kind: domains.Bool, Help: "json: reject unescaped control characters (U+0000..U+001F) inside strings"},
	{Name: "utf8Validation", Kind: domains.Bool, Help: "json: reject input that is not valid UTF-8"},
	{Name: "allowBOM", Kind: domains.Bool, Help: "json: skip a leading UTF-8 byte order mark"},
	{Name: "extendedWhitespace", Kind: domains.Bool, Help: "json: also treat form feed and vertical tab as white space"},
	{Name: "allowTrailingGarbage", Kind: domains.Bool, Help: "json: accept anything after the first complete value"},
	{Name: "topLevel", Kind: domains.Choice, Choices: []string{"any", "container"}, Help: "json: any = any value at the top level (RFC 8259); container = only an object or array (RFC 4627)"},
	{Name: "duplicateKeys", Kind: domains.Choice, Choices: []string{"allow", "reject"}, Help: "json: whether an object may repeat a key"},
	{Name: "maxDepth", Kind: domains.Int, Min: 1, Max: 100000, Log: true, Help: "json: maximum nesting of arrays/objects; deeper input is rejected (the recursive parser may run out of its 64 MiB near 100000)"},
}

// Space implements domains.Domain.
func (*Domain) Space() domains.Space { return slices.Clone(space) }

// Baseline implements domains.Domain: the JSON suite with a lenient,
// "liberal in what you accept" hand-written parser (trailing commas,
// comments, leading zeros, loose numbers and raw control characters all
// accepted; maxDepth 512), the kind of parser written without reading the
// RFC. The JSON suite is the baseline because its 318 cases give a
// graded signal, where csv-spectrum's 11 are saturated by any RFC 4180
// parser. The CSV options hold a correct RFC 4180 parser.
//
// The baseline scores validation 0.929 (209/225) and test 0.925 (86/93);
// the strict RFC 8259 variant (strictNumbers, no leading zeros, trailing
// commas or comments, rejectControlChars) scores 1.0 on both.
func (*Domain) Baseline() domains.Config {
	return domains.Config{
		"suite":                 SuiteJSON,
		"delimiter":             "comma",
		"quoteHandling":         "rfc4180",
		"allowEscapedQuotes":    true,
		"allowEmbeddedNewlines": true,
		"lazyQuotes":            false,
		"trimSpace":             false,
		"crlf":                  "strip",
		"skipEmptyLines":        true,
		"strictNumbers":         false,
		"allowLeadingZeros":     true,
		"allowNonFinite":        false,
		"allowTrailingCommas":   true,
		"allowComments":         true,
		"allowSingleQuotes":     false,
		"rejectControlChars":    false,
		"utf8Validation":        true,
		"allowBOM":              false,
		"extendedWhitespace":    false,
		"allowTrailingGarbage":  false,
		"topLevel":              "any",
		"duplicateKeys":         "allow",
		"maxDepth":              512.0,
	}
}

// Validate implements domains.Domain: types and ranges only; options of
// the suite not chosen are accepted and ignored.
func (d *Domain) Validate(cfg domains.Config) (domains.Config, error) {
	return d.Space().Normalize(cfg, d.Baseline())
}

// Evaluate implements domains.Domain: render the config's parser, build it
// (cached), run every case of its suite in the sandbox and report the
// validation and test pass rates. The seed and opts.BudgetSeconds are
// ignored. A skill that fails to build is the candidate's fault: it is
// reported as a *CompileError.
func (d *Domain) Evaluate(ctx context.Context, cfg domains.Config, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	c, err := d.Validate(cfg)
	if err != nil {
		return domains.Result{}, err
	}
	return EvaluateSource(ctx, c.String("suite"), render(c), opts)
}

// EvaluateSource scores arbitrary Go source of a skill (a single-file main
// package using only the standard library, following the package ABI) on
// suite ("csv" or "json"), exactly as Evaluate scores a template variant.
var _ domains.CodeDomain = (*Domain)(nil)

// CodeSpec implements domains.CodeDomain: what an LLM-written skill must do.
func (d *Domain) CodeSpec(cfg domains.Config) string {
	suite := cfg.String("suite")
	what := "exit 0 if stdin holds exactly one valid JSON text (RFC 8259), exit 1 otherwise; stdout is ignored"
	if suite == SuiteCSV {
		what = "parse stdin as CSV (RFC 4180: quoted fields, doubled quotes, embedded newlines, CRLF) and print every record, header first, as a JSON array of arrays of strings, then exit 0"
	}
	return fmt.Sprintf("Write one complete Go file, package main, standard library only, compiled with GOOS=wasip1 GOARCH=wasm. "+
		"It reads all of stdin and must %s. No files, no network, no environment; 64 MiB of memory and 2 s per input. "+
		"Suite: %s. Put the whole file in the \"code\" field.", what, suite)
}

// EvaluateCode implements domains.CodeDomain: it compiles and scores code
// on the suite cfg names.
func (d *Domain) EvaluateCode(ctx context.Context, cfg domains.Config, code []byte, _ int64, opts domains.EvalOptions) (domains.Result, error) {
	c, err := d.Validate(cfg)
	if err != nil {
		return domains.Result{}, err
	}
	return EvaluateSource(ctx, c.String("suite"), code, opts)
}

func EvaluateSource(ctx context.Context, suite string, src []byte, opts domains.EvalOptions) (domains.Result, error) {
	return evaluate(ctx, suite, src, opts, DefaultLimits)
}

func evaluate(ctx context.Context, suite string, src []byte, opts domains.EvalOptions, limits Limits) (domains.Result, error) {
	t0 := time.Now()
	if suite != SuiteCSV && suite != SuiteJSON {
		return domains.Result{}, &domains.FieldError{Field: "suite", Message: fmt.Sprintf("must be %s or %s, got %q", SuiteCSV, SuiteJSON, suite)}
	}
	dir, err := dataDir(opts)
	if err != nil {
		return domains.Result{}, err
	}
	cases, err := LoadSuite(dir, suite)
	if err != nil {
		return domains.Result{}, err
	}
	report := func(p domains.Progress) {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	report(domains.Progress{Message: "building skill"})
	tBuild := time.Now()
	wasm, cached, err := compile(ctx, src)
	if err != nil {
		return domains.Result{}, err
	}
	compileSec := time.Since(tBuild).Seconds()
	sb, err := newSandbox(ctx, wasm, limits)
	if err != nil {
		return domains.Result{}, err
	}
	defer sb.Close(context.Background())
	tRun := time.Now()
	step := max(len(cases)/20, 1)
	results, err := runCases(ctx, sb, cases, func(done int) {
		if done%step == 0 || done == len(cases) {
			report(domains.Progress{Fraction: float64(done) / float64(len(cases)), Step: done, Message: fmt.Sprintf("%d/%d cases", done, len(cases))})
		}
	})
	if err != nil {
		return domains.Result{}, err
	}
	runSec := time.Since(tRun).Seconds()
	res := summarise(results)
	res.Values["compileSeconds"] = compileSec
	res.Values["cachedBuild"] = b2f(cached)
	res.Values["wasmBytes"] = float64(len(wasm))
	if runSec > 0 {
		res.Values["casesPerSec"] = float64(len(cases)) / runSec
	}
	res.Values["durationSec"] = time.Since(t0).Seconds()
	failures := []caseResult{}
	for _, r := range results {
		if !r.Passed {
			failures = append(failures, r)
		}
	}
	fj, err := json.MarshalIndent(failures, "", "  ")
	if err != nil {
		return domains.Result{}, fmt.Errorf("skills: %w", err)
	}
	res.Artifacts = map[string][]byte{"skill.go": src, "failures.json": fj}
	report(domains.Progress{Fraction: 1, Step: len(cases), Metric: res.Metric, Message: "done"})
	return res, nil
}

// summarise counts passes per split. An empty split scores 0.
func summarise(results []caseResult) domains.Result {
	var vp, vt, tp, tt int
	for _, r := range results {
		if r.Split == domains.Validation {
			vt++
			if r.Passed {
				vp++
			}
		} else {
			tt++
			if r.Passed {
				tp++
			}
		}
	}
	var ids []string
	var scores []float64
	for _, r := range results {
		if r.Split == domains.Validation {
			ids = append(ids, r.Name)
			scores = append(scores, b2f(r.Passed))
		}
	}
	var items *domains.Items
	if len(ids) > 0 {
		items = &domains.Items{Agg: domains.ItemsMean, Key: domains.ItemsKey("skills/pass/validation", ids...), Values: scores}
	}
	return domains.Result{
		Items:      items,
		Metric:     rate(vp, vt),
		TestMetric: rate(tp, tt),
		Values: map[string]float64{
			"valPassed": float64(vp), "valTotal": float64(vt),
			"testPassed": float64(tp), "testTotal": float64(tt),
		},
	}
}

func rate(p, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(p) / float64(n)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// IsCompileError reports whether err is a skill's build failure.
func IsCompileError(err error) bool {
	var ce *CompileError
	return errors.As(err, &ce)
}

// Describe implements domains.Domain.
func (d *Domain) Describe() string {
	var b strings.Builder
	b.WriteString(describeHead)
	for _, p := range space {
		switch p.Kind {
		case domains.Choice:
			fmt.Fprintf(&b, "  %s (choice: %v) - %s\n", p.Name, p.Choices, p.Help)
		case domains.Bool:
			fmt.Fprintf(&b, "  %s (bool) - %s\n", p.Name, p.Help)
		default:
			fmt.Fprintf(&b, "  %s (%s, %g..%g) - %s\n", p.Name, p.Kind, p.Min, p.Max, p.Help)
		}
	}
	b.WriteString("\nBaseline:")
	base := d.Baseline()
	for _, p := range space {
		fmt.Fprintf(&b, " %s=%v", p.Name, base[p.Name])
	}
	b.WriteString("\n")
	return b.String()
}

const describeHead = `Domain "skills": parsers compiled to WebAssembly, scored by test pass rate.

Metric: test_pass_rate, the fraction of the chosen suite's validation cases
the parser passes (higher is better). TestMetric is the same on the
held-out test cases. Also reported: valPassed, valTotal, testPassed,
testTotal, compileSeconds, cachedBuild, wasmBytes, casesPerSec, durationSec.

Suites (fixed split by a hash of the case name, about 70% validation):
  csv: csv-spectrum, 11 cases (quoted commas, "" escapes, embedded
    newlines, CRLF files, UTF-8, empty fields). The skill prints every
    record as a JSON array of arrays of strings, header first.
  json: JSONTestSuite parsing cases, 318: y_ must be accepted (exit 0),
    n_ rejected (exit 1), i_ either; crashes and timeouts always fail.

A config chooses the suite and the options of that suite's parser
template; options of the other suite are ignored. Each variant is built
once with go build (GOOS=wasip1 GOARCH=wasm, a few seconds, then cached)
and run per case in a wazero sandbox (no files, no network, 64 MiB, 2 s).
The seed is ignored; the result is deterministic.

Reference points: the baseline (lenient JSON parser) scores validation
0.929 (209/225), test 0.925 (86/93); a strict RFC 8259 variant
(strictNumbers=true, allowLeadingZeros=false, allowTrailingCommas=false,
allowComments=false, rejectControlChars=true) scores 1.0 and 1.0. On csv,
the baseline's CSV options (RFC 4180) pass 8/8 and 3/3; quoteHandling=none
passes 2/8 and 1/3; crlf=keep 7/8 and 1/3.

Parameters (name, type, range, meaning):
`
