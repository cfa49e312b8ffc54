package search

import (
	"math"
	"slices"
)

// NDCGAt returns NDCG@k of a ranking (document IDs, best first) given the
// gains of the judged documents (unjudged documents have gain 0).
//
// DCG@k = sum_{i=1..k} gain(doc_i) / log2(i + 1) with linear gains (as
// trec_eval's ndcg_cut), and the ideal DCG@k sorts the gains of all judged
// documents of the query, retrieved or not. It is 0 when no document has a
// positive gain.
func NDCGAt(ranking []int, gains map[int]float64, k int) float64 {
	var dcg float64
	for i, d := range ranking[:min(k, len(ranking))] {
		if g := gains[d]; g > 0 {
			dcg += g / math.Log2(float64(i)+2)
		}
	}
	ideal := make([]float64, 0, len(gains))
	for _, g := range gains {
		if g > 0 {
			ideal = append(ideal, g)
		}
	}
	slices.SortFunc(ideal, func(a, b float64) int { return cmpDesc(a, b) })
	var idcg float64
	for i, g := range ideal[:min(k, len(ideal))] {
		idcg += g / math.Log2(float64(i)+2)
	}
	if idcg == 0 {
		return 0
	}
	return dcg / idcg
}

// AveragePrecision returns the (uninterpolated) average precision of a
// ranking: the mean over all relevant documents (gain > 0) of the
// precision at the rank where each is retrieved, counting relevant
// documents that are not retrieved as 0. It is 0 when nothing is relevant.
func AveragePrecision(ranking []int, gains map[int]float64) float64 {
	nRel := 0
	for _, g := range gains {
		if g > 0 {
			nRel++
		}
	}
	if nRel == 0 {
		return 0
	}
	var sum float64
	found := 0
	for i, d := range ranking {
		if gains[d] > 0 {
			found++
			sum += float64(found) / float64(i+1)
		}
	}
	return sum / float64(nRel)
}

// PrecisionAt returns the fraction of the first k positions that hold a
// relevant document (gain > 0); missing positions count as not relevant
// (the trec_eval convention: the denominator is always k).
func PrecisionAt(ranking []int, gains map[int]float64, k int) float64 {
	n := 0
	for _, d := range ranking[:min(k, len(ranking))] {
		if gains[d] > 0 {
			n++
		}
	}
	return float64(n) / float64(k)
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}
