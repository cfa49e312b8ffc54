package ml

import "sync"

// SIMD gemm driver (used when simdEnabled). Same contract and the same
// per-element arithmetic as the scalar path in gemm.go: for every kcBlk
// block of the inner dimension, each output element is summed over k in
// order starting from +0, one rounded multiply and one rounded add per
// term, and the block sum is stored (first block, acc=false) or added to C.
// Only the data movement differs:
//
//   - gemmKern8x32 / gemmKern8x16 (AVX-512: 16 or 8 accumulators of 16
//     lanes) or gemmKern4x16 (AVX2: 8 accumulators of 8 lanes) compute
//     8×32, 8×16 or 4×16 output tiles, reading op(A) and op(B) in place
//     through byte strides (no packing): op(A)(i,p) at a + p·sp + i·sr,
//     which covers A and Aᵀ; op(B)(p,j) at b + p·sb + 4j, so a transposed B
//     is first transposed once per call (into a pooled buffer);
//   - the last rows (fewer than 4) and columns (fewer than 16) go through
//     small zero-padded copies and a temporary output tile.
const (
	vmr = 4  // SIMD micro-tile rows
	vnr = 16 // SIMD micro-tile columns
)

var fbufPool sync.Pool // *[]float32 scratch for the SIMD gemm

func getBuf(n int) *[]float32 {
	if p, ok := fbufPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n, max(n, 4096))
	return &b
}

// bOperand is op(B) as the SIMD kernel reads it: element (p,j) at
// b[p*ldb+j].
type bOperand struct {
	b   []float32
	ldb int
	buf *[]float32 // pooled transpose buffer to release, or nil
}

// simdB prepares op(B) (k×n) for the kernel: B itself, or its transpose.
func simdB(transB bool, n, k int, b []float32, ldb int) bOperand {
	if !transB {
		return bOperand{b: b, ldb: ldb}
	}
	buf := getBuf(k * n)
	t := *buf
	transposeInto(t, b, n, k, ldb)
	return bOperand{b: t, ldb: n, buf: buf}
}

func (o bOperand) release() {
	if o.buf != nil {
		fbufPool.Put(o.buf)
	}
}

func gemmSIMD(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	bo := simdB(transB, n, k, b, ldb)
	mc, nc := simdTileShape(m, n)
	tm := (m + mc - 1) / mc
	tn := (n + nc - 1) / nc
	parallelFor(tm*tn, func(t int) {
		i0 := (t / tn) * mc
		j0 := (t % tn) * nc
		gemmTileSIMD(transA, i0, min(i0+mc, m), j0, min(j0+nc, n), k, a, lda, bo, c, ldc, acc)
	})
	bo.release()
}

// simdTileShape is tileShape for the SIMD kernels: it halves the columns
// only down to 32 (one 8×32 micro-tile wide) and then the rows down to 8,
// so that small weight-gradient outputs still get the widest kernel. Like
// tileShape it depends only on the shape; the tiling never affects results.
func simdTileShape(m, n int) (mc, nc int) {
	mc, nc = mcBlk, ncBlk
	tasks := func() int { return ((m + mc - 1) / mc) * ((n + nc - 1) / nc) }
	for tasks() < minTasks && nc > 32 {
		nc /= 2
	}
	for tasks() < minTasks && mc > 8 {
		mc /= 2
	}
	for tasks() < minTasks && nc > 16 {
		nc /= 2
	}
	return mc, nc
}

// gemmSerialSIMD is gemmSerial on the SIMD path.
func gemmSerialSIMD(transA, transB bool, i0, i1, j0, j1, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	if transB {
		// Transpose only the needed rows of B (columns j0..j1 of op(B)).
		bo := simdB(true, j1-j0, k, b[j0*ldb:], ldb)
		gemmTileSIMD(transA, i0, i1, 0, j1-j0, k, a, lda, bo, c[j0:], ldc, acc)
		bo.release()
		return
	}
	gemmTileSIMD(transA, i0, i1, j0, j1, k, a, lda, bOperand{b: b, ldb: ldb}, c, ldc, acc)
}

// gemmTileSIMD computes C rows [i0,i1) × columns [j0,j1).
func gemmTileSIMD(transA bool, i0, i1, j0, j1, k int, a []float32, lda int, bo bOperand, c []float32, ldc int, acc bool) {
	b, ldb := bo.b, bo.ldb
	mh, nw := i1-i0, j1-j0
	nfp := nw / vnr         // full column panels
	jr := j0 + nfp*vnr      // first remainder column
	ir := i0 + (mh/vmr)*vmr // first remainder row
	sp, sr := 4, lda*4      // op(A) strides in bytes
	if transA {
		sp, sr = lda*4, 4
	}
	var scratch *[]float32
	var bpad, apad, ct []float32
	if jr < j1 || ir < i1 {
		scratch = getBuf(kcBlk*vnr + kcBlk*vmr + max(8*vnr, vmr*(nfp+1)*vnr))
		s := *scratch
		bpad, apad, ct = s[:kcBlk*vnr], s[kcBlk*vnr:kcBlk*(vnr+vmr)], s[kcBlk*(vnr+vmr):]
	}
	aAt := func(i, p int) int { // index of op(A)(i,p)
		if transA {
			return p*lda + i
		}
		return i*lda + p
	}
	for p0 := 0; p0 < k; p0 += kcBlk {
		kh := min(kcBlk, k-p0)
		add := acc || p0 > 0
		// Bounds of everything the kernel reads below (the asm does no
		// checking): op(B) rows p0..p0+kh-1 over columns j0..jr-1.
		if nfp > 0 {
			_ = b[(p0+kh-1)*ldb+jr-1]
		}
		if jr < j1 {
			clear(bpad)
			w := j1 - jr
			for p := 0; p < kh; p++ {
				copy(bpad[p*vnr:p*vnr+w], b[(p0+p)*ldb+jr:(p0+p)*ldb+j1])
			}
		}
		// Full row panels: 8 rows (AVX-512) while possible, then 4.
		for i := i0; i < ir; {
			rows, kern := vmr, gemmKern4x16
			if useAVX512 && i+8 <= ir {
				rows, kern = 8, gemmKern8x16
			}
			_ = a[aAt(i+rows-1, p0+kh-1)]
			ap := &a[aAt(i, p0)]
			if nfp > 0 {
				_ = c[(i+rows-1)*ldc+jr-1]
				q := 0 // panels done
				if rows == 8 && nfp >= 2 {
					q = nfp &^ 1
					gemmKern8x32(q/2, kh, ap, sp, sr, &b[p0*ldb+j0], ldb*4, &c[i*ldc+j0], ldc*4, add)
				}
				if q < nfp {
					j := j0 + q*vnr
					kern(nfp-q, kh, ap, sp, sr, &b[p0*ldb+j], ldb*4, &c[i*ldc+j], ldc*4, add)
				}
			}
			if jr < j1 {
				kern(1, kh, ap, sp, sr, &bpad[0], vnr*4, &ct[0], vnr*4, false)
				storeTile(c[i*ldc+jr:], ldc, ct, vnr, rows, j1-jr, add)
			}
			i += rows
		}
		// Remainder rows: zero-padded copy of op(A) in 4-row panel layout.
		if ir < i1 {
			clear(apad)
			for r := 0; ir+r < i1; r++ {
				for p := 0; p < kh; p++ {
					apad[p*vmr+r] = a[aAt(ir+r, p0+p)]
				}
			}
			cw := (nfp + 1) * vnr
			if nfp > 0 {
				gemmKern4x16(nfp, kh, &apad[0], vmr*4, 4, &b[p0*ldb+j0], ldb*4, &ct[0], cw*4, false)
			}
			if jr < j1 {
				gemmKern4x16(1, kh, &apad[0], vmr*4, 4, &bpad[0], vnr*4, &ct[nfp*vnr], cw*4, false)
			}
			storeTile(c[ir*ldc+j0:], ldc, ct, cw, i1-ir, nw, add)
		}
	}
	if scratch != nil {
		fbufPool.Put(scratch)
	}
}

// storeTile stores (add=false) or adds the top-left rows×cols of the tile
// t (row stride ldt) into c (row stride ldc).
func storeTile(c []float32, ldc int, t []float32, ldt, rows, cols int, add bool) {
	for r := 0; r < rows; r++ {
		dst := c[r*ldc : r*ldc+cols]
		src := t[r*ldt : r*ldt+cols]
		if add {
			for q, v := range src {
				dst[q] += v
			}
		} else {
			copy(dst, src)
		}
	}
}
