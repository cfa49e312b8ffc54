package repro

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// synth is a deterministic domain (the seed is ignored, like search and
// finance) whose metric is the mean of 45 per-item scores. Only "good"
// has a real effect (+0.1 on every item, validation and test alike); "x"
// and "y" only reshuffle item-level noise, so the gains they show on the
// validation items are luck that the test items do not repeat.
type synth struct{}

func (synth) Name() string { return "synth" }
func (synth) Metric() domains.Metric {
	return domains.Metric{Name: "score", Direction: domains.Maximize}
}
func (synth) Space() domains.Space {
	return domains.Space{
		{Name: "x", Kind: domains.Float, Min: 0, Max: 1, Help: "noise only"},
		{Name: "y", Kind: domains.Float, Min: 0, Max: 1, Help: "noise only"},
		{Name: "good", Kind: domains.Bool, Help: "a real +0.1"},
	}
}
func (s synth) Baseline() domains.Config {
	return domains.Config{"x": 0.5, "y": 0.5, "good": false}
}
func (s synth) Validate(cfg domains.Config) (domains.Config, error) {
	return s.Space().Normalize(cfg, s.Baseline())
}
func (synth) Describe() string { return "synthetic" }

// noiseOf is a deterministic N(0, ~0.05) score for (config, item).
func noiseOf(key string, item int) float64 {
	var sum float64
	for k := range 6 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d/%d", key, item, k)
		sum += float64(h.Sum64()%1_000_000)/1_000_000 - 0.5
	}
	return sum * 0.05 / math.Sqrt(0.5)
}

func (s synth) Evaluate(_ context.Context, cfg domains.Config, _ int64, _ domains.EvalOptions) (domains.Result, error) {
	cfg, err := s.Validate(cfg)
	if err != nil {
		return domains.Result{}, err
	}
	mu := 0.5
	if cfg["good"] == true {
		mu += 0.1
	}
	// x and y are rounded so that the proposer's small steps change the
	// noise pattern (a new "config" for the items) only now and then.
	key := fmt.Sprintf("%.2f/%.2f", cfg["x"], cfg["y"])
	items := make([]float64, 45)
	var val, test float64
	for i := range 45 {
		items[i] = mu + noiseOf("val/"+key, i)
		val += items[i]
		test += mu + noiseOf("test/"+key, i)
	}
	return domains.Result{Metric: val / 45, TestMetric: test / 45, Values: map[string]float64{},
		Items: &domains.Items{Agg: domains.ItemsMean, Key: "synth45", Values: items}}, nil
}

// TestReproductionRate: on a deterministic domain the K x SD floor (SD 0)
// signs item-level luck as new bests that fail on the test items, while
// the judged rule signs only the real effect, and every one of its new
// bests holds. The whole run is deterministic.
func TestReproductionRate(t *testing.T) {
	spec := Spec{Domain: synth{}, Campaigns: 4, Experiments: 25}
	rep, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	bt, _ := rep.Before.Holds()
	at, av := rep.After.Holds()
	t.Logf("before: %d new bests, %d hold; after: %d candidates, %d new bests, %d hold (%d on validation); %d evaluations",
		len(rep.Before.NewBests), bt, rep.After.Candidates, len(rep.After.NewBests), at, av, rep.Evaluations)
	if len(rep.Before.NewBests) < 8 || bt == len(rep.Before.NewBests) {
		t.Fatalf("before: %d new bests, %d hold: the noise-only gains should be signed and fail", len(rep.Before.NewBests), bt)
	}
	if len(rep.After.NewBests) == 0 || at != len(rep.After.NewBests) {
		t.Fatalf("after: %d new bests, %d hold", len(rep.After.NewBests), at)
	}
	for _, b := range rep.After.NewBests {
		if b.TestGain < 0.05 {
			t.Fatalf("after: new best %+v is not the real effect", b)
		}
	}
	if !(rep.After.Rate() > rep.Before.Rate()) {
		t.Fatalf("rate after %v not above before %v", rep.After.Rate(), rep.Before.Rate())
	}
	again, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again.Before, again.After) != fmt.Sprint(rep.Before, rep.After) {
		t.Fatal("not deterministic")
	}
	if _, err := Run(context.Background(), Spec{Domain: synth{}}); err == nil {
		t.Fatal("a spec without campaigns ran")
	}
}
