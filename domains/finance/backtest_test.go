package finance

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// toyPanel: two assets, hand-checkable. Rebalances (month starts) on
// 2001-02-01 (index 1) and 2001-03-01 (index 3).
func toyPanel() *Panel {
	return &Panel{
		Symbols: []string{"A", "B"},
		Dates:   []time.Time{date("2001-01-31"), date("2001-02-01"), date("2001-02-02"), date("2001-03-01"), date("2001-03-02"), date("2001-03-05")},
		Close:   [][]float64{{100, 100}, {100, 100}, {110, 90}, {121, 90}, {121, 99}, {121, 99}},
	}
}

var toySplit = split{valStart: month(2001, time.February), testStart: month(2001, time.March)}

func TestToyBacktestByHand(t *testing.T) {
	const c = 0.001 // 10 bps
	s := specOf(t, domains.Config{"strategy": StratEqual, "costBps": 10.0, "riskFree": 0.0})
	r, err := backtest(context.Background(), toyPanel(), s, toySplit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.start != 1 || r.testStart != 3 || r.end != 5 || len(r.rebals) != 2 {
		t.Fatalf("start %d testStart %d end %d rebalances %d", r.start, r.testStart, r.end, len(r.rebals))
	}
	// Rebalance 1 buys 50/50 from cash: turnover 1, cost c, paid in day 2's
	// return (gross 0.5*10% + 0.5*-10% = 0).
	// Day 3: A has gone 100 -> 121 on half the money, B 100 -> 90 on the
	// other half: equity 0.605 + 0.45 = 1.055 (times 1-c, as the day before).
	// Rebalancing back to halves from 0.605/1.055 and 0.45/1.055 trades t2,
	// paid in day 4's return (gross 0.5*0% + 0.5*10% = 5%).
	t2 := 2 * (0.605/1.055 - 0.5)
	want := []float64{0, 0, -c, 0.055, (1-c*t2)*1.05 - 1, 0}
	for d := range want {
		if !near(r.ret[d], want[d], 1e-14) {
			t.Errorf("ret[%d] = %.17g, want %.17g", d, r.ret[d], want[d])
		}
	}
	if r.rebals[0].turnover != 1 || !near(r.rebals[1].turnover, t2, 1e-14) {
		t.Errorf("turnovers %v, %v; want 1, %v", r.rebals[0].turnover, r.rebals[1].turnover, t2)
	}
	// Validation holds days 2..3 with one rebalance of turnover 1: 126/yr.
	val := periodStats(r, r.start, r.testStart, 0)
	if val.Days != 2 || val.Rebalances != 1 || !near(val.Turnover, 126, 1e-12) {
		t.Errorf("val stats %+v", val)
	}
}

// TestCostsExact: with costs, each day after a rebalance earns exactly
// (1 - c*turnover)(1 + gross) - 1 and every other day is unchanged.
func TestCostsExact(t *testing.T) {
	p := synthPanel(6, "2000-01-03", "2003-12-31", 1)
	sp := split{valStart: month(2002, time.January), testStart: month(2003, time.January)}
	for _, st := range []string{StratEqual, StratMomentum, StratLowVol} {
		cfg := domains.Config{"strategy": st, "topK": 2.0, "longShort": true, "lookbackMonths": 3.0, "riskFree": 0.03}
		cfg["costBps"] = 0.0
		r0, err := backtest(context.Background(), p, specOf(t, cfg), sp, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg["costBps"] = 25.0
		r1, err := backtest(context.Background(), p, specOf(t, cfg), sp, nil)
		if err != nil {
			t.Fatal(err)
		}
		after := map[int]float64{}
		for k, rb := range r1.rebals {
			if !slices.Equal(rb.weights, r0.rebals[k].weights) || !near(rb.turnover, r0.rebals[k].turnover, 1e-12) {
				t.Fatalf("%s: costs changed the weights or turnover at rebalance %d", st, k)
			}
			after[rb.day+1] = 0.0025 * rb.turnover
		}
		for d := r1.start + 1; d <= r1.end; d++ {
			want := (1-after[d])*(1+r0.ret[d]) - 1
			if !near(r1.ret[d], want, 1e-12) {
				t.Fatalf("%s: day %d return %v, want %v", st, d, r1.ret[d], want)
			}
		}
		if v0, v1 := periodStats(r0, r0.start, r0.testStart, 0), periodStats(r1, r1.start, r1.testStart, 0); v1.CAGR >= v0.CAGR {
			t.Fatalf("%s: costs did not lower CAGR (%v vs %v)", st, v1.CAGR, v0.CAGR)
		}
	}
}

// strategyConfigs covers every strategy, with both legs for the rankers.
func strategyConfigs() []domains.Config {
	return []domains.Config{
		{"strategy": StratEqual},
		{"strategy": StratInvVol, "volLookbackDays": 40.0},
		{"strategy": StratMomentum, "lookbackMonths": 6.0, "skipMonths": 1.0, "topK": 2.0, "longShort": true},
		{"strategy": StratReversal, "lookbackMonths": 1.0, "topK": 2.0, "longShort": true},
		{"strategy": StratLowVol, "volLookbackDays": 30.0, "topK": 2.0, "longShort": true},
		{"universe": UniverseSP500, "strategy": StratTrend, "smaDays": 50.0, "maxLeverage": 1.5},
		{"universe": UniverseSP500, "strategy": StratVolTarget, "volLookbackDays": 30.0, "targetVol": 0.1, "maxLeverage": 2.0},
	}
}

// perturbFrom returns a copy of p whose closes on days >= from are
// multiplied by independent random factors in [0.5, 1.5).
func perturbFrom(p *Panel, from int, rng *rand.Rand) *Panel {
	q := &Panel{Dates: p.Dates, Symbols: p.Symbols, Close: slices.Clone(p.Close)}
	for t := from; t < len(q.Close); t++ {
		row := slices.Clone(q.Close[t])
		for i := range row {
			row[i] *= 0.5 + rng.Float64()
		}
		q.Close[t] = row
	}
	return q
}

// checkNoLookAhead perturbs every price from each rebalance day on (which
// includes everything after it) and requires the weights of that and all
// earlier rebalances to stay bit-identical.
func checkNoLookAhead(t *testing.T, p *Panel, s spec, sp split) {
	t.Helper()
	base, err := backtest(context.Background(), p, s, sp, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, uint64(len(p.Symbols))))
	changedLater := false
	for k, rb := range base.rebals {
		got, err := backtest(context.Background(), perturbFrom(p, rb.day, rng), s, sp, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j <= k; j++ {
			if !slices.Equal(got.rebals[j].weights, base.rebals[j].weights) {
				t.Fatalf("%s: weights of %s changed when prices from %s on were perturbed: %v vs %v", s.strategy,
					p.Dates[base.rebals[j].day].Format(dateLayout), p.Dates[rb.day].Format(dateLayout), got.rebals[j].weights, base.rebals[j].weights)
			}
		}
		for j := k + 1; j < len(base.rebals); j++ {
			changedLater = changedLater || !slices.Equal(got.rebals[j].weights, base.rebals[j].weights)
		}
	}
	if s.strategy != StratEqual && !changedLater {
		t.Errorf("%s: perturbing prices never changed a later rebalance; the test is not sensitive", s.strategy)
	}
}

func TestNoLookAheadSynthetic(t *testing.T) {
	sp := split{valStart: month(2001, time.July), testStart: month(2002, time.July)}
	for _, c := range strategyConfigs() {
		s := specOf(t, c)
		n := 6
		if s.universe == UniverseSP500 {
			n = 1
		}
		t.Run(s.strategy, func(t *testing.T) { checkNoLookAhead(t, synthPanel(n, "2000-01-03", "2003-03-31", 3), s, sp) })
	}
}

func TestNoLookAheadRealData(t *testing.T) {
	dir := testDataDir(t)
	dow, err := LoadDow(dir)
	if err != nil {
		t.Fatal(err)
	}
	spx, err := LoadSP500(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range strategyConfigs() {
		s := specOf(t, c)
		p := dow
		if s.universe == UniverseSP500 {
			// The last five years keep the test fast; the rule is the same.
			p = &Panel{Dates: spx.Dates[3800:], Symbols: spx.Symbols, Close: spx.Close[3800:]}
		}
		sp := splits[s.universe]
		if s.universe == UniverseSP500 {
			sp = split{valStart: month(2017, time.January), testStart: month(2019, time.January)}
		}
		t.Run(s.strategy, func(t *testing.T) { checkNoLookAhead(t, p, s, sp) })
	}
}

func TestNotEnoughHistory(t *testing.T) {
	p := synthPanel(4, "2000-01-03", "2001-12-31", 1)
	sp := split{valStart: month(2000, time.June), testStart: month(2001, time.January)}
	for _, c := range []domains.Config{
		{"strategy": StratMomentum, "lookbackMonths": 6.0, "skipMonths": 0.0},
		{"strategy": StratLowVol, "volLookbackDays": 200.0},
		{"universe": UniverseSP500, "strategy": StratTrend, "smaDays": 300.0},
	} {
		if _, err := backtest(context.Background(), p, specOf(t, c), sp, nil); err == nil {
			t.Errorf("%v: no error for a lookback longer than the warm-up", c)
		}
	}
	// Even equal weight needs one close before the first rebalance.
	if _, err := backtest(context.Background(), p, specOf(t, nil), split{valStart: month(2000, time.January), testStart: month(2001, time.January)}, nil); err == nil {
		t.Error("no error for a rebalance on the first day of data")
	}
	// Five months of warm-up suffice for 5-month momentum.
	if _, err := backtest(context.Background(), p, specOf(t, domains.Config{"strategy": StratMomentum, "lookbackMonths": 5.0, "skipMonths": 0.0}), sp, nil); err != nil {
		t.Error(err)
	}
}

func TestRankWeights(t *testing.T) {
	s := spec{topK: 2, longShort: true}
	w := make([]float64, 5)
	s.rankWeights([]float64{0.3, -0.1, 0.3, 0.5, -0.2}, true, w)
	// Highest: 0.5 (3), then the 0.3 tie in symbol order (0); lowest two: 4, 1.
	if want := []float64{0.5, -0.5, 0, 0.5, -0.5}; !slices.Equal(w, want) {
		t.Fatalf("weights %v, want %v", w, want)
	}
}

func TestRetVol(t *testing.T) {
	hist := [][]float64{{100}, {101}, {99.99}, {100.9899}}
	// returns 0.01, -0.01, 0.01: mean 1/300, sample variance from deviations
	// 2/300, -4/300, 2/300.
	want := math.Sqrt((4.0 + 16 + 4) / 90000 / 2)
	if got := retVol(hist, 0, 3); !near(got, want, 1e-9) {
		t.Fatalf("retVol = %v, want %v", got, want)
	}
}
