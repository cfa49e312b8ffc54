package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/devserver"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/keystore"
	"github.com/hyperspace-ai/hyperspace/internal/modelserve"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/workers"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

func devCmd() *cobra.Command {
	var c common
	var listen, wsListen, demoDomain string
	var temporalPort, uiPort, slots, demoAgents, demoExperiments, baselineSeeds, nodes int
	var noUI, demo bool
	var demoBudget float64
	var arch archiveFlags
	var paperEvery int
	var noArchive bool
	var pulseEvery time.Duration
	var pw powFlags
	var inf inferenceFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "All in one: embedded Temporal server and UI, migrations, workers and the API",
		Long: `dev runs everything one machine needs: an embedded Temporal server (SQLite
file in --state-dir) with its Web UI, unless --temporal-address points at an
existing cluster; applies the PostgreSQL migrations; serves both task queues;
and serves the REST API. On first start it creates an admin token for the
API and keeps it in <state-dir>/admin.token (mode 0600), reused while it
still verifies. With --demo it also starts a small demo campaign.
PostgreSQL and an S3 server must be reachable (make up starts both).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := c.logger()
			var nodeOpts node.Options // the identity puzzles of the loopback nodes
			if err := pw.apply(&nodeOpts); err != nil {
				return err
			}
			dataDir, err := findDataDir(c.DataDir, log)
			if err != nil {
				return err
			}
			c.DataDir = dataDir
			if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
				return fmt.Errorf("state dir: %w", err)
			}
			uiURL := ""
			if c.TemporalAddress == "" {
				up := -1
				if !noUI {
					up = uiPort
				}
				log.Info("starting embedded Temporal server", "db", filepath.Join(c.StateDir, "temporal.db"))
				ts, err := devserver.Start(ctx, devserver.Options{
					DBFile: filepath.Join(c.StateDir, "temporal.db"), Port: temporalPort, UIPort: up,
					Namespaces: []string{c.Namespace}, LogFile: filepath.Join(c.StateDir, "temporal.log"),
				})
				if err != nil {
					return err
				}
				defer ts.Stop()
				c.TemporalAddress, uiURL = ts.FrontendAddress(), ts.UIURL()
			}
			st, err := c.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := store.MigrateUp(ctx, st.Pool)
			if err != nil {
				return err
			}
			if len(applied) > 0 {
				log.Info("migrations applied", "versions", applied)
			}
			adminToken, newToken, err := ensureAdminToken(ctx, st, c.StateDir)
			if err != nil {
				return fmt.Errorf("admin token: %w", err)
			}
			if newToken {
				log.Info("created an admin token", "file", adminTokenFile(c.StateDir))
			}
			b, err := c.openBlob(ctx)
			if err != nil {
				return err
			}
			tc, err := c.dialTemporal(ctx, log)
			if err != nil {
				return err
			}
			defer tc.Close()
			if c.SiteSecret == "" {
				// One machine, one site: its secret lives in the state dir.
				if _, err := keystore.CreateSecretFile(c.siteSecretPath()); err != nil {
					return err
				}
			}
			acts, err := c.activities(ctx, st, b, log, true)
			if err != nil {
				return err
			}
			if arch.Dir == "" && !noArchive {
				arch.Dir = filepath.Join(c.StateDir, "archive.git")
			}
			ar, archInfo, err := arch.open(ctx)
			if err != nil {
				return err
			}
			acts.Archive = ar
			queues := []string{workflows.TaskQueue, workflows.ExperimentsQueue}
			if ar != nil {
				queues = append(queues, workflows.ArchiveQueue)
			}
			g, err := workers.Start(workers.Options{Client: tc, Queues: queues, Activities: acts, ExperimentSlots: slots, Identity: acts.WorkerID})
			if err != nil {
				return err
			}
			defer g.Stop()
			if ar != nil {
				if err := workers.EnsureSnapshotSchedule(ctx, tc, arch.SnapshotEvery); err != nil {
					return err
				}
			}
			if nodes > 0 && pulseEvery > 0 {
				if err := workers.EnsurePulseSchedule(ctx, tc, pulseEvery); err != nil {
					return err
				}
			}
			mem := acts.Memory // one memory for the API's /search and the agents' hypotheses
			srv := &api.Server{Store: st, Blob: b, Temporal: tc, Domains: acts.Domains, TemporalUIURL: uiURL,
				Namespace: c.Namespace, Logger: log, DefaultBaselineSeeds: baselineSeeds,
				DefaultPaperEvery: paperEvery, Archive: archInfo, Memory: mem, PublicReads: c.PublicReads, LLMAllow: c.LLMAllow}
			// N P2P nodes on loopback, each with its own libp2p host, replica
			// and worker on node-<peerID>: the gossip of a local run is real.
			var bootstrap []string
			var node1 *node.Node
			for i := 0; i < nodes; i++ {
				var ws []string
				if i == 0 { // the API's node: browser tabs (/mesh/) dial it
					ws = splitList(wsListen)
				}
				n, err := node.Start(ctx, node.Options{
					Dir: filepath.Join(c.StateDir, "nodes", strconv.Itoa(i+1)), Bootstrap: bootstrap, WebSocketListenAddrs: ws,
					Domains: registry().Names(), Temporal: tc, Activities: acts, Store: st, Logger: log,
					RegisterMetrics: i == 0, PoWDifficulty: nodeOpts.PoWDifficulty, PoWDynamic: nodeOpts.PoWDynamic,
					PulseInterval: pulseEvery, NoPulse: pulseEvery <= 0,
				})
				if err != nil {
					return fmt.Errorf("start node %d: %w", i+1, err)
				}
				defer n.Close()
				if i == 0 {
					for _, a := range n.P2P.Addrs() {
						bootstrap = append(bootstrap, a.String())
					}
					srv.Node = &api.NetworkNode{P2P: n.P2P, Replica: n.Replica}
				}
				if i == 0 {
					// Node 1 serves the API's /v1 service on the mesh (its
					// response cache and KV prefixes are shared with peers).
					node1 = n
				}
			}
			var bind func(*inference.Service, *modelserve.Registry) error
			if node1 != nil {
				bind = func(s *inference.Service, r *modelserve.Registry) error {
					return node1.ServeInference(ctx, s, r, node.InferenceOptions{RegisterMetrics: true})
				}
			}
			isvc, reg, err := c.startInference(ctx, inf, st, b, log, bind)
			if err != nil {
				return err
			}
			if isvc != nil {
				srv.Inference, srv.Models = isvc, reg
			}
			apiURL, shutdown, err := serveHTTP(ctx, listen, srv.Handler(), log)
			if err != nil {
				return err
			}
			defer shutdown()

			fmt.Printf("\nHyperspace is running.\n  API:          %s/api/v1  (OpenAPI: %s/api/v1/openapi.json)\n", apiURL, apiURL)
			fmt.Printf("  Dashboard:    %s/  (log in with the admin token below, or a read token)\n", apiURL)
			fmt.Printf("  Admin token:  %s\n                (in %s, mode 0600; send it as Authorization: Bearer ...; the campaign commands read it from there)\n",
				adminToken, adminTokenFile(c.StateDir))
			if uiURL != "" {
				fmt.Printf("  Temporal UI:  %s/namespaces/%s/workflows\n", uiURL, c.Namespace)
			}
			fmt.Printf("  Temporal:     %s (namespace %s)\n  Metrics:      %s/metrics\n", c.TemporalAddress, c.Namespace, apiURL)
			if isvc != nil {
				fmt.Printf("  OpenAI API:   %s/v1  (models %s/v1/models; the admin token above is an API key; chat model %s, embeddings %s)\n",
					apiURL, apiURL, modelserve.StarterModelName, modelserve.EmbeddingModelName)
			}
			fmt.Printf("  Papers:       %s/api/v1/papers  breakthroughs %s/api/v1/breakthroughs  search %s/api/v1/search?q=...\n", apiURL, apiURL, apiURL)
			if archInfo != nil {
				fmt.Printf("  Archive:      %s (git; snapshots every %s; %s/api/v1/status)\n", archInfo.Location, arch.SnapshotEvery, apiURL)
			}
			if nodes > 0 && pulseEvery > 0 {
				fmt.Printf("  Points:       %s/api/v1/points  rounds %s/api/v1/pulse/rounds  (a pulse round every %s; `hyperspace points`)\n", apiURL, apiURL, pulseEvery)
			}
			if nodes > 0 {
				fmt.Printf("  P2P:          %d nodes on loopback; peers %s/api/v1/peers, findings %s/api/v1/gossip/stream\n", nodes, apiURL, apiURL)
			}
			if demo {
				id, err := startDemo(ctx, apiURL, adminToken, demoDomain, demoAgents, demoExperiments, demoBudget)
				if err != nil {
					log.Error("demo campaign did not start", "error", err)
				} else {
					fmt.Printf("  Demo campaign: %s\n  Follow it:    %s campaign watch %s --api-url %s\n", id, os.Args[0], id, apiURL)
					if demoDomain == "ml" && isvc != nil {
						fmt.Printf("  Demo model:   %s on /v1 once the demo campaign completes (its best checkpoint)\n", DemoModelName)
						go publishDemoBest(ctx, st, apiURL, adminToken, id, log)
					}
				}
			} else {
				fmt.Printf("  Start one:    %s campaign start --domain ml --agents 2 --experiments 3 --api-url %s\n", os.Args[0], apiURL)
			}
			fmt.Println()
			<-ctx.Done()
			log.Info("shutting down")
			return nil
		},
	}
	c.addFlags(cmd, "")
	f := cmd.Flags()
	f.Lookup("temporal-address").Usage = "use this Temporal cluster instead of the embedded server (host:port; empty: embedded)"
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "API listen address (loopback by default; see the README before exposing it)")
	c.addPublicReads(cmd)
	f.StringVar(&wsListen, "ws-listen", p2p.DefaultWebSocketListenAddr, "comma-separated WebSocket listen multiaddrs of the first node, for browser peers (the /mesh/ page; empty: off)")
	f.IntVar(&temporalPort, "temporal-port", 7233, "embedded Temporal frontend port (0: any free port)")
	f.IntVar(&uiPort, "ui-port", 8233, "embedded Temporal Web UI port, on 127.0.0.1 (0: any free port); the UI has no authentication of its own")
	f.BoolVar(&noUI, "no-ui", false, "do not serve the Temporal Web UI")
	f.IntVar(&slots, "experiment-slots", 1, "experiments this process runs at once (each trainer uses every core)")
	pw.add(cmd)
	inf.add(cmd)
	f.IntVar(&nodes, "nodes", 2, "P2P nodes to run on loopback (each its own libp2p host, replica and worker); 0: no knowledge plane")
	f.IntVar(&baselineSeeds, "baseline-seeds", 3, "default number of baseline seeds for new campaigns (the noise floor)")
	f.BoolVar(&demo, "demo", false, "start a small demo campaign once everything is up")
	f.StringVar(&demoDomain, "demo-domain", "ml", "domain of the demo campaign")
	f.IntVar(&demoAgents, "demo-agents", 2, "agents in the demo campaign")
	f.IntVar(&demoExperiments, "demo-experiments", 3, "experiments per agent in the demo campaign")
	f.Float64Var(&demoBudget, "demo-budget", 0, "wall-clock cap of one demo experiment in seconds (0: the API default, 120)")
	f.IntVar(&paperEvery, "paper-every", 5, "agents write a paper every this many experiments unless a campaign says otherwise (0: off)")
	arch.add(cmd, "")
	f.Lookup("archive-dir").Usage = "local bare git repository of the research archive (default: <state-dir>/archive.git)"
	f.DurationVar(&pulseEvery, "pulse-every", workflows.DefaultPulseEvery, "pulse round length: nodes publish presences and the hyperspace-pulse schedule credits points every this often (0: no pulse rounds)")
	f.BoolVar(&noArchive, "no-archive", false, "run without the git archive (and its snapshot schedule)")
	return cmd
}

// serveHTTP listens on addr and serves h until shutdown is called.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s: %w (is another hyperspace running? pass --listen)", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "error", err)
		}
	}()
	url := "http://" + ln.Addr().String()
	log.Info("api listening", "url", url)
	return url, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}

func startDemo(ctx context.Context, apiURL, token, domain string, agents, experiments int, budget float64) (string, error) {
	// One paper per agent at the end, so the demo shows peer review too.
	req := map[string]any{"domain": domain, "agents": agents, "experiments": experiments, "paperEvery": experiments}
	if budget > 0 {
		req["budget"] = budget
	}
	body, _ := json.Marshal(req)
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/api/v1/campaigns", bytes.NewReader(body))
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID    string `json:"id"`
		Error *api.ErrorDetail
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		msg := resp.Status
		if out.Error != nil {
			msg = out.Error.Message
		}
		return "", errors.New(msg)
	}
	return out.ID, nil
}

// DemoModelName is the name the demo campaign's best checkpoint is
// published under when the campaign completes.
const DemoModelName = "hyperspace-demo"

// publishDemoBest waits (bounded by ctx) for the ML demo campaign id to
// end and publishes its best experiment's checkpoint as DemoModelName, so
// /v1 serves what the agents found.
func publishDemoBest(ctx context.Context, st *store.Store, apiURL, token, id string, log *slog.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, err := st.GetCampaign(ctx, id)
		if err != nil || (c.Status != store.StatusCompleted && c.Status != store.StatusStopped) {
			continue
		}
		best, ok, err := st.BestInCampaign(ctx, id, true)
		if err != nil || !ok {
			log.Warn("demo campaign has no best experiment to publish", "campaign", id, "err", err)
			return
		}
		body, _ := json.Marshal(api.PublishModelRequest{Source: best.ID, Name: DemoModelName})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/api/v1/models", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Warn("publishing the demo model failed", "err", err)
			return
		}
		resp.Body.Close()
		log.Info("published the demo campaign's best checkpoint", "model", DemoModelName, "experiment", best.ID, "val_loss", best.Metric, "status", resp.StatusCode)
		return
	}
}
