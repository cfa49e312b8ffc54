package fraud

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// fakeDomain is a deterministic cheap domain: metric = x·seed.
type fakeDomain struct{ runs int }

func (*fakeDomain) Name() string { return "fake" }
func (*fakeDomain) Metric() domains.Metric {
	return domains.Metric{Name: "score", Direction: domains.Maximize}
}
func (*fakeDomain) Space() domains.Space {
	return domains.Space{{Name: "x", Kind: domains.Float, Min: 0, Max: 10}}
}
func (d *fakeDomain) Baseline() domains.Config { return domains.Config{"x": 1.0} }
func (d *fakeDomain) Validate(c domains.Config) (domains.Config, error) {
	return d.Space().Normalize(c, d.Baseline())
}
func (d *fakeDomain) Evaluate(ctx context.Context, c domains.Config, seed int64, _ domains.EvalOptions) (domains.Result, error) {
	d.runs++
	if c.Float("x") == 9 {
		return domains.Result{}, errors.New("broken")
	}
	return domains.Result{Metric: math.Sqrt(c.Float("x") * float64(seed))}, nil
}
func (*fakeDomain) Describe() string { return "fake" }

func TestRefereeFull(t *testing.T) {
	d := &fakeDomain{}
	ctx := context.Background()
	truth := math.Sqrt(3 * 7)
	cases := []struct {
		def, chal float64
		winner    Party
		why       string
	}{
		{truth, truth + 1, Defender, "the defender's claim"},
		{truth + 1e-15, truth, Challenger, "defender claimed"},
		{math.Nextafter(truth, 0), truth + 1, Challenger, "wrong too"},
		{math.NaN(), truth, Challenger, "defender claimed"},
	}
	for _, c := range cases {
		v, err := RefereeFull(ctx, d, domains.Config{"x": 3.0}, 7, c.def, c.chal, domains.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v.Winner != c.winner || v.Loser != c.winner.Other() || v.Stage != StageFull || !strings.Contains(v.Reason, c.why) {
			t.Fatalf("claims %v/%v: %+v", c.def, c.chal, v)
		}
	}
	if d.runs != len(cases) {
		t.Fatalf("%d re-runs for %d cases", d.runs, len(cases))
	}
	if _, err := RefereeFull(ctx, d, domains.Config{"x": 11.0}, 7, 1, 2, domains.EvalOptions{}); err == nil {
		t.Fatal("an invalid config was judged")
	}
	if _, err := RefereeFull(ctx, d, domains.Config{"x": 9.0}, 7, 1, 2, domains.EvalOptions{}); err == nil {
		t.Fatal("a failed re-run was judged")
	}
}
