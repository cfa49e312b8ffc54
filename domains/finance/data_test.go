package finance

import (
	"slices"
	"strings"
	"testing"
)

const toyDow = `"","X.Y..m..d","AA","BB"
"1","1990-12-31",5.92,4.7
"2","1991-01-02",5.92,4.7
"3","1991-01-03",5.88,4.73
"4","1991-01-04",5.88,4.73
`

func TestParseDowDropsLeadingDuplicate(t *testing.T) {
	p, err := ParseDow(strings.NewReader(toyDow))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Dates[0].Format(dateLayout); got != "1991-01-02" || p.Days() != 3 {
		t.Fatalf("first date %s, %d days; want 1991-01-02 and 3 days", got, p.Days())
	}
	if !slices.Equal(p.Symbols, []string{"AA", "BB"}) {
		t.Fatalf("symbols %v", p.Symbols)
	}
	// A genuine repeated row later in the file is a real flat day: kept.
	if !slices.Equal(p.Close[1], p.Close[2]) {
		t.Fatalf("later repeated row was dropped: %v", p.Close)
	}
	// A first row that differs from the second is kept.
	q, err := ParseDow(strings.NewReader(strings.Replace(toyDow, `"1","1990-12-31",5.92`, `"1","1990-12-31",5.91`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if q.Days() != 4 || q.Dates[0].Format(dateLayout) != "1990-12-31" {
		t.Fatalf("distinct first row dropped: %d days from %s", q.Days(), q.Dates[0].Format(dateLayout))
	}
}

func TestRealDowSeries(t *testing.T) {
	p, err := LoadDow(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Symbols) != 30 || p.Days() != 2528 {
		t.Fatalf("%d symbols, %d days; want 30 and 2528 (2529 rows less the duplicate)", len(p.Symbols), p.Days())
	}
	if a, b := p.Dates[0].Format(dateLayout), p.Dates[p.Days()-1].Format(dateLayout); a != "1991-01-02" || b != "2001-01-02" {
		t.Fatalf("range %s..%s, want 1991-01-02..2001-01-02", a, b)
	}
	// No day of the parsed series repeats the previous day's prices: the
	// duplicate 1990-12-31 row would have made 1991-01-02 such a day.
	for d := 1; d < p.Days(); d++ {
		if slices.Equal(p.Close[d], p.Close[d-1]) {
			t.Fatalf("%s repeats the previous day (a zero-return day for every stock)", p.Dates[d].Format(dateLayout))
		}
	}
	// The first month starts on the first row and the first month's anchor
	// is its close.
	if ms := monthStarts(p.Dates); ms[0] != 0 || anchor(ms, 0) != 0 || p.Dates[ms[1]].Format(dateLayout) != "1991-02-01" {
		t.Fatalf("month starts %v", ms[:3])
	}
}

func TestRealSP500Series(t *testing.T) {
	p, err := LoadSP500(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	// The data README says 5,104 rows; the file holds 5,105.
	if p.Days() != 5105 || !slices.Equal(p.Symbols, []string{"SPX"}) {
		t.Fatalf("%d days, symbols %v", p.Days(), p.Symbols)
	}
	if a, b := p.Dates[0].Format(dateLayout), p.Dates[p.Days()-1].Format(dateLayout); a != "2000-01-03" || b != "2020-04-17" {
		t.Fatalf("range %s..%s", a, b)
	}
	if p.Close[0][0] != 1455.219971 {
		t.Fatalf("first adjclose %v", p.Close[0][0])
	}
}

func TestParseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"bad price":   strings.Replace(toyDow, "5.88,4.73\n\"4\"", "NA,4.73\n\"4\"", 1),
		"zero price":  strings.Replace(toyDow, "5.88,4.73\n\"4\"", "0,4.73\n\"4\"", 1),
		"bad date":    strings.Replace(toyDow, "1991-01-03", "1991-13-03", 1),
		"short row":   strings.Replace(toyDow, ",5.88,4.73\n\"4\"", ",5.88\n\"4\"", 1),
		"unsorted":    strings.Replace(toyDow, "1991-01-04", "1991-01-01", 1),
		"header only": `"","X.Y..m..d","AA"` + "\n",
	} {
		if _, err := ParseDow(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ParseSP500(strings.NewReader("date,open,close\n2000-01-03,1,2\n2000-01-04,1,2\n")); err == nil || !strings.Contains(err.Error(), "adjclose") {
		t.Errorf("missing adjclose: %v", err)
	}
}
