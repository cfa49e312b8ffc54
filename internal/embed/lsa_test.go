package embed

import (
	"context"
	"errors"
	"math"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
)

type doc struct{ topic, text string }

// corpus is a small three-topic corpus for semantic sanity checks.
var corpus = []doc{
	{"ml", "Lower the learning rate when the loss diverges and use a linear warmup for the first thousand steps."},
	{"ml", "Transformer layers with multi-head attention: deeper models need a smaller learning rate and gradient clipping."},
	{"ml", "A cosine learning rate schedule with warmup improved the validation loss of the attention model."},
	{"ml", "Adding dropout between layers reduced overfitting; training loss and validation loss converged."},
	{"ml", "Batch size and learning rate interact: scale the learning rate linearly with the batch size during training."},
	{"finance", "A monthly momentum strategy buys the top decile of past returns and rebalances the portfolio each month."},
	{"finance", "The portfolio sharpe ratio improved after adding a volatility target and a quarterly rebalance."},
	{"finance", "Momentum returns crash in market reversals; combine momentum with value to reduce portfolio drawdown."},
	{"finance", "Transaction costs eat into returns when you rebalance too often; a monthly rebalance kept the sharpe ratio high."},
	{"finance", "Risk parity weights the portfolio by the inverse volatility of each asset to raise the sharpe ratio."},
	{"search", "BM25 ranking with tuned k1 and b parameters improved query relevance."},
	{"search", "Stemming and stopword removal help the query match documents in the inverted index."},
	{"search", "Learning to rank re-orders the bm25 candidates using click features for each query."},
	{"search", "Query expansion with synonyms increases recall but can hurt ranking precision."},
	{"search", "Porter stemming reduces words to their stems before indexing and ranking documents."},
}

func corpusTexts() []string {
	out := make([]string, len(corpus))
	for i, d := range corpus {
		out[i] = d.text
	}
	return out
}

func fit(t testing.TB, docs []string, opts LSAOptions) *LSA {
	t.Helper()
	m, err := FitLSA(docs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func embedAll(t testing.TB, e Embedder, texts []string) [][]float32 {
	t.Helper()
	v, err := e.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != len(texts) {
		t.Fatalf("%d vectors for %d texts", len(v), len(texts))
	}
	return v
}

// ranked returns corpus indices by cosine similarity to q, best first.
func ranked(q []float32, docs [][]float32) []int {
	idx := make([]int, len(docs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return Cosine(q, docs[idx[a]]) > Cosine(q, docs[idx[b]]) })
	return idx
}

func TestLSADeterministic(t *testing.T) {
	docs := generateDocs(400, 7)
	opts := LSAOptions{Dim: 16, Seed: 42}
	a := fit(t, docs, opts)
	prev := runtime.GOMAXPROCS(1) // the parallel products must not change the result
	b := fit(t, docs, opts)
	runtime.GOMAXPROCS(prev)
	if !reflect.DeepEqual(a.SingularValues(), b.SingularValues()) {
		t.Fatalf("singular values differ:\n%v\n%v", a.SingularValues(), b.SingularValues())
	}
	va, vb := embedAll(t, a, docs[:50]), embedAll(t, b, docs[:50])
	if !reflect.DeepEqual(va, vb) {
		t.Fatal("same seed gave different vectors")
	}
	if a.Name() != "lsa-tfidf-16" || a.Dim() != 16 {
		t.Fatalf("name %q dim %d", a.Name(), a.Dim())
	}
	for i, v := range va {
		if n := norm(v); math.Abs(n-1) > 1e-5 {
			t.Fatalf("vector %d has norm %v", i, n)
		}
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestLSASemantic(t *testing.T) {
	m := fit(t, corpusTexts(), LSAOptions{Seed: 1})
	if m.Dim() != len(corpus) {
		t.Fatalf("dim %d, want %d (capped by the number of documents)", m.Dim(), len(corpus))
	}
	docs := embedAll(t, m, corpusTexts())
	for _, c := range []struct{ query, topic string }{
		{"lower the learning rate and add warmup", "ml"},
		{"monthly momentum portfolio", "finance"},
		{"bm25 query ranking with stemming", "search"},
		{"attention layers", "ml"},
		{"sharpe ratio after rebalance", "finance"},
	} {
		q := m.EmbedText(c.query)
		best := ranked(q, docs)[0]
		if corpus[best].topic != c.topic {
			t.Errorf("%q: nearest is %q (%s), want a %s doc", c.query, corpus[best].text, corpus[best].topic, c.topic)
		}
	}

	// Unknown words embed to the zero vector, whose cosine with anything is 0.
	z := m.EmbedText("zyzzyva quux the and of")
	if norm(z) != 0 || len(z) != m.Dim() {
		t.Fatalf("unknown words: %v", z)
	}
	if c := Cosine(z, docs[0]); c != 0 {
		t.Fatalf("cosine with zero vector %v", c)
	}
}

// With few latent dimensions, LSA relates texts through co-occurrence:
// every document's nearest neighbour is in its own topic, and a query
// word that only some ML documents contain still prefers the other ML
// documents to everything else.
func TestLSALatentTopics(t *testing.T) {
	m := fit(t, corpusTexts(), LSAOptions{Dim: 3, Seed: 9})
	if m.Dim() != 3 {
		t.Fatalf("dim %d", m.Dim())
	}
	docs := embedAll(t, m, corpusTexts())
	for i := range docs {
		r := ranked(docs[i], docs)
		nn := r[0]
		if nn == i {
			nn = r[1]
		}
		if corpus[nn].topic != corpus[i].topic {
			t.Errorf("doc %d (%s): nearest neighbour %d is %s", i, corpus[i].topic, nn, corpus[nn].topic)
		}
	}
	q := m.EmbedText("warmup")
	minML, maxOther := 2.0, -2.0
	for i, d := range corpus {
		c := Cosine(q, docs[i])
		switch {
		case d.topic == "ml" && !strings.Contains(d.text, "warmup"):
			minML = min(minML, c)
		case d.topic != "ml":
			maxOther = max(maxOther, c)
		}
	}
	if minML <= maxOther {
		t.Fatalf("warmup: ML docs without the word score ≥ %.3f, other topics up to %.3f", minML, maxOther)
	}
}

// When the projection covers the whole row space, the randomized SVD must
// equal the exact one: compare with the eigenvalues of A·Aᵀ computed
// densely, and check that V has orthonormal columns.
func TestLSAExactWhenFullRank(t *testing.T) {
	docs := generateDocs(40, 3)
	m := fit(t, docs, LSAOptions{Dim: 40, Seed: 5})

	// Rebuild A from the model's own vocabulary and weighting.
	rows := make([][]float64, len(docs))
	for d, text := range docs {
		rows[d] = make([]float64, m.VocabSize())
		counts := map[int32]int{}
		for _, tok := range Tokenize(text) {
			if t, ok := m.vocab[tok]; ok {
				counts[t]++
			}
		}
		var ss float64
		for t, c := range counts {
			w := (1 + math.Log(float64(c))) * m.idf[t]
			rows[d][t] = w
			ss += w * w
		}
		for t := range rows[d] {
			rows[d][t] /= math.Sqrt(ss)
		}
	}
	aat := make([][]float64, len(docs))
	for i := range aat {
		aat[i] = make([]float64, len(docs))
		for j := range aat[i] {
			aat[i][j] = dot(rows[i], rows[j])
		}
	}
	lambda, _ := symEigen(aat)
	sv := m.SingularValues()
	for j, s := range sv {
		if want := math.Sqrt(lambda[j]); math.Abs(s-want) > 1e-9*want {
			t.Fatalf("σ%d = %v, exact %v", j, s, want)
		}
	}
	k := m.Dim()
	for a := 0; a < k; a++ {
		for b := 0; b <= a; b++ {
			var s float64
			for t := 0; t < m.VocabSize(); t++ {
				s += m.v[t*k+a] * m.v[t*k+b]
			}
			want := 0.0
			if a == b {
				want = 1
			}
			if math.Abs(s-want) > 1e-9 {
				t.Fatalf("VᵀV[%d][%d] = %v", a, b, s)
			}
		}
	}
}

func TestLSAOptionsAndErrors(t *testing.T) {
	if _, err := FitLSA(nil, LSAOptions{}); !errors.Is(err, ErrEmptyCorpus) {
		t.Fatalf("nil corpus: %v", err)
	}
	if _, err := FitLSA([]string{"", "the and of", "!!"}, LSAOptions{}); !errors.Is(err, ErrEmptyCorpus) {
		t.Fatalf("no usable terms: %v", err)
	}
	if _, err := FitLSA([]string{"x"}, LSAOptions{Dim: -1}); err == nil {
		t.Fatal("negative dim accepted")
	}
	// MinDF and MaxVocab shape the vocabulary.
	m := fit(t, corpusTexts(), LSAOptions{MinDF: 2})
	if norm(m.EmbedText("dropout overfitting")) != 0 {
		t.Fatal("terms below MinDF should be unknown")
	}
	if norm(m.EmbedText("learning rate")) == 0 {
		t.Fatal("frequent terms should be known")
	}
	if got := fit(t, corpusTexts(), LSAOptions{MaxVocab: 10}).VocabSize(); got != 10 {
		t.Fatalf("vocab %d, want 10", got)
	}
	// A single document gives a one-dimensional model.
	one := fit(t, []string{"momentum portfolio sharpe"}, LSAOptions{})
	if one.Dim() != 1 || one.Name() != "lsa-tfidf-1" {
		t.Fatalf("one doc: dim %d", one.Dim())
	}
	// Embed honours a cancelled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Embed(ctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
