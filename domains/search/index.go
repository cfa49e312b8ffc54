package search

import (
	"math"
	"slices"
)

// Index is an inverted index of a Collection under one Analyzer, with the
// per-document term sequences and term vectors that feedback and the
// reranker features need. It is built once per (data directory, analyzer)
// and shared read-only by concurrent evaluations.
type Index struct {
	Analyzer Analyzer
	NumDocs  int

	vocab []string
	ids   map[string]int32
	df    []int32   // documents whose title or body contains the term
	idf   []float64 // log(1 + (N - df + 0.5) / (df + 0.5)), Lucene's BM25 idf
	post  [][]posting

	titleLen, bodyLen []int32
	avgTitle, avgBody float64
	docID             []int // document ID by index

	body     [][]int32  // body terms in order (for proximity)
	bodyVec  [][]termTF // body term frequencies, sorted by term
	titleVec [][]termTF // title term frequencies, sorted by term
	stopTerm []bool     // the term is the analysed form of a stopword

	queries [][]int32 // analysed query terms in order, by query position
}

type posting struct {
	doc             int32
	tfTitle, tfBody int32
}

type termTF struct {
	term, tf int32
}

// Index returns the index of c under a, building it on first use.
func (c *Collection) Index(a Analyzer) *Index {
	c.mu.Lock()
	e, ok := c.indexes[a]
	if !ok {
		e = &indexEntry{}
		c.indexes[a] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.ix = buildIndex(c, a) })
	return e.ix
}

func buildIndex(c *Collection, a Analyzer) *Index {
	n := len(c.Docs)
	ix := &Index{
		Analyzer: a, NumDocs: n, ids: map[string]int32{},
		titleLen: make([]int32, n), bodyLen: make([]int32, n), docID: make([]int, n),
		body: make([][]int32, n), bodyVec: make([][]termTF, n), titleVec: make([][]termTF, n),
	}
	intern := func(tok string) int32 {
		id, ok := ix.ids[tok]
		if !ok {
			id = int32(len(ix.vocab))
			ix.ids[tok] = id
			ix.vocab = append(ix.vocab, tok)
		}
		return id
	}
	terms := func(text string) []int32 {
		toks := a.Tokens(text)
		out := make([]int32, len(toks))
		for i, t := range toks {
			out[i] = intern(t)
		}
		return out
	}
	var sumTitle, sumBody float64
	for d, doc := range c.Docs {
		ix.docID[d] = doc.ID
		title := terms(doc.Title)
		ix.body[d] = terms(doc.Body)
		ix.titleLen[d], ix.bodyLen[d] = int32(len(title)), int32(len(ix.body[d]))
		sumTitle += float64(len(title))
		sumBody += float64(len(ix.body[d]))
		ix.titleVec[d] = termVector(title)
		ix.bodyVec[d] = termVector(ix.body[d])
	}
	ix.avgTitle = sumTitle / float64(n)
	ix.avgBody = sumBody / float64(n)
	for _, q := range c.Queries {
		ix.queries = append(ix.queries, terms(q.Text))
	}
	ix.stopTerm = make([]bool, len(ix.vocab))
	for _, w := range stopwordList {
		if id, ok := ix.ids[a.stem(w)]; ok {
			ix.stopTerm[id] = true
		}
	}

	// Postings: documents in index order, so every list is sorted by doc.
	V := len(ix.vocab)
	ix.df = make([]int32, V)
	ix.post = make([][]posting, V)
	for d := range n {
		tv, bv := ix.titleVec[d], ix.bodyVec[d]
		i, j := 0, 0
		for i < len(tv) || j < len(bv) {
			p := posting{doc: int32(d)}
			var t int32
			switch {
			case j >= len(bv) || (i < len(tv) && tv[i].term < bv[j].term):
				t, p.tfTitle = tv[i].term, tv[i].tf
				i++
			case i >= len(tv) || bv[j].term < tv[i].term:
				t, p.tfBody = bv[j].term, bv[j].tf
				j++
			default:
				t, p.tfTitle, p.tfBody = tv[i].term, tv[i].tf, bv[j].tf
				i++
				j++
			}
			ix.post[t] = append(ix.post[t], p)
			ix.df[t]++
		}
	}
	ix.idf = make([]float64, V)
	for t, df := range ix.df {
		ix.idf[t] = math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
	}
	return ix
}

// termVector counts the terms of seq, sorted by term id.
func termVector(seq []int32) []termTF {
	s := slices.Clone(seq)
	slices.Sort(s)
	var out []termTF
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		out = append(out, termTF{s[i], int32(j - i)})
		i = j
	}
	return out
}

// tfIn returns the frequency of term t in the term vector v.
func tfIn(v []termTF, t int32) int32 {
	i, ok := slices.BinarySearchFunc(v, t, func(e termTF, t int32) int {
		return int(e.term) - int(t)
	})
	if !ok {
		return 0
	}
	return v[i].tf
}

// VocabSize is the number of distinct terms (documents and queries).
func (ix *Index) VocabSize() int { return len(ix.vocab) }

// QueryTerms returns the analysed terms of the query at position i.
func (ix *Index) QueryTerms(i int) []string {
	out := make([]string, len(ix.queries[i]))
	for k, t := range ix.queries[i] {
		out[k] = ix.vocab[t]
	}
	return out
}
