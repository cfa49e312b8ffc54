package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
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
// none); it only reaches 127.0.0.1.
func chromium(t testing.TB) context.Context {
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
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
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
func view(hash, name string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Evaluate(fmt.Sprintf(`delete document.body.dataset.ready; location.hash = %q; true`, hash), nil),
		chromedp.WaitVisible(`body[data-ready="`+name+`"]`, chromedp.ByQuery),
	}
}

// screenshot saves a full-page PNG and checks it is not blank: many
// colours and a good share of pixels that are not the background.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	var buf []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&buf, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
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
	var n int
	if err := chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n)); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDashboard drives the dashboard in headless Chromium against a real
// stack: log in with a token, get the API's field error back on the form,
// start a search campaign from the form, then open every view with its
// data, and see a gossiped finding arrive on the live feed.
func TestDashboard(t *testing.T) {
	ctx := chromium(t)
	dir := artifacts(t)
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	nodes := s.startNodes(t, 2)
	s.serve(&api.Server{Store: s.st, Blob: s.blob, Temporal: s.tc, Domains: s.registry, Logger: s.acts.Logger,
		Namespace: s.ts.GetDefaultNamespace(), TemporalUIURL: "http://127.0.0.1:8233",
		Node: &api.NetworkNode{P2P: nodes[0].P2P, Replica: nodes[0].Replica}})
	ctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	defer cancel()
	start := time.Now()

	// Not logged in: the page sends the browser to /login.
	var loc string
	if err := chromedp.Run(ctx, chromedp.Navigate(s.api.URL+"/"), chromedp.WaitVisible(`#token`, chromedp.ByID), chromedp.Location(&loc)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "/login") {
		t.Fatalf("not redirected to /login: %s", loc)
	}
	if err := chromedp.Run(ctx, chromedp.SendKeys(`#token`, s.token, chromedp.ByID), chromedp.Click(`#login button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`body[data-ready="campaigns"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("log in: %v", err)
	}
	screenshot(t, ctx, dir, "01-campaigns-empty")

	// A value the API refuses: its field error appears beside the field.
	var msg string
	if err := chromedp.Run(ctx,
		chromedp.SetValue(`#start-campaign select[name=domain]`, "search", chromedp.ByQuery),
		chromedp.SendKeys(`#start-campaign input[name=agents]`, "0", chromedp.ByQuery),
		chromedp.Click(`#start-campaign button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-error-for="agents"]:not(:empty)`, chromedp.ByQuery),
		chromedp.Text(`[data-error-for="agents"]`, &msg, chromedp.ByQuery)); err != nil {
		t.Fatalf("field error: %v", err)
	}
	if !strings.Contains(msg, "agents: must be between 1") {
		t.Fatalf("field error %q", msg)
	}
	screenshot(t, ctx, dir, "02-form-error")
	// The form starts a campaign and shows its page.
	if err := chromedp.Run(ctx,
		chromedp.SetValue(`#start-campaign input[name=agents]`, "1", chromedp.ByQuery),
		chromedp.SendKeys(`#start-campaign input[name=id]`, "dash", chromedp.ByQuery),
		chromedp.SendKeys(`#start-campaign input[name=experiments]`, "3", chromedp.ByQuery),
		chromedp.SendKeys(`#start-campaign input[name=baselineSeeds]`, "2", chromedp.ByQuery),
		chromedp.SendKeys(`#start-campaign input[name=seed]`, "7", chromedp.ByQuery),
		chromedp.SendKeys(`#start-campaign input[name=paperEvery]`, "3", chromedp.ByQuery),
		chromedp.Click(`#start-campaign button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`body[data-ready="campaign"]`, chromedp.ByQuery), chromedp.Location(&loc)); err != nil {
		t.Fatalf("start from the form: %v", err)
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
		if !e.Baseline && strings.Contains(string(e.Record), `"parents":["`) {
			child = e.ID
		}
	}
	if child == "" {
		t.Fatal("no experiment with a parent")
	}

	pages := []struct {
		hash, ready, want string // want: a selector that must match something
	}{
		{"#/campaigns", "campaigns", `table[data-table=campaigns] a[href="#/campaigns/dash"]`},
		{"#/campaigns/dash", "campaign", `table[data-table=experiments] tbody tr`},
		{"#/leaderboards", "leaderboards", `ul.domains a[href="#/leaderboard/search"]`},
		{"#/leaderboard/search", "leaderboard", `table[data-table=noise-floor] tbody tr`},
		{"#/experiments", "experiments", `table[data-table=experiments] tbody tr`},
		{"#/experiments/" + child, "experiment", `ol.lineage li + li`},
		{"#/papers", "papers", `table[data-table=papers] a[href="#/papers/` + paperID + `"]`},
		{"#/papers/" + paperID, "paper", `.review`},
		{"#/breakthroughs", "breakthroughs", `table[data-table=breakthroughs]`},
		{"#/training", "training", `table[data-table=training]`},
		{"#/points", "points", `table[data-table=pulse]`},
		{"#/peers", "peers", `table[data-table=peers] tbody tr`},
	}
	for i, p := range pages {
		if err := chromedp.Run(ctx, view(p.hash, p.ready)); err != nil {
			var body string
			_ = chromedp.Run(ctx, chromedp.Text(`#main`, &body, chromedp.ByID))
			t.Fatalf("%s: %v (page: %.500s)", p.hash, err, body)
		}
		if n := count(ctx, t, p.want); n == 0 {
			var body string
			_ = chromedp.Run(ctx, chromedp.Text(`#main`, &body, chromedp.ByID))
			t.Fatalf("%s: nothing matches %s (page: %.800s)", p.hash, p.want, body)
		}
		if n := count(ctx, t, `[role=alert]`); n > 0 {
			t.Fatalf("%s shows an error", p.hash)
		}
		screenshot(t, ctx, dir, fmt.Sprintf("%02d-%s", i+3, p.ready))
	}
	// Workflows link to the Temporal UI.
	if n := count(ctx, t, `a.temporal[href^="http://127.0.0.1:8233/namespaces/"]`); n == 0 {
		if err := chromedp.Run(ctx, view("#/campaigns/dash", "campaign")); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(ctx, t, `a.temporal[href="http://127.0.0.1:8233/namespaces/`+s.ts.GetDefaultNamespace()+`/workflows/campaign-dash"]`); n == 0 {
		if err := chromedp.Run(ctx, view("#/campaigns/dash", "campaign")); err != nil {
			t.Fatal(err)
		}
		if n := count(ctx, t, `a.temporal[href$="/workflows/campaign-dash"]`); n == 0 {
			t.Fatal("no Temporal UI link to the campaign's workflow")
		}
	}

	// The live feed: a finding gossiped by node 1 appears within seconds.
	if err := chromedp.Run(ctx, view("#/feed", "feed"), chromedp.WaitVisible(`#feed-state[data-live="1"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("feed: %v", err)
	}
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
		err = chromedp.Run(wctx, chromedp.WaitVisible(`tr[data-finding="`+rec.ID+`"]`, chromedp.ByQuery))
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
