package respcache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/hyperspace-ai/hyperspace/internal/embed"
)

// Defaults of SemanticConfig.
const (
	DefaultSemanticThreshold = 0.92
	DefaultSemanticMaxItems  = 100_000
)

// SemanticConfig configures a SemanticIndex.
type SemanticConfig struct {
	// Embedder maps prompts to unit vectors (e.g. embed.FitLSA's model).
	Embedder embed.Embedder
	// Threshold is the least cosine similarity of a hit (default 0.92).
	Threshold float64
	// MaxItems bounds the prompts held; the oldest go first (default
	// 100,000).
	MaxItems int
	// NoGuard turns off the lexical guard. With it (the default) a hit also
	// needs both prompts to carry the same negation words ("not", "no",
	// "without", "n't", ...) and the same numbers: bag-of-words embeddings
	// such as LSA cannot tell "is the flow laminar" from "is the flow not
	// laminar", nor Mach 2 from Mach 3.
	NoGuard bool
}

// SemanticIndex is the optional fuzzy layer over a Store (off unless a
// caller builds one): it maps a prompt to the request hash of a stored
// prompt of the same scope (model and canonical parameters: see Scope)
// whose embedding is at least Threshold-similar. A semantic hit is an
// answer to a different request: a caller should only use it where
// near-duplicate prompts may share an answer, and never hand it to peers as
// the answer of the new request's hash. It is safe for concurrent use.
type SemanticIndex struct {
	cfg SemanticConfig

	mu     sync.Mutex
	scopes map[string]*embed.Index
	items  map[string]semItem // by request hash
	order  []string           // request hashes, oldest first (may hold stale ones)
}

type semItem struct {
	scope string
	guard string
}

// SemanticMatch is a hit of SemanticIndex.Match.
type SemanticMatch struct {
	RequestHash string
	Score       float64
}

// NewSemanticIndex returns an empty index.
func NewSemanticIndex(cfg SemanticConfig) (*SemanticIndex, error) {
	if cfg.Embedder == nil {
		return nil, errors.New("respcache: a semantic index needs an Embedder")
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = DefaultSemanticThreshold
	}
	if cfg.Threshold < -1 || cfg.Threshold > 1 {
		return nil, fmt.Errorf("respcache: semantic threshold %v is not a cosine in [-1, 1]", cfg.Threshold)
	}
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultSemanticMaxItems
	}
	return &SemanticIndex{cfg: cfg, scopes: map[string]*embed.Index{}, items: map[string]semItem{}}, nil
}

// Scope is the key under which prompts may match: the same model and the
// same canonical parameters (e.g. the JSON of inference.Canon).
func Scope(model, canonicalParams string) string {
	return fmt.Sprintf("%d:%s|%s", len(model), model, canonicalParams)
}

// Add files prompt under requestHash in scope (replacing an earlier prompt
// of the same hash).
func (x *SemanticIndex) Add(ctx context.Context, scope, prompt, requestHash string) error {
	vs, err := x.cfg.Embedder.Embed(ctx, []string{prompt})
	if err != nil {
		return fmt.Errorf("respcache: embedding a prompt: %w", err)
	}
	if len(vs) != 1 {
		return fmt.Errorf("respcache: embedder returned %d vectors for 1 prompt", len(vs))
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(requestHash)
	ix := x.scopes[scope]
	if ix == nil {
		ix = &embed.Index{}
		x.scopes[scope] = ix
	}
	if err := ix.Add(embed.Item{ID: requestHash, Vec: vs[0]}); err != nil {
		return fmt.Errorf("respcache: indexing a prompt: %w", err)
	}
	x.items[requestHash] = semItem{scope: scope, guard: guardKey(prompt)}
	x.order = append(x.order, requestHash)
	for len(x.items) > x.cfg.MaxItems && len(x.order) > 0 {
		old := x.order[0]
		x.order = x.order[1:]
		x.removeLocked(old)
	}
	if len(x.order) > 2*x.cfg.MaxItems { // drop stale hashes
		x.order = slices.DeleteFunc(x.order, func(h string) bool { _, ok := x.items[h]; return !ok })
	}
	return nil
}

// Remove drops requestHash's prompt (e.g. when the Store evicted it).
func (x *SemanticIndex) Remove(requestHash string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(requestHash)
}

func (x *SemanticIndex) removeLocked(h string) {
	it, ok := x.items[h]
	if !ok {
		return
	}
	delete(x.items, h)
	if ix := x.scopes[it.scope]; ix != nil {
		ix.Remove(h)
		if ix.Len() == 0 {
			delete(x.scopes, it.scope)
		}
	}
}

// Len is the number of prompts held.
func (x *SemanticIndex) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.items)
}

// Match returns the most similar prompt of scope at or above the threshold
// (and, unless NoGuard, with the same negations and numbers), if any.
func (x *SemanticIndex) Match(ctx context.Context, scope, prompt string) (SemanticMatch, bool, error) {
	vs, err := x.cfg.Embedder.Embed(ctx, []string{prompt})
	if err != nil {
		return SemanticMatch{}, false, fmt.Errorf("respcache: embedding a prompt: %w", err)
	}
	if len(vs) != 1 {
		return SemanticMatch{}, false, fmt.Errorf("respcache: embedder returned %d vectors for 1 prompt", len(vs))
	}
	guard := guardKey(prompt)
	x.mu.Lock()
	defer x.mu.Unlock()
	ix := x.scopes[scope]
	if ix == nil {
		return SemanticMatch{}, false, nil
	}
	var filter func(embed.Item) bool
	if !x.cfg.NoGuard {
		filter = func(it embed.Item) bool { return x.items[it.ID].guard == guard }
	}
	hits := ix.Search(vs[0], 1, filter)
	if len(hits) == 0 || float64(hits[0].Score) < x.cfg.Threshold {
		return SemanticMatch{}, false, nil
	}
	return SemanticMatch{RequestHash: hits[0].ID, Score: float64(hits[0].Score)}, true, nil
}

// negations are the words whose presence flips a prompt's meaning.
var negations = map[string]bool{
	"not": true, "no": true, "never": true, "without": true, "neither": true, "nor": true,
	"none": true, "nothing": true, "cannot": true, "except": true, "excluding": true, "non": true,
}

// guardKey is the sorted set of a prompt's negation words and numbers:
// two prompts pass the guard when their keys are equal.
func guardKey(prompt string) string {
	words := strings.FieldsFunc(strings.ToLower(prompt), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '.' && r != '\''
	})
	var keys []string
	for _, w := range words {
		w = strings.Trim(w, ".'")
		switch {
		case w == "":
		case negations[w], strings.HasSuffix(w, "n't"):
			keys = append(keys, "not")
		case strings.IndexFunc(w, unicode.IsDigit) >= 0:
			keys = append(keys, w)
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	return strings.Join(keys, " ")
}
