package search

import (
	"cmp"
	"slices"
)

// qterm is one weighted query term.
type qterm struct {
	term int32
	w    float64
}

// hit is one retrieved document (index into Collection.Docs) and its score.
type hit struct {
	doc   int32
	score float64
}

// retriever scores queries with BM25F against one Index. It owns scratch
// buffers and is not safe for concurrent use.
type retriever struct {
	ix                *Index
	k1, b, titleW     float64
	normTitle, normBd []float64 // 1 - b + b*len/avgLen per document and field
	acc               []float64
	touched           []int32
	rm                []float64 // RM3 scratch, by term
	rmTouched         []int32
}

func newRetriever(ix *Index, k1, b, titleWeight float64) *retriever {
	r := &retriever{
		ix: ix, k1: k1, b: b, titleW: titleWeight,
		normTitle: make([]float64, ix.NumDocs), normBd: make([]float64, ix.NumDocs),
		acc: make([]float64, ix.NumDocs), rm: make([]float64, len(ix.vocab)),
	}
	for d := range ix.NumDocs {
		r.normTitle[d] = lenNorm(b, float64(ix.titleLen[d]), ix.avgTitle)
		r.normBd[d] = lenNorm(b, float64(ix.bodyLen[d]), ix.avgBody)
	}
	return r
}

func lenNorm(b, l, avg float64) float64 {
	if avg == 0 {
		return 1
	}
	return 1 - b + b*l/avg
}

// queryVector turns a term sequence into weights = term counts, sorted by
// term id.
func queryVector(seq []int32) []qterm {
	var out []qterm
	for _, tv := range termVector(seq) {
		out = append(out, qterm{tv.term, float64(tv.tf)})
	}
	return out
}

// search ranks every document with a positive BM25F score for q and
// returns at most depth hits, best first (ties by ascending document ID).
//
// BM25F (Robertson & Zaragoza's simple form, one k1 and one b): per
// document the term frequency is pooled over the fields after per-field
// length normalisation,
//
//	tf' = tf_body / (1 - b + b*len_body/avg_body) + titleWeight * tf_title / (1 - b + b*len_title/avg_title)
//	score = sum over query terms of w_q * idf * tf' / (k1 + tf')
//
// with idf = log(1 + (N - df + 0.5)/(df + 0.5)) and df counting documents
// that contain the term in either field. titleWeight 0 is plain BM25 on the
// body (which in Cranfield already starts with the title).
func (r *retriever) search(q []qterm, depth int) []hit {
	for _, qt := range q {
		idf := r.ix.idf[qt.term]
		for _, p := range r.ix.post[qt.term] {
			tf := float64(p.tfBody) / r.normBd[p.doc]
			if r.titleW != 0 && p.tfTitle != 0 {
				tf += r.titleW * float64(p.tfTitle) / r.normTitle[p.doc]
			}
			if tf == 0 {
				continue
			}
			if r.acc[p.doc] == 0 {
				r.touched = append(r.touched, p.doc)
			}
			r.acc[p.doc] += qt.w * idf * tf / (r.k1 + tf)
		}
	}
	hits := make([]hit, 0, len(r.touched))
	for _, d := range r.touched {
		if s := r.acc[d]; s > 0 {
			hits = append(hits, hit{d, s})
		}
		r.acc[d] = 0
	}
	r.touched = r.touched[:0]
	r.sortHits(hits)
	if len(hits) > depth {
		hits = hits[:depth]
	}
	return hits
}

// sortHits orders hits by descending score, ties by ascending document ID.
func (r *retriever) sortHits(h []hit) {
	slices.SortFunc(h, func(a, b hit) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(r.ix.docID[a.doc], r.ix.docID[b.doc])
	})
}

// fieldBM25 is classic single-field BM25 of the query terms q (weights
// ignored, each distinct term once) against document d's title or body,
// with the retriever's k1 and b and the shared idf.
func (r *retriever) fieldBM25(q []qterm, d int32, title bool) float64 {
	vec, norm := r.ix.bodyVec[d], r.normBd[d]
	if title {
		vec, norm = r.ix.titleVec[d], r.normTitle[d]
	}
	var s float64
	for _, qt := range q {
		tf := float64(tfIn(vec, qt.term))
		if tf == 0 {
			continue
		}
		tf /= norm
		s += r.ix.idf[qt.term] * tf / (r.k1 + tf)
	}
	return s
}

// rm3 expands q with relevance model 3 (Lavrenko & Croft 2001, in the form
// used by Anserini): from the top fbDocs hits of the first pass,
//
//	P(t|R) ∝ sum over feedback docs d of  score(d)/sum(score) * tf(t,d)/len(d)
//
// on the body field; stopwords (the embedded list, after analysis) are never
// expansion terms, whether or not the "stopwords" option is on. The best
// fbTerms terms are kept (ties by term id) and renormalised to sum 1, and
// the final query is origWeight * q/|q|_1 + (1 - origWeight) * P(.|R).
func (r *retriever) rm3(q []qterm, first []hit, fbDocs, fbTerms int, origWeight float64) []qterm {
	fb := first[:min(fbDocs, len(first))]
	var total float64
	for _, h := range fb {
		total += h.score
	}
	if total <= 0 {
		return q
	}
	for _, h := range fb {
		l := float64(r.ix.bodyLen[h.doc])
		if l == 0 {
			continue
		}
		wd := h.score / total
		for _, tv := range r.ix.bodyVec[h.doc] {
			if r.ix.stopTerm[tv.term] {
				continue
			}
			if r.rm[tv.term] == 0 {
				r.rmTouched = append(r.rmTouched, tv.term)
			}
			r.rm[tv.term] += wd * float64(tv.tf) / l
		}
	}
	exp := make([]qterm, 0, len(r.rmTouched))
	for _, t := range r.rmTouched {
		exp = append(exp, qterm{t, r.rm[t]})
		r.rm[t] = 0
	}
	r.rmTouched = r.rmTouched[:0]
	slices.SortFunc(exp, func(a, b qterm) int {
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		return cmp.Compare(a.term, b.term)
	})
	exp = exp[:min(fbTerms, len(exp))]
	var expSum, qSum float64
	for _, e := range exp {
		expSum += e.w
	}
	for _, qt := range q {
		qSum += qt.w
	}
	merged := map[int32]float64{}
	for _, qt := range q {
		merged[qt.term] += origWeight * qt.w / qSum
	}
	if expSum > 0 {
		for _, e := range exp {
			merged[e.term] += (1 - origWeight) * e.w / expSum
		}
	}
	out := make([]qterm, 0, len(merged))
	for t, w := range merged {
		if w > 0 {
			out = append(out, qterm{t, w})
		}
	}
	slices.SortFunc(out, func(a, b qterm) int { return cmp.Compare(a.term, b.term) })
	return out
}
