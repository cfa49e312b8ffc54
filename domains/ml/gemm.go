package ml

import (
	"sync"
	"time"
)

// Matrix multiplication kernel.
//
// gemm is a cache-blocked, register-tiled single-precision matrix multiply
// with two interchangeable implementations that produce identical bits:
//
//   - SIMD (amd64 with AVX2, chosen at run time; gemm_simd.go and
//     simd_amd64.s): 8×32 and 8×16 AVX-512 micro-kernels (16 or 8 zmm
//     accumulators) or a 4×16 AVX2 one (8 ymm accumulators) read op(A) and
//     op(B) in place through strides (a transposed B is transposed once per
//     call); one vector lane holds one output element. VMULPS then VADDPS,
//     never FMA. About 210 GFLOP/s per core in the kernel on the development
//     machine (AMD EPYC Turin-class, AVX-512), 140-200 GFLOP/s per core on
//     the trainer's shapes, ~10x the scalar path;
//   - scalar (every platform, and HYPERSPACE_ML_SIMD=off): the GotoBLAS-style
//     code below. The output is cut into tiles of at most mcBlk×ncBlk
//     (smaller for small outputs, see tileShape); each tile is one task for
//     the worker pool, computed entirely by one goroutine; for each
//     kcBlk-long slice of the inner dimension the task packs its block of
//     op(A) into mr-row panels and its block of op(B) into nr-column panels
//     (contiguous, k-major, zero padded), which also absorbs any
//     transposition; a 2×4 micro-kernel keeps its 8 accumulators in
//     registers (amd64 exposes 15 usable XMM registers to Go code; larger
//     tiles spill), with the k loop unrolled twice. Scalar SSE, roughly
//     13 GFLOP/s per core.
//
// Both compute every output element the same way: for each kcBlk block of
// the inner dimension in sequence, t = Σ a·b over the block in k order
// starting from +0, each product rounded to float32 and then added (the Go
// code writes float32(a*b) so the compiler cannot fuse it into an FMA),
// then C = t for the first block when acc is false, else C += t. Blocking of
// rows and columns, packing and the choice of kernel never change a result,
// and the tiling does not depend on the number of workers, so results are
// bit-identical for any GOMAXPROCS and either path.
const (
	mr    = 2   // micro-tile rows
	nr    = 4   // micro-tile columns
	kcBlk = 256 // inner-dimension block
	mcBlk = 64  // rows per task
	ncBlk = 128 // columns per task
)

var packPool = sync.Pool{New: func() any {
	b := make([]float32, mcBlk*kcBlk+kcBlk*ncBlk)
	return &b
}}

// gemm computes C = op(A)·op(B) (acc=false) or C += op(A)·op(B) (acc=true).
// op(A) is m×k and reads A[i*lda+p], or A[p*lda+i] when transA.
// op(B) is k×n and reads B[p*ldb+j], or B[j*ldb+p] when transB.
// C is m×n with row stride ldc. It must not be called from inside a
// parallelFor task.
func gemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !acc {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if simdEnabled {
		gemmSIMD(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, acc)
		return
	}
	mc, nc := tileShape(m, n)
	tm := (m + mc - 1) / mc
	tn := (n + nc - 1) / nc
	parallelFor(tm*tn, func(t int) {
		i0 := (t / tn) * mc
		j0 := (t % tn) * nc
		gemmTile(transA, transB, i0, min(i0+mc, m), j0, min(j0+nc, n), k, a, lda, b, ldb, c, ldc, acc)
	})
}

// minTasks is how many output tiles gemm aims for: small outputs with a
// long inner dimension (weight gradients such as dW = Xᵀ·dY, with
// dModel-sized outputs and batch×time-long sums) are cut into smaller tiles
// so that every core gets work.
const minTasks = 16

// tileShape picks the task tile for an m×n output: mcBlk×ncBlk, halved
// (larger side first) while there are fewer than minTasks tiles, down to
// 16×16. It depends only on the shape, never on the number of workers.
func tileShape(m, n int) (mc, nc int) {
	mc, nc = mcBlk, ncBlk
	for ((m+mc-1)/mc)*((n+nc-1)/nc) < minTasks && (mc > 16 || nc > 16) {
		if nc >= mc && nc > 16 {
			nc /= 2
		} else {
			mc /= 2
		}
	}
	return mc, nc
}

// gemmSerial is gemm restricted to output rows [i0,i1) and columns
// [j0,j1), computed by the calling goroutine (usable inside parallelFor
// tasks). Indices into a, b and c are absolute, as in gemm.
func gemmSerial(transA, transB bool, i0, i1, j0, j1, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	if i0 >= i1 || j0 >= j1 {
		return
	}
	if k == 0 {
		if !acc {
			for r := i0; r < i1; r++ {
				clear(c[r*ldc+j0 : r*ldc+j1])
			}
		}
		return
	}
	if simdEnabled {
		gemmSerialSIMD(transA, transB, i0, i1, j0, j1, k, a, lda, b, ldb, c, ldc, acc)
		return
	}
	for i := i0; i < i1; i += mcBlk {
		for j := j0; j < j1; j += ncBlk {
			if k == 0 {
				if !acc {
					for r := i; r < min(i+mcBlk, i1); r++ {
						clear(c[r*ldc+j : r*ldc+min(j+ncBlk, j1)])
					}
				}
				continue
			}
			gemmTile(transA, transB, i, min(i+mcBlk, i1), j, min(j+ncBlk, j1), k, a, lda, b, ldb, c, ldc, acc)
		}
	}
}

// gemmTile computes the C tile rows [i0,i1) × columns [j0,j1).
func gemmTile(transA, transB bool, i0, i1, j0, j1, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	bufp := packPool.Get().(*[]float32)
	buf := *bufp
	mh, nw := i1-i0, j1-j0
	mp := (mh + mr - 1) / mr // A panels
	np := (nw + nr - 1) / nr // B panels
	for p0 := 0; p0 < k; p0 += kcBlk {
		kh := min(kcBlk, k-p0)
		ap := buf[:mp*mr*kh]
		bp := buf[mcBlk*kcBlk : mcBlk*kcBlk+np*nr*kh]
		packA(transA, a, lda, i0, i1, p0, kh, ap)
		packB(transB, b, ldb, j0, j1, p0, kh, bp)
		add := acc || p0 > 0
		for jp := 0; jp < np; jp++ {
			bpan := bp[jp*nr*kh : (jp+1)*nr*kh]
			j := j0 + jp*nr
			nv := min(nr, j1-j)
			for ip := 0; ip < mp; ip++ {
				apan := ap[ip*mr*kh : (ip+1)*mr*kh]
				i := i0 + ip*mr
				var t [mr * nr]float32
				kernel2x4(apan, bpan, &t)
				mv := min(mr, i1-i)
				if mv == mr && nv == nr {
					r0 := c[i*ldc+j : i*ldc+j+nr : i*ldc+j+nr]
					r1 := c[(i+1)*ldc+j : (i+1)*ldc+j+nr : (i+1)*ldc+j+nr]
					if add {
						r0[0] += t[0]
						r0[1] += t[1]
						r0[2] += t[2]
						r0[3] += t[3]
						r1[0] += t[4]
						r1[1] += t[5]
						r1[2] += t[6]
						r1[3] += t[7]
					} else {
						r0[0], r0[1], r0[2], r0[3] = t[0], t[1], t[2], t[3]
						r1[0], r1[1], r1[2], r1[3] = t[4], t[5], t[6], t[7]
					}
					continue
				}
				for r := 0; r < mv; r++ {
					row := c[(i+r)*ldc+j : (i+r)*ldc+j+nv]
					for q := range row {
						if add {
							row[q] += t[r*nr+q]
						} else {
							row[q] = t[r*nr+q]
						}
					}
				}
			}
		}
	}
	packPool.Put(bufp)
}

// packA writes rows [i0,i1) and inner indices [p0,p0+kh) of op(A) as
// mr-row panels: dst[panel*mr*kh + p*mr + r].
func packA(trans bool, a []float32, lda, i0, i1, p0, kh int, dst []float32) {
	full := (i1 - i0) / mr // complete panels
	if trans {
		// op(A) = Aᵀ: read 8 contiguous values of each row of A and scatter
		// them into 4 panels (a few write streams only: the panels are
		// 2·kh floats apart, which would alias in L1 with many streams).
		ip := 0
		for ; ip+4 <= full; ip += 4 {
			d0 := dst[ip*mr*kh : (ip+1)*mr*kh]
			d1 := dst[(ip+1)*mr*kh : (ip+2)*mr*kh]
			d2 := dst[(ip+2)*mr*kh : (ip+3)*mr*kh]
			d3 := dst[(ip+3)*mr*kh : (ip+4)*mr*kh]
			d1, d2, d3 = d1[:len(d0)], d2[:len(d0)], d3[:len(d0)]
			c := i0 + ip*mr
			for p := 0; p+1 < len(d0); p += 2 {
				src := a[(p0+p/2)*lda+c : (p0+p/2)*lda+c+8]
				d0[p], d0[p+1] = src[0], src[1]
				d1[p], d1[p+1] = src[2], src[3]
				d2[p], d2[p+1] = src[4], src[5]
				d3[p], d3[p+1] = src[6], src[7]
			}
		}
		for ; ip < full; ip++ {
			pan := dst[ip*mr*kh : (ip+1)*mr*kh]
			c := i0 + ip*mr
			for p := 0; p < kh; p++ {
				src := a[(p0+p)*lda+c : (p0+p)*lda+c+2]
				pan[2*p], pan[2*p+1] = src[0], src[1]
			}
		}
	}
	for ip := 0; i0+ip*mr < i1; ip++ {
		pan := dst[ip*mr*kh : (ip+1)*mr*kh]
		i := i0 + ip*mr
		if i+mr <= i1 {
			if !trans {
				r0 := a[i*lda+p0 : i*lda+p0+kh]
				r1 := a[(i+1)*lda+p0 : (i+1)*lda+p0+kh]
				pan = pan[:2*len(r0)]
				r1 = r1[:len(r0)]
				for p, v := range r0 {
					pan[2*p] = v
					pan[2*p+1] = r1[p]
				}
			}
			continue
		}
		clear(pan)
		for r := 0; i+r < i1; r++ {
			for p := 0; p < kh; p++ {
				if trans {
					pan[p*mr+r] = a[(p0+p)*lda+i+r]
				} else {
					pan[p*mr+r] = a[(i+r)*lda+p0+p]
				}
			}
		}
	}
}

// packB writes inner indices [p0,p0+kh) and columns [j0,j1) of op(B) as
// nr-column panels: dst[panel*nr*kh + p*nr + c].
func packB(trans bool, b []float32, ldb, j0, j1, p0, kh int, dst []float32) {
	for jp := 0; j0+jp*nr < j1; jp++ {
		pan := dst[jp*nr*kh : (jp+1)*nr*kh]
		j := j0 + jp*nr
		nv := min(nr, j1-j)
		if nv < nr {
			clear(pan)
		}
		if !trans {
			if nv == nr {
				for p := 0; p < kh; p++ {
					src := b[(p0+p)*ldb+j : (p0+p)*ldb+j+4]
					d := pan[p*4 : p*4+4]
					d[0], d[1], d[2], d[3] = src[0], src[1], src[2], src[3]
				}
				continue
			}
			for p := 0; p < kh; p++ {
				for q := 0; q < nv; q++ {
					pan[p*nr+q] = b[(p0+p)*ldb+j+q]
				}
			}
			continue
		}
		for q := 0; q < nv; q++ {
			src := b[(j+q)*ldb+p0 : (j+q)*ldb+p0+kh]
			for p, v := range src {
				pan[p*nr+q] = v
			}
		}
	}
}

// kernel2x4 accumulates the 2×4 product of an A panel (k-major pairs) and a
// B panel (k-major quads) into out (row-major 2×4), overwriting it. The main
// loop is unrolled twice over k (about 40% faster than the plain loop here:
// fewer slice updates and loop tests per multiply-add).
func kernel2x4(ap, bp []float32, out *[mr * nr]float32) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	for len(ap) >= 4 && len(bp) >= 8 {
		a0, a1 := ap[0], ap[1]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += float32(a0 * b0)
		c01 += float32(a0 * b1)
		c02 += float32(a0 * b2)
		c03 += float32(a0 * b3)
		c10 += float32(a1 * b0)
		c11 += float32(a1 * b1)
		c12 += float32(a1 * b2)
		c13 += float32(a1 * b3)
		a0, a1 = ap[2], ap[3]
		b0, b1, b2, b3 = bp[4], bp[5], bp[6], bp[7]
		c00 += float32(a0 * b0)
		c01 += float32(a0 * b1)
		c02 += float32(a0 * b2)
		c03 += float32(a0 * b3)
		c10 += float32(a1 * b0)
		c11 += float32(a1 * b1)
		c12 += float32(a1 * b2)
		c13 += float32(a1 * b3)
		ap = ap[4:]
		bp = bp[8:]
	}
	if len(ap) >= 2 && len(bp) >= 4 {
		a0, a1 := ap[0], ap[1]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += float32(a0 * b0)
		c01 += float32(a0 * b1)
		c02 += float32(a0 * b2)
		c03 += float32(a0 * b3)
		c10 += float32(a1 * b0)
		c11 += float32(a1 * b1)
		c12 += float32(a1 * b2)
		c13 += float32(a1 * b3)
	}
	*out = [mr * nr]float32{c00, c01, c02, c03, c10, c11, c12, c13}
}

// MeasureMatmulPeak multiplies random n×n by n×n float32 matrices with the
// package's gemm kernel on all GOMAXPROCS cores, repeatedly for about dur,
// and returns the best achieved GFLOP/s (2n³ flops per product).
//
// This is the "peak" the trainer's efficiency is compared against: it is
// the best the package's kernel (SIMD when enabled, else scalar) reaches on
// large square matrices on this machine, not the hardware's theoretical
// peak.
func MeasureMatmulPeak(n int, dur time.Duration) float64 {
	if n <= 0 {
		n = 512
	}
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	c := make([]float32, n*n)
	for i := range a {
		a[i] = float32(i%13)*0.01 - 0.06
		b[i] = float32(i%7)*0.02 - 0.06
	}
	gemm(false, false, n, n, n, a, n, b, n, c, n, false) // warm up
	best := 0.0
	start := time.Now()
	for reps := 0; reps < 3 || time.Since(start) < dur; reps++ {
		t0 := time.Now()
		gemm(false, false, n, n, n, a, n, b, n, c, n, false)
		if s := time.Since(t0).Seconds(); s > 0 {
			best = max(best, 2*float64(n)*float64(n)*float64(n)/s/1e9)
		}
	}
	return best
}
