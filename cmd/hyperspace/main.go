// Command hyperspace is the one Hyperspace binary: an all-in-one dev
// environment, workers, the REST API, migrations, a campaign client and
// benchmarks. Every flag can also be set with an environment variable
// HYPERSPACE_<FLAG_NAME> (see --help of each subcommand).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/internal/cli"
	"github.com/hyperspace-ai/hyperspace/internal/gcpolicy"
)

func main() {
	// Fewer, memory-bounded collections: the collector is gossip's tail
	// latency (package gcpolicy). GOGC or GOMEMLIMIT override it.
	gcpolicy.Apply(os.Getenv, 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:   "hyperspace",
		Short: "Autonomous research agents that run experiments, share findings and build on each other",
		Long: `Hyperspace runs research campaigns: agents hypothesize, run experiments,
record signed receipts and improve on each other's results. Campaigns are
durable Temporal workflows; results live in PostgreSQL and S3.

Every flag can be set with an environment variable HYPERSPACE_<FLAG>,
e.g. --database-url is HYPERSPACE_DATABASE_URL.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(devCmd(), nodeCmd(), workerCmd(), apiCmd(), migrateCmd(), tokenCmd(), campaignCmd(), trainCmd(), modelCmd(), pointsCmd(), benchCmd(), dataCmd())
	cli.BindEnv(root)
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "hyperspace:", err)
		os.Exit(1)
	}
}
