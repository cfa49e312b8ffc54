package finance

import (
	"errors"
	"math"
	"testing"
)

// FuzzParsePrices: a user's price file never panics, and whatever it
// accepts satisfies the Panel invariants the backtest relies on.
func FuzzParsePrices(f *testing.F) {
	f.Add([]byte("date,A,B\n2020-01-02,1,2\n2020-01-03,1.5,2.5\n"))
	f.Add([]byte("\xef\xbb\xbfdate,X\r\n2020-01-02,1e3\r\n\r\n2020-02-03,7\r\n"))
	f.Add([]byte("date,A\n2020-01-03,1\n2020-01-02,1\n"))
	f.Add([]byte("date,\"A\",A\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePrices(data)
		if err != nil {
			var pe *PriceError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a PriceError", err)
			}
			return
		}
		if len(p.Symbols) == 0 || len(p.Dates) < 2 || len(p.Close) != len(p.Dates) {
			t.Fatalf("accepted a malformed panel: %d symbols, %d dates", len(p.Symbols), len(p.Dates))
		}
		for i, row := range p.Close {
			if i > 0 && !p.Dates[i].After(p.Dates[i-1]) {
				t.Fatalf("dates not increasing at %d", i)
			}
			if len(row) != len(p.Symbols) {
				t.Fatalf("row %d has %d prices", i, len(row))
			}
			for _, x := range row {
				if !(x > 0) || math.IsInf(x, 0) {
					t.Fatalf("accepted price %v", x)
				}
			}
		}
		_, _ = resolveSplit(p, SplitSpec{})
	})
}

// FuzzLoadPriceDomain: a stored definition (the site database is shared
// by every process) never panics the loader.
func FuzzLoadPriceDomain(f *testing.F) {
	p := synthPanel(2, "2010-01-01", "2012-12-31", 5)
	d, err := NewPriceDomain("fz", csvOf(p), SplitSpec{})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := jsonOf(d.Definition())
	f.Add(good)
	f.Add([]byte(`{"type":"prices","name":"x","csv":"date,A\n","sha256":""}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := LoadPriceDomain(raw)
		if err == nil && (d.Definition() == nil || d.Name() == "") {
			t.Fatal("loaded a domain without a definition")
		}
	})
}
