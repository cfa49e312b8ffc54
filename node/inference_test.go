package node_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/modelserve"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/node"
)

// tinyCheckpoint trains a small ML model for a few steps (real weights of
// the real trainer, deterministic).
func tinyCheckpoint(t testing.TB) []byte {
	t.Helper()
	corpus, err := ml.LoadCorpus(testenv.DataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"nLayers": 1.0, "dModel": 32.0, "nHeads": 2.0, "contextLength": 128.0, "batchSize": 4.0, "tokenBudget": 20000.0, "warmupSteps": 2.0}
	st, err := ml.NewState(cfg, corpus.VocabSize(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ml.TrainSteps(context.Background(), st, corpus.Train, 20, 20, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := ml.Checkpoint(st.Config, corpus.Vocab, st.Params, 1, 20)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

type meshMember struct {
	n   *node.Node
	svc *inference.Service
	reg *modelserve.Registry
	api *httptest.Server
}

func member(t testing.TB, dir string, bootstrap []string, ck []byte) *meshMember {
	return memberWith(t, dir, bootstrap, ck, node.InferenceOptions{CacheSampleRate: -1})
}

func memberWith(t testing.TB, dir string, bootstrap []string, ck []byte, o node.InferenceOptions) *meshMember {
	t.Helper()
	n := start(t, dir, bootstrap)
	t.Cleanup(func() { n.Close() })
	m := &meshMember{n: n, svc: &inference.Service{}, reg: &modelserve.Registry{Load: modelserve.LoadML(nil)}}
	m.reg.Service = m.svc
	if err := n.ServeInference(context.Background(), m.svc, m.reg, o); err != nil {
		t.Fatal(err)
	}
	if ck != nil {
		tm, err := m.reg.Load("tiny", time.Now(), ck)
		if err != nil {
			t.Fatal(err)
		}
		m.svc.SetText(tm)
		m.reg.OnChange()
	}
	m.api = httptest.NewServer(m.svc.Handler("/v1"))
	t.Cleanup(m.api.Close)
	return m
}

func chat(t *testing.T, m *meshMember, body string) (int, inference.ChatResponse, string) {
	t.Helper()
	resp, err := http.Post(m.api.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	var r inference.ChatResponse
	_ = json.Unmarshal(raw, &r)
	return resp.StatusCode, r, string(raw)
}

func eventually(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInferenceMesh: three real nodes on loopback. A and C serve the same
// model (same checkpoint, same hash), B serves none.
//   - B forwards a request for the model to a peer and answers what A
//     answers (the model is deterministic);
//   - C answers a request A computed from A's signed cache entry (a peer hit;
//     C's model does not run);
//   - C's prompt that starts like a long prompt A ran skips that prefix's
//     prefill: the KV state A erasure-coded over its peers is fetched,
//     rebuilt, spot-checked and continued.
func TestInferenceMesh(t *testing.T) {
	ck := tinyCheckpoint(t)
	dir := t.TempDir()
	a := member(t, filepath.Join(dir, "a"), nil, ck)
	b := member(t, filepath.Join(dir, "b"), addrs(a.n), nil)
	c := member(t, filepath.Join(dir, "c"), addrs(a.n), ck)
	eventually(t, "peers connected", 15*time.Second, func() bool {
		return len(a.n.P2P.Peers()) >= 2 && len(b.n.P2P.Peers()) >= 2 && len(c.n.P2P.Peers()) >= 2
	})

	long := "the boundary layer on a flat plate at supersonic speed with heat transfer and a shock wave"
	req := `{"model":"tiny","temperature":0,"max_tokens":12,"messages":[{"role":"user","content":"` + long + ` near the leading edge"}]}`
	code, ra, raw := chat(t, a, req)
	if code != 200 || ra.Choices[0].Message.Content == "" {
		t.Fatalf("A: %d %s", code, raw)
	}

	// B serves no model: the request goes to a peer that does.
	var rb inference.ChatResponse
	eventually(t, "B forwards to a provider", 20*time.Second, func() bool {
		code, rb, raw = chat(t, b, req)
		return code == 200
	})
	if rb.Choices[0].Message.Content != ra.Choices[0].Message.Content {
		t.Fatalf("forwarded answer %q, A answered %q", rb.Choices[0].Message.Content, ra.Choices[0].Message.Content)
	}
	if b.svc.Stats().Forwarded == 0 {
		t.Fatalf("B did not forward: %+v", b.svc.Stats())
	}
	eventually(t, "B lists the peer's model", 20*time.Second, func() bool {
		for _, m := range b.svc.Models(context.Background()) {
			if m.ID == "tiny" && m.Route == inference.RoutePeer {
				return true
			}
		}
		return false
	})

	// C gets A's answer from the shared cache.
	// (B's forwarded request may already have reached C, which then
	// answered it from A's entry and keeps it: either way C never computes.)
	code, rc, raw := chat(t, c, req)
	if code != 200 || rc.Choices[0].Message.Content != ra.Choices[0].Message.Content {
		t.Fatalf("C: %d %s", code, raw)
	}
	if got := c.svc.Stats(); got.CacheHitsPeer < 1 || got.CacheMisses != 0 {
		t.Fatalf("C did not answer from A's cache entry: %+v", got)
	}

	// The pulse validator's inference probe: C computes what A computes; B
	// serves no model.
	if err := a.n.ProbeInferenceForTest(context.Background(), c.n.P2P.ID(), 7); err != nil {
		t.Fatalf("probe of an honest provider: %v", err)
	}
	if err := a.n.ProbeInferenceForTest(context.Background(), b.n.P2P.ID(), 7); err == nil {
		t.Fatal("a node serving no model passed the inference probe")
	}

	// C's new prompt shares A's first block-aligned prefix: the KV state
	// comes from the erasure-coded chunks.
	other := `{"model":"tiny","temperature":0,"max_tokens":4,"messages":[{"role":"user","content":"` + long + ` far downstream"}]}`
	eventually(t, "C skips the shared prefix", 20*time.Second, func() bool {
		code, _, raw = chat(t, c, strings.Replace(other, `"max_tokens":4`, `"max_tokens":`+string(rune('4'+time.Now().Nanosecond()%5)), 1))
		if code != 200 {
			t.Fatalf("C: %d %s", code, raw)
		}
		return c.svc.Stats().PrefixHits > 0
	})
}

// TestKVMaintenance: the node's own maintenance loop (ServeInference's,
// every 300 ms here) keeps an erasure-coded KV-prefix set alive. A
// publishes the prefix state of a long prompt over B and C; C goes away;
// A's periodic probes, ordinary-looking chunk reads, find C's chunks gone
// and drop C as a holder, and since that leaves the set near k the loop
// rebuilds the missing chunks and places them on B, back to all 64.
func TestKVMaintenance(t *testing.T) {
	ck := tinyCheckpoint(t)
	dir := t.TempDir()
	o := node.InferenceOptions{CacheSampleRate: -1, KVMaintainEvery: 300 * time.Millisecond}
	a := memberWith(t, filepath.Join(dir, "a"), nil, ck, o)
	b := memberWith(t, filepath.Join(dir, "b"), addrs(a.n), ck, o)
	c := memberWith(t, filepath.Join(dir, "c"), addrs(a.n), ck, o)
	eventually(t, "peers connected", 15*time.Second, func() bool {
		return len(a.n.P2P.Peers()) >= 2 && len(b.n.P2P.Peers()) >= 2 && len(c.n.P2P.Peers()) >= 2
	})
	long := "the boundary layer on a flat plate at supersonic speed with heat transfer and a shock wave near the leading edge"
	req := `{"model":"tiny","temperature":0,"max_tokens":4,"messages":[{"role":"user","content":"` + long + `"}]}`
	if code, _, raw := chat(t, a, req); code != 200 {
		t.Fatalf("A: %d %s", code, raw)
	}
	kv := a.n.KVPrefix()
	tr := kv.Tracker()
	eventually(t, "A's prefix state placed on its peers", 20*time.Second, func() bool {
		roots := tr.Roots()
		return len(roots) == 1 && tr.Live(roots[0]) == 64
	})
	root := tr.Roots()[0]
	onC := 0
	for i := range 64 {
		for _, p := range tr.Holders(root, i) {
			if p == c.n.P2P.ID() {
				onC++
			}
		}
	}
	if onC == 0 {
		t.Fatal("C holds no chunk of A's set")
	}
	c.n.Close()
	eventually(t, "A's maintenance loop repairs the set", 30*time.Second, func() bool {
		st := kv.Stats()
		return st.ProbesFailed > 0 && st.Repairs > 0 && tr.Live(root) == 64
	})
	if r := tr.Reputation(c.n.P2P.ID()); r >= 1 {
		t.Fatalf("C's reputation %v after failing probes", r)
	}
	for i := range 64 {
		for _, p := range tr.Holders(root, i) {
			if p == c.n.P2P.ID() {
				t.Fatalf("C still listed as a holder of chunk %d", i)
			}
		}
	}
	t.Logf("C held %d chunks; A's KV stats after the repair: %+v", onC, kv.Stats())
}
