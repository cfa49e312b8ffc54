// Package finance is the "finance" research domain: monthly-rebalanced
// backtests of simple equity strategies, scored by the annualised Sharpe
// ratio (higher is better) on a fixed walk-forward split.
//
// Two universes: "dow30", cross-sectional strategies over the 30 Dow Jones
// stocks of 1991-2000 (equal weight, inverse volatility, momentum,
// short-term reversal, low volatility), and "sp500", market timing on the
// S&P 500 index 2000-2020 (trend following, volatility targeting).
//
// Timing (no look-ahead): rebalances happen on the first trading day d of
// each month. Weights may use closes up to and including the previous close
// (d-1) only; they are traded at the close of d and earn returns from d+1
// on. Transaction costs of costBps/1e4 * sum|w_new - w_drifted| are charged
// at the trade.
//
// Determinism: the evaluation is sequential float64 arithmetic on fixed
// data, so the same config gives bit-identical metrics; the seed is
// accepted and ignored.
package finance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Domain implements domains.Domain for strategy backtests: the built-in
// "finance" domain over its two universes (New), or a domain over one
// registered price data set (NewPriceDomain, LoadPriceDomain).
type Domain struct {
	name string
	sets []*Dataset
	def  *PriceDefinition // registered sets only
}

// New returns the finance domain.
func New() *Domain { return &Domain{name: "finance", sets: builtinSets()} }

var _ domains.Domain = (*Domain)(nil)

// Name implements domains.Domain.
func (d *Domain) Name() string { return d.name }

// Definition is the stored definition of a registered price data set
// (nil for the built-in domain).
func (d *Domain) Definition() *PriceDefinition { return d.def }

// Metric implements domains.Domain.
func (*Domain) Metric() domains.Metric {
	return domains.Metric{Name: "sharpe", Direction: domains.Maximize, Unit: "annualised"}
}

func (d *Domain) set(name string) *Dataset {
	for _, s := range d.sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

var space = domains.Space{
	{Name: "universe", Kind: domains.Choice, Choices: []string{UniverseDow, UniverseSP500}, Help: "dow30: 30 Dow stocks, cross-sectional; sp500: timing the S&P 500 index against cash"},
	{Name: "strategy", Kind: domains.Choice, Choices: []string{StratEqual, StratInvVol, StratMomentum, StratReversal, StratLowVol, StratTrend, StratVolTarget, StratBuyHold},
		Help: "dow30: equal|invvol|momentum|reversal|lowvol|buyhold; sp500: trend|voltarget|buyhold (buyhold: invest once, equal weight, never rebalance)"},
	{Name: "lookbackMonths", Kind: domains.Int, Min: 1, Max: 24, Help: "momentum/reversal: months of past return to rank on (momentum: lookbackMonths+skipMonths <= 24)"},
	{Name: "skipMonths", Kind: domains.Int, Min: 0, Max: 3, Help: "momentum: most recent months left out of the ranking return (e.g. 12-1 momentum = 12 and 1)"},
	{Name: "topK", Kind: domains.Int, Min: 1, Max: 15, Help: "momentum/reversal/lowvol: number of stocks held long (and short when longShort), equal weight"},
	{Name: "longShort", Kind: domains.Bool, Help: "momentum/reversal/lowvol: also short the topK worst-ranked stocks (+1 long, -1 short, proceeds earn riskFree)"},
	{Name: "volLookbackDays", Kind: domains.Int, Min: 20, Max: 252, Help: "lowvol/invvol/voltarget: trading days of daily returns for the volatility estimate"},
	{Name: "smaDays", Kind: domains.Int, Min: 20, Max: 300, Help: "trend: moving-average length in trading days; invested when the last close is above it"},
	{Name: "targetVol", Kind: domains.Float, Min: 0.05, Max: 0.4, Help: "voltarget: annualised volatility to aim for; exposure = min(maxLeverage, targetVol/realised vol)"},
	{Name: "maxLeverage", Kind: domains.Float, Min: 0.5, Max: 2, Help: "single series: exposure cap (voltarget) or exposure when invested (trend); borrowing costs riskFree"},
	{Name: "costBps", Kind: domains.Float, Min: 0, Max: 50, Help: "transaction cost in basis points per unit of turnover (an assumption, not a strategy choice)", Fixed: true},
	{Name: "riskFree", Kind: domains.Float, Min: 0, Max: 0.06, Help: "annual risk-free rate earned by cash and subtracted in the Sharpe (an assumption, not a strategy choice)", Fixed: true},
	{Name: "rebalance", Kind: domains.Choice, Choices: []string{"monthly"}, Help: "fixed: first trading day of each month"},
}

// Space implements domains.Domain. A registered set's domain has one
// universe (the set) and only the strategies its shape supports.
func (d *Domain) Space() domains.Space {
	sp := slices.Clone(space)
	if d.def == nil {
		return sp
	}
	set := d.sets[0]
	strats := strategiesFor(len(set.Symbols))
	sp[0].Choices, sp[0].Help = []string{set.Name}, set.help
	sp[1].Choices = slices.Clone(strats)
	sp[1].Help = strings.Join(strats, "|") + " (buyhold: invest once, equal weight, never rebalance)"
	if len(set.Symbols) > 1 {
		i := slices.IndexFunc(sp, func(p domains.Param) bool { return p.Name == "topK" })
		sp[i].Max = float64(max(1, min(15, len(set.Symbols)/2)))
	}
	return sp
}

// Baseline implements domains.Domain: the equal-weight Dow 30 portfolio,
// rebalanced monthly, with 10 bps costs and a 4% risk-free rate. Equal
// weight is the standard naive benchmark for a cross-sectional universe
// (DeMiguel et al. 2009 find it hard to beat out of sample), needs no
// lookback, and trades little (turnover is only the drift back to 1/30).
// 10 bps is a realistic one-way cost for 1990s large caps; 4% is roughly
// the 1993-2000 average 3-month T-bill yield rounded down. The inactive
// parameters hold the textbook settings of the other strategies (12-1
// momentum, top 10, 63-day volatility, 200-day trend, 15% vol target).
//
// It scores validation Sharpe 1.566 (CAGR 23.1%, max drawdown 7.9%) and
// test Sharpe 0.826 (CAGR 19.6%, max drawdown 18.4%).
//
// A registered set's baseline is its benchmark strategy (equal weight for
// a basket, buy and hold for a single series) with the same settings.
func (d *Domain) Baseline() domains.Config {
	c := domains.Config{
		"universe":        UniverseDow,
		"strategy":        StratEqual,
		"lookbackMonths":  12.0,
		"skipMonths":      1.0,
		"topK":            10.0,
		"longShort":       false,
		"volLookbackDays": 63.0,
		"smaDays":         200.0,
		"targetVol":       0.15,
		"maxLeverage":     1.0,
		"costBps":         10.0,
		"riskFree":        0.04,
		"rebalance":       "monthly",
	}
	if d.def != nil {
		set := d.sets[0]
		c["universe"], c["strategy"] = set.Name, set.Benchmark()
		if len(set.Symbols) > 1 {
			c["topK"] = float64(max(1, min(10, len(set.Symbols)/2)))
		}
	}
	return c
}

// Validate implements domains.Domain. Beyond types and ranges it requires
// the strategy to belong to the universe and, for momentum,
// lookbackMonths+skipMonths <= 24 (the warm-up holds 24 months). Parameters
// a strategy does not use are accepted and ignored.
func (d *Domain) Validate(cfg domains.Config) (domains.Config, error) {
	out, err := d.Space().Normalize(cfg, d.Baseline())
	if err != nil {
		return nil, err
	}
	u, st := out.String("universe"), out.String("strategy")
	set := d.set(u)
	if set == nil {
		return nil, &domains.FieldError{Field: "universe", Message: fmt.Sprintf("unknown universe %q", u)}
	}
	if strats := strategiesFor(len(set.Symbols)); !slices.Contains(strats, st) {
		return nil, &domains.FieldError{Field: "strategy", Message: fmt.Sprintf("%q is not a %s strategy (use %s)", st, u, strings.Join(strats, "|"))}
	}
	if st == StratMomentum {
		if l, s := out.Int("lookbackMonths"), out.Int("skipMonths"); l+s > maxMomentumMonths {
			return nil, &domains.FieldError{Field: "lookbackMonths", Message: fmt.Sprintf("lookbackMonths+skipMonths = %d+%d exceeds the %d-month warm-up", l, s, maxMomentumMonths)}
		}
	}
	return out, nil
}

func specFrom(c domains.Config) spec {
	return spec{
		universe:  c.String("universe"),
		strategy:  c.String("strategy"),
		lookback:  c.Int("lookbackMonths"),
		skip:      c.Int("skipMonths"),
		topK:      c.Int("topK"),
		longShort: c.Bool("longShort"),
		volDays:   c.Int("volLookbackDays"),
		smaDays:   c.Int("smaDays"),
		targetVol: c.Float("targetVol"),
		maxLev:    c.Float("maxLeverage"),
		costBps:   c.Float("costBps"),
		riskFree:  c.Float("riskFree"),
	}
}

// DataDir resolves the data directory: opts.DataDir, else
// $HYPERSPACE_DATA_DIR.
func DataDir(opts domains.EvalOptions) (string, error) {
	if opts.DataDir != "" {
		return opts.DataDir, nil
	}
	if dir := os.Getenv("HYPERSPACE_DATA_DIR"); dir != "" {
		return dir, nil
	}
	return "", fmt.Errorf("finance: no data directory: set EvalOptions.DataDir or HYPERSPACE_DATA_DIR (expects finance/dowjones30-1991-2000.csv and finance/sp500-daily-2000-2020.csv under it)")
}

// Evaluate implements domains.Domain: one walk-forward backtest whose
// Metric is the validation Sharpe and TestMetric the test Sharpe. The seed
// and opts.BudgetSeconds are ignored (a backtest takes milliseconds).
func (d *Domain) Evaluate(ctx context.Context, cfg domains.Config, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	t0 := time.Now()
	ncfg, err := d.Validate(cfg)
	if err != nil {
		return domains.Result{}, err
	}
	s := specFrom(ncfg)
	set := d.set(s.universe)
	dir := ""
	if d.def == nil {
		if dir, err = DataDir(opts); err != nil {
			return domains.Result{}, err
		}
	}
	p, err := set.load(dir)
	if err != nil {
		return domains.Result{}, fmt.Errorf("finance: %w", err)
	}
	res, err := evaluatePanel(ctx, p, s, set.Split, opts.Progress)
	if err != nil {
		return domains.Result{}, err
	}
	dur := time.Since(t0).Seconds()
	res.Values["durationSec"] = dur
	if dur > 0 {
		res.Values["backtestsPerSec"] = 1 / dur
	}
	return res, nil
}

// evaluatePanel runs the backtest of s on p under sp and assembles the
// result (everything but the timing values).
func evaluatePanel(ctx context.Context, p *Panel, s spec, sp split, report func(domains.Progress)) (domains.Result, error) {
	var progress func(done, total, day int)
	if report != nil {
		progress = func(done, total, day int) {
			if done%12 == 0 || done == total-1 {
				report(domains.Progress{Fraction: float64(done) / float64(total), Step: done,
					Message: "rebalanced " + p.Dates[day].Format(dateLayout)})
			}
		}
	}
	r, err := backtest(ctx, p, s, sp, progress)
	if err != nil {
		return domains.Result{}, fmt.Errorf("finance: %w", err)
	}
	rfd := s.riskFree / tradingDaysPerYear
	val := periodStats(r, r.start, r.testStart, rfd)
	test := periodStats(r, r.testStart, r.end, rfd)
	// The benchmark on the same data, split, costs and risk-free rate.
	bench := r
	if bs := s.benchmark(len(p.Symbols)); bs.strategy != s.strategy {
		if bench, err = backtest(ctx, p, bs, sp, nil); err != nil {
			return domains.Result{}, fmt.Errorf("finance: benchmark %s: %w", bs.strategy, err)
		}
	}
	ms := monthStarts(p.Dates)
	res := domains.Result{
		Metric:     val.Sharpe,
		TestMetric: test.Sharpe,
		Values: map[string]float64{
			"valSharpe": val.Sharpe, "valCAGR": val.CAGR, "valMaxDrawdown": val.MaxDrawdown,
			"valTurnover": val.Turnover, "valVol": val.Vol, "valDays": float64(val.Days),
			"testSharpe": test.Sharpe, "testCAGR": test.CAGR, "testMaxDrawdown": test.MaxDrawdown,
			"testTurnover": test.Turnover, "testVol": test.Vol, "testDays": float64(test.Days),
			"tradingDays": float64(val.Days + test.Days),
			"rebalances":  float64(len(r.rebals)),
		},
	}
	for _, ph := range []struct {
		prefix   string
		from, to int
		st       Stats
	}{{"val", r.start, r.testStart, val}, {"test", r.testStart, r.end, test}} {
		ret, bret := r.ret[ph.from+1:ph.to+1], bench.ret[ph.from+1:ph.to+1]
		bst := periodStats(bench, ph.from, ph.to, rfd)
		x := ExcessOver(ret, bret, rfd)
		skew, kurt := Moments(ret)
		v := res.Values
		v[ph.prefix+"SharpeMonthly"] = MonthlySharpe(monthlyReturns(r, ms, ph.from, ph.to), s.riskFree)
		v[ph.prefix+"BenchSharpe"] = bst.Sharpe
		v[ph.prefix+"BenchSharpeMonthly"] = MonthlySharpe(monthlyReturns(bench, ms, ph.from, ph.to), s.riskFree)
		v[ph.prefix+"BenchCAGR"] = bst.CAGR
		v[ph.prefix+"ExcessSharpe"] = x.SharpeDiff
		v[ph.prefix+"ExcessSharpeSE"] = x.SharpeDiffSE
		v[ph.prefix+"InfoRatio"] = x.IR
		v[ph.prefix+"InfoRatioSE"] = x.IRSE
		v[ph.prefix+"ActiveReturn"] = x.Active
		v[ph.prefix+"Skew"] = skew
		v[ph.prefix+"Kurtosis"] = kurt
		v[ph.prefix+"PSR"] = ProbabilisticSharpe(ph.st.Sharpe, 0, ph.st.Days, skew, kurt)
	}
	if r.busted {
		res.Values["busted"] = 1
	}
	res.Items = sharpeItems(p, r, r.start, r.testStart, rfd, s.universe)
	// Curve: validation equity at each month-start close (step = month).
	for i, rb := range r.rebals {
		if rb.day > r.testStart {
			break
		}
		res.Curve = append(res.Curve, [2]float64{float64(i), r.equity[rb.day]})
	}
	res.Artifacts, err = artifacts(p, s, r)
	if err != nil {
		return domains.Result{}, err
	}
	if report != nil {
		report(domains.Progress{Fraction: 1, Step: len(r.rebals), Metric: val.Sharpe, Message: "done"})
	}
	return res, nil
}

type equityPeriod struct {
	Start  string    `json:"start"`
	End    string    `json:"end"`
	Dates  []string  `json:"dates"`
	Equity []float64 `json:"equity"` // 1 at Start (the close before the first return day)
}

type weightsRow struct {
	Date        string    `json:"date"`        // trade day (close)
	SignalClose string    `json:"signalClose"` // last close the weights could see
	Period      string    `json:"period"`      // validation or test
	Turnover    float64   `json:"turnover"`
	Weights     []float64 `json:"weights"` // per symbol; sp500: exposure to the index
}

// artifacts renders equity_curve.json and weights.json.
func artifacts(p *Panel, s spec, r *run) (map[string][]byte, error) {
	period := func(from, to int) equityPeriod {
		e := equityPeriod{Start: p.Dates[from].Format(dateLayout), End: p.Dates[to].Format(dateLayout)}
		base := r.equity[from]
		for t := from; t <= to; t++ {
			e.Dates = append(e.Dates, p.Dates[t].Format(dateLayout))
			v := 0.0
			if base > 0 {
				v = r.equity[t] / base
			}
			e.Equity = append(e.Equity, v)
		}
		return e
	}
	curve := struct {
		Universe   string       `json:"universe"`
		Strategy   string       `json:"strategy"`
		Validation equityPeriod `json:"validation"`
		Test       equityPeriod `json:"test"`
	}{s.universe, s.strategy, period(r.start, r.testStart), period(r.testStart, r.end)}
	w := struct {
		Symbols    []string     `json:"symbols"`
		Rebalances []weightsRow `json:"rebalances"`
	}{Symbols: p.Symbols}
	for _, rb := range r.rebals {
		ph := "validation"
		if rb.day >= r.testStart {
			ph = "test"
		}
		w.Rebalances = append(w.Rebalances, weightsRow{
			Date: p.Dates[rb.day].Format(dateLayout), SignalClose: p.Dates[rb.day-1].Format(dateLayout),
			Period: ph, Turnover: rb.turnover, Weights: rb.weights})
	}
	out := map[string][]byte{}
	for name, v := range map[string]any{"equity_curve.json": curve, "weights.json": w} {
		var b bytes.Buffer
		if err := json.NewEncoder(&b).Encode(v); err != nil {
			return nil, fmt.Errorf("finance: %s: %w", name, err)
		}
		out[name] = b.Bytes()
	}
	return out, nil
}

// Describe implements domains.Domain.
func (d *Domain) Describe() string {
	if d.def != nil {
		return d.describePrices()
	}
	var b strings.Builder
	b.WriteString("Domain \"finance\": monthly-rebalanced strategy backtests, scored by Sharpe.\n\n")
	b.WriteString(commonDescription)
	b.WriteString(`Universes and fixed walk-forward splits (a period is a run of whole holding
months; the holding month of a rebalance runs from the day after it to the
next rebalance day inclusive; everything before validation is warm-up):
  dow30: daily closes of the 30 Dow Jones stocks (split-adjusted, NOT
    dividend-adjusted), 1991-01-02..2001-01-02 (the file's duplicated
    1990-12-31 row is dropped). Warm-up 1991-1992; validation = holding
    months Jan 1993..Dec 1996 (returns 1993-01-05..1997-01-02); test = Jan
    1997..Dec 2000 (1997-01-03..2001-01-02).
  sp500: S&P 500 price index (adjclose; excludes dividends) 2000-01-03..
    2020-04-17 against cash earning riskFree. Warm-up 2000-2001; validation
    = holding months Jan 2002..Dec 2012 (returns 2002-01-03..2013-01-02);
    test = Jan 2013..Apr 2020 (2013-01-03..2020-04-17, incl. the 2020 crash).

Strategies (parameters not listed for a strategy are accepted and ignored):
  dow30 equal: 1/30 in every stock.
  dow30 invvol: weight proportional to 1/sd of the last volLookbackDays
    daily returns, long only, fully invested.
  dow30 momentum: rank on the return from the close before month m-skip-L
    to the close before month m-skip (L = lookbackMonths, skip = skipMonths,
    m = rebalance month, i.e. months m-skip-L .. m-skip-1); hold the topK
    winners at 1/topK each; longShort also shorts the topK losers at -1/topK
    each. lookbackMonths+skipMonths <= 24.
  dow30 reversal: rank on the last lookbackMonths months' return (skip not
    used); hold the topK losers (longShort: short the topK winners).
  dow30 lowvol: rank on the sd of the last volLookbackDays daily returns;
    hold the topK calmest (longShort: short the topK most volatile).
  sp500 trend: exposure maxLeverage when the previous close is above its
    smaDays-day simple moving average (closes d-smaDays..d-1), else cash.
  sp500 voltarget: exposure min(maxLeverage, targetVol / (sd of the last
    volLookbackDays daily returns * sqrt(252))).
  buyhold: invest once at the first validation rebalance (1/n each, fully
    invested) and never trade again; a single series' benchmark.
Ties in rankings keep the file's symbol order.

costBps and riskFree are assumptions of the evaluation, not strategy
choices: lowering costBps (or riskFree, for any net-long strategy) raises
the Sharpe, so compare configs only at the same values (keep the
baseline's unless the campaign says otherwise).

Reference points (costBps 10, riskFree 0.04): the baseline (dow30 equal)
scores validation Sharpe 1.566, test 0.826; sp500 trend with smaDays 200
scores 0.372 and 0.371. Validation spans 4 (dow30) or 11 (sp500) years, so a
Sharpe difference of about 0.1 is within noise.

Data caveats: Dow closes are not adjusted for dividends or spin-offs (AT&T
drops 25% on 1996-10-01, the Lucent distribution).

Cost: one backtest takes about a millisecond; the seed is ignored and the
result is bit-identical for the same config.

`)
	d.describeParams(&b)
	return b.String()
}

// commonDescription is the part of Describe every finance domain shares.
const commonDescription = `Metric: sharpe, the annualised Sharpe ratio of daily returns on the
validation period, mean(r - riskFree/252) / sd(r - riskFree/252) * sqrt(252)
(sample sd). Higher is better. testSharpe is the same on the later,
held-out test period; it is reported and never used for ranking. Also
reported for both periods: CAGR (252 trading days a year), MaxDrawdown
(positive fraction), Turnover (sum of |w_new - w_drifted| per year), Vol
(annualised sd of daily returns); plus tradingDays, rebalances,
durationSec and backtestsPerSec.

Benchmarks: every result is compared with its data set's benchmark on the
same days, costs and risk-free rate (equal weight rebalanced monthly for a
basket, buy and hold for a single series): BenchSharpe, ExcessSharpe (the
Sharpe difference) with ExcessSharpeSE (Jobson-Korkie with Memmel's
correction), InfoRatio (annualised mean/sd of the daily excess return)
with InfoRatioSE (Lo 2002), ActiveReturn (annualised mean excess); all with
a val or test prefix. Also SharpeMonthly (annualised from monthly returns,
as the original system reports it; the daily Sharpe is the one that
ranks), Skew and Kurtosis of daily returns and PSR, the probabilistic
Sharpe ratio against 0 (Bailey and Lopez de Prado). A campaign's deflated
Sharpe ratio (DeflatedSharpe) discounts its best result by the number of
configs it tried.

Timing (no look-ahead): rebalance on the first trading day d of each month.
Weights use closes up to and including the previous close (d-1) only, are
traded at the close of d and earn returns from d+1 on; day d itself is
earned by the old, drifted weights. Cost = costBps/1e4 * sum_i
|w_new_i - w_drifted_i|, deducted at the trade (it shows in day d+1's
return). Cash, short proceeds and borrowing all earn/cost riskFree/252 per
day. The first validation rebalance buys from all cash, so its cost counts.

`

// Deflate is the deflated Sharpe ratio of a result's validation Sharpe
// given the campaign's trials (domains.SelectionDomain): it needs the
// valSharpe, valDays, valSkew and valKurtosis the result reports, and it
// refuses (ok false) where trialVar or the statistic is not finite.
func (d *Domain) Deflate(res map[string]float64, trials int, trialVar float64) (string, float64, float64, bool) {
	sr, ok1 := res["valSharpe"]
	days, ok2 := res["valDays"]
	skew, ok3 := res["valSkew"]
	kurt, ok4 := res["valKurtosis"]
	if !ok1 || !ok2 || !ok3 || !ok4 || days < 3 || trials < 1 || trialVar < 0 {
		return "", 0, 0, false
	}
	em := ExpectedMaxSharpe(trials, trialVar)
	dsr := ProbabilisticSharpe(sr, em, int(days), skew, kurt)
	for _, x := range []float64{trialVar, em, dsr} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", 0, 0, false // a receipt holds finite numbers only
		}
	}
	return "deflated-sharpe", em, dsr, true
}

// describeParams lists the parameters and the baseline.
func (d *Domain) describeParams(b *strings.Builder) {
	b.WriteString("Parameters (name, type, range, meaning):\n")
	for _, p := range d.Space() {
		switch p.Kind {
		case domains.Choice:
			fmt.Fprintf(b, "  %s (choice: %v) - %s\n", p.Name, p.Choices, p.Help)
		case domains.Bool:
			fmt.Fprintf(b, "  %s (bool) - %s\n", p.Name, p.Help)
		default:
			fmt.Fprintf(b, "  %s (%s, %g..%g) - %s\n", p.Name, p.Kind, p.Min, p.Max, p.Help)
		}
	}
	b.WriteString("\nBaseline:")
	base := d.Baseline()
	for _, p := range d.Space() {
		fmt.Fprintf(b, " %s=%v", p.Name, base[p.Name])
	}
	b.WriteString("\n")
}

// sharpeItems are the validation days' excess returns summarised per month
// ((n, sum, sum of squares) of ret-rf), so a paired bootstrap can resample
// months and recompute the daily Sharpe ratio exactly as Sharpe does.
func sharpeItems(p *Panel, r *run, from, to int, rfd float64, universe string) *domains.Items {
	it := &domains.Items{Agg: domains.ItemsSharpe, Scale: math.Sqrt(tradingDaysPerYear)}
	var ids []string
	var cur [3]float64
	month := -1
	flush := func() {
		if cur[0] > 0 {
			it.Values = append(it.Values, cur[0], cur[1], cur[2])
		}
		cur = [3]float64{}
	}
	for t := from + 1; t <= to; t++ {
		m := p.Dates[t].Year()*12 + int(p.Dates[t].Month())
		if m != month {
			flush()
			month = m
			ids = append(ids, p.Dates[t].Format("2006-01"))
		}
		x := r.ret[t] - rfd
		cur[0]++
		cur[1] += x
		cur[2] += x * x
	}
	flush()
	it.Key = domains.ItemsKey("finance/sharpe/validation/"+universe+"/"+p.Dates[from].Format(dateLayout), ids...)
	return it
}
