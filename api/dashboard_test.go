package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (e *apiEnv) withCookie(method, path, cookie, contentType, body string) answer {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: cookie})
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	return answer{status: resp.StatusCode, header: resp.Header}
}

// The dashboard's session: POST /session checks the token and sets an
// HttpOnly, SameSite=Strict cookie; the cookie opens the pages and GETs
// only, never a state-changing request; a revoked token's cookie stops
// working at once.
func TestDashboardSession(t *testing.T) {
	e := newAPI(t, nil)
	read := testenv.Token(t, e.st, token.Read)
	admin := testenv.Token(t, e.st, token.Admin)

	if a := e.withCookie(http.MethodGet, "/", "", "", ""); a.status != http.StatusFound || a.header.Get("Location") != "/login" {
		t.Fatalf("/ without a session: %d %v", a.status, a.header)
	}
	for _, p := range []string{"/login", "/assets/app.js", "/assets/app.css", "/assets/login.js"} {
		if a := e.call(http.MethodGet, p, "", "", ""); a.status != http.StatusOK || len(a.body) == 0 {
			t.Fatalf("%s: %d", p, a.status)
		}
	}
	// Login: JSON only, a real token.
	if a := e.call(http.MethodPost, "/api/v1/session", "", "application/x-www-form-urlencoded", "token="+read); a.status != http.StatusUnsupportedMediaType {
		t.Fatalf("form login: %d %s", a.status, a.body)
	}
	want401(t, e.call(http.MethodPost, "/api/v1/session", "", "application/json", `{"token":"hs_nope_nope"}`), "invalid token")
	if a := e.call(http.MethodPost, "/api/v1/session", "", "application/json", `{"token":""}`); a.status != 422 || a.err.Field != "token" {
		t.Fatalf("empty token: %d %s", a.status, a.body)
	}
	a := e.call(http.MethodPost, "/api/v1/session", "", "application/json", `{"token":"`+admin+`"}`)
	if a.status != http.StatusOK {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	sc := a.header.Get("Set-Cookie")
	for _, want := range []string{api.SessionCookie + "=" + admin, "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="} {
		if !strings.Contains(sc, want) {
			t.Fatalf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	// The cookie opens the page and GETs, SSE included...
	if a := e.withCookie(http.MethodGet, "/", admin, "", ""); a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/ with a session: %d", a.status)
	}
	for _, p := range []string{"/api/v1/campaigns", "/api/v1/dashboard", "/api/v1/domains/search/leaderboard"} {
		if a := e.withCookie(http.MethodGet, p, admin, "", ""); a.status != http.StatusOK {
			t.Fatalf("GET %s with the cookie: %d", p, a.status)
		}
	}
	// ...but never a state-changing request, whatever the token's scopes (CSRF).
	if a := e.withCookie(http.MethodPost, "/api/v1/campaigns", admin, "application/json", `{"domain":"search"}`); a.status != http.StatusUnauthorized {
		t.Fatalf("POST with only the cookie: %d", a.status)
	}
	if a := e.withCookie(http.MethodPost, "/api/v1/campaigns/x/stop", admin, "", ""); a.status != http.StatusUnauthorized {
		t.Fatalf("stop with only the cookie: %d", a.status)
	}
	// A revoked token's cookie: 401 on the API, back to /login for the page.
	id := strings.Split(read, "_")[1]
	if _, err := e.st.RevokeToken(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	want401(t, e.call(http.MethodGet, "/api/v1/campaigns", read, "", ""), "revoked")
	if a := e.withCookie(http.MethodGet, "/api/v1/campaigns", read, "", ""); a.status != http.StatusUnauthorized {
		t.Fatalf("revoked cookie: %d", a.status)
	}
	if a := e.withCookie(http.MethodGet, "/", read, "", ""); a.status != http.StatusFound || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("/ with a revoked cookie: %d %v", a.status, a.header)
	}
	// Logout clears the cookie.
	if a := e.call(http.MethodDelete, "/api/v1/session", "", "", ""); a.status != http.StatusNoContent || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %v", a.status, a.header)
	}
}

// Under PublicReads the pages load without a session; state changes still need a token.
func TestDashboardPublicReads(t *testing.T) {
	e := newAPI(t, func(s *api.Server) { s.PublicReads = true; s.TemporalUIURL = "http://127.0.0.1:8233" })
	if a := e.withCookie(http.MethodGet, "/", "", "", ""); a.status != http.StatusOK {
		t.Fatalf("/ under public reads: %d", a.status)
	}
	a := e.call(http.MethodGet, "/api/v1/dashboard", "", "", "")
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `"workflowURL":"http://127.0.0.1:8233/namespaces/default/workflows/"`) {
		t.Fatalf("dashboard config: %d %s", a.status, a.body)
	}
	want401(t, e.call(http.MethodPost, "/api/v1/campaigns", "", "application/json", `{"domain":"search"}`), "scope run")
}
