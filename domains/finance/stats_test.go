package finance

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func TestSharpeToy(t *testing.T) {
	r := []float64{0.01, -0.02, 0.03, 0}
	// mean 0.005; deviations 0.005 -0.025 0.025 -0.005; squares sum to
	// 0.0013; sample variance 0.0013/3.
	want := 0.005 / math.Sqrt(0.0013/3) * math.Sqrt(252)
	if got := Sharpe(r, 0); !near(got, want, 1e-12) {
		t.Fatalf("Sharpe = %v, want %v", got, want)
	}
	// A daily risk-free rate shifts the mean, not the sd.
	want = (0.005 - 0.001) / math.Sqrt(0.0013/3) * math.Sqrt(252)
	if got := Sharpe(r, 0.001); !near(got, want, 1e-12) {
		t.Fatalf("Sharpe(rf) = %v, want %v", got, want)
	}
	if Sharpe([]float64{0.01}, 0) != 0 || Sharpe([]float64{0.01, 0.01, 0.01}, 0) != 0 {
		t.Fatal("degenerate series should give Sharpe 0")
	}
}

func TestCAGRAndDrawdownToy(t *testing.T) {
	// 504 days (two years) that quadruple the equity: 100% a year.
	r := make([]float64, 504)
	for i := range r {
		r[i] = math.Pow(4, 1.0/504) - 1
	}
	if got := CAGR(r); !near(got, 1, 1e-12) {
		t.Fatalf("CAGR = %v, want 1", got)
	}
	// Equity 1.1, 0.55, 0.66, 1.32: worst fall is 1.1 -> 0.55 = 50%.
	if got := MaxDrawdown([]float64{0.1, -0.5, 0.2, 1.0}); !near(got, 0.5, 1e-12) {
		t.Fatalf("MaxDrawdown = %v, want 0.5", got)
	}
	// Equity 0.9, 0.99, 0.792: peak is the starting 1, trough 0.792.
	if got := MaxDrawdown([]float64{-0.1, 0.1, -0.2}); !near(got, 0.208, 1e-12) {
		t.Fatalf("MaxDrawdown = %v, want 0.208", got)
	}
	if MaxDrawdown([]float64{0.1, 0.2}) != 0 {
		t.Fatal("rising equity has no drawdown")
	}
	if CAGR([]float64{-1, 0.5}) != -1 {
		t.Fatal("wiped-out equity should give CAGR -1")
	}
}
