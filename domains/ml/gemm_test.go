package ml

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func naiveMM(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = s
		}
	}
	return out
}

func TestGemmMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {65, 130, 300}, {128, 4, 513}, {2, 129, 1}, {67, 9, 260}}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				a := make([]float32, m*k)
				b := make([]float32, k*n)
				for i := range a {
					a[i] = float32(r.NormFloat64())
				}
				for i := range b {
					b[i] = float32(r.NormFloat64())
				}
				lda, ldb := k, n
				if ta {
					lda = m
				}
				if tb {
					ldb = k
				}
				want := naiveMM(ta, tb, m, n, k, a, lda, b, ldb)
				c := make([]float32, m*n)
				for i := range c {
					c[i] = 1
				}
				gemm(ta, tb, m, n, k, a, lda, b, ldb, c, n, true)
				for i := range c {
					if d := math.Abs(float64(c[i]) - 1 - want[i]); d > 1e-3*math.Sqrt(float64(k)) {
						t.Fatalf("shape %v ta=%v tb=%v: c[%d]=%v want %v", s, ta, tb, i, c[i]-1, want[i])
					}
				}
				gemm(ta, tb, m, n, k, a, lda, b, ldb, c, n, false)
				for i := range c {
					if d := math.Abs(float64(c[i]) - want[i]); d > 1e-3*math.Sqrt(float64(k)) {
						t.Fatalf("overwrite shape %v ta=%v tb=%v: c[%d]=%v want %v", s, ta, tb, i, c[i], want[i])
					}
				}
			}
		}
	}
}

func TestGemmDeterministicAcrossProcs(t *testing.T) {
	m, n, k := 200, 150, 700
	r := rand.New(rand.NewPCG(3, 4))
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	for i := range a {
		a[i] = float32(r.NormFloat64())
	}
	for i := range b {
		b[i] = float32(r.NormFloat64())
	}
	c1 := make([]float32, m*n)
	c2 := make([]float32, m*n)
	old := runtime.GOMAXPROCS(1)
	gemm(false, false, m, n, k, a, k, b, n, c1, n, false)
	runtime.GOMAXPROCS(4)
	gemm(false, false, m, n, k, a, k, b, n, c2, n, false)
	runtime.GOMAXPROCS(old)
	for i := range c1 {
		if c1[i] != c2[i] {
			t.Fatalf("element %d differs: %v vs %v", i, c1[i], c2[i])
		}
	}
}
