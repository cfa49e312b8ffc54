package search

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestGain(t *testing.T) {
	want := map[int]float64{1: 4, 2: 3, 3: 2, 4: 1, -1: 0, 0: 0, 5: 0}
	for code, g := range want {
		if got := Gain(code); got != g {
			t.Errorf("Gain(%d) = %v, want %v", code, got, g)
		}
	}
}

func TestMetricsToy(t *testing.T) {
	// Judged: doc 1 gain 3, doc 2 gain 2, doc 3 gain 0 (judged, not
	// relevant), doc 4 gain 1. Ranking: 2, 5 (unjudged), 1, 4.
	gains := map[int]float64{1: 3, 2: 2, 3: 0, 4: 1}
	ranking := []int{2, 5, 1, 4}

	// DCG@10  = 2/log2(2) + 0/log2(3) + 3/log2(4) + 1/log2(5) = 2 + 1.5 + 0.430677 = 3.930677
	// IDCG@10 = 3/log2(2) + 2/log2(3) + 1/log2(4)              = 3 + 1.261860 + 0.5 = 4.761860
	if got := NDCGAt(ranking, gains, 10); !near(got, 3.930677/4.761860) {
		t.Errorf("NDCG@10 = %v, want %v", got, 3.930677/4.761860)
	}
	// NDCG@2 = 2 / (3 + 1.261860)
	if got := NDCGAt(ranking, gains, 2); !near(got, 2/4.261860) {
		t.Errorf("NDCG@2 = %v, want %v", got, 2/4.261860)
	}
	// AP: relevant docs 1, 2, 4 found at ranks 3, 1, 4 -> (1/1 + 2/3 + 3/4)/3.
	if got := AveragePrecision(ranking, gains); !near(got, (1+2.0/3+0.75)/3) {
		t.Errorf("AP = %v, want %v", got, (1+2.0/3+0.75)/3)
	}
	// P@10 counts missing positions as non-relevant: 3/10.
	if got := PrecisionAt(ranking, gains, 10); !near(got, 0.3) {
		t.Errorf("P@10 = %v, want 0.3", got)
	}
	if got := PrecisionAt(ranking, gains, 2); !near(got, 0.5) {
		t.Errorf("P@2 = %v, want 0.5", got)
	}
	// Unretrieved relevant documents count as zero precision: (1/2)/3.
	if got := AveragePrecision([]int{5, 1}, gains); !near(got, 0.5/3) {
		t.Errorf("AP partial = %v, want %v", got, 0.5/3)
	}
	// Perfect ranking.
	if got := NDCGAt([]int{1, 2, 4}, gains, 10); !near(got, 1) {
		t.Errorf("ideal NDCG = %v", got)
	}
	// No relevant documents: everything is 0.
	none := map[int]float64{7: 0}
	if NDCGAt(ranking, none, 10) != 0 || AveragePrecision(ranking, none) != 0 || PrecisionAt(ranking, none, 10) != 0 {
		t.Error("metrics with no relevant documents should be 0")
	}
	if NDCGAt(nil, gains, 10) != 0 || AveragePrecision(nil, gains) != 0 {
		t.Error("empty ranking should score 0")
	}
}
