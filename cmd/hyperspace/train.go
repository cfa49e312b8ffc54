package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

func trainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Start, inspect, follow and stop DiLoCo training runs (a REST client)",
		Long: `train talks to a hyperspace API (POST /api/v1/training-runs). A run trains one
ML-domain model with DiLoCo: K workers each take H AdamW steps on their own
shard of the Cranfield train split, then their compressed pseudo-gradients
are averaged and applied with Nesterov SGD; every round is a step of a
TrainingRunWorkflow in Temporal. Tokens as for hyperspace campaign.`,
	}
	cl, apiURL := addAPIFlags(cmd)

	var req api.TrainingRunRequest
	var cfg string
	var outerLR, momentum float64
	var noEF, watch bool
	start := &cobra.Command{
		Use:   "start",
		Short: "Start a training run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if cfg != "" {
				if err := json.Unmarshal([]byte(cfg), &req.Config); err != nil {
					return fmt.Errorf("--config must be a JSON object: %w", err)
				}
			}
			if f.Changed("outer-lr") {
				req.OuterLR = &outerLR
			}
			if f.Changed("outer-momentum") {
				req.OuterMomentum = &momentum
			}
			if noEF {
				no := false
				req.ErrorFeedback = &no
			}
			var out api.TrainingRunView
			if err := cl.do(cmd.Context(), http.MethodPost, "/api/v1/training-runs", req, &out); err != nil {
				return err
			}
			fmt.Printf("started training run %s\n", out.ID)
			if u := out.Links["temporalUI"]; u != "" {
				fmt.Println("  Temporal UI:", u)
			}
			if watch {
				return watchTraining(cmd.Context(), cl, out.ID, os.Stdout)
			}
			fmt.Printf("  follow it:   hyperspace train watch %s --api-url %s\n", out.ID, *apiURL)
			return nil
		},
	}
	sf := start.Flags()
	sf.StringVar(&req.ID, "id", "", "run id (default: generated)")
	sf.StringVar(&cfg, "config", "", `ML model config overrides as JSON, e.g. '{"nLayers":2,"dModel":64}' (default: the ML baseline)`)
	sf.IntVar(&req.Workers, "workers", 4, "workers K (shards trained in parallel)")
	sf.IntVar(&req.InnerSteps, "inner-steps", 50, "inner steps H per round")
	sf.IntVar(&req.Rounds, "rounds", 0, "rounds R (or give --token-budget)")
	sf.Int64Var(&req.TokenBudget, "token-budget", 0, "total training characters over all workers (sets the rounds when --rounds is 0)")
	sf.Float64Var(&outerLR, "outer-lr", 0.7, "outer Nesterov learning rate")
	sf.Float64Var(&momentum, "outer-momentum", 0.9, "outer Nesterov momentum")
	sf.StringVar(&req.FinalStep, "final-step", "average", "the last round's outer step: average (the workers' token-weighted average) or outer (Nesterov, as in every other round)")
	sf.StringVar(&req.Compression, "compression", "int8", "pseudo-gradient compression: fp32, fp16, int8 or int4")
	sf.BoolVar(&noEF, "no-error-feedback", false, "turn off error feedback for int8/int4")
	sf.StringVar(&req.Sharding, "sharding", "interleaved", "interleaved (disjoint shards, documents dealt round-robin), disjoint (contiguous ranges of documents) or full (every worker samples the whole split)")
	sf.Float64Var(&req.Quorum, "quorum", 0.75, "fraction of K deltas that may close a round at its deadline")
	sf.Int64Var(&req.Seed, "seed", 1, "seed of the initial parameters and the workers' samplers")
	sf.StringVar(&req.Backend, "backend", "go", "worker kind: go (experiments queue), torch (experiments-gpu queue) or any (both, alternating shards)")
	sf.BoolVar(&req.Remote, "remote", false, "announce rounds over gossip and accept deltas from nodes of other sites")
	sf.BoolVar(&watch, "watch", false, "follow the run after starting it")

	status := &cobra.Command{
		Use:   "status ID",
		Short: "Show a training run as JSON (with its rounds)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return printJSON(cmd.Context(), cl, "/api/v1/training-runs/"+args[0]+"?rounds=true")
		},
	}
	watchC := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a training run: round, global val_loss, bytes moved, contributors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return watchTraining(cmd.Context(), cl, args[0], os.Stdout)
		},
	}
	stop := stopCmd(cl, "training run", "/api/v1/training-runs/", "Close the current round and end the run (its result is signed as stopped)")
	cmd.AddCommand(start, status, watchC, stop)
	return cmd
}

// watchTraining prints one line per closed round until the run ends.
func watchTraining(ctx context.Context, cl *apiClient, id string, w *os.File) error {
	last := ""
	for {
		var v api.TrainingRunView
		if err := cl.do(ctx, http.MethodGet, "/api/v1/training-runs/"+id, nil, &v); err != nil {
			return err
		}
		p := v.Live
		if p == nil && len(v.Progress) > 0 {
			p = &workflows.TrainingProgress{}
			_ = json.Unmarshal(v.Progress, p)
		}
		line := fmt.Sprintf("%s: %s", id, v.Status)
		if p != nil {
			line = renderTraining(v.Status, p)
		}
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		switch v.Status {
		case "completed", "stopped", "failed":
			if v.Error != "" {
				fmt.Fprintln(w, "error:", v.Error)
			}
			if p != nil && p.Result != "" {
				fmt.Fprintf(w, "result: receipt %s, val_loss %.4f, test_loss %.4f, checkpoint %s\n", short(p.Result), p.ValLoss, p.TestLoss, short(p.Checkpoint))
			}
			if v.Status == "failed" {
				return fmt.Errorf("training run %s failed", id)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func renderTraining(status string, p *workflows.TrainingProgress) string {
	var who []string
	for id, n := range p.Contributors {
		who = append(who, fmt.Sprintf("%s×%d", short(id), n))
	}
	val := "-"
	if p.ValLoss > 0 {
		val = fmt.Sprintf("%.4f", p.ValLoss)
	}
	return fmt.Sprintf("%-9s round %d/%d  val_loss %s  up %s down %s  dropped %d rejected %d remote %d  deadline %.0fs  contributors %s",
		status, p.Round, p.Rounds, val, humanBytes(p.BytesUp), humanBytes(p.BytesDown), p.Dropped, p.Rejected, p.Remote, p.Deadline, strings.Join(who, " "))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
