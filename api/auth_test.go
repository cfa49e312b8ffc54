package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// apiEnv is an API server on a fresh database; no Temporal (the tests stop
// before anything would start a workflow).
type apiEnv struct {
	t   *testing.T
	st  *store.Store
	srv *api.Server
	ts  *httptest.Server
}

func newAPI(t *testing.T, configure func(*api.Server)) *apiEnv {
	t.Helper()
	st, _ := testenv.Database(t)
	srv := &api.Server{Store: st, Domains: domains.NewRegistry(ml.New(), search.New()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if configure != nil {
		configure(srv)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &apiEnv{t: t, st: st, srv: srv, ts: ts}
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    api.ErrorDetail
}

// call sends a request; tok is sent as a bearer token when not empty, and
// auth (when not empty) replaces the whole Authorization header.
func (e *apiEnv) call(method, path, tok, contentType, body string) answer {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return e.send(req)
}

func (e *apiEnv) send(req *http.Request) answer {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	var eb api.ErrorBody
	if json.Unmarshal(b, &eb) == nil {
		a.err = eb.Error
	}
	return a
}

// want401 checks a 401 in the API's error shape with a Bearer challenge.
func want401(t *testing.T, a answer, contains string) {
	t.Helper()
	if a.status != http.StatusUnauthorized || a.err.Code != api.CodeUnauthorized || a.err.Message == "" {
		t.Fatalf("want 401 %s, got %d %s", api.CodeUnauthorized, a.status, a.body)
	}
	if h := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Fatalf("WWW-Authenticate %q", h)
	}
	var raw map[string]map[string]any
	if err := json.Unmarshal(a.body, &raw); err != nil || raw["error"]["code"] == nil || raw["error"]["message"] == nil || len(raw) != 1 {
		t.Fatalf("body is not {\"error\":{...}}: %s", a.body)
	}
	if !strings.Contains(a.err.Message, contains) {
		t.Fatalf("message %q lacks %q", a.err.Message, contains)
	}
}

func want403(t *testing.T, a answer, scope string) {
	t.Helper()
	if a.status != http.StatusForbidden || a.err.Code != api.CodeForbidden {
		t.Fatalf("want 403 %s, got %d %s", api.CodeForbidden, a.status, a.body)
	}
	if !strings.Contains(a.err.Message, "scope "+scope) {
		t.Fatalf("403 message %q does not name the scope %s", a.err.Message, scope)
	}
}

const quadraticCause = `
name: quadratic
description: Minimise (x-2)^2.
metric: {name: loss, direction: minimize}
space:
  - {name: x, kind: float, min: -5, max: 5}
baseline: {x: 0}
evaluator:
  command: [sh, eval.sh]
  files:
    eval.sh: |
      echo '{"metric": 1}'
`

func TestAuthRequiresAToken(t *testing.T) {
	e := newAPI(t, nil)
	for _, p := range []string{"/api/v1/campaigns", "/api/v1/domains", "/api/v1/experiments", "/metrics"} {
		want401(t, e.call(http.MethodGet, p, "", "", ""), "authentication required")
	}
	want401(t, e.call(http.MethodPost, "/api/v1/campaigns", "", "application/json", `{"domain":"ml"}`), "scope run")
	want401(t, e.call(http.MethodPost, "/api/v1/causes", "", "application/yaml", quadraticCause), "scope admin")
	// Open: health, readiness and the OpenAPI document.
	for _, p := range []string{"/healthz", "/readyz", "/api/v1/openapi.json"} {
		if a := e.call(http.MethodGet, p, "", "", ""); a.status != http.StatusOK {
			t.Fatalf("%s without a token: %d %s", p, a.status, a.body)
		}
	}
}

// Every route of /api/v1 but the OpenAPI document, and /metrics, is
// guarded; a route added later is covered without anyone remembering.
func TestEveryRouteIsGuarded(t *testing.T) {
	e := newAPI(t, nil)
	eng := e.srv.Handler().(*gin.Engine)
	n := 0
	for _, r := range eng.Routes() {
		open := r.Path == "/healthz" || r.Path == "/readyz" || r.Path == "/api/v1/openapi.json" ||
			r.Path == "/login" || r.Path == "/assets/*file" || r.Path == "/api/v1/session" || // the dashboard's login and static files
			r.Path == api.MeshPagePath // the browser peer's static page (mesh.go)
		if r.Path == "/" { // the dashboard sends a browser without a session to /login (dashboard_test.go)
			if a := e.withCookie(r.Method, "/", "", "", ""); a.status != http.StatusFound {
				t.Errorf("GET / without a token: %d, want 302 to /login", a.status)
			}
			n++
			continue
		}
		path := strings.NewReplacer(":id", "x", ":domain", "ml", ":name", "x").Replace(r.Path)
		a := e.call(r.Method, path, "", "application/json", "{}")
		if open {
			if a.status == http.StatusUnauthorized {
				t.Errorf("%s %s should be open", r.Method, r.Path)
			}
			continue
		}
		n++
		if a.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", r.Method, r.Path, a.status)
		}
	}
	if n < 20 {
		t.Fatalf("only %d guarded routes found", n)
	}
}

func TestAuthRejectsBadTokens(t *testing.T) {
	e := newAPI(t, nil)
	ctx := context.Background()
	good := testenv.Token(t, e.st, token.Read)
	id, _, _ := token.Parse(good)
	_, _, unknown, _ := token.New()
	wrongSecret := "hs_" + id + "_" + strings.Repeat("0", 64)
	for _, bad := range []string{"garbage", "hs_", "hs_" + id, unknown, wrongSecret, good + "0"} {
		want401(t, e.call(http.MethodGet, "/api/v1/campaigns", bad, "", ""), "invalid token")
	}
	for _, header := range []string{"Basic dXNlcjpwdw==", "Bearer", "Bearer ", good} {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/api/v1/campaigns", nil)
		req.Header.Set("Authorization", header)
		a := e.send(req)
		if a.status != http.StatusUnauthorized {
			t.Fatalf("Authorization %q: %d", header, a.status)
		}
		if !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("Authorization %q: challenge %q", header, a.header.Get("WWW-Authenticate"))
		}
	}
	// "bearer" in any case is the scheme.
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/api/v1/campaigns", nil)
	req.Header.Set("Authorization", "bearer "+good)
	if a := e.send(req); a.status != http.StatusOK {
		t.Fatalf("lower-case scheme: %d %s", a.status, a.body)
	}

	// Revoked: works, then stops at once.
	if a := e.call(http.MethodGet, "/api/v1/campaigns", good, "", ""); a.status != http.StatusOK {
		t.Fatalf("valid token: %d %s", a.status, a.body)
	}
	if _, err := e.st.RevokeToken(ctx, id); err != nil {
		t.Fatal(err)
	}
	want401(t, e.call(http.MethodGet, "/api/v1/campaigns", good, "", ""), "revoked")

	// Expired.
	past := time.Now().Add(-time.Minute)
	_, expired, err := e.st.CreateToken(ctx, "expired", []token.Scope{token.Admin}, &past)
	if err != nil {
		t.Fatal(err)
	}
	want401(t, e.call(http.MethodGet, "/api/v1/campaigns", expired, "", ""), "expired")
	future := time.Now().Add(time.Hour)
	_, later, err := e.st.CreateToken(ctx, "later", []token.Scope{token.Read}, &future)
	if err != nil {
		t.Fatal(err)
	}
	if a := e.call(http.MethodGet, "/api/v1/campaigns", later, "", ""); a.status != http.StatusOK {
		t.Fatalf("unexpired token: %d %s", a.status, a.body)
	}
}

func TestAuthScopes(t *testing.T) {
	e := newAPI(t, nil)
	read := testenv.Token(t, e.st, token.Read)
	run := testenv.Token(t, e.st, token.Run)
	admin := testenv.Token(t, e.st, token.Admin)

	want403(t, e.call(http.MethodPost, "/api/v1/campaigns", read, "application/json", `{"domain":"ml"}`), "run")
	want403(t, e.call(http.MethodPost, "/api/v1/campaigns/x/stop", read, "", ""), "run")
	want403(t, e.call(http.MethodPost, "/api/v1/causes", read, "application/yaml", quadraticCause), "admin")
	want403(t, e.call(http.MethodPost, "/api/v1/causes", run, "application/yaml", quadraticCause), "admin")

	for _, tok := range []string{read, run, admin} {
		for _, p := range []string{"/api/v1/campaigns", "/api/v1/domains", "/api/v1/causes", "/metrics"} {
			if a := e.call(http.MethodGet, p, tok, "", ""); a.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", p, a.status, a.body)
			}
		}
	}
	// run (and admin) pass the auth check on campaign routes: what comes
	// back is the handler's own answer.
	for _, tok := range []string{run, admin} {
		if a := e.call(http.MethodPost, "/api/v1/campaigns", tok, "application/json", `{"domain":"astrology"}`); a.status != http.StatusUnprocessableEntity || a.err.Field != "domain" {
			t.Fatalf("POST /campaigns: %d %s", a.status, a.body)
		}
		if a := e.call(http.MethodPost, "/api/v1/campaigns/nope/stop", tok, "", ""); a.status != http.StatusNotFound {
			t.Fatalf("POST /campaigns/nope/stop: %d %s", a.status, a.body)
		}
	}
	// admin registers a cause.
	if a := e.call(http.MethodPost, "/api/v1/causes", admin, "application/yaml", quadraticCause); a.status != http.StatusCreated {
		t.Fatalf("admin POST /causes: %d %s", a.status, a.body)
	}
	if a := e.call(http.MethodGet, "/api/v1/causes", read, "", ""); !bytes.Contains(a.body, []byte(`"quadratic"`)) {
		t.Fatalf("GET /causes: %d %s", a.status, a.body)
	}
}

func TestPublicReads(t *testing.T) {
	e := newAPI(t, func(s *api.Server) { s.PublicReads = true })
	for _, p := range []string{"/api/v1/campaigns", "/api/v1/domains", "/api/v1/domains/ml", "/api/v1/causes", "/metrics"} {
		if a := e.call(http.MethodGet, p, "", "", ""); a.status != http.StatusOK {
			t.Fatalf("public GET %s: %d %s", p, a.status, a.body)
		}
	}
	want401(t, e.call(http.MethodPost, "/api/v1/campaigns", "", "application/json", `{"domain":"ml"}`), "scope run")
	want401(t, e.call(http.MethodPost, "/api/v1/campaigns/x/stop", "", "", ""), "scope run")
	want401(t, e.call(http.MethodPost, "/api/v1/causes", "", "application/yaml", quadraticCause), "scope admin")
	// A token that is sent is checked, even for a public GET.
	want401(t, e.call(http.MethodGet, "/api/v1/campaigns", "garbage", "", ""), "invalid token")
	read := testenv.Token(t, e.st, token.Read)
	want403(t, e.call(http.MethodPost, "/api/v1/campaigns", read, "application/json", `{"domain":"ml"}`), "run")
}

// The database keeps only sha256 of the secret: neither the token nor its
// secret is anywhere in the row.
func TestTokenStoredHashed(t *testing.T) {
	e := newAPI(t, nil)
	ctx := context.Background()
	tk, full, err := e.st.CreateToken(ctx, "ci", []token.Scope{token.Run}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := token.Parse(full)
	if err != nil || id != tk.ID {
		t.Fatalf("token %q: %v", full, err)
	}
	var row string
	var hash []byte
	if err := e.st.Pool.QueryRow(ctx, `SELECT row_to_json(t)::text, secret_hash FROM api_tokens t WHERE id=$1`, id).Scan(&row, &hash); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, secret) || strings.Contains(row, full) {
		t.Fatalf("the secret is stored: %s", row)
	}
	if sum := sha256.Sum256([]byte(secret)); !bytes.Equal(hash, sum[:]) {
		t.Fatal("secret_hash is not sha256(secret)")
	}
	var dump string
	if err := e.st.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(row_to_json(t)::text, ''), '') FROM api_tokens t`).Scan(&dump); err != nil || strings.Contains(dump, secret) {
		t.Fatalf("the secret is in api_tokens: %v", err)
	}

	// last_used_at is set on first use and not rewritten on every request.
	if a := e.call(http.MethodGet, "/api/v1/domains", full, "", ""); a.status != http.StatusOK {
		t.Fatal(a.status)
	}
	t1, err := e.st.GetToken(ctx, id)
	if err != nil || t1.LastUsedAt == nil {
		t.Fatalf("last_used_at not set: %+v %v", t1, err)
	}
	e.call(http.MethodGet, "/api/v1/domains", full, "", "")
	t2, _ := e.st.GetToken(ctx, id)
	if !t2.LastUsedAt.Equal(*t1.LastUsedAt) {
		t.Fatalf("last_used_at rewritten within %s: %v -> %v", store.TouchEvery, t1.LastUsedAt, t2.LastUsedAt)
	}
	// Once stale, the next use refreshes it.
	if _, err := e.st.Pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() - interval '2 minutes' WHERE id=$1`, id); err != nil {
		t.Fatal(err)
	}
	e.call(http.MethodGet, "/api/v1/domains", full, "", "")
	t3, _ := e.st.GetToken(ctx, id)
	if time.Since(*t3.LastUsedAt) > 30*time.Second {
		t.Fatalf("stale last_used_at not refreshed: %v", t3.LastUsedAt)
	}
}

// A campaign may name only an LLM endpoint on the operator's allow-list.
func TestCampaignLLMAllowList(t *testing.T) {
	body := func(base string) string {
		return `{"domain":"ml","llm":{"baseUrl":"` + base + `","model":"m"}}`
	}
	none := newAPI(t, nil)
	tok := testenv.Token(t, none.st, token.Run)
	a := none.call(http.MethodPost, "/api/v1/campaigns", tok, "application/json", body("http://169.254.169.254/latest/v1"))
	if a.status != http.StatusUnprocessableEntity || a.err.Field != "llm.baseUrl" || !strings.Contains(a.err.Message, "--llm-allow") {
		t.Fatalf("no allow-list: %d %s", a.status, a.body)
	}

	listed := newAPI(t, func(s *api.Server) { s.LLMAllow = llm.MustAllowList("http://127.0.0.1:8000/v1") })
	tok = testenv.Token(t, listed.st, token.Run)
	for _, base := range []string{"http://169.254.169.254/latest/v1", "http://127.0.0.1:8001/v1", "http://127.0.0.1:8000/v2", "https://127.0.0.1:8000/v1",
		"http://127.0.0.1:8000/v1/../admin", "http://user@127.0.0.1:8000/v1"} {
		a := listed.call(http.MethodPost, "/api/v1/campaigns", tok, "application/json", body(base))
		if a.status != http.StatusUnprocessableEntity || a.err.Code != api.CodeInvalidField || a.err.Field != "llm.baseUrl" {
			t.Fatalf("%s: %d %s", base, a.status, a.body)
		}
		if !strings.Contains(a.err.Message, "allow-list") {
			t.Fatalf("%s: message %q does not say how to allow it", base, a.err.Message)
		}
	}
	// A listed endpoint passes this check: the request then fails only on
	// what is checked after it (here, the number of reviewers).
	a = listed.call(http.MethodPost, "/api/v1/campaigns", tok, "application/json",
		`{"domain":"ml","reviewers":99,"llm":{"baseUrl":"http://127.0.0.1:8000/v1/","model":"m"}}`)
	if a.status != http.StatusUnprocessableEntity || a.err.Field != "reviewers" {
		t.Fatalf("listed endpoint: %d %s", a.status, a.body)
	}
}

// TestAPIKeyCache: /v1 trusts a verified key for APIKeyCacheTTL (so a
// node's cached answers are not bounded by PostgreSQL round trips): a key
// revoked in the database keeps working there until the TTL passes, then
// fails; /api/v1 routes see the revocation at once; with a negative TTL
// /v1 checks every request too.
func TestAPIKeyCache(t *testing.T) {
	ctx := context.Background()
	for _, ttl := range []time.Duration{2 * time.Second, -1} {
		e := newAPI(t, func(s *api.Server) { s.APIKeyCacheTTL = ttl })
		tk, key, err := e.st.CreateToken(ctx, "client", []token.Scope{token.Read}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// No inference service here: /v1 answers 503 in OpenAI's shape
		// once the key passes, 401 when it does not.
		if a := e.call(http.MethodGet, "/v1/models", key, "", ""); a.status != http.StatusServiceUnavailable {
			t.Fatalf("ttl %v: valid key: %d %s", ttl, a.status, a.body)
		}
		if _, err := e.st.RevokeToken(ctx, tk.ID); err != nil {
			t.Fatal(err)
		}
		want401(t, e.call(http.MethodGet, "/api/v1/campaigns", key, "", ""), "revoked")
		a := e.call(http.MethodGet, "/v1/models", key, "", "")
		if ttl > 0 && a.status != http.StatusServiceUnavailable {
			t.Fatalf("within the TTL: %d %s", a.status, a.body)
		}
		if ttl < 0 && a.status != http.StatusUnauthorized {
			t.Fatalf("uncached: revoked key answered %d %s", a.status, a.body)
		}
		time.Sleep(max(ttl, 0) + 50*time.Millisecond)
		if a := e.call(http.MethodGet, "/v1/models", key, "", ""); a.status != http.StatusUnauthorized {
			t.Fatalf("ttl %v: after the TTL the revoked key answered %d %s", ttl, a.status, a.body)
		}
	}
}
