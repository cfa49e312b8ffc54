package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// openAIRoutes mounts the OpenAI-compatible API at /v1 (GET /v1/models,
// POST /v1/chat/completions, /v1/completions, /v1/embeddings). Every call
// needs a token with scope read (an OpenAI client sends it as its API
// key), or none under PublicReads; errors are in OpenAI's shape so the
// official clients raise the matching exceptions.
func (s *Server) openAIRoutes(r *gin.Engine) {
	s.apiKeys = &keyCache{ttl: s.APIKeyCacheTTL}
	if s.apiKeys.ttl == 0 {
		s.apiKeys.ttl = DefaultAPIKeyCacheTTL
	}
	var h http.Handler
	if s.Inference != nil {
		h = s.Inference.Handler("/v1")
	}
	serve := func(c *gin.Context) {
		if h == nil {
			inference.WriteError(c.Writer, inference.NewError(http.StatusServiceUnavailable, inference.TypeUnavailable, "inference_off", "this process does not serve the inference API"))
			c.Abort()
			return
		}
		h.ServeHTTP(c.Writer, c.Request)
	}
	r.GET("/v1/models", s.openAIAuth, serve)
	r.GET("/v1/models/:id", s.openAIAuth, serve)
	r.POST("/v1/chat/completions", s.openAIAuth, serve)
	r.POST("/v1/completions", s.openAIAuth, serve)
	r.POST("/v1/embeddings", s.openAIAuth, serve)
}

// openAINoRoute answers unknown /v1 paths in OpenAI's shape.
func openAINoRoute(c *gin.Context) bool {
	if !strings.HasPrefix(c.Request.URL.Path, "/v1/") {
		return false
	}
	inference.WriteError(c.Writer, inference.NewError(http.StatusNotFound, inference.TypeInvalidRequest, "unknown_url",
		"Unknown request URL: "+c.Request.Method+" "+c.Request.URL.Path+". This server serves GET /v1/models, POST /v1/chat/completions, /v1/completions and /v1/embeddings"))
	return true
}

// openAIAuth is authenticate with OpenAI-shaped errors: every /v1 call
// needs scope read (the API changes no state; tokens meter who computes).
// A verified key is trusted for APIKeyCacheTTL (keyCache).
func (s *Server) openAIAuth(c *gin.Context) {
	raw, present := bearer(c.Request)
	fail := func(status int, typ, code, msg string) {
		if status == http.StatusUnauthorized {
			c.Header("WWW-Authenticate", `Bearer realm="hyperspace"`)
		}
		inference.WriteError(c.Writer, inference.NewError(status, typ, code, msg))
		c.Abort()
	}
	if !present {
		if s.PublicReads {
			c.Next()
			return
		}
		fail(http.StatusUnauthorized, inference.TypeAuthentication, "missing_api_key",
			"You didn't provide an API key. Pass a Hyperspace token with scope read as the API key (Authorization: Bearer <token>)"+tokenHelp)
		return
	}
	if raw == "" {
		fail(http.StatusUnauthorized, inference.TypeAuthentication, "invalid_api_key", "malformed Authorization header: want `Bearer <token>`")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	t, err := s.apiKeys.verify(ctx, s.Store, raw)
	switch {
	case errors.Is(err, store.ErrTokenRevoked), errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenInvalid):
		fail(http.StatusUnauthorized, inference.TypeAuthentication, "invalid_api_key", "Incorrect API key provided: "+err.Error()+tokenHelp)
		return
	case err != nil:
		s.log().Error("verify token", "error", err)
		fail(http.StatusServiceUnavailable, inference.TypeUnavailable, "unavailable", "cannot check the API key now (is PostgreSQL up?); try again")
		return
	}
	if !token.Allows(t.Scopes, token.Read) {
		fail(http.StatusForbidden, inference.TypePermission, "insufficient_scope", "token "+t.ID+" lacks scope read")
		return
	}
	c.Set(ctxToken, t)
	c.Next()
}
