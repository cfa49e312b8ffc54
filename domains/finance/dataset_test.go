package finance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// csvOf renders p as a registration CSV.
func csvOf(p *Panel) []byte {
	var b strings.Builder
	b.WriteString("date," + strings.Join(p.Symbols, ",") + "\n")
	for t, d := range p.Dates {
		b.WriteString(d.Format(dateLayout))
		for _, x := range p.Close[t] {
			fmt.Fprintf(&b, ",%v", x)
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

func TestParsePricesErrorsNameTheRow(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		row       int
		want      string
	}{
		{"empty", "", 0, "empty file"},
		{"header", "day,A\n2020-01-02,1\n", 1, `start with "date"`},
		{"no columns", "date\n2020-01-02\n", 1, "no price column"},
		{"bad symbol", "date,A B\n", 1, "column name"},
		{"dup column", "date,A,A\n", 1, "appears twice"},
		{"fields", "date,A,B\n2020-01-02,1,2\n2020-01-03,1\n", 3, "2 fields"},
		{"bad date", "date,A\n2020-01-02,1\n2020/01/03,1\n", 3, "not YYYY-MM-DD"},
		{"duplicate", "date,A\n2020-01-02,1\n2020-01-03,1\n2020-01-03,2\n", 4, "duplicate date 2020-01-03 (row 3"},
		{"out of order", "date,A\n2020-01-02,1\n2020-01-06,1\n2020-01-03,2\n", 4, "before the previous row's 2020-01-06"},
		{"zero", "date,A\n2020-01-02,1\n2020-01-03,0\n", 3, "positive finite"},
		{"negative", "date,A\n2020-01-02,-1\n", 2, "positive finite"},
		{"nan", "date,A\n2020-01-02,NaN\n", 2, "positive finite"},
		{"inf", "date,A\n2020-01-02,+Inf\n", 2, "positive finite"},
		{"text", "date,A\n2020-01-02,abc\n", 2, "positive finite"},
		{"one row", "date,A\n2020-01-02,1\n", 0, "at least two rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePrices([]byte(tc.csv))
			var pe *PriceError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want a PriceError", err)
			}
			if pe.Row != tc.row || !strings.Contains(pe.Message, tc.want) {
				t.Fatalf("row %d %q, want row %d containing %q", pe.Row, pe.Message, tc.row, tc.want)
			}
		})
	}
	// CRLF, a BOM, quotes, blank lines and spaces are accepted.
	p, err := ParsePrices([]byte("\xef\xbb\xbf\"date\", \"A\" ,B\r\n2020-01-02, 1.5,2\r\n\r\n2020-01-03,1.25,3\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Days() != 2 || p.Symbols[0] != "A" || p.Close[1][0] != 1.25 || p.Close[1][1] != 3 {
		t.Fatalf("parsed %+v", p)
	}
}

func TestResolveSplit(t *testing.T) {
	p := synthPanel(3, "2010-01-01", "2019-12-31", 1) // 120 months
	s, err := resolveSplit(p, SplitSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.valStart.Format("2006-01"); got != "2012-07" { // month 30 of 120
		t.Errorf("default valStart %s", got)
	}
	if got := s.testStart.Format("2006-01"); got != "2016-07" { // month 78
		t.Errorf("default testStart %s", got)
	}
	if s, err = resolveSplit(p, SplitSpec{ValStart: "2013-01", TestFraction: 0.8}); err != nil {
		t.Fatal(err)
	} else if s.valStart.Format("2006-01") != "2013-01" || s.testStart.Format("2006-01") != "2018-01" {
		t.Errorf("split %v", s)
	}
	for _, tc := range []struct {
		sp    SplitSpec
		field string
	}{
		{SplitSpec{ValStart: "2013"}, "valStart"},
		{SplitSpec{ValFraction: 1.5}, "valFraction"},
		{SplitSpec{TestFraction: -0.1}, "testFraction"},
		{SplitSpec{ValStart: "2010-02"}, "valStart"},                        // 1 month of warm-up
		{SplitSpec{ValStart: "2015-01", TestStart: "2015-02"}, "testStart"}, // 1 month of validation
		{SplitSpec{ValStart: "2016-01", TestStart: "2015-01"}, "testStart"},
		{SplitSpec{TestStart: "2019-11"}, "testStart"}, // test too short
	} {
		_, err := resolveSplit(p, tc.sp)
		var se *SplitError
		if !errors.As(err, &se) || se.Field != tc.field {
			t.Errorf("%+v: err %v, want a SplitError on %s", tc.sp, err, tc.field)
		}
	}
}

// A registered copy of the S&P 500 file with the built-in split gives the
// built-in universe's results bit for bit, for every strategy.
func TestRegisteredSetMatchesBuiltin(t *testing.T) {
	dir := testDataDir(t)
	sp, err := LoadSP500(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewPriceDomain("my-spx", csvOf(sp), SplitSpec{ValStart: "2002-01", TestStart: "2013-01"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := LoadPriceDomain(mustJSON(t, d.Definition()))
	if err != nil {
		t.Fatal(err)
	}
	builtin := New()
	for _, st := range []string{StratTrend, StratVolTarget, StratBuyHold} {
		want, err := builtin.Evaluate(context.Background(), domains.Config{"universe": UniverseSP500, "strategy": st}, 1, evalOpts(t))
		if err != nil {
			t.Fatal(err)
		}
		got, err := stored.Evaluate(context.Background(), domains.Config{"strategy": st}, 1, domains.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Metric != want.Metric || got.TestMetric != want.TestMetric || got.Values["valExcessSharpe"] != want.Values["valExcessSharpe"] {
			t.Errorf("%s: registered %v/%v, built-in %v/%v", st, got.Metric, got.TestMetric, want.Metric, want.TestMetric)
		}
	}
	// The registered domain offers only single-series strategies.
	if _, err := stored.Validate(domains.Config{"strategy": StratMomentum}); err == nil {
		t.Error("momentum accepted on a single series")
	}
	if b := stored.Baseline(); b["strategy"] != StratBuyHold || b["universe"] != "my-spx" {
		t.Errorf("baseline %v", b)
	}
	if desc := stored.Describe(); !strings.Contains(desc, "2002-01") || !strings.Contains(desc, "Benchmark: buyhold") {
		t.Errorf("Describe:\n%s", desc)
	}
}

func TestLoadPriceDomainChecksTheStoredPrices(t *testing.T) {
	p := synthPanel(4, "2010-01-01", "2014-12-31", 2)
	d, err := NewPriceDomain("basket", csvOf(p), SplitSpec{})
	if err != nil {
		t.Fatal(err)
	}
	def := *d.Definition()
	def.CSV = strings.Replace(def.CSV, "\n2011-", "\n2011-", 1) + "2015-01-02,1,1,1,1\n"
	if _, err := LoadPriceDomain(mustJSON(t, def)); err == nil || !strings.Contains(err.Error(), "hash") {
		t.Fatalf("tampered prices: %v", err)
	}
	if _, err := LoadPriceDomain([]byte(`{"type":"cause"}`)); !errors.Is(err, ErrNotPrices) {
		t.Fatalf("other type: %v", err)
	}
	if _, err := NewPriceDomain("Bad Name", csvOf(p), SplitSpec{}); err == nil {
		t.Fatal("bad name accepted")
	}
	// A basket runs the cross-sectional strategies against equal weight.
	res, err := d.Evaluate(context.Background(), domains.Config{"strategy": StratMomentum, "lookbackMonths": 6.0, "topK": 2.0}, 1, domains.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Values["valBenchSharpe"] == res.Metric || res.Values["valExcessSharpeSE"] <= 0 {
		t.Errorf("benchmark values %v", res.Values)
	}
}

func TestBuyHoldTradesOnce(t *testing.T) {
	p := synthPanel(1, "2010-01-01", "2016-12-31", 3)
	d, err := NewPriceDomain("one", csvOf(p), SplitSpec{})
	if err != nil {
		t.Fatal(err)
	}
	s := specFrom(mustValid(t, d, domains.Config{"costBps": 0.0}))
	r, err := backtest(context.Background(), p, s, d.sets[0].Split, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.rebals) != 1 {
		t.Fatalf("%d rebalances", len(r.rebals))
	}
	// With no costs equity follows the price exactly.
	for t0 := r.start; t0 <= r.end; t0 += 97 {
		want := p.Close[t0][0] / p.Close[r.start][0]
		if math.Abs(r.equity[t0]-want) > 1e-12*want {
			t.Fatalf("day %d: equity %v, price ratio %v", t0, r.equity[t0], want)
		}
	}
}

func TestExcessAndDeflatedSharpe(t *testing.T) {
	p := synthPanel(2, "2010-01-01", "2019-12-31", 4)
	a, b := make([]float64, 0), make([]float64, 0)
	for t0 := 1; t0 < p.Days(); t0++ {
		a = append(a, p.Close[t0][0]/p.Close[t0-1][0]-1)
		b = append(b, p.Close[t0][1]/p.Close[t0-1][1]-1)
	}
	if x := ExcessOver(a, a, 0); x.SharpeDiff != 0 || x.IR != 0 || x.SharpeDiffSE != 0 {
		t.Errorf("against itself: %+v", x)
	}
	x := ExcessOver(a, b, 0)
	if math.Abs(x.SharpeDiff-(Sharpe(a, 0)-Sharpe(b, 0))) > 1e-12 || x.SharpeDiffSE <= 0 || x.IRSE <= 0 {
		t.Errorf("excess %+v", x)
	}
	// For independent series the difference's SE is about sqrt(2) times a
	// single Sharpe's (sqrt(252/T) annualised).
	if want := math.Sqrt(2 * 252 / float64(len(a))); math.Abs(x.SharpeDiffSE-want)/want > 0.1 {
		t.Errorf("SE %v, want about %v", x.SharpeDiffSE, want)
	}
	// E[max of N standard normals]: 1.54 at 10, 2.51 at 100 (tables); the
	// approximation is within a few percent.
	for _, c := range []struct {
		n    int
		want float64
	}{{10, 1.539}, {100, 2.508}, {1000, 3.241}} {
		if got := ExpectedMaxSharpe(c.n, 1); math.Abs(got-c.want)/c.want > 0.03 {
			t.Errorf("E[max] of %d: %v, want about %v", c.n, got, c.want)
		}
	}
	skew, kurt := Moments(a)
	sr := Sharpe(a, 0)
	psr := ProbabilisticSharpe(sr, 0, len(a), skew, kurt)
	if d1 := DeflatedSharpe(sr, len(a), skew, kurt, 1, 0.25); d1 != psr {
		t.Errorf("one trial: DSR %v != PSR %v", d1, psr)
	}
	prev := psr
	for _, n := range []int{10, 100, 1000} {
		dsr := DeflatedSharpe(sr, len(a), skew, kurt, n, 0.25)
		if !(dsr < prev) {
			t.Errorf("DSR at %d trials %v not below %v", n, dsr, prev)
		}
		prev = dsr
	}
	// Normal returns: skew ~0, kurtosis ~3.
	if math.Abs(skew) > 0.2 || math.Abs(kurt-3) > 0.3 {
		t.Errorf("moments %v %v", skew, kurt)
	}
	if got := MonthlySharpe([]float64{0.01, 0.03, 0.02}, 0.12); math.Abs(got-1*math.Sqrt(12)) > 1e-12 {
		t.Errorf("monthly sharpe %v", got) // mean 0.02-0.01, sd 0.01
	}
}

// TestDeflate: the domain's selection statistic is DeflatedSharpe of the
// result's validation figures, and it refuses results without them.
func TestDeflate(t *testing.T) {
	d := New()
	v := map[string]float64{"valSharpe": 1.2, "valDays": 1500, "valSkew": -0.3, "valKurtosis": 6}
	method, em, dsr, ok := d.Deflate(v, 40, 0.09)
	if !ok || method != "deflated-sharpe" {
		t.Fatalf("deflate: %v %v", method, ok)
	}
	if em != ExpectedMaxSharpe(40, 0.09) || dsr != DeflatedSharpe(1.2, 1500, -0.3, 6, 40, 0.09) {
		t.Fatalf("em %v dsr %v", em, dsr)
	}
	if _, _, one, _ := d.Deflate(v, 1, 0); one != ProbabilisticSharpe(1.2, 0, 1500, -0.3, 6) || !(dsr < one) {
		t.Fatalf("one trial: %v, 40 trials %v", one, dsr)
	}
	if _, _, _, ok := d.Deflate(v, 40, math.Inf(1)); ok {
		t.Fatal("deflated with an infinite trial variance")
	}
	delete(v, "valSkew")
	if _, _, _, ok := d.Deflate(v, 40, 0.09); ok {
		t.Fatal("deflated a result without valSkew")
	}
}

func mustValid(t *testing.T, d *Domain, c domains.Config) domains.Config {
	t.Helper()
	n, err := d.Validate(c)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
