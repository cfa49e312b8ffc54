package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/finance"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/domains/skills"
	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/datasets"
	"github.com/hyperspace-ai/hyperspace/internal/keystore"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/memory"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// common holds the connection settings shared by dev, worker and api.
type common struct {
	DatabaseURL     string
	S3Endpoint      string
	S3AccessKey     string
	S3SecretKey     string
	S3Bucket        string
	TemporalAddress string
	Namespace       string
	DataDir         string
	StateDir        string
	LogLevel        string
	LLMAPIKey       string
	SiteSecret      string
	SiteSecretFile  string
	// LLMAllowList is --llm-allow as given; LLMAllow is it parsed (before
	// the command runs).
	LLMAllowList string
	LLMAllow     *llm.AllowList
	// PublicReads is --public-reads (api, dev, node).
	PublicReads bool
}

func defaultStateDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".hyperspace")
	}
	return ".hyperspace"
}

func (c *common) addDBFlags(cmd *cobra.Command) { c.addDBFlagsTo(cmd.Flags()) }

func (c *common) addDBFlagsTo(f *pflag.FlagSet) {
	f.StringVar(&c.DatabaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/hyperspace?sslmode=disable", "PostgreSQL connection URL")
	f.StringVar(&c.LogLevel, "log-level", "info", "log level: debug|info|warn|error")
}

func (c *common) addFlags(cmd *cobra.Command, temporalDefault string) {
	c.addDBFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&c.S3Endpoint, "s3-endpoint", "http://127.0.0.1:7070", "S3 server URL (any S3-compatible server; make up starts versitygw)")
	f.StringVar(&c.S3AccessKey, "s3-access-key", "hyperspace", "S3 access key")
	f.StringVar(&c.S3SecretKey, "s3-secret-key", "hyperspace-secret", "S3 secret key")
	f.StringVar(&c.S3Bucket, "s3-bucket", "hyperspace", "S3 bucket for artifacts (created if missing)")
	f.StringVar(&c.TemporalAddress, "temporal-address", temporalDefault, "Temporal frontend host:port")
	f.StringVar(&c.Namespace, "namespace", "default", "Temporal namespace")
	f.StringVar(&c.DataDir, "data-dir", "", dataDirUsage)
	f.StringVar(&c.StateDir, "state-dir", defaultStateDir(), "where agent keys and the embedded Temporal database live")
	f.StringVar(&c.LLMAPIKey, "llm-api-key", "", "API key for campaigns' OpenAI-compatible LLM endpoints (never stored in workflow history; sent only to --llm-allow endpoints)")
	f.StringVar(&c.SiteSecret, "site-secret", "", "the site secret that seals agent keys in the database; every process of a site that signs needs the same one (prefer the environment variable to the flag)")
	f.StringVar(&c.SiteSecretFile, "site-secret-file", "", "file holding the site secret (default <state-dir>/site.secret when it exists; `hyperspace dev` creates it)")
	f.StringVar(&c.LLMAllowList, "llm-allow", "", "comma-separated URL prefixes of the LLM endpoints campaigns may use, e.g. http://127.0.0.1:8000/v1 "+
		"(scheme, host and port must match, the path must start with the prefix); empty: none, campaigns use the built-in proposer")
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		a, err := llm.ParseAllowList(c.LLMAllowList)
		if err != nil {
			return fmt.Errorf("--llm-allow: %w", err)
		}
		c.LLMAllow = a
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

// addPublicReads adds --public-reads (commands that serve the API).
func (c *common) addPublicReads(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&c.PublicReads, "public-reads", false, "serve GET endpoints to anyone, without a token (state-changing endpoints always need one); only on purpose")
}

func (c *common) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	l := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(l)
	return l
}

func (c *common) openStore(ctx context.Context) (*store.Store, error) {
	st, err := store.Open(ctx, c.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w\n  (is PostgreSQL running? `make up` starts one; or pass --database-url)", err)
	}
	return st, nil
}

func (c *common) openBlob(ctx context.Context) (*blob.Store, error) {
	bctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	b, err := blob.Open(bctx, blob.Config{Endpoint: c.S3Endpoint, AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey, Bucket: c.S3Bucket})
	if err != nil {
		return nil, fmt.Errorf("%w\n  (is the S3 server running? `make up` starts versitygw; or pass --s3-endpoint)", err)
	}
	return b, nil
}

func (c *common) dialTemporal(ctx context.Context, log *slog.Logger) (client.Client, error) {
	cl, err := client.DialContext(ctx, client.Options{
		HostPort: c.TemporalAddress, Namespace: c.Namespace,
		Logger: sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w\n  (run `hyperspace dev`, or pass --temporal-address)", c.TemporalAddress, err)
	}
	return cl, nil
}

// registry lists the research domains this build knows.
func registry() *domains.Registry {
	return domains.NewRegistry(ml.New(), search.New(), finance.New(), skills.New())
}

// activities builds the activities of this process. With signing (it
// records, shares or writes for agents) it opens the site keystore, which
// needs the site secret; without, a process that only runs experiments or
// the archive needs none.
func (c *common) activities(ctx context.Context, st *store.Store, b *blob.Store, log *slog.Logger, signing bool) (*activities.Activities, error) {
	host, _ := os.Hostname()
	a := &activities.Activities{
		Store: st, Blob: b, Domains: registry(), DataDir: c.DataDir,
		LLMAPIKey: c.LLMAPIKey, LLMAllow: c.LLMAllow, WorkerID: fmt.Sprintf("%s-%d", host, os.Getpid()), Logger: log,
		Memory: memory.New(activities.StoreCorpus(st), memory.Options{}),
	}
	if signing {
		ks, err := c.keystore(ctx, st)
		if err != nil {
			return nil, err
		}
		a.Keys = ks
	}
	return a, nil
}

// siteSecretPath is where the site secret file is looked for.
func (c *common) siteSecretPath() string {
	if c.SiteSecretFile != "" {
		return c.SiteSecretFile
	}
	return filepath.Join(c.StateDir, "site.secret")
}

// keystore opens the site keystore with the site secret.
func (c *common) keystore(ctx context.Context, st *store.Store) (*keystore.Keystore, error) {
	secret, err := keystore.LoadSecret(c.SiteSecret, c.siteSecretPath())
	if errors.Is(err, os.ErrNotExist) {
		err = keystore.ErrNoSecret
	}
	if err != nil {
		return nil, fmt.Errorf("%w\n  (every process of a site that signs for agents needs the same site secret: the file %s, or HYPERSPACE_SITE_SECRET)", err, c.siteSecretPath())
	}
	ks, err := keystore.Open(ctx, st, secret)
	if errors.Is(err, keystore.ErrWrongSecret) {
		return nil, fmt.Errorf("open the site keystore: %w\n  (this site's database was set up with another site secret: use that one (the file %s, or HYPERSPACE_SITE_SECRET); "+
			"for a throwaway dev site, point --database-url at a fresh database instead)", err, c.siteSecretPath())
	}
	if err != nil {
		return nil, fmt.Errorf("open the site keystore: %w", err)
	}
	return ks, nil
}

// findDataDir returns the data dir to use: the configured one ("" for
// none) if it holds every data file, else ../shared/data if it does, else
// the default dir `hyperspace data fetch` fills. The error says what is
// missing where and to run `hyperspace data fetch`.
func findDataDir(configured string, log *slog.Logger) (string, error) {
	f, err := datasets.NewLookup(configured).Find()
	if err != nil {
		return "", err
	}
	if log != nil {
		if f.Warning != "" {
			log.Warn(f.Warning)
		}
		log.Info("data", "dir", f.Dir, "from", f.From)
	}
	return f.Dir, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// services are the connections a long-running subcommand holds.
type services struct {
	Store    *store.Store
	Blob     *blob.Store
	Temporal client.Client
}

// Close releases every connection.
func (s *services) Close() {
	if s.Temporal != nil {
		s.Temporal.Close()
	}
	if s.Store != nil {
		s.Store.Close()
	}
}

// connect makes the state dir and opens PostgreSQL, S3 and Temporal.
func (c *common) connect(ctx context.Context, log *slog.Logger) (*services, error) {
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	s := &services{}
	var err error
	if s.Store, err = c.openStore(ctx); err != nil {
		return nil, err
	}
	if s.Blob, err = c.openBlob(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.Temporal, err = c.dialTemporal(ctx, log); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
