// Package api serves Hyperspace's REST API (gin) under /api/v1: campaigns,
// domains and leaderboards, experiments; plus /healthz, /readyz, /metrics
// and the OpenAPI document at /api/v1/openapi.json.
//
// Every route of /api/v1 (but the OpenAPI document) and /metrics needs a
// bearer token (see auth.go): read for GETs, run to start and stop
// campaigns, admin for the rest. /healthz, /readyz and the OpenAPI
// document are open. The dashboard is served at / (dashboard.go): its
// pages and session cookie follow the same scopes.
package api

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/memory"
	"github.com/hyperspace-ai/hyperspace/internal/metrics"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

//go:embed openapi.json
var openapiDoc []byte

// Server holds the API's dependencies.
type Server struct {
	Store    *store.Store
	Blob     *blob.Store // optional: readiness and artifact links
	Temporal client.Client
	Domains  *domains.Registry
	// TemporalUIURL, when set, is used to link campaigns to their workflow pages.
	TemporalUIURL string
	// Namespace of the Temporal workflows (for UI links).
	Namespace string
	Logger    *slog.Logger
	// Defaults for new campaigns.
	DefaultBaselineSeeds    int
	DefaultHeartbeatSeconds int
	// Node is this process's P2P node, if it runs one (peers, gossip, network leaderboard).
	Node *NetworkNode
	// DefaultPaperEvery: agents write a paper every this many experiments
	// unless a campaign says otherwise (0: no papers by default).
	DefaultPaperEvery int
	// Archive, when set, is the site's git archive (campaigns archive to it
	// and /status reports it).
	Archive *ArchiveInfo
	// Memory serves GET /api/v1/search (nil: 503).
	Memory *memory.Memory
	// PublicReads opens GET endpoints to requests without a token
	// (--public-reads); state-changing ones always need one.
	PublicReads bool
	// APIKeyCacheTTL is how long /v1 trusts a verified API key before
	// checking the database again (0: DefaultAPIKeyCacheTTL; < 0: every
	// request). A revoked key keeps working on /v1 for at most this long.
	APIKeyCacheTTL time.Duration
	apiKeys        *keyCache
	// LLMAllow is the operator's allow-list of LLM endpoints
	// (--llm-allow): a campaign naming another is refused with 422. nil
	// allows none.
	LLMAllow *llm.AllowList
	// Inference serves the OpenAI-compatible /v1 API (nil: 503 there).
	Inference *inference.Service
	// Models, when set, is told when a model is published so this process
	// serves it at once (the models REST endpoints).
	Models ModelLoader
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Handler builds the HTTP handler.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(gin.CustomRecovery(func(c *gin.Context, rec any) {
		s.log().Error("panic in handler", "path", c.Request.URL.Path, "panic", rec)
		c.AbortWithStatusJSON(http.StatusInternalServerError, ErrorBody{Error: ErrorDetail{Code: CodeInternal, Message: "internal error; see the server log"}})
	}))
	r.Use(s.observe)
	r.NoRoute(func(c *gin.Context) {
		if openAINoRoute(c) {
			return
		}
		c.JSON(http.StatusNotFound, ErrorBody{Error: ErrorDetail{Code: CodeNotFound, Message: "no route " + c.Request.Method + " " + c.Request.URL.Path + "; see /api/v1/openapi.json"}})
	})
	r.NoMethod(func(c *gin.Context) {
		if openAINoRoute(c) {
			return
		}
		c.JSON(http.StatusMethodNotAllowed, ErrorBody{Error: ErrorDetail{Code: CodeMethodNotAllowed, Message: c.Request.Method + " is not allowed on " + c.Request.URL.Path}})
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	// /metrics needs a read token like the GETs of /api/v1 (and opens with
	// them under PublicReads): it names domains, routes and activity, and
	// Prometheus sends bearer tokens (authorization.credentials_file).
	r.GET("/metrics", s.authenticate, gin.WrapH(promhttp.Handler()))
	r.GET("/api/v1/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", openapiDoc) })

	v1 := r.Group("/api/v1", s.authenticate)
	v1.POST("/campaigns", s.createCampaign)
	v1.GET("/campaigns", s.listCampaigns)
	v1.GET("/campaigns/:id", s.getCampaign)
	v1.POST("/campaigns/:id/stop", s.stopCampaign)
	v1.GET("/domains", s.listDomains)
	v1.GET("/domains/:domain", s.getDomain)
	v1.GET("/domains/:domain/leaderboard", s.leaderboard)
	v1.GET("/experiments", s.listExperiments)
	v1.GET("/experiments/:id", s.getExperiment)
	v1.GET("/experiments/:id/artifacts/:name", s.getArtifact)
	v1.GET("/nodes", s.listNodes)
	s.networkRoutes(v1)
	s.causeRoutes(v1)
	s.financeRoutes(v1)
	s.communityRoutes(v1)
	s.trainingRoutes(v1)
	s.pointsRoutes(v1)
	s.modelRoutes(v1)
	s.openAIRoutes(r)
	s.meshRoutes(r, v1) // the browser peer (mesh.go)
	s.dashboardRoutes(r, v1)
	return r
}

func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	limit := int64(maxBody)
	if c.FullPath() == PriceDatasetsPath {
		limit = maxPriceBody
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
	metrics.HTTPSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{}
	ok := true
	check := func(name string, err error) {
		if err != nil {
			ok = false
			checks[name] = err.Error()
		} else {
			checks[name] = "ok"
		}
	}
	check("postgres", s.Store.Ping(ctx))
	if s.Blob != nil {
		check("s3", s.Blob.Ping(ctx))
	}
	if s.Temporal != nil {
		_, err := s.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
		check("temporal", err)
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"ready": ok, "checks": checks})
}

// pageParams reads ?limit=&cursor=.
func pageParams(c *gin.Context, def, max int) (int, string, error) {
	limit := def
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return 0, "", fieldErr("limit", "must be an integer between 1 and "+strconv.Itoa(max))
		}
		limit = n
	}
	return limit, c.Query("cursor"), nil
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return newErr(http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, store.ErrBadCursor):
		return fieldErr("cursor", "invalid; pass the nextCursor of a previous page")
	}
	return err
}
