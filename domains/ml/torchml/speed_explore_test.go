package torchml

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

func TestSpeedExplore(t *testing.T) {
	b0 := backend(t)
	c := corpus(t)
	ctx := context.Background()
	cfg := agreementConfig(t)
	th, _ := strconv.Atoi(os.Getenv("TH"))
	b := &Backend{Python: b0.Python, Script: b0.Script, Device: "cpu", Threads: th}
	if e := os.Getenv("WENV"); e != "" {
		b.Env = []string{e}
	}
	defer b.Close()
	st, _ := ml.NewState(cfg, c.VocabSize(), 1, 0)
	gs := st.Clone()
	for i := 0; i < 5; i++ {
		s, err := b.TrainSteps(ctx, st, c.Train, 100, 500)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := ml.TrainSteps(ctx, gs, c.Train, 100, 500, nil)
		t.Logf("chunk %d torch %.0f tok/s go %.0f tok/s", i, float64(s.Tokens)/s.Seconds, float64(g.Tokens)/g.Seconds)
	}
}
