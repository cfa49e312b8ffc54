package finance

import "math"

// Stats summarises the daily returns of one period.
type Stats struct {
	Sharpe      float64 // annualised: mean(r - rf/252) / sd(r - rf/252) * sqrt(252), sample sd
	CAGR        float64 // (prod(1+r))^(252/days) - 1
	MaxDrawdown float64 // largest fall from a running peak of equity, as a positive fraction
	Vol         float64 // sd(r) * sqrt(252)
	Turnover    float64 // sum of rebalance turnovers per year (days/252 years)
	Days        int     // number of daily returns
	Rebalances  int
}

// Sharpe is the annualised Sharpe ratio of daily returns r against a
// daily risk-free rate rfDaily: mean(r-rf)/sd(r-rf)*sqrt(252) with the
// sample (n-1) standard deviation. It is 0 with fewer than two returns or
// (numerically) zero dispersion.
func Sharpe(r []float64, rfDaily float64) float64 {
	if len(r) < 2 {
		return 0
	}
	mean := 0.0
	for _, x := range r {
		mean += x - rfDaily
	}
	mean /= float64(len(r))
	sd := sampleSD(r, mean+rfDaily)
	if sd < 1e-12 {
		return 0
	}
	return mean / sd * math.Sqrt(tradingDaysPerYear)
}

// CAGR is the compound annual growth rate of daily returns r, counting 252
// trading days per year; -1 if the equity is wiped out.
func CAGR(r []float64) float64 {
	if len(r) == 0 {
		return 0
	}
	g := 1.0
	for _, x := range r {
		g *= 1 + x
	}
	if g <= 0 {
		return -1
	}
	return math.Pow(g, tradingDaysPerYear/float64(len(r))) - 1
}

// MaxDrawdown is the largest peak-to-trough fall of the equity curve that
// starts at 1 and compounds r, as a positive fraction (0.25 = -25%).
func MaxDrawdown(r []float64) float64 {
	eq, peak, dd := 1.0, 1.0, 0.0
	for _, x := range r {
		eq *= 1 + x
		peak = math.Max(peak, eq)
		dd = math.Max(dd, 1-eq/peak)
	}
	return dd
}

func sampleSD(r []float64, mean float64) float64 {
	if len(r) < 2 {
		return 0
	}
	v := 0.0
	for _, x := range r {
		e := x - mean
		v += e * e
	}
	return math.Sqrt(v / float64(len(r)-1))
}

func meanOf(r []float64) float64 {
	if len(r) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range r {
		s += x
	}
	return s / float64(len(r))
}

// periodStats computes the statistics of returns ret[from+1 .. to] and of
// the rebalances made on days from .. to-1 (whose costs fall in the period).
func periodStats(r *run, from, to int, rfDaily float64) Stats {
	ret := r.ret[from+1 : to+1]
	st := Stats{
		Sharpe:      Sharpe(ret, rfDaily),
		CAGR:        CAGR(ret),
		MaxDrawdown: MaxDrawdown(ret),
		Vol:         sampleSD(ret, meanOf(ret)) * math.Sqrt(tradingDaysPerYear),
		Days:        len(ret),
	}
	sum := 0.0
	for _, rb := range r.rebals {
		if rb.day >= from && rb.day < to {
			sum += rb.turnover
			st.Rebalances++
		}
	}
	if st.Days > 0 {
		st.Turnover = sum / (float64(st.Days) / tradingDaysPerYear)
	}
	return st
}
