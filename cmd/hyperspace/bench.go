package main

import (
	"fmt"
	"os"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

func benchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks that print a table (see BENCHMARKS.md)",
		Long: `bench measures performance and prints a table.
  bench ml   the trainer at the baseline config against this machine's matmul
             peak, measured in the same run (alternating rounds, best of each)
The orchestration benchmark needs PostgreSQL, S3 and Temporal and runs as a Go
benchmark: go test -run '^$' -bench Orchestration -benchtime 1x ./e2e`,
	}
	var dataDir string
	var rounds, size int
	var seconds float64
	mlc := &cobra.Command{
		Use:   "ml",
		Short: "Trainer tokens/s and GFLOP/s at the baseline config vs. the measured matmul peak",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dataDir, err := findDataDir(dataDir, nil)
			if err != nil {
				return err
			}
			cfg := ml.New().Baseline()
			dur := time.Duration(seconds * float64(time.Second))
			var peak, tps, gf float64
			fmt.Fprintf(os.Stderr, "measuring: %d rounds of matmul peak (%d^3) and %.1fs of training (GOMAXPROCS=%d)\n", rounds, size, seconds, runtime.GOMAXPROCS(0))
			for r := 0; r < rounds; r++ {
				peak = max(peak, ml.MeasureMatmulPeak(size, 500*time.Millisecond))
				t, g, err := ml.TrainerThroughput(cmd.Context(), dataDir, cfg, 1, dur)
				if err != nil {
					return err
				}
				if g > gf {
					tps, gf = t, g
				}
				fmt.Fprintf(os.Stderr, "  round %d: peak %.2f GFLOP/s, trainer %.2f GFLOP/s\n", r+1, peak, g)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(w, "measure\tvalue\tunit\t")
			fmt.Fprintf(w, "matmul peak (%d^3, all cores)\t%.2f\tGFLOP/s\t\n", size, peak)
			fmt.Fprintf(w, "trainer, baseline config\t%.0f\ttokens/s\t\n", tps)
			fmt.Fprintf(w, "trainer, baseline config\t%.2f\tGFLOP/s\t\n", gf)
			fmt.Fprintf(w, "trainer / peak\t%.1f\t%%\t\n", 100*gf/peak)
			return w.Flush()
		},
	}
	mlc.Flags().StringVar(&dataDir, "data-dir", "", dataDirUsage)
	mlc.Flags().IntVar(&rounds, "rounds", 3, "alternating measurement rounds (best of each is kept)")
	mlc.Flags().IntVar(&size, "size", 512, "matrix size of the peak micro-benchmark")
	mlc.Flags().Float64Var(&seconds, "seconds", 3, "seconds of training per round")
	all := &cobra.Command{
		Use:   "all",
		Short: "Every benchmark that needs no services (currently: ml)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return mlc.RunE(cmd, args)
		},
	}
	all.Flags().AddFlagSet(mlc.Flags())
	cmd.AddCommand(mlc, all)
	return cmd
}
