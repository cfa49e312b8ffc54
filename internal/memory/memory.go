// Package memory is the semantic memory of a site: embeddings of every
// receipt and paper it holds, and nearest-neighbour search over them.
//
// Embeddings come from an OpenAI-compatible /v1/embeddings endpoint when
// one is configured (vectors are cached by document id and text, so each
// document is embedded once), otherwise from a built-in LSA model over
// TF-IDF fitted on the site's own corpus (refitted as the corpus grows).
// The index is exact (package embed): no recall is lost to approximation.
package memory

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/embed"
)

// Doc is one document of the memory.
type Doc struct {
	ID     string  `json:"id"`
	Kind   string  `json:"kind"` // "experiment" | "paper"
	Domain string  `json:"domain"`
	Title  string  `json:"title"`  // one line shown in results
	Text   string  `json:"-"`      // what is embedded
	Metric float64 `json:"metric"` // the experiment's metric or the paper's claimed value
	// Breakthrough marks a breakthrough paper.
	Breakthrough bool `json:"breakthrough,omitempty"`
}

// Hit is one search result.
type Hit struct {
	Doc
	Score float32 `json:"score"`
}

// Source loads the whole corpus.
type Source func(ctx context.Context) ([]Doc, error)

// Options tune a Memory.
type Options struct {
	// Remote embeds with an OpenAI-compatible endpoint (nil: built-in LSA).
	Remote embed.Embedder
	// LSA configures the built-in model.
	LSA embed.LSAOptions
	// Refit: the built-in model is refitted when the corpus has grown by
	// this fraction since the last fit (default 0.1), or by at least one
	// document once MinRefit has passed (default 30s).
	Refit    float64
	MinRefit time.Duration
	// Reload: the corpus is read from its source at most this often
	// (default 2s), so a burst of searches costs one load.
	Reload time.Duration
	Now    func() time.Time
}

// Memory is safe for concurrent use.
type Memory struct {
	src  Source
	opts Options

	mu       sync.Mutex
	docs     map[string]Doc
	index    *embed.Index
	model    *embed.LSA
	fitN     int
	fitAt    time.Time
	cache    map[string][]float32 // remote vectors by id+text hash
	builtOn  int
	loadedAt time.Time // last read of the source
}

// New returns a memory over src.
func New(src Source, o Options) *Memory {
	if o.Refit <= 0 {
		o.Refit = 0.1
	}
	if o.MinRefit <= 0 {
		o.MinRefit = 30 * time.Second
	}
	if o.Reload <= 0 {
		o.Reload = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LSA.Seed == 0 {
		o.LSA.Seed = 1
	}
	return &Memory{src: src, opts: o, cache: map[string][]float32{}}
}

// Model names the embedding in use ("" before the first search).
func (m *Memory) Model() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.Remote != nil {
		return m.opts.Remote.Name()
	}
	if m.model != nil {
		return m.model.Name()
	}
	return ""
}

func textKey(d Doc) string {
	sum := sha256.Sum256([]byte(d.ID + "\x00" + d.Text))
	return string(sum[:])
}

// refresh reloads the corpus (at most every Reload) and rebuilds the
// index when needed.
func (m *Memory) refresh(ctx context.Context) error {
	now := m.opts.Now()
	if m.index != nil && now.Sub(m.loadedAt) < m.opts.Reload {
		return nil
	}
	if err := m.load(ctx, now); err != nil {
		return err
	}
	m.loadedAt = now
	return nil
}

// load reads the corpus and brings the model and the index up to date.
func (m *Memory) load(ctx context.Context, now time.Time) error {
	docs, err := m.src(ctx)
	if err != nil {
		return fmt.Errorf("memory: load corpus: %w", err)
	}
	byID := make(map[string]Doc, len(docs))
	for _, d := range docs {
		byID[d.ID] = d
	}
	if m.opts.Remote != nil {
		var missing []Doc
		for _, d := range docs {
			if _, ok := m.cache[textKey(d)]; !ok {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			texts := make([]string, len(missing))
			for i, d := range missing {
				texts[i] = d.Text
			}
			vecs, err := m.opts.Remote.Embed(ctx, texts)
			if err != nil {
				return fmt.Errorf("memory: embed %d documents: %w", len(texts), err)
			}
			for i, d := range missing {
				m.cache[textKey(d)] = vecs[i]
			}
		}
		if len(missing) == 0 && m.index != nil && len(byID) == m.builtOn {
			m.docs = byID
			return nil
		}
		idx := &embed.Index{}
		for _, d := range docs {
			if err := idx.Add(embed.Item{ID: d.ID, Kind: d.Kind, Domain: d.Domain, Vec: m.cache[textKey(d)]}); err != nil {
				return fmt.Errorf("memory: index %s: %w", d.ID, err)
			}
		}
		m.docs, m.index, m.builtOn = byID, idx, len(byID)
		return nil
	}
	n := len(docs)
	grown := n - m.fitN
	need := m.model == nil ||
		(grown > 0 && float64(grown) >= m.opts.Refit*float64(max(m.fitN, 1))) ||
		(grown != 0 && now.Sub(m.fitAt) >= m.opts.MinRefit)
	if need && n > 0 {
		texts := make([]string, n)
		for i, d := range docs {
			texts[i] = d.Text
		}
		model, err := embed.FitLSA(texts, m.opts.LSA)
		if err != nil {
			return fmt.Errorf("memory: fit LSA on %d documents: %w", n, err)
		}
		m.model, m.fitN, m.fitAt = model, n, now
		m.index = nil
	}
	if m.model == nil {
		m.docs, m.index = byID, &embed.Index{}
		return nil
	}
	if m.index == nil || len(byID) != m.builtOn {
		idx := &embed.Index{}
		for _, d := range docs {
			if err := idx.Add(embed.Item{ID: d.ID, Kind: d.Kind, Domain: d.Domain, Vec: m.model.EmbedText(d.Text)}); err != nil {
				return fmt.Errorf("memory: index %s: %w", d.ID, err)
			}
		}
		m.index, m.builtOn = idx, len(byID)
	}
	m.docs = byID
	return nil
}

// Filter narrows a search; empty fields match everything.
type Filter struct {
	Domain, Kind string
	Exclude      map[string]bool
}

// Search returns the k documents most similar to q.
func (m *Memory) Search(ctx context.Context, q string, k int, f Filter) ([]Hit, error) {
	if k <= 0 {
		k = 10
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.refresh(ctx); err != nil {
		return nil, err
	}
	var qv []float32
	switch {
	case m.opts.Remote != nil:
		vs, err := m.opts.Remote.Embed(ctx, []string{q})
		if err != nil {
			return nil, fmt.Errorf("memory: embed query: %w", err)
		}
		qv = vs[0]
	case m.model != nil:
		qv = m.model.EmbedText(q)
	default:
		return []Hit{}, nil
	}
	hits := m.index.Search(qv, k, func(it embed.Item) bool {
		return (f.Domain == "" || it.Domain == f.Domain) && (f.Kind == "" || it.Kind == f.Kind) && !f.Exclude[it.ID]
	})
	out := make([]Hit, 0, len(hits))
	for _, h := range hits {
		if h.Score <= 0 {
			continue // nothing in common with the query
		}
		out = append(out, Hit{Doc: m.docs[h.ID], Score: h.Score})
	}
	return out, nil
}
