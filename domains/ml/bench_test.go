package ml

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// Run with:
//
//	go test -run '^$' -bench 'MatmulPeak|TrainDefault' -benchtime 1x ./domains/ml/
//
// BenchmarkMatmulPeak reports the best GFLOP/s of the gemm kernel on
// 512×512×512 products on all GOMAXPROCS cores.
func BenchmarkMatmulPeak(b *testing.B) {
	var g float64
	for i := 0; i < b.N; i++ {
		g = max(g, MeasureMatmulPeak(512, 500*time.Millisecond))
	}
	b.ReportMetric(g, "GFLOP/s")
}

// BenchmarkTrainDefault trains the baseline config and reports tokens/s,
// achieved GFLOP/s (analytic count, see flopsPerStep), the matmul peak
// (MeasureMatmulPeak, 512³) and their ratio. Peak and training are measured
// in alternating rounds in the same run and the best of each is kept, so a
// burst of load from other processes on a shared machine does not skew the
// ratio in one direction.
func BenchmarkTrainDefault(b *testing.B) {
	dir := testDataDir(b)
	var tps, gf, peak float64
	for i := 0; i < b.N; i++ {
		for round := 0; round < 3; round++ {
			peak = max(peak, MeasureMatmulPeak(512, 500*time.Millisecond))
			t, g, err := TrainerThroughput(context.Background(), dir, New().Baseline(), 1, 2*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			if g > gf {
				tps, gf = t, g
			}
		}
	}
	b.ReportMetric(tps, "tokens/s")
	b.ReportMetric(gf, "GFLOP/s")
	b.ReportMetric(peak, "peakGFLOP/s")
	b.ReportMetric(gf/peak, "ratio")
}

// BenchmarkTrainSIMD measures the baseline config's training throughput
// with the SIMD kernels and with the scalar Go path (simdEnabled off) in
// alternating rounds of the same run, keeping the best of each, and
// reports both, their ratio, and the matmul peak (MeasureMatmulPeak, 512³)
// of each path. Run with:
//
//	go test -run '^$' -bench TrainSIMD -benchtime 1x ./domains/ml/
//
// On a machine without the SIMD kernels both paths are the scalar one.
func BenchmarkTrainSIMD(b *testing.B) {
	dir := testDataDir(b)
	var best [2]struct{ tps, gf, peak float64 } // [0] simd, [1] scalar
	for i := 0; i < b.N; i++ {
		for round := 0; round < 3; round++ {
			for path, on := range []bool{haveSIMD, false} {
				withSIMD(on, func() {
					best[path].peak = max(best[path].peak, MeasureMatmulPeak(512, 300*time.Millisecond))
					t, g, err := TrainerThroughput(context.Background(), dir, New().Baseline(), 1, 2*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					if t > best[path].tps {
						best[path].tps, best[path].gf = t, g
					}
				})
			}
		}
	}
	b.Logf("SIMD kernels: %s", simdFeatures())
	b.ReportMetric(best[0].tps, "simd-tokens/s")
	b.ReportMetric(best[1].tps, "scalar-tokens/s")
	b.ReportMetric(best[0].tps/best[1].tps, "ratio")
	b.ReportMetric(best[0].gf, "simd-GFLOP/s")
	b.ReportMetric(best[0].peak, "simd-peakGFLOP/s")
	b.ReportMetric(best[1].peak, "scalar-peakGFLOP/s")
}

// BenchmarkTrainStepTiny times one step of the fraud-proof tests' tiny
// config (1 layer, 16 wide, batch 2 × context 16), where the op program's
// per-op dispatch would show if it cost anything:
//
//	go test -run '^$' -bench TrainStepTiny ./domains/ml/
func BenchmarkTrainStepTiny(b *testing.B) {
	h := hyperFrom(mustValidate(b, tinyChallengeConfig()), 53)
	m := newModel(h)
	m.init(rand.New(rand.NewPCG(1, streamInit)))
	data := make([]uint8, 10000)
	for i := range data {
		data[i] = uint8(1 + i*7%52)
	}
	env := newStepEnv(m, newActs(h, h.Batch), rand.NewPCG(1, streamBatch), data, 0, 1<<30, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		env.trainStep()
	}
}
