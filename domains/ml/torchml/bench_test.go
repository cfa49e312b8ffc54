package torchml

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

// Run with:
//
//	go test -run '^$' -bench Backends -benchtime 1x ./domains/ml/torchml/
//
// BenchmarkBackends measures the training throughput (characters per
// second) of the Go trainer (ml.TrainSteps) and of the torch backend
// (Backend.TrainSteps, whole call including the state transfer; "loop"
// is the worker's training loop alone) on the baseline config
// (ml.New().Baseline()), from the same State, in alternating rounds in one
// run, keeping the best round of each, so that load from other processes
// on a shared machine does not favour one side. When Debian's reference
// BLAS (libblas3) is installed, a second torch worker that loads it
// (LD_LIBRARY_PATH ahead of the alternatives link) is measured in the same
// rounds. HYPERSPACE_BENCH_STEPS sets the steps per round (default 40);
// HYPERSPACE_BENCH_ACTIVE=1 adds an OpenBLAS worker with
// OMP_WAIT_POLICY=ACTIVE (spinning OpenMP threads, libgomp's default).
func BenchmarkBackends(b *testing.B) {
	be := backend(b)
	c := corpus(b)
	ctx := context.Background()
	cfg, err := ml.New().Validate(ml.New().Baseline())
	if err != nil {
		b.Fatal(err)
	}
	steps := 40
	if s := os.Getenv("HYPERSPACE_BENCH_STEPS"); s != "" {
		if _, err := fmt.Sscan(s, &steps); err != nil {
			b.Fatal(err)
		}
	}
	total := 683
	st0, err := ml.NewState(cfg, c.VocabSize(), 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	type side struct {
		name     string
		be       *Backend
		best     float64
		bestLoop float64
		blas     string
	}
	sides := []*side{{name: "openblas", be: be}}
	refDir := "/usr/lib/x86_64-linux-gnu/blas"
	if _, err := os.Stat(filepath.Join(refDir, "libblas.so.3")); err == nil {
		ref := &Backend{Python: be.Python, Script: be.Script, Device: be.Device,
			Env: []string{"LD_LIBRARY_PATH=" + refDir + ":/usr/lib/x86_64-linux-gnu/lapack"}}
		defer ref.Close()
		sides = append(sides, &side{name: "reference", be: ref})
	} else {
		b.Logf("reference BLAS (libblas3) not installed: measuring the selected BLAS only")
	}
	if os.Getenv("HYPERSPACE_BENCH_ACTIVE") == "1" {
		// OpenMP threads spinning at barriers (the libgomp default) instead
		// of the passive waiting the backend sets.
		act := &Backend{Python: be.Python, Script: be.Script, Device: be.Device, Env: []string{"OMP_WAIT_POLICY=ACTIVE"}}
		defer act.Close()
		sides = append(sides, &side{name: "openblas_active", be: act})
	}
	// Warm up: start the workers, one untimed call each and one Go call.
	for _, s := range sides {
		w := st0.Clone()
		if _, resp, err := s.be.trainSteps(ctx, w, c.Train, 2, total, trainOpts{}); err != nil {
			b.Fatal(err)
		} else {
			s.blas = resp.BLAS.Backend + " " + resp.BLAS.Library
		}
	}
	if _, err := ml.TrainSteps(ctx, st0.Clone(), c.Train, 2, total, nil); err != nil {
		b.Fatal(err)
	}
	var goBest float64
	for i := 0; i < b.N; i++ {
		for round := 0; round < 3; round++ {
			g := st0.Clone()
			gs, err := ml.TrainSteps(ctx, g, c.Train, steps, total, nil)
			if err != nil {
				b.Fatal(err)
			}
			goBest = max(goBest, float64(gs.Tokens)/gs.Seconds)
			for _, s := range sides {
				w := st0.Clone()
				ts, resp, err := s.be.trainSteps(ctx, w, c.Train, steps, total, trainOpts{})
				if err != nil {
					b.Fatal(err)
				}
				s.best = max(s.best, float64(ts.Tokens)/ts.Seconds)
				s.bestLoop = max(s.bestLoop, float64(ts.Tokens)/resp.Seconds)
				b.Logf("round %d: go %.0f tokens/s, torch[%s] %.0f tokens/s (loop %.0f)", round, float64(gs.Tokens)/gs.Seconds, s.name, float64(ts.Tokens)/ts.Seconds, float64(ts.Tokens)/resp.Seconds)
			}
		}
	}
	b.ReportMetric(goBest, "go_tokens/s")
	for _, s := range sides {
		b.Logf("torch[%s] BLAS %s", s.name, s.blas)
		b.ReportMetric(s.best, "torch_"+s.name+"_tokens/s")
		b.ReportMetric(s.bestLoop, "torch_"+s.name+"_loop_tokens/s")
		b.ReportMetric(s.best/goBest, "ratio_"+s.name)
	}
}
