package paper

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// The review rubric, 10 points in all:
//
//	integrity     2  the paper's signature, every receipt it rests on (present
//	                 and validly signed), and the claim equal to the key
//	                 receipt's signed metric. Any failure here is fabrication
//	                 or an unverifiable claim: the score is capped at 1.
//	reproduction  3  the reviewer's re-run of the key receipt with a fresh seed
//	                 lands within the tolerance of the claim (3), within twice
//	                 it (1), or not (0, and the score is capped at 2). The
//	                 tolerance is K·SD of the noise floor, at least 0.1% of
//	                 the claim. A re-run that could not be done caps at 3.
//	effect        4  the REPRODUCED value's gain over the floor mean, in floor
//	                 SDs: >= 2K (4), >= K (3), >= 1 (1), else 0.
//	completeness  1  every section present and every receipt cited.
//
// So a breakthrough (8+) needs a signed, reproducible result whose re-run
// alone beats the noise floor.
const (
	MaxIntegrity    = 2
	MaxReproduction = 3
	MaxEffect       = 4
	MaxCompleteness = 1
)

// Assessment is what a reviewer saw; Assess scores it.
type Assessment struct {
	Paper Signed
	// Receipts are the receipts the reviewer could fetch, by id.
	Receipts map[string]receipt.Signed
	// Reproduction is the re-run of the key receipt (Ran false: not done).
	Reproduction Reproduction
	// K is the noise multiple (default 2).
	K float64
}

// Tolerance is the reproduction tolerance for a claim. It is signed into
// the review, so it stays finite (at most math.MaxFloat64) even when k
// times the claim's floor SD overflows.
func Tolerance(c Claim, k float64) float64 {
	if k <= 0 {
		k = 2
	}
	return math.Min(math.Max(math.Max(k*c.FloorSD, 1e-3*math.Abs(c.Value)), 1e-9), math.MaxFloat64)
}

// Assess scores a paper against the rubric. It is pure: the reviewer's
// activity fetches, verifies signatures of nothing itself, re-runs, and
// hands the results here.
func Assess(a Assessment) (score int, rubric []Criterion, reasons []string) {
	k := a.K
	if k <= 0 {
		k = 2
	}
	p := a.Paper.Paper
	c := p.Claim
	capAt := 10

	// Integrity.
	var problems []string
	if err := a.Paper.Verify(); err != nil {
		problems = append(problems, "paper signature: "+err.Error())
	}
	for _, id := range p.Receipts {
		s, ok := a.Receipts[id]
		if !ok {
			problems = append(problems, fmt.Sprintf("receipt %s is not available to the reviewer", receipt.ShortID(id)))
			continue
		}
		if err := s.Verify(); err != nil {
			problems = append(problems, fmt.Sprintf("receipt %s fails verification: %v", receipt.ShortID(id), err))
		}
	}
	key, haveKey := a.Receipts[c.Receipt]
	inWindow := false
	for _, id := range p.Receipts {
		inWindow = inWindow || id == c.Receipt
	}
	switch {
	case !inWindow:
		problems = append(problems, "the key receipt is not among the receipts the paper rests on")
	case !haveKey:
		// already reported above
	default:
		if key.Receipt.Metric.Value != c.Value {
			problems = append(problems, fmt.Sprintf("claimed %s %s but the signed receipt says %s", c.Metric, fmtNum(c.Value), fmtNum(key.Receipt.Metric.Value)))
		}
		if key.Receipt.Metric.Direction != c.Direction || key.Receipt.Metric.Name != c.Metric {
			problems = append(problems, "the claim's metric or direction differs from the key receipt's")
		}
		if want := gain(c.Value, c.FloorMean, c.Direction); math.Abs(want-c.Effect) > 1e-9*math.Max(1, math.Abs(want)) {
			problems = append(problems, fmt.Sprintf("claimed effect %s, the numbers give %s", fmtSigned(c.Effect), fmtSigned(want)))
		}
		if nf := key.Receipt.NoiseFloor; nf != nil && (math.Abs(nf.Mean-c.FloorMean) > 1e-9*math.Max(1, math.Abs(nf.Mean)) || math.Abs(nf.SD-c.FloorSD) > 1e-9*math.Max(1, nf.SD)) {
			problems = append(problems, "the claim's noise floor differs from the one the key receipt was judged against")
		}
	}
	integ := MaxIntegrity
	note := "paper and receipts verify; the claim matches the signed key receipt"
	if len(problems) > 0 {
		integ = 0
		capAt = 1
		note = strings.Join(problems, "; ")
		reasons = append(reasons, "fabricated or unverifiable claim: "+note)
	}
	rubric = append(rubric, Criterion{Name: "integrity", Points: integ, Max: MaxIntegrity, Note: note})

	// Reproduction.
	r := a.Reproduction
	tol := Tolerance(c, k)
	var rep int
	switch {
	case !r.Ran:
		capAt = min(capAt, 3)
		note = "the key receipt could not be re-run: " + r.Error
		reasons = append(reasons, note)
	default:
		diff := math.Abs(r.Observed - c.Value)
		switch {
		case !finiteF(r.Observed):
			note = "the re-run produced no finite metric"
			capAt = min(capAt, 2)
		case diff <= tol:
			rep = MaxReproduction
			note = fmt.Sprintf("re-run with seed %d gave %s, within %s of the claim %s", r.Seed, fmtNum(r.Observed), fmtNum(tol), fmtNum(c.Value))
		case diff <= 2*tol:
			rep = 1
			note = fmt.Sprintf("re-run with seed %d gave %s, %s from the claim %s (tolerance %s)", r.Seed, fmtNum(r.Observed), fmtNum(diff), fmtNum(c.Value), fmtNum(tol))
		default:
			capAt = min(capAt, 2)
			note = fmt.Sprintf("does not reproduce: re-run with seed %d gave %s, %s from the claim %s (%.1f× the tolerance %s)", r.Seed, fmtNum(r.Observed), fmtNum(diff), fmtNum(c.Value), diff/tol, fmtNum(tol))
			reasons = append(reasons, note)
		}
	}
	rubric = append(rubric, Criterion{Name: "reproduction", Points: rep, Max: MaxReproduction, Note: note})

	// Effect of the reproduced value.
	var eff int
	if r.Ran && finiteF(r.Observed) {
		g := gain(r.Observed, c.FloorMean, c.Direction)
		var z float64
		switch {
		case c.FloorSD > 0:
			z = g / c.FloorSD
		case g > 1e-3*math.Abs(c.FloorMean):
			z = math.Inf(1)
		}
		switch {
		case z >= 2*k:
			eff = 4
		case z >= k:
			eff = 3
		case z >= 1:
			eff = 1
		}
		note = fmt.Sprintf("re-run effect %s over the floor mean %s (%.1fσ)", fmtSigned(g), fmtNum(c.FloorMean), z)
		if eff >= 3 {
			reasons = append(reasons, fmt.Sprintf("the reproduced result beats the noise floor by %.1fσ", z))
		} else {
			reasons = append(reasons, fmt.Sprintf("the reproduced result is within %.0fσ of the baseline", k))
		}
	} else {
		note = "no reproduced value to judge"
	}
	rubric = append(rubric, Criterion{Name: "effect", Points: eff, Max: MaxEffect, Note: note})

	// Completeness.
	var missing []string
	for _, s := range Sections {
		if !strings.Contains(p.Markdown, s) {
			missing = append(missing, strings.TrimPrefix(s, "## "))
		}
	}
	for _, id := range p.Receipts {
		if !strings.Contains(p.Markdown, id) {
			missing = append(missing, "receipt "+receipt.ShortID(id))
		}
	}
	comp := MaxCompleteness
	note = "every section present and every receipt cited"
	if len(missing) > 0 {
		comp = 0
		note = "missing: " + strings.Join(missing, ", ")
	}
	rubric = append(rubric, Criterion{Name: "completeness", Points: comp, Max: MaxCompleteness, Note: note})

	score = integ + rep + eff + comp
	score = max(1, min(score, capAt))
	return score, rubric, reasons
}

// Median is the robust aggregate of review scores (the mean of the two
// middle scores for an even count); 0 when there are none.
func Median(scores []int) float64 {
	if len(scores) == 0 {
		return 0
	}
	s := append([]int(nil), scores...)
	sort.Ints(s)
	n := len(s)
	if n%2 == 1 {
		return float64(s[n/2])
	}
	return float64(s[n/2-1]+s[n/2]) / 2
}

// IsBreakthrough reports whether an aggregated score marks a breakthrough.
func IsBreakthrough(median float64) bool { return median >= BreakthroughScore }
