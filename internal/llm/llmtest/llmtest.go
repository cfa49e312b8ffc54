// Package llmtest provides an in-process fake of an OpenAI-compatible chat
// completions API for tests.
//
// It is a stand-in for a hosted LLM, which cannot be reached from tests:
// it speaks the real wire format (POST /v1/chat/completions, the
// chat.completion response object, OpenAI's {"error": {...}} shape with
// 400/401/404/405 statuses) and answers from a queue of replies scripted by
// the test. It records every request it receives.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Reply is one scripted answer.
type Reply struct {
	// Content is the assistant message content returned with status 200.
	Content string
	// Status, when non-zero and not 200, makes the server answer with that
	// HTTP status and an OpenAI error body instead of a completion.
	Status int
	// ErrorMessage/ErrorType/ErrorCode fill the error body (defaults are
	// derived from Status).
	ErrorMessage, ErrorType, ErrorCode string
	// Delay postpones the answer (to test client timeouts). The handler
	// gives up early if the client goes away.
	Delay time.Duration
	// FinishReason defaults to "stop".
	FinishReason string
}

// Message is a chat message as sent by clients.
type Message struct {
	Role    string  `json:"role"`
	Content *string `json:"content"`
	Name    string  `json:"name,omitempty"`
}

// ResponseFormat is the request's response_format.
type ResponseFormat struct {
	Type string `json:"type"`
}

// ChatRequest is the body of a chat completion request (the fields this
// fake understands; others are accepted and ignored, like the real API).
type ChatRequest struct {
	Model          string          `json:"model"`
	Messages       []Message       `json:"messages"`
	Temperature    *float64        `json:"temperature,omitempty"`
	MaxTokens      *int            `json:"max_tokens,omitempty"`
	ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
}

// Request is one request the server received.
type Request struct {
	Method        string
	Path          string
	Authorization string
	ContentType   string
	Body          []byte
	Chat          ChatRequest // parsed body (zero if it did not parse)
}

// Server is the fake API. Create it with New and Close it when done.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	apiKey   string
	replies  []Reply
	requests []Request
	created  int64
}

// New starts a fake server that requires no API key.
func New() *Server {
	s := &Server{created: 1700000000}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// BaseURL is the URL a client should use as its base ("<url>/v1").
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// RequireKey makes the server reject requests whose Authorization header
// is not "Bearer <key>" with 401 (an empty key disables the check).
func (s *Server) RequireKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKey = key
}

// Enqueue appends scripted replies; each request consumes one. When the
// queue is empty the server answers 500 "no scripted reply".
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, replies...)
}

// EnqueueContent appends 200 replies with the given contents.
func (s *Server) EnqueueContent(contents ...string) {
	for _, c := range contents {
		s.Enqueue(Reply{Content: c})
	}
}

// Requests returns a copy of the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Pending is the number of scripted replies not yet consumed.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.replies)
}

type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := apiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	json.NewEncoder(w).Encode(map[string]apiError{"error": e})
}

var validRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	rec := Request{
		Method:        r.Method,
		Path:          r.URL.Path,
		Authorization: r.Header.Get("Authorization"),
		ContentType:   r.Header.Get("Content-Type"),
		Body:          body,
	}
	var chat ChatRequest
	parseErr := json.Unmarshal(body, &chat)
	if parseErr == nil {
		rec.Chat = chat
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	key := s.apiKey
	s.mu.Unlock()

	if r.URL.Path != "/v1/chat/completions" {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", fmt.Sprintf("Invalid method %s; use POST", r.Method))
		return
	}
	if key != "" && rec.Authorization != "Bearer "+key {
		msg := "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
		if rec.Authorization != "" {
			msg = "Incorrect API key provided."
		}
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", msg)
		return
	}
	if parseErr != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "We could not parse the JSON body of your request. ("+parseErr.Error()+")")
		return
	}
	if msg := validate(chat); msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", msg)
		return
	}

	s.mu.Lock()
	var reply Reply
	have := len(s.replies) > 0
	if have {
		reply, s.replies = s.replies[0], s.replies[1:]
	}
	s.created++
	created := s.created
	s.mu.Unlock()
	if !have {
		writeError(w, http.StatusInternalServerError, "server_error", "", "llmtest: no scripted reply left")
		return
	}
	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		typ, msg := reply.ErrorType, reply.ErrorMessage
		if typ == "" {
			typ = "server_error"
			if reply.Status < 500 {
				typ = "invalid_request_error"
			}
		}
		if msg == "" {
			msg = http.StatusText(reply.Status)
		}
		writeError(w, reply.Status, typ, reply.ErrorCode, msg)
		return
	}
	finish := reply.FinishReason
	if finish == "" {
		finish = "stop"
	}
	prompt := 0
	for _, m := range chat.Messages {
		if m.Content != nil {
			prompt += len(strings.Fields(*m.Content))
		}
	}
	completion := len(strings.Fields(reply.Content))
	resp := map[string]any{
		"id":      fmt.Sprintf("chatcmpl-llmtest%d", created),
		"object":  "chat.completion",
		"created": created,
		"model":   chat.Model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": reply.Content},
			"logprobs":      nil,
			"finish_reason": finish,
		}},
		"usage": map[string]int{
			"prompt_tokens":     prompt,
			"completion_tokens": completion,
			"total_tokens":      prompt + completion,
		},
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// validate mirrors the checks the real API makes on the fields we use; it
// returns the error message, or "" when the request is well formed.
func validate(c ChatRequest) string {
	if c.Model == "" {
		return "you must provide a model parameter"
	}
	if len(c.Messages) == 0 {
		return "[] is too short - 'messages'"
	}
	mentionsJSON := false
	for i, m := range c.Messages {
		if !validRoles[m.Role] {
			return fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'. - 'messages[%d].role'", m.Role, i)
		}
		if m.Content == nil && m.Role != "assistant" {
			return fmt.Sprintf("Missing required parameter: 'messages[%d].content'.", i)
		}
		if m.Content != nil && strings.Contains(strings.ToLower(*m.Content), "json") {
			mentionsJSON = true
		}
	}
	if t := c.Temperature; t != nil && (*t < 0 || *t > 2) {
		return fmt.Sprintf("Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got %v instead.", *t)
	}
	if rf := c.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "json_schema":
		case "json_object":
			if !mentionsJSON {
				return "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
			}
		default:
			return fmt.Sprintf("Invalid value: '%s'. Supported values are: 'text', 'json_object', and 'json_schema'. - 'response_format.type'", rf.Type)
		}
	}
	return ""
}
