package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Paper is a write-up published on an agent branch as papers/<Slug>.md.
type Paper struct {
	ID       string
	Slug     string // a safe file name without ".md" (see ValidSlug)
	Markdown string // written as given
}

// AgentBranch is the content of one agent branch: one agent's runs in one
// domain, and its papers.
type AgentBranch struct {
	PeerID, Domain string
	Runs           []receipt.Signed
	Papers         []Paper
}

// Files of an agent branch.
const (
	BestFile    = "best.json"
	JournalFile = "JOURNAL.md"
	PapersDir   = "papers"
)

// RunFileBase returns "run-NNNN" for a run number: zero-padded to four
// digits, more when needed.
func RunFileBase(runNumber int) string { return fmt.Sprintf("run-%04d", runNumber) }

// ValidSlug reports whether slug is a safe paper file name: 1-100
// characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or
// digit, not ending with '.', without "..".
func ValidSlug(slug string) error {
	if slug == "" || len(slug) > 100 {
		return fmt.Errorf("archive: paper slug %q must be 1-100 characters", slug)
	}
	for i := 0; i < len(slug); i++ {
		c := slug[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || strings.IndexByte("._-", c) < 0) {
			return fmt.Errorf("archive: paper slug %q: character %q not allowed there", slug, c)
		}
	}
	if strings.Contains(slug, "..") || strings.HasSuffix(slug, ".") {
		return fmt.Errorf("archive: paper slug %q must not contain \"..\" or end with '.'", slug)
	}
	return nil
}

// MarshalRun renders a signed receipt as a run file: a JSON object with
// "id", the receipt's fields exactly as receipt.Receipt marshals them (the
// public run format's names), and "signature"; indented by two spaces,
// with a trailing newline.
func MarshalRun(s receipt.Signed) ([]byte, error) {
	body, err := json.Marshal(s.Receipt)
	if err != nil {
		return nil, fmt.Errorf("archive: marshalling receipt %s: %w", s.ID, err)
	}
	body = bytes.TrimSpace(body)
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, fmt.Errorf("archive: receipt %s did not marshal to an object", s.ID)
	}
	id, _ := json.Marshal(s.ID)
	sig, _ := json.Marshal(s.Signature)
	var flat bytes.Buffer
	flat.WriteString(`{"id":`)
	flat.Write(id)
	if inner := bytes.TrimSpace(body[1 : len(body)-1]); len(inner) > 0 {
		flat.WriteByte(',')
		flat.Write(inner)
	}
	flat.WriteString(`,"signature":`)
	flat.Write(sig)
	flat.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, flat.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("archive: indenting receipt %s: %w", s.ID, err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// runFile is the decoding shape of a run file.
type runFile struct {
	ID        *string `json:"id"`
	Signature *string `json:"signature"`
	receipt.Receipt
}

// ParseRun reads a run file (as written by MarshalRun) back into the
// signed envelope. Unknown fields are an error. It does not verify the
// receipt: call Verify on the result.
func ParseRun(b []byte) (receipt.Signed, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f runFile
	if err := dec.Decode(&f); err != nil {
		return receipt.Signed{}, fmt.Errorf("archive: parsing run: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return receipt.Signed{}, errors.New("archive: parsing run: trailing data after the object")
	}
	if f.ID == nil || *f.ID == "" || f.Signature == nil || *f.Signature == "" {
		return receipt.Signed{}, errors.New("archive: parsing run: missing id or signature")
	}
	return receipt.Signed{ID: *f.ID, Receipt: f.Receipt, Signature: *f.Signature}, nil
}

// maximizes reports whether runs rank by maximising: the direction most
// runs declare in Metric.Direction (minimise on a tie or when empty).
func maximizes(runs []receipt.Signed) bool {
	n := 0
	for _, s := range runs {
		if s.Receipt.Metric.Direction == "maximize" {
			n++
		}
	}
	return 2*n > len(runs)
}

// better reports whether a ranks before b: better metric value, then the
// earlier run, then the smaller id.
func better(a, b receipt.Signed, maximize bool) bool {
	av, bv := a.Receipt.Metric.Value, b.Receipt.Metric.Value
	if av != bv {
		if maximize {
			return av > bv
		}
		return av < bv
	}
	if a.Receipt.RunNumber != b.Receipt.RunNumber {
		return a.Receipt.RunNumber < b.Receipt.RunNumber
	}
	return a.ID < b.ID
}

// BestRun returns the best of runs, baseline runs included, under the
// direction the runs declare; false when runs is empty.
func BestRun(runs []receipt.Signed) (receipt.Signed, bool) {
	if len(runs) == 0 {
		return receipt.Signed{}, false
	}
	maxi := maximizes(runs)
	best := runs[0]
	for _, s := range runs[1:] {
		if better(s, best, maxi) {
			best = s
		}
	}
	return best, true
}

// sortedRuns checks b's runs and returns them by run number, duplicates
// (same id) dropped.
func sortedRuns(b AgentBranch) ([]receipt.Signed, error) {
	byNum := map[int]receipt.Signed{}
	for _, s := range b.Runs {
		rc := s.Receipt
		if rc.PeerID != b.PeerID || rc.Domain != b.Domain {
			return nil, fmt.Errorf("archive: run %s belongs to %s/%s, not %s/%s", s.ID, rc.PeerID, rc.Domain, b.PeerID, b.Domain)
		}
		if rc.RunNumber < 1 {
			return nil, fmt.Errorf("archive: run %s has runNumber %d; run numbers start at 1", s.ID, rc.RunNumber)
		}
		if prev, ok := byNum[rc.RunNumber]; ok {
			if prev.ID != s.ID {
				return nil, fmt.Errorf("archive: runs %s and %s both have runNumber %d", prev.ID, s.ID, rc.RunNumber)
			}
			continue
		}
		if err := s.Verify(); err != nil {
			return nil, fmt.Errorf("archive: run %d: %w", rc.RunNumber, err)
		}
		byNum[rc.RunNumber] = s
	}
	runs := make([]receipt.Signed, 0, len(byNum))
	for _, s := range byNum {
		runs = append(runs, s)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Receipt.RunNumber < runs[j].Receipt.RunNumber })
	return runs, nil
}

// AgentFiles renders an agent branch deterministically (input order does
// not matter): run-NNNN.json and run-NNNN.md per run, best.json (when
// there are runs), JOURNAL.md and papers/<slug>.md. Every run must verify
// and belong to b.PeerID and b.Domain; two runs with one run number but
// different ids, an invalid slug or a repeated slug are errors.
func AgentFiles(b AgentBranch) (map[string][]byte, error) {
	if _, err := BranchName(b.PeerID, b.Domain); err != nil {
		return nil, err
	}
	runs, err := sortedRuns(b)
	if err != nil {
		return nil, err
	}
	papers := append([]Paper(nil), b.Papers...)
	sort.Slice(papers, func(i, j int) bool { return papers[i].Slug < papers[j].Slug })
	files := map[string][]byte{}
	for i, p := range papers {
		if err := ValidSlug(p.Slug); err != nil {
			return nil, err
		}
		if i > 0 && papers[i-1].Slug == p.Slug {
			return nil, fmt.Errorf("archive: two papers have the slug %q", p.Slug)
		}
		files[PapersDir+"/"+p.Slug+".md"] = []byte(p.Markdown)
	}
	for _, s := range runs {
		base := RunFileBase(s.Receipt.RunNumber)
		js, err := MarshalRun(s)
		if err != nil {
			return nil, err
		}
		files[base+".json"] = js
		files[base+".md"] = runMarkdown(s)
	}
	best, ok := BestRun(runs)
	if ok {
		js, err := MarshalRun(best)
		if err != nil {
			return nil, err
		}
		files[BestFile] = js
	}
	files[JournalFile] = journal(b, runs, papers, best, ok)
	return files, nil
}

// WriteAgent renders b with AgentFiles and writes it to its branch with
// WriteBranch.
func (r *Repo) WriteAgent(ctx context.Context, b AgentBranch, when time.Time) (commit string, changed bool, err error) {
	branch, err := BranchName(b.PeerID, b.Domain)
	if err != nil {
		return "", false, err
	}
	files, err := AgentFiles(b)
	if err != nil {
		return "", false, err
	}
	msg := fmt.Sprintf("%s: %d runs, %d papers", branch, countRuns(files), len(b.Papers))
	return r.WriteBranch(ctx, branch, files, msg, when)
}

func countRuns(files map[string][]byte) int {
	n := 0
	for p := range files {
		if strings.HasPrefix(p, "run-") && strings.HasSuffix(p, ".json") {
			n++
		}
	}
	return n
}

// num formats a float in Go's shortest round-trip form.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// oneLine collapses whitespace runs (newlines included) to single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cell makes s safe inside a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func utc(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// configValue renders a config value: strings as they are, anything else
// as compact JSON.
func configValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func runMarkdown(s receipt.Signed) []byte {
	rc := s.Receipt
	var w bytes.Buffer
	fmt.Fprintf(&w, "# Run %d: %s\n\n", rc.RunNumber, oneLine(rc.Hypothesis))
	w.WriteString("| Metric | Direction | Validation | Held-out test |\n| --- | --- | --- | --- |\n")
	fmt.Fprintf(&w, "| %s | %s | %s | %s |\n\n", cell(rc.Metric.Name), cell(rc.Metric.Direction), num(rc.Metric.Value), num(rc.Metric.TestValue))
	fmt.Fprintf(&w, "- Improvement: %+.4f%% over the best before this run (direction-aware, > 0 is better)\n", rc.Improvement*100)
	fmt.Fprintf(&w, "- New best: %s; beats noise floor: %s\n", yesNo(rc.IsNewBest), yesNo(rc.BeatsNoise))
	if nf := rc.NoiseFloor; nf != nil {
		fmt.Fprintf(&w, "- Noise floor: mean %s, sd %s over %d runs, threshold %s\n", num(nf.Mean), num(nf.SD), nf.N, num(nf.Threshold))
	} else {
		w.WriteString("- Noise floor: none\n")
	}
	if rc.Baseline {
		w.WriteString("- Baseline run (measures the noise floor)\n")
	}
	fmt.Fprintf(&w, "- Seed: %d\n", rc.Seed)
	fmt.Fprintf(&w, "- Project: %s; campaign: %s; agent: %s\n", oneLine(rc.Project), oneLine(rc.Campaign), oneLine(rc.Agent))
	fmt.Fprintf(&w, "- Time: %s\n", utc(rc.Timestamp))
	parents := make([]string, len(rc.Parents))
	for i, p := range rc.Parents {
		parents[i] = receipt.ShortID(p)
	}
	if len(parents) == 0 {
		parents = []string{"none"}
	}
	fmt.Fprintf(&w, "- Parents: %s\n", strings.Join(parents, ", "))
	fmt.Fprintf(&w, "- Proposer: %s\n", oneLine(rc.Proposer))
	fmt.Fprintf(&w, "- Duration: %s s\n", num(rc.Result.DurationSec))
	gpu := "none (CPU)"
	if rc.GPU != nil {
		gpu = oneLine(*rc.GPU)
	}
	fmt.Fprintf(&w, "- GPU: %s\n\n", gpu)

	w.WriteString("## Config\n\n")
	if len(rc.Config) == 0 {
		w.WriteString("(empty)\n\n")
	} else {
		keys := make([]string, 0, len(rc.Config))
		for k := range rc.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.WriteString("| Key | Value |\n| --- | --- |\n")
		for _, k := range keys {
			fmt.Fprintf(&w, "| %s | %s |\n", cell(k), cell(configValue(rc.Config[k])))
		}
		w.WriteString("\n")
	}
	if rc.Code != "" {
		fence := "```"
		for strings.Contains(rc.Code, fence) {
			fence += "`"
		}
		fmt.Fprintf(&w, "## Code\n\n%s\n%s\n%s\n\n", fence, strings.TrimRight(rc.Code, "\n"), fence)
	}
	w.WriteString("## Receipt\n\n")
	fmt.Fprintf(&w, "- Receipt id: `%s`\n", s.ID)
	fmt.Fprintf(&w, "- Signer: `%s`\n", rc.PeerID)
	fmt.Fprintf(&w, "- Signed receipt: [%s.json](%s.json)\n", RunFileBase(rc.RunNumber), RunFileBase(rc.RunNumber))
	return w.Bytes()
}

// paperTitle is the first "# " heading of a paper, or its slug.
func paperTitle(p Paper) string {
	for _, line := range strings.Split(p.Markdown, "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(line), "# "); ok && strings.TrimSpace(t) != "" {
			return oneLine(t)
		}
	}
	return p.Slug
}

func journal(b AgentBranch, runs []receipt.Signed, papers []Paper, best receipt.Signed, hasBest bool) []byte {
	var w bytes.Buffer
	fmt.Fprintf(&w, "# Journal: %s / %s\n\n", b.PeerID, b.Domain)
	fmt.Fprintf(&w, "Runs: %d. Papers: %d.", len(runs), len(papers))
	if hasBest {
		m := best.Receipt.Metric
		fmt.Fprintf(&w, " Best: run %d, %s %s (%s; held-out test %s), see [%s](%s).",
			best.Receipt.RunNumber, oneLine(m.Name), num(m.Value), oneLine(m.Direction), num(m.TestValue), BestFile, BestFile)
	}
	w.WriteString("\n\n## Runs\n\n")
	if len(runs) == 0 {
		w.WriteString("No runs yet.\n")
	}
	for _, s := range runs {
		rc := s.Receipt
		var marks []string
		if rc.IsNewBest {
			marks = append(marks, "**new best**")
		}
		if rc.Baseline {
			marks = append(marks, "baseline")
		}
		mark := ""
		if len(marks) > 0 {
			mark = " " + strings.Join(marks, ", ") + ";"
		}
		base := RunFileBase(rc.RunNumber)
		fmt.Fprintf(&w, "- [Run %d](%s.md) %s: %s = %s (test %s);%s %s\n",
			rc.RunNumber, base, utc(rc.Timestamp), oneLine(rc.Metric.Name), num(rc.Metric.Value), num(rc.Metric.TestValue), mark, oneLine(rc.Hypothesis))
	}
	if len(papers) > 0 {
		w.WriteString("\n## Papers\n\n")
		for _, p := range papers {
			fmt.Fprintf(&w, "- [%s](%s/%s.md)", paperTitle(p), PapersDir, p.Slug)
			if p.ID != "" {
				fmt.Fprintf(&w, " (paper `%s`)", oneLine(p.ID))
			}
			w.WriteString("\n")
		}
	}
	return w.Bytes()
}
