package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
)

// LSAOptions tunes FitLSA. Zero values select the defaults.
type LSAOptions struct {
	// Dim is the requested number of latent dimensions (default 64). The
	// fitted model may have fewer: see LSA.Dim.
	Dim int
	// Seed drives the random projection of the SVD; the same corpus,
	// options and seed give the same model.
	Seed int64
	// MinDF drops terms that occur in fewer documents (default 1).
	MinDF int
	// MaxVocab keeps at most this many terms, the most frequent by
	// document frequency (ties broken alphabetically) (default 20000).
	MaxVocab int
}

// Defaults of LSAOptions and the fixed knobs of the randomized SVD.
const (
	DefaultLSADim      = 64
	DefaultLSAMinDF    = 1
	DefaultLSAMaxVocab = 20000

	// svdOversample extra random directions are tracked beyond the
	// requested dimension; they make the leading ones accurate.
	svdOversample = 10
	// svdPowerIters rounds of subspace iteration (A·Aᵀ) sharpen the
	// separation between leading and trailing singular values.
	svdPowerIters = 4
	// svdRelTol: singular values below svdRelTol·σ₁ are treated as zero
	// (numerical rank), and their directions are not kept.
	svdRelTol = 1e-6
)

// ErrEmptyCorpus is returned by FitLSA when there is nothing to learn
// from: no documents, or no document with a usable term.
var ErrEmptyCorpus = errors.New("embed: empty corpus: LSA needs at least one document with a usable term")

// LSA is a latent semantic analysis model: TF-IDF weighting followed by a
// rank-k truncated SVD of the documents × terms matrix, A ≈ U_k Σ_k V_kᵀ.
//
// A text is embedded by "folding it in": its TF-IDF row vector q (built
// with the corpus vocabulary and IDF, L2-normalised like the training
// rows) is projected on the latent term space, e = q·V_k, and e is
// L2-normalised. We deliberately use q·V_k rather than the textbook
// q·V_k·Σ_k⁻¹: the latter rescales every latent axis to the same weight,
// which amplifies the weak, noisy trailing dimensions; q·V_k keeps each
// axis weighted by how much of the corpus it explains (for a training
// document it equals its row of U_k·Σ_k, as scikit-learn's TruncatedSVD
// does), so cosine similarity is the cosine of the rank-k approximations
// of the two TF-IDF vectors.
//
// A text with no term of the vocabulary embeds to the zero vector, whose
// cosine with anything is 0. An LSA is immutable and safe for concurrent
// use.
type LSA struct {
	vocab map[string]int32
	idf   []float64 // per term
	v     []float64 // terms × k, row-major: v[t*k+j] = V_k[t][j]
	sigma []float64 // k singular values, descending
	k     int
}

// FitLSA learns an LSA model from docs.
//
// Weighting: tf-idf(t, d) = (1 + ln tf) · (ln((1+N)/(1+df)) + 1), the
// sublinear term frequency and smoothed inverse document frequency, and
// each document row is L2-normalised so long documents do not dominate.
//
// The SVD is computed by randomized subspace iteration (Halko, Martinsson
// and Tropp, 2011): a seeded random block Ω of l = k+10 columns, Y = A·Ω,
// then four rounds of Y ← A·(Aᵀ·Y), each product orthonormalised with
// Gram–Schmidt; with Q the orthonormal basis of Y, the small matrix
// B = Qᵀ·A carries the leading singular triplets, found from the l×l
// eigenproblem B·Bᵀ = W Σ² Wᵀ by Jacobi rotations, giving V = Bᵀ·W·Σ⁻¹.
// The cost is O(nnz·l + (docs+terms)·l²) per round, linear in the corpus
// (5,000 short documents take a fraction of a second on two cores), and
// the model holds terms × k float64 weights.
//
// The model's dimension is min(opts.Dim, docs, vocabulary, numerical rank
// of A); each latent axis has its sign fixed (largest-magnitude term
// weight positive) so the result is a pure function of the inputs and
// Seed. Floating-point results are reproducible on a given platform;
// across CPU architectures they may differ in the last bits (the Go
// compiler may fuse multiply-adds on some of them).
func FitLSA(docs []string, opts LSAOptions) (*LSA, error) {
	if opts.Dim < 0 || opts.MinDF < 0 || opts.MaxVocab < 0 {
		return nil, fmt.Errorf("embed: LSAOptions must not be negative: %+v", opts)
	}
	if opts.Dim == 0 {
		opts.Dim = DefaultLSADim
	}
	if opts.MinDF == 0 {
		opts.MinDF = DefaultLSAMinDF
	}
	if opts.MaxVocab == 0 {
		opts.MaxVocab = DefaultLSAMaxVocab
	}
	if len(docs) == 0 {
		return nil, ErrEmptyCorpus
	}

	// Pass 1: count terms per document, interning terms to provisional ids.
	type tfEntry struct{ id, tf int32 }
	ids := map[string]int32{}
	var terms []string
	var df []int
	docTF := make([][]tfEntry, len(docs))
	counts := map[int32]int32{}
	for d, text := range docs {
		clear(counts)
		for _, tok := range Tokenize(text) {
			id, ok := ids[tok]
			if !ok {
				id = int32(len(terms))
				ids[tok] = id
				terms = append(terms, tok)
				df = append(df, 0)
			}
			counts[id]++
		}
		row := make([]tfEntry, 0, len(counts))
		for id, tf := range counts {
			row = append(row, tfEntry{id, tf})
			df[id]++
		}
		docTF[d] = row
	}

	// Vocabulary: terms with df ≥ MinDF, the MaxVocab most frequent, then
	// indexed in alphabetical order so the model does not depend on the
	// order terms were first seen.
	var keep []int32
	for id := range terms {
		if df[id] >= opts.MinDF {
			keep = append(keep, int32(id))
		}
	}
	if len(keep) > opts.MaxVocab {
		sort.Slice(keep, func(a, b int) bool {
			x, y := keep[a], keep[b]
			if df[x] != df[y] {
				return df[x] > df[y]
			}
			return terms[x] < terms[y]
		})
		keep = keep[:opts.MaxVocab]
	}
	sort.Slice(keep, func(a, b int) bool { return terms[keep[a]] < terms[keep[b]] })
	if len(keep) == 0 {
		return nil, ErrEmptyCorpus
	}
	m := &LSA{vocab: make(map[string]int32, len(keep)), idf: make([]float64, len(keep))}
	final := make([]int32, len(terms)) // provisional id → term index, or -1
	for i := range final {
		final[i] = -1
	}
	n := float64(len(docs))
	for t, id := range keep {
		final[id] = int32(t)
		m.vocab[terms[id]] = int32(t)
		m.idf[t] = math.Log((1+n)/(1+float64(df[id]))) + 1
	}

	// Pass 2: the L2-normalised TF-IDF matrix in CSR form.
	a := &csr{rows: len(docs), cols: len(keep), ptr: make([]int, len(docs)+1)}
	type entry struct {
		t int32
		w float64
	}
	var row []entry
	nonEmpty := 0
	for d, tfs := range docTF {
		row = row[:0]
		for _, e := range tfs {
			if t := final[e.id]; t >= 0 {
				row = append(row, entry{t, (1 + math.Log(float64(e.tf))) * m.idf[t]})
			}
		}
		sort.Slice(row, func(x, y int) bool { return row[x].t < row[y].t })
		var ss float64
		for _, e := range row {
			ss += e.w * e.w
		}
		if len(row) > 0 {
			nonEmpty++
			inv := 1 / math.Sqrt(ss)
			for _, e := range row {
				a.idx = append(a.idx, e.t)
				a.val = append(a.val, e.w*inv)
			}
		}
		a.ptr[d+1] = len(a.idx)
	}
	if nonEmpty == 0 {
		return nil, ErrEmptyCorpus
	}

	k := min(opts.Dim, nonEmpty, a.cols)
	m.sigma, m.v, m.k = truncatedSVD(a, k, opts.Seed)
	if m.k == 0 {
		return nil, ErrEmptyCorpus
	}
	return m, nil
}

// truncatedSVD returns the leading (at most k) singular values of a and
// the matching right singular vectors as a terms × r row-major matrix,
// where r ≤ k is the number kept above the numerical-rank threshold.
func truncatedSVD(a *csr, k int, seed int64) (sigma, v []float64, r int) {
	l := min(k+svdOversample, a.rows, a.cols)
	rng := splitmix64{s: uint64(seed)}
	omega := newBlock(l, a.cols)
	for _, c := range omega {
		for i := range c {
			c[i] = rng.uniform()
		}
	}
	y := a.mul(omega)
	orthonormalize(y)
	for it := 0; it < svdPowerIters; it++ {
		z := a.tmul(y)
		orthonormalize(z)
		y = a.mul(z)
		orthonormalize(y)
	}
	bt := a.tmul(y) // Bᵀ = Aᵀ·Q, terms × l
	lambda, w := symEigen(gram(bt))
	if len(lambda) == 0 || lambda[0] <= 0 {
		return nil, nil, 0
	}
	s1 := math.Sqrt(lambda[0])
	for r < k && r < len(lambda) && lambda[r] > 0 && math.Sqrt(lambda[r]) > svdRelTol*s1 {
		r++
	}
	sigma = make([]float64, r)
	v = make([]float64, a.cols*r)
	col := make([]float64, a.cols)
	for j := 0; j < r; j++ {
		sigma[j] = math.Sqrt(lambda[j])
		// v_j = Bᵀ·w_j / σ_j
		clear(col)
		for i := 0; i < l; i++ {
			if wij := w[i][j]; wij != 0 {
				axpy(wij, bt[i], col)
			}
		}
		// Fix the sign: the largest-magnitude component (lowest index on
		// ties) is positive.
		big, at := 0.0, 0
		for t, x := range col {
			if math.Abs(x) > big {
				big, at = math.Abs(x), t
			}
		}
		scale := 1 / sigma[j]
		if col[at] < 0 {
			scale = -scale
		}
		for t, x := range col {
			v[t*r+j] = x * scale
		}
	}
	return sigma, v, r
}

// Name is "lsa-tfidf-<dim>".
func (m *LSA) Name() string { return fmt.Sprintf("lsa-tfidf-%d", m.k) }

// Dim is the number of latent dimensions of the fitted model.
func (m *LSA) Dim() int { return m.k }

// VocabSize is the number of terms in the model's vocabulary.
func (m *LSA) VocabSize() int { return len(m.idf) }

// SingularValues returns a copy of the kept singular values, descending.
func (m *LSA) SingularValues() []float64 { return append([]float64(nil), m.sigma...) }

// Embed folds each text into the latent space (see LSA). It only fails
// when ctx is done.
func (m *LSA) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		out[i] = m.EmbedText(t)
	}
	return out, nil
}

// EmbedText embeds one text: its unit-length latent vector, or the zero
// vector when it has no term of the vocabulary.
func (m *LSA) EmbedText(text string) []float32 {
	counts := map[int32]int{}
	for _, tok := range Tokenize(text) {
		if t, ok := m.vocab[tok]; ok {
			counts[t]++
		}
	}
	// Sum in term order so the result does not depend on map order.
	ts := make([]int32, 0, len(counts))
	for t := range counts {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
	e := make([]float64, m.k)
	for _, t := range ts {
		w := (1 + math.Log(float64(counts[t]))) * m.idf[t]
		axpy(w, m.v[int(t)*m.k:(int(t)+1)*m.k], e)
	}
	// Normalising the TF-IDF vector first would only rescale e, which is
	// normalised here anyway.
	var ss float64
	for _, x := range e {
		ss += x * x
	}
	out := make([]float32, m.k)
	if ss == 0 {
		return out
	}
	inv := 1 / math.Sqrt(ss)
	for j, x := range e {
		out[j] = float32(x * inv)
	}
	return out
}

var _ Embedder = (*LSA)(nil)
