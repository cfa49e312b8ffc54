package noise

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

func meanItems(key string, v []float64) *domains.Items {
	return &domains.Items{Agg: domains.ItemsMean, Key: key, Values: v}
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func TestTQuantile(t *testing.T) {
	for _, c := range []struct{ p, df, want float64 }{
		{0.975, 2, 4.302653}, {0.975, 10, 2.228139}, {0.95, 44, 1.680230}, {0.975, 0, 1.959964},
	} {
		if got := tQuantile(c.p, c.df); math.Abs(got-c.want) > 1e-5 {
			t.Errorf("t(%v, %v) = %v, want %v", c.p, c.df, got, c.want)
		}
	}
}

// A tiny deterministic gain on 45 queries (the case that used to be signed
// as a new best with a zero-SD floor) does not pass; a large one does.
func TestJudgeSearchLikeGain(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	best := make([]float64, 45)
	for i := range best {
		best[i] = rng.Float64()
	}
	small := make([]float64, 45)
	big := make([]float64, 45)
	for i := range best {
		// Per-query differences of sd ~0.05 around a mean gain.
		small[i] = best[i] + 0.004 + 0.05*rng.NormFloat64()
		big[i] = best[i] + 0.08 + 0.05*rng.NormFloat64()
	}
	in := JudgeInput{Best: mean(best), Dir: domains.Maximize, BestItems: meanItems("q", best), SeedSD: 0, SeedN: 3, Trials: 40}
	in.Candidate, in.CandItems = mean(small), meanItems("q", small)
	if j := Judge(in); j.Pass || j.Method != "paired-t" || j.Items != 45 || !(j.Threshold > 0.02) {
		t.Fatalf("small gain judged %+v", j)
	}
	in.Candidate, in.CandItems = mean(big), meanItems("q", big)
	if j := Judge(in); !j.Pass || j.Lower <= 0 {
		t.Fatalf("big gain judged %+v", j)
	}
	// Items of other queries are not paired: an unpaired test, wider.
	in.CandItems = meanItems("other", big)
	in.Candidate = mean(big)
	paired := Judge(JudgeInput{Candidate: mean(big), Best: in.Best, Dir: domains.Maximize, CandItems: meanItems("q", big), BestItems: in.BestItems, Trials: 40})
	if j := Judge(in); j.Method != "unpaired-t" || !(j.Threshold > paired.Threshold) {
		t.Fatalf("unpaired judged %+v (paired threshold %v)", j, paired.Threshold)
	}
}

// Under the null (candidate and best drawn from the same distribution), the
// campaign-wide rate of false passes stays under alpha.
func TestJudgeNullFamilyWise(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const campaigns, trials = 400, 20
	falseCampaigns := 0
	for range campaigns {
		hit := false
		for range trials {
			b := make([]float64, 30)
			c := make([]float64, 30)
			for i := range b {
				base := rng.Float64()
				b[i] = base + 0.1*rng.NormFloat64()
				c[i] = base + 0.1*rng.NormFloat64()
			}
			j := Judge(JudgeInput{Candidate: mean(c), Best: mean(b), Dir: domains.Maximize,
				CandItems: meanItems("k", c), BestItems: meanItems("k", b), Trials: trials})
			hit = hit || j.Pass
		}
		if hit {
			falseCampaigns++
		}
	}
	if rate := float64(falseCampaigns) / campaigns; rate > 0.08 {
		t.Fatalf("family-wise false-pass rate %.3f, want <= alpha 0.05 (+MC slack)", rate)
	}
}

// The seed term: with confirmations, each run passes at a looser level,
// but all C+1 must pass; the product stays under alpha/m.
func TestJudgeSeedTermConfirmations(t *testing.T) {
	base := JudgeInput{Candidate: 1.90, Best: 2.00, Dir: domains.Minimize, SeedSD: 0.02, SeedN: 3, Trials: 40}
	c0 := base
	j0 := Judge(c0)
	base.Confirmations = 2
	j2 := Judge(base)
	if j0.Method != "seeds" || j2.Method != "seeds" {
		t.Fatalf("methods %q %q", j0.Method, j2.Method)
	}
	if !(j2.Threshold < j0.Threshold) {
		t.Fatalf("confirmations should lower the per-run threshold: C=0 %v, C=2 %v", j0.Threshold, j2.Threshold)
	}
	level := 0.05 / 40
	per := math.Pow(level, 1.0/3)
	p := 1 - distT(j2.SeedQ, 2)
	if math.Abs(p-per) > 1e-6 || math.Abs(p*p*p-level) > 1e-6 {
		t.Fatalf("per-run level %v, want %v (cube = alpha/m)", p, per)
	}
	if !j2.Pass || j0.Pass {
		t.Fatalf("gain 0.1 vs sd 0.02: C=2 %+v, C=0 %+v", j2, j0)
	}
}

func distT(x, df float64) float64 {
	// CDF by bisection on the quantile (tests only).
	lo, hi := 0.5, 1.0
	for range 200 {
		mid := (lo + hi) / 2
		if tQuantile(mid, df) < x {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func TestJudgeEdges(t *testing.T) {
	if j := Judge(JudgeInput{Candidate: math.NaN(), Best: 1}); j.Pass {
		t.Fatal("NaN candidate passed")
	}
	if j := Judge(JudgeInput{Candidate: 1, Best: math.Inf(1)}); !j.Pass {
		t.Fatal("no best yet: any finite candidate passes")
	}
	// Non-finite items are not paired.
	a := meanItems("k", []float64{1, math.NaN(), 3})
	b := meanItems("k", []float64{1, 2, 3})
	if j := Judge(JudgeInput{Candidate: 2, Best: 1, CandItems: a, BestItems: b, Dir: domains.Maximize}); j.Method != "seeds" {
		t.Fatalf("NaN items paired: %+v", j)
	}
}

func sharpeItems(key string, daily [][]float64, scale float64) *domains.Items {
	it := &domains.Items{Agg: domains.ItemsSharpe, Key: key, Scale: scale}
	for _, m := range daily {
		var s, ss float64
		for _, x := range m {
			s += x
			ss += x * x
		}
		it.Values = append(it.Values, float64(len(m)), s, ss)
	}
	return it
}

func TestSharpeItemsBootstrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var a, b [][]float64
	var flat []float64
	for range 60 {
		var ma, mb []float64
		for range 21 {
			common := 0.01 * rng.NormFloat64()
			ma = append(ma, 0.0008+common+0.002*rng.NormFloat64())
			mb = append(mb, 0.0002+common+0.002*rng.NormFloat64())
		}
		flat = append(flat, ma...)
		a, b = append(a, ma), append(b, mb)
	}
	ia, ib := sharpeItems("m", a, math.Sqrt(252)), sharpeItems("m", b, math.Sqrt(252))
	// The items reproduce the plain Sharpe ratio of the days.
	mu := mean(flat)
	var v float64
	for _, x := range flat {
		v += (x - mu) * (x - mu)
	}
	want := mu / math.Sqrt(v/float64(len(flat)-1)) * math.Sqrt(252)
	if got := SharpeOfItems(ia); math.Abs(got-want) > 1e-9 {
		t.Fatalf("SharpeOfItems %v, want %v", got, want)
	}
	in := JudgeInput{Candidate: SharpeOfItems(ia), Best: SharpeOfItems(ib), Dir: domains.Maximize,
		CandItems: ia, BestItems: ib, Trials: 10, Seed: 7}
	j1, j2 := Judge(in), Judge(in)
	if j1 != j2 {
		t.Fatal("bootstrap is not deterministic for one seed")
	}
	if j1.Method != "paired-bootstrap" || j1.ItemsSE <= 0 || j1.Items != 60 {
		t.Fatalf("judged %+v", j1)
	}
	// Paired: the common factor cancels, so the SE of the difference is
	// well below the SE of either Sharpe ratio alone (~sqrt(252/1260) ≈ 0.45).
	if j1.ItemsSE > 0.4 {
		t.Fatalf("paired SE %v not below the unpaired scale", j1.ItemsSE)
	}
	// On other months (another key): independent bootstraps, and the
	// common factor no longer cancels.
	ib.Key = "other"
	if ju := Judge(in); ju.Method != "unpaired-bootstrap" || !(ju.ItemsSE > 2*j1.ItemsSE) {
		t.Fatalf("unpaired judged %+v (paired SE %v)", ju, j1.ItemsSE)
	}
}
