package inference

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hyperspace-ai/hyperspace/internal/respcache"
)

// Ops of the API (also the ops of forwarded requests).
const (
	OpChat        = "chat"
	OpCompletions = "completions"
	OpEmbeddings  = "embeddings"
)

// Limits of a request.
const (
	MaxBodyBytes     = 1 << 20
	MaxStops         = 4
	MaxStopBytes     = 64
	MaxEmbedInputs   = 2048
	MaxPromptBytes   = 256 << 10
	DefaultMaxTokens = 128
)

// ErrNoProvider is returned by Peers.Forward when no peer serves a model.
var ErrNoProvider = errors.New("inference: no peer serves the model")

const sseType = "text/event-stream"

// Handler serves the /v1 API under prefix (usually "/v1"): GET models,
// POST chat/completions, completions and embeddings. Authentication is the
// caller's (wrap it).
func (s *Service) Handler(prefix string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/models", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, ModelList{Object: "list", Data: s.Models(r.Context())})
	})
	mux.HandleFunc("GET "+prefix+"/models/{id...}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		for _, m := range s.Models(r.Context()) {
			if m.ID == id {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		WriteError(w, ModelNotFound(id))
	})
	post := func(op string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
				WriteError(w, NewError(http.StatusUnsupportedMediaType, TypeInvalidRequest, "unsupported_media_type", "send the request body as application/json"))
				return
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
			if err != nil {
				WriteError(w, Invalid("", "could not read the request body: "+err.Error()))
				return
			}
			if len(body) > MaxBodyBytes {
				WriteError(w, NewError(http.StatusRequestEntityTooLarge, TypeInvalidRequest, "request_too_large", fmt.Sprintf("the request body exceeds %d bytes", MaxBodyBytes)))
				return
			}
			hw := &httpFrames{w: w}
			if err := s.Serve(r.Context(), op, body, hw, true); err != nil {
				hw.fail(err)
			}
		}
	}
	mux.HandleFunc("POST "+prefix+"/chat/completions", post(OpChat))
	mux.HandleFunc("POST "+prefix+"/completions", post(OpCompletions))
	mux.HandleFunc("POST "+prefix+"/embeddings", post(OpEmbeddings))
	mux.HandleFunc(prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, NewError(http.StatusNotFound, TypeInvalidRequest, "unknown_url", "Unknown request URL: "+r.Method+" "+r.URL.Path+". This server serves GET /v1/models, POST /v1/chat/completions, /v1/completions and /v1/embeddings"))
	})
	return mux
}

// httpFrames writes frames to an HTTP response: SSE events when the
// content type is text/event-stream, the raw body otherwise.
type httpFrames struct {
	w       http.ResponseWriter
	sse     bool
	started bool
}

func (h *httpFrames) WriteHeader(status int, contentType string) error {
	if h.started {
		return errors.New("inference: header written twice")
	}
	h.started = true
	h.sse = strings.HasPrefix(contentType, sseType)
	hd := h.w.Header()
	hd.Set("Content-Type", contentType)
	if h.sse {
		hd.Set("Cache-Control", "no-cache")
		hd.Set("X-Accel-Buffering", "no")
	}
	h.w.WriteHeader(status)
	return nil
}

func (h *httpFrames) WriteFrame(b []byte) error {
	if !h.started {
		if err := h.WriteHeader(http.StatusOK, "application/json"); err != nil {
			return err
		}
	}
	var err error
	if h.sse {
		_, err = fmt.Fprintf(h.w, "data: %s\n\n", b)
	} else {
		_, err = h.w.Write(b)
	}
	if f, ok := h.w.(http.Flusher); ok && h.sse {
		f.Flush()
	}
	return err
}

// fail reports err: as the response when nothing was written yet, as a
// final error event on a stream that has started.
func (h *httpFrames) fail(err error) {
	if !h.started {
		WriteError(h.w, err)
		return
	}
	if h.sse {
		var e *Error
		if !errors.As(err, &e) {
			e = NewError(http.StatusInternalServerError, TypeServer, "internal_error", "generation failed; see the server log")
		}
		b, _ := json.Marshal(ErrorBody{Error: e})
		_ = h.WriteFrame(b)
	}
}

// Serve answers one request of op (chat, completions, embeddings) whose
// JSON body is body, writing the response to w. forward allows sending it
// to a peer when no local model or upstream route serves it (a request
// that came from a peer is not forwarded again). Errors returned before
// anything was written are the response; the caller writes them.
func (s *Service) Serve(ctx context.Context, op string, body []byte, w FrameWriter, forward bool) error {
	s.count(func(st *Stats) { st.Requests++ })
	var probe struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Invalid("", "the request body is not valid JSON: "+err.Error())
	}
	if probe.Model == "" {
		return Invalid("model", "you must provide a model parameter")
	}
	if op == OpEmbeddings {
		if m, ok := s.embedModel(probe.Model); ok {
			return s.embeddings(ctx, m, body, w)
		}
	} else if m, ok := s.Text(probe.Model); ok {
		return s.generate(ctx, op, m, body, w)
	}
	if u, ok := s.upstreamRoute(probe.Model); ok {
		s.count(func(st *Stats) { st.Upstream++ })
		return u.forward(ctx, op, body, w)
	}
	if forward && s.Peers != nil {
		err := s.Peers.Forward(ctx, op, probe.Model, body, probe.Stream, w)
		if err == nil {
			s.count(func(st *Stats) { st.Forwarded++ })
			return nil
		}
		if !errors.Is(err, ErrNoProvider) {
			s.log().Warn("forwarding to a peer failed", "model", probe.Model, "op", op, "err", err)
			var e *Error
			if errors.As(err, &e) {
				return e
			}
			return NewError(http.StatusBadGateway, TypeServer, "peer_unavailable", "the peers serving `"+probe.Model+"` did not answer: "+err.Error())
		}
	}
	if op == OpEmbeddings {
		if _, ok := s.Text(probe.Model); ok {
			return Invalid("model", "`"+probe.Model+"` is a chat model; /v1/embeddings needs an embedding model (GET /v1/models lists kinds)")
		}
	} else if _, ok := s.embedModel(probe.Model); ok {
		return Invalid("model", "`"+probe.Model+"` is an embedding model; use /v1/embeddings")
	}
	return ModelNotFound(probe.Model)
}

// genRequest is a chat or completion request, validated.
type genRequest struct {
	op            string
	model         string
	prompt        string
	params        GenParams
	stream        bool
	includeUsage  bool
	deterministic bool
}

func decodeStrict(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Invalid(te.Field, fmt.Sprintf("%s: expected %s, got a JSON %s", te.Field, jsonKind(te.Type.String()), te.Value))
		}
		return Invalid("", "the request body is not valid: "+err.Error())
	}
	return nil
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "string"):
		return "a string"
	}
	return "another type"
}

func messageText(raw json.RawMessage, i int) (string, error) {
	param := fmt.Sprintf("messages[%d].content", i)
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", Invalid(param, param+": "+err.Error())
		}
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", Invalid(param, param+": want a string or an array of content parts")
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "text" {
			return "", Invalid(fmt.Sprintf("%s[%d].type", param, j), fmt.Sprintf("%s[%d]: only text content parts are supported, got %q", param, j, p.Type))
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// ChatPrompt is the prompt a chat becomes for our text-continuation
// models: the messages' texts joined by a newline, in order (the models
// are trained on documents separated by newlines, and continue the text).
func ChatPrompt(texts []string) string { return strings.Join(texts, "\n") }

func commonParams(model string, maxTokens, maxCompletion *int, temperature, topP *float64, n *int, stop StringList, seed *int64, presence, frequency *float64, limit int) (GenParams, error) {
	p := GenParams{MaxTokens: DefaultMaxTokens, Temperature: 1, TopP: 1, Seed: seed}
	if maxCompletion != nil {
		maxTokens = maxCompletion
	}
	if maxTokens != nil {
		if *maxTokens < 1 || *maxTokens > limit {
			param := "max_tokens"
			if maxCompletion != nil {
				param = "max_completion_tokens"
			}
			return p, Invalid(param, fmt.Sprintf("%s must be between 1 and %d for %s, got %d", param, limit, model, *maxTokens))
		}
		p.MaxTokens = *maxTokens
	}
	if p.MaxTokens > limit {
		p.MaxTokens = limit
	}
	if temperature != nil {
		if math.IsNaN(*temperature) || *temperature < 0 || *temperature > 2 {
			return p, Invalid("temperature", fmt.Sprintf("temperature must be between 0 and 2, got %v", *temperature))
		}
		p.Temperature = *temperature
	}
	if topP != nil {
		if math.IsNaN(*topP) || *topP <= 0 || *topP > 1 {
			return p, Invalid("top_p", fmt.Sprintf("top_p must be in (0, 1], got %v", *topP))
		}
		p.TopP = *topP
	}
	if n != nil && *n != 1 {
		return p, Invalid("n", fmt.Sprintf("only n=1 is supported, got %d", *n))
	}
	if len(stop) > MaxStops {
		return p, Invalid("stop", fmt.Sprintf("at most %d stop sequences, got %d", MaxStops, len(stop)))
	}
	for i, st := range stop {
		if st == "" || len(st) > MaxStopBytes {
			return p, Invalid("stop", fmt.Sprintf("stop[%d] must be 1 to %d bytes", i, MaxStopBytes))
		}
	}
	p.Stop = stop
	if presence != nil && *presence != 0 {
		return p, Invalid("presence_penalty", "presence_penalty is not supported (send 0 or leave it out)")
	}
	if frequency != nil && *frequency != 0 {
		return p, Invalid("frequency_penalty", "frequency_penalty is not supported (send 0 or leave it out)")
	}
	return p, nil
}

func parseGen(op string, body []byte, limit int) (genRequest, error) {
	g := genRequest{op: op}
	var err error
	switch op {
	case OpChat:
		var r ChatRequest
		if err := decodeStrict(body, &r); err != nil {
			return g, err
		}
		g.model, g.stream = r.Model, r.Stream
		if len(r.Messages) == 0 {
			return g, Invalid("messages", "messages must be a non-empty array")
		}
		texts := make([]string, 0, len(r.Messages))
		for i, m := range r.Messages {
			switch m.Role {
			case "system", "developer", "user", "assistant":
			case "":
				return g, Invalid(fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("messages[%d]: role is required", i))
			default:
				return g, Invalid(fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("messages[%d]: role %q is not supported (system, developer, user, assistant)", i, m.Role))
			}
			t, err := messageText(m.Content, i)
			if err != nil {
				return g, err
			}
			texts = append(texts, t)
		}
		g.prompt = ChatPrompt(texts)
		if len(r.Tools) > 0 && !bytes.Equal(bytes.TrimSpace(r.Tools), []byte("null")) && !bytes.Equal(bytes.TrimSpace(r.Tools), []byte("[]")) {
			return g, Invalid("tools", "tools are not supported by this model")
		}
		if r.Logprobs != nil && *r.Logprobs {
			return g, Invalid("logprobs", "logprobs are not supported")
		}
		if len(r.ResponseFormat) > 0 {
			var rf struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(r.ResponseFormat, &rf) != nil || (rf.Type != "" && rf.Type != "text") {
				return g, Invalid("response_format", "only response_format {\"type\":\"text\"} is supported")
			}
		}
		if r.StreamOptions != nil {
			if !r.Stream {
				return g, Invalid("stream_options", "stream_options is only allowed when stream is true")
			}
			g.includeUsage = r.StreamOptions.IncludeUsage
		}
		g.params, err = commonParams(r.Model, r.MaxTokens, r.MaxCompletionTokens, r.Temperature, r.TopP, r.N, r.Stop, r.Seed, r.PresencePenalty, r.FrequencyPenalty, limit)
	case OpCompletions:
		var r CompletionRequest
		if err := decodeStrict(body, &r); err != nil {
			return g, err
		}
		g.model, g.stream = r.Model, r.Stream
		switch len(r.Prompt) {
		case 0:
			g.prompt = "" // OpenAI's default prompt is <|endoftext|>: an empty text here
		case 1:
			g.prompt = r.Prompt[0]
		default:
			return g, Invalid("prompt", "only one prompt per request is supported")
		}
		if r.Echo {
			return g, Invalid("echo", "echo is not supported")
		}
		if r.Suffix != nil && *r.Suffix != "" {
			return g, Invalid("suffix", "suffix is not supported")
		}
		if r.Logprobs != nil {
			return g, Invalid("logprobs", "logprobs are not supported")
		}
		if r.BestOf != nil && *r.BestOf != 1 {
			return g, Invalid("best_of", "only best_of=1 is supported")
		}
		if r.StreamOptions != nil {
			if !r.Stream {
				return g, Invalid("stream_options", "stream_options is only allowed when stream is true")
			}
			g.includeUsage = r.StreamOptions.IncludeUsage
		}
		def := 16 // OpenAI's default max_tokens for completions
		if r.MaxTokens == nil {
			r.MaxTokens = &def
		}
		g.params, err = commonParams(r.Model, r.MaxTokens, nil, r.Temperature, r.TopP, r.N, r.Stop, r.Seed, r.PresencePenalty, r.FrequencyPenalty, limit)
	default:
		return g, fmt.Errorf("inference: unknown op %q", op)
	}
	if err != nil {
		return g, err
	}
	if len(g.prompt) > MaxPromptBytes {
		return g, Invalid(map[string]string{OpChat: "messages", OpCompletions: "prompt"}[op], fmt.Sprintf("the prompt is %d bytes; the limit is %d", len(g.prompt), MaxPromptBytes))
	}
	if !utf8.ValidString(g.prompt) {
		return g, Invalid("prompt", "the prompt is not valid UTF-8")
	}
	g.deterministic = g.params.Temperature == 0 || g.params.Seed != nil
	return g, nil
}

// ResultRecord is the deterministic part of a generation: what the L1
// cache stores and shares, and what a re-computation must reproduce byte
// for byte (ids and timestamps are made per response). It carries the
// request (prompt and canonical parameters) so that anyone can check that
// it answers the request hash it is filed under and re-run it.
type ResultRecord struct {
	Model            string      `json:"model"`
	ModelHash        string      `json:"modelHash"`
	Op               string      `json:"op"`
	Params           CanonParams `json:"params"`
	Prompt           string      `json:"prompt"`
	Text             string      `json:"text"`
	FinishReason     string      `json:"finishReason"`
	PromptTokens     int         `json:"promptTokens"`
	CompletionTokens int         `json:"completionTokens"`
}

// CanonParams are the sampling parameters as they enter a cache key, with
// defaults filled in (requests that differ only in spelling share a key;
// greedy decoding ignores the seed, so it is dropped at temperature 0).
type CanonParams struct {
	MaxTokens   int      `json:"maxTokens"`
	Temperature float64  `json:"temperature"`
	TopP        float64  `json:"topP"`
	Seed        *int64   `json:"seed"`
	Stop        []string `json:"stop"`
}

// Canon returns p's canonical form.
func Canon(p GenParams) CanonParams {
	c := CanonParams{MaxTokens: p.MaxTokens, Temperature: p.Temperature, TopP: p.TopP, Stop: p.Stop}
	if p.Seed != nil && p.Temperature != 0 {
		v := *p.Seed
		c.Seed = &v
	}
	if c.Stop == nil {
		c.Stop = []string{}
	}
	return c
}

// GenParams returns the parameters c stands for.
func (c CanonParams) GenParams() GenParams {
	return GenParams{MaxTokens: c.MaxTokens, Temperature: c.Temperature, TopP: c.TopP, Seed: c.Seed, Stop: c.Stop}
}

// RequestHash is the L1 cache key of a deterministic generation:
// hex SHA-256 over the length-prefixed (8-byte big-endian length, then the
// bytes) parts model hash || op || JSON of Canon(p) || prompt.
func RequestHash(modelHash, op string, p GenParams, prompt string) string {
	params, _ := json.Marshal(Canon(p))
	h := sha256.New()
	for _, part := range [][]byte{[]byte(modelHash), []byte(op), params, []byte(prompt)} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CheckRecord decodes a cached record and checks that it answers
// requestHash (its own request hashes to it). It is the content check of
// an L1 entry fetched from a peer, beside the proof's signature.
func CheckRecord(requestHash string, record []byte) (ResultRecord, error) {
	var r ResultRecord
	if err := json.Unmarshal(record, &r); err != nil {
		return r, fmt.Errorf("inference: cached record does not decode: %w", err)
	}
	if got := RequestHash(r.ModelHash, r.Op, r.Params.GenParams(), r.Prompt); got != requestHash {
		return r, fmt.Errorf("inference: cached record answers request %s, not %s", got, requestHash)
	}
	return r, nil
}

// Recompute re-runs the generation a cached record claims and returns the
// record bytes this node computes for it: equal bytes confirm the entry
// (our models are deterministic), other bytes expose a provider that
// served a wrong answer. It needs the record's model (same weights) here.
func (s *Service) Recompute(ctx context.Context, requestHash string, record []byte) ([]byte, error) {
	r, err := CheckRecord(requestHash, record)
	if err != nil {
		return nil, err
	}
	m, ok := s.Text(r.Model)
	if !ok || m.Info().Hash != r.ModelHash {
		return nil, fmt.Errorf("inference: cannot recompute: model %s (%s) is not served here", r.Model, r.ModelHash)
	}
	out, err := m.Generate(ctx, r.Prompt, r.Params.GenParams(), func(string) error { return nil })
	if err != nil {
		return nil, err
	}
	return recordBytes(m.Info(), r.Op, r.Params.GenParams(), r.Prompt, out), nil
}

func canonJSON(p GenParams) string {
	b, _ := json.Marshal(Canon(p))
	return string(b)
}

func recordBytes(info ModelInfo, op string, p GenParams, prompt string, out GenOutput) []byte {
	b, _ := json.Marshal(ResultRecord{Model: info.ID, ModelHash: info.Hash, Op: op, Params: Canon(p), Prompt: prompt, Text: out.Text,
		FinishReason: out.FinishReason, PromptTokens: out.PromptTokens, CompletionTokens: out.CompletionTokens})
	return b
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (s *Service) generate(ctx context.Context, op string, m TextModel, body []byte, w FrameWriter) error {
	g, err := parseGen(op, body, m.MaxTokens())
	if err != nil {
		return err
	}
	info := m.Info()
	var key string
	if g.deterministic && s.Cache != nil {
		key = RequestHash(info.Hash, op, g.params, g.prompt)
		if rec, src, ok := s.Cache.Lookup(ctx, key); ok {
			if r, err := CheckRecord(key, rec); err == nil && r.ModelHash == info.Hash {
				s.count(func(st *Stats) {
					if src == "local" {
						st.CacheHitsLocal++
					} else {
						st.CacheHitsPeer++
					}
				})
				return s.respondRecord(g, info, w, r)
			}
		}
		if s.Semantic != nil {
			scope := respcache.Scope(info.Hash+"|"+op, canonJSON(g.params))
			if m, ok, err := s.Semantic.Match(ctx, scope, g.prompt); err == nil && ok {
				if rec, _, ok := s.Cache.Lookup(ctx, m.RequestHash); ok {
					if r, err := CheckRecord(m.RequestHash, rec); err == nil && r.ModelHash == info.Hash {
						s.count(func(st *Stats) { st.SemanticHits++ })
						return s.respondRecord(g, info, w, r)
					}
				}
			}
		}
		s.count(func(st *Stats) { st.CacheMisses++ })
	}
	var out GenOutput
	err = s.respond(g, info, w, &out, func(emit func(string) error) error {
		o, err := m.Generate(ctx, g.prompt, g.params, emit)
		out = o
		return err
	})
	if err != nil {
		return err
	}
	if out.PrefixTokens > 0 {
		s.count(func(st *Stats) { st.PrefixHits++; st.PrefixTokens += int64(out.PrefixTokens) })
	}
	if key != "" && out.Deterministic {
		s.Cache.Put(context.WithoutCancel(ctx), key, info.ID, recordBytes(info, op, g.params, g.prompt, out))
		if s.Semantic != nil {
			_ = s.Semantic.Add(ctx, respcache.Scope(info.Hash+"|"+op, canonJSON(g.params)), g.prompt, key)
		}
	}
	return nil
}

// respondRecord answers from a cached record.
func (s *Service) respondRecord(g genRequest, info ModelInfo, w FrameWriter, r ResultRecord) error {
	out := GenOutput{Text: r.Text, FinishReason: r.FinishReason, PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, Deterministic: true}
	return s.respond(g, info, w, &out, func(emit func(string) error) error { return emit(r.Text) })
}

// respond writes a generation's response: run produces the text through
// emit, and *out holds the final output once run has returned.
func (s *Service) respond(g genRequest, info ModelInfo, w FrameWriter, out *GenOutput, run func(emit func(string) error) error) error {
	created := time.Now().Unix()
	result := func() GenOutput { return *out }
	usage := func(o GenOutput) *Usage {
		return &Usage{PromptTokens: o.PromptTokens, CompletionTokens: o.CompletionTokens, TotalTokens: o.PromptTokens + o.CompletionTokens}
	}
	if !g.stream {
		var b strings.Builder
		if err := run(func(p string) error { b.WriteString(p); return nil }); err != nil {
			return err
		}
		o := result()
		var resp any
		if g.op == OpChat {
			resp = ChatResponse{ID: newID("chatcmpl-"), Object: "chat.completion", Created: created, Model: info.ID, SystemFingerprint: s.Fingerprint,
				Choices: []ChatChoice{{Index: 0, Message: ResponseMessage{Role: "assistant", Content: o.Text}, FinishReason: o.FinishReason}}, Usage: usage(o)}
		} else {
			fr := o.FinishReason
			resp = CompletionResponse{ID: newID("cmpl-"), Object: "text_completion", Created: created, Model: info.ID, SystemFingerprint: s.Fingerprint,
				Choices: []TextChoice{{Index: 0, Text: o.Text, FinishReason: &fr}}, Usage: usage(o)}
		}
		b2, _ := json.Marshal(resp)
		if err := w.WriteHeader(http.StatusOK, "application/json"); err != nil {
			return err
		}
		return w.WriteFrame(b2)
	}
	if err := w.WriteHeader(http.StatusOK, sseType); err != nil {
		return err
	}
	id := newID(map[bool]string{true: "chatcmpl-", false: "cmpl-"}[g.op == OpChat])
	send := func(v any) error {
		b, _ := json.Marshal(v)
		return w.WriteFrame(b)
	}
	chatChunk := func(d ChunkDelta, fr *string) ChatChunk {
		return ChatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: info.ID, SystemFingerprint: s.Fingerprint,
			Choices: []ChunkChoice{{Index: 0, Delta: d, FinishReason: fr}}}
	}
	textChunk := func(t string, fr *string) CompletionResponse {
		return CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: info.ID, SystemFingerprint: s.Fingerprint,
			Choices: []TextChoice{{Index: 0, Text: t, FinishReason: fr}}}
	}
	if g.op == OpChat {
		empty := ""
		if err := send(chatChunk(ChunkDelta{Role: "assistant", Content: &empty}, nil)); err != nil {
			return err
		}
	}
	err := run(func(p string) error {
		if p == "" {
			return nil
		}
		if g.op == OpChat {
			return send(chatChunk(ChunkDelta{Content: &p}, nil))
		}
		return send(textChunk(p, nil))
	})
	if err != nil {
		return err
	}
	o := result()
	fr := o.FinishReason
	if g.op == OpChat {
		err = send(chatChunk(ChunkDelta{}, &fr))
	} else {
		err = send(textChunk("", &fr))
	}
	if err != nil {
		return err
	}
	if g.includeUsage {
		if g.op == OpChat {
			c := ChatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: info.ID, SystemFingerprint: s.Fingerprint, Choices: []ChunkChoice{}, Usage: usage(o)}
			err = send(c)
		} else {
			c := CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: info.ID, SystemFingerprint: s.Fingerprint, Choices: []TextChoice{}, Usage: usage(o)}
			err = send(c)
		}
		if err != nil {
			return err
		}
	}
	return w.WriteFrame([]byte("[DONE]"))
}

func (s *Service) embeddings(ctx context.Context, m EmbedModel, body []byte, w FrameWriter) error {
	var r EmbeddingRequest
	if err := decodeStrict(body, &r); err != nil {
		return err
	}
	var inputs []string
	raw := bytes.TrimSpace(r.Input)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return Invalid("input", "input is required: a string or an array of strings")
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Invalid("input", "input: "+err.Error())
		}
		inputs = []string{s}
	default:
		if err := json.Unmarshal(raw, &inputs); err != nil {
			return Invalid("input", "input must be a string or an array of strings (token arrays are not supported: this model does not use OpenAI's tokenizer)")
		}
	}
	if len(inputs) == 0 || len(inputs) > MaxEmbedInputs {
		return Invalid("input", fmt.Sprintf("input must hold 1 to %d strings, got %d", MaxEmbedInputs, len(inputs)))
	}
	for i, in := range inputs {
		if in == "" {
			return Invalid("input", fmt.Sprintf("input[%d] is empty", i))
		}
	}
	enc := r.EncodingFormat
	if enc == "" {
		enc = "float"
	}
	if enc != "float" && enc != "base64" {
		return Invalid("encoding_format", fmt.Sprintf("encoding_format must be \"float\" or \"base64\", got %q", r.EncodingFormat))
	}
	if r.Dimensions != nil && *r.Dimensions != m.Dim() {
		return Invalid("dimensions", fmt.Sprintf("%s has %d dimensions and cannot shorten them; send dimensions=%d or leave it out", r.Model, m.Dim(), m.Dim()))
	}
	vecs, tokens, err := m.Embed(ctx, inputs)
	if err != nil {
		return err
	}
	resp := EmbeddingResponse{Object: "list", Model: m.Info().ID}
	resp.Usage.PromptTokens, resp.Usage.TotalTokens = tokens, tokens
	for i, v := range vecs {
		e := Embedding{Object: "embedding", Index: i}
		if enc == "base64" {
			b := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(f))
			}
			e.Embedding = base64.StdEncoding.EncodeToString(b)
		} else {
			e.Embedding = v
		}
		resp.Data = append(resp.Data, e)
	}
	b, _ := json.Marshal(resp)
	if err := w.WriteHeader(http.StatusOK, "application/json"); err != nil {
		return err
	}
	return w.WriteFrame(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
