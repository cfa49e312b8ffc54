// Package llm talks to an OpenAI-compatible chat completions API and uses
// it to propose experiments, falling back to the built-in proposer when no
// LLM is configured or its answer is unusable.
package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// ChatOptions tunes one Chat call.
type ChatOptions struct {
	// Temperature is sent as is (0 is a valid, deterministic-ish value).
	Temperature float64
	// MaxTokens limits the completion when > 0.
	MaxTokens int
	// PlainText omits response_format; by default JSON mode
	// ({"type":"json_object"}) is requested.
	PlainText bool
}

// Client is an OpenAI-compatible chat client. BaseURL includes the API
// version prefix, e.g. "https://api.openai.com/v1" or "http://host:8000/v1".
// APIKey is sent as "Authorization: Bearer <key>" when set. HTTP defaults
// to a client that follows no redirect to another origin (see HTTPClient);
// use the ctx passed to Chat for timeouts.
type Client struct {
	BaseURL, Model, APIKey string
	HTTP                   *http.Client
	// Allow, when set, is the operator's allow-list: Chat sends nothing
	// (and so no key) to a BaseURL that is not on it and returns
	// ErrEndpointNotAllowed. Callers that take BaseURL from users (the
	// workers: campaigns name it) must set it; nil means no check.
	Allow *AllowList
	// Logger receives the details of failures that Hypothesize reduces to
	// a short code (nil: slog.Default()).
	Logger *slog.Logger
}

func (c *Client) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// ErrRedirectNotAllowed means the endpoint redirected to another origin, or
// to a URL off the allow-list; the redirect was not followed.
var ErrRedirectNotAllowed = errors.New("llm: redirect to another origin or off the allow-list refused")

// maxRedirects bounds same-origin redirects.
const maxRedirects = 3

// HTTPClient returns the http.Client LLM calls should use: timeout bounds
// each call, and redirects are followed only within the same scheme, host
// and port and (when allow is set) only to URLs on the allow-list, so the
// API key never travels to a host the operator did not list.
func HTTPClient(timeout time.Duration, allow *AllowList) *http.Client {
	return &http.Client{Timeout: timeout, CheckRedirect: redirectPolicy(allow)}
}

func redirectPolicy(allow *AllowList) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("%w: more than %d redirects", ErrRedirectNotAllowed, maxRedirects)
		}
		if !SameOrigin(via[0].URL, req.URL) || (allow != nil && !allow.Allows(req.URL.String())) {
			return ErrRedirectNotAllowed
		}
		return nil
	}
}

var defaultHTTP = &http.Client{CheckRedirect: redirectPolicy(nil)}

// ErrClientConfig means the client lacks BaseURL or Model.
var ErrClientConfig = errors.New("llm: client needs BaseURL and Model")

// ErrBadResponse means a 2xx answer was not a chat completion.
var ErrBadResponse = errors.New("llm: response is not a chat completion")

// APIError is a non-2xx answer, decoded from OpenAI's error shape
// {"error": {"message", "type", "code"}} when the body has it.
type APIError struct {
	StatusCode int
	Message    string
	Type       string
	Code       string
	Body       string // raw body (truncated) when it was not OpenAI's shape
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "llm: HTTP %d", e.StatusCode)
	if e.Type != "" {
		fmt.Fprintf(&b, " %s", e.Type)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	} else if e.Body != "" {
		fmt.Fprintf(&b, ": %s", e.Body)
	}
	return b.String()
}

// ErrEmptyResponse means a 2xx answer had no choices or no content.
var ErrEmptyResponse = errors.New("llm: response has no message content")

type chatRequest struct {
	Model          string          `json:"model"`
	Messages       []Message       `json:"messages"`
	Temperature    float64         `json:"temperature"`
	MaxTokens      int             `json:"max_tokens,omitempty"`
	ResponseFormat *responseFormat `json:"response_format,omitempty"`
}

type responseFormat struct {
	Type string `json:"type"`
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

type errorBody struct {
	Error *struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	} `json:"error"`
}

// Chat posts messages to <BaseURL>/chat/completions and returns
// choices[0].message.content. Non-2xx answers are *APIError.
func (c *Client) Chat(ctx context.Context, messages []Message, opts ChatOptions) (string, error) {
	if c == nil || c.BaseURL == "" || c.Model == "" {
		return "", ErrClientConfig
	}
	if c.Allow != nil && !c.Allow.Allows(c.BaseURL) {
		return "", ErrEndpointNotAllowed
	}
	req := chatRequest{Model: c.Model, Messages: messages, Temperature: opts.Temperature, MaxTokens: opts.MaxTokens}
	if !opts.PlainText {
		req.ResponseFormat = &responseFormat{Type: "json_object"}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("llm: encoding request: %w", err)
	}
	url := strings.TrimRight(c.BaseURL, "/") + "/chat/completions"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("llm: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	if c.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return "", fmt.Errorf("llm: POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("llm: reading response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", DecodeAPIError(resp.StatusCode, raw)
	}
	var cr chatResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return "", fmt.Errorf("%w: %w (body %q)", ErrBadResponse, err, Truncate(string(raw), 200))
	}
	if len(cr.Choices) == 0 || cr.Choices[0].Message.Content == nil {
		return "", ErrEmptyResponse
	}
	return *cr.Choices[0].Message.Content, nil
}

// DecodeAPIError builds the *APIError of a non-2xx answer of any
// OpenAI-compatible endpoint (chat, embeddings).
func DecodeAPIError(status int, raw []byte) *APIError {
	e := &APIError{StatusCode: status}
	var eb errorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error != nil {
		e.Message, e.Type = eb.Error.Message, eb.Error.Type
		var s string
		if json.Unmarshal(eb.Error.Code, &s) == nil {
			e.Code = s
		} else if len(eb.Error.Code) > 0 && string(eb.Error.Code) != "null" {
			e.Code = string(eb.Error.Code) // some servers send numbers
		}
		return e
	}
	e.Body = Truncate(strings.TrimSpace(string(raw)), 300)
	return e
}

// Truncate cuts s to at most n bytes, at a character boundary (so valid
// UTF-8 stays valid: PostgreSQL's TEXT and JSONB refuse anything else),
// marking the cut with "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
