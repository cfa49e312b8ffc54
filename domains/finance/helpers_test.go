package finance

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// testDataDir is HYPERSPACE_DATA_DIR or ../../../shared/data; tests that
// need the real files skip when they are absent.
func testDataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HYPERSPACE_DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	for _, p := range []string{DowPath(dir), SP500Path(dir)} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("finance data not found at %s; set HYPERSPACE_DATA_DIR to run this test", p)
		}
	}
	return dir
}

func evalOpts(t testing.TB) domains.EvalOptions {
	return domains.EvalOptions{DataDir: testDataDir(t)}
}

func date(s string) time.Time {
	d, err := time.Parse(dateLayout, s)
	if err != nil {
		panic(err)
	}
	return d
}

// synthPanel is a deterministic random-walk panel of n assets on every
// weekday from from to to; asset i has daily volatility (1+i)/200.
func synthPanel(n int, from, to string, seed uint64) *Panel {
	rng := rand.New(rand.NewPCG(seed, 7))
	p := &Panel{}
	for i := range n {
		p.Symbols = append(p.Symbols, string(rune('A'+i)))
	}
	px := make([]float64, n)
	for i := range px {
		px[i] = 50 + 10*float64(i)
	}
	for d := date(from); !d.After(date(to)); d = d.AddDate(0, 0, 1) {
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		row := make([]float64, n)
		for i := range px {
			px[i] *= 1 + 0.0003 + float64(1+i)/200*rng.NormFloat64()
			row[i] = px[i]
		}
		p.Dates = append(p.Dates, d)
		p.Close = append(p.Close, row)
	}
	return p
}

// specOf decodes a config on top of the baseline (must be valid).
func specOf(t testing.TB, c domains.Config) spec {
	t.Helper()
	n, err := New().Validate(c)
	if err != nil {
		t.Fatal(err)
	}
	return specFrom(n)
}
