package proposer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// bowl is a fake domain: a quadratic bowl over a mixed space, minimised at
// optimum. It optionally enforces a cross-parameter constraint.
type bowl struct {
	dir        domains.Direction
	constraint bool // heads must divide width
	validates  int
}

var bowlSpace = domains.Space{
	{Name: "x", Kind: domains.Float, Min: 0, Max: 1, Help: "x"},
	{Name: "y", Kind: domains.Float, Min: -5, Max: 5, Help: "y"},
	{Name: "lr", Kind: domains.Float, Min: 1e-5, Max: 1e-1, Log: true, Help: "learning rate"},
	{Name: "width", Kind: domains.Int, Min: 16, Max: 512, Log: true, Help: "width"},
	{Name: "heads", Kind: domains.Int, Min: 1, Max: 16, Help: "heads"},
	{Name: "opt", Kind: domains.Choice, Choices: []string{"sgd", "adam", "lion"}, Help: "optimiser"},
	{Name: "tied", Kind: domains.Bool, Help: "tie weights"},
}

func (b *bowl) Name() string { return "bowl" }
func (b *bowl) Metric() domains.Metric {
	d := b.dir
	if d == "" {
		d = domains.Minimize
	}
	return domains.Metric{Name: "val_loss", Direction: d}
}
func (b *bowl) Space() domains.Space { return bowlSpace }
func (b *bowl) Baseline() domains.Config {
	return domains.Config{"x": 0.1, "y": -4.0, "lr": 1e-4, "width": 32, "heads": 2, "opt": "sgd", "tied": false}
}
func (b *bowl) Validate(cfg domains.Config) (domains.Config, error) {
	b.validates++
	v, err := bowlSpace.Normalize(cfg, b.Baseline())
	if err != nil {
		return nil, err
	}
	if b.constraint && v.Int("width")%v.Int("heads") != 0 {
		return nil, &domains.FieldError{Field: "heads", Message: "must divide width"}
	}
	return v, nil
}
func (b *bowl) Evaluate(_ context.Context, cfg domains.Config, _ int64, _ domains.EvalOptions) (domains.Result, error) {
	return domains.Result{Metric: loss(cfg)}, nil
}
func (b *bowl) Describe() string { return "a quadratic bowl" }

// loss is the bowl: 0 at x=0.7, y=1.5, lr=3e-3, width=256, heads=8, opt=adam, tied.
func loss(c domains.Config) float64 {
	l := sq(c.Float("x")-0.7) + sq((c.Float("y")-1.5)/10) +
		sq(math.Log10(c.Float("lr")/3e-3)/4) + sq(math.Log2(c.Float("width")/256)/5) +
		sq((c.Float("heads")-8)/15)
	if c.String("opt") != "adam" {
		l += 0.05
	}
	if !c.Bool("tied") {
		l += 0.02
	}
	return l
}

func sq(x float64) float64 { return x * x }

// run feeds n proposals back into the history, evaluating them with f.
func run(t *testing.T, d domains.Domain, n int, seed int64, f func(domains.Config) float64) []Entry {
	t.Helper()
	var h []Entry
	for i := range n {
		p, err := Propose(d, h, seed+int64(i))
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		h = append(h, Entry{ID: testID(seed, i), Agent: "a", Config: p.Config, Metric: f(p.Config), Baseline: p.Strategy == StrategyBaseline})
	}
	return h
}

// testID is a fake receipt id (64 hex chars) unique per (seed, i).
func testID(seed int64, i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", seed, i)))
	return hex.EncodeToString(sum[:])
}

func TestEmptyHistoryProposesBaseline(t *testing.T) {
	d := &bowl{}
	p, err := Propose(d, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := d.Validate(d.Baseline())
	if p.Strategy != StrategyBaseline || p.Config.Key() != want.Key() || len(p.Parents) != 0 || p.Parents == nil {
		t.Fatalf("got %+v", p)
	}
}

func TestDeterministic(t *testing.T) {
	d := &bowl{}
	h := run(t, d, 15, 7, loss)
	for _, seed := range []int64{1, 2, 99} {
		a, err := Propose(d, h, seed)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Propose(d, h, seed)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: %+v != %+v", seed, a, b)
		}
	}
	h1 := run(t, d, 30, 3, loss)
	h2 := run(t, d, 30, 3, loss)
	if !reflect.DeepEqual(h1, h2) {
		t.Fatal("sequential runs differ for the same seed")
	}
	h3 := run(t, d, 30, 4, loss)
	if reflect.DeepEqual(h1, h3) {
		t.Fatal("different seeds gave identical runs")
	}
}

func TestNoRepeatsAndParents(t *testing.T) {
	d := &bowl{constraint: true}
	h := run(t, d, 150, 11, loss)
	seen := map[string]bool{}
	ids := map[string]bool{}
	for _, e := range h {
		if seen[e.Config.Key()] {
			t.Fatalf("repeated config %s", e.Config.Key())
		}
		seen[e.Config.Key()] = true
		ids[e.ID] = true
	}
	// Parents of a new proposal reference existing ids; hypotheses name them.
	strategies := map[string]int{}
	for seed := int64(0); seed < 60; seed++ {
		p, err := Propose(d, h, seed)
		if err != nil {
			t.Fatal(err)
		}
		strategies[p.Strategy]++
		if seen[p.Config.Key()] {
			t.Fatal("proposal repeats history")
		}
		if p.Strategy != StrategyExplore && len(p.Parents) == 0 {
			t.Fatalf("%s proposal without parents: %+v", p.Strategy, p)
		}
		for _, id := range p.Parents {
			if !ids[id] {
				t.Fatalf("unknown parent %s", id)
			}
			if !strings.Contains(p.Hypothesis, id[:8]) {
				t.Fatalf("hypothesis %q does not name parent %s", p.Hypothesis, id[:8])
			}
		}
		if len(p.Parents) > 0 && !strings.Contains(p.Hypothesis, "val_loss=") || strings.Contains(p.Hypothesis, "\n") || p.Hypothesis == "" {
			t.Fatalf("bad hypothesis %q", p.Hypothesis)
		}
		if p.Config.Int("width")%p.Config.Int("heads") != 0 {
			t.Fatal("constraint violated")
		}
	}
	for _, s := range []string{StrategyMutate, StrategyCrossover, StrategyExplore} {
		if strategies[s] == 0 {
			t.Errorf("strategy %s never used: %v", s, strategies)
		}
	}
}

func TestHypothesisFormat(t *testing.T) {
	d := &bowl{}
	h := run(t, d, 10, 5, loss)
	for seed := int64(0); seed < 40; seed++ {
		p, err := Propose(d, h, seed)
		if err != nil {
			t.Fatal(err)
		}
		if p.Strategy == StrategyMutate {
			if !strings.HasPrefix(p.Hypothesis, "Improve on ") || !strings.HasSuffix(p.Hypothesis, "(exploit, mutation)") ||
				!strings.Contains(p.Hypothesis, " -> ") && !strings.Contains(p.Hypothesis, "able ") {
				t.Fatalf("mutation hypothesis %q", p.Hypothesis)
			}
			t.Logf("example: %s", p.Hypothesis)
			return
		}
	}
	t.Fatal("no mutation proposed")
}

// TestInformedBeatsRandom checks the search is informed: on the bowl the
// proposer's best after N evaluations beats uniform random sampling's
// best over the same budget, for most seeds and on average.
func TestInformedBeatsRandom(t *testing.T) {
	const n, seeds = 40, 20
	wins := 0
	var sumP, sumR float64
	for seed := int64(1); seed <= seeds; seed++ {
		h := run(t, &bowl{}, n, seed*7919, loss)
		bestP := math.Inf(1)
		for _, e := range h {
			bestP = math.Min(bestP, e.Metric)
		}
		rng := rand.New(rand.NewPCG(uint64(seed), 4242))
		bestR := math.Inf(1)
		for range n {
			bestR = math.Min(bestR, loss(randomConfig(rng)))
		}
		if bestP < bestR {
			wins++
		}
		sumP += bestP
		sumR += bestR
		t.Logf("seed %d: proposer %.4f random %.4f", seed, bestP, bestR)
	}
	if wins < seeds*3/5 || sumP >= sumR {
		t.Fatalf("proposer won %d/%d, mean best %.4f vs random %.4f", wins, seeds, sumP/seeds, sumR/seeds)
	}
}

func randomConfig(rng *rand.Rand) domains.Config {
	c := domains.Config{}
	for _, p := range bowlSpace {
		switch p.Kind {
		case domains.Choice:
			c[p.Name] = p.Choices[rng.IntN(len(p.Choices))]
		case domains.Bool:
			c[p.Name] = rng.IntN(2) == 1
		default:
			var x float64
			if p.Log {
				x = math.Exp(math.Log(p.Min) + rng.Float64()*(math.Log(p.Max)-math.Log(p.Min)))
			} else {
				x = p.Min + rng.Float64()*(p.Max-p.Min)
			}
			if p.Kind == domains.Int {
				x = math.Round(x)
			}
			c[p.Name] = x
		}
	}
	return c
}

func TestMaximize(t *testing.T) {
	d := &bowl{dir: domains.Maximize}
	score := func(c domains.Config) float64 { return -loss(c) }
	h := run(t, d, 40, 9, score)
	best := math.Inf(-1)
	for _, e := range h {
		best = math.Max(best, e.Metric)
	}
	if best <= score(d.Baseline()) {
		t.Fatalf("maximising did not improve on the baseline: %v", best)
	}
}

// strict is a domain whose Validate rejects most candidates.
type strict struct {
	bowl
	rejected int
}

func (s *strict) Validate(cfg domains.Config) (domains.Config, error) {
	v, err := s.bowl.Validate(cfg)
	if err != nil {
		return nil, err
	}
	if v.String("opt") == "lion" || v.Float("x") > 0.5 {
		s.rejected++
		return nil, &domains.FieldError{Field: "x", Message: "x > 0.5 or lion not allowed"}
	}
	return v, nil
}

func TestValidationErrorsRetried(t *testing.T) {
	d := &strict{}
	h := run(t, d, 60, 21, loss)
	if d.rejected == 0 {
		t.Fatal("expected some candidates to be rejected")
	}
	for _, e := range h {
		if e.Config.String("opt") == "lion" || e.Config.Float("x") > 0.5 {
			t.Fatalf("invalid config proposed: %v", e.Config)
		}
	}
}

// tiny has 12 configs in all.
type tiny struct{}

var tinySpace = domains.Space{
	{Name: "a", Kind: domains.Bool},
	{Name: "b", Kind: domains.Bool},
	{Name: "c", Kind: domains.Choice, Choices: []string{"x", "y", "z"}},
}

func (tiny) Name() string { return "tiny" }
func (tiny) Metric() domains.Metric {
	return domains.Metric{Name: "score", Direction: domains.Maximize}
}
func (tiny) Space() domains.Space     { return tinySpace }
func (tiny) Baseline() domains.Config { return domains.Config{"a": false, "b": false, "c": "x"} }
func (t tiny) Validate(c domains.Config) (domains.Config, error) {
	return tinySpace.Normalize(c, t.Baseline())
}
func (tiny) Evaluate(context.Context, domains.Config, int64, domains.EvalOptions) (domains.Result, error) {
	return domains.Result{}, nil
}
func (tiny) Describe() string { return "tiny" }

func TestExhausted(t *testing.T) {
	score := func(c domains.Config) float64 {
		s := float64(len(c.String("c")))
		if c.Bool("a") {
			s++
		}
		return s
	}
	h := run(t, tiny{}, 12, 1, score)
	_, err := Propose(tiny{}, h, 99)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("after all 12 configs: want ErrExhausted, got %v", err)
	}
}

func TestFailedRunsAreNotRepeated(t *testing.T) {
	d := &bowl{}
	base, _ := d.Validate(d.Baseline())
	h := []Entry{{ID: "f00d", Config: base, Metric: math.NaN()}}
	for seed := int64(0); seed < 20; seed++ {
		p, err := Propose(d, h, seed)
		if err != nil {
			t.Fatal(err)
		}
		if p.Config.Key() == base.Key() {
			t.Fatal("re-proposed a failed config")
		}
		if p.Strategy != StrategyExplore && p.Strategy != StrategyMutate {
			t.Fatalf("strategy %s with no ranked history", p.Strategy)
		}
	}
}

func TestCampaignBaselineFromHistoryIsUsed(t *testing.T) {
	d := &bowl{}
	base := d.Baseline()
	custom := base.Clone()
	for _, p := range d.Space() {
		if p.Kind == domains.Float || p.Kind == domains.Int {
			custom[p.Name] = p.Min
			break
		}
	}
	custom, err := d.Validate(custom)
	if err != nil {
		t.Fatal(err)
	}
	hist := []Entry{{ID: "b1", Agent: "a", Config: custom, Metric: 1, Baseline: true}}
	p, err := Propose(d, hist, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Strategy == StrategyBaseline || p.Config.Key() == base.Key() {
		t.Fatalf("proposed the domain baseline although the campaign's baseline ran: %+v", p)
	}
}

// fixedBowl is the bowl with its first numeric parameter marked Fixed.
type fixedBowl struct{ bowl }

func (f *fixedBowl) Space() domains.Space {
	sp := append(domains.Space(nil), f.bowl.Space()...)
	for i := range sp {
		if sp[i].Kind == domains.Float || sp[i].Kind == domains.Int {
			sp[i].Fixed = true
			break
		}
	}
	return sp
}

func TestFixedParamsNeverChange(t *testing.T) {
	d := &fixedBowl{}
	var fixed string
	for _, p := range d.Space() {
		if p.Fixed {
			fixed = p.Name
		}
	}
	want := d.Baseline()[fixed]
	var hist []Entry
	for i := 0; i < 40; i++ {
		p, err := Propose(d, hist, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if p.Config.Float(fixed) != (domains.Config{fixed: want}).Float(fixed) {
			t.Fatalf("proposal %d changed fixed %s: %v -> %v (%s)", i, fixed, want, p.Config[fixed], p.Strategy)
		}
		hist = append(hist, Entry{ID: fmt.Sprintf("f%02d", i), Agent: "a", Config: p.Config, Metric: loss(p.Config), Baseline: i == 0})
	}
}

// TestBreakthroughsArePreferredParents: with a breakthrough in history,
// about half of the exploit moves build on it even though it is not the
// best-ranked config; without the mark, it is chosen only by the ordinary
// tournament (evolve).
func TestBreakthroughsArePreferredParents(t *testing.T) {
	d := &bowl{}
	h := run(t, d, 40, 5, loss)
	// Mark a mid-ranked, non-baseline result as a breakthrough.
	sorted := append([]Entry(nil), h...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Metric < sorted[j].Metric })
	target := sorted[len(sorted)/2].ID
	count := func(mark bool) (hits, exploit int) {
		hist := append([]Entry(nil), h...)
		for i := range hist {
			hist[i].Breakthrough = mark && hist[i].ID == target
		}
		for seed := int64(0); seed < 200; seed++ {
			p, err := Propose(d, hist, seed)
			if err != nil {
				t.Fatal(err)
			}
			if p.Strategy == StrategyExplore {
				continue
			}
			exploit++
			for _, id := range p.Parents {
				if id == target {
					hits++
					if mark && !strings.Contains(p.Hypothesis, "breakthrough") {
						t.Fatalf("hypothesis does not name the breakthrough: %s", p.Hypothesis)
					}
					break
				}
			}
		}
		return
	}
	on, n1 := count(true)
	off, n2 := count(false)
	if n1 == 0 || n2 == 0 || float64(on)/float64(n1) < 0.3 || on <= 3*off {
		t.Fatalf("breakthrough chosen as parent %d/%d with evolve, %d/%d without", on, n1, off, n2)
	}
}
