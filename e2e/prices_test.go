package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// pricesCSV is a deterministic random walk of n assets on weekdays of
// 2012-2019 (8 years, 96 months).
func pricesCSV(n int) string {
	rng := rand.New(rand.NewPCG(9, 9))
	var b strings.Builder
	b.WriteString("date")
	for i := range n {
		fmt.Fprintf(&b, ",S%d", i)
	}
	b.WriteString("\n")
	px := make([]float64, n)
	for i := range px {
		px[i] = 20 + float64(i)
	}
	for d := time.Date(2012, 1, 2, 0, 0, 0, 0, time.UTC); d.Year() < 2020; d = d.AddDate(0, 0, 1) {
		if d.Weekday() == time.Saturday || d.Weekday() == time.Sunday {
			continue
		}
		b.WriteString(d.Format("2006-01-02"))
		for i := range px {
			px[i] *= 1 + 0.0004 + 0.012*rng.NormFloat64()
			fmt.Fprintf(&b, ",%.4f", px[i])
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestPriceDatasetCampaign registers a user's price history over REST, has
// bad files rejected with the first bad row named, and runs a finance
// campaign on the new domain through Temporal, PostgreSQL and S3.
func TestPriceDatasetCampaign(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	good := pricesCSV(6)
	lines := strings.Split(good, "\n")
	type apiErr struct {
		Error struct{ Code, Message, Field string }
	}
	for name, tc := range map[string]struct {
		path, csv, field, msg string
	}{
		"duplicate date": {"?name=dup", strings.Join(append(append([]string{}, lines[:4]...), append([]string{lines[3]}, lines[4:]...)...), "\n"), "body:row 5", "duplicate date"},
		"out of order":   {"?name=ooo", strings.Join(append(append([]string{}, lines[:3]...), append([]string{lines[4], lines[3]}, lines[5:]...)...), "\n"), "body:row 5", "dates must increase"},
		"bad price":      {"?name=neg", strings.Replace(good, lines[10], strings.Replace(lines[10], ",", ",-", 2), 1), "body:row 11", "positive finite"},
		"no name":        {"", good, "name", "?name="},
		"bad name":       {"?name=Not_OK", good, "name", "lowercase"},
		"taken":          {"?name=finance", good, "", "already exists"},
		"split":          {"?name=sp&valStart=2012-02", good, "valStart", "warm-up"},
		"fraction":       {"?name=sp&testFraction=x", good, "testFraction", "not a number"},
	} {
		code, body := s.post("/api/v1/finance/datasets"+tc.path, "text/csv", tc.csv)
		var e apiErr
		_ = json.Unmarshal(body, &e)
		if code < 400 || code >= 500 || e.Error.Field != tc.field || !strings.Contains(e.Error.Message, tc.msg) {
			t.Errorf("%s: %d %s, want field %q and %q", name, code, body, tc.field, tc.msg)
		}
	}
	if code, _ := s.post("/api/v1/finance/datasets?name=x", "application/json", good); code != http.StatusUnsupportedMediaType {
		t.Errorf("wrong content type: %d", code)
	}

	code, body := s.post("/api/v1/finance/datasets?name=my-basket&valStart=2014-01&testStart=2017-01", "text/csv", good)
	if code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	var created struct {
		Dataset struct {
			Name, Benchmark, ValStart, TestStart string
			Symbols                              []string
			Days                                 int
		}
	}
	if err := json.Unmarshal(body, &created); err != nil || created.Dataset.Benchmark != "equal" || len(created.Dataset.Symbols) != 6 ||
		created.Dataset.ValStart != "2014-01" || created.Dataset.Days < 2000 {
		t.Fatalf("created %s (%v)", body, err)
	}
	if code, body := s.post("/api/v1/finance/datasets?name=my-basket", "text/csv", good); code != http.StatusConflict {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	if code, body := s.do(http.MethodGet, "/api/v1/finance/datasets", nil); code != 200 || !strings.Contains(string(body), `"my-basket"`) {
		t.Fatalf("list: %d %s", code, body)
	}

	v := s.startCampaign(map[string]any{"domain": "my-basket", "agents": 1, "experiments": 4, "seed": 1, "budget": 10})
	v = s.waitCampaign(v.ID, 2*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	runs := s.allExperiments(v.ID)
	if len(runs) < 5 {
		t.Fatalf("%d experiments", len(runs))
	}
	for _, r := range runs {
		var sr receipt.Signed
		_ = json.Unmarshal(r.Record, &sr)
		if sr.Receipt.Domain != "my-basket" || sr.Receipt.Config["universe"] != "my-basket" {
			t.Fatalf("receipt of domain %s, config %v", sr.Receipt.Domain, sr.Receipt.Config)
		}
		// Every run is compared with the benchmark (equal weight); the
		// baseline is the benchmark itself.
		vals := sr.Receipt.Result.Values
		if vals["valBenchSharpe"] == 0 || math.IsNaN(vals["valExcessSharpe"]) {
			t.Fatalf("run %d values %v", r.RunNumber, vals)
		}
		if bench := sr.Receipt.Config["strategy"] == "equal"; bench != (vals["valExcessSharpeSE"] == 0) {
			t.Fatalf("run %d (%v): excess SE %v", r.RunNumber, sr.Receipt.Config["strategy"], vals["valExcessSharpeSE"])
		}
	}
}
