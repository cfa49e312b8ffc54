// Package llmtest provides an in-process fake of an OpenAI-compatible chat
// completions API for tests.
//
// It is a stand-in for a hosted LLM, which cannot be reached from tests:
// it speaks the real wire format (POST /v1/chat/completions, the
// chat.completion response object, OpenAI's {"error": {...}} shape with
// 400/401/404/405 statuses) and answers from a queue of replies scripted by
// the test. It records every request it receives.
//
// It also serves POST /v1/embeddings, answering every valid request with
// deterministic embeddings (see Embedding) without consuming the queue.
package llmtest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
	"unicode"
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
	// Embeddings is the parsed body of a well-formed /v1/embeddings
	// request (zero otherwise).
	Embeddings EmbeddingsRequest
}

// EmbeddingsRequest is the body of an embeddings request, as understood by
// this fake.
type EmbeddingsRequest struct {
	Model string
	// Input holds the texts; a single-string input becomes one element.
	Input []string
	// InputIsString reports that input was a string rather than an array.
	InputIsString bool
	// Dimensions is the requested vector size (0 when not given).
	Dimensions int
	// EncodingFormat is as sent ("" when not given).
	EncodingFormat string
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

// EmbeddingRequests returns a copy of the requests received so far on
// the /v1/embeddings path (also included in Requests), in order.
func (s *Server) EmbeddingRequests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Path == embeddingsPath {
			out = append(out, r)
		}
	}
	return out
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
	var emb EmbeddingsRequest
	embErr := ""
	if r.URL.Path == embeddingsPath && r.Method == http.MethodPost {
		emb, embErr = parseEmbeddings(body)
		if embErr == "" {
			rec.Embeddings = emb
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	key := s.apiKey
	s.mu.Unlock()

	if r.URL.Path == embeddingsPath {
		s.handleEmbeddings(w, r, rec.Authorization, key, emb, embErr)
		return
	}
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

// checkKey answers 401, like the chat route, and returns false when a key
// is required and the Authorization header does not carry it.
func checkKey(w http.ResponseWriter, key, authorization string) bool {
	if key == "" || authorization == "Bearer "+key {
		return true
	}
	msg := "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
	if authorization != "" {
		msg = "Incorrect API key provided."
	}
	writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", msg)
	return false
}

const embeddingsPath = "/v1/embeddings"

// EmbeddingDim is the size of the fake's embeddings when the request does
// not ask for "dimensions".
const EmbeddingDim = 32

// maxEmbeddingInputs is the real API's limit on inputs per request.
const maxEmbeddingInputs = 2048

// parseEmbeddings decodes and validates an embeddings request body like
// the real API does for the fields this fake understands: model (required
// string), input (a non-empty string or a non-empty array of at most 2048
// non-empty strings; token arrays are not supported), dimensions (optional
// positive integer) and encoding_format (optional, "float" only). It
// returns the error message, or "" when the request is well formed.
func parseEmbeddings(body []byte) (EmbeddingsRequest, string) {
	var raw struct {
		Model          *string         `json:"model"`
		Input          json.RawMessage `json:"input"`
		Dimensions     *int            `json:"dimensions"`
		EncodingFormat *string         `json:"encoding_format"`
	}
	var req EmbeddingsRequest
	if err := json.Unmarshal(body, &raw); err != nil {
		return req, "We could not parse the JSON body of your request. (" + err.Error() + ")"
	}
	if raw.Model == nil || *raw.Model == "" {
		return req, "you must provide a model parameter"
	}
	req.Model = *raw.Model
	if len(raw.Input) == 0 || string(raw.Input) == "null" {
		return req, "Missing required parameter: 'input'."
	}
	var one string
	if err := json.Unmarshal(raw.Input, &one); err == nil {
		req.Input, req.InputIsString = []string{one}, true
	} else if err := json.Unmarshal(raw.Input, &req.Input); err != nil {
		return req, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
	}
	if len(req.Input) == 0 {
		return req, "'$.input' is invalid: it must not be empty."
	}
	if len(req.Input) > maxEmbeddingInputs {
		return req, fmt.Sprintf("'$.input' is too long: %d inputs, at most %d per request.", len(req.Input), maxEmbeddingInputs)
	}
	for i, in := range req.Input {
		if in == "" {
			return req, fmt.Sprintf("'$.input[%d]' is invalid: it must be a non-empty string.", i)
		}
	}
	if raw.Dimensions != nil {
		if *raw.Dimensions < 1 || *raw.Dimensions > 4096 {
			return req, fmt.Sprintf("Invalid 'dimensions': %d. Expected a value between 1 and 4096.", *raw.Dimensions)
		}
		req.Dimensions = *raw.Dimensions
	}
	if raw.EncodingFormat != nil {
		req.EncodingFormat = *raw.EncodingFormat
		if req.EncodingFormat != "float" {
			return req, fmt.Sprintf("Invalid value: '%s'. This fake supports only 'float'. - 'encoding_format'", req.EncodingFormat)
		}
	}
	return req, ""
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request, authorization, key string, req EmbeddingsRequest, parseErr string) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", fmt.Sprintf("Invalid method %s; use POST", r.Method))
		return
	}
	if !checkKey(w, key, authorization) {
		return
	}
	if parseErr != "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", parseErr)
		return
	}
	dim := req.Dimensions
	if dim == 0 {
		dim = EmbeddingDim
	}
	data := make([]any, len(req.Input))
	tokens := 0
	for i, text := range req.Input {
		tokens += len(strings.Fields(text))
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Embedding(text, dim)}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data":   data,
		"model":  req.Model,
		"usage":  map[string]int{"prompt_tokens": tokens, "total_tokens": tokens},
	})
}

// Embedding is the fake's embedding of text: a hashed bag of words. Each
// lowercased run of letters and digits adds ±1 to one of dim buckets, both
// chosen by its FNV-1a hash, and the sum is L2-normalised; texts sharing
// words therefore have a high cosine similarity. A text without words
// hashes as a whole, so the vector is never zero.
func Embedding(text string, dim int) []float32 {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	if len(words) == 0 {
		words = []string{text}
	}
	acc := make([]float64, dim)
	for _, w := range words {
		h := fnv.New64a()
		h.Write([]byte(w))
		x := h.Sum64()
		sign := 1.0
		if x>>63 == 1 {
			sign = -1
		}
		acc[(x&(1<<63-1))%uint64(dim)] += sign
	}
	var ss float64
	for _, v := range acc {
		ss += v * v
	}
	out := make([]float32, dim)
	if ss == 0 { // every word cancelled out: fall back to a fixed unit vector
		out[0] = 1
		return out
	}
	inv := 1 / math.Sqrt(ss)
	for i, v := range acc {
		out[i] = float32(v * inv)
	}
	return out
}
