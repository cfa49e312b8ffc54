package embed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
)

func TestOpenAIAgainstFake(t *testing.T) {
	s := llmtest.New()
	defer s.Close()
	s.RequireKey("sk-test")
	c := NewOpenAI(s.BaseURL(), "text-embedding-3-small", "sk-test", s.Client())
	if c.Dim() != 0 || c.Name() != "openai:text-embedding-3-small" {
		t.Fatalf("fresh client: dim %d name %q", c.Dim(), c.Name())
	}

	texts := make([]string, 600) // three batches: 256 + 256 + 88
	for i := range texts {
		texts[i] = fmt.Sprintf("note %d about topic %d", i, i%7)
	}
	texts[1] = "lower the learning rate and add warmup"
	texts[2] = "add warmup and lower the learning rate a bit"
	texts[3] = "monthly momentum portfolio rebalance"
	vecs := embedAll(t, c, texts)
	if c.Dim() != llmtest.EmbeddingDim {
		t.Fatalf("dim %d", c.Dim())
	}
	for i, v := range vecs {
		if c := Cosine(v, llmtest.Embedding(texts[i], llmtest.EmbeddingDim)); c < 0.99999 {
			t.Fatalf("vector %d is not the fake's embedding of its text (misordered?): cosine %v", i, c)
		}
		if n := norm(v); n < 0.99999 || n > 1.00001 {
			t.Fatalf("vector %d norm %v", i, n)
		}
	}
	if a, b := Cosine(vecs[1], vecs[2]), Cosine(vecs[1], vecs[3]); a <= b {
		t.Fatalf("similar texts %.3f not closer than unrelated %.3f", a, b)
	}

	reqs := s.EmbeddingRequests()
	if len(reqs) != 3 {
		t.Fatalf("%d embedding requests, want 3", len(reqs))
	}
	for i, want := range []int{256, 256, 88} {
		r := reqs[i]
		if r.Method != "POST" || r.Authorization != "Bearer sk-test" || r.ContentType != "application/json" ||
			r.Embeddings.Model != "text-embedding-3-small" || len(r.Embeddings.Input) != want || r.Embeddings.InputIsString {
			t.Fatalf("request %d: %+v", i, r.Embeddings)
		}
	}
	if reqs[2].Embeddings.Input[87] != texts[599] {
		t.Fatal("last batch does not end with the last text")
	}
	if len(s.Requests()) != 3 {
		t.Fatalf("Requests() has %d", len(s.Requests()))
	}

	// No texts, no request.
	if v, err := c.Embed(context.Background(), nil); err != nil || len(v) != 0 || len(s.Requests()) != 3 {
		t.Fatalf("empty input: %v %v", v, err)
	}

	// A smaller batch size.
	c.BatchSize = 2
	embedAll(t, c, texts[:5])
	if got := len(s.EmbeddingRequests()); got != 6 {
		t.Fatalf("%d requests after batches of 2", got)
	}
}

func TestOpenAIUnauthorized(t *testing.T) {
	s := llmtest.New()
	defer s.Close()
	s.RequireKey("sk-right")
	for _, key := range []string{"", "sk-wrong"} {
		_, err := NewOpenAI(s.BaseURL(), "m", key, s.Client()).Embed(context.Background(), []string{"hello"})
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Type != "invalid_request_error" ||
			apiErr.Code != "invalid_api_key" || apiErr.Message == "" || !strings.Contains(err.Error(), "HTTP 401") {
			t.Fatalf("key %q: %#v", key, err)
		}
	}
}

// The fake validates requests like the real API.
func TestFakeEmbeddingsValidation(t *testing.T) {
	s := llmtest.New()
	defer s.Close()
	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := s.Client().Post(s.BaseURL()+"/embeddings", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for _, body := range []string{
		`{"input":"hi"}`,
		`{"model":"m"}`,
		`{"model":"m","input":42}`,
		`{"model":"m","input":["a",1]}`,
		`{"model":"m","input":[]}`,
		`{"model":"m","input":[""]}`,
		`{"model":"m","input":"hi","dimensions":0}`,
		`{"model":"m","input":"hi","encoding_format":"base64"}`,
		`not json`,
	} {
		code, out := post(body)
		e, _ := out["error"].(map[string]any)
		if code != 400 || e["type"] != "invalid_request_error" || e["message"] == "" {
			t.Errorf("%s: %d %v", body, code, out)
		}
	}
	code, out := post(`{"model":"m","input":"one string","dimensions":8}`)
	data, _ := out["data"].([]any)
	if code != 200 || out["object"] != "list" || out["model"] != "m" || len(data) != 1 {
		t.Fatalf("string input: %d %v", code, out)
	}
	item := data[0].(map[string]any)
	usage := out["usage"].(map[string]any)
	if item["object"] != "embedding" || item["index"] != 0.0 || len(item["embedding"].([]any)) != 8 ||
		usage["prompt_tokens"] != 2.0 || usage["total_tokens"] != 2.0 {
		t.Fatalf("item %v usage %v", item, usage)
	}
	if r := s.EmbeddingRequests(); len(r) != 10 || !r[9].Embeddings.InputIsString || r[9].Embeddings.Dimensions != 8 {
		t.Fatalf("recorded %+v", r[len(r)-1].Embeddings)
	}
	resp, err := s.Client().Get(s.BaseURL() + "/embeddings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

// fakeServer answers every POST /v1/embeddings with handler's body and
// status.
func fakeServer(t *testing.T, status int, body func(inputs []string) string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/embeddings" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		var req struct {
			Input []string `json:"input"`
		}
		json.Unmarshal(raw, &req)
		w.WriteHeader(status)
		io.WriteString(w, body(req.Input))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOpenAIReordersByIndex(t *testing.T) {
	// Input i embeds to (i+1)·e_0 + e_1; the server lists items in
	// reverse order.
	srv := fakeServer(t, 200, func(inputs []string) string {
		var items []string
		for i := len(inputs) - 1; i >= 0; i-- {
			items = append(items, fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":[%d,1,0]}`, i, i+1))
		}
		return `{"object":"list","model":"m","data":[` + strings.Join(items, ",") + `]}`
	})
	c := NewOpenAI(srv.URL+"/v1/", "m", "", srv.Client()) // trailing slash tolerated
	vecs := embedAll(t, c, []string{"a", "b", "c", "d"})
	for i, v := range vecs {
		want := []float32{float32(i + 1), 1, 0}
		normalize32(want)
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("vector %d = %v, want %v", i, v, want)
		}
	}
	if c.Dim() != 3 {
		t.Fatalf("dim %d", c.Dim())
	}
}

func TestOpenAIBadResponses(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"not json", 200, `<html>oops</html>`, "decoding"},
		{"too few", 200, `{"data":[{"index":0,"embedding":[1,0]}]}`, "1 embeddings for 2 inputs"},
		{"too many", 200, `{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1]},{"index":2,"embedding":[1]}]}`, "3 embeddings for 2 inputs"},
		{"repeated index", 200, `{"data":[{"index":1,"embedding":[1,0]},{"index":1,"embedding":[0,1]}]}`, "appears twice"},
		{"index out of range", 200, `{"data":[{"index":0,"embedding":[1,0]},{"index":5,"embedding":[0,1]}]}`, "out of range"},
		{"mixed dims", 200, `{"data":[{"index":0,"embedding":[1,0]},{"index":1,"embedding":[0,1,2]}]}`, "dimension 3"},
		{"empty vector", 200, `{"data":[{"index":0,"embedding":[]},{"index":1,"embedding":[0,1]}]}`, "empty"},
		{"base64", 200, `{"data":[{"index":0,"embedding":"AAAA"},{"index":1,"embedding":"AAAA"}]}`, "decoding"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := fakeServer(t, c.status, func([]string) string { return c.body })
			_, err := NewOpenAI(srv.URL+"/v1", "m", "", srv.Client()).Embed(context.Background(), []string{"x", "y"})
			if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrBadResponse mentioning %q", err, c.want)
			}
		})
	}

	t.Run("OpenAI error body", func(t *testing.T) {
		srv := fakeServer(t, 429, func([]string) string {
			return `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
		})
		_, err := NewOpenAI(srv.URL+"/v1", "m", "", srv.Client()).Embed(context.Background(), []string{"x"})
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Type != "requests" ||
			err.Error() != "llm: HTTP 429 requests (rate_limit_exceeded): Rate limit reached" {
			t.Fatalf("%v", err)
		}
	})
	t.Run("plain error body", func(t *testing.T) {
		srv := fakeServer(t, 502, func([]string) string { return "bad gateway\n" })
		_, err := NewOpenAI(srv.URL+"/v1", "m", "", srv.Client()).Embed(context.Background(), []string{"x"})
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || apiErr.Body != "bad gateway" {
			t.Fatalf("%v", err)
		}
	})
	t.Run("dimension changes between calls", func(t *testing.T) {
		dim := 2
		srv := fakeServer(t, 200, func(inputs []string) string {
			dim++
			return fmt.Sprintf(`{"data":[{"index":0,"embedding":[%s1]}]}`, strings.Repeat("0,", dim-1))
		})
		c := NewOpenAI(srv.URL+"/v1", "m", "", srv.Client())
		embedAll(t, c, []string{"x"})
		if _, err := c.Embed(context.Background(), []string{"x"}); !errors.Is(err, ErrBadResponse) || c.Dim() != 3 {
			t.Fatalf("%v (dim %d)", err, c.Dim())
		}
	})
}

func TestOpenAIContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // lets the server notice the client hanging up
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	c := NewOpenAI(srv.URL+"/v1", "m", "", srv.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Embed(ctx, []string{"x"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	if _, err := NewOpenAI("", "m", "", nil).Embed(context.Background(), []string{"x"}); err == nil {
		t.Fatal("missing base URL accepted")
	}
}
