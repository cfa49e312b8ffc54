package ml

import "math"

// Rounding discipline. Go may fuse x*y+z into one FMA instruction (it does
// on arm64, and on amd64 when built with GOAMD64=v3), which rounds once
// instead of twice and so changes results. Every product that feeds an
// addition or subtraction in this package's numeric kernels is therefore
// wrapped in an explicit float32(...) (or float64(...)) conversion, which
// the Go spec says must round and so prevents fusion; that includes
// products stored in a variable (or returned) and added later, since fusion
// may happen across statements and inlined calls. To check, list the fused
// instructions the compiler emits for the package:
//
//	GOAMD64=v3 go build -gcflags=-S ./domains/ml/ 2>&1 | grep -E 'STEXT|VFMADD|VFNMADD|VFMSUB'
//	GOARCH=arm64 go build -gcflags=-S ./domains/ml/ 2>&1 | grep -E 'STEXT|FMADD|FMSUB|FNM'
//
// Only estimates (actBytes, flopsPerStep, MeasureMatmulPeak) may appear, and
// lrAt in train.go, which still needs the same treatment. The SIMD kernels use
// separate multiply and add instructions (no FMA) in the same order, so the
// scalar and vector paths round identically on every platform.

// expf is a fast float32 e^x: range reduction to 2^n·e^r with |r| <= ln2/2
// and a degree-6 Taylor polynomial (relative error about 2e-7, i.e. float32
// precision). Pure Go and deterministic; used by the activations and the
// attention softmax, where math.Exp's float64 accuracy is wasted. expPS
// (simd_amd64.s) computes exactly the same operations 8 lanes at a time.
func expf(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72:
		return float32(math.Inf(1))
	case x < -87.33:
		return 0
	}
	const log2e, ln2hi, ln2lo = 1.44269504, 0.693145751953125, 1.428606765330187e-06
	t := float32(x * log2e)
	var n float32
	if t >= 0 {
		n = float32(int32(t + 0.5))
	} else {
		n = float32(int32(t - 0.5))
	}
	r := (x - float32(n*ln2hi)) - float32(n*ln2lo)
	p := float32(r * (1.0 / 720))
	p = float32(r * (1.0/120 + p))
	p = float32(r * (1.0/24 + p))
	p = float32(r * (1.0/6 + p))
	p = float32(r * (1.0/2 + p))
	p = float32(r * (1 + p))
	p = 1 + p
	return float32(p * math.Float32frombits(uint32(int32(n)+127)<<23))
}

// tanhf is tanh(y) = 1 - 2/(e^{2y}+1) in float32.
func tanhf(y float32) float32 {
	return 1 - 2/(expf(2*y)+1)
}

// sigmoidf is 1/(1+e^{-x}) in float32.
func sigmoidf(x float32) float32 {
	return 1 / (1 + expf(-x))
}
