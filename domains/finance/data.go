package finance

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Panel is a table of daily closing prices: Close[t][i] is the close of
// Symbols[i] on Dates[t]. Dates are strictly increasing trading days and
// every price is finite and positive. A Panel is read-only once loaded
// (loaded panels are cached and shared between evaluations).
type Panel struct {
	Dates   []time.Time
	Symbols []string
	Close   [][]float64
}

// Days is the number of trading days in the panel.
func (p *Panel) Days() int { return len(p.Dates) }

const dateLayout = "2006-01-02"

// DowPath is where the Dow Jones 30 closes live under a data directory.
func DowPath(dataDir string) string {
	return filepath.Join(dataDir, "finance", "dowjones30-1991-2000.csv")
}

// SP500Path is where the S&P 500 index history lives under a data directory.
func SP500Path(dataDir string) string {
	return filepath.Join(dataDir, "finance", "sp500-daily-2000-2020.csv")
}

// ParseDow reads the R fBasics DowJones30 export: a header
// `"","X.Y..m..d","AA",...` followed by rows of (row number, date, 30
// closes). The closes are split- but not dividend-adjusted.
//
// The file's first row (1990-12-31) is a copy of the second (1991-01-02).
// When the first two rows carry identical prices the first is dropped, so
// the series starts on 1991-01-02 and no artificial zero-return day is
// created. Any other repeated row is kept (it would be a genuine flat day).
func ParseDow(r io.Reader) (*Panel, error) {
	rows, err := readCSV(r)
	if err != nil {
		return nil, fmt.Errorf("dow30: %w", err)
	}
	if len(rows) < 3 || len(rows[0]) < 3 {
		return nil, errors.New("dow30: need a header, a date column and at least one symbol and two rows")
	}
	p := &Panel{Symbols: slices.Clone(rows[0][2:])}
	for k, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			return nil, fmt.Errorf("dow30: row %d has %d fields, want %d", k+2, len(row), len(rows[0]))
		}
		if err := p.appendRow(row[1], row[2:]); err != nil {
			return nil, fmt.Errorf("dow30: row %d: %w", k+2, err)
		}
	}
	if slices.Equal(p.Close[0], p.Close[1]) {
		p.Dates, p.Close = p.Dates[1:], p.Close[1:]
	}
	return p, p.check()
}

// ParseSP500 reads the vega-datasets S&P 500 file (date, open, high, low,
// close, adjclose, volume) and returns a one-symbol panel ("SPX") of the
// adjclose column. The S&P 500 is a price index, so its returns exclude
// dividends (adjclose equals close here).
func ParseSP500(r io.Reader) (*Panel, error) {
	rows, err := readCSV(r)
	if err != nil {
		return nil, fmt.Errorf("sp500: %w", err)
	}
	if len(rows) < 3 {
		return nil, errors.New("sp500: need a header and at least two rows")
	}
	dc, pc := slices.Index(rows[0], "date"), slices.Index(rows[0], "adjclose")
	if dc < 0 || pc < 0 {
		return nil, fmt.Errorf("sp500: header %v lacks date or adjclose", rows[0])
	}
	p := &Panel{Symbols: []string{"SPX"}}
	for k, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			return nil, fmt.Errorf("sp500: row %d has %d fields, want %d", k+2, len(row), len(rows[0]))
		}
		if err := p.appendRow(row[dc], row[pc:pc+1]); err != nil {
			return nil, fmt.Errorf("sp500: row %d: %w", k+2, err)
		}
	}
	return p, p.check()
}

func readCSV(r io.Reader) ([][]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	return cr.ReadAll()
}

func (p *Panel) appendRow(date string, prices []string) error {
	d, err := time.Parse(dateLayout, strings.TrimSpace(date))
	if err != nil {
		return fmt.Errorf("bad date %q", date)
	}
	px := make([]float64, len(prices))
	for i, s := range prices {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
			return fmt.Errorf("%s: bad price %q for %s", date, s, p.Symbols[i])
		}
		px[i] = f
	}
	p.Dates = append(p.Dates, d)
	p.Close = append(p.Close, px)
	return nil
}

func (p *Panel) check() error {
	for t := 1; t < len(p.Dates); t++ {
		if !p.Dates[t].After(p.Dates[t-1]) {
			return fmt.Errorf("dates not increasing at %s", p.Dates[t].Format(dateLayout))
		}
	}
	return nil
}

// panelCache holds parsed files by absolute path; an entry is reused while
// the file's size and modification time are unchanged.
var panelCache struct {
	mu sync.Mutex
	m  map[string]cachedPanel
}

type cachedPanel struct {
	size  int64
	mtime time.Time
	p     *Panel
}

// loadPanel parses path with parse, caching the result.
func loadPanel(path string, parse func(io.Reader) (*Panel, error)) (*Panel, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	panelCache.mu.Lock()
	defer panelCache.mu.Unlock()
	if c, ok := panelCache.m[path]; ok && c.size == st.Size() && c.mtime.Equal(st.ModTime()) {
		return c.p, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if panelCache.m == nil {
		panelCache.m = map[string]cachedPanel{}
	}
	panelCache.m[path] = cachedPanel{size: st.Size(), mtime: st.ModTime(), p: p}
	return p, nil
}

// LoadDow parses (and caches) DowPath(dataDir) with ParseDow.
func LoadDow(dataDir string) (*Panel, error) { return loadPanel(DowPath(dataDir), ParseDow) }

// LoadSP500 parses (and caches) SP500Path(dataDir) with ParseSP500.
func LoadSP500(dataDir string) (*Panel, error) { return loadPanel(SP500Path(dataDir), ParseSP500) }
