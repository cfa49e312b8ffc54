// Package inference is the inference plane's serving core: the
// OpenAI-compatible /v1 API every Hyperspace node answers
// (GET /v1/models, POST /v1/chat/completions with and without SSE
// streaming, POST /v1/completions, POST /v1/embeddings in float and base64
// encodings), and the routing behind it.
//
// A request for a model goes, in order, to:
//
//  1. a local model: an ML-domain checkpoint published under a name and
//     run by the pure-Go transformer (TextModel), or the built-in embedding
//     model (EmbedModel);
//  2. an upstream route: an operator-configured OpenAI-compatible server
//     (Ollama, vLLM, llama.cpp, ...), with the model name mapped;
//  3. a peer that serves it (Peers: providers found through the DHT and
//     signed capability records, with a hedged second request when the
//     first is slow);
//
// and otherwise fails with OpenAI's 404 model_not_found.
//
// Deterministic requests for local models (temperature 0, or a fixed seed)
// go through the response cache first (Cache: the L1 cache shared across
// peers, whose entries carry signed proofs). The cache holds the
// deterministic part of an answer (ResultRecord); ids and timestamps are
// made per response, so a cached answer is byte-for-byte what a fresh
// computation gives and a fetcher can re-compute a sample to check it.
package inference

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/respcache"
)

// Model kinds.
const (
	KindChat      = "chat"      // text generation: chat and completions
	KindEmbedding = "embedding" // /v1/embeddings
)

// Routes a model is served by.
const (
	RouteLocal    = "local"
	RouteUpstream = "upstream"
	RoutePeer     = "peer"
)

// ModelInfo describes a servable model.
type ModelInfo struct {
	ID      string
	Kind    string
	OwnedBy string
	Created time.Time
	// Hash identifies the weights (hex SHA-256 of the checkpoint) for local
	// models; it is part of every cache key.
	Hash string
}

// GenParams are the sampling parameters of one generation.
type GenParams struct {
	MaxTokens   int
	Temperature float64
	TopP        float64
	Seed        *int64
	Stop        []string
}

// GenOutput is what a generation produced.
type GenOutput struct {
	Text             string
	FinishReason     string // "stop" or "length"
	PromptTokens     int
	CompletionTokens int
	// Deterministic is true when the same request gives the same text on
	// every run (temperature 0, or a seed was given).
	Deterministic bool
	// PrefixTokens is how many prompt tokens a KV-prefix hit skipped.
	PrefixTokens int
}

// TextModel is a local generative model.
type TextModel interface {
	Info() ModelInfo
	// Generate continues prompt, calling emit with each new piece of text
	// (their concatenation is the output's Text). It stops at ctx's end.
	Generate(ctx context.Context, prompt string, p GenParams, emit func(piece string) error) (GenOutput, error)
	// MaxTokens is the most completion tokens one request may ask for.
	MaxTokens() int
}

// EmbedModel is a local embedding model.
type EmbedModel interface {
	Info() ModelInfo
	Dim() int
	// Embed returns one vector per input and the number of tokens read.
	Embed(ctx context.Context, inputs []string) ([][]float32, int, error)
}

// Cache is the response cache (L1) as the serving path sees it: entries
// are keyed by a request hash and hold a ResultRecord's bytes.
type Cache interface {
	// Lookup returns the record of requestHash and where it came from
	// ("local" or "peer").
	Lookup(ctx context.Context, requestHash string) (record []byte, source string, ok bool)
	// Put stores a record this node computed (and shares it).
	Put(ctx context.Context, requestHash, model string, record []byte)
}

// Peers forwards requests for models this node does not serve.
type Peers interface {
	// Models lists the models peers are known to serve (for /v1/models).
	Models(ctx context.Context) []ModelInfo
	// Forward sends an OpenAI request body for model to a peer that serves
	// it, relaying the peer's status, content type and body frames; it
	// returns ErrNoProvider when no peer serves the model.
	Forward(ctx context.Context, op, model string, body []byte, stream bool, w FrameWriter) error
}

// FrameWriter receives a response as a header and body frames (one frame
// per SSE event payload when streaming, the whole JSON body otherwise).
type FrameWriter interface {
	WriteHeader(status int, contentType string) error
	WriteFrame(b []byte) error
}

// Service routes OpenAI requests to models. Its zero value serves nothing;
// set the fields before use and register models with SetText, SetEmbed and
// SetUpstream (safe while serving).
type Service struct {
	// Cache, when set, is consulted for deterministic local requests.
	Cache Cache
	// Peers, when set, serves models this node does not.
	Peers Peers
	// Logger for errors (default slog.Default()).
	Logger *slog.Logger
	// Fingerprint is the system_fingerprint of responses (e.g. the node id).
	Fingerprint string
	// Semantic, when set (off by default: see BENCHMARKS.md for its
	// false-hit rate), answers a deterministic request whose exact key
	// misses with the cached answer of a near-identical prompt of the same
	// model and parameters.
	Semantic *respcache.SemanticIndex

	mu       sync.RWMutex
	text     map[string]TextModel
	embed    map[string]EmbedModel
	upstream map[string]*Upstream

	stats stats
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// SetText serves m under its name (replacing any model of that name).
func (s *Service) SetText(m TextModel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.text == nil {
		s.text = map[string]TextModel{}
	}
	s.text[m.Info().ID] = m
}

// SetEmbed serves m under its name.
func (s *Service) SetEmbed(m EmbedModel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.embed == nil {
		s.embed = map[string]EmbedModel{}
	}
	s.embed[m.Info().ID] = m
}

// SetUpstream adds an upstream route.
func (s *Service) SetUpstream(u *Upstream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upstream == nil {
		s.upstream = map[string]*Upstream{}
	}
	s.upstream[u.Name] = u
}

// Remove stops serving the local model or route name.
func (s *Service) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.text, name)
	delete(s.embed, name)
	delete(s.upstream, name)
}

// Text returns the local text model name.
func (s *Service) Text(name string) (TextModel, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.text[name]
	return m, ok
}

func (s *Service) embedModel(name string) (EmbedModel, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.embed[name]
	return m, ok
}

func (s *Service) upstreamRoute(name string) (*Upstream, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.upstream[name]
	return u, ok
}

// Served describes one model this node serves itself.
type Served struct {
	ModelInfo
	Route string
}

// Local lists the models this node serves itself (local models and
// upstream routes), by name.
func (s *Service) Local() []Served {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Served
	for _, m := range s.text {
		out = append(out, Served{m.Info(), RouteLocal})
	}
	for _, m := range s.embed {
		out = append(out, Served{m.Info(), RouteLocal})
	}
	for _, u := range s.upstream {
		out = append(out, Served{ModelInfo{ID: u.Name, Kind: u.Kind, OwnedBy: "upstream", Created: u.Created}, RouteUpstream})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Models lists every model a request may name: this node's own, then the
// ones peers serve that this node does not.
func (s *Service) Models(ctx context.Context) []ModelObject {
	seen := map[string]bool{}
	var out []ModelObject
	for _, m := range s.Local() {
		seen[m.ID] = true
		out = append(out, modelObject(m.ModelInfo, m.Route))
	}
	if s.Peers != nil {
		var remote []ModelObject
		for _, m := range s.Peers.Models(ctx) {
			if !seen[m.ID] {
				seen[m.ID] = true
				remote = append(remote, modelObject(m, RoutePeer))
			}
		}
		sort.Slice(remote, func(i, j int) bool { return remote[i].ID < remote[j].ID })
		out = append(out, remote...)
	}
	return out
}

func modelObject(m ModelInfo, route string) ModelObject {
	owner := m.OwnedBy
	if owner == "" {
		owner = "hyperspace"
	}
	var created int64
	if !m.Created.IsZero() {
		created = m.Created.Unix()
	}
	return ModelObject{ID: m.ID, Object: "model", Created: created, OwnedBy: owner, Kind: m.Kind, Route: route, Hash: m.Hash}
}

// Stats counts what the service did.
type Stats struct {
	Requests, CacheHitsLocal, CacheHitsPeer, CacheMisses, Forwarded, Upstream int64
	PrefixHits, PrefixTokens, SemanticHits                                    int64
}

type stats struct {
	mu sync.Mutex
	Stats
}

func (s *Service) count(f func(*Stats)) {
	s.stats.mu.Lock()
	f(&s.stats.Stats)
	s.stats.mu.Unlock()
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	return s.stats.Stats
}
