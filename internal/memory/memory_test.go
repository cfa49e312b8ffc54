package memory

import (
	"context"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/embed"
	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
)

var corpus = []Doc{
	{ID: "e1", Kind: "experiment", Domain: "ml", Title: "lr", Text: "ml lower the learning rate with longer warmup steps val_loss"},
	{ID: "e2", Kind: "experiment", Domain: "ml", Title: "layers", Text: "ml deeper model more layers attention heads val_loss"},
	{ID: "e3", Kind: "experiment", Domain: "finance", Title: "mom", Text: "finance momentum lookback monthly rebalance sharpe portfolio"},
	{ID: "p1", Kind: "paper", Domain: "ml", Title: "warmup paper", Text: "ml warmup schedule and learning rate beat the noise floor"},
	{ID: "p2", Kind: "paper", Domain: "finance", Title: "vol paper", Text: "finance inverse volatility portfolio sharpe costs"},
}

func static(docs *[]Doc) Source {
	return func(context.Context) ([]Doc, error) { return append([]Doc(nil), *docs...), nil }
}

func TestBuiltinSearch(t *testing.T) {
	docs := append([]Doc(nil), corpus...)
	now := time.Unix(0, 0)
	m := New(static(&docs), Options{LSA: embed.LSAOptions{Dim: 4}, Now: func() time.Time { return now }})
	ctx := context.Background()
	hits, err := m.Search(ctx, "learning rate warmup", 3, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 || hits[0].Domain != "ml" {
		t.Fatalf("hits %+v", hits)
	}
	hits, _ = m.Search(ctx, "momentum portfolio", 5, Filter{Kind: "paper"})
	if len(hits) == 0 || hits[0].ID != "p2" {
		t.Fatalf("paper filter: %+v", hits)
	}
	hits, _ = m.Search(ctx, "learning rate", 5, Filter{Domain: "finance"})
	for _, h := range hits {
		if h.Domain != "finance" {
			t.Fatalf("domain filter: %+v", h)
		}
	}
	if hits, _ := m.Search(ctx, "zzzz qqqq", 5, Filter{}); len(hits) != 0 {
		t.Fatalf("unrelated query matched: %+v", hits)
	}
	// The corpus grows: the new document is found after the refit interval.
	docs = append(docs, Doc{ID: "e4", Kind: "experiment", Domain: "skills", Title: "csv", Text: "skills csv parser quoted fields rfc4180"})
	now = now.Add(time.Minute)
	hits, _ = m.Search(ctx, "csv parser quoted", 1, Filter{})
	if len(hits) != 1 || hits[0].ID != "e4" {
		t.Fatalf("new document not found: %+v", hits)
	}
	if m.Model() == "" {
		t.Fatal("no model name")
	}
}

func TestRemoteEmbeddingsAreCached(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	docs := append([]Doc(nil), corpus...)
	m := New(static(&docs), Options{Remote: embed.NewOpenAI(srv.BaseURL(), "text-embedding-3-small", "", nil)})
	ctx := context.Background()
	hits, err := m.Search(ctx, "momentum portfolio sharpe", 2, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 || hits[0].Domain != "finance" {
		t.Fatalf("hits %+v", hits)
	}
	n := len(srv.EmbeddingRequests())
	if _, err := m.Search(ctx, "warmup", 2, Filter{}); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.EmbeddingRequests()); got != n+1 {
		t.Fatalf("corpus re-embedded: %d requests after %d (want only the query)", got, n)
	}
	if m.Model() != "openai:text-embedding-3-small" {
		t.Fatal(m.Model())
	}
}
