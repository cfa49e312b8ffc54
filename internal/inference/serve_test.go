package inference

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/embed"
	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
	"github.com/hyperspace-ai/hyperspace/internal/respcache"
)

// reverser is a deterministic TextModel for the HTTP layer's tests: it
// answers the reversed prompt, one character a token, up to MaxTokens. The
// real models (the pure-Go transformer) are tested in domains/ml and
// end to end through the official openai client (e2e).
type reverser struct {
	mu    sync.Mutex
	calls int
}

func (r *reverser) Info() ModelInfo {
	return ModelInfo{ID: "rev", Kind: KindChat, OwnedBy: "test", Hash: "h-rev"}
}
func (r *reverser) MaxTokens() int { return 64 }
func (r *reverser) Generate(ctx context.Context, prompt string, p GenParams, emit func(string) error) (GenOutput, error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	rs := []rune(prompt)
	out := GenOutput{FinishReason: "stop", PromptTokens: len(rs), Deterministic: p.Temperature == 0 || p.Seed != nil}
	var b strings.Builder
	for i := len(rs) - 1; i >= 0; i-- {
		if out.CompletionTokens == p.MaxTokens {
			out.FinishReason = "length"
			break
		}
		piece := string(rs[i])
		if err := emit(piece); err != nil {
			return out, err
		}
		b.WriteString(piece)
		out.CompletionTokens++
	}
	out.Text = b.String()
	return out, nil
}

type memCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *memCache) Lookup(_ context.Context, k string) ([]byte, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[k]
	return b, "local", ok
}
func (c *memCache) Put(_ context.Context, k, _ string, rec []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	c.m[k] = rec
}

func newTestService(t *testing.T) (*Service, *reverser, *httptest.Server) {
	t.Helper()
	s := &Service{Cache: &memCache{}, Fingerprint: "fp-test"}
	rev := &reverser{}
	s.SetText(rev)
	lsa, err := embed.FitLSA([]string{"wing lift drag", "boundary layer flow", "heat transfer at hypersonic speed", "shock wave boundary layer"}, embed.LSAOptions{Dim: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.SetEmbed(&LSAModel{Name: "emb", LSA: lsa})
	srv := httptest.NewServer(s.Handler("/v1"))
	t.Cleanup(srv.Close)
	return s, rev, srv
}

func post(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}

func TestChatNonStreaming(t *testing.T) {
	_, rev, srv := newTestService(t)
	resp, body := post(t, srv.URL+"/v1/chat/completions", `{"model":"rev","messages":[{"role":"system","content":"ab"},{"role":"user","content":[{"type":"text","text":"cd"}]}],"temperature":0}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var r ChatResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if r.Object != "chat.completion" || r.Model != "rev" || !strings.HasPrefix(r.ID, "chatcmpl-") || len(r.Choices) != 1 {
		t.Fatalf("bad response %s", body)
	}
	if got := r.Choices[0].Message.Content; got != "dc\nba" { // prompt "ab\ncd" reversed
		t.Fatalf("content %q", got)
	}
	if r.Usage == nil || r.Usage.TotalTokens != r.Usage.PromptTokens+r.Usage.CompletionTokens || r.Usage.CompletionTokens != 5 {
		t.Fatalf("usage %+v", r.Usage)
	}
	// The same deterministic request is a cache hit: the model is not run again.
	_, body2 := post(t, srv.URL+"/v1/chat/completions", `{"model":"rev","messages":[{"role":"system","content":"ab"},{"role":"user","content":"cd"}],"temperature":0,"seed":7}`)
	var r2 ChatResponse
	_ = json.Unmarshal(body2, &r2)
	if r2.Choices[0].Message.Content != "dc\nba" || rev.calls != 1 {
		t.Fatalf("cache: calls=%d content %q", rev.calls, r2.Choices[0].Message.Content)
	}
	if r2.ID == r.ID {
		t.Fatal("a cached answer reuses the response id")
	}
	// A sampled request without a seed is not cached.
	post(t, srv.URL+"/v1/chat/completions", `{"model":"rev","messages":[{"role":"user","content":"x"}],"temperature":0.7}`)
	post(t, srv.URL+"/v1/chat/completions", `{"model":"rev","messages":[{"role":"user","content":"x"}],"temperature":0.7}`)
	if rev.calls != 3 {
		t.Fatalf("non-deterministic requests were cached: calls=%d", rev.calls)
	}
}

// sseEvents reads the data payloads of an SSE body.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestChatStreaming(t *testing.T) {
	_, _, srv := newTestService(t)
	for _, usage := range []bool{false, true} {
		body := `{"model":"rev","messages":[{"role":"user","content":"abc"}],"stream":true,"max_tokens":2}`
		if usage {
			body = `{"model":"rev","messages":[{"role":"user","content":"abc"}],"stream":true,"max_tokens":2,"stream_options":{"include_usage":true}}`
		}
		resp, raw := post(t, srv.URL+"/v1/chat/completions", body)
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("content type %q", ct)
		}
		ev := sseEvents(t, raw)
		if ev[len(ev)-1] != "[DONE]" {
			t.Fatalf("last event %q", ev[len(ev)-1])
		}
		var text strings.Builder
		var finish string
		var sawUsage bool
		for _, e := range ev[:len(ev)-1] {
			var c ChatChunk
			if err := json.Unmarshal([]byte(e), &c); err != nil {
				t.Fatal(err)
			}
			if c.Object != "chat.completion.chunk" {
				t.Fatalf("object %q", c.Object)
			}
			if c.Usage != nil {
				sawUsage = true
				if len(c.Choices) != 0 || c.Usage.CompletionTokens != 2 {
					t.Fatalf("usage chunk %s", e)
				}
				continue
			}
			if c.Choices[0].Delta.Content != nil {
				text.WriteString(*c.Choices[0].Delta.Content)
			}
			if c.Choices[0].FinishReason != nil {
				finish = *c.Choices[0].FinishReason
			}
		}
		if text.String() != "cb" || finish != "length" || sawUsage != usage {
			t.Fatalf("include_usage=%v: text %q finish %q usage %v", usage, text.String(), finish, sawUsage)
		}
	}
}

func TestCompletions(t *testing.T) {
	_, _, srv := newTestService(t)
	resp, body := post(t, srv.URL+"/v1/completions", `{"model":"rev","prompt":"hello","temperature":0}`)
	var r CompletionResponse
	if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if r.Object != "text_completion" || r.Choices[0].Text != "olleh" || *r.Choices[0].FinishReason != "stop" {
		t.Fatalf("%s", body)
	}
	_, raw := post(t, srv.URL+"/v1/completions", `{"model":"rev","prompt":["hey"],"stream":true}`)
	ev := sseEvents(t, raw)
	var text strings.Builder
	for _, e := range ev[:len(ev)-1] {
		var c CompletionResponse
		_ = json.Unmarshal([]byte(e), &c)
		text.WriteString(c.Choices[0].Text)
	}
	if text.String() != "yeh" || ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("stream %q", ev)
	}
}

func TestEmbeddings(t *testing.T) {
	_, _, srv := newTestService(t)
	_, fb := post(t, srv.URL+"/v1/embeddings", `{"model":"emb","input":["wing lift","heat transfer"]}`)
	var f struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(fb, &f); err != nil || len(f.Data) != 2 {
		t.Fatalf("%s", fb)
	}
	_, bb := post(t, srv.URL+"/v1/embeddings", `{"model":"emb","input":["wing lift","heat transfer"],"encoding_format":"base64"}`)
	var b struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(bb, &b); err != nil {
		t.Fatalf("%s", bb)
	}
	for i := range f.Data {
		raw, err := base64.StdEncoding.DecodeString(b.Data[i].Embedding)
		if err != nil || len(raw) != 4*len(f.Data[i].Embedding) {
			t.Fatalf("base64 vector %d: %v len %d", i, err, len(raw))
		}
		var norm float64
		for j, want := range f.Data[i].Embedding {
			got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			if got != want {
				t.Fatalf("vector %d[%d]: base64 %v, float %v", i, j, got, want)
			}
			norm += float64(got) * float64(got)
		}
		if math.Abs(norm-1) > 1e-5 {
			t.Fatalf("vector %d not unit length: %v", i, norm)
		}
	}
	if f.Usage.PromptTokens != 4 {
		t.Fatalf("usage %d", f.Usage.PromptTokens)
	}
}

func TestErrors(t *testing.T) {
	_, _, srv := newTestService(t)
	cases := []struct {
		path, body string
		status     int
		param      string
		code       string
	}{
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model", "invalid_value"},
		{"/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "model", "model_not_found"},
		{"/v1/chat/completions", `{"model":"rev","messages":[]}`, 400, "messages", "invalid_value"},
		{"/v1/chat/completions", `{"model":"rev","messages":[{"role":"user","content":"x"}],"n":2}`, 400, "n", "invalid_value"},
		{"/v1/chat/completions", `{"model":"rev","messages":[{"role":"user","content":"x"}],"temperature":3}`, 400, "temperature", "invalid_value"},
		{"/v1/chat/completions", `{"model":"rev","messages":[{"role":"user","content":"x"}],"max_tokens":100000}`, 400, "max_tokens", "invalid_value"},
		{"/v1/chat/completions", `{"model":"rev","messages":[{"role":"tool","content":"x"}]}`, 400, "messages[0].role", "invalid_value"},
		{"/v1/chat/completions", `{"model":"rev","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}`, 400, "max_tokens", "invalid_value"},
		{"/v1/chat/completions", `{"model":"emb","messages":[{"role":"user","content":"x"}]}`, 400, "model", "invalid_value"},
		{"/v1/chat/completions", `not json`, 400, "", "invalid_value"},
		{"/v1/embeddings", `{"model":"emb","input":"x","encoding_format":"hex"}`, 400, "encoding_format", "invalid_value"},
		{"/v1/embeddings", `{"model":"emb","input":[1,2,3]}`, 400, "input", "invalid_value"},
		{"/v1/embeddings", `{"model":"emb","input":"x","dimensions":2}`, 400, "dimensions", "invalid_value"},
		{"/v1/embeddings", `{"model":"rev","input":"x"}`, 400, "model", "invalid_value"},
		{"/v1/nothing", `{}`, 404, "", "unknown_url"},
	}
	for _, c := range cases {
		resp, body := post(t, srv.URL+c.path, c.body)
		var e ErrorBody
		if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
			t.Fatalf("%s %s: not an OpenAI error: %s", c.path, c.body, body)
		}
		param := ""
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		code := ""
		if e.Error.Code != nil {
			code = *e.Error.Code
		}
		if resp.StatusCode != c.status || param != c.param || code != c.code || e.Error.Message == "" || e.Error.Type == "" {
			t.Errorf("%s %s: got %d param=%q code=%q %s", c.path, c.body, resp.StatusCode, param, code, body)
		}
	}
}

func TestModelsList(t *testing.T) {
	_, _, srv := newTestService(t)
	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l ModelList
	_ = json.NewDecoder(resp.Body).Decode(&l)
	if l.Object != "list" || len(l.Data) != 2 || l.Data[0].ID != "emb" || l.Data[1].ID != "rev" || l.Data[1].Object != "model" || l.Data[0].Kind != KindEmbedding {
		t.Fatalf("%+v", l)
	}
}

// TestUpstream routes a model to an OpenAI-compatible server (llmtest, the
// project's fake of a hosted one: same wire format) with its name mapped.
func TestUpstream(t *testing.T) {
	s, _, srv := newTestService(t)
	up := llmtest.New()
	defer up.Close()
	up.RequireKey("up-key")
	up.EnqueueContent("from upstream")
	u, err := ParseUpstream("big="+up.BaseURL()+"#llama3.2:1b", KindChat, "up-key")
	if err != nil {
		t.Fatal(err)
	}
	s.SetUpstream(u)
	resp, body := post(t, srv.URL+"/v1/chat/completions", `{"model":"big","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "from upstream") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	reqs := up.Requests()
	if len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"model":"llama3.2:1b"`) {
		t.Fatalf("upstream saw %+v", reqs)
	}
	for _, bad := range []string{"noequals", "x=ftp://h/v1", "=http://h/v1"} {
		if _, err := ParseUpstream(bad, KindChat, ""); err == nil {
			t.Errorf("ParseUpstream(%q) accepted", bad)
		}
	}
}

func TestRequestHashCanonical(t *testing.T) {
	seed := int64(3)
	a := RequestHash("m", OpChat, GenParams{MaxTokens: 5, Temperature: 0, TopP: 1, Seed: &seed}, "p")
	b := RequestHash("m", OpChat, GenParams{MaxTokens: 5, Temperature: 0, TopP: 1}, "p")
	if a != b {
		t.Fatal("greedy requests that differ only in seed have different keys")
	}
	c := RequestHash("m", OpChat, GenParams{MaxTokens: 5, Temperature: 0.5, TopP: 1, Seed: &seed}, "p")
	seed2 := int64(4)
	d := RequestHash("m", OpChat, GenParams{MaxTokens: 5, Temperature: 0.5, TopP: 1, Seed: &seed2}, "p")
	if c == d || a == c {
		t.Fatal("keys collide")
	}
	if RequestHash("m", OpChat, GenParams{}, "ab") == RequestHash("ma", OpChat, GenParams{}, "b") {
		t.Fatal("part boundaries are ambiguous")
	}
	rec := recordBytes(ModelInfo{ID: "x", Hash: "m"}, OpChat, GenParams{MaxTokens: 5, TopP: 1, Seed: &seed}, "p", GenOutput{Text: "t"})
	if _, err := CheckRecord(a, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckRecord(c, rec); err == nil {
		t.Fatal("a record answered another request")
	}
}

// TestSemanticOption: with the (off by default) semantic index, a prompt
// near-identical to a cached one of the same model and params is answered
// from the cache; a negated one is not.
func TestSemanticOption(t *testing.T) {
	s, rev, srv := newTestService(t)
	lsa, err := embed.FitLSA([]string{"pressure distribution on a swept wing", "heat transfer in the laminar boundary layer", "shock wave interaction with the turbulent boundary layer", "flutter of a cantilever wing", "pressure on the wing surface"}, embed.LSAOptions{Dim: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Semantic, err = respcache.NewSemanticIndex(respcache.SemanticConfig{Embedder: lsa})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(p string) string {
		_, body := post(t, srv.URL+"/v1/chat/completions", `{"model":"rev","temperature":0,"messages":[{"role":"user","content":"`+p+`"}]}`)
		var r ChatResponse
		_ = json.Unmarshal(body, &r)
		return r.Choices[0].Message.Content
	}
	first := ask("heat transfer in the laminar boundary layer")
	if got := ask("heat transfer in the laminar boundary layer?"); got != first || s.Stats().SemanticHits != 1 || rev.calls != 1 {
		t.Fatalf("near-duplicate: %q, stats %+v, calls %d", got, s.Stats(), rev.calls)
	}
	ask("heat transfer not in the laminar boundary layer")
	if rev.calls != 2 {
		t.Fatalf("a negation was answered from the cache: calls %d", rev.calls)
	}
}
