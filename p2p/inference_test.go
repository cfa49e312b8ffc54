package p2p_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/capability"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// inferNodes starts n loopback nodes with the DHT on.
func inferNodes(t *testing.T, ctx context.Context, n int) p2ptest.Cluster {
	t.Helper()
	var c p2ptest.Cluster
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	for range n {
		m, err := p2ptest.NewMember(ctx, p2ptest.Options{DHT: true})
		if err != nil {
			t.Fatal(err)
		}
		c = append(c, m)
	}
	return c
}

func link(t *testing.T, ctx context.Context, a, b *p2p.Node) {
	t.Helper()
	if err := a.Connect(ctx, b.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
}

// echoHandler answers with the model and op it was asked for: one JSON
// frame, or (streaming) five SSE payloads and [DONE].
func echoHandler(self peer.ID) p2p.InferenceHandler {
	return func(ctx context.Context, from peer.ID, req p2p.InferenceRequest, w p2p.InferenceWriter) error {
		if !req.Stream {
			if err := w.WriteHeader(200, "application/json"); err != nil {
				return err
			}
			b, _ := json.Marshal(map[string]any{"model": req.Model, "op": req.Op, "body": req.Body, "by": self.String()})
			return w.WriteFrame(b)
		}
		if err := w.WriteHeader(200, "text/event-stream"); err != nil {
			return err
		}
		for i := range 5 {
			if err := w.WriteFrame(fmt.Appendf(nil, `{"model":%q,"op":%q,"i":%d}`, req.Model, req.Op, i)); err != nil {
				return err
			}
		}
		return w.WriteFrame([]byte("[DONE]"))
	}
}

// providers polls FindModelProviders until it finds want providers.
func providers(t *testing.T, ctx context.Context, n *p2p.Node, model string, want int) []p2p.Provider {
	t.Helper()
	var got []p2p.Provider
	eventually(t, 30*time.Second, fmt.Sprintf("%d providers of %s", want, model), func() bool {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		got, err = n.FindModelProviders(fctx, model, 8)
		if err != nil {
			t.Logf("find: %v", err)
		}
		return len(got) >= want
	})
	return got
}

// TestInferThroughDHT: A-B-C in a line, A serves m1; C (connected only to
// B) finds A through the DHT, admits its record, and gets answers, whole
// and streamed in order.
func TestInferThroughDHT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := inferNodes(t, ctx, 3)
	a, b, cn := c[0].Node, c[1].Node, c[2].Node
	link(t, ctx, a, b)
	link(t, ctx, cn, b)
	a.ServeInference(echoHandler(a.ID()))
	if err := a.AdvertiseModels(ctx, []capability.ModelCap{{ID: "m1", Kind: capability.KindChat, OwnedBy: "a"}}); err != nil {
		t.Fatal(err)
	}

	ps := providers(t, ctx, cn, "m1", 1)
	if ps[0].ID != a.ID() || ps[0].Model.ID != "m1" || ps[0].Model.OwnedBy != "a" {
		t.Fatalf("providers %+v, want A (%s)", ps, a.ID())
	}
	if st := cn.Admission().Stats(); st.Accepted[admission.PathInference+"/"+admission.KindCapability] < 1 {
		t.Fatalf("the record did not pass admission: %+v", st)
	}
	if got := cn.KnownModels(); len(got) != 1 || got[0].ID != "m1" {
		t.Fatalf("KnownModels = %+v", got)
	}

	var status int
	var ctype string
	var frames [][]byte
	err := cn.Infer(ctx, a.ID(), p2p.InferenceRequest{Op: p2p.InferOpChat, Model: "m1", Body: json.RawMessage(`{"messages":[]}`)},
		func(s int, ct string) error { status, ctype = s, ct; return nil },
		func(b []byte) error { frames = append(frames, b); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if status != 200 || ctype != "application/json" || len(frames) != 1 {
		t.Fatalf("status %d %q, %d frames", status, ctype, len(frames))
	}
	var echo struct {
		Model, Op, By string
		Body          json.RawMessage
	}
	if err := json.Unmarshal(frames[0], &echo); err != nil || echo.Model != "m1" || echo.Op != "chat" || string(echo.Body) != `{"messages":[]}` {
		t.Fatalf("echo %s (%v)", frames[0], err)
	}

	frames = nil
	served, err := cn.InferHedged(ctx, "m1", p2p.InferenceRequest{Op: p2p.InferOpCompletions, Stream: true}, p2p.HedgeOptions{},
		func(s int, ct string) error { status, ctype = s, ct; return nil },
		func(b []byte) error { frames = append(frames, b); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if served != a.ID() || ctype != "text/event-stream" || len(frames) != 6 || string(frames[5]) != "[DONE]" {
		t.Fatalf("served by %s, %q, frames %q", served, ctype, frames)
	}
	for i := range 5 {
		if want := fmt.Sprintf(`{"model":"m1","op":"completions","i":%d}`, i); string(frames[i]) != want {
			t.Fatalf("frame %d = %s, want %s", i, frames[i], want)
		}
	}
	if st := cn.InferenceStats(); st.Forwarded != 1 || st.HedgeWins != 0 || st.CachedRecords != 1 {
		t.Fatalf("client stats %+v", st)
	}
	if st := a.InferenceStats(); st.Served != 2 {
		t.Fatalf("provider stats %+v", st)
	}

	if _, err := cn.InferHedged(ctx, "nope", p2p.InferenceRequest{Op: p2p.InferOpChat}, p2p.HedgeOptions{}, nil, nil); !errors.Is(err, p2p.ErrNoProvider) {
		t.Fatalf("unknown model: %v", err)
	}
}

// twoProviders starts a client and two providers of model, each answering
// with handle(self), and returns the providers in the client's order.
func twoProviders(t *testing.T, ctx context.Context, model string, handle func(self peer.ID) p2p.InferenceHandler) (*p2p.Node, []p2p.Provider) {
	t.Helper()
	c := inferNodes(t, ctx, 3)
	q := c[0].Node
	for _, m := range c[1:] {
		link(t, ctx, m.Node, q)
		m.Node.ServeInference(handle(m.Node.ID()))
		if err := m.Node.AdvertiseModels(ctx, []capability.ModelCap{{ID: model, Kind: capability.KindChat}}); err != nil {
			t.Fatal(err)
		}
	}
	ps := providers(t, ctx, q, model, 2)
	return q, ps
}

// TestInferHedge: the preferred provider stalls before its header; the
// hedge goes to the other, which serves; the slow stream is reset.
func TestInferHedge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var slow peer.ID
	cancelled := make(chan error, 1)
	q, ps := twoProviders(t, ctx, "m2", func(self peer.ID) p2p.InferenceHandler {
		echo := echoHandler(self)
		return func(ctx context.Context, from peer.ID, req p2p.InferenceRequest, w p2p.InferenceWriter) error {
			mu.Lock()
			stall := self == slow
			mu.Unlock()
			if stall {
				select {
				case <-ctx.Done():
					cancelled <- ctx.Err()
					return ctx.Err()
				case <-time.After(2 * time.Second):
				}
			}
			return echo(ctx, from, req, w)
		}
	})
	mu.Lock()
	slow = ps[0].ID
	mu.Unlock()

	var frames [][]byte
	served, err := q.InferHedged(ctx, "m2", p2p.InferenceRequest{Op: p2p.InferOpChat}, p2p.HedgeOptions{}, nil,
		func(b []byte) error { frames = append(frames, b); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if served != ps[1].ID {
		t.Fatalf("served by %s, want the fast provider %s", served, ps[1].ID)
	}
	if len(frames) != 1 || !strings.Contains(string(frames[0]), ps[1].ID.String()) {
		t.Fatalf("frames %q: not only the winner's", frames)
	}
	if st := q.InferenceStats(); st.HedgesFired != 1 || st.HedgeWins != 1 || st.Forwarded != 1 {
		t.Fatalf("stats %+v", st)
	}
	select {
	case <-cancelled:
	case <-ctx.Done():
		t.Fatal("the slow provider's stream was not reset")
	}
}

// TestInferSkips5xx: a provider answering 503 is skipped for the next.
func TestInferSkips5xx(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var bad peer.ID
	q, ps := twoProviders(t, ctx, "m4", func(self peer.ID) p2p.InferenceHandler {
		echo := echoHandler(self)
		return func(ctx context.Context, from peer.ID, req p2p.InferenceRequest, w p2p.InferenceWriter) error {
			mu.Lock()
			busy := self == bad
			mu.Unlock()
			if busy {
				if err := w.WriteHeader(503, "application/json"); err != nil {
					return err
				}
				return w.WriteFrame([]byte(`{"error":{"message":"overloaded","type":"service_unavailable"}}`))
			}
			return echo(ctx, from, req, w)
		}
	})
	mu.Lock()
	bad = ps[0].ID
	mu.Unlock()

	var status int
	served, err := q.InferHedged(ctx, "m4", p2p.InferenceRequest{Op: p2p.InferOpChat}, p2p.HedgeOptions{HedgeAfter: time.Minute},
		func(s int, _ string) error { status = s; return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if served != ps[1].ID || status != 200 {
		t.Fatalf("served by %s (status %d), want %s", served, status, ps[1].ID)
	}
	if st := q.InferenceStats(); st.Failures != 1 || st.HedgesFired != 0 || st.Forwarded != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Infer relays a 503 as it is (and counts it against the provider).
	if err := q.Infer(ctx, bad, p2p.InferenceRequest{Op: p2p.InferOpEmbeddings, Model: "m4"}, func(s int, _ string) error { status = s; return nil }, nil); err != nil || status != 503 {
		t.Fatalf("direct: status %d, %v", status, err)
	}
	if ps, _ := q.FindModelProviders(ctx, "m4", 4); len(ps) != 2 || ps[0].ID != served || ps[1].Failures != 2 {
		t.Fatalf("after two failures of %s the order is %+v", bad, ps)
	}
}

// TestInferAllFail: when every provider answers 5xx, InferHedged fails
// without relaying any answer.
func TestInferAllFail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q, _ := twoProviders(t, ctx, "m5", func(self peer.ID) p2p.InferenceHandler {
		return func(ctx context.Context, from peer.ID, req p2p.InferenceRequest, w p2p.InferenceWriter) error {
			return errors.New("out of memory") // answered as a 500
		}
	})
	headers := 0
	_, err := q.InferHedged(ctx, "m5", p2p.InferenceRequest{Op: p2p.InferOpChat}, p2p.HedgeOptions{},
		func(int, string) error { headers++; return nil }, nil)
	if err == nil || errors.Is(err, p2p.ErrNoProvider) || headers != 0 {
		t.Fatalf("err %v, %d headers relayed", err, headers)
	}
	if st := q.InferenceStats(); st.Failures != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// appendFrame is the protocol's uvarint-length-prefixed frame.
func appendFrame(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// TestCapabilityRecordsRejected: a peer answering caps with a record
// signed by another key, a record naming another node, an oversized or
// garbled record is not a provider, and admission counts why.
func TestCapabilityRecordsRejected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := inferNodes(t, ctx, 3)
	q, x, y := c[0].Node, c[1].Node, c[2].Node
	link(t, ctx, x, q)
	models := []capability.ModelCap{{ID: "mx", Kind: capability.KindChat}}
	sign := func(node peer.ID, k crypto.PrivKey) []byte {
		s, err := capability.Sign(capability.Capabilities{Node: node.String(), Models: models, Timestamp: time.Now().UnixMilli(), Seq: 1}, k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.Marshal()
		return b
	}
	cases := []struct {
		name, reason string
		record       []byte
	}{
		{"signed by another key", admission.ReasonBadSignature, sign(x.ID(), c[2].Key)},
		{"names another node", admission.ReasonSignerMismatch, sign(y.ID(), c[2].Key)},
		{"oversized", admission.ReasonOversized, []byte(`{"node":"` + strings.Repeat("a", capability.MaxRecordBytes) + `"}`)},
		{"garbled", admission.ReasonMalformed, []byte(`{"node":`)},
	}
	var mu sync.Mutex
	current := 0
	x.Host().SetStreamHandler(p2p.InferenceProtocol, func(s network.Stream) {
		defer s.Close()
		mu.Lock()
		rec := cases[current].record
		mu.Unlock()
		buf := make([]byte, 4096)
		_, _ = s.Read(buf) // the request (small)
		out := appendFrame(nil, []byte(`{"status":200,"contentType":"application/json"}`))
		_, _ = s.Write(appendFrame(out, rec))
	})
	if err := x.Provide(ctx, "model/mx"); err != nil {
		t.Logf("provide (retried by the DHT test helper below): %v", err)
	}
	for i, tc := range cases {
		mu.Lock()
		current = i
		mu.Unlock()
		key := admission.PathInference + "/" + admission.KindCapability + "/" + tc.reason
		before := q.Admission().Stats().Rejected[key]
		eventually(t, 30*time.Second, tc.name+" rejected", func() bool {
			_ = x.Provide(ctx, "model/mx")
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			ps, err := q.FindModelProviders(fctx, "mx", 4)
			if err != nil || len(ps) != 0 {
				t.Fatalf("%s: providers %+v, %v", tc.name, ps, err)
			}
			return q.Admission().Stats().Rejected[key] > before
		})
	}
	if got := q.KnownModels(); len(got) != 0 {
		t.Fatalf("KnownModels = %+v", got)
	}
}

// TestInferAdvertiseBeforePeers: a node that advertises before it has DHT
// peers announces its models once peers connect.
func TestInferAdvertiseBeforePeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := inferNodes(t, ctx, 3)
	a, b, cn := c[0].Node, c[1].Node, c[2].Node
	a.ServeInference(echoHandler(a.ID()))
	if err := a.AdvertiseModels(ctx, []capability.ModelCap{{ID: "m6", Kind: capability.KindEmbedding}}); err != nil {
		t.Fatalf("advertising without peers is not an error: %v", err)
	}
	link(t, ctx, a, b)
	link(t, ctx, cn, b)
	if ps := providers(t, ctx, cn, "m6", 1); ps[0].ID != a.ID() || ps[0].Model.Kind != capability.KindEmbedding {
		t.Fatalf("providers %+v", ps)
	}
}

// TestInferPerPeerLimit: a peer with too many requests in flight is
// answered 503 for the next one.
func TestInferPerPeerLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := inferNodes(t, ctx, 2)
	a, q := c[0].Node, c[1].Node
	link(t, ctx, q, a)
	release := make(chan struct{})
	var mu sync.Mutex
	inflight := 0
	a.ServeInference(func(ctx context.Context, from peer.ID, req p2p.InferenceRequest, w p2p.InferenceWriter) error {
		mu.Lock()
		inflight++
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := w.WriteHeader(200, "application/json"); err != nil {
			return err
		}
		return w.WriteFrame([]byte(`{}`))
	})
	var wg sync.WaitGroup
	statuses := make(chan int, 16)
	const limit = 8 // the provider's per-peer limit
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := q.Infer(ctx, a.ID(), p2p.InferenceRequest{Op: p2p.InferOpChat, Model: "m"}, func(s int, _ string) error { statuses <- s; return nil }, nil)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	eventually(t, 30*time.Second, "the provider's handlers to be busy", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inflight == limit
	})
	var status int
	if err := q.Infer(ctx, a.ID(), p2p.InferenceRequest{Op: p2p.InferOpChat, Model: "m"}, func(s int, _ string) error { status = s; return nil }, nil); err != nil || status != 503 {
		t.Fatalf("request over the limit: status %d, %v", status, err)
	}
	close(release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("a request within the limit got %d", s)
		}
	}
	// (A background refresh of a's record may have been refused too.)
	if st := a.InferenceStats(); st.Refused < 1 || st.Served != limit {
		t.Fatalf("provider stats %+v", st)
	}
}

// BenchmarkInfer measures one forwarded request over loopback: a JSON
// answer, and a streamed one of 64 SSE payloads.
func BenchmarkInfer(b *testing.B) {
	ctx := context.Background()
	var c p2ptest.Cluster
	defer c.Close()
	for range 2 {
		m, err := p2ptest.NewMember(ctx, p2ptest.Options{})
		if err != nil {
			b.Fatal(err)
		}
		c = append(c, m)
	}
	a, q := c[0].Node, c[1].Node
	if err := q.Connect(ctx, a.Addrs()[0].String()); err != nil {
		b.Fatal(err)
	}
	chunk := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hello"}}]}`)
	a.ServeInference(func(ctx context.Context, from peer.ID, req p2p.InferenceRequest, w p2p.InferenceWriter) error {
		if !req.Stream {
			if err := w.WriteHeader(200, "application/json"); err != nil {
				return err
			}
			return w.WriteFrame(chunk)
		}
		if err := w.WriteHeader(200, "text/event-stream"); err != nil {
			return err
		}
		for range 64 {
			if err := w.WriteFrame(chunk); err != nil {
				return err
			}
		}
		return w.WriteFrame([]byte("[DONE]"))
	})
	body := json.RawMessage(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	for _, stream := range []bool{false, true} {
		b.Run(fmt.Sprintf("stream=%v", stream), func(b *testing.B) {
			for b.Loop() {
				frames := 0
				err := q.Infer(ctx, a.ID(), p2p.InferenceRequest{Op: p2p.InferOpChat, Model: "m", Body: body, Stream: stream}, nil,
					func([]byte) error { frames++; return nil })
				if err != nil || frames == 0 {
					b.Fatal(frames, err)
				}
			}
		})
	}
	if st := a.InferenceStats(); st.Refused != 0 {
		b.Fatalf("the provider refused %d requests (streams held after their answer?)", st.Refused)
	}
}

// TestInferLargeBody: a body as large as the HTTP layer accepts, full of
// characters JSON encoders like to escape, reaches the provider whole; a
// larger one is refused before it is sent.
func TestInferLargeBody(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := inferNodes(t, ctx, 2)
	a, q := c[0].Node, c[1].Node
	link(t, ctx, q, a)
	got := make(chan int, 1)
	a.ServeInference(func(ctx context.Context, from peer.ID, req p2p.InferenceRequest, w p2p.InferenceWriter) error {
		got <- len(req.Body)
		if err := w.WriteHeader(200, "application/json"); err != nil {
			return err
		}
		return w.WriteFrame([]byte(`{}`))
	})
	prefix, suffix := `{"model":"m","prompt":"`, `"}`
	body := prefix + strings.Repeat("<&>", (p2p.MaxInferenceBody-len(prefix)-len(suffix))/3) + suffix
	var status int
	err := q.Infer(ctx, a.ID(), p2p.InferenceRequest{Op: p2p.InferOpCompletions, Model: "m", Body: json.RawMessage(body)},
		func(s int, _ string) error { status = s; return nil }, nil)
	if err != nil || status != 200 {
		t.Fatalf("status %d, %v", status, err)
	}
	if n := <-got; n != len(body) {
		t.Fatalf("provider got %d bytes of body, sent %d", n, len(body))
	}
	big := json.RawMessage(`"` + strings.Repeat("a", p2p.MaxInferenceBody) + `"`)
	if err := q.Infer(ctx, a.ID(), p2p.InferenceRequest{Op: p2p.InferOpCompletions, Model: "m", Body: big}, nil, nil); err == nil {
		t.Fatal("an oversized body was sent")
	}
}

// TestInferKnownModels: a node lists what its neighbours serve without a
// request having asked for it.
func TestInferKnownModels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := inferNodes(t, ctx, 2)
	a, q := c[0].Node, c[1].Node
	if err := a.AdvertiseModels(ctx, []capability.ModelCap{{ID: "m7", Kind: capability.KindChat}, {ID: "e7", Kind: capability.KindEmbedding}}); err != nil {
		t.Fatal(err)
	}
	_ = q.KnownModels() // starts q's inference plane
	link(t, ctx, q, a)
	eventually(t, 30*time.Second, "q to know a's models", func() bool {
		got := q.KnownModels()
		return len(got) == 2 && got[0].ID == "e7" && got[1].ID == "m7"
	})
}
