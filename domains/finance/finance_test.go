package finance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/noise"
)

func TestIdentity(t *testing.T) {
	d := New()
	if d.Name() != "finance" {
		t.Fatal(d.Name())
	}
	if m := d.Metric(); m.Name != "sharpe" || m.Direction != domains.Maximize {
		t.Fatalf("metric %+v", m)
	}
	if _, err := d.Validate(d.Baseline()); err != nil {
		t.Fatalf("baseline invalid: %v", err)
	}
	desc := d.Describe()
	for _, p := range d.Space() {
		if !strings.Contains(desc, p.Name) {
			t.Errorf("Describe does not mention %s", p.Name)
		}
	}
	for _, s := range []string{"1993-01-05", "2013-01-03", "no look-ahead", "ignored"} {
		if !strings.Contains(strings.ToLower(desc), strings.ToLower(s)) {
			t.Errorf("Describe does not mention %q", s)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	d := New()
	for _, tc := range []struct {
		cfg   domains.Config
		field string
	}{
		{domains.Config{"bogus": 1.0}, "bogus"},
		{domains.Config{"universe": "ftse"}, "universe"},
		{domains.Config{"strategy": StratTrend}, "strategy"},
		{domains.Config{"universe": UniverseSP500}, "strategy"}, // baseline strategy is a dow30 one
		{domains.Config{"universe": UniverseSP500, "strategy": StratMomentum}, "strategy"},
		{domains.Config{"strategy": StratMomentum, "lookbackMonths": 24.0, "skipMonths": 1.0}, "lookbackMonths"},
		{domains.Config{"lookbackMonths": 0.0}, "lookbackMonths"},
		{domains.Config{"lookbackMonths": 2.5}, "lookbackMonths"},
		{domains.Config{"skipMonths": 4.0}, "skipMonths"},
		{domains.Config{"topK": 16.0}, "topK"},
		{domains.Config{"longShort": "yes"}, "longShort"},
		{domains.Config{"volLookbackDays": 10.0}, "volLookbackDays"},
		{domains.Config{"smaDays": 301.0}, "smaDays"},
		{domains.Config{"targetVol": 0.5}, "targetVol"},
		{domains.Config{"maxLeverage": 3.0}, "maxLeverage"},
		{domains.Config{"costBps": -1.0}, "costBps"},
		{domains.Config{"riskFree": 0.1}, "riskFree"},
		{domains.Config{"rebalance": "weekly"}, "rebalance"},
	} {
		_, err := d.Validate(tc.cfg)
		var fe *domains.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%v: got %v, want a FieldError on %s", tc.cfg, err, tc.field)
		}
		if _, err := d.Evaluate(context.Background(), tc.cfg, 1, domains.EvalOptions{DataDir: t.TempDir()}); !errors.As(err, &fe) {
			t.Errorf("%v: Evaluate did not reject it: %v", tc.cfg, err)
		}
	}
	// Ignored parameters and the boundary of the momentum constraint pass.
	for _, c := range []domains.Config{
		{"strategy": StratMomentum, "lookbackMonths": 21.0, "skipMonths": 3.0},
		{"strategy": StratReversal, "lookbackMonths": 24.0, "skipMonths": 3.0},
		{"strategy": StratEqual, "smaDays": 300.0, "longShort": true},
		{"universe": UniverseSP500, "strategy": StratTrend, "topK": 1.0},
	} {
		if _, err := d.Validate(c); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
}

func TestMissingData(t *testing.T) {
	t.Setenv("HYPERSPACE_DATA_DIR", "")
	_, err := New().Evaluate(context.Background(), nil, 1, domains.EvalOptions{})
	if err == nil || !strings.Contains(err.Error(), "HYPERSPACE_DATA_DIR") {
		t.Fatalf("no data dir: %v", err)
	}
	_, err = New().Evaluate(context.Background(), nil, 1, domains.EvalOptions{DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "dowjones30") {
		t.Fatalf("empty data dir: %v", err)
	}
}

func TestDeterminism(t *testing.T) {
	opts := evalOpts(t)
	for _, c := range []domains.Config{nil, {"strategy": StratMomentum, "longShort": true}, {"universe": UniverseSP500, "strategy": StratVolTarget}} {
		a, err := New().Evaluate(context.Background(), c, 1, opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := New().Evaluate(context.Background(), c, 99, opts)
		if err != nil {
			t.Fatal(err)
		}
		if math.Float64bits(a.Metric) != math.Float64bits(b.Metric) || math.Float64bits(a.TestMetric) != math.Float64bits(b.TestMetric) {
			t.Fatalf("%v: metrics differ: %v/%v vs %v/%v", c, a.Metric, a.TestMetric, b.Metric, b.TestMetric)
		}
		for name, blob := range a.Artifacts {
			if !bytes.Equal(blob, b.Artifacts[name]) {
				t.Fatalf("%v: %s differs between runs", c, name)
			}
		}
		// The per-month items reproduce the validation Sharpe ratio (the
		// statistic the paired bootstrap resamples).
		if a.Items == nil || a.Items.Agg != domains.ItemsSharpe || a.Items.Len() < 12 || a.Items.Key != b.Items.Key {
			t.Fatalf("%v: items %+v", c, a.Items)
		}
		if got := noise.SharpeOfItems(a.Items); math.Abs(got-a.Metric) > 1e-9 {
			t.Errorf("%v: Sharpe of items %v, metric %v", c, got, a.Metric)
		}
	}
}

// TestSplits checks the fixed periods from the artifacts of real runs: they
// do not overlap, validation precedes test, and the warm-up precedes both.
func TestSplits(t *testing.T) {
	opts := evalOpts(t)
	for _, tc := range []struct {
		cfg                            domains.Config
		valFrom, valTo, testTo         string // closes: period start (equity 1) and end
		valFirstReturn, testFirstRetrn string
		valDays, testDays              int
	}{
		{nil, "1993-01-04", "1997-01-02", "2001-01-02", "1993-01-05", "1997-01-03", 1011, 1009},
		{domains.Config{"universe": UniverseSP500, "strategy": StratTrend}, "2002-01-02", "2013-01-02", "2020-04-17", "2002-01-03", "2013-01-03", 2769, 1835},
	} {
		res, err := New().Evaluate(context.Background(), tc.cfg, 1, opts)
		if err != nil {
			t.Fatal(err)
		}
		var ec struct {
			Validation, Test equityPeriod
		}
		if err := json.Unmarshal(res.Artifacts["equity_curve.json"], &ec); err != nil {
			t.Fatal(err)
		}
		v, te := ec.Validation, ec.Test
		if v.Start != tc.valFrom || v.End != tc.valTo || te.Start != tc.valTo || te.End != tc.testTo {
			t.Errorf("%v: validation %s..%s test %s..%s", tc.cfg, v.Start, v.End, te.Start, te.End)
		}
		// The period start close carries equity 1 and earns nothing inside
		// the period; the first return days do not overlap.
		if v.Dates[1] != tc.valFirstReturn || te.Dates[1] != tc.testFirstRetrn || v.Equity[0] != 1 || te.Equity[0] != 1 {
			t.Errorf("%v: first return days %s, %s", tc.cfg, v.Dates[1], te.Dates[1])
		}
		if int(res.Values["valDays"]) != tc.valDays || int(res.Values["testDays"]) != tc.testDays ||
			len(v.Dates)-1 != tc.valDays || len(te.Dates)-1 != tc.testDays {
			t.Errorf("%v: %v validation and %v test days", tc.cfg, res.Values["valDays"], res.Values["testDays"])
		}
		if !(v.Dates[len(v.Dates)-1] < te.Dates[1]) {
			t.Errorf("%v: validation and test overlap", tc.cfg)
		}
		if res.Metric != res.Values["valSharpe"] || res.TestMetric != res.Values["testSharpe"] {
			t.Errorf("metric fields disagree: %+v", res)
		}
	}
	// The warm-up covers the longest lookback of each universe.
	for _, c := range []domains.Config{
		{"strategy": StratMomentum, "lookbackMonths": 24.0, "skipMonths": 0.0},
		{"strategy": StratMomentum, "lookbackMonths": 21.0, "skipMonths": 3.0},
		{"strategy": StratLowVol, "volLookbackDays": 252.0},
		{"universe": UniverseSP500, "strategy": StratTrend, "smaDays": 300.0},
		{"universe": UniverseSP500, "strategy": StratVolTarget, "volLookbackDays": 252.0},
	} {
		if _, err := New().Evaluate(context.Background(), c, 1, opts); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
	// The splits themselves are fixed constants, in order.
	for u, sp := range splits {
		if !sp.valStart.Before(sp.testStart) {
			t.Errorf("%s: validation does not precede test", u)
		}
	}
	if d, sp := date("1991-01-02"), splits[UniverseDow]; sp.valStart.Sub(d) < 700*24*time.Hour {
		t.Error("dow30 warm-up shorter than two years")
	}
}

func TestEvaluateAllStrategies(t *testing.T) {
	opts := evalOpts(t)
	for _, c := range strategyConfigs() {
		res, err := New().Evaluate(context.Background(), c, 1, opts)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range res.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%v: %s = %v", c, k, v)
			}
		}
		if res.Metric == 0 || res.Values["valVol"] <= 0 || res.Values["valTurnover"] <= 0 {
			t.Errorf("%v: degenerate result %v", c, res.Values)
		}
		var w struct {
			Symbols    []string
			Rebalances []weightsRow
		}
		if err := json.Unmarshal(res.Artifacts["weights.json"], &w); err != nil {
			t.Fatal(err)
		}
		if len(w.Rebalances) != int(res.Values["rebalances"]) || w.Rebalances[0].Period != "validation" || w.Rebalances[len(w.Rebalances)-1].Period != "test" {
			t.Errorf("%v: weights.json has %d rebalances", c, len(w.Rebalances))
		}
		if r := w.Rebalances[0]; r.SignalClose >= r.Date || len(r.Weights) != len(w.Symbols) {
			t.Errorf("%v: first rebalance %+v", c, r)
		}
	}
}

// TestSmallSlice evaluates on the first three years of the Dow only.
func TestSmallSlice(t *testing.T) {
	full, err := LoadDow(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &Panel{Dates: full.Dates[:760], Symbols: full.Symbols, Close: full.Close[:760]}
	sp := split{valStart: month(1992, time.January), testStart: month(1993, time.January)}
	var fracs []float64
	res, err := evaluatePanel(context.Background(), p, specOf(t, domains.Config{"strategy": StratMomentum, "lookbackMonths": 6.0}), sp,
		func(pr domains.Progress) { fracs = append(fracs, pr.Fraction) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Values["valDays"] < 250 || res.Values["testDays"] < 200 || res.Metric == 0 || len(res.Curve) != 13 {
		t.Fatalf("small slice: %v, curve %d points", res.Values, len(res.Curve))
	}
	if len(fracs) < 2 || fracs[len(fracs)-1] != 1 {
		t.Fatalf("progress %v", fracs)
	}
	for i := 1; i < len(fracs); i++ {
		if fracs[i] < fracs[i-1] {
			t.Fatalf("progress not monotone: %v", fracs)
		}
	}
}

func TestCancelled(t *testing.T) {
	opts := evalOpts(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New().Evaluate(ctx, nil, 1, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled evaluation: %v", err)
	}
}

// TestBaselineReference pins the numbers quoted in Baseline and Describe.
func TestBaselineReference(t *testing.T) {
	res, err := New().Evaluate(context.Background(), nil, 1, evalOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	v := res.Values
	for name, want := range map[string]float64{"valSharpe": 1.566, "testSharpe": 0.826, "valCAGR": 0.231, "valMaxDrawdown": 0.079, "testCAGR": 0.196, "testMaxDrawdown": 0.184} {
		if math.Abs(v[name]-want) > 0.0006 {
			t.Errorf("%s = %.4f, want %.3f (update the docs if this change is intended)", name, v[name], want)
		}
	}
}
