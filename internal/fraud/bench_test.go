package fraud

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

// BenchmarkChallenge plays whole challenges (honest challenger, defender
// corrupt at about 62% of the run) on the tiny config's 10,000-step run and
// on the baseline config's own 683-step run, for k in {2, 4, 10, 40}, and
// prints a markdown table: dissection rounds (step + op level), bytes
// exchanged (JSON of every message, verdict included; the referee input
// separately), and the referee's time (checking the opening and
// re-executing one op) against a full re-run of the training. Run with:
//
//	go test -run '^$' -bench Challenge -benchtime 1x ./internal/fraud
func BenchmarkChallenge(b *testing.B) {
	type row struct {
		run, op                    string
		steps, k                   int
		stepRounds, opRounds       int
		bytes, refBytes            int
		referee, rerun, traceTimes time.Duration
	}
	var rows []row
	ctx := context.Background()
	type setup struct {
		name    string
		pr      *ml.Program
		honest  *Trace
		corrupt []ml.Corruption
		trace   time.Duration // one party's trace (training + state hashing)
		rerun   time.Duration // plain re-run of every step
	}
	var setups []setup
	{
		f := tiny(b)
		start := time.Now()
		if _, err := NewTrace(ctx, &MLRun{Program: f.pr, Seed: testSeed}); err != nil {
			b.Fatal(err)
		}
		tr := time.Since(start)
		setups = append(setups, setup{name: "tiny", pr: f.pr, honest: f.honest, trace: tr, rerun: rerun(b, f.pr, f.data), corrupt: []ml.Corruption{
			{Step: 6173, Index: 100, Bit: 3},
			{Step: 6173, Op: "l0.attn.fwd", Buffer: "l0.attn", Index: 9, Bit: 22},
		}})
	}
	if os.Getenv("FRAUD_BENCH_TINY_ONLY") == "" {
		pr, data := programFor(b, ml.New().Baseline())
		start := time.Now()
		honest, err := NewTrace(ctx, &MLRun{Program: pr, Seed: testSeed, CheckpointEvery: 50})
		if err != nil {
			b.Fatal(err)
		}
		setups = append(setups, setup{name: "baseline", pr: pr, honest: honest, trace: time.Since(start), rerun: rerun(b, pr, data), corrupt: []ml.Corruption{
			{Step: pr.TotalSteps() * 62 / 100, Index: 100, Bit: 3},
			{Step: pr.TotalSteps() * 62 / 100, Op: "l1.attn.fwd", Buffer: "l1.attn", Index: 9, Bit: 22},
		}})
	}
	for _, s := range setups {
		for _, c := range s.corrupt {
			bad, err := NewTrace(ctx, &MLRun{Program: s.pr, Seed: testSeed, Corrupt: &c, CheckpointEvery: 50})
			if err != nil {
				b.Fatal(err)
			}
			op := c.Op
			if op == "" {
				op = "adamw"
			}
			for _, k := range []int{2, 4, 10, 40} {
				var r result
				b.Run(fmt.Sprintf("%s/%s/k=%d", s.name, op, k), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						r = play(b, s.pr, bad, s.honest, k, nil)
					}
					if r.v.Winner != Challenger || r.v.Step != c.Step || r.v.OpName != op {
						b.Fatalf("verdict %+v", r.v)
					}
					b.ReportMetric(float64(r.v.StepRounds+r.v.OpRounds), "rounds")
					b.ReportMetric(float64(r.bytes), "bytes")
					b.ReportMetric(float64(s.rerun)/float64(r.refereeNS), "rerun/referee")
				})
				rows = append(rows, row{run: s.name, op: op, steps: s.pr.TotalSteps(), k: k, stepRounds: r.v.StepRounds, opRounds: r.v.OpRounds,
					bytes: r.bytes, refBytes: r.refBytes, referee: r.refereeNS, rerun: s.rerun, traceTimes: s.trace})
			}
		}
	}
	var sb strings.Builder
	sb.WriteString("\n| run | steps | corrupt op | k | rounds (step + op) | bytes exchanged | of which referee input | referee | full re-run | re-run / referee |\n")
	sb.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s | %d | %s | %d | %d + %d | %d | %d | %s | %s | %.0fx |\n", r.run, r.steps, r.op, r.k, r.stepRounds, r.opRounds,
			r.bytes, r.refBytes, r.referee.Round(time.Microsecond), r.rerun.Round(time.Millisecond), float64(r.rerun)/float64(r.referee))
	}
	for _, s := range setups {
		fmt.Fprintf(&sb, "\n%s: %d steps, %d ops per step; one party's trace (training + state roots) %s, plain re-run %s.", s.name, s.pr.TotalSteps(), s.pr.NumOps(), s.trace.Round(time.Millisecond), s.rerun.Round(time.Millisecond))
	}
	fmt.Println(sb.String())
}

// rerun times a plain re-run of the whole training (no hashing).
func rerun(b *testing.B, pr *ml.Program, data []uint8) time.Duration {
	b.Helper()
	start := time.Now()
	if _, err := ml.StateAt(context.Background(), pr.Config(), pr.VocabSize(), testSeed, data, pr.TotalSteps(), pr.TotalSteps(), ml.TraceOptions{}); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
