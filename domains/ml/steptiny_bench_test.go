package ml

import (
	"math/rand/v2"
	"testing"
)

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
