package paper

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Floor is the campaign's noise floor as a paper reports it.
type Floor struct {
	Mean float64
	SD   float64
	N    int
	K    float64 // multiples of SD a gain must exceed (2 by default)
}

// Facts are what a paper is written from.
type Facts struct {
	Domain, Project, Campaign, Agent string
	Number                           int
	Metric                           string
	Direction                        string // "minimize" | "maximize"
	Floor                            Floor
	// Window holds the experiments this paper covers (the agent's last N).
	Window []receipt.Signed
	// Known holds every other receipt the author knows (for lineage).
	Known []receipt.Signed
}

// Row is one line of the results table.
type Row struct {
	ID         string
	Run        int
	Hypothesis string
	Value      float64
	TestValue  float64
	Effect     float64 // direction-aware gain over the floor mean
	Z          float64 // Effect / SD
	Verdict    string  // "beats noise floor" | "within noise" | "worse" | "failed"
}

// Draft is a paper before signing: facts computed, prose written.
type Draft struct {
	Paper Paper
	Rows  []Row
}

// gain is the direction-aware gain of v over ref (>0 means better).
func gain(v, ref float64, direction string) float64 {
	if direction == "maximize" {
		return v - ref
	}
	return ref - v
}

// better reports whether a is better than b under direction.
func better(a, b float64, direction string) bool { return gain(a, b, direction) > 0 }

func finiteF(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Synthesize computes a paper's facts from its window and writes it with
// the built-in writer. The key claim is the window's best run.
func Synthesize(f Facts, at time.Time) (Draft, error) {
	if len(f.Window) == 0 {
		return Draft{}, fmt.Errorf("paper: nothing to write about: the window has no experiments")
	}
	if f.Floor.K <= 0 {
		f.Floor.K = 2
	}
	win := append([]receipt.Signed(nil), f.Window...)
	sort.Slice(win, func(i, j int) bool { return win[i].Receipt.RunNumber < win[j].Receipt.RunNumber })
	rows := make([]Row, 0, len(win))
	key := -1
	for i, s := range win {
		r := s.Receipt
		row := Row{ID: s.ID, Run: r.RunNumber, Hypothesis: r.Hypothesis, Value: r.Metric.Value, TestValue: r.Metric.TestValue}
		switch {
		case !finiteF(r.Metric.Value):
			row.Verdict = "failed"
		default:
			row.Effect = gain(r.Metric.Value, f.Floor.Mean, f.Direction)
			if f.Floor.SD > 0 {
				row.Z = row.Effect / f.Floor.SD
			}
			switch {
			case row.Effect > f.Floor.K*f.Floor.SD:
				row.Verdict = "beats noise floor"
			case row.Effect >= -f.Floor.K*f.Floor.SD:
				row.Verdict = "within noise"
			default:
				row.Verdict = "worse"
			}
			if key < 0 || better(r.Metric.Value, win[key].Receipt.Metric.Value, f.Direction) {
				key = i
			}
		}
		rows = append(rows, row)
	}
	if key < 0 {
		return Draft{}, fmt.Errorf("paper: every experiment in the window failed; there is no claim to make")
	}
	k := win[key]
	claim := Claim{
		Receipt: k.ID, Metric: f.Metric, Direction: f.Direction,
		Value: k.Receipt.Metric.Value, TestValue: k.Receipt.Metric.TestValue,
		FloorMean: f.Floor.Mean, FloorSD: f.Floor.SD, FloorN: f.Floor.N, K: f.Floor.K,
		Effect: gain(k.Receipt.Metric.Value, f.Floor.Mean, f.Direction),
	}
	if f.Floor.N > 0 {
		claim.EffectCI = 1.96 * f.Floor.SD * math.Sqrt(1+1/float64(f.Floor.N))
	}
	if f.Floor.SD > 0 {
		claim.Z = claim.Effect / f.Floor.SD
	}
	ids := make([]string, len(win))
	for i, s := range win {
		ids[i] = s.ID
	}
	p := Paper{
		Domain: f.Domain, Project: f.Project, Campaign: f.Campaign, Agent: f.Agent, Number: f.Number,
		Timestamp: at.UnixMilli(), Writer: "builtin", Receipts: ids,
		Lineage: Lineage(k, append(append([]receipt.Signed(nil), f.Known...), f.Window...)),
		Claim:   claim,
	}
	d := Draft{Paper: p, Rows: rows}
	d.Paper.Title, d.Paper.Abstract = BuiltinProse(f, d)
	d.Paper.Markdown = Render(f, d, "")
	return d, nil
}

// Lineage follows the key receipt's inspiredBy chain through known
// receipts (key first), stopping at an unknown id or a cycle.
func Lineage(key receipt.Signed, known []receipt.Signed) []string {
	byID := make(map[string]receipt.Signed, len(known))
	for _, s := range known {
		byID[s.ID] = s
	}
	out := []string{key.ID}
	seen := map[string]bool{key.ID: true}
	cur := key
	for len(out) < 32 {
		next := ""
		if cur.Receipt.InspiredBy != nil {
			next = *cur.Receipt.InspiredBy
		} else if len(cur.Receipt.Parents) > 0 {
			next = cur.Receipt.Parents[0]
		}
		if next == "" || seen[next] {
			break
		}
		out = append(out, next)
		seen[next] = true
		s, ok := byID[next]
		if !ok {
			break
		}
		cur = s
	}
	return out
}

func fmtNum(v float64) string {
	if !finiteF(v) {
		return "—"
	}
	return fmt.Sprintf("%.4g", v)
}

func fmtSigned(v float64) string {
	if !finiteF(v) {
		return "—"
	}
	return fmt.Sprintf("%+.4g", v)
}

// BuiltinProse writes the title and abstract from the statistics alone.
func BuiltinProse(f Facts, d Draft) (title, abstract string) {
	c := d.Paper.Claim
	beat := 0
	failed := 0
	for _, r := range d.Rows {
		switch r.Verdict {
		case "beats noise floor":
			beat++
		case "failed":
			failed++
		}
	}
	var key Row
	for _, r := range d.Rows {
		if r.ID == c.Receipt {
			key = r
		}
	}
	hyp := strings.TrimSpace(key.Hypothesis)
	if len(hyp) > 90 {
		hyp = hyp[:87] + "..."
	}
	if c.Effect > f.Floor.K*f.Floor.SD {
		title = fmt.Sprintf("%s: %s %s by %s (%.1fσ) on %s", hyp, f.Metric, verb(f.Direction), fmtNum(math.Abs(c.Effect)), c.Z, f.Project)
	} else {
		title = fmt.Sprintf("No gain beyond the noise floor in %d %s experiments on %s", len(d.Rows), f.Domain, f.Project)
	}
	abstract = fmt.Sprintf("Agent %s ran %d experiments (runs %d-%d) on %s, optimising %s (%s). "+
		"The baseline noise floor, measured with %d seeds, is %s ± %s. "+
		"%d of %d runs beat it by more than %.0fσ and %d failed. "+
		"The best run, %s (%s), reached %s = %s (held-out test %s), an effect of %s ± %s against the floor mean (%.1fσ).",
		f.Agent, len(d.Rows), d.Rows[0].Run, d.Rows[len(d.Rows)-1].Run, f.Project, f.Metric, f.Direction,
		f.Floor.N, fmtNum(f.Floor.Mean), fmtNum(f.Floor.SD),
		beat, len(d.Rows), f.Floor.K, failed,
		receipt.ShortID(c.Receipt), hyp, f.Metric, fmtNum(c.Value), fmtNum(c.TestValue), fmtSigned(c.Effect), fmtNum(c.EffectCI), c.Z)
	return title, abstract
}

func verb(direction string) string {
	if direction == "maximize" {
		return "raised"
	}
	return "lowered"
}

// Render writes the whole Markdown paper. discussion, when not empty, is
// added as its own section (an LLM's prose); everything else is computed.
func Render(f Facts, d Draft, discussion string) string {
	p := d.Paper
	c := p.Claim
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", p.Title)
	fmt.Fprintf(&b, "*Paper %d by agent %s, campaign %s, domain %s (%s). Writer: %s.*\n\n", p.Number, p.Agent, p.Campaign, p.Domain, p.Project, p.Writer)
	fmt.Fprintf(&b, "## Abstract\n\n%s\n\n", p.Abstract)
	b.WriteString("## Hypothesis lineage\n\n")
	byID := map[string]receipt.Signed{}
	for _, s := range append(append([]receipt.Signed(nil), f.Known...), f.Window...) {
		byID[s.ID] = s
	}
	for i, id := range p.Lineage {
		if s, ok := byID[id]; ok {
			fmt.Fprintf(&b, "%d. `%s` run %d by %s: %s (%s = %s)\n", i+1, receipt.ShortID(id), s.Receipt.RunNumber, s.Receipt.Agent,
				oneLine(s.Receipt.Hypothesis), f.Metric, fmtNum(s.Receipt.Metric.Value))
		} else {
			fmt.Fprintf(&b, "%d. `%s` (not held by the author)\n", i+1, receipt.ShortID(id))
		}
	}
	b.WriteString("\n## Method\n\n")
	fmt.Fprintf(&b, "Each experiment evaluates one configuration of the %s domain with its own seed; %s is measured on the validation split and the held-out test split is reported but never optimised. "+
		"The noise floor is the baseline configuration run with %d seeds: mean %s, sample SD %s. "+
		"An effect is the direction-aware gain over the floor mean; its 95%% interval for a single run is ±1.96·SD·√(1+1/N) = ±%s. "+
		"A run beats the noise floor when its effect exceeds %.0f·SD = %s. Reviewers re-run the key receipt `%s` with a fresh seed.\n\n",
		f.Domain, f.Metric, f.Floor.N, fmtNum(f.Floor.Mean), fmtNum(f.Floor.SD), fmtNum(c.EffectCI), f.Floor.K, fmtNum(f.Floor.K*f.Floor.SD), receipt.ShortID(c.Receipt))
	b.WriteString("## Results\n\n")
	fmt.Fprintf(&b, "| run | receipt | hypothesis | %s (val) | test | effect | σ | verdict |\n|---:|---|---|---:|---:|---:|---:|---|\n", f.Metric)
	for _, r := range d.Rows {
		mark := ""
		if r.ID == c.Receipt {
			mark = " **(key)**"
		}
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s | %s | %s | %.1f | %s%s |\n", r.Run, receipt.ShortID(r.ID), escapeCell(oneLine(r.Hypothesis)),
			fmtNum(r.Value), fmtNum(r.TestValue), fmtSigned(r.Effect), r.Z, r.Verdict, mark)
	}
	b.WriteString("\n## What failed\n\n")
	nf := 0
	for _, r := range d.Rows {
		if r.Verdict == "worse" || r.Verdict == "failed" {
			nf++
			if r.Verdict == "failed" {
				fmt.Fprintf(&b, "- run %d (`%s`) failed: %s\n", r.Run, receipt.ShortID(r.ID), oneLine(r.Hypothesis))
			} else {
				fmt.Fprintf(&b, "- run %d (`%s`) was worse than the floor by %s (%.1fσ): %s\n", r.Run, receipt.ShortID(r.ID), fmtNum(-r.Effect), -r.Z, oneLine(r.Hypothesis))
			}
		}
	}
	if nf == 0 {
		b.WriteString("Nothing was worse than the noise floor.\n")
	}
	if strings.TrimSpace(discussion) != "" {
		fmt.Fprintf(&b, "\n## Discussion\n\n%s\n", strings.TrimSpace(discussion))
	}
	b.WriteString("\n## Receipts\n\n")
	for _, id := range p.Receipts {
		fmt.Fprintf(&b, "- `%s`\n", id)
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// Sections are the headings every paper has; reviewers check for them.
var Sections = []string{"## Abstract", "## Hypothesis lineage", "## Method", "## Results", "## What failed", "## Receipts"}
