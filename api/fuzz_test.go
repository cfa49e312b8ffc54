package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/causes"
	"github.com/hyperspace-ai/hyperspace/domains/finance"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/token"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// fuzzCause is a user-defined domain with every parameter kind.
const fuzzCause = `
name: toy-quadratic
description: Minimise a shifted quadratic.
metric: {name: loss, direction: minimize}
space:
  - {name: x, kind: float, min: -5, max: 5}
  - {name: lr, kind: float, min: 0.0001, max: 0.1, log: true}
  - {name: steps, kind: int, min: 1, max: 100}
  - {name: mode, kind: choice, choices: ["32", "64", fast]}
  - {name: clip, kind: bool, fixed: true}
baseline: {x: 1.5, lr: 0.01, steps: 10, mode: 64, clip: false}
evaluator: {command: [sh, eval.sh], codeFile: eval.sh}
`

// campaignFuzzServer serves POST /api/v1/campaigns up to the point where
// createCampaign needs the database and Temporal: the same middleware
// (body limit), decodeJSON and buildCampaign with the domain resolver of
// the real handler (built-in domains and registered causes; no store).
// A valid request is answered 200 with the workflow input.
func campaignFuzzServer(tb testing.TB) (*Server, http.Handler) {
	cause, err := causes.Parse([]byte(fuzzCause))
	if err != nil {
		tb.Fatal(err)
	}
	allow, err := llm.ParseAllowList("http://127.0.0.1:8000/v1")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Domains: domains.NewRegistry(ml.New(), search.New(), finance.New(), cause.Domain()), LLMAllow: allow,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New() // no recovery middleware: a panic reaches the fuzzer
	r.Use(s.observe)
	r.POST("/api/v1/campaigns", func(c *gin.Context) {
		var req CampaignRequest
		if err := decodeJSON(c, &req); err != nil {
			s.writeErr(c, err)
			return
		}
		in, err := s.buildCampaign(req, func(name string) (domains.Domain, bool, error) {
			return causes.Resolve(c.Request.Context(), s.Domains, nil, name, nil)
		})
		if err != nil {
			s.writeErr(c, err)
			return
		}
		c.JSON(http.StatusOK, in)
	})
	return s, r
}

// statusOf is the status each error code is answered with.
var statusOf = map[string]int{
	CodeInvalidJSON:      http.StatusBadRequest,
	CodeUnsupportedMedia: http.StatusUnsupportedMediaType,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeInvalidField:     http.StatusUnprocessableEntity,
}

// FuzzCampaignRequest: every body (and Content-Type) of POST
// /api/v1/campaigns is answered with a 4xx error of the documented shape
// {"error":{"code","message","field"?}} or accepted as a valid
// workflows.CampaignInput, never a panic or a 500. An accepted input
// validates (ValidateCampaign, its domain's Validate giving the same
// config back), survives the JSON round trip of a Temporal payload, and
// can be stored in the campaigns.request JSONB column (no NUL).
func FuzzCampaignRequest(f *testing.F) {
	s, h := campaignFuzzServer(f)
	const ct = "application/json"
	for _, body := range []string{
		`{"domain":"ml","agents":2,"experiments":3,"budget":60}`,
		`{"domain":"search","agents":1,"experiments":1,"budget":0.5,"baselineSeeds":3,"seed":42,"baseline":{"k1":1.5}}`,
		`{"id":"c1-abc","domain":"finance","isolated":true,"paperEvery":2,"reviewers":3,"evolve":false}`,
		`{"domain":"toy-quadratic","baseline":{"x":-2,"mode":"fast","steps":7},"llm":{"baseUrl":"http://127.0.0.1:8000/v1","model":"qwen2.5"}}`,
		`{"domain":"toy-quadratic","llm":{"baseUrl":"http://127.0.0.1:8000/v1","model":"a\u0000b"}}`,
		`{"domain":"ml","llm":{"baseUrl":"https://api.example.com/v1","model":"gpt"}}`,
		`{"domain":"ml","agents":0}`, `{"domain":"ml","agents":1e9}`, `{"domain":"ml","budget":-1}`, `{"domain":"ml","seed":9007199254740993}`,
		`{"domain":"ml","baseline":{"learningRate":"fast"}}`, `{"domain":"ml","baseline":{"nope":1}}`, `{"domain":"nope"}`, `{"domain":""}`,
		`{"domain":"ml","unknown":1}`, `{"domain":"ml"} {}`, `{"domain":"ml"`, `[]`, `null`, ``, `{"id":"UPPER","domain":"ml"}`,
		`{"domain":"ml","nodes":["12D3KooW"],"paperEvery":-1}`, `{"domain":"search","confirmations":0,"alpha":0.1}`,
		`{"domain":"ml","confirmations":6}`, `{"domain":"ml","confirmations":-1}`, `{"domain":"ml","alpha":0}`, `{"domain":"ml","alpha":0.9}`, `{"domain":"ml","reviewers":17}`, `{"domain":"ml","agents":"2"}`,
	} {
		f.Add(ct, []byte(body))
	}
	f.Add("application/json; charset=utf-8", []byte(`{"domain":"ml"}`))
	f.Add("text/plain", []byte(`{"domain":"ml"}`))
	f.Add("", []byte(`{"domain":"ml"}`))
	f.Add("application/json; q=\"", []byte(`{"domain":"ml"}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/campaigns", bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			checkCampaignInput(t, s, rec.Body.Bytes())
			return
		}
		checkErrorBody(t, rec)
	})
}

func checkCampaignInput(t *testing.T, s *Server, body []byte) {
	t.Helper()
	if bytes.Contains(body, []byte(`\u0000`)) {
		t.Fatalf("accepted a campaign PostgreSQL cannot store (NUL in the request JSONB): %s", body)
	}
	var in workflows.CampaignInput
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatalf("accepted input does not decode: %v", err)
	}
	if err := workflows.ValidateCampaign(in); err != nil {
		t.Fatalf("accepted an input the workflow refuses: %v\n%s", err, body)
	}
	d, ok := s.Domains.Get(in.Domain)
	if !ok {
		t.Fatalf("accepted unknown domain %q", in.Domain)
	}
	cfg, err := d.Validate(in.Baseline)
	if err != nil {
		t.Fatalf("the baseline of an accepted campaign (after the payload round trip) does not validate: %v", err)
	}
	if cfg.Key() != in.Baseline.Key() {
		t.Fatalf("the baseline is not normalised: %s vs %s", cfg.Key(), in.Baseline.Key())
	}
	if in.LLM != nil && (!s.LLMAllow.Allows(in.LLM.BaseURL) || in.LLM.Model == "") {
		t.Fatalf("accepted llm %+v", in.LLM)
	}
}

func checkErrorBody(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code < 400 || rec.Code > 499 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	var eb ErrorBody
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body is not {\"error\":{...}}: %v: %s", err, rec.Body.Bytes())
	}
	e := eb.Error
	if e.Code == "" || e.Message == "" {
		t.Fatalf("error without code or message: %s", rec.Body.Bytes())
	}
	if want, ok := statusOf[e.Code]; !ok || want != rec.Code {
		t.Fatalf("status %d with code %q", rec.Code, e.Code)
	}
	if e.Field != "" && !strings.HasPrefix(e.Message, e.Field+": ") {
		t.Fatalf("error on field %q whose message does not start with it: %+v", e.Field, e)
	}
	if e.Field == "" && (e.Code == CodeInvalidField && !strings.HasPrefix(e.Message, "the body ") || strings.HasPrefix(e.Message, ":")) {
		t.Fatalf("invalid_field error naming neither a field nor the body: %+v", e)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error answered as %q", ct)
	}
}

// FuzzAuthorizationHeader: any Authorization header yields a bearer token
// or none, and token.Parse splits a token into its id and secret or
// refuses it, never a panic; what it accepts is exactly
// hs_<32 hex>_<64 hex>, so nothing else reaches the database lookup.
func FuzzAuthorizationHeader(f *testing.F) {
	for _, s := range []string{
		"Bearer hs_0123456789abcdef0123456789abcdef_" + strings.Repeat("ab", 32),
		"bearer   hs_0123456789abcdef0123456789abcdef_" + strings.Repeat("AB", 32) + "  ",
		"Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer hs__", "Bearer hs_x_y", "Token hs_a_b", "",
		"Bearer hs_0123456789abcdef0123456789abcdef_" + strings.Repeat("ab", 32) + "_extra",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/campaigns", nil)
		if header != "" {
			req.Header["Authorization"] = []string{header}
		}
		tok, present := bearer(req)
		if present != (header != "") || (!present && tok != "") {
			t.Fatalf("header %q: token %q, present %v", header, tok, present)
		}
		id, secret, err := token.Parse(tok)
		if err != nil {
			return
		}
		if token.Prefix+id+"_"+secret != tok || !token.ValidID(id) || len(secret) != 64 || strings.Trim(id+secret, "0123456789abcdef") != "" {
			t.Fatalf("token %q parsed into id %q, secret %q", tok, id, secret)
		}
	})
}

// TestCampaignJudgeFields: confirmations and alpha default to 2 and 0.05,
// and out-of-range values are 422s naming the field.
func TestCampaignJudgeFields(t *testing.T) {
	_, h := campaignFuzzServer(t)
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/campaigns", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := post(`{"domain":"search"}`)
	var in workflows.CampaignInput
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &in) != nil || in.Judge == nil ||
		in.Judge.Confirmations != 2 || in.Judge.Alpha != 0.05 {
		t.Fatalf("defaults: %d %s", rec.Code, rec.Body)
	}
	for body, field := range map[string]string{
		`{"domain":"ml","confirmations":6}`: "confirmations", `{"domain":"ml","confirmations":-1}`: "confirmations",
		`{"domain":"ml","alpha":0}`: "alpha", `{"domain":"ml","alpha":0.75}`: "alpha",
	} {
		rec := post(body)
		var e struct {
			Error struct{ Field string } `json:"error"`
		}
		if rec.Code != http.StatusUnprocessableEntity || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Field != field {
			t.Errorf("%s: %d %s, want 422 naming %s", body, rec.Code, rec.Body, field)
		}
	}
}
