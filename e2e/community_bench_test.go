package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// archiveLatency reads the in-process archive latency histogram: count and
// sum, and the upper bound of the bucket holding the median.
func archiveLatency(b *testing.B) (count uint64, sum float64, buckets map[float64]uint64) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(err)
	}
	buckets = map[float64]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "hyperspace_archive_commit_latency_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		for _, bk := range h.GetBucket() {
			buckets[bk.GetUpperBound()] = bk.GetCumulativeCount()
		}
		return h.GetSampleCount(), h.GetSampleSum(), buckets
	}
	return 0, 0, buckets
}

func quantileBound(before, after map[float64]uint64, n uint64, q float64) float64 {
	var bounds []float64
	for ub := range after {
		bounds = append(bounds, ub)
	}
	sort.Float64s(bounds)
	for _, ub := range bounds {
		if float64(after[ub]-before[ub]) >= q*float64(n) {
			return ub
		}
	}
	return math.Inf(1)
}

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkCommunity measures the community stages on the search domain
// (Cranfield BM25 + reranker, ~0.04 s an evaluation, so the stages
// themselves dominate): 4 agents x 12 experiments after 3 baseline seeds, a
// paper every 3 experiments reviewed on 2 of the 3 other P2P nodes, the git
// archive with a remote and a (fake) GitHub mirror. Each campaign seed runs
// with evolve on and off. It reports papers and reviews per hour of
// campaign, review latency (paper stored -> verdict), archive commit
// latency (receipt -> commit holding it), and the evolve comparison.
//
//	go test -run '^$' -bench Community -benchtime 1x -timeout 60m ./e2e
//
// HYPERSPACE_BENCH_DOMAIN=ml runs the same on the small ML config of
// BenchmarkSharing (1 layer, d=32, 60k characters, ~1-2 s a run), with 9
// experiments per agent and a 5 s cap per run.
func BenchmarkCommunity(b *testing.B) {
	domain, experiments, budget := "search", 12, 30.0
	var baseline map[string]any
	if os.Getenv("HYPERSPACE_BENCH_DOMAIN") == "ml" {
		// Proposals grow models and token budgets: a 5 s cap keeps the
		// six campaigns within half an hour (capped runs are truncated).
		domain, experiments, budget = "ml", 9, 5
		baseline = map[string]any{}
		for k, v := range tinyML {
			baseline[k] = v
		}
		baseline["tokenBudget"] = 60000
	}
	seeds := []int64{1, 2, 3}
	type outcome struct {
		best, bestTest            float64
		papers, reviews, breaks   int
		hours                     float64
		reviewLat                 []float64
		citing, research          int
		firstBreakRun, afterBreak int
	}
	res := map[bool][]outcome{}
	for i := 0; i < b.N; i++ {
		cs := newCommunityStack(b)
		cs.startNodes(b, 4)
		c0, s0, b0 := archiveLatency(b)
		for _, seed := range seeds {
			for _, evolve := range []bool{true, false} {
				start := time.Now()
				req := map[string]any{"domain": domain, "agents": 4, "experiments": experiments, "seed": seed,
					"budget": budget, "paperEvery": 3, "reviewers": 2, "evolve": evolve}
				if baseline != nil {
					req["baseline"] = baseline
				}
				v := cs.startCampaign(req)
				v = cs.waitCampaign(v.ID, 20*time.Minute)
				if v.Status != "completed" {
					b.Fatalf("campaign %s: %s", v.Status, v.Error)
				}
				ps := cs.waitReviewed(v.ID, 4*experiments/3, 10*time.Minute)
				var last time.Time
				o := outcome{papers: len(ps)}
				for _, p := range ps {
					full, err := cs.st.GetPaper(b.Context(), p.ID)
					if err != nil || full.ReviewedAt == nil {
						b.Fatalf("paper %s: %v", p.ID, err)
					}
					o.reviewLat = append(o.reviewLat, full.ReviewedAt.Sub(full.CreatedAt).Seconds())
					if full.ReviewedAt.After(last) {
						last = *full.ReviewedAt
					}
					if p.Breakthrough {
						o.breaks++
					}
					rs, _ := cs.st.ListReviews(b.Context(), p.ID)
					o.reviews += len(rs)
				}
				o.hours = last.Sub(start).Hours()
				sum := cs.summary(v)
				o.best, o.bestTest = sum.Best.Metric, sum.Best.TestMetric
				rows := cs.allExperiments(v.ID)
				sort.SliceStable(rows, func(i, j int) bool { return rows[i].CreatedAt.Before(rows[j].CreatedAt) })
				for _, r := range rows {
					if r.Baseline {
						continue
					}
					o.research++
					var sr receipt.Signed
					_ = json.Unmarshal(r.Record, &sr)
					if strings.Contains(sr.Receipt.Hypothesis, "breakthrough") {
						o.citing++
					}
				}
				res[evolve] = append(res[evolve], o)
			}
		}
		c1, s1, b1 := archiveLatency(b)
		n := c1 - c0
		if n > 0 {
			b.Logf("archive commit latency: %d commits, mean %.2f s, p50 <= %.1f s, p90 <= %.1f s, p99 <= %.1f s",
				n, (s1-s0)/float64(n), quantileBound(b0, b1, n, 0.5), quantileBound(b0, b1, n, 0.9), quantileBound(b0, b1, n, 0.99))
		}
	}
	var lat []float64
	var papers, reviews int
	var hours float64
	fmt.Printf("\ndomain %s\n| seed | evolve on: best val (test) | evolve off: best val (test) | breakthroughs on / off | proposals citing a breakthrough on / off |\n|---|---|---|---|---|\n", domain)
	var mOn, mOff, tOn, tOff float64
	for i, seed := range seeds {
		on, off := res[true][i], res[false][i]
		fmt.Printf("| %d | %.4f (%.4f) | %.4f (%.4f) | %d / %d | %d of %d / %d of %d |\n", seed, on.best, on.bestTest, off.best, off.bestTest,
			on.breaks, off.breaks, on.citing, on.research, off.citing, off.research)
		mOn += on.best / float64(len(seeds))
		mOff += off.best / float64(len(seeds))
		tOn += on.bestTest / float64(len(seeds))
		tOff += off.bestTest / float64(len(seeds))
		for _, o := range []outcome{on, off} {
			lat = append(lat, o.reviewLat...)
			papers += o.papers
			reviews += o.reviews
			hours += o.hours
		}
	}
	fmt.Printf("| mean | %.4f (%.4f) | %.4f (%.4f) | | |\n\n", mOn, tOn, mOff, tOff)
	fmt.Printf("papers %d, reviews %d over %.3f campaign hours: %.0f papers/h, %.0f reviews/h; review latency p50 %.2f s, p90 %.2f s, max %.2f s\n",
		papers, reviews, hours, float64(papers)/hours, float64(reviews)/hours, percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 1))
}
