package api

import (
	"context"
	"errors"
	"net/http"
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
	if s.Inference == nil {
		r.Any("/v1/*path", func(c *gin.Context) {
			inference.WriteError(c.Writer, inference.NewError(http.StatusServiceUnavailable, inference.TypeUnavailable, "inference_off", "this process does not serve the inference API"))
			c.Abort()
		})
		return
	}
	h := s.Inference.Handler("/v1")
	r.Any("/v1/*path", s.openAIAuth, func(c *gin.Context) {
		// Generation can run longer than the server's write timeout for
		// REST calls; lift it for this response (Go 1.20+).
		_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{})
		h.ServeHTTP(c.Writer, c.Request)
	})
}

// openAIAuth is authenticate with OpenAI-shaped errors: every /v1 call
// needs scope read (the API changes no state; tokens meter who computes).
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
	t, err := s.Store.VerifyToken(ctx, raw)
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
