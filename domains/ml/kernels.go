package ml

import "math"

// Element-wise and reduction kernels shared by the layers, each with a
// portable scalar Go implementation (the reference) and an AVX2 one
// (simd_amd64.s). See simd.go for the rules that make the two bit-identical.
// Every kernel processes the largest multiple of 8 elements with the vector
// code when SIMD is enabled and the remaining 0-7 elements (or all of them)
// with the scalar code, which continues the same lane structure.

// lanes8 holds 8 float32 partial results; element i of a reduction goes to
// lane i mod 8.
type lanes8 [8]float32

// sum combines the lanes in a fixed tree: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
func (l *lanes8) sum() float32 {
	a0, a1, a2, a3 := l[0]+l[4], l[1]+l[5], l[2]+l[6], l[3]+l[7]
	return (a0 + a2) + (a1 + a3)
}

// max combines the lanes with maxf in the same tree as sum.
func (l *lanes8) max() float32 {
	a0, a1, a2, a3 := maxf(l[0], l[4]), maxf(l[1], l[5]), maxf(l[2], l[6]), maxf(l[3], l[7])
	return maxf(maxf(a0, a2), maxf(a1, a3))
}

// maxf is a > b ? a : b, the semantics of x86 MAXPS (NaN or equal: b).
func maxf(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// lanes8d is lanes8 for float64 reductions.
type lanes8d [8]float64

func (l *lanes8d) sum() float64 {
	a0, a1, a2, a3 := l[0]+l[4], l[1]+l[5], l[2]+l[6], l[3]+l[7]
	return (a0 + a2) + (a1 + a3)
}

// vec returns the SIMD prefix length of n elements: n rounded down to a
// multiple of 8 when SIMD is enabled, else 0 (all scalar).
func vec(n int) int {
	if simdEnabled {
		return n &^ 7
	}
	return 0
}

// rowSum returns Σ x (lane structured).
func rowSum(x []float32) float32 {
	var l lanes8
	n8 := vec(len(x))
	if n8 > 0 {
		sumPS(&x[0], n8, &l)
	}
	for i, v := range x[n8:] {
		l[i&7] += v
	}
	return l.sum()
}

// rowSumSqDiff returns Σ (x-mu)².
func rowSumSqDiff(x []float32, mu float32) float32 {
	var l lanes8
	n8 := vec(len(x))
	if n8 > 0 {
		sumSqDiffPS(&x[0], n8, mu, &l)
	}
	for i, v := range x[n8:] {
		d := v - mu
		l[i&7] += float32(d * d)
	}
	return l.sum()
}

// normApply writes y = ((x-mu)·rs)·g + b (b nil: no bias term).
func normApply(x, g, b, y []float32, mu, rs float32) {
	n := len(x)
	g, y = g[:n], y[:n]
	n8 := vec(n)
	if b != nil {
		b = b[:n]
		if n8 > 0 {
			normApplyPS(&x[0], &g[0], &b[0], &y[0], n8, mu, rs)
		}
		for i := n8; i < n; i++ {
			y[i] = float32(float32((x[i]-mu)*rs)*g[i]) + b[i]
		}
		return
	}
	if n8 > 0 {
		normApplyNoBiasPS(&x[0], &g[0], &y[0], n8, mu, rs)
	}
	for i := n8; i < n; i++ {
		y[i] = ((x[i] - mu) * rs) * g[i]
	}
}

// normBwdSums writes tr = dy·xh and returns Σ dh and Σ dh·xh, where
// xh = (x-mu)·rs and dh = dy·g.
func normBwdSums(x, dy, g, tr []float32, mu, rs float32) (sdh, sdhx float32) {
	n := len(x)
	dy, g, tr = dy[:n], g[:n], tr[:n]
	var l1, l2 lanes8
	n8 := vec(n)
	if n8 > 0 {
		normBwdSumsPS(&x[0], &dy[0], &g[0], &tr[0], n8, mu, rs, &l1, &l2)
	}
	for i := n8; i < n; i++ {
		xh := (x[i] - mu) * rs
		dh := float32(dy[i] * g[i])
		tr[i] = dy[i] * xh
		l1[i&7] += dh
		l2[i&7] += float32(dh * xh)
	}
	return l1.sum(), l2.sum()
}

// normBwdApply adds rs·((dh - a) - xh·c) to dx (xh, dh as in normBwdSums).
func normBwdApply(x, dy, g, dx []float32, mu, rs, a, c float32) {
	n := len(x)
	dy, g, dx = dy[:n], g[:n], dx[:n]
	n8 := vec(n)
	if n8 > 0 {
		normBwdApplyPS(&x[0], &dy[0], &g[0], &dx[0], n8, mu, rs, a, c)
	}
	for i := n8; i < n; i++ {
		xh := (x[i] - mu) * rs
		dh := float32(dy[i] * g[i])
		dx[i] += float32(rs * ((dh - a) - float32(xh*c)))
	}
}

// geluFwd writes aux = tanh(√(2/π)(x + 0.044715x³)) and a = 0.5x(1+aux).
func geluFwd(u, aux, a []float32) {
	n := len(u)
	aux, a = aux[:n], a[:n]
	n8 := vec(n)
	n16 := 0
	if useAVX512 && n8 >= 16 {
		n16 = n8 &^ 15
		geluFwd512PS(&u[0], &aux[0], &a[0], n16)
	}
	if n8 > n16 {
		geluFwdPS(&u[n16], &aux[n16], &a[n16], n8-n16)
	}
	for i := n8; i < n; i++ {
		x := u[i]
		t := tanhf(float32(geluC * (x + float32(float32(float32(0.044715*x)*x)*x))))
		aux[i] = t
		a[i] = (0.5 * x) * (1 + t)
	}
}

// geluBwd writes du = da·GELU'(u) from u and the saved tanh values.
func geluBwd(u, aux, da, du []float32) {
	n := len(u)
	aux, da, du = aux[:n], da[:n], du[:n]
	n8 := vec(n)
	if n8 > 0 {
		geluBwdPS(&u[0], &aux[0], &da[0], &du[0], n8)
	}
	for i := n8; i < n; i++ {
		x, t := u[i], aux[i]
		dt := ((1 - float32(t*t)) * geluC) * (1 + float32(float32(3*0.044715*x)*x))
		du[i] = da[i] * (float32(0.5*(1+t)) + float32((0.5*x)*dt))
	}
}

// swigluFwd writes aux = sigmoid(g) and a = g·aux·v.
func swigluFwd(g, v, aux, a []float32) {
	n := len(g)
	v, aux, a = v[:n], aux[:n], a[:n]
	n8 := vec(n)
	if n8 > 0 {
		swigluFwdPS(&g[0], &v[0], &aux[0], &a[0], n8)
	}
	for i := n8; i < n; i++ {
		sg := sigmoidf(g[i])
		aux[i] = sg
		a[i] = (g[i] * sg) * v[i]
	}
}

// swigluBwd writes dv = da·g·s and dg = da·v·s·(1 + g(1-s)), s = aux.
func swigluBwd(g, v, aux, da, dg, dv []float32) {
	n := len(g)
	v, aux, da, dg, dv = v[:n], aux[:n], da[:n], dg[:n], dv[:n]
	n8 := vec(n)
	if n8 > 0 {
		swigluBwdPS(&g[0], &v[0], &aux[0], &da[0], &dg[0], &dv[0], n8)
	}
	for i := n8; i < n; i++ {
		x, s := g[i], aux[i]
		dv[i] = (da[i] * x) * s
		dg[i] = ((da[i] * v[i]) * s) * (1 + float32(x*(1-s)))
	}
}

// softmaxRow computes the attention softmax of x[:n] in place: x = x·s,
// then expf(x - max), then x·(1/Σ) (scaleMax, expSubSum, scaleVec). With
// SIMD, when x has room for n rounded up to 8 (x[n:] is overwritten with
// garbage up to that length), it is one fused vector call.
func softmaxRow(x []float32, n int, s float32) {
	if nv := (n + 7) &^ 7; simdEnabled && n > 0 && nv <= len(x) {
		softmaxRowPS(&x[0], n, nv, s)
		return
	}
	vis := x[:n]
	mx := scaleMax(vis, s)
	z := expSubSum(vis, mx)
	scaleVec(vis, 1/z)
}

// dsRow replaces d[:n] by (p·(d - Σ p·d))·scale (dot, then dsApply); fused
// with SIMD like softmaxRow (d[n:] up to n rounded up to 8 gets garbage).
func dsRow(p, d []float32, n int, scale float32) {
	if nv := (n + 7) &^ 7; simdEnabled && n > 0 && nv <= len(p) && nv <= len(d) {
		dsRowPS(&p[0], &d[0], n, nv, scale)
		return
	}
	dsApply(p[:n], d[:n], dot(p[:n], d[:n]), scale)
}

// scaleMax multiplies x by s in place and returns the maximum (lane
// structured, maxf semantics; -Inf for an empty x).
func scaleMax(x []float32, s float32) float32 {
	ninf := float32(negInf)
	l := lanes8{ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf}
	n8 := vec(len(x))
	if n8 > 0 {
		scaleMaxPS(&x[0], n8, s, &l)
	}
	for i := n8; i < len(x); i++ {
		v := x[i] * s
		x[i] = v
		l[i&7] = maxf(v, l[i&7])
	}
	return l.max()
}

var negInf = math.Inf(-1)

// expSubSum replaces x by expf(x - mx) and returns the sum of the results.
func expSubSum(x []float32, mx float32) float32 {
	var l lanes8
	n8 := vec(len(x))
	if n8 > 0 {
		expSubSumPS(&x[0], n8, mx, &l)
	}
	for i := n8; i < len(x); i++ {
		e := expf(x[i] - mx)
		x[i] = e
		l[i&7] += e
	}
	return l.sum()
}

// scaleVec multiplies x by s in place.
func scaleVec(x []float32, s float32) {
	n8 := vec(len(x))
	if n8 > 0 {
		scalePS(&x[0], n8, s)
	}
	for i := n8; i < len(x); i++ {
		x[i] *= s
	}
}

// dot returns Σ x·y (lane structured).
func dot(x, y []float32) float32 {
	y = y[:len(x)]
	var l lanes8
	n8 := vec(len(x))
	if n8 > 0 {
		dotPS(&x[0], &y[0], n8, &l)
	}
	for i := n8; i < len(x); i++ {
		l[i&7] += float32(x[i] * y[i])
	}
	return l.sum()
}

// dsApply replaces d by (p·(d - sum))·scale.
func dsApply(p, d []float32, sum, scale float32) {
	d = d[:len(p)]
	n8 := vec(len(p))
	if n8 > 0 {
		dsApplyPS(&p[0], &d[0], n8, sum, scale)
	}
	for i := n8; i < len(p); i++ {
		d[i] = (p[i] * (d[i] - sum)) * scale
	}
}

// addVec adds y to x element-wise.
func addVec(x, y []float32) {
	y = y[:len(x)]
	n8 := vec(len(x))
	if n8 > 0 {
		addPS(&x[0], &y[0], n8)
	}
	for i := n8; i < len(x); i++ {
		x[i] += y[i]
	}
}

// colAcc16 adds rows of 16 columns of src (row stride ld floats) to acc,
// row by row in order (one addition per element and row, as in the
// scalar loop of colSumAdd).
func colAcc16(src []float32, rows, ld int, acc *[16]float32) {
	if rows == 0 {
		return
	}
	_ = src[(rows-1)*ld+15]
	colAcc16PS(&src[0], rows, ld*4, acc)
}

// sumSq64 returns Σ float64(x)² (lane structured, float64 lanes).
func sumSq64(x []float32) float64 {
	var l lanes8d
	n8 := vec(len(x))
	if n8 > 0 {
		sumSq64PS(&x[0], n8, &l)
	}
	for i := n8; i < len(x); i++ {
		v := float64(x[i])
		l[i&7] += float64(v * v) // exact anyway (48 significant bits)
	}
	return l.sum()
}

// adamConsts are the per-step constants of the AdamW update (layout shared
// with adamWPS).
type adamConsts struct {
	c1, c2, eps      float64 // bias corrections, epsilon
	lr, decay        float32
	b1, nb1, b2, nb2 float32 // β1, 1-β1, β2, 1-β2
	_                [2]float32
}

// adamWVec applies the AdamW update to one tensor:
//
//	m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g·g
//	p -= lr·(float32((m/c1) / (√(v/c2) + eps)) + decay·p)   (quotients in float64)
func adamWVec(p, g, m, v []float32, k *adamConsts) {
	n := len(p)
	g, m, v = g[:n], m[:n], v[:n]
	n8 := vec(n)
	if n8 > 0 {
		adamWPS(&p[0], &g[0], &m[0], &v[0], n8, k)
	}
	for j := n8; j < n; j++ {
		gj := g[j]
		m[j] = float32(k.b1*m[j]) + float32(k.nb1*gj)
		v[j] = float32(k.b2*v[j]) + float32(float32(k.nb2*gj)*gj)
		mh := float64(m[j]) / k.c1
		vh := float64(v[j]) / k.c2
		p[j] -= float32(k.lr * (float32(mh/(math.Sqrt(vh)+k.eps)) + float32(k.decay*p[j])))
	}
}
