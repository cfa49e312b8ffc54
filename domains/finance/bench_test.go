package finance

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// BenchmarkEvaluateBaseline runs the full baseline evaluation (validation
// and test backtests, statistics and artifacts; data parsed once and
// cached) and reports backtests/s. Run with:
//
//	go test -run '^$' -bench EvaluateBaseline ./domains/finance/
func BenchmarkEvaluateBaseline(b *testing.B) {
	opts := evalOpts(b)
	d := New()
	cfg := d.Baseline()
	if _, err := d.Evaluate(context.Background(), cfg, 1, opts); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		if _, err := d.Evaluate(context.Background(), cfg, 1, opts); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "backtests/s")
}

// BenchmarkFinanceTable is a campaign in miniature per universe: a grid of
// every strategy's parameters (the trials), each scored on validation; for
// the best config of each strategy it prints validation and test Sharpe,
// the benchmark's, the excess (Sharpe difference ± its standard error) and
// the deflated Sharpe ratio given all the universe's trials. Run with:
//
//	go test -run '^$' -bench FinanceTable -benchtime 1x -v ./domains/finance/
func BenchmarkFinanceTable(b *testing.B) {
	opts := evalOpts(b)
	d := New()
	grids := map[string][]domains.Config{}
	add := func(u string, c domains.Config) { c["universe"] = u; grids[u] = append(grids[u], c) }
	for _, st := range []string{StratEqual, StratBuyHold} {
		add(UniverseDow, domains.Config{"strategy": st})
	}
	for _, v := range []float64{63, 126, 252} {
		add(UniverseDow, domains.Config{"strategy": StratInvVol, "volLookbackDays": v})
		for _, k := range []float64{5, 10} {
			for _, ls := range []bool{false, true} {
				add(UniverseDow, domains.Config{"strategy": StratLowVol, "volLookbackDays": v, "topK": k, "longShort": ls})
			}
		}
	}
	for _, k := range []float64{5, 10} {
		for _, ls := range []bool{false, true} {
			for _, l := range []float64{3, 6, 9, 12} {
				for _, sk := range []float64{0, 1} {
					add(UniverseDow, domains.Config{"strategy": StratMomentum, "lookbackMonths": l, "skipMonths": sk, "topK": k, "longShort": ls})
				}
			}
			for _, l := range []float64{1, 2, 3} {
				add(UniverseDow, domains.Config{"strategy": StratReversal, "lookbackMonths": l, "topK": k, "longShort": ls})
			}
		}
	}
	add(UniverseSP500, domains.Config{"strategy": StratBuyHold})
	for _, lev := range []float64{1, 1.5} {
		for _, sma := range []float64{50, 100, 150, 200, 250, 300} {
			add(UniverseSP500, domains.Config{"strategy": StratTrend, "smaDays": sma, "maxLeverage": lev})
		}
		for _, v := range []float64{20, 63, 126, 252} {
			for _, tv := range []float64{0.1, 0.15, 0.2} {
				add(UniverseSP500, domains.Config{"strategy": StratVolTarget, "volLookbackDays": v, "targetVol": tv, "maxLeverage": lev})
			}
		}
	}
	for range b.N {
		var out strings.Builder
		out.WriteString("| universe | strategy (best of its grid) | trials | val Sharpe | benchmark val | val excess ± SE | val DSR | test Sharpe | benchmark test | test excess ± SE | test PSR |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, u := range []string{UniverseDow, UniverseSP500} {
			type row struct {
				cfg domains.Config
				res domains.Result
			}
			best := map[string]row{}
			var sharpes []float64
			for _, c := range grids[u] {
				res, err := d.Evaluate(context.Background(), c, 1, opts)
				if err != nil {
					b.Fatalf("%v: %v", c, err)
				}
				sharpes = append(sharpes, res.Metric)
				st := c["strategy"].(string)
				if r, ok := best[st]; !ok || res.Metric > r.res.Metric {
					best[st] = row{c, res}
				}
			}
			n := len(sharpes)
			mean, v := meanOf(sharpes), 0.0
			for _, s := range sharpes {
				v += (s - mean) * (s - mean)
			}
			v /= float64(n - 1)
			names := slices.Sorted(maps.Keys(best))
			slices.SortStableFunc(names, func(a, c string) int { return cmp.Compare(best[c].res.Metric, best[a].res.Metric) })
			for _, st := range names {
				r := best[st]
				x := r.res.Values
				dsr := DeflatedSharpe(r.res.Metric, int(x["valDays"]), x["valSkew"], x["valKurtosis"], n, v)
				fmt.Fprintf(&out, "| %s | %s | %d | %.3f | %.3f | %+.3f ± %.3f | %.3f | %.3f | %.3f | %+.3f ± %.3f | %.3f |\n",
					u, short(r.cfg), n, r.res.Metric, x["valBenchSharpe"], x["valExcessSharpe"], x["valExcessSharpeSE"], dsr,
					r.res.TestMetric, x["testBenchSharpe"], x["testExcessSharpe"], x["testExcessSharpeSE"], x["testPSR"])
			}
			b.Logf("%s: %d trials, validation Sharpe sd across trials %.3f", u, n, math.Sqrt(v))
		}
		b.Log("\n" + out.String())
	}
}

// short renders the parameters a strategy uses.
func short(c domains.Config) string {
	st := c["strategy"].(string)
	var parts []string
	for _, k := range []string{"lookbackMonths", "skipMonths", "topK", "longShort", "volLookbackDays", "smaDays", "targetVol", "maxLeverage"} {
		if v, ok := c[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	if len(parts) == 0 {
		return st
	}
	return st + " " + strings.Join(parts, " ")
}
