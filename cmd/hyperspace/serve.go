package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/memory"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workers"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

func workerCmd() *cobra.Command {
	var c common
	var queues, metricsAddr, backend string
	var pulseEvery time.Duration
	var slots int
	var arch archiveFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Serve Temporal task queues (workflows and agent activities, experiments)",
		Long: `worker polls the task queues it is told:
  hyperspace   campaign and agent workflows, Hypothesize, RecordResult
  experiments      RunExperiment and DiLoCo InnerTrain (CPU machines, the Go trainer)
  experiments-gpu  the same on a worker that declares an accelerator (--backend torch)
  archive      the git/GitHub archive and the snapshot schedule (needs --archive-dir)
Run as many as you like, on as many machines: Temporal spreads the work, and
an experiment whose worker dies is retried on another one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := c.logger()
			qs := workers.ParseQueues(queues)
			for _, q := range qs {
				if q != workflows.TaskQueue && q != workflows.ExperimentsQueue && q != workflows.GPUQueue && q != workflows.ArchiveQueue {
					return fmt.Errorf("--queues: unknown queue %q (known: %s, %s, %s, %s)", q, workflows.TaskQueue, workflows.ExperimentsQueue, workflows.GPUQueue, workflows.ArchiveQueue)
				}
			}
			// Only experiments need the data; other queues run without it.
			if dir, err := findDataDir(c.DataDir, log); err == nil {
				c.DataDir = dir
			} else if strings.Contains(queues, workflows.ExperimentsQueue) {
				return err
			}
			if backend != "go" && backend != "torch" {
				return fmt.Errorf("--backend: %q is not go or torch", backend)
			}
			svc, err := c.connect(ctx, log)
			if err != nil {
				return err
			}
			defer svc.Close()
			// Agent-side activities sign for agents; experiments and the
			// archive do not.
			acts, err := c.activities(ctx, svc.Store, svc.Blob, log, slices.Contains(qs, workflows.TaskQueue))
			if err != nil {
				return err
			}
			if err := useBackend(acts, backend, log); err != nil {
				return err
			}
			tc := svc.Temporal
			if strings.Contains(queues, workflows.ArchiveQueue) {
				if arch.Dir == "" {
					return fmt.Errorf("--queues %s needs --archive-dir", workflows.ArchiveQueue)
				}
				ar, _, err := arch.open(ctx)
				if err != nil {
					return err
				}
				acts.Archive = ar
				if err := workers.EnsureSnapshotSchedule(ctx, tc, arch.SnapshotEvery); err != nil {
					return err
				}
			}
			g, err := workers.Start(workers.Options{Client: tc, Queues: qs, Activities: acts, ExperimentSlots: slots, Identity: acts.WorkerID})
			if err != nil {
				return err
			}
			defer g.Stop()
			if slices.Contains(qs, workflows.TaskQueue) && pulseEvery > 0 {
				if err := workers.EnsurePulseSchedule(ctx, tc, pulseEvery); err != nil {
					return err
				}
			}
			if metricsAddr != "" {
				_, shutdown, err := serveHTTP(ctx, metricsAddr, promhttp.Handler(), log)
				if err != nil {
					return err
				}
				defer shutdown()
			}
			log.Info("worker running", "queues", qs, "temporal", c.TemporalAddress, "identity", acts.WorkerID)
			<-ctx.Done()
			log.Info("worker stopping")
			return nil
		},
	}
	c.addFlags(cmd, "127.0.0.1:7233")
	f := cmd.Flags()
	f.StringVar(&queues, "queues", workflows.TaskQueue+","+workflows.ExperimentsQueue, "comma-separated task queues to serve")
	f.IntVar(&slots, "experiment-slots", 1, "experiments this worker runs at once")
	f.StringVar(&backend, "backend", "go", "ML trainer of this worker: go (the bit-exact pure-Go reference) or torch (PyTorch, CUDA when present; serve experiments-gpu)")
	f.StringVar(&metricsAddr, "metrics-address", "", "serve Prometheus /metrics on this address (empty: off)")
	f.DurationVar(&pulseEvery, "pulse-every", workflows.DefaultPulseEvery, "with the hyperspace queue: pulse round length (the Temporal Schedule hyperspace-pulse; nodes must use the same --pulse-every); 0: no schedule")
	arch.add(cmd, "")
	return cmd
}

func apiCmd() *cobra.Command {
	var c common
	var listen, uiURL string
	var baselineSeeds, paperEvery int
	var archiveLocation string
	var inf inferenceFlags
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Serve the REST API (/api/v1, /healthz, /readyz, /metrics)",
		Long: `api serves the REST API. Every endpoint of /api/v1 but the OpenAPI
document, and /metrics, needs "Authorization: Bearer <token>" (see
hyperspace token create): scope read for GETs, run to start and stop
campaigns, admin to register causes. --public-reads opens the GETs.
Campaigns may name only the LLM endpoints of --llm-allow. It also serves
the OpenAI-compatible /v1 API (models, chat/completions, completions,
embeddings) with the site's published models, the starter model and the
built-in embedding model; a token with scope read is its API key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := c.logger()
			svc, err := c.connect(ctx, log)
			if err != nil {
				return err
			}
			defer svc.Close()
			srv := &api.Server{Store: svc.Store, Blob: svc.Blob, Temporal: svc.Temporal, Domains: registry(), TemporalUIURL: uiURL,
				Namespace: c.Namespace, Logger: log, DefaultBaselineSeeds: baselineSeeds, DefaultPaperEvery: paperEvery,
				Memory: memory.New(activities.StoreCorpus(svc.Store), memory.Options{}), PublicReads: c.PublicReads, LLMAllow: c.LLMAllow}
			if archiveLocation != "" {
				srv.Archive = &api.ArchiveInfo{Location: archiveLocation}
			}
			if dir, err := findDataDir(c.DataDir, log); err == nil {
				c.DataDir = dir
			}
			isvc, reg, err := c.startInference(ctx, inf, svc.Store, svc.Blob, log, nil)
			if err != nil {
				return err
			}
			if isvc != nil {
				srv.Inference, srv.Models = isvc, reg
			}
			_, shutdown, err := serveHTTP(ctx, listen, srv.Handler(), log)
			if err != nil {
				return err
			}
			defer shutdown()
			<-ctx.Done()
			return nil
		},
	}
	c.addFlags(cmd, "127.0.0.1:7233")
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "listen address (loopback by default; see the README before exposing it)")
	c.addPublicReads(cmd)
	inf.add(cmd)
	f.StringVar(&uiURL, "temporal-ui-url", "", "Temporal Web UI base URL, for links from campaigns to their workflows")
	f.IntVar(&baselineSeeds, "baseline-seeds", 3, "default number of baseline seeds for new campaigns")
	f.IntVar(&paperEvery, "paper-every", 5, "agents write a paper every this many experiments unless a campaign says otherwise (0: off)")
	f.StringVar(&archiveLocation, "archive-location", "", "the site's archive (where `worker --queues archive` keeps it): campaigns archive to it and /status reports it (empty: no archive)")
	return cmd
}

func migrateCmd() *cobra.Command {
	var c common
	var steps int
	cmd := &cobra.Command{
		Use:       "migrate up|down|status",
		Short:     "Apply, revert or list the PostgreSQL migrations",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c.logger()
			st, err := c.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			switch args[0] {
			case "up":
				v, err := store.MigrateUp(ctx, st.Pool)
				if err != nil {
					return err
				}
				if len(v) == 0 {
					fmt.Println("up to date")
				}
				for _, x := range v {
					fmt.Printf("applied %04d\n", x)
				}
			case "down":
				if steps < 1 {
					return fmt.Errorf("--steps must be >= 1")
				}
				v, err := store.MigrateDown(ctx, st.Pool, steps)
				if err != nil {
					return err
				}
				if len(v) == 0 {
					fmt.Println("nothing to revert")
				}
				for _, x := range v {
					fmt.Printf("reverted %04d\n", x)
				}
			case "status":
				ms, err := store.MigrationsStatus(ctx, st.Pool)
				if err != nil {
					return err
				}
				for _, m := range ms {
					state := "pending"
					if m.Applied {
						state = "applied " + m.AppliedAt.Format("2006-01-02 15:04:05")
					}
					fmt.Printf("%04d_%-30s %s\n", m.Version, m.Name, state)
				}
			default:
				return fmt.Errorf("unknown action %q: use up, down or status", args[0])
			}
			return nil
		},
	}
	c.addDBFlags(cmd)
	cmd.Flags().IntVar(&steps, "steps", 1, "migrations to revert with down")
	return cmd
}
