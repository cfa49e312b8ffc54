package inference

import (
	"context"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/embed"
)

// LSAModel serves an embed.LSA model (the built-in embedding model: TF-IDF
// and a truncated SVD fitted on a corpus, deterministic, no weights to
// download) through /v1/embeddings. Vectors are L2-normalised, as OpenAI's
// are, so dot products are cosine similarities.
type LSAModel struct {
	Name    string
	LSA     *embed.LSA
	Created time.Time
	// Hash identifies the fitted model (e.g. a hash of its corpus and options).
	Hash string
}

// Info describes the model.
func (m *LSAModel) Info() ModelInfo {
	return ModelInfo{ID: m.Name, Kind: KindEmbedding, OwnedBy: "hyperspace", Created: m.Created, Hash: m.Hash}
}

// Dim is the vector length.
func (m *LSAModel) Dim() int { return m.LSA.Dim() }

// Embed embeds inputs; tokens are the words the model's tokenizer reads.
func (m *LSAModel) Embed(ctx context.Context, inputs []string) ([][]float32, int, error) {
	vecs, err := m.LSA.Embed(ctx, inputs)
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for _, in := range inputs {
		n += len(embed.Tokenize(in))
	}
	return vecs, n, nil
}
