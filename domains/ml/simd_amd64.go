//go:build amd64 && !purego

package ml

import "golang.org/x/sys/cpu"

// haveSIMD: the AVX2 kernels of simd_amd64.s can run (CPU and OS support;
// x/sys/cpu checks that the OS saves the YMM state).
var haveSIMD = cpu.X86.HasAVX2

// haveAVX512: gemm uses the 8-row AVX-512 micro-kernel (same arithmetic,
// twice the lanes per instruction). useAVX512 can be turned off by tests.
var haveAVX512 = cpu.X86.HasAVX512F

var useAVX512 = haveAVX512

const simdName = "avx2"

// Assembly kernels (simd_amd64.s). Lengths are element counts; n is a
// multiple of 8 unless stated otherwise. Strides are in bytes.

//go:noescape
func gemmKern4x16(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool)

//go:noescape
func gemmKern8x16(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool)

//go:noescape
func gemmKern8x32(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool)

//go:noescape
func softmaxRowPS(x *float32, n, nv int, s float32)

//go:noescape
func dsRowPS(p, d *float32, n, nv int, scale float32)

//go:noescape
func transpose8x8PS(src *float32, lds int, dst *float32, ldd int)

//go:noescape
func geluFwd512PS(u, aux, a *float32, n int)

//go:noescape
func sumPS(x *float32, n int, l *lanes8)

//go:noescape
func sumSqDiffPS(x *float32, n int, mu float32, l *lanes8)

//go:noescape
func normApplyPS(x, w, b, y *float32, n int, mu, rs float32)

//go:noescape
func normApplyNoBiasPS(x, w, y *float32, n int, mu, rs float32)

//go:noescape
func normBwdSumsPS(x, dy, w, tr *float32, n int, mu, rs float32, l1, l2 *lanes8)

//go:noescape
func normBwdApplyPS(x, dy, w, dx *float32, n int, mu, rs, a, c float32)

//go:noescape
func geluFwdPS(u, aux, a *float32, n int)

//go:noescape
func geluBwdPS(u, aux, da, du *float32, n int)

//go:noescape
func swigluFwdPS(gt, v, aux, a *float32, n int)

//go:noescape
func swigluBwdPS(gt, v, aux, da, dg, dv *float32, n int)

//go:noescape
func scaleMaxPS(x *float32, n int, s float32, l *lanes8)

//go:noescape
func expSubSumPS(x *float32, n int, mx float32, l *lanes8)

//go:noescape
func scalePS(x *float32, n int, s float32)

//go:noescape
func dotPS(x, y *float32, n int, l *lanes8)

//go:noescape
func dsApplyPS(p, d *float32, n int, sum, scale float32)

//go:noescape
func addPS(x, y *float32, n int)

//go:noescape
func colAcc16PS(src *float32, rows, stride int, acc *[16]float32)

//go:noescape
func sumSq64PS(x *float32, n int, l *lanes8d)

//go:noescape
func adamWPS(p, gr, m, v *float32, n int, k *adamConsts)
