package ml

import "os"

// SIMD dispatch.
//
// The hot loops of the trainer have two implementations: Go assembly for
// amd64 (AVX2; simd_amd64.s, selected at run time with golang.org/x/sys/cpu)
// and portable scalar Go (kernels.go). Both are bit-identical by
// construction, so a result never depends on which one ran:
//
//   - only IEEE-754 basic operations are used (add, sub, mul, div, sqrt,
//     compares, float32<->float64<->int32 conversions), each correctly
//     rounded in hardware and in Go; no FMA, because a float32 FMA cannot be
//     reproduced exactly with math.FMA (float64, so double rounding) and Go
//     itself fuses x*y+z on some targets (see mathf.go);
//   - every output element goes through the same operations in the same
//     order on both paths;
//   - reductions (row sums, dot products, maxima, squared norms) use a fixed
//     lane structure: element i goes to lane i mod 8, each lane is
//     accumulated in index order, and the 8 lanes are combined in the fixed
//     tree of lanes8.sum. The scalar code keeps 8 explicit partial sums; the
//     vector code keeps them in one 8-wide register.
//
// gemm's vector micro-kernel needs no lane trick: one lane holds one output
// element, summed over k in order exactly as the scalar kernel does.
//
// simdEnabled turns the SIMD kernels off (scalar reference) when the CPU
// lacks them or the environment has HYPERSPACE_ML_SIMD=off; tests toggle it
// to compare the two paths. It must not be changed while a computation runs.
var simdEnabled = haveSIMD && os.Getenv("HYPERSPACE_ML_SIMD") != "off"

// simdFeatures names the instruction sets the kernels use on this machine
// ("scalar" when the SIMD path is off or unavailable).
func simdFeatures() string {
	switch {
	case !simdEnabled:
		return "scalar"
	case useAVX512:
		return simdName + "+avx512f"
	}
	return simdName
}
