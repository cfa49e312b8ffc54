package finance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Dataset is a price history the domain backtests on: a built-in universe
// (dow30, sp500: read from the data directory) or one a user registered
// (prices given with the definition). Its walk-forward split comes with it,
// so any price history works: a registered set's split is computed from
// fractions of its months when no dates are given.
type Dataset struct {
	Name    string
	Symbols []string
	Split   split
	// load returns the panel (dataDir: the domain data root; ignored by
	// registered sets, whose panel is in memory).
	load func(dataDir string) (*Panel, error)
	help string
}

// Benchmark is the strategy results on d are compared with.
func (d *Dataset) Benchmark() string { return BenchmarkFor(len(d.Symbols)) }

// splits are the built-in universes' splits, given with the data (see Describe).
var splits = map[string]split{
	UniverseDow:   {valStart: month(1993, time.January), testStart: month(1997, time.January)},
	UniverseSP500: {valStart: month(2002, time.January), testStart: month(2013, time.January)},
}

// builtinSets are the universes of the "finance" domain. Their symbols are
// known without reading the files: the Dow file has 30 columns, the S&P
// one is a single index.
func builtinSets() []*Dataset {
	dow := make([]string, 30)
	for i := range dow {
		dow[i] = fmt.Sprintf("dow%02d", i)
	}
	return []*Dataset{
		{Name: UniverseDow, Symbols: dow, Split: splits[UniverseDow], load: LoadDow,
			help: "30 Dow stocks, cross-sectional"},
		{Name: UniverseSP500, Symbols: []string{"SPX"}, Split: splits[UniverseSP500], load: LoadSP500,
			help: "timing the S&P 500 index against cash"},
	}
}

// Limits of a registered price data set.
const (
	MaxPriceBytes   = 16 << 20
	MaxPriceRows    = 200_000
	MaxPriceColumns = 200
	// minPeriodMonths is the shortest validation or test period, and the
	// shortest warm-up, of a registered set.
	minPeriodMonths = 3
)

// PriceError is a problem with a registered price file; Row is the 1-based
// line of the CSV it was found on (1 is the header; 0: the file as a whole).
type PriceError struct {
	Row     int
	Message string
}

func (e *PriceError) Error() string {
	if e.Row == 0 {
		return "prices: " + e.Message
	}
	return fmt.Sprintf("prices: row %d: %s", e.Row, e.Message)
}

var symbolRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:^-]{0,31}$`)

// ParsePrices reads a user's price history: a CSV with a header "date,"
// followed by one or more column names (symbols), then one row per trading
// day: the date (YYYY-MM-DD) and a close for every column. Dates must be
// strictly increasing (a duplicate or out-of-order date is an error, never
// silently reordered) and every price finite and positive; the first bad
// row is named. Blank lines are skipped.
func ParsePrices(data []byte) (*Panel, error) {
	if len(data) > MaxPriceBytes {
		return nil, &PriceError{Message: fmt.Sprintf("%d bytes exceeds the limit of %d", len(data), MaxPriceBytes)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a spreadsheet's BOM
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	row := 0
	var header []string
	p := &Panel{}
	seen := map[int64]int{}
	for _, line := range lines {
		row++
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Split(line, ",")
		for i := range fields {
			fields[i] = strings.Trim(strings.TrimSpace(fields[i]), `"`)
		}
		if header == nil {
			if !strings.EqualFold(fields[0], "date") {
				return nil, &PriceError{Row: row, Message: fmt.Sprintf("the header must start with \"date\", got %q", fields[0])}
			}
			if len(fields) < 2 {
				return nil, &PriceError{Row: row, Message: "the header names no price column after date"}
			}
			if len(fields)-1 > MaxPriceColumns {
				return nil, &PriceError{Row: row, Message: fmt.Sprintf("%d price columns exceeds the limit of %d", len(fields)-1, MaxPriceColumns)}
			}
			names := map[string]bool{}
			for _, f := range fields[1:] {
				if !symbolRE.MatchString(f) {
					return nil, &PriceError{Row: row, Message: fmt.Sprintf("column name %q: use 1-32 letters, digits or ._:^-", f)}
				}
				if names[f] {
					return nil, &PriceError{Row: row, Message: fmt.Sprintf("column %q appears twice", f)}
				}
				names[f] = true
			}
			header = fields
			p.Symbols = append([]string(nil), fields[1:]...)
			continue
		}
		if len(p.Dates) >= MaxPriceRows {
			return nil, &PriceError{Row: row, Message: fmt.Sprintf("more than %d rows", MaxPriceRows)}
		}
		if len(fields) != len(header) {
			return nil, &PriceError{Row: row, Message: fmt.Sprintf("%d fields, the header has %d", len(fields), len(header))}
		}
		d, err := time.Parse(dateLayout, fields[0])
		if err != nil {
			return nil, &PriceError{Row: row, Message: fmt.Sprintf("date %q is not YYYY-MM-DD", fields[0])}
		}
		if prev, ok := seen[d.Unix()]; ok {
			return nil, &PriceError{Row: row, Message: fmt.Sprintf("duplicate date %s (row %d has it too)", fields[0], prev)}
		}
		if n := len(p.Dates); n > 0 && d.Before(p.Dates[n-1]) {
			return nil, &PriceError{Row: row, Message: fmt.Sprintf("date %s is before the previous row's %s: dates must increase", fields[0], p.Dates[n-1].Format(dateLayout))}
		}
		seen[d.Unix()] = row
		px := make([]float64, len(p.Symbols))
		for i, s := range fields[1:] {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
				return nil, &PriceError{Row: row, Message: fmt.Sprintf("%s: price %q is not a positive finite number", p.Symbols[i], s)}
			}
			px[i] = f
		}
		p.Dates = append(p.Dates, d)
		p.Close = append(p.Close, px)
	}
	if header == nil {
		return nil, &PriceError{Message: "empty file: want a header \"date,<symbol>,...\" and one row per trading day"}
	}
	if len(p.Dates) < 2 {
		return nil, &PriceError{Message: "need at least two rows of prices"}
	}
	return p, nil
}

// SplitSpec says where a registered set's validation and test periods
// start: months ("YYYY-MM") or fractions of the set's months (defaults
// 0.25 and 0.65: a quarter warm-up, 40% validation, 35% test).
type SplitSpec struct {
	ValStart     string  `json:"valStart,omitempty"`
	TestStart    string  `json:"testStart,omitempty"`
	ValFraction  float64 `json:"valFraction,omitempty"`
	TestFraction float64 `json:"testFraction,omitempty"`
}

// Default split fractions of a registered set.
const (
	DefaultValFraction  = 0.25
	DefaultTestFraction = 0.65
)

// SplitError is a split that does not fit the data; Field is the
// registration field to change.
type SplitError struct{ Field, Message string }

func (e *SplitError) Error() string { return e.Field + ": " + e.Message }

// resolveSplit turns sp into a split of p, checking that warm-up,
// validation and test each hold at least minPeriodMonths months.
func resolveSplit(p *Panel, sp SplitSpec) (split, error) {
	ms := monthStarts(p.Dates)
	monthOf := func(t time.Time) time.Time { return month(t.Year(), t.Month()) }
	pick := func(field, at string, fr, def float64) (time.Time, error) {
		if at != "" {
			t, err := time.Parse("2006-01", at)
			if err != nil {
				return time.Time{}, &SplitError{field, fmt.Sprintf("%q is not a month YYYY-MM", at)}
			}
			return t, nil
		}
		if fr == 0 {
			fr = def
		}
		if !(fr > 0 && fr < 1) {
			return time.Time{}, &SplitError{strings.Replace(field, "Start", "Fraction", 1), fmt.Sprintf("%g is not between 0 and 1", fr)}
		}
		return monthOf(p.Dates[ms[int(fr*float64(len(ms)))]]), nil
	}
	val, err := pick("valStart", sp.ValStart, sp.ValFraction, DefaultValFraction)
	if err != nil {
		return split{}, err
	}
	test, err := pick("testStart", sp.TestStart, sp.TestFraction, DefaultTestFraction)
	if err != nil {
		return split{}, err
	}
	// Count whole months in each period.
	var warm, nval, ntest int
	for _, d := range ms {
		switch t := p.Dates[d]; {
		case t.Before(val):
			warm++
		case t.Before(test):
			nval++
		default:
			ntest++
		}
	}
	switch {
	case !test.After(val):
		return split{}, &SplitError{"testStart", fmt.Sprintf("test (%s) must start after validation (%s)", test.Format("2006-01"), val.Format("2006-01"))}
	case warm < minPeriodMonths:
		return split{}, &SplitError{"valStart", fmt.Sprintf("leaves %d months of warm-up before validation (%s), want at least %d; the data start %s", warm, val.Format("2006-01"), minPeriodMonths, p.Dates[0].Format(dateLayout))}
	case nval < minPeriodMonths:
		return split{}, &SplitError{"testStart", fmt.Sprintf("validation %s..%s has %d months, want at least %d", val.Format("2006-01"), test.Format("2006-01"), nval, minPeriodMonths)}
	case ntest < minPeriodMonths+1: // the last month start is the end of the data
		return split{}, &SplitError{"testStart", fmt.Sprintf("test from %s has %d months, want at least %d; the data end %s", test.Format("2006-01"), ntest-1, minPeriodMonths, p.Dates[len(p.Dates)-1].Format(dateLayout))}
	}
	return split{valStart: val, testStart: test}, nil
}

// PriceDefinition is a registered price data set as stored (the site
// database's causes table, Type "prices"): its domain name, the CSV as
// given, its checksum and the split it was registered with.
type PriceDefinition struct {
	Type   string    `json:"type"` // "prices"
	Name   string    `json:"name"`
	CSV    string    `json:"csv"`
	SHA256 string    `json:"sha256"`
	Split  SplitSpec `json:"split"`
	// Resolved split, recorded so that it never moves.
	ValStart  string `json:"valStart"`
	TestStart string `json:"testStart"`
}

// PriceDefinitionType is PriceDefinition.Type.
const PriceDefinitionType = "prices"

// IsPriceDefinition reports whether a stored definition is a price set.
func IsPriceDefinition(def []byte) bool {
	var t struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(def, &t) == nil && t.Type == PriceDefinitionType
}

// ErrNotPrices is returned for a definition of another type.
var ErrNotPrices = errors.New("not a price data set definition")

var domainNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// NewPriceDomain registers csv (see ParsePrices) as the price data set of a
// new domain named name, split by sp. The returned domain's Definition is
// what to store; LoadPriceDomain turns it back into the same domain.
func NewPriceDomain(name string, csv []byte, sp SplitSpec) (*Domain, error) {
	if !domainNameRE.MatchString(name) {
		return nil, &SplitError{"name", fmt.Sprintf("%q: use 1-63 lowercase letters, digits and dashes, starting with a letter or digit", name)}
	}
	p, err := ParsePrices(csv)
	if err != nil {
		return nil, err
	}
	spl, err := resolveSplit(p, sp)
	if err != nil {
		return nil, err
	}
	def := &PriceDefinition{Type: PriceDefinitionType, Name: name, CSV: string(csv), SHA256: sha256Hex(csv), Split: sp,
		ValStart: spl.valStart.Format("2006-01"), TestStart: spl.testStart.Format("2006-01")}
	return priceDomain(def, p, spl), nil
}

// LoadPriceDomain rebuilds a registered set's domain from its stored
// definition, checking the CSV against its checksum; the split is the one
// recorded at registration.
func LoadPriceDomain(raw []byte) (*Domain, error) {
	var def PriceDefinition
	if err := json.Unmarshal(raw, &def); err != nil {
		return nil, fmt.Errorf("price data set definition: %w", err)
	}
	if def.Type != PriceDefinitionType {
		return nil, ErrNotPrices
	}
	if !domainNameRE.MatchString(def.Name) {
		return nil, fmt.Errorf("price data set definition: bad name %q", def.Name)
	}
	if got := sha256Hex([]byte(def.CSV)); got != def.SHA256 {
		return nil, fmt.Errorf("price data set %s: prices hash to %s, the definition says %s", def.Name, got, def.SHA256)
	}
	p, err := ParsePrices([]byte(def.CSV))
	if err != nil {
		return nil, fmt.Errorf("price data set %s: %w", def.Name, err)
	}
	spl, err := resolveSplit(p, SplitSpec{ValStart: def.ValStart, TestStart: def.TestStart})
	if err != nil {
		return nil, fmt.Errorf("price data set %s: %w", def.Name, err)
	}
	return priceDomain(&def, p, spl), nil
}

func priceDomain(def *PriceDefinition, p *Panel, spl split) *Domain {
	kind := "a single series, timed against cash"
	if len(p.Symbols) > 1 {
		kind = fmt.Sprintf("a basket of %d, cross-sectional", len(p.Symbols))
	}
	set := &Dataset{Name: def.Name, Symbols: p.Symbols, Split: spl,
		load: func(string) (*Panel, error) { return p, nil },
		help: fmt.Sprintf("the registered price data set %s: %s", def.Name, kind)}
	return &Domain{name: def.Name, sets: []*Dataset{set}, def: def}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// describePrices is Describe for a registered set's domain.
func (d *Domain) describePrices() string {
	set := d.sets[0]
	p, _ := set.load("")
	var b strings.Builder
	fmt.Fprintf(&b, `Domain %q: monthly-rebalanced strategy backtests on a registered price data set, scored by Sharpe.

Data: %d trading days %s..%s of %s (%s), sha256 %s.
Walk-forward split: warm-up before %s; validation = holding months %s until %s; test = %s to the end of the data.
Benchmark: %s; every result reports its excess over it (Sharpe difference and information ratio, each with a standard error).

`, d.name, len(p.Dates), p.Dates[0].Format(dateLayout), p.Dates[len(p.Dates)-1].Format(dateLayout), strings.Join(p.Symbols, ", "),
		set.help, d.def.SHA256[:16], set.Split.valStart.Format("2006-01"), set.Split.valStart.Format("2006-01"), set.Split.testStart.Format("2006-01"),
		set.Split.testStart.Format("2006-01"), set.Benchmark())
	b.WriteString(commonDescription)
	d.describeParams(&b)
	return b.String()
}

// DatasetInfo summarises the data set of a registered set's domain.
type DatasetInfo struct {
	Symbols   []string
	Days      int
	From, To  string
	Benchmark string
}

// DatasetInfo describes the domain's (first) data set; zero for the
// built-in domain, whose files are read at evaluation time.
func (d *Domain) DatasetInfo() DatasetInfo {
	if d.def == nil {
		return DatasetInfo{}
	}
	set := d.sets[0]
	p, _ := set.load("")
	return DatasetInfo{Symbols: p.Symbols, Days: p.Days(), From: p.Dates[0].Format(dateLayout), To: p.Dates[p.Days()-1].Format(dateLayout),
		Benchmark: set.Benchmark()}
}
