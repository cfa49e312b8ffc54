package ml

import "math"

// Layer kernels. Every function works on row-major float32 slices with
// rows = batch×time. Parallel parts split rows (or columns) into fixed-size
// chunks; reductions over rows (bias and gain gradients) are done per column
// in row order by one goroutine, so results do not depend on scheduling.

const rowChunk = 32 // rows per parallel task for row-wise ops

// parallelRows runs fn over [0,rows) in fixed chunks of rowChunk rows.
func parallelRows(rows int, fn func(r0, r1 int)) {
	parallelFor((rows+rowChunk-1)/rowChunk, func(t int) {
		fn(t*rowChunk, min((t+1)*rowChunk, rows))
	})
}

// colSumAdd adds the column sums of src (rows×cols) to dst (cols).
// Each column is summed in row order by exactly one goroutine.
func colSumAdd(dst, src []float32, rows, cols int) {
	const cb = 16
	parallelFor((cols+cb-1)/cb, func(t int) {
		c0, c1 := t*cb, min((t+1)*cb, cols)
		var acc [cb]float32
		a := acc[:c1-c0]
		if simdEnabled && c1-c0 == cb {
			colAcc16(src[c0:], rows, cols, &acc)
		} else {
			for r := 0; r < rows; r++ {
				row := src[r*cols+c0 : r*cols+c1]
				a = a[:len(row)]
				for i, v := range row {
					a[i] += v
				}
			}
		}
		d := dst[c0:c1]
		for i := range d {
			d[i] += a[i]
		}
	})
}

// linearForward computes y = x·w + b for x (rows×in), w (in×out), b (out).
func linearForward(x, w, b, y []float32, rows, in, out int) {
	if b != nil {
		parallelRows(rows, func(r0, r1 int) {
			for r := r0; r < r1; r++ {
				copy(y[r*out:(r+1)*out], b)
			}
		})
	}
	gemm(false, false, rows, out, in, x, in, w, out, y, out, b != nil)
}

// linearBackward accumulates dw += xᵀ·dy, db += colsum(dy) and, when dx is
// not nil, dx (+)= dy·wᵀ (added when accDx, else overwritten).
func linearBackward(x, w, dy, dx, dw, db []float32, rows, in, out int, accDx bool) {
	gemm(true, false, in, out, rows, x, in, dy, out, dw, out, true)
	if db != nil {
		colSumAdd(db, dy, rows, out)
	}
	if dx != nil {
		gemm(false, true, rows, in, out, dy, out, w, out, dx, in, accDx)
	}
}

// Normalisation kinds.
const (
	normLayer = "layernorm"
	normRMS   = "rmsnorm"
	normEps   = 1e-5
)

// normForward normalises each row of x (rows×d) into y and records the
// per-row mean (layernorm only) and reciprocal std. b is nil for rmsnorm.
func normForward(kind string, x, g, b, y, mean, rstd []float32, rows, d int) {
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			xr := x[r*d : (r+1)*d]
			var mu float32
			if kind == normLayer {
				mu = rowSum(xr) / float32(d)
			}
			ss := rowSumSqDiff(xr, mu)
			rs := float32(1 / math.Sqrt(float64(ss/float32(d))+normEps))
			mean[r], rstd[r] = mu, rs
			normApply(xr, g, b, y[r*d:(r+1)*d], mu, rs)
		}
	})
}

// normBackward adds the input gradient to dx and the gain/bias gradients to
// dg/db (db nil for rmsnorm). tmp is rows×d scratch.
func normBackward(kind string, x, g, mean, rstd, dy, dx, dg, db, tmp []float32, rows, d int) {
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			xr := x[r*d : (r+1)*d]
			dyr := dy[r*d : (r+1)*d]
			dxr := dx[r*d : (r+1)*d]
			tr := tmp[r*d : (r+1)*d]
			mu, rs := mean[r], rstd[r]
			// Σ dxhat, Σ dxhat·xhat (dxhat = dy·g, xhat = (x-mu)·rs)
			sdh, sdhx := normBwdSums(xr, dyr, g, tr, mu, rs)
			n := float32(d)
			if kind != normLayer {
				sdh = 0
			}
			// dx += rs·(dxhat - Σdxhat/n - xhat·(Σdxhat·xhat/n))
			normBwdApply(xr, dyr, g, dxr, mu, rs, sdh/n, sdhx/n)
		}
	})
	colSumAdd(dg, tmp, rows, d)
	if db != nil {
		colSumAdd(db, dy, rows, d)
	}
}

// Activation kinds.
const (
	actReLU   = "relu"
	actGELU   = "gelu"
	actSwiGLU = "swiglu"
)

const geluC = 0.7978845608028654 // sqrt(2/pi)

// actForward applies the MLP nonlinearity. For relu/gelu u and a are
// rows×f; for swiglu u is rows×2f laid out [gate | value] per row and
// a = silu(gate)·value is rows×f. aux (rows×f) keeps what the backward pass
// needs besides u: tanh(·) for gelu, sigmoid(gate) for swiglu (unused for
// relu, may be nil).
func actForward(kind string, u, a, aux []float32, rows, f int) {
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			ar := a[r*f : (r+1)*f]
			switch kind {
			case actReLU:
				ur := u[r*f : (r+1)*f]
				ur = ur[:len(ar)]
				for i, v := range ur {
					ar[i] = max(v, 0)
				}
			case actGELU:
				geluFwd(u[r*f:(r+1)*f], aux[r*f:(r+1)*f], ar)
			case actSwiGLU:
				swigluFwd(u[2*r*f:2*r*f+f], u[2*r*f+f:2*(r+1)*f], aux[r*f:(r+1)*f], ar)
			}
		}
	})
}

// actBackward writes du from da (overwriting du), using u and the aux
// values saved by actForward.
func actBackward(kind string, u, aux, da, du []float32, rows, f int) {
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			dar := da[r*f : (r+1)*f]
			switch kind {
			case actReLU:
				ur := u[r*f : (r+1)*f]
				dur := du[r*f : (r+1)*f]
				ur, dur = ur[:len(dar)], dur[:len(dar)]
				for i, v := range ur {
					if v > 0 {
						dur[i] = dar[i]
					} else {
						dur[i] = 0
					}
				}
			case actGELU:
				geluBwd(u[r*f:(r+1)*f], aux[r*f:(r+1)*f], dar, du[r*f:(r+1)*f])
			case actSwiGLU:
				swigluBwd(u[2*r*f:2*r*f+f], u[2*r*f+f:2*(r+1)*f], aux[r*f:(r+1)*f], dar, du[2*r*f:2*r*f+f], du[2*r*f+f:2*(r+1)*f])
			}
		}
	})
}

// attnRowBlock is the query-row block of the attention products: scores are
// computed for columns up to the end of each block, so about
// attnRowBlock/(2T) of the score products fall above the diagonal (wasted,
// and not counted in flopsPerStep).
const attnRowBlock = 16

// attnForward runs causal multi-head self-attention. qkv is (B·T)×3d with
// each row laid out [q | k | v], head h using columns h·hd..(h+1)·hd of each
// part. out is (B·T)×d (heads merged back in the same column layout) and
// probs (B·H·T·T) receives the attention weights (zero above the diagonal).
// One task per (batch, head); the products use the gemm micro-kernel on
// strided views of qkv.
func attnForward(qkv, out, probs []float32, bsz, T, H, hd int) {
	d := H * hd
	scale := float32(1 / math.Sqrt(float64(hd)))
	parallelFor(bsz*H, func(t int) {
		b, h := t/H, t%H
		P := probs[t*T*T : (t+1)*T*T]
		base := b * T * 3 * d
		Q, K, V := qkv[base+h*hd:], qkv[base+d+h*hd:], qkv[base+2*d+h*hd:]
		O := out[b*T*d+h*hd:]
		kt := getBuf(hd * T)
		KT := *kt
		transposeInto(KT, K, T, hd, 3*d) // Kᵀ (hd×T), so S = Q·Kᵀ needs no transposed operand
		for i0 := 0; i0 < T; i0 += attnRowBlock {
			i1 := min(i0+attnRowBlock, T)
			gemmSerial(false, false, i0, i1, 0, i1, hd, Q, 3*d, KT, T, P, T, false) // S = Q·Kᵀ
			for i := i0; i < i1; i++ {
				pr := P[i*T : (i+1)*T]
				softmaxRow(pr, i+1, scale)
				clear(pr[i+1:])
			}
			gemmSerial(false, false, i0, i1, 0, hd, i1, P, T, V, 3*d, O, d, false) // O = P·V
		}
		fbufPool.Put(kt)
	})
}

// transposeInto writes the transpose of the rows×cols matrix src (row
// stride ld) into dst (cols×rows, contiguous). Pure data movement: the
// SIMD and scalar versions are interchangeable.
func transposeInto(dst, src []float32, rows, cols, ld int) {
	dst = dst[:rows*cols]
	if !simdEnabled || rows < 8 || cols < 8 {
		transposeGo(dst, src, 0, rows, 0, cols, rows, ld)
		return
	}
	_ = src[(rows-1)*ld+cols-1]
	r8, c8 := rows&^7, cols&^7
	for r := 0; r < r8; r += 8 {
		for c := 0; c < c8; c += 8 {
			transpose8x8PS(&src[r*ld+c], ld*4, &dst[c*rows+r], rows*4)
		}
	}
	transposeGo(dst, src, 0, r8, c8, cols, rows, ld)
	transposeGo(dst, src, r8, rows, 0, cols, rows, ld)
}

// transposeGo does rows [r0,r1) × columns [c0,c1) of transposeInto.
func transposeGo(dst, src []float32, r0, r1, c0, c1, rows, ld int) {
	if c0 >= c1 {
		return
	}
	r := r0
	for ; r+4 <= r1; r += 4 {
		s0 := src[r*ld+c0 : r*ld+c1]
		s1 := src[(r+1)*ld+c0 : (r+1)*ld+c1]
		s2 := src[(r+2)*ld+c0 : (r+2)*ld+c1]
		s3 := src[(r+3)*ld+c0 : (r+3)*ld+c1]
		for q, v := range s0 {
			c := c0 + q
			o := dst[c*rows+r : c*rows+r+4]
			o[0], o[1], o[2], o[3] = v, s1[q], s2[q], s3[q]
		}
	}
	for ; r < r1; r++ {
		for q, v := range src[r*ld+c0 : r*ld+c1] {
			dst[(c0+q)*rows+r] = v
		}
	}
}

// attnBackward writes dqkv ((B·T)×3d, overwritten) from dout ((B·T)×d).
// scratch holds B·H·T·T floats.
func attnBackward(qkv, probs, dout, dqkv []float32, bsz, T, H, hd int, scratch []float32) {
	d := H * hd
	scale := float32(1 / math.Sqrt(float64(hd)))
	parallelFor(bsz*H, func(t int) {
		b, h := t/H, t%H
		P := probs[t*T*T : (t+1)*T*T]
		dS := scratch[t*T*T : (t+1)*T*T]
		base := b * T * 3 * d
		Q, K, V := qkv[base+h*hd:], qkv[base+d+h*hd:], qkv[base+2*d+h*hd:]
		dQ, dK, dV := dqkv[base+h*hd:], dqkv[base+d+h*hd:], dqkv[base+2*d+h*hd:]
		dO := dout[b*T*d+h*hd:]
		vt := getBuf(hd * T)
		VT := *vt
		transposeInto(VT, V, T, hd, 3*d)
		for i0 := 0; i0 < T; i0 += attnRowBlock {
			i1 := min(i0+attnRowBlock, T)
			gemmSerial(false, false, i0, i1, 0, i1, hd, dO, d, VT, T, dS, T, false) // dP = dO·Vᵀ
			// dS_ij = P_ij (dP_ij - Σ_k P_ik dP_ik) · scale, zero above the diagonal.
			for i := i0; i < i1; i++ {
				dr := dS[i*T : (i+1)*T]
				dsRow(P[i*T:(i+1)*T], dr, i+1, scale)
				clear(dr[i+1:])
			}
			gemmSerial(false, false, i0, i1, 0, hd, i1, dS, T, K, 3*d, dQ, 3*d, false) // dQ = dS·K
		}
		for j0 := 0; j0 < T; j0 += attnRowBlock {
			j1 := min(j0+attnRowBlock, T)
			// dK[j] = Σ_{i>=j} dS_ij q_i and dV[j] = Σ_{i>=j} P_ij do_i: the
			// inner index starts at j0 (rows above are zero).
			gemmSerial(true, false, j0, j1, 0, hd, T-j0, dS[j0*T:], T, Q[j0*3*d:], 3*d, dK, 3*d, false)
			gemmSerial(true, false, j0, j1, 0, hd, T-j0, P[j0*T:], T, dO[j0*d:], d, dV, 3*d, false)
		}
		fbufPool.Put(vt)
	})
}

// embedForward writes x[b·T+t] = wte[tok] + wpe[t].
func embedForward(tokens []int32, wte, wpe, x []float32, bsz, T, d int) {
	parallelRows(bsz*T, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			tok := int(tokens[r])
			t := r % T
			xr := x[r*d : (r+1)*d]
			e := wte[tok*d : (tok+1)*d]
			p := wpe[t*d : (t+1)*d]
			e, p = e[:len(xr)], p[:len(xr)]
			for i := range xr {
				xr[i] = e[i] + p[i]
			}
		}
	})
}

// embedBackward accumulates dwte and dwpe from dx, in row order (serial:
// several rows may hit the same token, and the work is tiny).
func embedBackward(tokens []int32, dx, dwte, dwpe []float32, bsz, T, d int) {
	for r := 0; r < bsz*T; r++ {
		tok := int(tokens[r])
		t := r % T
		xr := dx[r*d : (r+1)*d]
		e := dwte[tok*d : (tok+1)*d]
		p := dwpe[t*d : (t+1)*d]
		e, p = e[:len(xr)], p[:len(xr)]
		for i, g := range xr {
			e[i] += g
			p[i] += g
		}
	}
}

// crossEntropy computes the summed negative log-likelihood (nats) of the
// targets under softmax(logits) and the number of counted rows; targets < 0
// are ignored. If dlogits is not nil it receives ∂(sum/scaleN)/∂logits, i.e.
// (softmax - onehot)/scaleN on counted rows and 0 elsewhere. rowLoss is
// rows-long scratch; the sum is taken in row order in float64.
//
// Per row: mx = max logit, e_i = expf(l_i - mx) (float32, vectorised),
// Z = Σ e_i in float64 in index order, loss = mx + ln Z - l_target (float64)
// and softmax_i = e_i·float32(1/(Z·scaleN)).
func crossEntropy(logits []float32, targets []int32, rows, V int, dlogits []float32, scaleN float64, rowLoss []float64) (sum float64, count int) {
	parallelRows(rows, func(r0, r1 int) {
		var scratch []float32
		if dlogits == nil {
			scratch = make([]float32, V)
		}
		for r := r0; r < r1; r++ {
			lr := logits[r*V : (r+1)*V]
			tg := int(targets[r])
			if tg < 0 {
				rowLoss[r] = math.NaN()
				if dlogits != nil {
					clear(dlogits[r*V : (r+1)*V])
				}
				continue
			}
			dr := scratch
			if dlogits != nil {
				dr = dlogits[r*V : (r+1)*V]
			}
			dr = dr[:len(lr)]
			copy(dr, lr)
			mx := scaleMax(dr, 1) // dr·1 = dr exactly
			expSubSum(dr, mx)
			var z float64
			for _, e := range dr {
				z += float64(e)
			}
			rowLoss[r] = float64(mx) + math.Log(z) - float64(lr[tg])
			if dlogits != nil {
				scaleVec(dr, float32(1/(z*scaleN)))
				dr[tg] -= float32(1 / scaleN)
			}
		}
	})
	for r := 0; r < rows; r++ {
		if !math.IsNaN(rowLoss[r]) {
			sum += rowLoss[r]
			count++
		}
	}
	return sum, count
}
