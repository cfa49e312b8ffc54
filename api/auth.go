package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// Error codes of authentication and authorisation.
const (
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
)

// runRoutes are the state-changing routes a run token may call. Every
// other state-changing route under /api/v1 needs admin, so a route added
// later is administrative until someone decides otherwise (fail closed).
var runRoutes = map[string]bool{
	http.MethodPost + " /api/v1/campaigns":              true,
	http.MethodPost + " /api/v1/campaigns/:id/stop":     true,
	http.MethodPost + " /api/v1/training-runs":          true,
	http.MethodPost + " /api/v1/training-runs/:id/stop": true,
}

// requiredScope is the scope a request to a matched route needs: read for
// GET and HEAD, run for starting and stopping campaigns, admin for the rest
// (registering causes, and anything administrative).
func requiredScope(method, route string) token.Scope {
	switch {
	case method == http.MethodGet || method == http.MethodHead:
		return token.Read
	case strings.HasPrefix(route, "/v1/"):
		return token.Read // the OpenAI-compatible API computes but changes no state (openai.go)
	case runRoutes[method+" "+route]:
		return token.Run
	}
	return token.Admin
}

// ctxToken is the gin context key of the verified token.
const ctxToken = "hyperspace.token"

// TokenOf returns the verified token of a request, if it carried one.
func TokenOf(c *gin.Context) (store.Token, bool) {
	v, ok := c.Get(ctxToken)
	if !ok {
		return store.Token{}, false
	}
	t, ok := v.(store.Token)
	return t, ok
}

// bearer extracts the token of an "Authorization: Bearer <token>" header;
// present reports whether there was an Authorization header at all.
func bearer(r *http.Request) (tok string, present bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(rest), true
}

const tokenHelp = "; send Authorization: Bearer <token> (an operator creates one with `hyperspace token create --name NAME --scopes read|run|admin`; `hyperspace dev` keeps an admin token in <state-dir>/admin.token)"

// unauthorized answers 401 with a WWW-Authenticate challenge (RFC 6750).
func unauthorized(c *gin.Context, invalid bool, msg string) {
	chal := `Bearer realm="hyperspace"`
	if invalid {
		chal += `, error="invalid_token"`
	}
	c.Header("WWW-Authenticate", chal)
	c.AbortWithStatusJSON(http.StatusUnauthorized, ErrorBody{Error: ErrorDetail{Code: CodeUnauthorized, Message: msg}})
}

// authenticate guards every route of /api/v1 it is installed on: it
// verifies the bearer token against the database (revocation and expiry
// take effect on the next request) and checks the scope the route needs.
// With PublicReads, GET and HEAD requests without an Authorization header
// pass; a request that does send a token always has it checked.
//
// GET and HEAD requests without an Authorization header may instead carry
// the dashboard's session cookie (dashboard.go): a browser cannot put a
// header on a page load or an EventSource. The cookie never authorises
// anything else, so a state-changing request always needs the header,
// which a cross-site page cannot set (no CSRF).
func (s *Server) authenticate(c *gin.Context) {
	need := requiredScope(c.Request.Method, c.FullPath())
	raw, present := bearer(c.Request)
	if !present {
		if ck, ok := sessionCookie(c.Request); ok && readOnly(c.Request.Method) {
			raw, present = ck, true
		}
	}
	if !present {
		if s.PublicReads && need == token.Read {
			c.Next()
			return
		}
		unauthorized(c, false, "authentication required: this endpoint needs a token with scope "+string(need)+tokenHelp)
		return
	}
	if raw == "" {
		unauthorized(c, true, "malformed Authorization header: want `Bearer <token>`"+tokenHelp)
		return
	}
	t, ok := s.verifyToken(c, raw)
	if !ok {
		return
	}
	if !token.Allows(t.Scopes, need) {
		c.Header("WWW-Authenticate", `Bearer realm="hyperspace", error="insufficient_scope", scope="`+string(need)+`"`)
		c.AbortWithStatusJSON(http.StatusForbidden, ErrorBody{Error: ErrorDetail{Code: CodeForbidden,
			Message: c.Request.Method + " " + c.FullPath() + " needs a token with scope " + string(need) +
				"; token " + t.ID + " (" + t.Name + ") has " + scopeList(t.Scopes)}})
		return
	}
	c.Set(ctxToken, t)
	if need != token.Read {
		s.log().Info("authorised", "method", c.Request.Method, "route", c.FullPath(), "token", t.ID, "tokenName", t.Name)
	}
	c.Next()
}

func readOnly(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// verifyToken checks raw against the database; on failure it has answered
// the request (401, or 503 when the database cannot tell).
func (s *Server) verifyToken(c *gin.Context, raw string) (store.Token, bool) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	t, err := s.Store.VerifyToken(ctx, raw)
	switch {
	case errors.Is(err, store.ErrTokenRevoked):
		unauthorized(c, true, "token "+t.ID+" has been revoked"+tokenHelp)
	case errors.Is(err, store.ErrTokenExpired):
		unauthorized(c, true, "token "+t.ID+" expired at "+t.ExpiresAt.UTC().Format(time.RFC3339)+tokenHelp)
	case errors.Is(err, store.ErrTokenInvalid):
		unauthorized(c, true, "invalid token"+tokenHelp)
	case err != nil:
		s.log().Error("verify token", "error", err)
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "cannot check the token now (is PostgreSQL up?); try again"))
	default:
		return t, true
	}
	return t, false
}

func scopeList(scopes []token.Scope) string {
	return strings.Join(token.Strings(scopes), ",")
}
