package ml

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Gradient checks: every layer's analytic backward pass is compared with
// central finite differences of a scalar loss. The kernels run in float32,
// so the loss is accumulated in float64, the step is fairly large
// (gradEps) and the comparison is norm-wise over many coordinates:
// relErr = |g_analytic - g_fd| / max(|g_analytic|, |g_fd|) must be below
// gradTol. TestGradCheckDetectsWrongGradients shows the same check rejects
// realistically wrong gradients.

const (
	gradEps = 1e-2
	gradTol = 1e-2
)

func randSlice(r *rand.Rand, n int, std float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * std)
	}
	return s
}

// dot64 is Σ a·b in float64: the projection loss used for layer checks.
func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// fdGrad returns central finite differences of loss with respect to the
// coordinates idx of p (all coordinates when idx is nil).
func fdGrad(p []float32, idx []int, eps float64, loss func() float64) []float64 {
	if idx == nil {
		idx = make([]int, len(p))
		for i := range idx {
			idx[i] = i
		}
	}
	out := make([]float64, len(idx))
	for k, i := range idx {
		old := p[i]
		p[i] = old + float32(eps)
		lp := loss()
		p[i] = old - float32(eps)
		lm := loss()
		p[i] = old
		out[k] = (lp - lm) / float64((old+float32(eps))-(old-float32(eps)))
	}
	return out
}

// relErr compares analytic (at idx, or all) with finite differences.
func relErr(analytic []float32, idx []int, fd []float64) float64 {
	var diff, na, nf float64
	for k := range fd {
		i := k
		if idx != nil {
			i = idx[k]
		}
		a := float64(analytic[i])
		diff += (a - fd[k]) * (a - fd[k])
		na += a * a
		nf += fd[k] * fd[k]
	}
	den := math.Max(math.Sqrt(na), math.Sqrt(nf))
	if den < 1e-12 {
		return math.Sqrt(diff)
	}
	return math.Sqrt(diff) / den
}

func checkGrad(t *testing.T, name string, p, analytic []float32, idx []int, loss func() float64) {
	t.Helper()
	e := relErr(analytic, idx, fdGrad(p, idx, gradEps, loss))
	if e > gradTol || math.IsNaN(e) {
		t.Errorf("%s: relative gradient error %.3g > %.3g", name, e, gradTol)
	} else {
		t.Logf("%s: relative gradient error %.2g", name, e)
	}
}

func TestGradEmbedding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	const bsz, T, d, V = 2, 5, 6, 4
	tokens := []int32{0, 1, 1, 3, 2, 3, 3, 0, 1, 2}
	wte, wpe := randSlice(r, V*d, 1), randSlice(r, T*d, 1)
	R := randSlice(r, bsz*T*d, 1)
	x := make([]float32, bsz*T*d)
	loss := func() float64 { embedForward(tokens, wte, wpe, x, bsz, T, d); return dot64(x, R) }
	dwte, dwpe := make([]float32, V*d), make([]float32, T*d)
	embedBackward(tokens, R, dwte, dwpe, bsz, T, d)
	checkGrad(t, "embedding/wte", wte, dwte, nil, loss)
	checkGrad(t, "embedding/wpe", wpe, dwpe, nil, loss)
}

func TestGradLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 1))
	const rows, in, out = 7, 9, 5
	x, w, b := randSlice(r, rows*in, 1), randSlice(r, in*out, 0.5), randSlice(r, out, 1)
	R := randSlice(r, rows*out, 1)
	y := make([]float32, rows*out)
	loss := func() float64 { linearForward(x, w, b, y, rows, in, out); return dot64(y, R) }
	dx, dw, db := make([]float32, rows*in), make([]float32, in*out), make([]float32, out)
	linearBackward(x, w, R, dx, dw, db, rows, in, out, false)
	checkGrad(t, "linear/x", x, dx, nil, loss)
	checkGrad(t, "linear/w", w, dw, nil, loss)
	checkGrad(t, "linear/b", b, db, nil, loss)
}

func testNormGrad(t *testing.T, kind string) {
	r := rand.New(rand.NewPCG(3, 1))
	const rows, d = 6, 8
	x := randSlice(r, rows*d, 1)
	g := randSlice(r, d, 1)
	var b []float32
	if kind == normLayer {
		b = randSlice(r, d, 1)
	}
	R := randSlice(r, rows*d, 1)
	y, mean, rstd := make([]float32, rows*d), make([]float32, rows), make([]float32, rows)
	loss := func() float64 { normForward(kind, x, g, b, y, mean, rstd, rows, d); return dot64(y, R) }
	loss()
	dx, dg, tmp := make([]float32, rows*d), make([]float32, d), make([]float32, rows*d)
	var db []float32
	if b != nil {
		db = make([]float32, d)
	}
	normBackward(kind, x, g, mean, rstd, R, dx, dg, db, tmp, rows, d)
	checkGrad(t, kind+"/x", x, dx, nil, loss)
	checkGrad(t, kind+"/g", g, dg, nil, loss)
	if b != nil {
		checkGrad(t, kind+"/b", b, db, nil, loss)
	}
}

func TestGradLayerNorm(t *testing.T) { testNormGrad(t, normLayer) }
func TestGradRMSNorm(t *testing.T)   { testNormGrad(t, normRMS) }

func TestGradAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 1))
	// T spans two attention row blocks; hd = 3 exercises the kernel's edges.
	const bsz, T, H, hd = 2, attnRowBlock + 3, 2, 3
	d := H * hd
	qkv := randSlice(r, bsz*T*3*d, 1)
	R := randSlice(r, bsz*T*d, 1)
	out, probs := make([]float32, bsz*T*d), make([]float32, bsz*H*T*T)
	loss := func() float64 { attnForward(qkv, out, probs, bsz, T, H, hd); return dot64(out, R) }
	loss()
	dqkv := make([]float32, bsz*T*3*d)
	attnBackward(qkv, probs, R, dqkv, bsz, T, H, hd, make([]float32, bsz*H*T*T))
	checkGrad(t, "attention/qkv", qkv, dqkv, nil, loss)

	// Causal mask: changing the last position's q, k, v must not change
	// any earlier output, in any head or batch row.
	loss()
	before := append([]float32(nil), out...)
	for c := 0; c < 3*d; c++ {
		qkv[(T-1)*3*d+c] += 3
	}
	loss()
	for i := 0; i < (T-1)*d; i++ {
		if out[i] != before[i] {
			t.Fatalf("attention output %d (earlier position) changed when the last position changed", i)
		}
	}
	// Probabilities are zero above the diagonal and rows sum to 1.
	for bh := 0; bh < bsz*H; bh++ {
		for i := 0; i < T; i++ {
			var s float64
			for j := 0; j < T; j++ {
				p := probs[bh*T*T+i*T+j]
				if j > i && p != 0 {
					t.Fatalf("probs[%d,%d,%d] = %v above the diagonal", bh, i, j, p)
				}
				s += float64(p)
			}
			if math.Abs(s-1) > 1e-5 {
				t.Fatalf("attention row sums to %v", s)
			}
		}
	}
}

func TestGradActivations(t *testing.T) {
	for _, kind := range []string{actReLU, actGELU, actSwiGLU} {
		r := rand.New(rand.NewPCG(5, 1))
		const rows, f = 4, 6
		nu := rows * f
		if kind == actSwiGLU {
			nu *= 2
		}
		u := randSlice(r, nu, 1)
		for i, v := range u { // keep relu away from its kink
			if math.Abs(float64(v)) < 0.1 {
				u[i] = 0.3
			}
		}
		R := randSlice(r, rows*f, 1)
		a, aux := make([]float32, rows*f), make([]float32, rows*f)
		loss := func() float64 { actForward(kind, u, a, aux, rows, f); return dot64(a, R) }
		loss()
		du := make([]float32, nu)
		actBackward(kind, u, aux, R, du, rows, f)
		checkGrad(t, kind, u, du, nil, loss)
	}
}

func TestGradCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 1))
	const rows, V = 5, 7
	logits := randSlice(r, rows*V, 2)
	targets := []int32{0, 6, 3, -1, 3} // one ignored row
	rl := make([]float64, rows)
	loss := func() float64 {
		s, n := crossEntropy(logits, targets, rows, V, nil, 1, rl)
		return s / float64(n)
	}
	dl := make([]float32, rows*V)
	crossEntropy(logits, targets, rows, V, dl, 4, rl)
	checkGrad(t, "cross-entropy", logits, dl, nil, loss)
}

// tinyModel builds a small model with random tokens for whole-model checks.
func tinyModel(act, norm string, seed uint64) (*model, *acts) {
	h := hyper{NLayers: 2, DModel: 8, NHeads: 2, Ctx: 6, DFFMult: 2, Activation: act, Norm: norm,
		Init: "xavier", Vocab: 7, Batch: 2}
	m := newModel(h)
	r := rand.New(rand.NewPCG(seed, 9))
	m.init(r)
	for _, tn := range m.tensors { // non-trivial gains and biases
		if tn.fanIn == 0 && tn.decay { // O(1) embeddings: the finite-difference step must be small relative to them
			for i := range m.p(tn) {
				m.p(tn)[i] = float32(r.NormFloat64())
			}
		}
		if !tn.decay {
			for i, p := range m.p(tn) {
				m.p(tn)[i] = p + float32(r.NormFloat64()*0.2)
			}
		}
	}
	a := newActs(h, h.Batch)
	for i := range a.tokens {
		a.tokens[i] = int32(r.IntN(h.Vocab))
		a.targets[i] = int32(r.IntN(h.Vocab))
	}
	return m, a
}

func TestGradWholeModel(t *testing.T) {
	for _, act := range []string{actReLU, actGELU, actSwiGLU} {
		for _, norm := range []string{normLayer, normRMS} {
			m, a := tinyModel(act, norm, 7)
			m.forward(a, true)
			clear(m.grads)
			m.backward(a)
			loss := func() float64 { s, n := m.forward(a, false); return s / float64(n) }
			eps := gradEps
			if act == actReLU {
				eps = 1e-3 // fewer finite-difference steps straddle the kink
			}
			// Every tensor, up to 24 random coordinates each.
			r := rand.New(rand.NewPCG(8, 8))
			worst := 0.0
			for _, tn := range m.tensors {
				n := tn.Rows * tn.Cols
				var idx []int
				for k := 0; k < min(24, n); k++ {
					idx = append(idx, r.IntN(n))
				}
				e := relErr(m.g(tn), idx, fdGrad(m.p(tn), idx, eps, loss))
				if e > 3*gradTol {
					t.Errorf("%s/%s %s: relative gradient error %.3g", act, norm, tn.Name, e)
				}
				worst = max(worst, e)
			}
			t.Logf("%s/%s: worst per-tensor relative gradient error %.2g", act, norm, worst)
		}
	}
}

// TestGradCheckDetectsWrongGradients makes sure the checks above can fail:
// plausible bugs must give errors far above gradTol.
func TestGradCheckDetectsWrongGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 1))
	const rows, d = 6, 8
	x, g, b := randSlice(r, rows*d, 1), randSlice(r, d, 1), randSlice(r, d, 1)
	R := randSlice(r, rows*d, 1)
	y, mean, rstd := make([]float32, rows*d), make([]float32, rows), make([]float32, rows)
	loss := func() float64 { normForward(normLayer, x, g, b, y, mean, rstd, rows, d); return dot64(y, R) }
	loss()
	fd := fdGrad(x, nil, gradEps, loss)

	// Bug 1: layernorm backward that forgets the mean-subtraction term
	// (i.e. uses the rmsnorm formula).
	dx := make([]float32, rows*d)
	normBackward(normRMS, x, g, mean, rstd, R, dx, make([]float32, d), nil, make([]float32, rows*d), rows, d)
	if e := relErr(dx, nil, fd); e < 10*gradTol {
		t.Errorf("missing mean term not detected: error %.3g", e)
	}
	// Bug 2: a correct gradient with 5%% scaled on every other coordinate.
	dx = make([]float32, rows*d)
	normBackward(normLayer, x, g, mean, rstd, R, dx, make([]float32, d), make([]float32, d), make([]float32, rows*d), rows, d)
	if e := relErr(dx, nil, fd); e > gradTol {
		t.Fatalf("correct gradient rejected: %.3g", e)
	}
	for i := 0; i < len(dx); i += 2 {
		dx[i] *= 1.05
	}
	if e := relErr(dx, nil, fd); e < gradTol {
		t.Errorf("5%% error not detected: error %.3g", e)
	}
	// Bug 3: attention backward without the softmax Jacobian's row term.
	const bsz, T, H, hd = 1, 4, 1, 4
	qkv := randSlice(r, bsz*T*3*H*hd, 1)
	Ra := randSlice(r, bsz*T*H*hd, 1)
	out, probs := make([]float32, bsz*T*H*hd), make([]float32, bsz*H*T*T)
	aloss := func() float64 { attnForward(qkv, out, probs, bsz, T, H, hd); return dot64(out, Ra) }
	aloss()
	dq := make([]float32, len(qkv))
	attnBackward(qkv, probs, Ra, dq, bsz, T, H, hd, make([]float32, T*T))
	fdq := fdGrad(qkv, nil, gradEps, aloss)
	if e := relErr(dq, nil, fdq); e > gradTol {
		t.Fatalf("correct attention gradient rejected: %.3g", e)
	}
	// Flip the sign of the query gradients: the check must notice.
	for i := 0; i < T; i++ {
		for c := 0; c < hd; c++ {
			dq[i*3*hd+c] = -dq[i*3*hd+c]
		}
	}
	if e := relErr(dq, nil, fdq); e < 10*gradTol {
		t.Errorf("wrong query gradient not detected: error %.3g", e)
	}
}
