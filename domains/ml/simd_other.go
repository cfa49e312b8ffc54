//go:build !amd64 || purego

package ml

// No assembly kernels on this platform: the scalar Go path runs. The stubs
// below are never called (simdEnabled is false).

const haveSIMD = false

const simdName = ""

func noSIMD() { panic("ml: SIMD kernel called without SIMD support") }

func gemmKern4x16(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool) {
	noSIMD()
}
func gemmKern8x16(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool) {
	noSIMD()
}

func gemmKern8x32(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool) {
	noSIMD()
}

func softmaxRowPS(x *float32, n, nv int, s float32)   { noSIMD() }
func dsRowPS(p, d *float32, n, nv int, scale float32) { noSIMD() }

func transpose8x8PS(src *float32, lds int, dst *float32, ldd int) { noSIMD() }

func geluFwd512PS(u, aux, a *float32, n int) { noSIMD() }

const haveAVX512 = false

var useAVX512 = false

func sumPS(x *float32, n int, l *lanes8)                        { noSIMD() }
func sumSqDiffPS(x *float32, n int, mu float32, l *lanes8)      { noSIMD() }
func normApplyPS(x, w, b, y *float32, n int, mu, rs float32)    { noSIMD() }
func normApplyNoBiasPS(x, w, y *float32, n int, mu, rs float32) { noSIMD() }
func normBwdSumsPS(x, dy, w, tr *float32, n int, mu, rs float32, l1, l2 *lanes8) {
	noSIMD()
}
func normBwdApplyPS(x, dy, w, dx *float32, n int, mu, rs, a, c float32) { noSIMD() }
func geluFwdPS(u, aux, a *float32, n int)                               { noSIMD() }
func geluBwdPS(u, aux, da, du *float32, n int)                          { noSIMD() }
func swigluFwdPS(gt, v, aux, a *float32, n int)                         { noSIMD() }
func swigluBwdPS(gt, v, aux, da, dg, dv *float32, n int)                { noSIMD() }
func scaleMaxPS(x *float32, n int, s float32, l *lanes8)                { noSIMD() }
func expSubSumPS(x *float32, n int, mx float32, l *lanes8)              { noSIMD() }
func scalePS(x *float32, n int, s float32)                              { noSIMD() }
func dotPS(x, y *float32, n int, l *lanes8)                             { noSIMD() }
func dsApplyPS(p, d *float32, n int, sum, scale float32)                { noSIMD() }
func addPS(x, y *float32, n int)                                        { noSIMD() }
func colAcc16PS(src *float32, rows, stride int, acc *[16]float32)       { noSIMD() }
func sumSq64PS(x *float32, n int, l *lanes8d)                           { noSIMD() }
func adamWPS(p, gr, m, v *float32, n int, k *adamConsts)                { noSIMD() }
