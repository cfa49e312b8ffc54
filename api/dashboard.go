package api

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/internal/dashboard"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// The dashboard (internal/dashboard's embedded assets) is served at /.
//
// A browser cannot put an Authorization header on a page load or an
// EventSource, so the login page (/login) posts the token the user pastes
// to POST /api/v1/session, which checks it and sets it as an HttpOnly,
// SameSite=Strict cookie. authenticate accepts that cookie on GET and HEAD
// only. The dashboard's script keeps the token in sessionStorage too and
// sends it as "Authorization: Bearer" on the requests that change state
// (start or stop a campaign), so a cross-site page, which can neither read
// sessionStorage nor set that header, cannot make the browser act (no
// CSRF). Under PublicReads the pages load without logging in.

// SessionCookie is the name of the dashboard's session cookie.
const SessionCookie = "hyperspace_session"

// sessionMaxAge bounds a dashboard session (sooner when the token expires).
const sessionMaxAge = 12 * time.Hour

func sessionCookie(r *http.Request) (string, bool) {
	ck, err := r.Cookie(SessionCookie)
	if err != nil || ck.Value == "" {
		return "", false
	}
	return ck.Value, true
}

func (s *Server) dashboardRoutes(r *gin.Engine, v1 *gin.RouterGroup) {
	r.GET("/", s.dashboardIndex)
	r.GET("/login", func(c *gin.Context) { page(c, "login.html") })
	assets := http.FileServerFS(dashboard.Files())
	r.GET("/assets/*file", func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		assets.ServeHTTP(c.Writer, c.Request)
	})
	r.POST("/api/v1/session", s.login)
	r.DELETE("/api/v1/session", s.logout)
	v1.GET("/dashboard", s.dashboardConfig)
}

func page(c *gin.Context, name string) {
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "text/html; charset=utf-8", dashboard.Page(name))
}

// dashboardIndex serves the dashboard to a reader: a valid session cookie
// or bearer token with scope read, or anyone under PublicReads. Others are
// sent to /login (a stale cookie is cleared on the way).
func (s *Server) dashboardIndex(c *gin.Context) {
	raw, present := bearer(c.Request)
	if !present {
		raw, present = sessionCookie(c.Request)
		if !present && !s.PublicReads {
			c.Redirect(http.StatusFound, "/login")
			return
		}
		if present {
			t, err := s.Store.VerifyToken(c.Request.Context(), raw)
			stale := errors.Is(err, store.ErrTokenInvalid) || errors.Is(err, store.ErrTokenRevoked) || errors.Is(err, store.ErrTokenExpired)
			if err != nil && !stale {
				s.log().Error("verify session token", "error", err)
				s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "cannot check the session now (is PostgreSQL up?); try again"))
				return
			}
			if stale || !token.Allows(t.Scopes, token.Read) {
				clearSession(c)
				if !s.PublicReads {
					c.Redirect(http.StatusFound, "/login?expired=1")
					return
				}
			}
		}
		page(c, "index.html")
		return
	}
	s.authenticate(c)
	if !c.IsAborted() {
		page(c, "index.html")
	}
}

// SessionRequest is the body of POST /api/v1/session.
type SessionRequest struct {
	Token string `json:"token"`
}

// login checks a token and sets it as the session cookie. It needs a JSON
// body, which a cross-site form cannot send (no login CSRF).
func (s *Server) login(c *gin.Context) {
	var req SessionRequest
	if err := decodeJSON(c, &req); err != nil {
		s.writeErr(c, err)
		return
	}
	raw := strings.TrimSpace(req.Token)
	if raw == "" {
		s.writeErr(c, fieldErr("token", "paste a token (`hyperspace token create --name NAME --scopes read`)"))
		return
	}
	t, ok := s.verifyToken(c, raw)
	if !ok {
		return
	}
	if !token.Allows(t.Scopes, token.Read) {
		s.writeErr(c, newErr(http.StatusForbidden, CodeForbidden, "token "+t.ID+" has no read scope"))
		return
	}
	age := sessionMaxAge
	if t.ExpiresAt != nil && time.Until(*t.ExpiresAt) < age {
		age = time.Until(*t.ExpiresAt)
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: raw, Path: "/", MaxAge: int(age.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil})
	c.JSON(http.StatusOK, gin.H{"id": t.ID, "name": t.Name, "scopes": token.Strings(t.Scopes), "expiresIn": int(age.Seconds())})
}

func clearSession(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil})
}

func (s *Server) logout(c *gin.Context) {
	clearSession(c)
	c.Status(http.StatusNoContent)
}

// dashboardConfig tells the dashboard what it cannot know by itself: the
// Temporal UI to link workflows to, and how reads are authorised.
func (s *Server) dashboardConfig(c *gin.Context) {
	ns := s.Namespace
	if ns == "" {
		ns = "default"
	}
	out := gin.H{"temporalUI": s.TemporalUIURL, "namespace": ns, "publicReads": s.PublicReads, "meshPath": "/mesh/"}
	if s.TemporalUIURL != "" {
		out["workflowURL"] = s.TemporalUIURL + "/namespaces/" + url.PathEscape(ns) + "/workflows/"
	}
	if t, ok := TokenOf(c); ok {
		out["token"] = gin.H{"id": t.ID, "name": t.Name, "scopes": token.Strings(t.Scopes)}
	}
	c.JSON(http.StatusOK, out)
}
