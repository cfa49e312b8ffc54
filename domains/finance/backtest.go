package finance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Universe and strategy names.
const (
	UniverseDow   = "dow30"
	UniverseSP500 = "sp500"

	StratEqual     = "equal"
	StratInvVol    = "invvol"
	StratMomentum  = "momentum"
	StratReversal  = "reversal"
	StratLowVol    = "lowvol"
	StratTrend     = "trend"
	StratVolTarget = "voltarget"
	StratBuyHold   = "buyhold"
)

// The strategies of a basket (more than one price column: cross-sectional)
// and of a single series (market timing against cash). Buy and hold is in
// both: it is the single series' benchmark and a basket's static
// alternative to its benchmark, equal weight rebalanced monthly.
var (
	basketStrategies = []string{StratEqual, StratInvVol, StratMomentum, StratReversal, StratLowVol, StratBuyHold}
	timingStrategies = []string{StratTrend, StratVolTarget, StratBuyHold}
)

// strategiesFor lists the strategies a data set of n price columns supports.
func strategiesFor(n int) []string {
	if n > 1 {
		return basketStrategies
	}
	return timingStrategies
}

// BenchmarkFor is the strategy every result on a data set of n price
// columns is compared with: equal weight (rebalanced monthly) for a basket,
// buy and hold for a single series.
func BenchmarkFor(n int) string {
	if n > 1 {
		return StratEqual
	}
	return StratBuyHold
}

// maxMomentumMonths bounds lookbackMonths+skipMonths for momentum: the Dow
// warm-up (1991-1992) holds exactly 24 months of closes before the first
// validation rebalance.
const maxMomentumMonths = 24

// tradingDaysPerYear annualises daily statistics.
const tradingDaysPerYear = 252

// spec is a decoded, validated config.
type spec struct {
	universe, strategy string
	lookback, skip     int // months
	topK               int
	longShort          bool
	volDays, smaDays   int
	targetVol, maxLev  float64
	costBps, riskFree  float64
}

// benchmark is s with the benchmark strategy of a data set of n columns
// (the costs and risk-free rate stay).
func (s spec) benchmark(n int) spec {
	b := s
	b.strategy = BenchmarkFor(n)
	return b
}

// split fixes the walk-forward periods of a data set by the first holding
// month of validation and of test; the test period runs to the end of the
// data and everything before validation is warm-up. Each data set gives its
// own (see Dataset).
type split struct {
	valStart, testStart time.Time // first day of a calendar month
}

func month(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }

// monthStarts returns the index of the first trading day of every calendar
// month in the panel (index 0 starts the first month).
func monthStarts(dates []time.Time) []int {
	var ms []int
	for t := range dates {
		if t == 0 || dates[t].Month() != dates[t-1].Month() || dates[t].Year() != dates[t-1].Year() {
			ms = append(ms, t)
		}
	}
	return ms
}

// rebalance is one trade of the backtest.
type rebalance struct {
	day      int       // panel index of the rebalance (trade) day
	weights  []float64 // target weights set at that day's close
	turnover float64   // sum |w_new - w_drifted|
}

// run is a completed backtest. Returns are indexed like the panel: ret[t]
// is the portfolio return from the close of t-1 to the close of t, net of
// the costs of a rebalance made at the close of t-1; it is set for
// start < t <= end. equity[t] is the value at the close of t (before that
// day's rebalancing costs), with equity[start] = 1.
type run struct {
	start, testStart, end int // panel indices
	ret, equity           []float64
	rebals                []rebalance
	busted                bool // equity reached zero; later returns are 0
}

// backtest simulates s on p from the first trading day of the validation
// period to the last day of the data.
//
// Timing rule (no look-ahead): rebalances happen on the first trading day
// of each month, day d. The strategy sees only p.Close[:d], i.e. closes up
// to and including the previous close d-1; the trade executes at the close
// of d, and the new weights earn returns from day d+1 on. Day d's own
// return is earned by the previous (drifted) weights. Costs of
// costBps/1e4 * sum|w_new - w_drifted| are taken out of equity at the
// trade, so they show up in the return of day d+1:
// ret[d+1] = (1 - cost)(1 + gross[d+1]) - 1. Uninvested equity (1 - sum w,
// including short proceeds) earns riskFree/252 per trading day.
func backtest(ctx context.Context, p *Panel, s spec, sp split, progress func(done, total, day int)) (*run, error) {
	ms := monthStarts(p.Dates)
	first, testFirst := -1, -1
	for k, d := range ms {
		if first < 0 && !p.Dates[d].Before(sp.valStart) {
			first = k
		}
		if testFirst < 0 && !p.Dates[d].Before(sp.testStart) {
			testFirst = k
		}
	}
	end := len(p.Dates) - 1
	if first < 0 || testFirst <= first || ms[testFirst] >= end {
		return nil, fmt.Errorf("data (%s to %s) do not cover the validation start %s and test start %s",
			p.Dates[0].Format(dateLayout), p.Dates[end].Format(dateLayout), sp.valStart.Format("2006-01"), sp.testStart.Format("2006-01"))
	}
	if err := s.checkHistory(ms, first); err != nil {
		return nil, err
	}

	n := len(p.Symbols)
	start := ms[first]
	r := &run{start: start, testStart: ms[testFirst], end: end,
		ret: make([]float64, len(p.Dates)), equity: make([]float64, len(p.Dates))}
	rfd := s.riskFree / tradingDaysPerYear
	cost := s.costBps / 1e4
	hold := make([]float64, n) // dollar value held in each asset
	cash, eq := 1.0, 1.0
	r.equity[start] = 1
	k := first
	total := len(ms) - first
	for t := start; t <= end; t++ {
		if t > start {
			if r.busted {
				continue
			}
			prev, cur := p.Close[t-1], p.Close[t]
			v := cash * (1 + rfd)
			cash = v
			for i := range hold {
				if hold[i] != 0 {
					hold[i] *= cur[i] / prev[i]
					v += hold[i]
				}
			}
			ret := v/eq - 1
			if v <= 0 {
				ret, v = -1, 0
				r.busted = true
			}
			r.ret[t], r.equity[t], eq = ret, v, v
		}
		if k >= len(ms) || t != ms[k] {
			continue
		}
		k++
		if t == end || r.busted || (s.strategy == StratBuyHold && len(r.rebals) > 0) {
			continue // buy and hold trades once, at the first rebalance
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w := make([]float64, n)
		s.targetWeights(p.Close[:t], ms[:k], w)
		turnover, sumW := 0.0, 0.0
		for i := range w {
			turnover += math.Abs(w[i] - hold[i]/eq)
			sumW += w[i]
		}
		post := eq * (1 - cost*turnover)
		for i := range w {
			hold[i] = w[i] * post
		}
		cash = post - sumW*post
		// The day's return reference stays eq (pre-cost), so the cost
		// lands in the next day's return.
		r.rebals = append(r.rebals, rebalance{day: t, weights: w, turnover: turnover})
		if progress != nil {
			progress(k-first, total, t)
		}
	}
	return r, nil
}

// checkHistory reports whether the first rebalance (month index first) has
// the closes the strategy needs.
func (s spec) checkHistory(ms []int, first int) error {
	d := ms[first]
	months, closes := 0, 1 // every rebalance needs a previous close
	switch s.strategy {
	case StratMomentum:
		months = s.lookback + s.skip
	case StratReversal:
		months = s.lookback
	case StratLowVol, StratInvVol, StratVolTarget:
		closes = s.volDays + 1
	case StratTrend:
		closes = s.smaDays
	}
	if first < months || d < closes {
		return errors.New("not enough history before the first validation rebalance for the lookback")
	}
	return nil
}

// targetWeights sets w (zeroed, one per symbol) to the weights of a
// rebalance whose strategy may see only hist (closes up to and including
// the previous close) and ms (first-day indices of the months so far; the
// last one is the rebalance day itself, len(hist)).
func (s spec) targetWeights(hist [][]float64, ms []int, w []float64) {
	n := len(w)
	switch s.strategy {
	case StratBuyHold:
		for i := range w {
			w[i] = 1 / float64(n) // fully invested, then left to drift
		}
	case StratEqual:
		for i := range w {
			w[i] = 1 / float64(n)
		}
	case StratInvVol:
		sum := 0.0
		for i := range w {
			w[i] = 1 / math.Max(retVol(hist, i, s.volDays), 1e-12)
			sum += w[i]
		}
		for i := range w {
			w[i] /= sum
		}
	case StratMomentum, StratReversal:
		m := len(ms) - 1
		skip := s.skip
		if s.strategy == StratReversal {
			skip = 0
		}
		a1, a0 := anchor(ms, m-skip), anchor(ms, m-skip-s.lookback)
		score := make([]float64, n)
		for i := range score {
			score[i] = hist[a1][i]/hist[a0][i] - 1
		}
		// Momentum buys the winners, reversal the losers.
		s.rankWeights(score, s.strategy == StratMomentum, w)
	case StratLowVol:
		score := make([]float64, n)
		for i := range score {
			score[i] = retVol(hist, i, s.volDays)
		}
		s.rankWeights(score, false, w)
	case StratTrend:
		d := len(hist)
		sma := 0.0
		for t := d - s.smaDays; t < d; t++ {
			sma += hist[t][0]
		}
		sma /= float64(s.smaDays)
		if hist[d-1][0] > sma {
			w[0] = s.maxLev
		}
	case StratVolTarget:
		vol := retVol(hist, 0, s.volDays) * math.Sqrt(tradingDaysPerYear)
		w[0] = s.maxLev
		if vol > 0 {
			w[0] = math.Min(s.maxLev, s.targetVol/vol)
		}
	default:
		panic("finance: unknown strategy " + s.strategy)
	}
}

// anchor is the panel index of the last close before month k: the day
// before its first trading day. For the first month of the data it is the
// first close (for the Dow file that is also the value the file gives for
// 1990-12-31).
func anchor(ms []int, k int) int { return max(ms[k]-1, 0) }

// rankWeights puts 1/topK on each of the topK best names (highest score if
// high, else lowest) and, when longShort, -1/topK on each of the topK
// worst. Ties keep symbol order.
func (s spec) rankWeights(score []float64, high bool, w []float64) {
	idx := make([]int, len(score))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if high {
			return score[idx[a]] > score[idx[b]]
		}
		return score[idx[a]] < score[idx[b]]
	})
	k := min(s.topK, len(idx))
	for _, i := range idx[:k] {
		w[i] = 1 / float64(k)
	}
	if s.longShort {
		k = min(k, len(idx)-k)
		for _, i := range idx[len(idx)-k:] {
			w[i] = -1 / float64(k)
		}
	}
}

// retVol is the sample standard deviation of the last days daily simple
// returns of symbol i in hist (the returns ending at the last close).
func retVol(hist [][]float64, i, days int) float64 {
	d := len(hist)
	mean := 0.0
	for t := d - days; t < d; t++ {
		mean += hist[t][i]/hist[t-1][i] - 1
	}
	mean /= float64(days)
	v := 0.0
	for t := d - days; t < d; t++ {
		e := hist[t][i]/hist[t-1][i] - 1 - mean
		v += e * e
	}
	return math.Sqrt(v / float64(days-1))
}
