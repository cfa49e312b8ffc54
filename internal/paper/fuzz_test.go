package paper

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Papers and reviews arrive from other nodes (gossip, the site database
// they were stored in) as JSON; these targets decode them as the node
// does and check what is built on them.

// fuzzPaper is a realistic signed paper (Synthesize over a window of
// receipts) and the receipts a reviewer holds.
func fuzzPaper(tb testing.TB) (Signed, map[string]receipt.Signed) {
	k := identity.FromSeed(make([]byte, 32))
	var w []receipt.Signed
	var parent *string
	for run, v := range []float64{1.70, 1.50, 1.65} {
		s, err := receipt.Sign(receipt.Receipt{
			Project: "p", RunNumber: run + 1, Timestamp: int64(run+1) * 1000, Hypothesis: "try " + string(rune('a'+run)),
			Config: map[string]any{"lr": float64(run + 1)}, Domain: "ml", Campaign: "c", Agent: "agent-0", Seed: int64(run + 1),
			Metric:     receipt.MetricValue{Name: "val_loss", Direction: "minimize", Value: v, TestValue: v + 0.01},
			NoiseFloor: &receipt.NoiseFloor{Mean: floor.Mean, SD: floor.SD, N: floor.N, Threshold: 2 * floor.SD},
			InspiredBy: parent,
		}, k)
		if err != nil {
			tb.Fatal(err)
		}
		parent = &s.ID
		w = append(w, s)
	}
	d, err := Synthesize(facts(w), time.UnixMilli(5000))
	if err != nil {
		tb.Fatal(err)
	}
	sp, err := Sign(d.Paper, k)
	if err != nil {
		tb.Fatal(err)
	}
	byID := map[string]receipt.Signed{}
	for _, s := range w {
		byID[s.ID] = s
	}
	return sp, byID
}

// FuzzSignedPaper: any JSON decodes into a paper or fails; a paper that
// verifies still verifies, with the same id, after the JSON round trip of
// storing and reloading it. Whatever the paper, the rubric scores it 1-10
// with every criterion within its range, and the review a reviewer node
// builds from that assessment can be signed.
func FuzzSignedPaper(f *testing.F) {
	sp, receipts := fuzzPaper(f)
	good, _ := json.Marshal(sp)
	f.Add(good, 1.51, true)
	f.Add(good, 1.9, true)
	f.Add(good, math.NaN(), true)
	f.Add(good, 0.0, false)
	huge := sp
	huge.Paper.Claim.FloorSD, huge.Paper.Claim.K = 1e308, 1e308
	b, _ := json.Marshal(huge)
	f.Add(b, 1e308, true)
	resigned, err := Sign(huge.Paper, identity.FromSeed(make([]byte, 32)))
	if err != nil {
		f.Fatal(err)
	}
	b, _ = json.Marshal(resigned)
	f.Add(b, -1e308, true)
	f.Add([]byte(strings.Replace(string(good), `"number":1`, `"number":1e3`, 1)), 1.5, true)
	for _, s := range []string{`{}`, `null`, `{"paper":{"receipts":null,"claim":{"value":1e308,"floorMean":-1e308}}}`, `{"paper":{"number":-1}}`} {
		f.Add([]byte(s), 1.5, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, observed float64, ran bool) {
		var s Signed
		if json.Unmarshal(data, &s) != nil {
			return
		}
		if s.Verify() == nil {
			again, err := json.Marshal(s)
			if err != nil {
				t.Fatalf("a verified paper does not marshal: %v", err)
			}
			var s2 Signed
			if err := json.Unmarshal(again, &s2); err != nil || s2.ID != s.ID || s2.Verify() != nil {
				t.Fatalf("a verified paper does not survive a JSON round trip: %v", err)
			}
		}
		// What ReviewPaper (package activities) does with it.
		rep := Reproduction{Receipt: s.Paper.Claim.Receipt, Claimed: s.Paper.Claim.Value, Ran: ran, Observed: observed, Seed: 7}
		if !ran {
			rep.Error = "the key receipt is not available"
		}
		k := s.Paper.Claim.K
		score, rubric, reasons := Assess(Assessment{Paper: s, Receipts: receipts, Reproduction: rep, K: k})
		if score < 1 || score > 10 {
			t.Fatalf("score %d", score)
		}
		for _, c := range rubric {
			if c.Points < 0 || c.Points > c.Max {
				t.Fatalf("criterion %+v", c)
			}
		}
		rep.Tolerance = Tolerance(s.Paper.Claim, k)
		if math.IsNaN(rep.Observed) || math.IsInf(rep.Observed, 0) {
			rep.Observed = 0
		}
		if _, err := SignReview(Review{PaperID: s.ID, Node: "n", Timestamp: 1, Score: score, Rubric: rubric, Reasons: reasons, Reproduction: rep},
			identity.FromSeed(make([]byte, 32))); err != nil {
			t.Fatalf("the review of this paper cannot be signed: %v", err)
		}
	})
}

// FuzzSignedReview: any JSON decodes into a review or fails; a review that
// verifies survives the JSON round trip with its id.
func FuzzSignedReview(f *testing.F) {
	sp, _ := fuzzPaper(f)
	sr, err := SignReview(Review{PaperID: sp.ID, Node: "12D3KooWANJNnmXFutNFVy1aRWs5XVtBpNoUTNxYw23TtPSdtf37", Timestamp: 5000, Score: 8,
		Rubric:       []Criterion{{Name: "integrity", Points: 3, Max: 3, Note: "ok"}},
		Reasons:      []string{"the reproduced result beats the noise floor by 5.3σ"},
		Reproduction: Reproduction{Receipt: sp.Paper.Claim.Receipt, Seed: 3, Ran: true, Claimed: 1.5, Observed: 1.51, Tolerance: 0.06}},
		identity.FromSeed(make([]byte, 32)))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(sr)
	f.Add(good)
	f.Add([]byte(strings.Replace(string(good), `"score":8`, `"score":9`, 1)))
	for _, s := range []string{`{}`, `null`, `{"review":{"rubric":null,"reasons":null}}`, `{"review":{"reproduction":{"seed":1e20}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s SignedReview
		if json.Unmarshal(data, &s) != nil || s.Verify() != nil {
			return
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("a verified review does not marshal: %v", err)
		}
		var s2 SignedReview
		if err := json.Unmarshal(again, &s2); err != nil || s2.ID != s.ID || s2.Verify() != nil {
			t.Fatalf("a verified review does not survive a JSON round trip: %v", err)
		}
	})
}
