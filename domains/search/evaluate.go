package search

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Query splits, by position i (0-based) in cran.qry.
const (
	SplitTrain      = "train"
	SplitValidation = "validation"
	SplitTest       = "test"
)

// QuerySplit returns the split of the query at 0-based position i:
// i mod 5 in {0, 1, 2} is train, 3 is validation, 4 is test.
func QuerySplit(i int) string {
	switch i % 5 {
	case 3:
		return SplitValidation
	case 4:
		return SplitTest
	}
	return SplitTrain
}

const (
	runDepth = 1000 // documents ranked per query (MAP depth)
	runOut   = 100  // documents per query written to run.txt
)

// splitStats accumulates per-split means.
type splitStats struct {
	n                int
	ndcg, ap, p10    float64
	skipped, queries int
}

func (s *splitStats) mean() (ndcg, ap, p10 float64) {
	if s.n == 0 {
		return 0, 0, 0
	}
	n := float64(s.n)
	return s.ndcg / n, s.ap / n, s.p10 / n
}

// queryMetrics is one query's row in metrics.json.
type queryMetrics struct {
	Num    int     `json:"num"`
	ID     string  `json:"id"`
	Split  string  `json:"split"`
	NDCG10 float64 `json:"ndcg10"`
	AP     float64 `json:"ap"`
	P10    float64 `json:"p10"`
}

func evaluate(ctx context.Context, col *Collection, cfg domains.Config, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	start := time.Now()
	progress := func(frac float64, step int, metric float64, msg string) {
		if opts.Progress != nil {
			opts.Progress(domains.Progress{Fraction: frac, Step: step, Metric: metric, Message: msg})
		}
	}
	ix := col.Index(Analyzer{Stemmer: cfg.String("stemmer"), Stopwords: cfg.Bool("stopwords")})
	if err := ctx.Err(); err != nil {
		return domains.Result{}, err
	}
	r := newRetriever(ix, cfg.Float("k1"), cfg.Float("b"), cfg.Float("titleWeight"))
	rerank := cfg.String("reranker")
	retrFrac := 0.9
	if rerank != RerankNone {
		retrFrac = 0.3
	}

	nq := len(col.Queries)
	gains := make([]map[int]float64, nq)
	for qi, js := range col.Qrels {
		gains[qi] = make(map[int]float64, len(js))
		for _, j := range js {
			gains[qi][j.Doc] = Gain(j.Code)
		}
	}

	// First stage: BM25F, then RM3.
	runs := make([][]hit, nq)
	for qi := range nq {
		if qi%16 == 0 {
			if err := ctx.Err(); err != nil {
				return domains.Result{}, err
			}
			progress(retrFrac*float64(qi)/float64(nq), qi, 0, "retrieving")
		}
		q := queryVector(ix.queries[qi])
		if cfg.Bool("rm3") {
			fb := r.search(q, cfg.Int("fbDocs"))
			q = r.rm3(q, fb, cfg.Int("fbDocs"), cfg.Int("fbTerms"), cfg.Float("origWeight"))
		}
		runs[qi] = r.search(q, runDepth)
	}

	// Learned reranker.
	var curve [][2]float64
	rerankLoss := 0.0
	if rerank != RerankNone {
		depth := cfg.Int("rerankDepth")
		all := make([]candidates, nq)
		var train []candidates
		for qi := range nq {
			all[qi] = r.features(qi, runs[qi][:min(depth, len(runs[qi]))], gains[qi])
			if QuerySplit(qi) == SplitTrain {
				train = append(train, all[qi])
			}
		}
		if err := ctx.Err(); err != nil {
			return domains.Result{}, err
		}
		m := newRankModel(rerank, cfg.Int("hiddenUnits"), rand.New(rand.NewPCG(uint64(seed), 0x1417)))
		m.mean, m.sdev = standardise(train, all)
		epochs := cfg.Int("epochs")
		losses, err := m.train(ctx, train, trainOptions{
			epochs: epochs, lr: cfg.Float("learningRate"), l2: cfg.Float("l2"), seed: seed,
		}, func(epoch int, loss float64) {
			progress(retrFrac+(0.95-retrFrac)*float64(epoch)/float64(epochs), epoch, loss, "training reranker")
		})
		if err != nil {
			return domains.Result{}, err
		}
		for e, l := range losses {
			curve = append(curve, [2]float64{float64(e + 1), l})
		}
		if len(losses) > 0 {
			rerankLoss = losses[len(losses)-1]
		}
		for qi := range nq {
			top := m.rerank(r, all[qi])
			runs[qi] = append(top, runs[qi][len(top):]...)
		}
	}

	// Metrics.
	stats := map[string]*splitStats{SplitTrain: {}, SplitValidation: {}, SplitTest: {}}
	perQuery := make([]queryMetrics, 0, nq)
	ranking := make([]int, 0, runDepth)
	for qi := range nq {
		st := stats[QuerySplit(qi)]
		st.queries++
		if !hasRelevant(gains[qi]) {
			st.skipped++
			continue
		}
		ranking = ranking[:0]
		for _, h := range runs[qi] {
			ranking = append(ranking, ix.docID[h.doc])
		}
		qm := queryMetrics{
			Num: col.Queries[qi].Num, ID: col.Queries[qi].ID, Split: QuerySplit(qi),
			NDCG10: NDCGAt(ranking, gains[qi], 10),
			AP:     AveragePrecision(ranking, gains[qi]),
			P10:    PrecisionAt(ranking, gains[qi], 10),
		}
		perQuery = append(perQuery, qm)
		st.n++
		st.ndcg += qm.NDCG10
		st.ap += qm.AP
		st.p10 += qm.P10
	}
	dur := time.Since(start).Seconds()
	vals := map[string]float64{
		"durationSec":     dur,
		"queriesPerSec":   float64(nq) / max(dur, 1e-9),
		"rerankTrainLoss": rerankLoss,
		"vocabSize":       float64(ix.VocabSize()),
	}
	skipped := 0
	for name, prefix := range map[string]string{SplitTrain: "train", SplitValidation: "val", SplitTest: "test"} {
		st := stats[name]
		ndcg, ap, p10 := st.mean()
		vals[prefix+"Ndcg10"] = ndcg
		vals[prefix+"Map"] = ap
		vals[prefix+"P10"] = p10
		vals[prefix+"Queries"] = float64(st.n)
		skipped += st.skipped
	}
	vals["skippedQueries"] = float64(skipped)
	progress(1, nq, vals["valNdcg10"], "done")

	// Artifacts: TREC run of the validation queries and per-query metrics.
	var run bytes.Buffer
	for qi := range nq {
		if QuerySplit(qi) != SplitValidation {
			continue
		}
		for rank, h := range runs[qi][:min(runOut, len(runs[qi]))] {
			score := h.score
			if rerank != RerankNone {
				// Reranked and first-stage scores are not comparable; give
				// trec_eval (which sorts by score) a decreasing score.
				score = float64(runDepth - rank)
			}
			fmt.Fprintf(&run, "%d Q0 %d %d %.6f hyperspace\n", col.Queries[qi].Num, ix.docID[h.doc], rank+1, score)
		}
	}
	mj, err := json.MarshalIndent(map[string]any{
		"config":   cfg,
		"seed":     seed,
		"values":   vals,
		"perQuery": perQuery,
	}, "", "  ")
	if err != nil {
		return domains.Result{}, fmt.Errorf("search: encoding metrics.json: %w", err)
	}
	// Per-query NDCG@10 of the validation split, for paired comparisons.
	var ids []string
	var scores []float64
	for _, qm := range perQuery {
		if qm.Split == SplitValidation {
			ids = append(ids, fmt.Sprint(qm.Num))
			scores = append(scores, qm.NDCG10)
		}
	}
	return domains.Result{
		Metric:     vals["valNdcg10"],
		TestMetric: vals["testNdcg10"],
		Values:     vals,
		Curve:      curve,
		Artifacts:  map[string][]byte{"run.txt": run.Bytes(), "metrics.json": mj},
		Items:      &domains.Items{Agg: domains.ItemsMean, Key: domains.ItemsKey("search/ndcg@10/validation", ids...), Values: scores},
	}, nil
}

func hasRelevant(g map[int]float64) bool {
	for _, v := range g {
		if v > 0 {
			return true
		}
	}
	return false
}
