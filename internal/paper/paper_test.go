package paper

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

var floor = Floor{Mean: 1.66, SD: 0.03, N: 3, K: 2}

func mkReceipt(t *testing.T, k *identity.Key, run int, v float64, parent *string) receipt.Signed {
	t.Helper()
	s, err := receipt.Sign(receipt.Receipt{
		Project: "p", RunNumber: run, Timestamp: int64(run) * 1000, Hypothesis: "try " + string(rune('a'+run)),
		Config: map[string]any{"lr": float64(run)}, Domain: "ml", Campaign: "c", Agent: "agent-0", Seed: int64(run),
		Metric:     receipt.MetricValue{Name: "val_loss", Direction: "minimize", Value: v, TestValue: v + 0.01},
		NoiseFloor: &receipt.NoiseFloor{Mean: floor.Mean, SD: floor.SD, N: floor.N, Threshold: 2 * floor.SD},
		InspiredBy: parent,
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func window(t *testing.T) (*identity.Key, []receipt.Signed) { return windowBest(t, 1.50) }

func windowBest(t *testing.T, best float64) (*identity.Key, []receipt.Signed) {
	k := identity.FromSeed(make([]byte, 32))
	a := mkReceipt(t, k, 1, 1.70, nil)
	b := mkReceipt(t, k, 2, best, &a.ID)
	d := mkReceipt(t, k, 3, 1.65, &b.ID)
	return k, []receipt.Signed{d, a, b}
}

func facts(w []receipt.Signed) Facts {
	return Facts{Domain: "ml", Project: "p", Campaign: "c", Agent: "agent-0", Number: 1, Metric: "val_loss", Direction: "minimize", Floor: floor, Window: w}
}

func TestSynthesizeFacts(t *testing.T) {
	k, w := window(t)
	d, err := Synthesize(facts(w), time.UnixMilli(5000))
	if err != nil {
		t.Fatal(err)
	}
	c := d.Paper.Claim
	if c.Receipt != w[2].ID || c.Value != 1.50 {
		t.Fatalf("key claim = %+v, want run 2", c)
	}
	if math.Abs(c.Effect-0.16) > 1e-12 || math.Abs(c.Z-0.16/0.03) > 1e-9 {
		t.Fatalf("effect %v z %v", c.Effect, c.Z)
	}
	if want := 1.96 * 0.03 * math.Sqrt(1+1.0/3); math.Abs(c.EffectCI-want) > 1e-12 {
		t.Fatalf("ci %v want %v", c.EffectCI, want)
	}
	if d.Rows[0].Run != 1 || d.Rows[0].Verdict != "within noise" || d.Rows[1].Verdict != "beats noise floor" || d.Rows[2].Verdict != "within noise" {
		t.Fatalf("rows %+v", d.Rows)
	}
	if len(d.Paper.Lineage) != 2 || d.Paper.Lineage[0] != w[2].ID || d.Paper.Lineage[1] != w[1].ID {
		t.Fatalf("lineage %v", d.Paper.Lineage)
	}
	for _, s := range Sections {
		if !strings.Contains(d.Paper.Markdown, s) {
			t.Fatalf("markdown lacks %s:\n%s", s, d.Paper.Markdown)
		}
	}
	sp, err := Sign(d.Paper, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Verify(); err != nil {
		t.Fatal(err)
	}
	sp.Paper.Claim.Value = 1.2
	if err := sp.Verify(); !errors.Is(err, ErrBadID) {
		t.Fatalf("tampered paper verified: %v", err)
	}
}

func TestSynthesizeEmpty(t *testing.T) {
	if _, err := Synthesize(Facts{}, time.Now()); err == nil {
		t.Fatal("empty window accepted")
	}
}

func assess(t *testing.T, mutate func(*Assessment)) (int, []Criterion, []string) {
	k, w := window(t)
	d, err := Synthesize(facts(w), time.UnixMilli(5000))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := Sign(d.Paper, k)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]receipt.Signed{}
	for _, s := range w {
		byID[s.ID] = s
	}
	a := Assessment{Paper: sp, Receipts: byID, Reproduction: Reproduction{Receipt: sp.Paper.Claim.Receipt, Seed: 99, Ran: true, Claimed: 1.5, Observed: 1.52}}
	if mutate != nil {
		mutate(&a)
	}
	return Assess(a)
}

func TestAssessHonestBreakthrough(t *testing.T) {
	score, rubric, reasons := assess(t, nil)
	if score < BreakthroughScore {
		t.Fatalf("honest reproducible 4.7σ result scored %d: %+v %v", score, rubric, reasons)
	}
}

func TestAssessCatchesAlteredReceipt(t *testing.T) {
	score, _, reasons := assess(t, func(a *Assessment) {
		key := a.Receipts[a.Paper.Paper.Claim.Receipt]
		key.Receipt.Metric.Value = 1.2 // altered after signing
		a.Receipts[key.ID] = key
	})
	if score != 1 || !strings.Contains(strings.Join(reasons, " "), "fabricated") {
		t.Fatalf("altered receipt scored %d (%v)", score, reasons)
	}
}

func TestAssessCatchesInflatedClaim(t *testing.T) {
	k, w := window(t)
	d, _ := Synthesize(facts(w), time.UnixMilli(5000))
	d.Paper.Claim.Value = 1.30 // the paper claims more than its receipt
	sp, _ := Sign(d.Paper, k)
	byID := map[string]receipt.Signed{}
	for _, s := range w {
		byID[s.ID] = s
	}
	score, _, reasons := Assess(Assessment{Paper: sp, Receipts: byID, Reproduction: Reproduction{Ran: true, Observed: 1.51}})
	if score != 1 {
		t.Fatalf("inflated claim scored %d (%v)", score, reasons)
	}
}

func TestAssessRerunMisses(t *testing.T) {
	score, _, reasons := assess(t, func(a *Assessment) { a.Reproduction.Observed = 1.80 })
	if score > 2 || !strings.Contains(strings.Join(reasons, " "), "does not reproduce") {
		t.Fatalf("non-reproducing claim scored %d (%v)", score, reasons)
	}
}

func TestAssessWithinNoiseIsNotBreakthrough(t *testing.T) {
	// A claim 1.3σ beyond the floor mean that reproduces exactly is honest
	// but not a breakthrough.
	k, w := windowBest(t, 1.62)
	d, _ := Synthesize(facts(w), time.UnixMilli(5000))
	sp, _ := Sign(d.Paper, k)
	byID := map[string]receipt.Signed{}
	for _, s := range w {
		byID[s.ID] = s
	}
	score, rubric, _ := Assess(Assessment{Paper: sp, Receipts: byID, Reproduction: Reproduction{Ran: true, Observed: 1.62}})
	if score >= BreakthroughScore || score < 5 {
		t.Fatalf("an honest 1.3σ result scored %d: %+v", score, rubric)
	}
}

func TestAssessMissingReceiptAndNoRerun(t *testing.T) {
	score, _, _ := assess(t, func(a *Assessment) {
		for id := range a.Receipts {
			delete(a.Receipts, id)
			break
		}
	})
	if score != 1 {
		t.Fatalf("missing receipt scored %d", score)
	}
	score, _, _ = assess(t, func(a *Assessment) { a.Reproduction = Reproduction{Error: "domain unknown"} })
	if score > 3 {
		t.Fatalf("unreproduced claim scored %d", score)
	}
}

func TestReviewSignVerify(t *testing.T) {
	k := identity.FromSeed([]byte(strings.Repeat("r", 32)))
	sr, err := SignReview(Review{PaperID: "x", Node: "n", Score: 7, Reproduction: Reproduction{Observed: 1}}, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := sr.Verify(); err != nil {
		t.Fatal(err)
	}
	sr.Review.Score = 10
	if err := sr.Verify(); err == nil {
		t.Fatal("tampered review verified")
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []int
		want float64
	}{{nil, 0}, {[]int{3}, 3}, {[]int{9, 1, 8}, 8}, {[]int{1, 10, 8, 9}, 8.5}, {[]int{1, 1, 10}, 1}}
	for _, c := range cases {
		if got := Median(c.in); got != c.want {
			t.Fatalf("Median(%v) = %v want %v", c.in, got, c.want)
		}
	}
	if !IsBreakthrough(8) || IsBreakthrough(7.5) {
		t.Fatal("breakthrough threshold")
	}
}
