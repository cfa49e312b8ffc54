package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/finance"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// dashPages are the views the benchmark loads, with the API call behind
// each (timed raw from the same browser as a reference).
var dashPages = []struct{ hash, ready, json string }{
	{"#/campaigns", "campaigns", "campaigns?limit=25"},
	{"#/campaigns/big", "campaign", "experiments?limit=25&campaign=big"},
	{"#/leaderboard/search", "leaderboard", "domains/search/leaderboard?limit=50"},
	{"#/experiments", "experiments", "experiments?limit=25"},
	{"#/experiments/{last}", "experiment", "experiments/{last}"},
	{"#/papers", "papers", "papers?limit=50"},
	{"#/points", "points", "pulse/rounds?limit=25"},
	{"#/peers", "peers", "nodes"},
}

// insertExperiments adds experiments from..to-1 to campaign id (domain
// search) through internal/store, each round of ten naming the previous
// round's last as its parent; it returns the last parent's id.
func insertExperiments(tb testing.TB, st *store.Store, id string, from, to int) string {
	tb.Helper()
	ctx := context.Background()
	if err := st.CreateCampaign(ctx, store.Campaign{ID: id, Domain: "search", Status: store.StatusCompleted, Agents: 10, Experiments: to / 10,
		BaselineSeeds: 3, BudgetSeconds: 60, Request: json.RawMessage(`{}`), WorkflowID: "campaign-" + id}); err != nil {
		tb.Fatal(err)
	}
	expID := func(i int) string { return fmt.Sprintf("%s-%064d", id, i)[:64] }
	prev := ""
	if from >= 10 {
		prev = expID(from/10*10 - 1)
	}
	for i := from; i < to; i++ {
		agent := "agent-" + strconv.Itoa(i%10)
		eid := expID(i)
		parents := []string{}
		if prev != "" {
			parents = []string{prev}
		}
		test := 0.5 + float64(i%97)/1000
		rec, _ := json.Marshal(map[string]any{"id": eid, "receipt": map[string]any{
			"hypothesis": fmt.Sprintf("try k1=%.2f (run %d)", 1+float64(i%50)/50, i),
			"config":     map[string]any{"k1": 1 + float64(i%50)/50, "b": 0.75},
			"parents":    parents, "inspiredBy": prev, "domain": "search", "campaign": id, "agent": agent,
			"result":     map[string]any{"values": map[string]float64{"ndcg": 0.4 + float64(i%89)/1000}, "lossCurve": []any{}},
			"noiseFloor": map[string]any{"mean": 0.40, "sd": 0.01, "n": 3, "threshold": 0.02},
		}})
		if _, err := st.InsertExperiment(ctx, store.Experiment{ID: eid, CampaignID: id, Agent: agent, Domain: "search", RunNumber: i/10 + 1,
			Metric: 0.4 + float64(i%89)/1000, TestMetric: &test, Seed: int64(i), Baseline: i < 3, Record: rec}); err != nil {
			tb.Fatal(err)
		}
		if i%10 == 9 {
			prev = eid
		}
	}
	return prev
}

// BenchmarkDashboardPages loads each dashboard view in headless Chromium
// with a small database (one campaign, 30 experiments) and again after
// 10,000 more experiments, and prints load times and their ratio. The time
// of a view is from navigation start until its data is on screen (the
// page's data-ready-ms); the raw fetch of the view's main API call from the
// same page is shown beside it. Run with -benchtime=1x:
//
//	go test ./e2e -run '^$' -bench DashboardPages -benchtime=1x
func BenchmarkDashboardPages(b *testing.B) {
	const repeats = 7
	ctx, stopBrowser := chromium(b)
	st, _ := testenv.Database(b)
	tok := testenv.Token(b, st, token.Read)
	srv := &api.Server{Store: st, Domains: domains.NewRegistry(search.New(), finance.New()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	b.Cleanup(stopBrowser)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/login"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), tok), chromedp.Click(chromedp.CSS(`#login button[type=submit]`)), ready("campaigns")); err != nil {
		b.Fatal(err)
	}
	measure := func(last string) (page, raw map[string]float64) {
		page, raw = map[string]float64{}, map[string]float64{}
		for _, p := range dashPages {
			hash, path := strings.ReplaceAll(p.hash, "{last}", last), strings.ReplaceAll(p.json, "{last}", last)
			var ms, fetchMs []float64
			for range repeats {
				if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(ts.URL+"/"+hash), ready(p.ready)); err != nil {
					b.Fatalf("%s: %v", hash, err)
				}
				readyMs, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("body"), "data-ready-ms"))
				if err != nil {
					b.Fatal(err)
				}
				f, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(async () => { const t = performance.now(); const r = await fetch('/api/v1/`+path+`'); await r.json(); return performance.now() - t; })()`,
					chromedp.EvalAwaitPromise))
				if err != nil {
					b.Fatal(err)
				}
				v, _ := strconv.ParseFloat(readyMs.Value, 64)
				ms, fetchMs = append(ms, v), append(fetchMs, f)
			}
			page[p.ready], raw[p.ready] = median(ms), median(fetchMs)
		}
		return page, raw
	}
	for range b.N {
		small, smallRaw := measure(insertExperiments(b, st, "big", 0, 30))
		t0 := time.Now()
		last := insertExperiments(b, st, "big", 30, 10_030)
		b.Logf("inserted 10,000 experiments through internal/store in %s", time.Since(t0).Round(time.Millisecond))
		big, bigRaw := measure(last)
		var out strings.Builder
		fmt.Fprintf(&out, "\n| view | small DB (30 exp.) | 10,030 exp. | ratio | raw API fetch, small | raw API fetch, 10,030 |\n|---|---:|---:|---:|---:|---:|\n")
		for _, p := range dashPages {
			fmt.Fprintf(&out, "| %s | %.1f ms | %.1f ms | %.2f | %.1f ms | %.1f ms |\n", p.hash, small[p.ready], big[p.ready], big[p.ready]/small[p.ready], smallRaw[p.ready], bigRaw[p.ready])
			b.ReportMetric(big[p.ready], p.ready+"-ms")
		}
		b.Log(out.String())
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
