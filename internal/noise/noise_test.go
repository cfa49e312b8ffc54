package noise

import (
	"math"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestMeasure(t *testing.T) {
	cases := []struct {
		name     string
		values   []float64
		k        float64
		mean, sd float64
		wantK    float64
		wantErr  bool
	}{
		{"two", []float64{1, 3}, 2, 2, math.Sqrt2, 2, false},
		{"classic", []float64{2, 4, 4, 4, 5, 5, 7, 9}, 3, 5, math.Sqrt(32.0 / 7), 3, false},
		{"constant", []float64{2.5, 2.5, 2.5}, 0, 2.5, 0, DefaultK, false},
		{"default k", []float64{1, 2, 3}, -1, 2, 1, DefaultK, false},
		{"one value", []float64{1}, 2, 0, 0, 0, true},
		{"empty", nil, 2, 0, 0, 0, true},
		{"nan", []float64{1, math.NaN()}, 2, 0, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Measure(c.values, c.k)
			if c.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", f)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !near(f.Mean, c.mean) || !near(f.SD, c.sd) || f.N != len(c.values) || f.K != c.wantK {
				t.Fatalf("got %+v, want mean %v sd %v k %v", f, c.mean, c.sd, c.wantK)
			}
			if !near(f.Threshold(), f.K*f.SD) {
				t.Fatalf("threshold %v", f.Threshold())
			}
		})
	}
}

func TestBeats(t *testing.T) {
	f := Floor{Mean: 2, SD: 0.05, N: 5, K: 2} // threshold 0.1
	zero := Floor{Mean: 2, SD: 0, N: 3, K: 2}
	cases := []struct {
		name       string
		f          Floor
		cand, best float64
		dir        domains.Direction
		want       bool
	}{
		{"min clear win", f, 1.8, 2.0, domains.Minimize, true},
		{"min within noise", f, 1.95, 2.0, domains.Minimize, false},
		{"min just over threshold", f, 1.875, 2.0, domains.Minimize, true},
		{"min worse", f, 2.5, 2.0, domains.Minimize, false},
		{"max clear win", f, 0.9, 0.7, domains.Maximize, true},
		{"max within noise", f, 0.75, 0.7, domains.Maximize, false},
		{"max worse", f, 0.5, 0.7, domains.Maximize, false},
		{"max lower is not better", f, 0.4, 0.7, domains.Maximize, false},
		{"sd0 min strict", zero, 1.999, 2.0, domains.Minimize, true},
		{"sd0 min equal", zero, 2.0, 2.0, domains.Minimize, false},
		{"sd0 max strict", zero, 0.71, 0.7, domains.Maximize, true},
		{"sd0 max equal", zero, 0.7, 0.7, domains.Maximize, false},
		{"nan candidate", f, math.NaN(), 2, domains.Minimize, false},
		{"no best yet", f, 3, math.Inf(1), domains.Minimize, true},
	}
	for _, c := range cases {
		if got := c.f.Beats(c.cand, c.best, c.dir); got != c.want {
			t.Errorf("%s: Beats(%v, %v, %s) = %v, want %v", c.name, c.cand, c.best, c.dir, got, c.want)
		}
	}
}

func TestImprovement(t *testing.T) {
	cases := []struct {
		cand, best float64
		dir        domains.Direction
		want       float64
	}{
		{1.8, 2.0, domains.Minimize, 0.1},
		{2.2, 2.0, domains.Minimize, -0.1},
		{0.9, 0.6, domains.Maximize, 0.5},
		{0.3, 0.6, domains.Maximize, -0.5},
		{-1.5, -1.0, domains.Minimize, 0.5},
		{-0.5, -1.0, domains.Maximize, 0.5},
		{0.25, 0, domains.Maximize, 0.25},
		{0.25, 0, domains.Minimize, -0.25},
		{1, math.NaN(), domains.Minimize, 0},
		{math.Inf(1), 1, domains.Maximize, 0},
	}
	for _, c := range cases {
		if got := Improvement(c.cand, c.best, c.dir); !near(got, c.want) {
			t.Errorf("Improvement(%v, %v, %s) = %v, want %v", c.cand, c.best, c.dir, got, c.want)
		}
	}
}

func TestMeasureOrderIndependent(t *testing.T) {
	a, _ := Measure([]float64{2.4675, 2.5412, 2.50296}, 2)
	b, _ := Measure([]float64{2.50296, 2.5412, 2.4675}, 2)
	c, _ := Measure([]float64{2.5412, 2.4675, 2.50296}, 2)
	if a != b || b != c {
		t.Fatalf("order changed the floor: %+v %+v %+v", a, b, c)
	}
}
