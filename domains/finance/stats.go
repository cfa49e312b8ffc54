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

// MonthlySharpe is the annualised Sharpe ratio of monthly returns:
// mean(m - rf/12) / sd(m - rf/12) * sqrt(12), sample sd, where m are the
// returns between consecutive month starts (the original system reports
// this one). 0 with fewer than two months.
func MonthlySharpe(monthly []float64, riskFree float64) float64 {
	if len(monthly) < 2 {
		return 0
	}
	rfm := riskFree / 12
	mean := meanOf(monthly) - rfm
	sd := sampleSD(monthly, mean+rfm)
	if sd < 1e-12 {
		return 0
	}
	return mean / sd * math.Sqrt(12)
}

// Moments returns the sample skewness and (non-excess) kurtosis of r: 3
// for a normal distribution. Both are 0 when r has no dispersion.
func Moments(r []float64) (skew, kurt float64) {
	n := float64(len(r))
	if n < 2 {
		return 0, 0
	}
	mean := meanOf(r)
	var m2, m3, m4 float64
	for _, x := range r {
		e := x - mean
		e2 := e * e
		m2 += e2
		m3 += e2 * e
		m4 += e2 * e2
	}
	m2, m3, m4 = m2/n, m3/n, m4/n
	if m2 < 1e-300 {
		return 0, 0
	}
	return m3 / math.Pow(m2, 1.5), m4 / (m2 * m2)
}

// normCDF is the standard normal distribution function.
func normCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// normQuantile is its inverse, for 0 < p < 1.
func normQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }

// eulerGamma is the Euler-Mascheroni constant.
const eulerGamma = 0.5772156649015329

// ProbabilisticSharpe is the probability that the true Sharpe ratio
// exceeds benchmark given an observed one (Bailey and Lopez de Prado 2012):
// Phi((SR - SR*) sqrt(T-1) / sqrt(1 - skew SR + (kurt-1)/4 SR^2)), with both
// ratios annualised from days daily returns (they are de-annualised
// inside) and skew and kurt those of the daily returns (kurt 3 = normal).
func ProbabilisticSharpe(sr, benchmark float64, days int, skew, kurt float64) float64 {
	if days < 2 {
		return 0
	}
	a := math.Sqrt(tradingDaysPerYear)
	s, b := sr/a, benchmark/a
	den := 1 - skew*s + (kurt-1)/4*s*s
	if den <= 0 {
		den = 1e-12
	}
	return normCDF((s - b) * math.Sqrt(float64(days-1)) / math.Sqrt(den))
}

// ExpectedMaxSharpe is the Sharpe ratio the best of trials independent
// strategies with no skill would show when their observed (annualised)
// Sharpe ratios have variance trialVar: sqrt(V) ((1-g) Z(1-1/N) + g
// Z(1-1/(N e))), g the Euler-Mascheroni constant (Bailey and Lopez de
// Prado 2014). 0 for a single trial.
func ExpectedMaxSharpe(trials int, trialVar float64) float64 {
	if trials <= 1 || trialVar <= 0 {
		return 0
	}
	n := float64(trials)
	return math.Sqrt(trialVar) * ((1-eulerGamma)*normQuantile(1-1/n) + eulerGamma*normQuantile(1-1/(n*math.E)))
}

// DeflatedSharpe is the deflated Sharpe ratio (Bailey and Lopez de Prado
// 2014): the probabilistic Sharpe ratio of the observed annualised sr
// against ExpectedMaxSharpe(trials, trialVar), i.e. the probability that
// the strategy's skill is real after the campaign tried trials configs
// whose Sharpe ratios varied by trialVar. Above 0.95 is the usual bar.
func DeflatedSharpe(sr float64, days int, skew, kurt float64, trials int, trialVar float64) float64 {
	return ProbabilisticSharpe(sr, ExpectedMaxSharpe(trials, trialVar), days, skew, kurt)
}

// Excess compares daily returns r with a benchmark's b over the same days.
type Excess struct {
	// SharpeDiff is Sharpe(r) - Sharpe(b), annualised; SharpeDiffSE its
	// standard error under the Jobson-Korkie test with Memmel's correction
	// (iid returns, correlation rho between the two):
	// sqrt((2 - 2 rho + (SRa^2 + SRb^2 - 2 SRa SRb rho^2)/2) / T), per-day
	// ratios, annualised.
	SharpeDiff, SharpeDiffSE float64
	// IR is the information ratio mean(r-b)/sd(r-b)*sqrt(252) and IRSE its
	// standard error, sqrt((1 + IR_d^2/2) / T) annualised (Lo 2002, iid).
	IR, IRSE float64
	// Active is the annualised mean excess return, mean(r-b)*252.
	Active float64
}

// ExcessOver computes Excess for r against b (equal lengths) with the
// daily risk-free rate rfDaily used by both Sharpe ratios.
func ExcessOver(r, b []float64, rfDaily float64) Excess {
	n := min(len(r), len(b))
	if n < 2 {
		return Excess{}
	}
	r, b = r[:n], b[:n]
	a := math.Sqrt(tradingDaysPerYear)
	sa, sb := Sharpe(r, rfDaily)/a, Sharpe(b, rfDaily)/a
	ma, mb := meanOf(r), meanOf(b)
	var va, vb, cov float64
	d := make([]float64, n)
	for t := range r {
		ea, eb := r[t]-ma, b[t]-mb
		va += ea * ea
		vb += eb * eb
		cov += ea * eb
		d[t] = r[t] - b[t]
	}
	rho := 0.0
	if va > 0 && vb > 0 {
		rho = cov / math.Sqrt(va*vb)
	}
	T := float64(n)
	x := Excess{SharpeDiff: (sa - sb) * a, Active: meanOf(d) * tradingDaysPerYear}
	if v := (2 - 2*rho + (sa*sa+sb*sb-2*sa*sb*rho*rho)/2) / T; v > 0 {
		x.SharpeDiffSE = math.Sqrt(v) * a
	}
	if sd := sampleSD(d, meanOf(d)); sd > 1e-12 {
		ir := meanOf(d) / sd
		x.IR = ir * a
		x.IRSE = math.Sqrt((1+ir*ir/2)/T) * a
	}
	return x
}

// monthlyReturns are the returns between consecutive month starts ms
// (rebalance days) falling in [from, to], the last running to to.
func monthlyReturns(r *run, ms []int, from, to int) []float64 {
	var out []float64
	prev := -1
	for _, d := range ms {
		if d < from || d > to {
			continue
		}
		if prev >= 0 && r.equity[prev] > 0 {
			out = append(out, r.equity[d]/r.equity[prev]-1)
		}
		prev = d
	}
	if prev >= 0 && prev < to && r.equity[prev] > 0 {
		out = append(out, r.equity[to]/r.equity[prev]-1)
	}
	return out
}
