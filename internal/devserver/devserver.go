// Package devserver runs a single-process Temporal server (all four services,
// SQLite persistence) and, optionally, the Temporal Web UI, inside the
// hyperspace binary. It is what `hyperspace dev` uses when no
// --temporal-address is given. It is built on the server's public options
// (go.temporal.io/server/temporal) and the UI server's public API.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// Options configure the embedded server.
type Options struct {
	// DBFile is the SQLite file that keeps workflow histories across restarts.
	// Empty means in-memory (lost on exit).
	DBFile string
	// IP to bind (default 127.0.0.1).
	IP string
	// Port of the frontend gRPC service (default 7233; 0 picks a free port).
	Port int
	// UIPort of the Web UI (default 8233; -1 disables the UI; 0 picks a free port).
	UIPort int
	// Namespaces to create (default: "default").
	Namespaces []string
	// LogLevel of the server's own logs: debug|info|warn|error (default warn).
	LogLevel string
	// LogFile receives the server's logs (default: stderr).
	LogFile string
}

// Server is a running embedded Temporal server.
type Server struct {
	srv      temporal.Server
	ui       *uiserver.Server
	frontend string
	uiURL    string
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func checkFree(ip string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %s:%d is not free (another Temporal or hyperspace dev running? pass a different port or --temporal-address): %w", ip, port, err)
	}
	return l.Close()
}

// Start starts the server and waits until the frontend answers.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if len(o.Namespaces) == 0 {
		o.Namespaces = []string{"default"}
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	var err error
	if o.Port == 0 {
		if o.Port, err = freePort(o.IP); err != nil {
			return nil, err
		}
	} else if err := checkFree(o.IP, o.Port); err != nil {
		return nil, err
	}
	if o.UIPort == 0 {
		if o.UIPort, err = freePort(o.IP); err != nil {
			return nil, err
		}
	} else if o.UIPort > 0 {
		if err := checkFree(o.IP, o.UIPort); err != nil {
			return nil, err
		}
	}

	sqlCfg := config.SQL{
		PluginName:        sqliteplugin.PluginName,
		ConnectAttributes: map[string]string{},
	}
	if o.DBFile == "" {
		sqlCfg.ConnectAttributes["mode"] = "memory"
		sqlCfg.ConnectAttributes["cache"] = "shared"
		sqlCfg.DatabaseName = fmt.Sprintf("hyperspace-%d", time.Now().UnixNano())
	} else {
		if err := os.MkdirAll(filepath.Dir(o.DBFile), 0o755); err != nil {
			return nil, fmt.Errorf("temporal db dir: %w", err)
		}
		sqlCfg.ConnectAttributes["mode"] = "rwc"
		sqlCfg.ConnectAttributes["_journal_mode"] = "wal"
		sqlCfg.ConnectAttributes["_synchronous"] = "2"
		sqlCfg.DatabaseName = o.DBFile
		if _, err := os.Stat(o.DBFile); errors.Is(err, os.ErrNotExist) {
			if err := sqlite.SetupSchema(&sqlCfg); err != nil {
				return nil, fmt.Errorf("create temporal schema in %s: %w", o.DBFile, err)
			}
		}
	}

	ports := make([]int, 0, 8)
	for i := 0; i < 8; i++ {
		p, err := freePort(o.IP)
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	svc := func(grpc, membership int, frontend bool) config.Service {
		rpc := config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnLocalHost: true}
		if frontend {
			rpc.BindOnLocalHost = false
			rpc.BindOnIP = o.IP
		}
		return config.Service{RPC: rpc}
	}
	frontend := net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
	cfg := &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: "127.0.0.1"},
			Metrics: &metrics.Config{Prometheus: &metrics.PrometheusConfig{
				ListenAddress: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])), HandlerPath: "/metrics"}},
			PProf: config.PProf{Port: ports[1]},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: &sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        "active",
			CurrentClusterName:       "active",
			ClusterInformation: map[string]cluster.ClusterInformation{
				"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontend},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": svc(o.Port, ports[2], true),
			"history":  svc(ports[3], ports[4], false),
			"matching": svc(ports[5], ports[6], false),
			"worker":   svc(ports[7], mustFree(o.IP), false),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		PublicClient: config.PublicClient{HostPort: frontend},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
	}

	var nsConfigs []*sqlite.NamespaceConfig
	for _, ns := range o.Namespaces {
		nc, err := sqlite.NewNamespaceConfig("active", ns, false, nil)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
		nsConfigs = append(nsConfigs, nc)
	}
	if err := sqlite.CreateNamespaces(&sqlCfg, nsConfigs...); err != nil {
		return nil, fmt.Errorf("create namespaces: %w", err)
	}

	logger := tlog.NewZapLogger(tlog.BuildZapLogger(tlog.Config{Level: o.LogLevel, OutputFile: o.LogFile, Format: "console"}))
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("temporal authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("temporal claim mapper: %w", err)
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			// Let the UI and tests see new search attributes at once.
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("create temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal server: %w", err)
	}
	s := &Server{srv: srv, frontend: frontend}
	if err := waitReady(ctx, frontend, o.Namespaces[0]); err != nil {
		_ = srv.Stop()
		return nil, err
	}
	if o.UIPort > 0 {
		ui := uiserver.NewServer(uioptions.WithConfigProvider(&uiConfig{cfg: &uiconfig.Config{
			Host:                o.IP,
			Port:                o.UIPort,
			TemporalGRPCAddress: frontend,
			EnableUI:            true,
			DefaultNamespace:    o.Namespaces[0],
			HideLogs:            true,
			DisableNewsFetch:    true,
			CORS:                uiconfig.CORS{CookieInsecure: true},
		}}))
		s.ui = ui
		s.uiURL = fmt.Sprintf("http://%s:%d", o.IP, o.UIPort)
		go func() { _ = ui.Start() }()
		if err := waitHTTP(ctx, s.uiURL+"/healthz"); err != nil {
			s.Stop()
			return nil, fmt.Errorf("temporal ui: %w", err)
		}
	}
	return s, nil
}

func mustFree(ip string) int {
	p, err := freePort(ip)
	if err != nil {
		panic(err)
	}
	return p
}

type uiConfig struct{ cfg *uiconfig.Config }

func (u *uiConfig) GetConfig() (*uiconfig.Config, error) { return u.cfg, nil }

func waitReady(ctx context.Context, hostPort, ns string) error {
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		c, err := client.Dial(client.Options{HostPort: hostPort, Namespace: ns, Logger: quietLogger{}})
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = c.CheckHealth(cctx, &client.CheckHealthRequest{})
			if err == nil {
				_, err = c.DescribeTaskQueue(cctx, "hyperspace-probe", 1)
			}
			cancel()
			c.Close()
			if err == nil {
				return nil
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("temporal frontend %s not ready after 60s: %w", hostPort, lastErr)
}

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(20 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not answering: %w", url, lastErr)
}

// FrontendAddress is the host:port clients and workers dial.
func (s *Server) FrontendAddress() string { return s.frontend }

// UIURL is the Web UI's base URL ("" when disabled).
func (s *Server) UIURL() string { return s.uiURL }

// Stop stops the UI and the server.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	if s.srv != nil {
		_ = s.srv.Stop()
	}
}

// quietLogger drops the SDK client's logs while probing readiness.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
