package search

import (
	"context"
	"math"
	"math/rand/v2"
)

// Reranker kinds accepted by the "reranker" parameter.
const (
	RerankNone   = "none"
	RerankLinear = "linear"
	RerankMLP    = "mlp"
)

// FeatureNames lists the reranker features in order. Query terms here are
// the distinct analysed terms of the original query that are not
// stopwords (the embedded list), so the features do not depend on whether
// the "stopwords" option is on.
var FeatureNames = []string{
	"score",      // first-stage (BM25F, after RM3 if on) score / best score of the query
	"titleBM25",  // title-only BM25 of the original query / best over the candidates
	"bodyBM25",   // body-only BM25 of the original query / best over the candidates
	"coverage",   // fraction of query terms in the title or body
	"titleMatch", // fraction of query terms in the title
	"proximity",  // 1/(1 + min distance between two different query terms in the body); 0 if < 2 match
	"logLen",     // log(1 + body length in terms)
	"rankPrior",  // 1/log2(2 + first-stage rank), rank 0-based
}

const numFeatures = 8

// candidates are the top rerankDepth first-stage hits of one query with
// their feature vectors (row-major) and gains.
type candidates struct {
	hits  []hit
	feats []float64 // len(hits) * numFeatures
	gains []float64
}

// features fills the feature vectors of the hits of query position qi.
func (r *retriever) features(qi int, hits []hit, gains map[int]float64) candidates {
	ix := r.ix
	var qs []qterm
	for _, qt := range queryVector(ix.queries[qi]) {
		if !ix.stopTerm[qt.term] {
			qs = append(qs, qterm{qt.term, 1})
		}
	}
	c := candidates{hits: hits, feats: make([]float64, len(hits)*numFeatures), gains: make([]float64, len(hits))}
	var maxS, maxT, maxB float64
	for i, h := range hits {
		f := c.feats[i*numFeatures : (i+1)*numFeatures]
		f[0] = h.score
		f[1] = r.fieldBM25(qs, h.doc, true)
		f[2] = r.fieldBM25(qs, h.doc, false)
		maxS, maxT, maxB = max(maxS, f[0]), max(maxT, f[1]), max(maxB, f[2])
		if len(qs) > 0 {
			inAny, inTitle := 0, 0
			for _, qt := range qs {
				inT := tfIn(ix.titleVec[h.doc], qt.term) > 0
				if inT || tfIn(ix.bodyVec[h.doc], qt.term) > 0 {
					inAny++
				}
				if inT {
					inTitle++
				}
			}
			f[3] = float64(inAny) / float64(len(qs))
			f[4] = float64(inTitle) / float64(len(qs))
		}
		f[5] = proximity(ix.body[h.doc], qs)
		f[6] = math.Log1p(float64(ix.bodyLen[h.doc]))
		f[7] = 1 / math.Log2(float64(i)+2)
		c.gains[i] = gains[ix.docID[h.doc]]
	}
	for i := range hits {
		f := c.feats[i*numFeatures : (i+1)*numFeatures]
		f[0] = safeDiv(f[0], maxS)
		f[1] = safeDiv(f[1], maxT)
		f[2] = safeDiv(f[2], maxB)
	}
	return c
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// proximity is 1/(1 + d) for the smallest distance d between positions of
// two different query terms in seq, or 0 when fewer than two of them occur.
func proximity(seq []int32, qs []qterm) float64 {
	if len(qs) < 2 {
		return 0
	}
	last := make([]int, len(qs))
	for i := range last {
		last[i] = -1
	}
	best := math.MaxInt
	for pos, t := range seq {
		k := -1
		for i, qt := range qs {
			if qt.term == t {
				k = i
				break
			}
		}
		if k < 0 {
			continue
		}
		for i, p := range last {
			if i != k && p >= 0 {
				best = min(best, pos-p)
			}
		}
		last[k] = pos
	}
	if best == math.MaxInt {
		return 0
	}
	return 1 / (1 + float64(best))
}

// rankModel scores a standardised feature vector x as
//
//	s(x) = wl·x + sum_h w2[h] * tanh(W1[h]·x + b1[h])
//
// The linear part starts at the first-stage score feature (wl = e_0), so an
// untrained model reproduces the first-stage ranking; "linear" has no
// hidden units, "mlp" adds the hidden layer (a residual MLP).
type rankModel struct {
	nh         int
	wl         []float64 // numFeatures
	w1         []float64 // nh * numFeatures
	b1, w2     []float64 // nh
	mean, sdev []float64 // feature standardisation from the training candidates
}

func newRankModel(kind string, hidden int, rng *rand.Rand) *rankModel {
	m := &rankModel{wl: make([]float64, numFeatures)}
	m.wl[0] = 1
	if kind == RerankMLP {
		m.nh = hidden
		m.w1 = make([]float64, hidden*numFeatures)
		m.b1 = make([]float64, hidden)
		m.w2 = make([]float64, hidden)
		a := 1 / math.Sqrt(numFeatures)
		for i := range m.w1 {
			m.w1[i] = a * (2*rng.Float64() - 1)
		}
		for i := range m.w2 {
			m.w2[i] = 0.1 * (2*rng.Float64() - 1)
		}
	}
	return m
}

// params returns the trainable parameter slices in a fixed order.
func (m *rankModel) params() [][]float64 { return [][]float64{m.wl, m.w1, m.b1, m.w2} }

// standardise sets the feature mean and standard deviation from cs and
// rewrites every candidate set's features in place.
func standardise(train []candidates, all []candidates) (mean, sdev []float64) {
	mean, sdev = make([]float64, numFeatures), make([]float64, numFeatures)
	n := 0
	for _, c := range train {
		for i := range c.hits {
			for j := range numFeatures {
				mean[j] += c.feats[i*numFeatures+j]
			}
			n++
		}
	}
	for j := range mean {
		mean[j] /= max(1, float64(n))
	}
	for _, c := range train {
		for i := range c.hits {
			for j := range numFeatures {
				d := c.feats[i*numFeatures+j] - mean[j]
				sdev[j] += d * d
			}
		}
	}
	for j := range sdev {
		sdev[j] = math.Sqrt(sdev[j] / max(1, float64(n)))
		if sdev[j] < 1e-12 {
			sdev[j] = 1
		}
	}
	for _, c := range all {
		for i := range c.hits {
			for j := range numFeatures {
				c.feats[i*numFeatures+j] = (c.feats[i*numFeatures+j] - mean[j]) / sdev[j]
			}
		}
	}
	return mean, sdev
}

// forward scores x; when h is non-nil it receives the hidden activations.
func (m *rankModel) forward(x, h []float64) float64 {
	var s float64
	for j, w := range m.wl {
		s += w * x[j]
	}
	for k := range m.nh {
		a := m.b1[k]
		row := m.w1[k*numFeatures : (k+1)*numFeatures]
		for j, w := range row {
			a += w * x[j]
		}
		t := math.Tanh(a)
		if h != nil {
			h[k] = t
		}
		s += m.w2[k] * t
	}
	return s
}

// trainOptions are the reranker's training hyperparameters.
type trainOptions struct {
	epochs int
	lr     float64
	l2     float64
	seed   int64
}

// train fits m with the pairwise RankNet loss, one Adam step per training
// query (the mean of log(1 + exp(-(s_i - s_j))) over the query's pairs with
// gain_i > gain_j, plus l2/2·|θ|² over all weights except the hidden
// biases), visiting the queries in a fresh PCG-shuffled order each epoch.
// It returns the mean training loss of each epoch.
func (m *rankModel) train(ctx context.Context, data []candidates, o trainOptions, progress func(epoch int, loss float64)) ([]float64, error) {
	rng := rand.New(rand.NewPCG(uint64(o.seed), 0x5ea4c4))
	params := m.params()
	grads := make([][]float64, len(params))
	adamM := make([][]float64, len(params))
	adamV := make([][]float64, len(params))
	for i, p := range params {
		grads[i] = make([]float64, len(p))
		adamM[i] = make([]float64, len(p))
		adamV[i] = make([]float64, len(p))
	}
	const beta1, beta2, eps = 0.9, 0.999, 1e-8
	var order []int
	for i, c := range data {
		if hasPairs(c.gains) {
			order = append(order, i)
		}
	}
	var (
		scores, lambda []float64
		hidden         []float64
		losses         []float64
		step           int
	)
	for epoch := range o.epochs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var epochLoss float64
		for _, qi := range order {
			c := data[qi]
			n := len(c.hits)
			scores = grow(scores, n)
			lambda = grow(lambda, n)
			hidden = grow(hidden, n*m.nh)
			for i := range n {
				scores[i] = m.forward(c.feats[i*numFeatures:(i+1)*numFeatures], hidden[i*m.nh:(i+1)*m.nh])
				lambda[i] = 0
			}
			var loss float64
			pairs := 0
			for i := range n {
				for j := range n {
					if c.gains[i] <= c.gains[j] {
						continue
					}
					d := scores[i] - scores[j]
					loss += softplus(-d)
					g := sigmoid(-d) // -dLoss/dd
					lambda[i] -= g
					lambda[j] += g
					pairs++
				}
			}
			inv := 1 / float64(pairs)
			epochLoss += loss * inv
			for _, g := range grads {
				clear(g)
			}
			for i := range n {
				li := lambda[i] * inv
				if li == 0 {
					continue
				}
				x := c.feats[i*numFeatures : (i+1)*numFeatures]
				for j := range numFeatures {
					grads[0][j] += li * x[j]
				}
				for k := range m.nh {
					t := hidden[i*m.nh+k]
					grads[3][k] += li * t
					da := li * m.w2[k] * (1 - t*t)
					grads[2][k] += da
					row := grads[1][k*numFeatures : (k+1)*numFeatures]
					for j := range numFeatures {
						row[j] += da * x[j]
					}
				}
			}
			step++
			bc1 := 1 - math.Pow(beta1, float64(step))
			bc2 := 1 - math.Pow(beta2, float64(step))
			for pi, p := range params {
				g, mm, vv := grads[pi], adamM[pi], adamV[pi]
				for j := range p {
					gj := g[j]
					if pi != 2 { // no weight decay on hidden biases
						gj += o.l2 * p[j]
					}
					mm[j] = beta1*mm[j] + (1-beta1)*gj
					vv[j] = beta2*vv[j] + (1-beta2)*gj*gj
					p[j] -= o.lr * (mm[j] / bc1) / (math.Sqrt(vv[j]/bc2) + eps)
				}
			}
		}
		if len(order) > 0 {
			epochLoss /= float64(len(order))
		}
		losses = append(losses, epochLoss)
		if progress != nil {
			progress(epoch+1, epochLoss)
		}
	}
	return losses, nil
}

// rerank reorders the candidates by model score (ties by document ID)
// and returns the new order of their hits, with the model scores.
func (m *rankModel) rerank(r *retriever, c candidates) []hit {
	out := make([]hit, len(c.hits))
	for i, h := range c.hits {
		out[i] = hit{h.doc, m.forward(c.feats[i*numFeatures:(i+1)*numFeatures], nil)}
	}
	r.sortHits(out)
	return out
}

// hasPairs reports whether the gains differ, i.e. the query gives at
// least one training pair.
func hasPairs(gains []float64) bool {
	if len(gains) < 2 {
		return false
	}
	for _, g := range gains[1:] {
		if g != gains[0] {
			return true
		}
	}
	return false
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// softplus is log(1 + e^x), computed stably.
func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}
