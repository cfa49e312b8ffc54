package embed

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkFitLSA fits the default 64-dimensional model on 5,000
// generated documents of about 30 tokens.
func BenchmarkFitLSA(b *testing.B) {
	docs := generateDocs(5000, 1)
	b.ResetTimer()
	var m *LSA
	for range b.N {
		var err error
		if m, err = FitLSA(docs, LSAOptions{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(m.VocabSize()), "terms")
	b.ReportMetric(float64(m.Dim()), "dims")
}

// BenchmarkEmbedText folds one ~30-token document into a fitted model.
func BenchmarkEmbedText(b *testing.B) {
	docs := generateDocs(5000, 1)
	m, err := FitLSA(docs, LSAOptions{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		m.EmbedText(docs[i%len(docs)])
	}
}

// BenchmarkSearch is one top-10 query against 10,000 vectors of dimension
// 64, with and without a filter that keeps a third of them.
func BenchmarkSearch(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	var ix Index
	for i := range 10000 {
		if err := ix.Add(Item{ID: fmt.Sprintf("item%05d", i), Domain: []string{"ml", "finance", "search"}[i%3], Vec: randVec(rng, 64)}); err != nil {
			b.Fatal(err)
		}
	}
	queries := make([][]float32, 64)
	for i := range queries {
		queries[i] = randVec(rng, 64)
	}
	b.Run("all", func(b *testing.B) {
		for i := range b.N {
			if len(ix.Search(queries[i%len(queries)], 10, nil)) != 10 {
				b.Fatal("short result")
			}
		}
	})
	b.Run("filtered", func(b *testing.B) {
		ml := func(it Item) bool { return it.Domain == "ml" }
		for i := range b.N {
			if len(ix.Search(queries[i%len(queries)], 10, ml)) != 10 {
				b.Fatal("short result")
			}
		}
	})
}
