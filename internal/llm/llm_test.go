package llm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
	"github.com/hyperspace-ai/hyperspace/internal/proposer"
)

// fake is a tiny domain for the tests.
type fake struct{}

var fakeSpace = domains.Space{
	{Name: "lr", Kind: domains.Float, Min: 1e-4, Max: 1e-1, Log: true, Help: "learning rate"},
	{Name: "layers", Kind: domains.Int, Min: 1, Max: 8, Help: "depth"},
	{Name: "opt", Kind: domains.Choice, Choices: []string{"sgd", "adam"}, Help: "optimiser"},
}

func (fake) Name() string { return "fake" }
func (fake) Metric() domains.Metric {
	return domains.Metric{Name: "val_loss", Direction: domains.Minimize}
}
func (fake) Space() domains.Space { return fakeSpace }
func (fake) Baseline() domains.Config {
	return domains.Config{"lr": 0.003, "layers": 2, "opt": "adam"}
}
func (f fake) Validate(c domains.Config) (domains.Config, error) {
	v, err := fakeSpace.Normalize(c, f.Baseline())
	if err != nil {
		return nil, err
	}
	if v.String("opt") == "sgd" && v.Int("layers") > 6 {
		return nil, &domains.FieldError{Field: "layers", Message: "sgd supports at most 6 layers"}
	}
	return v, nil
}
func (fake) Evaluate(context.Context, domains.Config, int64, domains.EvalOptions) (domains.Result, error) {
	return domains.Result{}, nil
}
func (fake) Describe() string { return "A fake domain: train a tiny model." }

const (
	idA = "3fa2c1d0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "9bc1e2f3bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func history() []proposer.Entry {
	return []proposer.Entry{
		{ID: idA, Agent: "a1", Config: domains.Config{"lr": 0.003, "layers": 2.0, "opt": "adam"}, Metric: 2.431, Baseline: true},
		{ID: idB, Agent: "a2", Config: domains.Config{"lr": 0.006, "layers": 2.0, "opt": "adam"}, Metric: 2.402},
	}
}

func newServer(t *testing.T) (*llmtest.Server, *Client) {
	t.Helper()
	s := llmtest.New()
	t.Cleanup(s.Close)
	return s, &Client{BaseURL: s.BaseURL(), Model: "test-model", HTTP: s.Client()}
}

func TestChatRequestShape(t *testing.T) {
	s, c := newServer(t)
	s.RequireKey("sk-test")
	c.APIKey = "sk-test"
	s.EnqueueContent(`{"ok": true}`)
	got, err := c.Chat(context.Background(), []Message{{Role: "user", Content: "reply in json"}}, ChatOptions{Temperature: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	if got != `{"ok": true}` {
		t.Fatalf("content %q", got)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/v1/chat/completions" || r.Authorization != "Bearer sk-test" || r.ContentType != "application/json" {
		t.Fatalf("request %+v", r)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["model"] != "test-model" || body["temperature"] != 0.2 {
		t.Fatalf("body %s", r.Body)
	}
	if rf, _ := body["response_format"].(map[string]any); rf["type"] != "json_object" {
		t.Fatalf("response_format missing: %s", r.Body)
	}
	if msgs, _ := body["messages"].([]any); len(msgs) != 1 {
		t.Fatalf("messages: %s", r.Body)
	}
}

func TestChatErrors(t *testing.T) {
	s, c := newServer(t)
	s.RequireKey("sk-right")

	c.APIKey = "sk-wrong"
	_, err := c.Chat(context.Background(), []Message{{Role: "user", Content: "json"}}, ChatOptions{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" || apiErr.Type != "invalid_request_error" || apiErr.Message == "" {
		t.Fatalf("wrong key: %#v", err)
	}

	c.APIKey = "sk-right"
	s.Enqueue(llmtest.Reply{Status: 429, ErrorMessage: "Rate limit reached", ErrorType: "requests", ErrorCode: "rate_limit_exceeded"})
	_, err = c.Chat(context.Background(), []Message{{Role: "user", Content: "json"}}, ChatOptions{})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || !strings.Contains(err.Error(), "Rate limit reached") {
		t.Fatalf("429: %v", err)
	}

	// json_object mode without the word JSON is a 400, as with the real API.
	_, err = c.Chat(context.Background(), []Message{{Role: "user", Content: "hello"}}, ChatOptions{})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Fatalf("json mode without json: %v", err)
	}
	// ...but fine in plain-text mode.
	s.EnqueueContent("hi")
	if got, err := c.Chat(context.Background(), []Message{{Role: "user", Content: "hello"}}, ChatOptions{PlainText: true}); err != nil || got != "hi" {
		t.Fatalf("plain text: %q %v", got, err)
	}

	// A non-OpenAI error body is kept raw.
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	})
	ps := httptest.NewServer(plain)
	defer ps.Close()
	c2 := &Client{BaseURL: ps.URL + "/v1", Model: "m"}
	_, err = c2.Chat(context.Background(), []Message{{Role: "user", Content: "json"}}, ChatOptions{})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || !strings.Contains(apiErr.Body, "upstream exploded") {
		t.Fatalf("502: %v", err)
	}
}

func TestFakeServerRejectsMalformed(t *testing.T) {
	s, _ := newServer(t)
	cases := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/v1/chat/completions", `{not json`, 400},
		{"POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400},
		{"POST", "/v1/chat/completions", `{"model":"m","messages":[]}`, 400},
		{"POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"wizard","content":"x"}]}`, 400},
		{"POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}`, 400},
		{"GET", "/v1/chat/completions", ``, 405},
		{"POST", "/v1/completions", `{}`, 404},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(tc.body))
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb struct {
			Error struct{ Message, Type string } `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != tc.status || eb.Error.Message == "" || eb.Error.Type == "" {
			t.Errorf("%s %s %s: status %d error %+v, want %d with OpenAI error shape", tc.method, tc.path, tc.body, resp.StatusCode, eb.Error, tc.status)
		}
	}
	// A well-formed request returns a chat.completion object.
	s.EnqueueContent(`{"a":1}`)
	resp, err := s.Client().Post(s.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"say json"}],"response_format":{"type":"json_object"}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Role, Content string
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || out.Object != "chat.completion" || out.ID == "" || out.Created == 0 || out.Model != "m" ||
		len(out.Choices) != 1 || out.Choices[0].Message.Role != "assistant" || out.Choices[0].Message.Content != `{"a":1}` ||
		out.Choices[0].FinishReason != "stop" || out.Usage.TotalTokens == 0 {
		t.Fatalf("completion %+v", out)
	}
}

func TestHypothesizeUsesValidLLMProposal(t *testing.T) {
	s, c := newServer(t)
	s.EnqueueContent("```json\n" + `{"hypothesis": "Deeper nets should help:\nraise layers 2 -> 4",
		"config": {"lr": 0.006, "layers": 4, "opt": "adam"},
		"parents": ["` + idB + `", "3fa2c1d0", "deadbeefcafe", "` + idB + `"],
		"confidence": 0.7}` + "\n```")
	p, name, err := Hypothesize(context.Background(), c, fake{}, history(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if name != "llm:test-model" || p.Strategy != StrategyLLM {
		t.Fatalf("name %q strategy %q", name, p.Strategy)
	}
	if p.Config.Key() != (domains.Config{"lr": 0.006, "layers": 4.0, "opt": "adam"}).Key() {
		t.Fatalf("config %v", p.Config)
	}
	if !reflect.DeepEqual(p.Parents, []string{idB, idA}) {
		t.Fatalf("parents %v", p.Parents)
	}
	if p.Hypothesis != "Deeper nets should help: raise layers 2 -> 4" {
		t.Fatalf("hypothesis %q", p.Hypothesis)
	}
	// The prompt carried the description, space, metric and history.
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	var prompt strings.Builder
	for _, m := range reqs[0].Chat.Messages {
		prompt.WriteString(*m.Content)
	}
	for _, want := range []string{"A fake domain", `"name":"lr"`, "val_loss", "lower is better", idA, idB, "2.402", "JSON"} {
		if !strings.Contains(prompt.String(), want) {
			t.Errorf("prompt lacks %q", want)
		}
	}
}

func TestHypothesizeFallsBack(t *testing.T) {
	h := history()
	want, err := proposer.Propose(fake{}, h, 7)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		reply  llmtest.Reply
		reason string
		kind   error
	}{
		{"invalid json", llmtest.Reply{Content: "Sure! I think we should raise the learning rate."}, "bad_json", ErrInvalidJSON},
		{"missing config", llmtest.Reply{Content: `{"hypothesis": "x"}`}, "missing_field", ErrMissingField},
		{"out of range", llmtest.Reply{Content: `{"hypothesis": "huge lr", "config": {"lr": 5, "layers": 2, "opt": "adam"}}`}, "invalid_config", ErrInvalidConfig},
		{"cross constraint", llmtest.Reply{Content: `{"hypothesis": "deep sgd", "config": {"lr": 0.01, "layers": 8, "opt": "sgd"}}`}, "invalid_config", ErrInvalidConfig},
		{"unknown param", llmtest.Reply{Content: `{"hypothesis": "x", "config": {"dropout": 0.1}}`}, "invalid_config", ErrInvalidConfig},
		{"repeated", llmtest.Reply{Content: `{"hypothesis": "again", "config": {"lr": 0.006, "layers": 2, "opt": "adam"}, "parents": []}`}, "repeat", ErrRepeatedConfig},
		{"repeated via defaults", llmtest.Reply{Content: `{"hypothesis": "baseline", "config": {}}`}, "repeat", ErrRepeatedConfig},
		{"500", llmtest.Reply{Status: 500, ErrorMessage: "The server had an error while processing your request."}, "http_500", nil},
		{"429 with a long body", llmtest.Reply{Status: 429, ErrorMessage: "Rate limit reached for org-SECRET " + strings.Repeat("details ", 200)}, "http_429", nil},
		{"401", llmtest.Reply{Status: 401, ErrorMessage: "Incorrect API key provided: sk-abc***xyz."}, "http_401", nil},
		{"timeout", llmtest.Reply{Content: `{}`, Delay: 5 * time.Second}, "timeout", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newServer(t)
			s.Enqueue(tc.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			p, name, err := Hypothesize(ctx, c, fake{}, h, 7)
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatal("timeout not honoured")
			}
			if want := "builtin (llm fallback: " + tc.reason + ")"; name != want {
				t.Fatalf("proposer name %q, want %q", name, want)
			}
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("fallback proposal %+v, want builtin %+v", p, want)
			}
			if tc.kind != nil {
				_, perr := ParseProposal(tc.reply.Content, fake{}, h)
				var pe *ProposalError
				if !errors.Is(perr, tc.kind) || !errors.As(perr, &pe) {
					t.Fatalf("ParseProposal error %v, want kind %v", perr, tc.kind)
				}
			}
		})
	}
}

func TestHypothesizeWithoutClient(t *testing.T) {
	p, name, err := Hypothesize(context.Background(), nil, fake{}, nil, 1)
	if err != nil || name != "builtin" || p.Strategy != proposer.StrategyBaseline {
		t.Fatalf("%+v %q %v", p, name, err)
	}
}

func TestParseProposalFieldErrorIsReachable(t *testing.T) {
	_, err := ParseProposal(`{"hypothesis":"x","config":{"layers":2.5}}`, fake{}, nil)
	var fe *domains.FieldError
	if !errors.As(err, &fe) || fe.Field != "layers" {
		t.Fatalf("want *domains.FieldError for layers, got %v", err)
	}
	for _, bad := range []string{`[]`, `null`, `"x"`, `{"hypothesis": 3, "config": {}}`, `{"hypothesis": "x", "config": [], "parents": []}`, `{"hypothesis": "x", "config": {}, "parents": "abc"}`} {
		if _, err := ParseProposal(bad, fake{}, nil); err == nil {
			t.Errorf("%s: want error", bad)
		}
	}
}
