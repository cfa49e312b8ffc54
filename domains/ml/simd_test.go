package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// withSIMD runs fn with simdEnabled set to on (restoring it afterwards).
func withSIMD(on bool, fn func()) {
	old := simdEnabled
	simdEnabled = on
	defer func() { simdEnabled = old }()
	fn()
}

func needSIMD(t testing.TB) {
	t.Helper()
	if !haveSIMD {
		t.Skip("no SIMD kernels on this CPU/platform: only the scalar path exists")
	}
	if os.Getenv("HYPERSPACE_ML_SIMD") == "off" {
		t.Log("HYPERSPACE_ML_SIMD=off: forcing the SIMD path on for the comparison")
	}
}

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

// sameBits reports the first index where a and b differ bitwise, or -1.
// NaNs compare equal to each other whatever their sign and payload (which
// IEEE leaves to the hardware and Go to the compiler's operand order).
func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return i
		}
	}
	return -1
}

func bitsEq(t *testing.T, what string, a, b []float32) {
	t.Helper()
	if i := sameBits(a, b); i >= 0 {
		if len(a) != len(b) {
			t.Fatalf("%s: lengths %d vs %d", what, len(a), len(b))
		}
		t.Fatalf("%s: element %d differs: simd %v (%08x) scalar %v (%08x)", what, i, a[i], math.Float32bits(a[i]), b[i], math.Float32bits(b[i]))
	}
}

func f32eq(t *testing.T, what string, a, b float32) {
	t.Helper()
	if math.Float32bits(a) != math.Float32bits(b) && !(a != a && b != b) {
		t.Fatalf("%s: simd %v scalar %v", what, a, b)
	}
}

// both runs fn on the SIMD and the scalar path, each on fresh copies of
// the inputs made by mk, and returns the two outputs.
func both(mk func() [][]float32, fn func(v [][]float32)) (simd, scalar [][]float32) {
	withSIMD(true, func() { simd = mk(); fn(simd) })
	withSIMD(false, func() { scalar = mk(); fn(scalar) })
	return
}

func clone(vs ...[]float32) [][]float32 {
	out := make([][]float32, len(vs))
	for i, v := range vs {
		out[i] = append([]float32(nil), v...)
	}
	return out
}

// testLens covers the vector body, the 0-7 element tails and tiny inputs.
var testLens = []int{1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 40, 64, 65, 100, 257}

func TestKernelsSIMDMatchScalar(t *testing.T) {
	needSIMD(t)
	t.Run("avx2", func(t *testing.T) {
		old := useAVX512
		useAVX512 = false
		defer func() { useAVX512 = old }()
		testKernelsSIMD(t)
	})
	if haveAVX512 {
		t.Run("avx512", testKernelsSIMD)
	}
}

func testKernelsSIMD(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range testLens {
		x, y, z := randVec(r, n, 1), randVec(r, n, 2), randVec(r, n, 0.5)
		w, bb, o := randVec(r, n, 1), randVec(r, n, 1), randVec(r, n, 1)
		// Extreme values exercise the expf clamps (and NaN passthrough).
		big := randVec(r, n, 60)
		if n > 5 {
			big[1], big[2], big[3], big[4], big[5] = 100, -100, float32(math.NaN()), 88.72, -87.33
		}
		mu, rs := float32(0.3), float32(1.7)
		mk := func() [][]float32 { return clone(x, y, z, w, bb, o, big) }
		name := func(s string) string { return fmt.Sprintf("%s n=%d", s, n) }

		var s1, s2 [2]float32
		withSIMD(true, func() { s1[0], s1[1] = rowSum(x), rowSumSqDiff(x, mu) })
		withSIMD(false, func() { s2[0], s2[1] = rowSum(x), rowSumSqDiff(x, mu) })
		f32eq(t, name("rowSum"), s1[0], s2[0])
		f32eq(t, name("rowSumSqDiff"), s1[1], s2[1])
		withSIMD(true, func() { s1[0] = dot(x, y) })
		withSIMD(false, func() { s2[0] = dot(x, y) })
		f32eq(t, name("dot"), s1[0], s2[0])
		var d1, d2 float64
		withSIMD(true, func() { d1 = sumSq64(y) })
		withSIMD(false, func() { d2 = sumSq64(y) })
		if math.Float64bits(d1) != math.Float64bits(d2) {
			t.Fatalf("%s: %v vs %v", name("sumSq64"), d1, d2)
		}

		check := func(label string, fn func(v [][]float32), outs ...int) {
			t.Helper()
			a, b := both(mk, fn)
			for _, i := range outs {
				bitsEq(t, fmt.Sprintf("%s out%d", name(label), i), a[i], b[i])
			}
		}
		check("normApply", func(v [][]float32) { normApply(v[0], v[3], v[4], v[5], mu, rs) }, 5)
		check("normApplyNoBias", func(v [][]float32) { normApply(v[0], v[3], nil, v[5], mu, rs) }, 5)
		var p1, p2 [2]float32
		withSIMD(true, func() { v := mk(); p1[0], p1[1] = normBwdSums(v[0], v[1], v[3], v[5], mu, rs) })
		withSIMD(false, func() { v := mk(); p2[0], p2[1] = normBwdSums(v[0], v[1], v[3], v[5], mu, rs) })
		f32eq(t, name("normBwdSums sdh"), p1[0], p2[0])
		f32eq(t, name("normBwdSums sdhx"), p1[1], p2[1])
		check("normBwdSums tr", func(v [][]float32) { normBwdSums(v[0], v[1], v[3], v[5], mu, rs) }, 5)
		check("normBwdApply", func(v [][]float32) { normBwdApply(v[0], v[1], v[3], v[5], mu, rs, 0.01, -0.2) }, 5)
		check("geluFwd", func(v [][]float32) { geluFwd(v[1], v[4], v[5]) }, 4, 5)
		check("geluFwd big", func(v [][]float32) { geluFwd(v[6], v[4], v[5]) }, 4, 5)
		check("geluBwd", func(v [][]float32) { geluBwd(v[1], v[2], v[3], v[5]) }, 5)
		check("swigluFwd", func(v [][]float32) { swigluFwd(v[1], v[0], v[4], v[5]) }, 4, 5)
		check("swigluFwd big", func(v [][]float32) { swigluFwd(v[6], v[0], v[4], v[5]) }, 4, 5)
		check("swigluBwd", func(v [][]float32) { swigluBwd(v[1], v[0], v[2], v[3], v[4], v[5]) }, 4, 5)
		check("scaleMax", func(v [][]float32) { v[5][0] = scaleMax(v[0], 0.7) }, 0, 5)
		check("expSubSum", func(v [][]float32) { v[5][0] = expSubSum(v[6], 3) }, 6, 5)
		check("scaleVec", func(v [][]float32) { scaleVec(v[0], 1.3) }, 0)
		check("dsApply", func(v [][]float32) { dsApply(v[2], v[1], 0.4, 0.25) }, 1)
		check("addVec", func(v [][]float32) { addVec(v[0], v[1]) }, 0)
		check("adamW", func(v [][]float32) {
			for i := range v[2] {
				v[2][i] = float32(math.Abs(float64(v[2][i]))) // second moment >= 0
			}
			k := adamConsts{c1: 0.19, c2: 0.0975, eps: 1e-8, lr: 0.01, decay: 0.1, b1: 0.9, nb1: 1 - 0.9, b2: 0.95, nb2: 1 - 0.95}
			adamWVec(v[0], v[1], v[3], v[2], &k)
		}, 0, 2, 3)
	}
}

// TestFusedRowsMatchScalar checks the fused attention row kernels against
// the scalar composition, for every row length and capacity.
func TestFusedRowsMatchScalar(t *testing.T) {
	needSIMD(t)
	r := rand.New(rand.NewPCG(13, 14))
	for capn := 1; capn <= 40; capn++ {
		for n := 1; n <= capn; n++ {
			x := randVec(r, capn, 3)
			p := randVec(r, capn, 0.3)
			a, b := both(func() [][]float32 { return clone(x) }, func(v [][]float32) { softmaxRow(v[0], n, 0.37) })
			bitsEq(t, fmt.Sprintf("softmaxRow n=%d cap=%d", n, capn), a[0][:n], b[0][:n])
			a, b = both(func() [][]float32 { return clone(x) }, func(v [][]float32) { dsRow(p, v[0], n, 0.41) })
			bitsEq(t, fmt.Sprintf("dsRow n=%d cap=%d", n, capn), a[0][:n], b[0][:n])
		}
	}
}

func TestTransposeSIMD(t *testing.T) {
	needSIMD(t)
	r := rand.New(rand.NewPCG(15, 16))
	for _, sh := range [][2]int{{1, 1}, {8, 8}, {9, 17}, {64, 16}, {16, 64}, {23, 31}, {40, 8}, {7, 40}} {
		rows, cols := sh[0], sh[1]
		ld := cols + 3
		src := randVec(r, rows*ld, 1)
		a, b := both(func() [][]float32 { return [][]float32{make([]float32, rows*cols)} }, func(v [][]float32) { transposeInto(v[0], src, rows, cols, ld) })
		bitsEq(t, fmt.Sprintf("transpose %v", sh), a[0], b[0])
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				if b[0][j*rows+i] != src[i*ld+j] {
					t.Fatalf("transposeGo %v wrong at %d,%d", sh, i, j)
				}
			}
		}
	}
}

func TestExpPSMatchesExpf(t *testing.T) {
	needSIMD(t)
	// A dense sweep plus special values, through expSubSum (mx = 0).
	var xs []float32
	for x := -100.0; x <= 100; x += 0.00731 {
		xs = append(xs, float32(x))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 88.72, -87.33, 88.7201, -87.3301,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-30, -1e-30)
	for len(xs)%8 != 0 {
		xs = append(xs, 0.5)
	}
	// GELU runs the 16-lane (AVX-512) exp when available: a dense sweep of
	// its inputs covers that exp over the whole clamp range.
	var gx []float32
	for x := -12.0; x <= 12; x += 0.000917 {
		gx = append(gx, float32(x))
	}
	gx = append(gx, xs...)
	for _, avx512 := range []bool{false, haveAVX512} {
		old := useAVX512
		useAVX512 = avx512
		a, b := both(func() [][]float32 { return [][]float32{gx, make([]float32, len(gx)), make([]float32, len(gx))} },
			func(v [][]float32) { geluFwd(v[0], v[1], v[2]) })
		useAVX512 = old
		bitsEq(t, fmt.Sprintf("gelu sweep avx512=%v tanh", avx512), a[1], b[1])
		bitsEq(t, fmt.Sprintf("gelu sweep avx512=%v out", avx512), a[2], b[2])
	}
	got := append([]float32(nil), xs...)
	withSIMD(true, func() { expSubSum(got, 0) })
	for i, x := range xs {
		want := expf(x - 0)
		if math.Float32bits(got[i]) != math.Float32bits(want) && !(want != want && got[i] != got[i]) {
			t.Fatalf("expPS(%v) = %v, expf = %v", x, got[i], want)
		}
	}
}

func TestColSumAddSIMDMatchesScalar(t *testing.T) {
	needSIMD(t)
	r := rand.New(rand.NewPCG(9, 10))
	for _, sh := range [][2]int{{1, 16}, {5, 17}, {33, 64}, {100, 53}, {7, 3}} {
		rows, cols := sh[0], sh[1]
		src := randVec(r, rows*cols, 1)
		d0 := randVec(r, cols, 1)
		a, b := both(func() [][]float32 { return clone(d0) }, func(v [][]float32) { colSumAdd(v[0], src, rows, cols) })
		bitsEq(t, fmt.Sprintf("colSumAdd %dx%d", rows, cols), a[0], b[0])
	}
}

func TestGemmSIMDMatchesScalar(t *testing.T) {
	needSIMD(t)
	t.Run("avx2", func(t *testing.T) {
		old := useAVX512
		useAVX512 = false
		defer func() { useAVX512 = old }()
		testGemmSIMD(t)
	})
	if haveAVX512 {
		t.Run("avx512", testGemmSIMD)
	}
}

func testGemmSIMD(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {4, 16, 1}, {5, 17, 9}, {8, 32, 64}, {65, 130, 300},
		{128, 4, 513}, {2, 129, 1}, {67, 9, 260}, {1024 / 8, 53, 64}, {64, 53, 1024 / 4}, {37, 211, 19}, {16, 48, 257}}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, acc := range []bool{false, true} {
					// Leading dimensions a little wider than needed, to
					// catch stride mistakes.
					lda, ldb, ldc := k+3, n+1, n+2
					if ta {
						lda = m + 5
					}
					if tb {
						ldb = k + 2
					}
					arows, brows := m, k
					if ta {
						arows = k
					}
					if tb {
						brows = n
					}
					a := randVec(r, arows*lda, 1)
					b := randVec(r, brows*ldb, 1)
					c0 := randVec(r, m*ldc, 1)
					x, y := both(func() [][]float32 { return clone(c0) }, func(v [][]float32) {
						gemm(ta, tb, m, n, k, a, lda, b, ldb, v[0], ldc, acc)
					})
					bitsEq(t, fmt.Sprintf("gemm %v ta=%v tb=%v acc=%v", s, ta, tb, acc), x[0], y[0])
					// gemmSerial on a sub-rectangle.
					i0, j0 := m/3, n/4
					x, y = both(func() [][]float32 { return clone(c0) }, func(v [][]float32) {
						gemmSerial(ta, tb, i0, m, j0, n, k, a, lda, b, ldb, v[0], ldc, acc)
					})
					bitsEq(t, fmt.Sprintf("gemmSerial %v ta=%v tb=%v acc=%v", s, ta, tb, acc), x[0], y[0])
				}
			}
		}
	}
}

// trainTrace trains h for a few steps from a fixed seed on random tokens
// (as run does: forward, backward, clipping, AdamW) and returns the losses
// and, after every step, the gradients and parameters, plus an evaluation
// loss (forward without gradients, some targets masked).
func trainTrace(h hyper, steps int) (losses []float64, snaps [][]float32) {
	m := newModel(h)
	m.init(rand.New(rand.NewPCG(5, streamInit)))
	a := newActs(h, h.Batch)
	rng := rand.New(rand.NewPCG(5, streamBatch))
	part := make([]float64, len(m.tensors))
	for s := 0; s < steps; s++ {
		for i := range a.tokens {
			a.tokens[i] = int32(rng.IntN(h.Vocab))
			a.targets[i] = int32(rng.IntN(h.Vocab))
		}
		sum, n := m.forward(a, true)
		losses = append(losses, sum/float64(n))
		clear(m.grads)
		m.backward(a)
		gn := m.gradNorm(part)
		losses = append(losses, gn)
		if gn > 0.5 { // clip as run does
			sc := float32(0.5 / gn)
			for j := range m.grads {
				m.grads[j] *= sc
			}
		}
		snaps = append(snaps, append([]float32(nil), m.grads...))
		m.adamW(lrAt(h, s, steps), h.WD, s+1)
		snaps = append(snaps, append([]float32(nil), m.params...), append([]float32(nil), m.m...), append([]float32(nil), m.v...))
	}
	for i := range a.targets {
		if i%5 == 0 {
			a.targets[i] = -1
		}
	}
	sum, n := m.forward(a, false)
	losses = append(losses, sum/float64(n))
	snaps = append(snaps, append([]float32(nil), a.logits...))
	return losses, snaps
}

// TestTrainSIMDMatchesScalar trains small models of several shapes (odd
// widths, head sizes, context lengths and vocabularies that are not
// multiples of the vector width; every activation and normalisation) on the
// scalar path, the AVX2 path and (where available) the AVX-512 gemm, and
// requires bit-identical losses, gradient norms, gradients, parameters,
// optimizer state and logits.
func TestTrainSIMDMatchesScalar(t *testing.T) {
	needSIMD(t)
	base := hyper{LR: 3e-3, MinLRRatio: 0.1, WD: 0.1, Clip: 0.5, Warmup: 2, Init: "normal"}
	shapes := []struct {
		layers, d, heads, ctx, ff, vocab, batch int
		act, norm                               string
	}{
		{2, 20, 4, 13, 3, 53, 3, actGELU, normLayer},
		{1, 24, 3, 17, 2, 37, 2, actSwiGLU, normRMS},
		{1, 16, 2, 32, 4, 11, 4, actReLU, normLayer},
		{1, 18, 1, 9, 2, 29, 5, actGELU, normRMS},
		{2, 28, 2, 21, 3, 7, 2, actSwiGLU, normLayer},
		{1, 36, 6, 19, 1, 61, 3, actReLU, normRMS},
		{2, 64, 4, 64, 4, 53, 2, actGELU, normLayer}, // baseline shapes
	}
	for _, s := range shapes {
		h := base
		h.NLayers, h.DModel, h.NHeads, h.Ctx, h.DFFMult, h.Vocab, h.Batch = s.layers, s.d, s.heads, s.ctx, s.ff, s.vocab, s.batch
		h.Activation, h.Norm = s.act, s.norm
		name := fmt.Sprintf("%+v", s)
		var refL []float64
		var refS [][]float32
		withSIMD(false, func() { refL, refS = trainTrace(h, 4) })
		paths := []bool{false}
		if haveAVX512 {
			paths = append(paths, true)
		}
		for _, avx512 := range paths {
			old := useAVX512
			useAVX512 = avx512
			var l []float64
			var sn [][]float32
			withSIMD(true, func() { l, sn = trainTrace(h, 4) })
			useAVX512 = old
			for i := range refL {
				if math.Float64bits(l[i]) != math.Float64bits(refL[i]) {
					t.Fatalf("%s avx512=%v: loss/norm %d: simd %v scalar %v", name, avx512, i, l[i], refL[i])
				}
			}
			for i := range refS {
				bitsEq(t, fmt.Sprintf("%s avx512=%v snapshot %d", name, avx512, i), sn[i], refS[i])
			}
		}
		if math.IsNaN(refL[0]) || refL[len(refL)-1] > refL[0]+1 {
			t.Fatalf("%s: implausible losses %v", name, refL)
		}
	}
}
