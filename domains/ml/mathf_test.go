package ml

import (
	"math"
	"testing"
)

func TestExpfAccuracy(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 88.0; x += 0.0137 {
		got := float64(expf(float32(x)))
		want := math.Exp(float64(float32(x)))
		if e := math.Abs(got-want) / want; e > worst {
			worst = e
		}
	}
	if worst > 5e-7 {
		t.Fatalf("expf worst relative error %.3g", worst)
	}
	if expf(-200) != 0 || !math.IsInf(float64(expf(200)), 1) {
		t.Fatal("expf limits")
	}
	for _, y := range []float32{-30, -3, -0.5, 0, 0.1, 2, 40} {
		if d := math.Abs(float64(tanhf(y)) - math.Tanh(float64(y))); d > 3e-7 {
			t.Fatalf("tanhf(%v) off by %g", y, d)
		}
	}
}
