package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// chromium returns a headless Chromium context (skipping when there is
// none); it only reaches 127.0.0.1. The browser stops at the test's end, or
// when stop is called (before a server it holds an EventSource on can close).
func chromium(t testing.TB) (ctx context.Context, stop func()) {
	t.Helper()
	bin := os.Getenv("HYPERSPACE_CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Chromium at %s (scripts/ensure-chromium.sh installs it; HYPERSPACE_CHROMIUM names another)", bin)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	stop = func() { cancelB(); cancelA() }
	t.Cleanup(stop)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx, stop
}

// artifacts is where screenshots go: $HYPERSPACE_ARTIFACTS/<test> or a
// temporary folder.
func artifacts(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv("HYPERSPACE_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// view shows a dashboard view by its hash and waits until its data is on
// screen (the page sets <body data-ready=name>).
func view(hash, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		discard(chromedp.Evaluate[bool](fmt.Sprintf(`delete document.body.dataset.ready; location.hash = %q; true`, hash))),
		ready(name),
	)
}

// ready waits until the view name has its data on screen.
func ready(name string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`body[data-ready="` + name + `"]`))
}

func discard[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// do runs steps with a time limit; on failure it reports the page's state.
func do(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`'ready=' + (document.body.dataset.ready || '') + ' at ' + location.href`))
		t.Fatalf("%s: %v (page %s: %.1000s)", what, err, state, pageText(ctx))
	}
}

// pageText is the text of the dashboard's main area, for failure messages.
func pageText(ctx context.Context) string {
	s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("main")))
	return s
}

// screenshot saves a full-page PNG and checks it is not blank: many
// colours and a good share of pixels that are not the background.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err = os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	colours, busy, total := inkOf(img)
	if colours < 30 || busy*100 < total*3 {
		t.Fatalf("%s looks blank: %d colours, %d of %d pixels off the background", path, colours, busy, total)
	}
}

// inkOf counts an image's distinct colours and the pixels that differ from
// its most common colour (the background).
func inkOf(img image.Image) (colours, busy, total int) {
	hist := map[uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			hist[(r>>8)<<16|(g>>8)<<8|bl>>8]++
		}
	}
	most := 0
	for _, n := range hist {
		most = max(most, n)
	}
	total = b.Dx() * b.Dy()
	return len(hist), total - most, total
}

func count(ctx context.Context, t *testing.T, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDashboard drives the dashboard in headless Chromium against a real
// stack: log in with a token, get the API's field error back on the form,
// start a search campaign from the form, then open every view with its
// data, and see a gossiped finding arrive on the live feed.
func TestDashboard(t *testing.T) {
	ctx, stopBrowser := chromium(t)
	dir := artifacts(t)
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	nodes := s.startNodes(t, 2)
	s.serve(&api.Server{Store: s.st, Blob: s.blob, Temporal: s.tc, Domains: s.registry, Logger: s.acts.Logger,
		Namespace: s.ts.GetDefaultNamespace(), TemporalUIURL: "http://127.0.0.1:8233",
		Node: &api.NetworkNode{P2P: nodes[0].P2P, Replica: nodes[0].Replica}})
	// The feed's EventSource keeps a request open: stop the browser before
	// the API server closes (cleanups run last registered first).
	t.Cleanup(stopBrowser)
	start := time.Now()

	// Not logged in: the page sends the browser to /login.
	do(t, ctx, "open /", chromedp.Navigate(s.api.URL+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "/login") {
		t.Fatalf("not redirected to /login: %s", loc)
	}
	do(t, ctx, "log in", chromedp.SendKeys(chromedp.ID("token"), s.token), chromedp.Click(chromedp.CSS(`#login button[type=submit]`)), ready("campaigns"))
	screenshot(t, ctx, dir, "01-campaigns-empty")

	// A value the API refuses: its field error appears beside the field.
	do(t, ctx, "field error",
		chromedp.SetValue(chromedp.CSS(`#start-campaign select[name=domain]`), "search"),
		chromedp.SendKeys(chromedp.CSS(`#start-campaign input[name=agents]`), "0"),
		chromedp.Click(chromedp.CSS(`#start-campaign button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-error-for="agents"]:not(:empty)`)))
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-error-for="agents"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "agents: must be between 1") {
		t.Fatalf("field error %q", msg)
	}
	screenshot(t, ctx, dir, "02-form-error")
	// The form starts a campaign and shows its page.
	in := func(name string) chromedp.CSS { return chromedp.CSS(`#start-campaign input[name=` + name + `]`) }
	do(t, ctx, "start from the form",
		chromedp.SetValue(in("agents"), "1"), chromedp.SendKeys(in("id"), "dash"), chromedp.SendKeys(in("experiments"), "3"),
		chromedp.SendKeys(in("baselineSeeds"), "3"), chromedp.SendKeys(in("seed"), "7"), chromedp.SendKeys(in("paperEvery"), "3"),
		chromedp.Click(chromedp.CSS(`#start-campaign button[type=submit]`)), ready("campaign"))
	if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "#/campaigns/dash") {
		t.Fatalf("after starting: %s", loc)
	}
	v := s.waitCampaign("dash", 90*time.Second)
	if v.Status != store.StatusCompleted {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	t.Logf("campaign done after %s", time.Since(start).Round(time.Millisecond))
	// Its paper, reviewed on a node.
	var paperID string
	deadline := time.Now().Add(60 * time.Second)
	for paperID == "" {
		ps, _ := s.st.ListPapers(context.Background(), store.PaperFilter{CampaignID: "dash"})
		for _, p := range ps {
			if rs, _ := s.st.ListReviews(context.Background(), p.ID); len(rs) > 0 {
				paperID = p.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reviewed paper within 60 s (%d papers)", len(ps))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// An experiment with a parent, for the diff and the lineage.
	var child string
	for _, e := range s.allExperiments("dash") {
		var sr struct {
			Receipt struct{ Parents []string } `json:"receipt"`
		}
		if err := json.Unmarshal(e.Record, &sr); err == nil && !e.Baseline && len(sr.Receipt.Parents) > 0 {
			child = e.ID
		}
	}
	if child == "" {
		t.Fatal("no experiment with a parent")
	}

	// An ML campaign (its experiments carry loss curves) and a DiLoCo
	// training run (loss by round, bytes, contributors), both through the
	// API, and a pulse round with ledger entries, for the views that show
	// them with real data.
	ml := s.startCampaign(map[string]any{"domain": "ml", "id": "dash-ml", "agents": 1, "experiments": 1, "baselineSeeds": 3, "seed": 5, "budget": 4, "baseline": tinyML, "paperEvery": 0})
	code, body := s.do(http.MethodPost, "/api/v1/training-runs", map[string]any{"id": "dash-dl", "config": tinyML, "workers": 2, "innerSteps": 20,
		"rounds": 2, "seed": 3, "minDeadlineSec": 3})
	if code != http.StatusCreated {
		t.Fatalf("start training run: %d %s", code, body)
	}
	if v := s.waitCampaign(ml.ID, 3*time.Minute); v.Status != store.StatusCompleted {
		t.Fatalf("ML campaign %s: %s", v.Status, v.Error)
	}
	var mlExp string
	for _, e := range s.allExperiments(ml.ID) {
		if strings.Contains(string(e.Record), `"lossCurve":[[`) {
			mlExp = e.ID
		}
	}
	if mlExp == "" {
		t.Fatal("no ML experiment with a loss curve")
	}
	for deadline := time.Now().Add(3 * time.Minute); ; {
		code, body := s.do(http.MethodGet, "/api/v1/training-runs/dash-dl", nil)
		if code == http.StatusOK && strings.Contains(string(body), `"status":"completed"`) {
			break
		}
		if time.Now().After(deadline) || strings.Contains(string(body), `"status":"failed"`) {
			t.Fatalf("training run: %d %.600s", code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	pctx := context.Background()
	if err := s.st.StartPulseRound(pctx, 1, 90000, "pulse-1"); err != nil {
		t.Fatal(err)
	}
	r1 := int64(1)
	if _, _, err := s.st.AppendLedger(pctx, []store.LedgerEntry{{Key: "presence/1/" + nodes[0].PeerID(), PeerID: nodes[0].PeerID(), Round: &r1, Amount: 12.5, Reason: "presence"}}); err != nil {
		t.Fatal(err)
	}

	pages := []struct {
		hash, ready, want string // want: a selector that must match something
		also              string // and another (optional)
	}{
		{"#/experiments/" + mlExp, "experiment", `[data-chart=loss] .uplot`, ""},
		{"#/training/dash-dl", "training-run", `[data-chart=rounds] .uplot`, `table[data-table=contributors] tbody tr:not(.empty)`},
		{"#/points", "points", `table[data-table=balances] tbody tr:not(.empty)`, ""},
		{"#/campaigns", "campaigns", `table[data-table=campaigns] a[href="#/campaigns/dash"]`, ""},
		{"#/campaigns/dash", "campaign", `table[data-table=experiments] tbody tr`, ""},
		{"#/leaderboards", "leaderboards", `ul.domains a[href="#/leaderboard/search"]`, ""},
		{"#/leaderboard/search", "leaderboard", `table[data-table=noise-floor] tbody tr`, ""},
		{"#/experiments", "experiments", `table[data-table=experiments] tbody tr`, ""},
		{"#/experiments/" + child, "experiment", `ol.lineage li + li`, ""},
		{"#/papers", "papers", `table[data-table=papers] a[href="#/papers/` + paperID + `"]`, ""},
		{"#/papers/" + paperID, "paper", `.review`, ""},
		{"#/breakthroughs", "breakthroughs", `table[data-table=breakthroughs]`, ""},
		{"#/training", "training", `table[data-table=training] a[href="#/training/dash-dl"]`, ""},
		{"#/points", "points", `table[data-table=pulse] tbody tr:not(.empty)`, ""},
		{"#/peers", "peers", `table[data-table=peers] tbody tr`, ""},
	}
	for i, p := range pages {
		do(t, ctx, p.hash, view(p.hash, p.ready))
		for _, want := range []string{p.want, p.also} {
			if want == "" {
				continue
			}
			if n := count(ctx, t, want); n == 0 {
				t.Fatalf("%s: nothing matches %s (page: %.800s)", p.hash, want, pageText(ctx))
			}
		}
		if n := count(ctx, t, `[role=alert]`); n > 0 {
			t.Fatalf("%s shows an error", p.hash)
		}
		screenshot(t, ctx, dir, fmt.Sprintf("%02d-%s", i+3, p.ready))
	}
	// Workflows link to their pages in the Temporal UI: the campaign's and its agent's.
	do(t, ctx, "campaign page", view("#/campaigns/dash", "campaign"))
	ui := "http://127.0.0.1:8233/namespaces/" + s.ts.GetDefaultNamespace() + "/workflows/"
	for _, wf := range []string{"campaign-dash", "dash%2F" + workflows.AgentName(0)} {
		if n := count(ctx, t, `a.temporal[href="`+ui+wf+`"]`); n == 0 {
			t.Fatalf("no Temporal UI link to %s", wf)
		}
	}

	// The live feed: a finding gossiped by node 1 appears within seconds.
	do(t, ctx, "feed", view("#/feed", "feed"), chromedp.WaitVisible(chromedp.CSS(`#feed-state[data-live="1"]`)))
	key := p2ptest.AgentKey("dashboard")
	deadline = time.Now().Add(30 * time.Second)
	for run := 1; ; run++ {
		rec, err := p2ptest.Receipt(key, "search", run, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		shared := time.Now()
		if err := nodes[1].Share(context.Background(), rec, key); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		err = chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(`tr[data-finding="`+rec.ID+`"]`)))
		wcancel()
		if err == nil {
			t.Logf("finding %s on the feed %s after its gossip", rec.ID[:12], time.Since(shared).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no gossiped finding on the feed within 30 s")
		}
	}
	screenshot(t, ctx, dir, "99-feed")
	t.Logf("dashboard test took %s", time.Since(start).Round(time.Millisecond))
}
