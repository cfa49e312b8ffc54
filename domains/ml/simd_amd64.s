//go:build amd64 && !purego

#include "textflag.h"

// AVX2 kernels of the trainer. Each one performs, per element, exactly the
// IEEE operations of its scalar Go twin in kernels.go / gemm.go / mathf.go,
// in the same order (separate VMULPS/VADDPS, never FMA), so results are
// bit-identical. Reductions keep 8 lanes in one register (element i in lane
// i mod 8); the lanes are combined by the Go caller. n is a positive
// multiple of 8. Go operand order: VSUBPS b, a, d means d = a - b.

// Constants, each replicated to 8 lanes (generated from the float32
// values the Go code converts its untyped constants to).
DATA kc<>+0(SB)/4, $0x3fb8aa3b
DATA kc<>+4(SB)/4, $0x3fb8aa3b
DATA kc<>+8(SB)/4, $0x3fb8aa3b
DATA kc<>+12(SB)/4, $0x3fb8aa3b
DATA kc<>+16(SB)/4, $0x3fb8aa3b
DATA kc<>+20(SB)/4, $0x3fb8aa3b
DATA kc<>+24(SB)/4, $0x3fb8aa3b
DATA kc<>+28(SB)/4, $0x3fb8aa3b
DATA kc<>+32(SB)/4, $0x3f317200
DATA kc<>+36(SB)/4, $0x3f317200
DATA kc<>+40(SB)/4, $0x3f317200
DATA kc<>+44(SB)/4, $0x3f317200
DATA kc<>+48(SB)/4, $0x3f317200
DATA kc<>+52(SB)/4, $0x3f317200
DATA kc<>+56(SB)/4, $0x3f317200
DATA kc<>+60(SB)/4, $0x3f317200
DATA kc<>+64(SB)/4, $0x35bfbe8e
DATA kc<>+68(SB)/4, $0x35bfbe8e
DATA kc<>+72(SB)/4, $0x35bfbe8e
DATA kc<>+76(SB)/4, $0x35bfbe8e
DATA kc<>+80(SB)/4, $0x35bfbe8e
DATA kc<>+84(SB)/4, $0x35bfbe8e
DATA kc<>+88(SB)/4, $0x35bfbe8e
DATA kc<>+92(SB)/4, $0x35bfbe8e
DATA kc<>+96(SB)/4, $0x3ab60b61
DATA kc<>+100(SB)/4, $0x3ab60b61
DATA kc<>+104(SB)/4, $0x3ab60b61
DATA kc<>+108(SB)/4, $0x3ab60b61
DATA kc<>+112(SB)/4, $0x3ab60b61
DATA kc<>+116(SB)/4, $0x3ab60b61
DATA kc<>+120(SB)/4, $0x3ab60b61
DATA kc<>+124(SB)/4, $0x3ab60b61
DATA kc<>+128(SB)/4, $0x3c088889
DATA kc<>+132(SB)/4, $0x3c088889
DATA kc<>+136(SB)/4, $0x3c088889
DATA kc<>+140(SB)/4, $0x3c088889
DATA kc<>+144(SB)/4, $0x3c088889
DATA kc<>+148(SB)/4, $0x3c088889
DATA kc<>+152(SB)/4, $0x3c088889
DATA kc<>+156(SB)/4, $0x3c088889
DATA kc<>+160(SB)/4, $0x3d2aaaab
DATA kc<>+164(SB)/4, $0x3d2aaaab
DATA kc<>+168(SB)/4, $0x3d2aaaab
DATA kc<>+172(SB)/4, $0x3d2aaaab
DATA kc<>+176(SB)/4, $0x3d2aaaab
DATA kc<>+180(SB)/4, $0x3d2aaaab
DATA kc<>+184(SB)/4, $0x3d2aaaab
DATA kc<>+188(SB)/4, $0x3d2aaaab
DATA kc<>+192(SB)/4, $0x3e2aaaab
DATA kc<>+196(SB)/4, $0x3e2aaaab
DATA kc<>+200(SB)/4, $0x3e2aaaab
DATA kc<>+204(SB)/4, $0x3e2aaaab
DATA kc<>+208(SB)/4, $0x3e2aaaab
DATA kc<>+212(SB)/4, $0x3e2aaaab
DATA kc<>+216(SB)/4, $0x3e2aaaab
DATA kc<>+220(SB)/4, $0x3e2aaaab
DATA kc<>+224(SB)/4, $0x3f000000
DATA kc<>+228(SB)/4, $0x3f000000
DATA kc<>+232(SB)/4, $0x3f000000
DATA kc<>+236(SB)/4, $0x3f000000
DATA kc<>+240(SB)/4, $0x3f000000
DATA kc<>+244(SB)/4, $0x3f000000
DATA kc<>+248(SB)/4, $0x3f000000
DATA kc<>+252(SB)/4, $0x3f000000
DATA kc<>+256(SB)/4, $0x3f800000
DATA kc<>+260(SB)/4, $0x3f800000
DATA kc<>+264(SB)/4, $0x3f800000
DATA kc<>+268(SB)/4, $0x3f800000
DATA kc<>+272(SB)/4, $0x3f800000
DATA kc<>+276(SB)/4, $0x3f800000
DATA kc<>+280(SB)/4, $0x3f800000
DATA kc<>+284(SB)/4, $0x3f800000
DATA kc<>+288(SB)/4, $0x40000000
DATA kc<>+292(SB)/4, $0x40000000
DATA kc<>+296(SB)/4, $0x40000000
DATA kc<>+300(SB)/4, $0x40000000
DATA kc<>+304(SB)/4, $0x40000000
DATA kc<>+308(SB)/4, $0x40000000
DATA kc<>+312(SB)/4, $0x40000000
DATA kc<>+316(SB)/4, $0x40000000
DATA kc<>+320(SB)/4, $0x42b170a4
DATA kc<>+324(SB)/4, $0x42b170a4
DATA kc<>+328(SB)/4, $0x42b170a4
DATA kc<>+332(SB)/4, $0x42b170a4
DATA kc<>+336(SB)/4, $0x42b170a4
DATA kc<>+340(SB)/4, $0x42b170a4
DATA kc<>+344(SB)/4, $0x42b170a4
DATA kc<>+348(SB)/4, $0x42b170a4
DATA kc<>+352(SB)/4, $0xc2aea8f6
DATA kc<>+356(SB)/4, $0xc2aea8f6
DATA kc<>+360(SB)/4, $0xc2aea8f6
DATA kc<>+364(SB)/4, $0xc2aea8f6
DATA kc<>+368(SB)/4, $0xc2aea8f6
DATA kc<>+372(SB)/4, $0xc2aea8f6
DATA kc<>+376(SB)/4, $0xc2aea8f6
DATA kc<>+380(SB)/4, $0xc2aea8f6
DATA kc<>+384(SB)/4, $0x3d372713
DATA kc<>+388(SB)/4, $0x3d372713
DATA kc<>+392(SB)/4, $0x3d372713
DATA kc<>+396(SB)/4, $0x3d372713
DATA kc<>+400(SB)/4, $0x3d372713
DATA kc<>+404(SB)/4, $0x3d372713
DATA kc<>+408(SB)/4, $0x3d372713
DATA kc<>+412(SB)/4, $0x3d372713
DATA kc<>+416(SB)/4, $0x3e095d4f
DATA kc<>+420(SB)/4, $0x3e095d4f
DATA kc<>+424(SB)/4, $0x3e095d4f
DATA kc<>+428(SB)/4, $0x3e095d4f
DATA kc<>+432(SB)/4, $0x3e095d4f
DATA kc<>+436(SB)/4, $0x3e095d4f
DATA kc<>+440(SB)/4, $0x3e095d4f
DATA kc<>+444(SB)/4, $0x3e095d4f
DATA kc<>+448(SB)/4, $0x3f4c422a
DATA kc<>+452(SB)/4, $0x3f4c422a
DATA kc<>+456(SB)/4, $0x3f4c422a
DATA kc<>+460(SB)/4, $0x3f4c422a
DATA kc<>+464(SB)/4, $0x3f4c422a
DATA kc<>+468(SB)/4, $0x3f4c422a
DATA kc<>+472(SB)/4, $0x3f4c422a
DATA kc<>+476(SB)/4, $0x3f4c422a
DATA kc<>+480(SB)/4, $0x80000000
DATA kc<>+484(SB)/4, $0x80000000
DATA kc<>+488(SB)/4, $0x80000000
DATA kc<>+492(SB)/4, $0x80000000
DATA kc<>+496(SB)/4, $0x80000000
DATA kc<>+500(SB)/4, $0x80000000
DATA kc<>+504(SB)/4, $0x80000000
DATA kc<>+508(SB)/4, $0x80000000
DATA kc<>+512(SB)/4, $0x7f800000
DATA kc<>+516(SB)/4, $0x7f800000
DATA kc<>+520(SB)/4, $0x7f800000
DATA kc<>+524(SB)/4, $0x7f800000
DATA kc<>+528(SB)/4, $0x7f800000
DATA kc<>+532(SB)/4, $0x7f800000
DATA kc<>+536(SB)/4, $0x7f800000
DATA kc<>+540(SB)/4, $0x7f800000
DATA kc<>+544(SB)/4, $0x0000007f
DATA kc<>+548(SB)/4, $0x0000007f
DATA kc<>+552(SB)/4, $0x0000007f
DATA kc<>+556(SB)/4, $0x0000007f
DATA kc<>+560(SB)/4, $0x0000007f
DATA kc<>+564(SB)/4, $0x0000007f
DATA kc<>+568(SB)/4, $0x0000007f
DATA kc<>+572(SB)/4, $0x0000007f
DATA kc<>+576(SB)/4, $0xff800000
DATA kc<>+580(SB)/4, $0xff800000
DATA kc<>+584(SB)/4, $0xff800000
DATA kc<>+588(SB)/4, $0xff800000
DATA kc<>+592(SB)/4, $0xff800000
DATA kc<>+596(SB)/4, $0xff800000
DATA kc<>+600(SB)/4, $0xff800000
DATA kc<>+604(SB)/4, $0xff800000
GLOBL kc<>(SB), RODATA|NOPTR, $608

// masktbl: 8 all-ones words then 8 zero words; the 8 words starting at
// word 8-t have the first t lanes set.
DATA masktbl<>+0(SB)/8, $0xffffffffffffffff
DATA masktbl<>+8(SB)/8, $0xffffffffffffffff
DATA masktbl<>+16(SB)/8, $0xffffffffffffffff
DATA masktbl<>+24(SB)/8, $0xffffffffffffffff
DATA masktbl<>+32(SB)/8, $0
DATA masktbl<>+40(SB)/8, $0
DATA masktbl<>+48(SB)/8, $0
DATA masktbl<>+56(SB)/8, $0
GLOBL masktbl<>(SB), RODATA|NOPTR, $64
#define K_log2e kc<>+0(SB)
#define K_ln2hi kc<>+32(SB)
#define K_ln2lo kc<>+64(SB)
#define K_c720 kc<>+96(SB)
#define K_c120 kc<>+128(SB)
#define K_c24 kc<>+160(SB)
#define K_c6 kc<>+192(SB)
#define K_half kc<>+224(SB)
#define K_one kc<>+256(SB)
#define K_two kc<>+288(SB)
#define K_hi kc<>+320(SB)
#define K_lo kc<>+352(SB)
#define K_gelua kc<>+384(SB)
#define K_gelu3a kc<>+416(SB)
#define K_geluc kc<>+448(SB)
#define K_sign kc<>+480(SB)
#define K_inf kc<>+512(SB)
#define K_i127 kc<>+544(SB)
#define K_ninf kc<>+576(SB)

// EXPPS(X, R, T1, T2, T3): R = expf(X) per lane (mathf.go), X preserved.
#define EXPPS(X, R, T1, T2, T3) \
	VMULPS     K_log2e, X, T1 \
	VANDPS     K_sign, T1, T2 \
	VORPS      K_half, T2, T2 \
	VADDPS     T2, T1, T1 \
	VCVTTPS2DQ T1, T1 \
	VCVTDQ2PS  T1, T2 \
	VMULPS     K_ln2hi, T2, T3 \
	VSUBPS     T3, X, R \
	VMULPS     K_ln2lo, T2, T3 \
	VSUBPS     T3, R, R \
	VMULPS     K_c720, R, T2 \
	VADDPS     K_c120, T2, T2 \
	VMULPS     R, T2, T2 \
	VADDPS     K_c24, T2, T2 \
	VMULPS     R, T2, T2 \
	VADDPS     K_c6, T2, T2 \
	VMULPS     R, T2, T2 \
	VADDPS     K_half, T2, T2 \
	VMULPS     R, T2, T2 \
	VADDPS     K_one, T2, T2 \
	VMULPS     R, T2, T2 \
	VADDPS     K_one, T2, T2 \
	VPADDD     K_i127, T1, T1 \
	VPSLLD     $23, T1, T1 \
	VMULPS     T1, T2, R \
	VCMPPS     $0x1e, K_hi, X, T3 \
	VBLENDVPS  T3, K_inf, R, R \
	VCMPPS     $0x11, K_lo, X, T3 \
	VANDNPS    R, T3, R \
	VCMPPS     $3, X, X, T3 \
	VBLENDVPS  T3, X, R, R

// func gemmKern4x16(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool)
// For each of np 16-column panels (b and c advance 16 floats per panel):
// t[r][j] = Σ_p a(p,r)·b(p,j) summed in p order from +0, a(p,r) at
// a + p·sp + r·sr, b(p,j) at b + p·sb + 4j; then c[r][j] = t (add=false)
// or c[r][j] += t, with c row r at c + r·ldc. Strides in bytes; k >= 1.
TEXT ·gemmKern4x16(SB), NOSPLIT, $0-73
	MOVQ np+0(FP), R8
	MOVQ sp+24(FP), R10
	MOVQ sr+32(FP), R11
	MOVQ b+40(FP), DI
	MOVQ sb+48(FP), R12
	MOVQ c+56(FP), DX
	MOVQ ldc+64(FP), R13
	LEAQ (R11)(R11*2), BX

gk_panel:
	MOVQ a+16(FP), CX
	MOVQ DI, SI
	MOVQ k+8(FP), AX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7

gk_loop:
	VMOVUPS      (SI), Y8
	VMOVUPS      32(SI), Y9
	VBROADCASTSS (CX), Y10
	VMULPS       Y8, Y10, Y11
	VADDPS       Y11, Y0, Y0
	VMULPS       Y9, Y10, Y12
	VADDPS       Y12, Y1, Y1
	VBROADCASTSS (CX)(R11*1), Y13
	VMULPS       Y8, Y13, Y14
	VADDPS       Y14, Y2, Y2
	VMULPS       Y9, Y13, Y15
	VADDPS       Y15, Y3, Y3
	VBROADCASTSS (CX)(R11*2), Y10
	VMULPS       Y8, Y10, Y11
	VADDPS       Y11, Y4, Y4
	VMULPS       Y9, Y10, Y12
	VADDPS       Y12, Y5, Y5
	VBROADCASTSS (CX)(BX*1), Y13
	VMULPS       Y8, Y13, Y14
	VADDPS       Y14, Y6, Y6
	VMULPS       Y9, Y13, Y15
	VADDPS       Y15, Y7, Y7
	ADDQ         R10, CX
	ADDQ         R12, SI
	DECQ         AX
	JNZ          gk_loop

	LEAQ (DX)(R13*2), CX
	CMPB add+72(FP), $0
	JEQ  gk_store
	VADDPS (DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	VADDPS (DX)(R13*1), Y2, Y2
	VADDPS 32(DX)(R13*1), Y3, Y3
	VADDPS (CX), Y4, Y4
	VADDPS 32(CX), Y5, Y5
	VADDPS (CX)(R13*1), Y6, Y6
	VADDPS 32(CX)(R13*1), Y7, Y7

gk_store:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (DX)(R13*1)
	VMOVUPS Y3, 32(DX)(R13*1)
	VMOVUPS Y4, (CX)
	VMOVUPS Y5, 32(CX)
	VMOVUPS Y6, (CX)(R13*1)
	VMOVUPS Y7, 32(CX)(R13*1)
	ADDQ    $64, DI
	ADDQ    $64, DX
	DECQ    R8
	JNZ     gk_panel
	VZEROUPPER
	RET

// func sumPS(x *float32, n int, l *lanes8)
TEXT ·sumPS(SB), NOSPLIT, $0-24
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    l+16(FP), DI
	VMOVUPS (DI), Y0

sum_loop:
	VADDPS (SI), Y0, Y0
	ADDQ   $32, SI
	SUBQ   $8, CX
	JNZ    sum_loop
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func sumSqDiffPS(x *float32, n int, mu float32, l *lanes8)
TEXT ·sumSqDiffPS(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS mu+16(FP), Y1
	MOVQ         l+24(FP), DI
	VMOVUPS      (DI), Y0

ssd_loop:
	VMOVUPS (SI), Y2
	VSUBPS  Y1, Y2, Y2
	VMULPS  Y2, Y2, Y2
	VADDPS  Y2, Y0, Y0
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     ssd_loop
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func normApplyPS(x, w, b, y *float32, n int, mu, rs float32)
// y = ((x-mu)*rs)*g + b
TEXT ·normApplyPS(SB), NOSPLIT, $0-48
	MOVQ         x+0(FP), SI
	MOVQ         w+8(FP), DX
	MOVQ         b+16(FP), R8
	MOVQ         y+24(FP), DI
	MOVQ         n+32(FP), CX
	SHLQ         $2, CX
	VBROADCASTSS mu+40(FP), Y0
	VBROADCASTSS rs+44(FP), Y1
	XORQ         AX, AX

na_loop:
	VMOVUPS (SI)(AX*1), Y2
	VSUBPS  Y0, Y2, Y2
	VMULPS  Y1, Y2, Y2
	VMULPS  (DX)(AX*1), Y2, Y2
	VADDPS  (R8)(AX*1), Y2, Y2
	VMOVUPS Y2, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     na_loop
	VZEROUPPER
	RET

// func normApplyNoBiasPS(x, w, y *float32, n int, mu, rs float32)
// y = ((x-mu)*rs)*g
TEXT ·normApplyNoBiasPS(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), SI
	MOVQ         w+8(FP), DX
	MOVQ         y+16(FP), DI
	MOVQ         n+24(FP), CX
	SHLQ         $2, CX
	VBROADCASTSS mu+32(FP), Y0
	VBROADCASTSS rs+36(FP), Y1
	XORQ         AX, AX

nb_loop:
	VMOVUPS (SI)(AX*1), Y2
	VSUBPS  Y0, Y2, Y2
	VMULPS  Y1, Y2, Y2
	VMULPS  (DX)(AX*1), Y2, Y2
	VMOVUPS Y2, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     nb_loop
	VZEROUPPER
	RET

// func normBwdSumsPS(x, dy, w, tr *float32, n int, mu, rs float32, l1, l2 *lanes8)
// xh = (x-mu)*rs; dh = dy*g; tr = dy*xh; l1 += dh; l2 += dh*xh
TEXT ·normBwdSumsPS(SB), NOSPLIT, $0-64
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         w+16(FP), R8
	MOVQ         tr+24(FP), DI
	MOVQ         n+32(FP), CX
	SHLQ         $2, CX
	VBROADCASTSS mu+40(FP), Y0
	VBROADCASTSS rs+44(FP), Y1
	MOVQ         l1+48(FP), R9
	MOVQ         l2+56(FP), R10
	VMOVUPS      (R9), Y2
	VMOVUPS      (R10), Y3
	XORQ         AX, AX

nbs_loop:
	VMOVUPS (SI)(AX*1), Y4
	VSUBPS  Y0, Y4, Y4
	VMULPS  Y1, Y4, Y4
	VMOVUPS (DX)(AX*1), Y5
	VMULPS  (R8)(AX*1), Y5, Y6
	VMULPS  Y4, Y5, Y7
	VMOVUPS Y7, (DI)(AX*1)
	VADDPS  Y6, Y2, Y2
	VMULPS  Y4, Y6, Y6
	VADDPS  Y6, Y3, Y3
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     nbs_loop
	VMOVUPS Y2, (R9)
	VMOVUPS Y3, (R10)
	VZEROUPPER
	RET

// func normBwdApplyPS(x, dy, w, dx *float32, n int, mu, rs, a, c float32)
// dx += rs*((dh - a) - xh*c)
TEXT ·normBwdApplyPS(SB), NOSPLIT, $0-56
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         w+16(FP), R8
	MOVQ         dx+24(FP), DI
	MOVQ         n+32(FP), CX
	SHLQ         $2, CX
	VBROADCASTSS mu+40(FP), Y0
	VBROADCASTSS rs+44(FP), Y1
	VBROADCASTSS a+48(FP), Y2
	VBROADCASTSS c+52(FP), Y3
	XORQ         AX, AX

nba_loop:
	VMOVUPS (SI)(AX*1), Y4
	VSUBPS  Y0, Y4, Y4
	VMULPS  Y1, Y4, Y4
	VMOVUPS (DX)(AX*1), Y5
	VMULPS  (R8)(AX*1), Y5, Y5
	VSUBPS  Y2, Y5, Y5
	VMULPS  Y3, Y4, Y4
	VSUBPS  Y4, Y5, Y5
	VMULPS  Y5, Y1, Y5
	VADDPS  (DI)(AX*1), Y5, Y5
	VMOVUPS Y5, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     nba_loop
	VZEROUPPER
	RET

// func geluFwdPS(u, aux, a *float32, n int)
// t = tanhf(geluC*(x + ((0.044715x)x)x)); aux = t; a = (0.5x)(1+t)
TEXT ·geluFwdPS(SB), NOSPLIT, $0-32
	MOVQ u+0(FP), SI
	MOVQ aux+8(FP), DX
	MOVQ a+16(FP), DI
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

gf_loop:
	VMOVUPS (SI)(AX*1), Y7
	VMULPS  K_gelua, Y7, Y0
	VMULPS  Y7, Y0, Y0
	VMULPS  Y7, Y0, Y0
	VADDPS  Y7, Y0, Y0
	VMULPS  K_geluc, Y0, Y0
	VADDPS  Y0, Y0, Y0
	EXPPS(Y0, Y1, Y2, Y3, Y4)
	VADDPS  K_one, Y1, Y1
	VMOVUPS K_two, Y2
	VDIVPS  Y1, Y2, Y2
	VMOVUPS K_one, Y3
	VSUBPS  Y2, Y3, Y3
	VMOVUPS Y3, (DX)(AX*1)
	VMULPS  K_half, Y7, Y4
	VADDPS  K_one, Y3, Y5
	VMULPS  Y5, Y4, Y4
	VMOVUPS Y4, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     gf_loop
	VZEROUPPER
	RET

// func geluBwdPS(u, aux, da, du *float32, n int)
// dt = ((1 - t*t)*geluC)*(1 + ((3*0.044715)x)x); du = da*((0.5(1+t)) + (0.5x)dt)
TEXT ·geluBwdPS(SB), NOSPLIT, $0-40
	MOVQ u+0(FP), SI
	MOVQ aux+8(FP), DX
	MOVQ da+16(FP), R8
	MOVQ du+24(FP), DI
	MOVQ n+32(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

gb_loop:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS (DX)(AX*1), Y1
	VMULPS  Y1, Y1, Y2
	VMOVUPS K_one, Y3
	VSUBPS  Y2, Y3, Y3
	VMULPS  K_geluc, Y3, Y3
	VMULPS  K_gelu3a, Y0, Y4
	VMULPS  Y0, Y4, Y4
	VADDPS  K_one, Y4, Y4
	VMULPS  Y4, Y3, Y3
	VADDPS  K_one, Y1, Y5
	VMULPS  K_half, Y5, Y5
	VMULPS  K_half, Y0, Y6
	VMULPS  Y3, Y6, Y6
	VADDPS  Y6, Y5, Y5
	VMULPS  (R8)(AX*1), Y5, Y5
	VMOVUPS Y5, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     gb_loop
	VZEROUPPER
	RET

// func swigluFwdPS(gt, v, aux, a *float32, n int)
// s = 1/(1+expf(-g)); aux = s; a = (g*s)*v
TEXT ·swigluFwdPS(SB), NOSPLIT, $0-40
	MOVQ gt+0(FP), SI
	MOVQ v+8(FP), DX
	MOVQ aux+16(FP), R8
	MOVQ a+24(FP), DI
	MOVQ n+32(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

sf_loop:
	VMOVUPS (SI)(AX*1), Y7
	VXORPS  K_sign, Y7, Y0
	EXPPS(Y0, Y1, Y2, Y3, Y4)
	VADDPS  K_one, Y1, Y1
	VMOVUPS K_one, Y2
	VDIVPS  Y1, Y2, Y2
	VMOVUPS Y2, (R8)(AX*1)
	VMULPS  Y2, Y7, Y3
	VMULPS  (DX)(AX*1), Y3, Y3
	VMOVUPS Y3, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     sf_loop
	VZEROUPPER
	RET

// func swigluBwdPS(gt, v, aux, da, dg, dv *float32, n int)
// dv = (da*g)*s; dg = ((da*v)*s)*(1 + g*(1-s))
TEXT ·swigluBwdPS(SB), NOSPLIT, $0-56
	MOVQ gt+0(FP), SI
	MOVQ v+8(FP), DX
	MOVQ aux+16(FP), R8
	MOVQ da+24(FP), R9
	MOVQ dg+32(FP), R10
	MOVQ dv+40(FP), DI
	MOVQ n+48(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

sb_loop:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS (R8)(AX*1), Y1
	VMOVUPS (R9)(AX*1), Y2
	VMULPS  Y0, Y2, Y3
	VMULPS  Y1, Y3, Y3
	VMOVUPS Y3, (DI)(AX*1)
	VMULPS  (DX)(AX*1), Y2, Y4
	VMULPS  Y1, Y4, Y4
	VMOVUPS K_one, Y5
	VSUBPS  Y1, Y5, Y5
	VMULPS  Y5, Y0, Y5
	VADDPS  K_one, Y5, Y5
	VMULPS  Y5, Y4, Y4
	VMOVUPS Y4, (R10)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     sb_loop
	VZEROUPPER
	RET

// func scaleMaxPS(x *float32, n int, s float32, l *lanes8)
// x *= s; l = maxf(x, l)
TEXT ·scaleMaxPS(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1
	MOVQ         l+24(FP), DI
	VMOVUPS      (DI), Y0

sm_loop:
	VMULPS  (SI), Y1, Y2
	VMOVUPS Y2, (SI)
	VMAXPS  Y0, Y2, Y0
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     sm_loop
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func expSubSumPS(x *float32, n int, mx float32, l *lanes8)
// x = expf(x - mx); l += x
TEXT ·expSubSumPS(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS mx+16(FP), Y6
	MOVQ         l+24(FP), DI
	VMOVUPS      (DI), Y5

es_loop:
	VMOVUPS (SI), Y0
	VSUBPS  Y6, Y0, Y0
	EXPPS(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y1, (SI)
	VADDPS  Y1, Y5, Y5
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     es_loop
	VMOVUPS Y5, (DI)
	VZEROUPPER
	RET

// func scalePS(x *float32, n int, s float32)
TEXT ·scalePS(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1

sc_loop:
	VMULPS  (SI), Y1, Y2
	VMOVUPS Y2, (SI)
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     sc_loop
	VZEROUPPER
	RET

// func dotPS(x, y *float32, n int, l *lanes8)
TEXT ·dotPS(SB), NOSPLIT, $0-32
	MOVQ    x+0(FP), SI
	MOVQ    y+8(FP), DX
	MOVQ    n+16(FP), CX
	MOVQ    l+24(FP), DI
	VMOVUPS (DI), Y0

dot_loop:
	VMOVUPS (SI), Y1
	VMULPS  (DX), Y1, Y1
	VADDPS  Y1, Y0, Y0
	ADDQ    $32, SI
	ADDQ    $32, DX
	SUBQ    $8, CX
	JNZ     dot_loop
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func dsApplyPS(p, d *float32, n int, sum, scale float32)
// d = (p*(d - sum))*scale
TEXT ·dsApplyPS(SB), NOSPLIT, $0-32
	MOVQ         p+0(FP), SI
	MOVQ         d+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS sum+24(FP), Y0
	VBROADCASTSS scale+28(FP), Y1

ds_loop:
	VMOVUPS (DI), Y2
	VSUBPS  Y0, Y2, Y2
	VMULPS  (SI), Y2, Y2
	VMULPS  Y1, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     ds_loop
	VZEROUPPER
	RET

// func addPS(x, y *float32, n int)
// x += y
TEXT ·addPS(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), DI
	MOVQ y+8(FP), SI
	MOVQ n+16(FP), CX

add_loop:
	VMOVUPS (DI), Y0
	VADDPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     add_loop
	VZEROUPPER
	RET

// func colAcc16PS(src *float32, rows, stride int, acc *[16]float32)
// acc[j] += src[r*stride+j] for r in order (stride in bytes, rows >= 1)
TEXT ·colAcc16PS(SB), NOSPLIT, $0-32
	MOVQ    src+0(FP), SI
	MOVQ    rows+8(FP), CX
	MOVQ    stride+16(FP), DX
	MOVQ    acc+24(FP), DI
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1

ca_loop:
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	ADDQ   DX, SI
	DECQ   CX
	JNZ    ca_loop
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VZEROUPPER
	RET

// func sumSq64PS(x *float32, n int, l *lanes8d)
// l[i%8] += float64(x[i])^2
TEXT ·sumSq64PS(SB), NOSPLIT, $0-24
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    l+16(FP), DI
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1

ss64_loop:
	VCVTPS2PD (SI), Y2
	VCVTPS2PD 16(SI), Y3
	VMULPD    Y2, Y2, Y2
	VMULPD    Y3, Y3, Y3
	VADDPD    Y2, Y0, Y0
	VADDPD    Y3, Y1, Y1
	ADDQ      $32, SI
	SUBQ      $8, CX
	JNZ       ss64_loop
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	VZEROUPPER
	RET

// func adamWPS(p, gr, m, v *float32, n int, k *adamConsts)
// m = b1*m + nb1*g; v = b2*v + (nb2*g)*g;
// p -= lr*(float32((m/c1)/(sqrt(v/c2)+eps)) + decay*p), quotients in float64
TEXT ·adamWPS(SB), NOSPLIT, $0-48
	MOVQ         p+0(FP), DI
	MOVQ         gr+8(FP), SI
	MOVQ         m+16(FP), DX
	MOVQ         v+24(FP), R8
	MOVQ         n+32(FP), CX
	SHLQ         $2, CX
	MOVQ         k+40(FP), R9
	VBROADCASTSD 0(R9), Y8   // c1
	VBROADCASTSD 8(R9), Y9   // c2
	VBROADCASTSD 16(R9), Y10 // eps
	VBROADCASTSS 24(R9), Y11 // lr
	VBROADCASTSS 28(R9), Y12 // decay
	VBROADCASTSS 32(R9), Y13 // b1
	VBROADCASTSS 36(R9), Y14 // nb1
	VBROADCASTSS 40(R9), Y15 // b2
	XORQ         AX, AX

ad_loop:
	VMOVUPS (SI)(AX*1), Y0     // g
	VMULPS  (DX)(AX*1), Y13, Y1
	VMULPS  Y0, Y14, Y2
	VADDPS  Y2, Y1, Y1         // m
	VMOVUPS Y1, (DX)(AX*1)
	VMULPS  (R8)(AX*1), Y15, Y2
	VBROADCASTSS 44(R9), Y3    // nb2
	VMULPS  Y0, Y3, Y3
	VMULPS  Y0, Y3, Y3
	VADDPS  Y3, Y2, Y2         // v
	VMOVUPS Y2, (R8)(AX*1)

	// low 4 lanes
	VCVTPS2PD X1, Y3
	VDIVPD    Y8, Y3, Y3       // mh
	VCVTPS2PD X2, Y4
	VDIVPD    Y9, Y4, Y4       // vh
	VSQRTPD   Y4, Y4
	VADDPD    Y10, Y4, Y4
	VDIVPD    Y4, Y3, Y3
	VCVTPD2PSY Y3, X5
	// high 4 lanes
	VEXTRACTF128 $1, Y1, X1
	VEXTRACTF128 $1, Y2, X2
	VCVTPS2PD X1, Y3
	VDIVPD    Y8, Y3, Y3
	VCVTPS2PD X2, Y4
	VDIVPD    Y9, Y4, Y4
	VSQRTPD   Y4, Y4
	VADDPD    Y10, Y4, Y4
	VDIVPD    Y4, Y3, Y3
	VCVTPD2PSY Y3, X6
	VINSERTF128 $1, X6, Y5, Y5 // q (float32)

	VMOVUPS (DI)(AX*1), Y6     // p
	VMULPS  Y6, Y12, Y7
	VADDPS  Y7, Y5, Y5
	VMULPS  Y5, Y11, Y5
	VSUBPS  Y5, Y6, Y6
	VMOVUPS Y6, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JNE     ad_loop
	VZEROUPPER
	RET

// func gemmKern8x16(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool)
// gemmKern4x16 for 8 rows with AVX-512 (one 16-lane register per row;
// VMULPS with an embedded broadcast of a(p,r), then VADDPS).
TEXT ·gemmKern8x16(SB), NOSPLIT, $0-73
	MOVQ np+0(FP), R8
	MOVQ sp+24(FP), R10
	MOVQ sr+32(FP), R11
	MOVQ b+40(FP), DI
	MOVQ sb+48(FP), R12
	MOVQ c+56(FP), DX
	MOVQ ldc+64(FP), R13
	LEAQ (R11)(R11*2), BX

g8_panel:
	MOVQ   a+16(FP), CX
	LEAQ   (CX)(R11*4), R9
	MOVQ   DI, SI
	MOVQ   k+8(FP), AX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7

g8_loop:
	VMOVUPS     (SI), Z16
	VMULPS.BCST (CX), Z16, Z17
	VADDPS      Z17, Z0, Z0
	VMULPS.BCST (CX)(R11*1), Z16, Z18
	VADDPS      Z18, Z1, Z1
	VMULPS.BCST (CX)(R11*2), Z16, Z19
	VADDPS      Z19, Z2, Z2
	VMULPS.BCST (CX)(BX*1), Z16, Z20
	VADDPS      Z20, Z3, Z3
	VMULPS.BCST (R9), Z16, Z21
	VADDPS      Z21, Z4, Z4
	VMULPS.BCST (R9)(R11*1), Z16, Z22
	VADDPS      Z22, Z5, Z5
	VMULPS.BCST (R9)(R11*2), Z16, Z23
	VADDPS      Z23, Z6, Z6
	VMULPS.BCST (R9)(BX*1), Z16, Z24
	VADDPS      Z24, Z7, Z7
	ADDQ        R10, CX
	ADDQ        R10, R9
	ADDQ        R12, SI
	DECQ        AX
	JNZ         g8_loop

	LEAQ (DX)(R13*2), CX
	LEAQ (DX)(R13*4), R9
	LEAQ (R9)(R13*2), AX
	CMPB add+72(FP), $0
	JEQ  g8_store
	VADDPS (DX), Z0, Z0
	VADDPS (DX)(R13*1), Z1, Z1
	VADDPS (CX), Z2, Z2
	VADDPS (CX)(R13*1), Z3, Z3
	VADDPS (R9), Z4, Z4
	VADDPS (R9)(R13*1), Z5, Z5
	VADDPS (AX), Z6, Z6
	VADDPS (AX)(R13*1), Z7, Z7

g8_store:
	VMOVUPS Z0, (DX)
	VMOVUPS Z1, (DX)(R13*1)
	VMOVUPS Z2, (CX)
	VMOVUPS Z3, (CX)(R13*1)
	VMOVUPS Z4, (R9)
	VMOVUPS Z5, (R9)(R13*1)
	VMOVUPS Z6, (AX)
	VMOVUPS Z7, (AX)(R13*1)
	ADDQ    $64, DI
	ADDQ    $64, DX
	DECQ    R8
	JNZ     g8_panel
	VZEROUPPER
	RET

// func gemmKern8x32(np, k int, a *float32, sp, sr int, b *float32, sb int, c *float32, ldc int, add bool)
// gemmKern8x16 for np panels of 32 columns (b and c advance 32 floats per
// panel): 16 accumulators, each broadcast a(p,r) used twice.
TEXT ·gemmKern8x32(SB), NOSPLIT, $0-73
	MOVQ np+0(FP), R8
	MOVQ sp+24(FP), R10
	MOVQ sr+32(FP), R11
	MOVQ b+40(FP), DI
	MOVQ sb+48(FP), R12
	MOVQ c+56(FP), DX
	MOVQ ldc+64(FP), R13
	LEAQ (R11)(R11*2), BX

g32_panel:
	MOVQ   a+16(FP), CX
	LEAQ   (CX)(R11*4), R9
	MOVQ   DI, SI
	MOVQ   k+8(FP), AX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	VXORPS Z10, Z10, Z10
	VXORPS Z11, Z11, Z11
	VXORPS Z12, Z12, Z12
	VXORPS Z13, Z13, Z13
	VXORPS Z14, Z14, Z14
	VXORPS Z15, Z15, Z15

g32_loop:
	VMOVUPS      (SI), Z16
	VMOVUPS      64(SI), Z17
	VBROADCASTSS (CX), Z18
	VMULPS       Z16, Z18, Z20
	VADDPS       Z20, Z0, Z0
	VMULPS       Z17, Z18, Z21
	VADDPS       Z21, Z1, Z1
	VBROADCASTSS (CX)(R11*1), Z19
	VMULPS       Z16, Z19, Z22
	VADDPS       Z22, Z2, Z2
	VMULPS       Z17, Z19, Z23
	VADDPS       Z23, Z3, Z3
	VBROADCASTSS (CX)(R11*2), Z18
	VMULPS       Z16, Z18, Z24
	VADDPS       Z24, Z4, Z4
	VMULPS       Z17, Z18, Z25
	VADDPS       Z25, Z5, Z5
	VBROADCASTSS (CX)(BX*1), Z19
	VMULPS       Z16, Z19, Z26
	VADDPS       Z26, Z6, Z6
	VMULPS       Z17, Z19, Z27
	VADDPS       Z27, Z7, Z7
	VBROADCASTSS (R9), Z18
	VMULPS       Z16, Z18, Z20
	VADDPS       Z20, Z8, Z8
	VMULPS       Z17, Z18, Z21
	VADDPS       Z21, Z9, Z9
	VBROADCASTSS (R9)(R11*1), Z19
	VMULPS       Z16, Z19, Z22
	VADDPS       Z22, Z10, Z10
	VMULPS       Z17, Z19, Z23
	VADDPS       Z23, Z11, Z11
	VBROADCASTSS (R9)(R11*2), Z18
	VMULPS       Z16, Z18, Z24
	VADDPS       Z24, Z12, Z12
	VMULPS       Z17, Z18, Z25
	VADDPS       Z25, Z13, Z13
	VBROADCASTSS (R9)(BX*1), Z19
	VMULPS       Z16, Z19, Z26
	VADDPS       Z26, Z14, Z14
	VMULPS       Z17, Z19, Z27
	VADDPS       Z27, Z15, Z15
	ADDQ         R10, CX
	ADDQ         R10, R9
	ADDQ         R12, SI
	DECQ         AX
	JNZ          g32_loop

	LEAQ (DX)(R13*2), CX
	LEAQ (DX)(R13*4), R9
	LEAQ (R9)(R13*2), AX
	CMPB add+72(FP), $0
	JEQ  g32_store
	VADDPS (DX), Z0, Z0
	VADDPS 64(DX), Z1, Z1
	VADDPS (DX)(R13*1), Z2, Z2
	VADDPS 64(DX)(R13*1), Z3, Z3
	VADDPS (CX), Z4, Z4
	VADDPS 64(CX), Z5, Z5
	VADDPS (CX)(R13*1), Z6, Z6
	VADDPS 64(CX)(R13*1), Z7, Z7
	VADDPS (R9), Z8, Z8
	VADDPS 64(R9), Z9, Z9
	VADDPS (R9)(R13*1), Z10, Z10
	VADDPS 64(R9)(R13*1), Z11, Z11
	VADDPS (AX), Z12, Z12
	VADDPS 64(AX), Z13, Z13
	VADDPS (AX)(R13*1), Z14, Z14
	VADDPS 64(AX)(R13*1), Z15, Z15

g32_store:
	VMOVUPS Z0, (DX)
	VMOVUPS Z1, 64(DX)
	VMOVUPS Z2, (DX)(R13*1)
	VMOVUPS Z3, 64(DX)(R13*1)
	VMOVUPS Z4, (CX)
	VMOVUPS Z5, 64(CX)
	VMOVUPS Z6, (CX)(R13*1)
	VMOVUPS Z7, 64(CX)(R13*1)
	VMOVUPS Z8, (R9)
	VMOVUPS Z9, 64(R9)
	VMOVUPS Z10, (R9)(R13*1)
	VMOVUPS Z11, 64(R9)(R13*1)
	VMOVUPS Z12, (AX)
	VMOVUPS Z13, 64(AX)
	VMOVUPS Z14, (AX)(R13*1)
	VMOVUPS Z15, 64(AX)(R13*1)
	ADDQ    $128, DI
	ADDQ    $128, DX
	DECQ    R8
	JNZ     g32_panel
	VZEROUPPER
	RET

// Horizontal reductions of the 8 lanes of Y in the fixed trees of lanes8
// (kernels.go); the result is in the low lane of X. T is a scratch X reg.
// sum: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)); max: the same with maxf.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VADDPS       T, X, X \
	VMOVHLPS     X, X, T \
	VADDPS       T, X, X \
	VMOVSHDUP    X, T \
	VADDSS       T, X, X

#define HMAX(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VMAXPS       T, X, X \
	VMOVHLPS     X, X, T \
	VMAXPS       T, X, X \
	VMOVSHDUP    X, T \
	VMAXSS       T, X, X

// func softmaxRowPS(x *float32, n, nv int, s float32)
// The attention softmax of one row, fused: x = x*s; mx = max; x =
// expf(x - mx); z = Σ x; x *= 1/z — the same operations and lane structure
// as scaleMax, expSubSum and scaleVec on x[:n]. nv is n rounded up to a
// multiple of 8; x[n:nv] must be readable and is overwritten with garbage
// (the last vector's lanes past n are masked out of the max and the sum).
TEXT ·softmaxRowPS(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), AX
	MOVQ         nv+16(FP), CX
	VBROADCASTSS s+24(FP), Y1
	MOVQ         CX, DX
	SUBQ         AX, DX
	LEAQ         masktbl<>(SB), R8
	VMOVUPS      (R8)(DX*4), Y7         // first n-(nv-8) lanes set
	VMOVUPS      K_ninf, Y0
	LEAQ         -32(SI)(CX*4), DI      // last vector
	MOVQ         SI, R9

smx_p1:
	CMPQ    R9, DI
	JEQ     smx_p1last
	VMULPS  (R9), Y1, Y2
	VMOVUPS Y2, (R9)
	VMAXPS  Y0, Y2, Y0
	ADDQ    $32, R9
	JMP     smx_p1

smx_p1last:
	VMULPS    (R9), Y1, Y2
	VMOVUPS   Y2, (R9)
	VMOVUPS   K_ninf, Y3
	VBLENDVPS Y7, Y2, Y3, Y2
	VMAXPS    Y0, Y2, Y0
	HMAX(Y0, X0, X2)
	VBROADCASTSS X0, Y6                 // mx
	VXORPS  Y5, Y5, Y5
	MOVQ    SI, R9

smx_p2:
	VMOVUPS (R9), Y0
	VSUBPS  Y6, Y0, Y0
	EXPPS(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y1, (R9)
	CMPQ    R9, DI
	JEQ     smx_p2last
	VADDPS  Y1, Y5, Y5
	ADDQ    $32, R9
	JMP     smx_p2

smx_p2last:
	VANDPS Y7, Y1, Y1
	VADDPS Y1, Y5, Y5
	HSUM(Y5, X5, X2)
	VMOVSS K_one, X3
	VDIVSS X5, X3, X3                   // 1/z
	VBROADCASTSS X3, Y3
	MOVQ   SI, R9

smx_p3:
	VMULPS  (R9), Y3, Y2
	VMOVUPS Y2, (R9)
	ADDQ    $32, R9
	CMPQ    R9, DI
	JLS     smx_p3
	VZEROUPPER
	RET

// func dsRowPS(p, d *float32, n, nv int, scale float32)
// Attention backward of one row, fused: sum = Σ p·d (lanes, as dot), then
// d = (p·(d - sum))·scale (as dsApply), on [:n]; n, nv as in softmaxRowPS.
TEXT ·dsRowPS(SB), NOSPLIT, $0-36
	MOVQ         p+0(FP), SI
	MOVQ         d+8(FP), DI
	MOVQ         n+16(FP), AX
	MOVQ         nv+24(FP), CX
	VBROADCASTSS scale+32(FP), Y6
	MOVQ         CX, DX
	SUBQ         AX, DX
	LEAQ         masktbl<>(SB), R8
	VMOVUPS      (R8)(DX*4), Y7
	SHLQ         $2, CX
	SUBQ         $32, CX                // byte offset of the last vector
	VXORPS       Y0, Y0, Y0
	XORQ         AX, AX

dsr_p1:
	VMOVUPS (SI)(AX*1), Y1
	VMULPS  (DI)(AX*1), Y1, Y1
	CMPQ    AX, CX
	JEQ     dsr_p1last
	VADDPS  Y1, Y0, Y0
	ADDQ    $32, AX
	JMP     dsr_p1

dsr_p1last:
	VANDPS Y7, Y1, Y1
	VADDPS Y1, Y0, Y0
	HSUM(Y0, X0, X2)
	VBROADCASTSS X0, Y5                 // sum
	XORQ AX, AX

dsr_p2:
	VMOVUPS (DI)(AX*1), Y2
	VSUBPS  Y5, Y2, Y2
	VMULPS  (SI)(AX*1), Y2, Y2
	VMULPS  Y6, Y2, Y2
	VMOVUPS Y2, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLE     dsr_p2
	VZEROUPPER
	RET

// func transpose8x8PS(src *float32, lds int, dst *float32, ldd int)
// dst[c][r] = src[r][c] for an 8×8 block (row strides in bytes).
TEXT ·transpose8x8PS(SB), NOSPLIT, $0-32
	MOVQ    src+0(FP), SI
	MOVQ    lds+8(FP), AX
	MOVQ    dst+16(FP), DI
	MOVQ    ldd+24(FP), DX
	LEAQ    (AX)(AX*2), BX
	LEAQ    (SI)(AX*4), CX
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(AX*1), Y1
	VMOVUPS (SI)(AX*2), Y2
	VMOVUPS (SI)(BX*1), Y3
	VMOVUPS (CX), Y4
	VMOVUPS (CX)(AX*1), Y5
	VMOVUPS (CX)(AX*2), Y6
	VMOVUPS (CX)(BX*1), Y7
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS   $0x44, Y10, Y8, Y0
	VSHUFPS   $0xee, Y10, Y8, Y1
	VSHUFPS   $0x44, Y11, Y9, Y2
	VSHUFPS   $0xee, Y11, Y9, Y3
	VSHUFPS   $0x44, Y14, Y12, Y4
	VSHUFPS   $0xee, Y14, Y12, Y5
	VSHUFPS   $0x44, Y15, Y13, Y6
	VSHUFPS   $0xee, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	LEAQ    (DX)(DX*2), BX
	LEAQ    (DI)(DX*4), CX
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(DX*1)
	VMOVUPS Y10, (DI)(DX*2)
	VMOVUPS Y11, (DI)(BX*1)
	VMOVUPS Y12, (CX)
	VMOVUPS Y13, (CX)(DX*1)
	VMOVUPS Y14, (CX)(DX*2)
	VMOVUPS Y15, (CX)(BX*1)
	VZEROUPPER
	RET

// EXPPS512(X, R, T1, T2, T3): EXPPS on 16 lanes (AVX-512F), with the clamps
// done by compare-into-mask and masked moves. Uses K1-K3.
#define EXPPS512(X, R, T1, T2, T3) \
	VMULPS.BCST  K_log2e, X, T1 \
	VPANDD.BCST  K_sign, T1, T2 \
	VPORD.BCST   K_half, T2, T2 \
	VADDPS       T2, T1, T1 \
	VCVTTPS2DQ   T1, T1 \
	VCVTDQ2PS    T1, T2 \
	VMULPS.BCST  K_ln2hi, T2, T3 \
	VSUBPS       T3, X, R \
	VMULPS.BCST  K_ln2lo, T2, T3 \
	VSUBPS       T3, R, R \
	VMULPS.BCST  K_c720, R, T2 \
	VADDPS.BCST  K_c120, T2, T2 \
	VMULPS       R, T2, T2 \
	VADDPS.BCST  K_c24, T2, T2 \
	VMULPS       R, T2, T2 \
	VADDPS.BCST  K_c6, T2, T2 \
	VMULPS       R, T2, T2 \
	VADDPS.BCST  K_half, T2, T2 \
	VMULPS       R, T2, T2 \
	VADDPS.BCST  K_one, T2, T2 \
	VMULPS       R, T2, T2 \
	VADDPS.BCST  K_one, T2, T2 \
	VPADDD.BCST  K_i127, T1, T1 \
	VPSLLD       $23, T1, T1 \
	VMULPS       T1, T2, R \
	VCMPPS.BCST  $0x1e, K_hi, X, K1 \
	VBROADCASTSS K_inf, T3 \
	VMOVAPS      T3, K1, R \
	VCMPPS.BCST  $0x11, K_lo, X, K2 \
	VPXORD       T3, T3, T3 \
	VMOVAPS      T3, K2, R \
	VCMPPS       $3, X, X, K3 \
	VMOVAPS      X, K3, R

// func geluFwd512PS(u, aux, a *float32, n int)
// geluFwdPS on 16 lanes; n is a positive multiple of 16.
TEXT ·geluFwd512PS(SB), NOSPLIT, $0-32
	MOVQ u+0(FP), SI
	MOVQ aux+8(FP), DX
	MOVQ a+16(FP), DI
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ AX, AX

gf5_loop:
	VMOVUPS      (SI)(AX*1), Z7
	VMULPS.BCST  K_gelua, Z7, Z0
	VMULPS       Z7, Z0, Z0
	VMULPS       Z7, Z0, Z0
	VADDPS       Z7, Z0, Z0
	VMULPS.BCST  K_geluc, Z0, Z0
	VADDPS       Z0, Z0, Z0
	EXPPS512(Z0, Z1, Z2, Z3, Z4)
	VADDPS.BCST  K_one, Z1, Z1
	VBROADCASTSS K_two, Z2
	VDIVPS       Z1, Z2, Z2
	VBROADCASTSS K_one, Z3
	VSUBPS       Z2, Z3, Z3
	VMOVUPS      Z3, (DX)(AX*1)
	VMULPS.BCST  K_half, Z7, Z4
	VADDPS.BCST  K_one, Z3, Z5
	VMULPS       Z5, Z4, Z4
	VMOVUPS      Z4, (DI)(AX*1)
	ADDQ         $64, AX
	CMPQ         AX, CX
	JNE          gf5_loop
	VZEROUPPER
	RET
