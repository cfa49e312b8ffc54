package noise

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// The judgement of a result against the campaign's incumbent best.
//
// Two sources of uncertainty decide whether a gain is real:
//
//   - the evaluation itself: the metric is an average over a finite set of
//     items (validation queries, test cases, evaluation segments, months of
//     returns), so a config can look better on these items by chance. When
//     both results carry per-item scores on the same items, the gain is
//     tested by a paired test over the items: a paired t-test of the mean
//     difference for mean metrics, and a paired block bootstrap (months as
//     blocks) of the Sharpe-ratio difference for finance. Results on other
//     items (another universe or suite) get the unpaired versions (Welch's
//     SE; independent bootstraps);
//   - the training seed: where training is stochastic (ML), the same config
//     scores differently under another seed. The baseline's seed spread
//     (the noise floor, N runs, N-1 degrees of freedom) gives it; a
//     difference of two single runs has sqrt(2) times that spread.
//
// Multiple testing: a campaign makes many comparisons, and the best of
// many noisy tries looks good by chance. We control the family-wise error
// rate (the chance of signing even one false "new best" in the whole
// campaign) at Alpha with a Bonferroni split over the campaign's planned
// trials m (agents x experiments): each comparison is judged at Alpha/m.
// We chose the family-wise rate over a false-discovery rate because a new
// best is acted on at once (agents build on it and it is signed into the
// network's record), so one false best is costly; and Bonferroni over a
// planned m, unlike a threshold that grows with the trials made so far,
// holds exactly for sequential, dependent tests and judges the first and
// the last trial alike.
//
// Confirmation runs (C fresh seeds) are independent evidence about the
// seed term only (they see the same items), so the two terms are corrected
// differently: the item term at Alpha/m, and the seed term at
// (Alpha/m)^(1/(C+1)), because the candidate and each of its C
// confirmations must pass it independently. With C = 2 and m = 40 that is
// about 0.11 per run instead of 0.00125, which is what lets a stochastic
// domain confirm a real gain at all with a 3-seed floor.
//
// The threshold is sqrt((qItems*seItems)^2 + (qSeed*sdSeed)^2), each q the
// Student-t quantile at its level and degrees of freedom: each term alone
// is its exact test, and the root-sum-square lies between the larger term
// and their sum.

// DefaultAlpha is the campaign-wide family-wise error rate.
const DefaultAlpha = 0.05

// BootstrapResamples is the number of paired bootstrap resamples for
// non-mean metrics.
const BootstrapResamples = 2000

// JudgeInput is one comparison.
type JudgeInput struct {
	Candidate, Best float64
	Dir             domains.Direction
	// CandItems, BestItems are the per-item scores (either nil: no paired
	// item term).
	CandItems, BestItems *domains.Items
	// SeedSD is the noise floor's seed spread over SeedN runs.
	SeedSD float64
	SeedN  int
	// Alpha is the family-wise rate (<= 0: DefaultAlpha); Trials the
	// campaign's planned comparisons (< 1: 1); Confirmations the fresh-seed
	// runs each candidate must also pass.
	Alpha         float64
	Trials        int
	Confirmations int
	// Seed makes the bootstrap deterministic.
	Seed uint64
}

// Judgement is the interval a result was judged by; it goes on the receipt.
type Judgement struct {
	Gain      float64 `json:"gain"`      // direction-aware: > 0 is better
	Threshold float64 `json:"threshold"` // the gain must exceed it
	Lower     float64 `json:"lower"`     // gain - threshold
	Pass      bool    `json:"pass"`
	// Method: "paired-t", "paired-bootstrap" (items) or "seeds" (no items
	// to pair), "+seeds" appended when the seed term is non-zero.
	Method        string  `json:"method"`
	Items         int     `json:"items"`
	ItemsSE       float64 `json:"itemsSE"`
	ItemsQ        float64 `json:"itemsQ"`
	SeedSD        float64 `json:"seedSD"` // of the difference: sqrt(2) x the floor's SD
	SeedDF        int     `json:"seedDF"`
	SeedQ         float64 `json:"seedQ"`
	Alpha         float64 `json:"alpha"`
	Trials        int     `json:"trials"`
	Confirmations int     `json:"confirmations"`
}

// Judge decides whether in.Candidate beats in.Best beyond the evaluation's
// and the seeds' uncertainty, corrected for the campaign's comparisons. A
// non-finite candidate never passes; a non-finite best (none yet) is
// beaten by any finite candidate.
func Judge(in JudgeInput) Judgement {
	alpha := in.Alpha
	if !(alpha > 0 && alpha < 1) {
		alpha = DefaultAlpha
	}
	m := max(in.Trials, 1)
	c := max(in.Confirmations, 0)
	j := Judgement{Alpha: alpha, Trials: m, Confirmations: c}
	if !finite(in.Candidate) {
		j.Method = "none"
		return j
	}
	if !finite(in.Best) {
		j.Method, j.Pass = "none", true
		return j
	}
	j.Gain = gain(in.Candidate, in.Best, in.Dir)
	level := alpha / float64(m)
	var terms float64
	j.Method = "seeds"
	if se, df, method, ok := itemsSE(in); ok {
		j.Method, j.Items, j.ItemsSE = method, in.CandItems.Len(), se
		if se > 0 {
			j.ItemsQ = tQuantile(1-level, float64(df))
			terms += sq(j.ItemsQ * se)
		}
	}
	if in.SeedSD > 0 && in.SeedN >= 2 && finite(in.SeedSD) {
		j.SeedSD = math.Sqrt2 * in.SeedSD
		j.SeedDF = in.SeedN - 1
		seedLevel := math.Pow(level, 1/float64(c+1))
		j.SeedQ = tQuantile(1-seedLevel, float64(j.SeedDF))
		terms += sq(j.SeedQ * j.SeedSD)
		if j.Method != "seeds" {
			j.Method += "+seeds"
		}
	}
	j.Threshold = math.Sqrt(terms)
	j.Lower = j.Gain - j.Threshold
	j.Pass = j.Gain > j.Threshold
	return j
}

// itemsSE is the standard error of the metric difference over the paired
// items, its degrees of freedom and the method; ok false when the results
// cannot be paired.
func itemsSE(in JudgeInput) (se float64, df int, method string, ok bool) {
	a, b := in.CandItems, in.BestItems
	if a == nil || b == nil || a.Agg != b.Agg || a.Len() < 2 || b.Len() < 2 {
		return 0, 0, "", false
	}
	for _, v := range a.Values {
		if !finite(v) {
			return 0, 0, "", false
		}
	}
	for _, v := range b.Values {
		if !finite(v) {
			return 0, 0, "", false
		}
	}
	if a.Key != b.Key || len(a.Values) != len(b.Values) {
		// Other items (another universe, suite or split): an unpaired test.
		switch a.Agg {
		case domains.ItemsMean:
			va, vb := meanVar(a.Values), meanVar(b.Values)
			return math.Sqrt(va + vb), min(a.Len(), b.Len()) - 1, "unpaired-t", true
		case domains.ItemsSharpe:
			sa, sb := bootstrapSharpeSE(a, nil, in.Seed), bootstrapSharpeSE(b, nil, in.Seed+1)
			return math.Sqrt(sa*sa + sb*sb), min(a.Len(), b.Len()) - 1, "unpaired-bootstrap", true
		}
		return 0, 0, "", false
	}
	n := a.Len()
	switch a.Agg {
	case domains.ItemsMean:
		// Paired t: the SE of the mean difference.
		var mean float64
		for i := range n {
			mean += a.Values[i] - b.Values[i]
		}
		mean /= float64(n)
		var ss float64
		for i := range n {
			ss += sq(a.Values[i] - b.Values[i] - mean)
		}
		return math.Sqrt(ss / float64(n-1) / float64(n)), n - 1, "paired-t", true
	case domains.ItemsSharpe:
		return bootstrapSharpeSE(a, b, in.Seed), n - 1, "paired-bootstrap", true
	}
	return 0, 0, "", false
}

// bootstrapSharpeSE resamples months (blocks of daily returns, paired: the
// same months for both) and returns the standard deviation of the Sharpe
// difference a - b over BootstrapResamples resamples; with b nil, of a's
// Sharpe ratio alone.
func bootstrapSharpeSE(a, b *domains.Items, seed uint64) float64 {
	n := a.Len()
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	var sum, sumsq float64
	for range BootstrapResamples {
		var ac, bc [3]float64
		for range n {
			k := rng.IntN(n)
			for t := range 3 {
				ac[t] += a.Values[3*k+t]
				if b != nil {
					bc[t] += b.Values[3*k+t]
				}
			}
		}
		d := sharpeOf(ac, a.Scale)
		if b != nil {
			d -= sharpeOf(bc, b.Scale)
		}
		sum += d
		sumsq += d * d
	}
	B := float64(BootstrapResamples)
	mean := sum / B
	v := (sumsq - B*mean*mean) / (B - 1)
	return math.Sqrt(max(v, 0))
}

// sharpeOf is mean/sd*scale of (n, sum, sumsq) with the sample sd; 0 when
// undefined.
func sharpeOf(s [3]float64, scale float64) float64 {
	n, sum, ss := s[0], s[1], s[2]
	if n < 2 {
		return 0
	}
	mean := sum / n
	v := (ss - n*mean*mean) / (n - 1)
	if v <= 1e-24 {
		return 0
	}
	if scale == 0 {
		scale = 1
	}
	return mean / math.Sqrt(v) * scale
}

// SharpeOfItems is the metric of ItemsSharpe items (the aggregation the
// bootstrap resamples): it reproduces the domain's Sharpe ratio.
func SharpeOfItems(it *domains.Items) float64 {
	var s [3]float64
	for k := range it.Len() {
		for t := range 3 {
			s[t] += it.Values[3*k+t]
		}
	}
	return sharpeOf(s, it.Scale)
}

// BootstrapSeed is a deterministic bootstrap seed for a comparison named by
// parts (campaign, agent, run).
func BootstrapSeed(parts ...any) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		fmt.Fprint(h, p)
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// tQuantile is the p-quantile of Student's t with df degrees of freedom
// (df <= 0 or non-finite: the normal's).
func tQuantile(p, df float64) float64 {
	if !(df > 0) || math.IsInf(df, 0) {
		return distuv.UnitNormal.Quantile(p)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(p)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func sq(x float64) float64 { return x * x }

// meanVar is the squared standard error of the mean of v.
func meanVar(v []float64) float64 {
	n := float64(len(v))
	var m float64
	for _, x := range v {
		m += x
	}
	m /= n
	var ss float64
	for _, x := range v {
		ss += sq(x - m)
	}
	return ss / (n - 1) / n
}
