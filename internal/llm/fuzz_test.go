package llm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/proposer"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// A hosted LLM's reply is outside input: its text becomes a signed
// receipt's hypothesis, config and code, and its failures a reason code in
// signed records. These targets decode replies as the workers do.

// codeFake is fake as a code domain (an LLM may send source code).
type codeFake struct{ fake }

func (codeFake) CodeSpec(domains.Config) string { return "write train.py" }
func (codeFake) EvaluateCode(context.Context, domains.Config, []byte, int64, domains.EvalOptions) (domains.Result, error) {
	return domains.Result{}, errors.New("not run in tests")
}

var reasonRE = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

func fuzzHistory() []proposer.Entry {
	return []proposer.Entry{
		{ID: strings.Repeat("ab", 32), Config: domains.Config{"lr": 0.01, "layers": 2.0, "opt": "adam"}, Metric: 1.2},
		{ID: strings.Repeat("cd", 32), Config: domains.Config{"lr": 0.001, "layers": 4.0, "opt": "sgd"}, Metric: 1.1, Baseline: true},
		{ID: "abababab" + strings.Repeat("ef", 28), Config: domains.Config{"lr": 0.002, "layers": 4.0, "opt": "sgd"}, Metric: 1.3},
	}
}

// FuzzParseProposal: any reply is a proposal or a *ProposalError with a
// reason code, never a panic. A proposal's config validates (to itself)
// and can be signed, its hypothesis is one line of valid UTF-8 without
// control characters (NUL cannot be stored by PostgreSQL) within 500
// bytes, its code is within MaxCodeBytes without NUL, and its parents are
// distinct history ids.
func FuzzParseProposal(f *testing.F) {
	for _, s := range []string{
		`{"hypothesis": "raise lr to 0.05 for faster convergence", "config": {"lr": 0.05, "layers": 2, "opt": "adam"}, "parents": ["abababababababababababababababababababababababababababababababab"]}`,
		"```json\n{\"hypothesis\": \"deeper\", \"config\": {\"layers\": 6}, \"parents\": [\"cdcdcdcd\", \"abababab\", \"cdcdcdcd\"]}\n```",
		`{"hypothesis": "same as the baseline", "config": {"lr": 0.001, "layers": 4, "opt": "sgd"}}`,
		`{"hypothesis": "bad", "config": {"lr": 5}}`, `{"hypothesis": "", "config": {}}`, `{"hypothesis": "x", "config": null}`,
		`{"hypothesis": "x", "config": {"opt": "rmsprop"}}`, `{"hypothesis": "x", "config": {"nope": 1}}`, `[]`, `null`, ``, `not json`,
		`{"hypothesis": "a\u0000b\u0007c\nd\u2028e", "config": {"lr": 0.03}}`,
		`{"hypothesis": "a` + strings.Repeat("é", 300) + `", "config": {"lr": 0.04}}`,
		`{"hypothesis": "code", "config": {"lr": 0.02}, "code": "print(1)\u0000"}`,
		`{"hypothesis": "code", "config": {"lr": 0.02}, "code": "import torch\n"}`,
		`{"hypothesis": "x", "config": {"lr": 0.02}, "parents": "ab"}`, `{"hypothesis": "x", "config": {"lr": 0.02}, "code": 5}`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	history := fuzzHistory()
	f.Fuzz(func(t *testing.T, content string, code bool) {
		var d domains.Domain = fake{}
		if code {
			d = codeFake{}
		}
		p, err := ParseProposal(content, d, history)
		if err != nil {
			var pe *ProposalError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ProposalError: %v", err, err)
			}
			if r := ReasonCode(err); !reasonRE.MatchString(r) || r == ReasonOther {
				t.Fatalf("reason code %q for %v", r, err)
			}
			return
		}
		v, err := d.Validate(p.Config)
		if err != nil || v.Key() != p.Config.Key() {
			t.Fatalf("proposed config does not validate to itself: %v", err)
		}
		if err := (receipt.Receipt{Config: p.Config}).Check(); err != nil {
			t.Fatalf("proposed config cannot be signed: %v", err)
		}
		h := p.Hypothesis
		if h == "" || len(h) > 500+len("…") || !utf8.ValidString(h) || strings.IndexFunc(h, unicode.IsControl) >= 0 || h != strings.TrimSpace(h) {
			t.Fatalf("hypothesis %q", h)
		}
		if len(p.Code) > MaxCodeBytes || strings.IndexByte(p.Code, 0) >= 0 || (!code && p.Code != "") {
			t.Fatalf("code of %d bytes (NUL: %v) for domain %s", len(p.Code), strings.IndexByte(p.Code, 0) >= 0, d.Name())
		}
		seen := map[string]bool{}
		for _, id := range p.Parents {
			known := false
			for _, e := range history {
				known = known || e.ID == id
			}
			if !known || seen[id] {
				t.Fatalf("parents %v", p.Parents)
			}
			seen[id] = true
		}
	})
}

// reply is an http.RoundTripper that answers every request with one
// canned response.
type reply struct {
	status int
	body   []byte
}

func (r reply) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{StatusCode: r.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(r.body)), Request: req}, nil
}

// FuzzChatResponse: any HTTP answer of a chat endpoint gives the message
// content or an error, never a panic: a non-2xx answer is an *APIError,
// and every error reduces to a short fixed reason code (what signed
// records say instead of the provider's text).
func FuzzChatResponse(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"{\"hypothesis\":\"x\"}"},"finish_reason":"stop"}]}`},
		{200, `{"choices":[]}`}, {200, `{"choices":[{"message":{"content":null}}]}`}, {200, `{"choices":[{"message":{"content":5}}]}`},
		{200, `<html>gateway</html>`}, {200, ``}, {204, ``},
		{429, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`},
		{500, `{"error":{"message":"boom","type":"server_error","code":500}}`}, {502, `bad gateway`}, {400, `{"error":null}`},
		{401, `{"error":{"message":"key sk-123 is invalid","code":{"x":1}}}`}, {999, `{}`}, {0, `{}`}, {-1, ``},
	} {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		c := &Client{BaseURL: "http://127.0.0.1:8000/v1", Model: "m", HTTP: &http.Client{Transport: reply{status, body}}}
		content, err := c.Chat(context.Background(), []Message{{Role: "user", Content: "hi"}}, ChatOptions{})
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("status %d gave content %q", status, content)
			}
			return
		}
		var apiErr *APIError
		if (status < 200 || status > 299) != errors.As(err, &apiErr) {
			t.Fatalf("status %d gave %T: %v", status, err, err)
		}
		if r := ReasonCode(err); !reasonRE.MatchString(r) {
			t.Fatalf("reason code %q", r)
		}
		if strings.Contains(FallbackName(ReasonCode(err)), string(body)) && len(body) > 8 {
			t.Fatalf("provider text in the fallback name: %q", FallbackName(ReasonCode(err)))
		}
	})
}
