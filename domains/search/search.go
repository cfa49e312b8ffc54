// Package search is the "search" research domain: ad-hoc retrieval on the
// Cranfield 1400 collection, scored by NDCG@10 (higher is better).
//
// The pipeline under search is: an analyzer (lowercase, optional stopword
// removal, optional S or Porter stemming), BM25F over the title and body
// fields, optional RM3 pseudo-relevance feedback, and an optional learned
// reranker (linear or residual MLP, pairwise RankNet loss) trained on the
// training queries.
//
// Queries are split by position in cran.qry (0-based index i): i mod 5 in
// {0, 1, 2} is train (135 queries), 3 is validation (45), 4 is test (45).
// Metric is NDCG@10 on validation, TestMetric NDCG@10 on test; training
// queries are only used to fit the reranker.
//
// Evaluation is pure and deterministic: the same normalised config, seed and
// data give bit-identical results (single goroutine, fixed iteration orders,
// ties broken by document ID, math/rand/v2 PCG seeded from the seed).
package search

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Domain implements domains.Domain for Cranfield retrieval.
type Domain struct{}

// New returns the search domain.
func New() *Domain { return &Domain{} }

var _ domains.Domain = (*Domain)(nil)

// Name implements domains.Domain.
func (*Domain) Name() string { return "search" }

// Metric implements domains.Domain.
func (*Domain) Metric() domains.Metric {
	return domains.Metric{Name: "ndcg@10", Direction: domains.Maximize}
}

var space = domains.Space{
	{Name: "stemmer", Kind: domains.Choice, Choices: []string{StemNone, StemS, StemPorter}, Help: "stemming of alphabetic tokens: none, s-stemmer (plural -s/-es/-ies only) or porter (Porter 1980)"},
	{Name: "stopwords", Kind: domains.Bool, Help: "drop the NLTK English stopword list from documents and queries before stemming"},
	{Name: "k1", Kind: domains.Float, Min: 0.1, Max: 3, Help: "BM25 term-frequency saturation"},
	{Name: "b", Kind: domains.Float, Min: 0, Max: 1, Help: "BM25 length normalisation (0 = none, 1 = full), applied per field"},
	{Name: "titleWeight", Kind: domains.Float, Min: 0, Max: 5, Help: "BM25F weight of the title field relative to the body (weight 1); 0 = body only"},
	{Name: "rm3", Kind: domains.Bool, Help: "RM3 pseudo-relevance feedback: expand the query from the top fbDocs documents and search again"},
	{Name: "fbDocs", Kind: domains.Int, Min: 1, Max: 20, Help: "RM3: feedback documents"},
	{Name: "fbTerms", Kind: domains.Int, Min: 1, Max: 50, Help: "RM3: expansion terms kept"},
	{Name: "origWeight", Kind: domains.Float, Min: 0, Max: 1, Help: "RM3: weight of the original query in the expanded one (1 = no expansion)"},
	{Name: "reranker", Kind: domains.Choice, Choices: []string{RerankNone, RerankLinear, RerankMLP}, Help: "learned reranker of the top rerankDepth documents, trained on the train queries with a pairwise RankNet loss"},
	{Name: "rerankDepth", Kind: domains.Int, Min: 10, Max: 200, Help: "reranker: first-stage documents reranked (and used for training pairs)"},
	{Name: "hiddenUnits", Kind: domains.Int, Min: 2, Max: 32, Help: "reranker mlp: tanh hidden units (ignored by linear)"},
	{Name: "epochs", Kind: domains.Int, Min: 1, Max: 100, Help: "reranker: passes over the training queries (one Adam step per query)"},
	{Name: "learningRate", Kind: domains.Float, Min: 1e-4, Max: 0.3, Log: true, Help: "reranker: Adam learning rate"},
	{Name: "l2", Kind: domains.Float, Min: 0, Max: 0.1, Help: "reranker: L2 penalty l2/2*|w|^2 on the weights"},
}

// Space implements domains.Domain.
func (*Domain) Space() domains.Space { return append(domains.Space(nil), space...) }

// Baseline implements domains.Domain: plain BM25 (k1 1.2, b 0.75, the
// common defaults of Lucene/Anserini) on the body field with no stemming,
// no stopword removal, no expansion and no reranker. Stemming and stopwords
// are left off so that every pipeline component is something the search
// can add and measure; the body already contains the title, so titleWeight
// 0 still matches title words. On the shared data it scores NDCG@10 /
// MAP / P@10 of 0.2918 / 0.2349 / 0.1800 on validation and 0.3168 /
// 0.2649 / 0.2067 on test.
func (*Domain) Baseline() domains.Config {
	return domains.Config{
		"stemmer":      StemNone,
		"stopwords":    false,
		"k1":           1.2,
		"b":            0.75,
		"titleWeight":  0.0,
		"rm3":          false,
		"fbDocs":       10.0,
		"fbTerms":      10.0,
		"origWeight":   0.5,
		"reranker":     RerankNone,
		"rerankDepth":  100.0,
		"hiddenUnits":  16.0,
		"epochs":       30.0,
		"learningRate": 0.01,
		"l2":           0.001,
	}
}

// maxTrainWork bounds the reranker's training cost, in candidate-forward
// units: epochs * rerankDepth * (1 + hiddenUnits for mlp).
const maxTrainWork = 100 * 200 * 17

// Validate implements domains.Domain: Space().Normalize against the
// baseline plus the cost constraint epochs*rerankDepth*(1+hiddenUnits) <=
// 340000 for the mlp reranker (about 2 s of training on one core).
func (d *Domain) Validate(cfg domains.Config) (domains.Config, error) {
	out, err := d.Space().Normalize(cfg, d.Baseline())
	if err != nil {
		return nil, err
	}
	if out.String("reranker") == RerankMLP {
		work := out.Int("epochs") * out.Int("rerankDepth") * (1 + out.Int("hiddenUnits"))
		if work > maxTrainWork {
			return nil, &domains.FieldError{Field: "epochs", Message: fmt.Sprintf(
				"epochs*rerankDepth*(1+hiddenUnits) = %d exceeds %d (reranker training budget); reduce epochs, rerankDepth or hiddenUnits",
				work, maxTrainWork)}
		}
	}
	return out, nil
}

// Evaluate implements domains.Domain. EvalOptions.BudgetSeconds is ignored:
// an evaluation takes seconds at most and always runs to completion.
func (d *Domain) Evaluate(ctx context.Context, cfg domains.Config, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	ncfg, err := d.Validate(cfg)
	if err != nil {
		return domains.Result{}, err
	}
	dir := opts.DataDir
	if dir == "" {
		dir = os.Getenv("HYPERSPACE_DATA_DIR")
	}
	if dir == "" {
		return domains.Result{}, fmt.Errorf("search: no data directory: set EvalOptions.DataDir or HYPERSPACE_DATA_DIR (expects cranfield/%s, cranfield/%s and cranfield/%s under it)", DocsFile, QueriesFile, QrelsFile)
	}
	col, err := LoadCollection(dir)
	if err != nil {
		return domains.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return domains.Result{}, err
	}
	return evaluate(ctx, col, ncfg, seed, opts)
}

// Describe implements domains.Domain.
func (d *Domain) Describe() string {
	var s strings.Builder
	s.WriteString(`Domain "search": ad-hoc document retrieval on Cranfield 1400.

Data: 1,400 aeronautics abstracts (cran.all.1400; fields .T title,
.A authors, .B bibliography, .W abstract; the abstract begins with a copy of
the title; documents 471 and 995 are empty), 225 natural-language queries
(cran.qry) and graded judgments (cranqrel). Only title and abstract are
indexed. Queries are numbered by position: the 3rd query in cran.qry is
labelled .I 004 but is query 3 in cranqrel.

Gain mapping: Cranfield codes are inverted (1 = complete answer .. 4 =
minimum interest), so gain = 5 - code: code 1 -> 4, 2 -> 3, 3 -> 2, 4 -> 1;
code -1 and anything else -> 0. (cranqrel lists one code -1 document per
query; the readme does not define it; it is usually on-topic, probably the
paper the question came from, but it is not a relevance grade.) Relevant
(for MAP and P@10) means gain > 0.

Metric: ndcg@10 on the validation queries, higher is better. NDCG@10 uses
linear gains and the log2(rank+1) discount; the ideal DCG sorts all judged
documents of the query. Queries without a relevant document are skipped
(none in Cranfield). Also reported: valNdcg10, valMap, valP10, testNdcg10,
testMap, testP10, trainNdcg10, trainMap, trainP10, rerankTrainLoss,
queriesPerSec, durationSec. MAP is over the top 1000. Artifacts: run.txt
(TREC run of the validation queries, top 100, query numbers as in cranqrel)
and metrics.json (per-query numbers).

Splits (fixed, by query position i in cran.qry, 0-based): i mod 5 in
{0,1,2} -> train (135 queries, only used to train the reranker),
3 -> validation (45, the metric), 4 -> test (45, held out).

Pipeline:
1. Analyzer: lowercase; split on non-alphanumerics; optionally drop
   stopwords (NLTK English list); optionally stem alphabetic tokens
   (s-stemmer: plural endings only; porter: full Porter 1980).
2. BM25F over title and body with one k1 and b (per-field length
   normalisation): tf' = tf_body/(1-b+b*len_body/avg) + titleWeight *
   tf_title/(1-b+b*len_title/avg); score = sum w_q * idf * tf'/(k1+tf'),
   idf = log(1 + (N-df+0.5)/(df+0.5)). titleWeight 0 = plain BM25 on the body.
3. RM3 (if rm3): relevance model from the top fbDocs documents (weights =
   normalised first-pass scores, term probabilities tf/len of the body),
   stopwords never added, top fbTerms terms, mixed with the original query:
   origWeight*q + (1-origWeight)*RM; then a second BM25F search.
4. Reranker (if not none): the top rerankDepth documents per query are
   rescored by a model over 8 features (first-stage score, title BM25, body
   BM25, query-term coverage, title match fraction, min term-pair proximity
   in the body, log body length, first-stage rank prior), standardised on the
   training queries. linear: w.x; mlp: w.x + sum_h v_h tanh(W_h.x + c_h).
   Trained with a pairwise RankNet loss (pairs with different gains among the
   candidates; unjudged = gain 0), one Adam step per training query per
   epoch, l2 penalty, query order shuffled by the seed. The model starts at
   the first-stage ranking. Only this step depends on the seed.

Reference points (validation / test NDCG@10): baseline 0.289 / 0.317;
porter + stopwords 0.314 / 0.370; porter + stopwords, k1 2.5, b 0.9,
titleWeight 2.5, RM3 fbDocs 5 fbTerms 30 origWeight 0.5: 0.388 / 0.442.
The validation split has only 45 queries: differences under about 0.01
are noise.

Cost: BM25/RM3 evaluations take well under a second once the index for a
(stemmer, stopwords) pair is built (about 0.1 s, cached). The reranker adds
time proportional to epochs*rerankDepth*(1+hiddenUnits for mlp); that product
must be <= 340000 for mlp.

Parameters (name, type, range, meaning):
`)
	for _, p := range space {
		switch p.Kind {
		case domains.Choice:
			fmt.Fprintf(&s, "  %s (choice: %s) - %s\n", p.Name, strings.Join(p.Choices, "|"), p.Help)
		case domains.Bool:
			fmt.Fprintf(&s, "  %s (bool) - %s\n", p.Name, p.Help)
		default:
			lg := ""
			if p.Log {
				lg = ", log scale"
			}
			fmt.Fprintf(&s, "  %s (%s, %g..%g%s) - %s\n", p.Name, p.Kind, p.Min, p.Max, lg, p.Help)
		}
	}
	s.WriteString("\nBaseline:")
	b := d.Baseline()
	for _, p := range space {
		fmt.Fprintf(&s, " %s=%v", p.Name, b[p.Name])
	}
	s.WriteString("\n")
	return s.String()
}
