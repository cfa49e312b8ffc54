// Package embed turns text into vectors for semantic memory and finds the
// nearest stored vectors to a query.
//
// It has two embedders behind one interface:
//
//   - LSA, a built-in latent semantic analysis model (TF-IDF followed by a
//     truncated SVD) fitted on a corpus with FitLSA. It needs no network
//     and no model weights, is deterministic for a given seed, and is good
//     enough to relate texts that share vocabulary or co-occurring terms.
//   - OpenAI, a client for any OpenAI-compatible /embeddings endpoint.
//
// Index is an exact in-memory cosine nearest-neighbour index over the
// vectors either of them produces.
//
// Every vector handed out by an Embedder is L2-normalised (unit length), or
// all zeros when the text carries no usable signal, so the dot product of
// two vectors is their cosine similarity and is 0 against a zero vector.
package embed

import (
	"context"
	"math"
)

// Embedder maps texts to L2-normalised vectors of length Dim().
type Embedder interface {
	// Name identifies the model, e.g. "lsa-tfidf-64" or "openai:<model>".
	Name() string
	// Dim is the length of the vectors Embed returns (0 while unknown).
	Dim() int
	// Embed returns one vector per text, in the order of texts.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Cosine returns the cosine similarity of a and b, computed in float64. It
// is 0 when either vector is all zeros or their lengths differ.
func Cosine(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// normalize32 scales v to unit L2 length in place (accumulating in float64)
// and reports whether it could: a zero vector is left as it is.
func normalize32(v []float32) bool {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return false
	}
	inv := 1 / math.Sqrt(s)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
	return true
}

// finite32 reports whether every component of v is a finite number.
func finite32(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}
