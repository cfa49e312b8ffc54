package modelserve

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/internal/embed"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
)

// EmbeddingModelName is the name of the built-in embedding model.
const EmbeddingModelName = "hyperspace-embed-lsa"

// BuiltinEmbedding fits the built-in embedding model: LSA (TF-IDF and a
// truncated SVD, 64 dimensions, seed 1) over the Cranfield abstracts under
// dataDir. It is deterministic: every node with the same data fits the
// same model (its Hash is over the corpus and the options).
func BuiltinEmbedding(dataDir string) (*inference.LSAModel, error) {
	return embeddings.Load(dataDir, fitEmbedding)
}

var embeddings domains.DirCache[*inference.LSAModel]

func fitEmbedding(dataDir string) (*inference.LSAModel, error) {
	col, err := search.LoadCollection(dataDir)
	if err != nil {
		return nil, fmt.Errorf("built-in embedding model: %w", err)
	}
	docs := make([]string, len(col.Docs))
	h := sha256.New()
	opts := embed.LSAOptions{Dim: 64, Seed: 1}
	fmt.Fprintf(h, "lsa dim=%d seed=%d\n", opts.Dim, opts.Seed)
	for i, d := range col.Docs {
		docs[i] = strings.TrimSpace(d.Body)
		h.Write([]byte(docs[i]))
		h.Write([]byte{0})
	}
	lsa, err := embed.FitLSA(docs, opts)
	if err != nil {
		return nil, fmt.Errorf("built-in embedding model: %w", err)
	}
	return &inference.LSAModel{Name: EmbeddingModelName, LSA: lsa, Created: time.Now(), Hash: hex.EncodeToString(h.Sum(nil))}, nil
}
