package webmesh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/memreplica"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// chromium returns the headless Chromium to drive (HYPERSPACE_CHROMIUM,
// else /usr/bin/chromium; scripts/ensure-chromium.sh installs it), or
// skips.
func chromium(tb testing.TB) string {
	tb.Helper()
	path := os.Getenv("HYPERSPACE_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		tb.Skipf("no Chromium at %s (set HYPERSPACE_CHROMIUM or run scripts/ensure-chromium.sh): %v", path, err)
	}
	return path
}

// goNode is a loopback test node (p2ptest's config at p2ptest.Difficulty),
// listening for browser peers when ws is set.
type goNode struct {
	*p2p.Node
	key     crypto.PrivKey
	replica *memreplica.Replica
}

func startNode(tb testing.TB, ctx context.Context, ws bool, bootstrap ...string) *goNode {
	tb.Helper()
	key, err := pow.MintKey(ctx, p2ptest.Difficulty)
	if err != nil {
		tb.Fatal(err)
	}
	r := memreplica.New()
	o := p2ptest.Options{Mutate: func(c *p2p.Config) {
		if ws {
			c.WebSocketListenAddrs = []string{p2p.DefaultWebSocketListenAddr}
		}
	}}
	n, err := p2p.New(ctx, o.Config(key, r, bootstrap...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return &goNode{Node: n, key: key, replica: r}
}

// tab is a headless Chromium tab running the /mesh/ page served by an API
// whose node is target.
type tab struct {
	tb  testing.TB
	ctx context.Context
}

func openTab(tb testing.TB, target *goNode) *tab {
	tb.Helper()
	return openTabOn(tb, &api.Server{Node: &api.NetworkNode{P2P: target.Node}, PublicReads: true})
}

// openTabOn opens the page served by srv.
func openTabOn(tb testing.TB, srv *api.Server) *tab {
	tb.Helper()
	exe := chromium(tb)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	tb.Cleanup(hs.Close)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			}
			tb.Logf("tab console.%s: %s", e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			if d.Exception != nil {
				tb.Logf("tab exception: %s %s", d.Text, d.Exception.Description)
			} else {
				tb.Logf("tab exception: %s", d.Text)
			}
		}
	}))
	tb.Cleanup(func() { cancelB(); cancelA() })
	t := &tab{tb: tb, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+"/mesh/"), chromedp.WaitReady("#join")); err != nil {
		tb.Fatalf("opening %s/mesh/: %v", hs.URL, err)
	}
	return t
}

// eval runs a JavaScript expression (awaiting a promise) and decodes its
// value into out (nil: discard).
func (t *tab) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(t.ctx, 60*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return fmt.Errorf("evaluating %s: %w", expr, err)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (t *tab) mustEval(expr string, out any) {
	t.tb.Helper()
	if err := t.eval(expr, out); err != nil {
		t.tb.Fatal(err)
	}
}

// join starts the tab's peer and waits until it and target see each other
// on the research topic.
func (t *tab) join(target *goNode) string {
	t.tb.Helper()
	return t.joinWith(target, "")
}

// joinWith is join, sending tok to the bootstrap endpoint.
func (t *tab) joinWith(target *goNode, tok string) string {
	t.tb.Helper()
	var id string
	t.mustEval(fmt.Sprintf(`hsMesh.start({token: %q})`, tok), &id)
	topic := p2p.TopicForDomain(p2ptest.Domain)
	waitFor(t.tb, 30*time.Second, "the tab and the node to see each other on "+topic, func() bool {
		var peers []string
		if err := t.eval(fmt.Sprintf(`hsMesh.topicPeers(%q)`, topic), &peers); err != nil || !slices.Contains(peers, target.ID().String()) {
			return false
		}
		for _, p := range target.Peers() {
			if p.ID.String() == id && slices.Contains(p.Topics, topic) {
				return true
			}
		}
		return false
	})
	return id
}

// received is a finding the tab verified.
type received struct {
	ID         string  `json:"id"`
	From       string  `json:"from"`
	ReceivedAt float64 `json:"receivedAt"` // unix ms, when the message arrived
	VerifiedAt float64 `json:"verifiedAt"` // unix ms, when it had verified
}

func (t *tab) received() []received {
	t.tb.Helper()
	var out []received
	t.mustEval(`hsMesh.received`, &out)
	return out
}

func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserPeer runs the /mesh/ page in headless Chromium against two Go
// nodes on loopback (tab - a - b): findings published by Go nodes reach the
// tab and verify there (one and two hops), a receipt the tab signs and
// publishes reaches both Go nodes through their validators, and a tampered
// one is rejected and counted.
func TestBrowserPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := startNode(t, ctx, true)
	b := startNode(t, ctx, false, a.Addrs()[0].String())
	if len(a.WebSocketAddrs()) == 0 {
		t.Fatalf("node a has no WebSocket address: %v", a.Addrs())
	}
	tb := openTab(t, a)
	tabID := tb.join(a)
	t.Logf("tab peer %s joined via %s", tabID, a.WebSocketAddrs()[0])

	// Go to the tab: from a (one hop) and from b (relayed by a).
	waitFor(t, 20*time.Second, "b and a to mesh", func() bool { return a.Stats().Mesh[p2p.TopicForDomain(p2ptest.Domain)] >= 2 })
	pa := p2ptest.NewPublisher(a.Node, a.key, "agent-a")
	pb := p2ptest.NewPublisher(b.Node, b.key, "agent-b")
	var want []string
	for i := 0; i < 3; i++ {
		for _, p := range []*p2ptest.Publisher{pa, pb} {
			s, err := p.Publish(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, s.ID)
		}
	}
	waitFor(t, 20*time.Second, "the tab to verify the Go nodes' findings", func() bool {
		got := map[string]bool{}
		for _, r := range tb.received() {
			got[r.ID] = true
		}
		for _, id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	})
	var rejected []map[string]any
	tb.mustEval(`hsMesh.rejected`, &rejected)
	if len(rejected) != 0 {
		t.Errorf("the tab rejected honest findings: %v", rejected)
	}

	// The tab to Go: a's validator admits it (the tab's cert vouches for its
	// agent), a relays it to b, which admits it too.
	var id string
	tb.mustEval(fmt.Sprintf(`hsMesh.publish({domain: %q, hypothesis: "a finding from a browser tab", value: 0.25, config: {lr: 0.003, layers: 2}})`, p2ptest.Domain), &id)
	waitFor(t, 20*time.Second, "both Go nodes to admit the tab's receipt "+id, func() bool { return a.replica.Has(id) && b.replica.Has(id) })
	for _, f := range b.Recent(50) {
		if f.Receipt.ID == id && f.From.String() != tabID {
			t.Errorf("b got %s from publisher %s, want the tab %s", id, f.From, tabID)
		}
	}

	// A tampered receipt from the tab: a rejects (and counts) it as bad_id
	// and does not forward it.
	before := a.Stats().Rejected[p2p.ReasonBadID]
	var bad string
	tb.mustEval(fmt.Sprintf(`hsMesh.publish({domain: %q, hypothesis: "honest"}, {tamper: true})`, p2ptest.Domain), &bad)
	waitFor(t, 20*time.Second, "a to reject the tampered receipt", func() bool { return a.Stats().Rejected[p2p.ReasonBadID] > before })
	time.Sleep(500 * time.Millisecond)
	if a.replica.Has(bad) || b.replica.Has(bad) {
		t.Errorf("tampered receipt %s was admitted", bad)
	}
	if n := b.Stats().Rejected[p2p.ReasonBadID]; n != 0 {
		t.Errorf("b saw %d bad_id messages: a forwarded the tampered one", n)
	}
}

// TestMeshPage checks the page's routes: the page and its script are
// served with their CSP, and the bootstrap endpoint names the node's
// WebSocket addresses (404 without any).
func TestMeshPage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := startNode(t, ctx, true)
	plain := startNode(t, ctx, false)
	for _, tc := range []struct {
		node       *goNode
		path       string
		status     int
		typePrefix string
	}{
		{a, "/mesh/", 200, "text/html"},
		{a, "/mesh/mesh.js", 200, "text/javascript"},
		{a, "/mesh/nope.js", 404, ""},
		{a, "/api/v1/mesh/bootstrap", 200, "application/json"},
		{plain, "/api/v1/mesh/bootstrap", 404, "application/json"},
	} {
		srv := httptest.NewServer((&api.Server{Node: &api.NetworkNode{P2P: tc.node.Node}, PublicReads: true}).Handler())
		res, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var boot api.MeshBootstrap
		if tc.path == "/api/v1/mesh/bootstrap" && tc.status == 200 {
			if err := json.NewDecoder(res.Body).Decode(&boot); err != nil {
				t.Fatal(err)
			}
			if len(boot.Addrs) == 0 || !strings.Contains(boot.Addrs[0], "/ws/p2p/"+a.ID().String()) || boot.PowDifficulty != p2ptest.Difficulty ||
				!slices.Equal(boot.Topics, []string{p2p.TopicForDomain(p2ptest.Domain)}) {
				t.Errorf("bootstrap: %+v", boot)
			}
		}
		res.Body.Close()
		srv.Close()
		if res.StatusCode != tc.status || !strings.HasPrefix(res.Header.Get("Content-Type"), tc.typePrefix) {
			t.Errorf("GET %s: %d %s, want %d %s", tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.status, tc.typePrefix)
		}
		if strings.HasPrefix(tc.path, "/mesh/") && tc.status == 200 && !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: no CSP", tc.path)
		}
	}
	// Without PublicReads the bootstrap endpoint needs a token.
	srv := httptest.NewServer((&api.Server{Node: &api.NetworkNode{P2P: a.Node}}).Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/api/v1/mesh/bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("bootstrap without a token: %d, want 401", res.StatusCode)
	}
}

// TestBrowserPeerToken: without --public-reads the page needs a read token
// for the bootstrap endpoint; it is refused without one and joins with one.
func TestBrowserPeerToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	chromium(t)
	st, _ := testenv.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startNode(t, ctx, true)
	tb := openTabOn(t, &api.Server{Store: st, Node: &api.NetworkNode{P2P: a.Node}})
	if err := tb.eval(`hsMesh.start({})`, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("start without a token: %v, want a 401", err)
	}
	tb.joinWith(a, testenv.Token(t, st, token.Read))
}

// TestBrowserRejects: a peer that does not validate (a raw go-libp2p host
// with the nodes' message ids, listening on WebSockets) sends the tab an
// honest finding and forged ones; the tab shows the honest one and rejects
// and counts the others, by the reasons a Go node would give.
func TestBrowserRejects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startNode(t, ctx, true)
	tb := openTab(t, a)
	tb.join(a)

	topic := p2p.TopicForDomain(p2ptest.Domain)
	key, err := pow.MintKey(ctx, p2ptest.Difficulty)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings(p2p.DefaultWebSocketListenAddr), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return p2p.MessageID(m.GetTopic(), m.GetData()) }))
	if err != nil {
		t.Fatal(err)
	}
	top, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := top.Subscribe(); err != nil {
		t.Fatal(err)
	}
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	tb.mustEval(fmt.Sprintf(`hsMesh.dial(%q)`, addrs[0].String()), nil)
	waitFor(t, 20*time.Second, "the raw peer to see the tab on "+topic, func() bool { return len(top.ListPeers()) > 0 })

	agent := p2ptest.AgentKey("raw")
	cert := p2p.NewAgentCert(key, agent.Public())
	mk := func(run int, mutate func(*receipt.Signed, *p2p.AgentCert)) ([]byte, string) {
		s, err := p2ptest.Receipt(agent, p2ptest.Domain, run, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c := cert
		if mutate != nil {
			mutate(&s, &c)
		}
		data, err := p2p.Envelope{Receipt: s, Cert: c}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data, s.ID
	}
	honest, honestID := mk(1, nil)
	tampered, _ := mk(2, func(s *receipt.Signed, _ *p2p.AgentCert) { s.Receipt.Hypothesis += " (tampered)" })
	foreign, _ := mk(3, func(_ *receipt.Signed, c *p2p.AgentCert) { *c = p2p.NewAgentCert(a.key, agent.Public()) })
	for _, d := range [][]byte{tampered, foreign, honest} {
		if err := top.Publish(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "the tab to show the honest finding", func() bool {
		return slices.ContainsFunc(tb.received(), func(r received) bool { return r.ID == honestID })
	})
	var rejected []struct{ Reason, From string }
	waitFor(t, 10*time.Second, "the tab to reject both forgeries", func() bool {
		tb.mustEval(`hsMesh.rejected`, &rejected)
		return len(rejected) >= 2
	})
	var reasons []string
	for _, r := range rejected {
		if r.From != h.ID().String() {
			t.Errorf("rejected a message from %s, want only the raw peer's", r.From)
		}
		reasons = append(reasons, r.Reason)
	}
	slices.Sort(reasons)
	if want := []string{p2p.ReasonBadID, p2p.ReasonSignerMismatch}; !slices.Equal(reasons, want) {
		t.Errorf("tab rejected for %v, want %v", reasons, want)
	}
	var shown int
	tb.mustEval(`document.querySelectorAll('#findings li').length`, &shown)
	if shown != 1 {
		t.Errorf("the page lists %d findings, want 1", shown)
	}
}
