package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TestBadInputIsAClear4xx: every user mistake gets a 4xx with a stable code
// and a message naming the field; none is a 500.
func TestBadInputIsAClear4xx(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue}, 0)
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		code, field                           string
	}{
		{"malformed JSON", "POST", "/api/v1/campaigns", "application/json", `{"domain": "ml",`, 400, api.CodeInvalidJSON, ""},
		{"not an object", "POST", "/api/v1/campaigns", "application/json", `[1,2]`, 422, api.CodeInvalidField, ""},
		{"two objects", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml"}{"domain":"ml"}`, 400, api.CodeInvalidJSON, ""},
		{"empty body", "POST", "/api/v1/campaigns", "application/json", ``, 400, api.CodeInvalidJSON, ""},
		{"wrong content type", "POST", "/api/v1/campaigns", "text/plain", `{"domain":"ml"}`, 415, api.CodeUnsupportedMedia, ""},
		{"no content type", "POST", "/api/v1/campaigns", "", `{"domain":"ml"}`, 415, api.CodeUnsupportedMedia, ""},
		{"form content type", "POST", "/api/v1/campaigns", "application/x-www-form-urlencoded", `domain=ml`, 415, api.CodeUnsupportedMedia, ""},
		{"unknown domain", "POST", "/api/v1/campaigns", "application/json", `{"domain":"astrology"}`, 422, api.CodeInvalidField, "domain"},
		{"missing domain", "POST", "/api/v1/campaigns", "application/json", `{"agents":2}`, 422, api.CodeInvalidField, "domain"},
		{"unknown top-level field", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","agentz":2}`, 422, api.CodeInvalidField, "agentz"},
		{"agents wrong type", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","agents":"two"}`, 422, api.CodeInvalidField, "agents"},
		{"zero agents", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","agents":0}`, 422, api.CodeInvalidField, "agents"},
		{"huge agents", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","agents":100000}`, 422, api.CodeInvalidField, "agents"},
		{"negative experiments", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","experiments":-3}`, 422, api.CodeInvalidField, "experiments"},
		{"negative budget", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","budget":-5}`, 422, api.CodeInvalidField, "budget"},
		{"zero budget", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","budget":0}`, 422, api.CodeInvalidField, "budget"},
		{"huge budget", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","budget":1e12}`, 422, api.CodeInvalidField, "budget"},
		{"budget overflow", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","budget":1e999}`, 422, api.CodeInvalidField, "budget"},
		{"too few baseline seeds", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","baselineSeeds":1}`, 422, api.CodeInvalidField, "baselineSeeds"},
		{"negative seed", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","seed":-1}`, 422, api.CodeInvalidField, "seed"},
		{"unknown config key", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","baseline":{"nLayerz":2}}`, 422, api.CodeInvalidField, "baseline.nLayerz"},
		{"out-of-range hyperparameter", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","baseline":{"learningRate":5}}`, 422, api.CodeInvalidField, "baseline.learningRate"},
		{"non-integer layers", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","baseline":{"nLayers":2.5}}`, 422, api.CodeInvalidField, "baseline.nLayers"},
		{"bad choice", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","baseline":{"activation":"tanh"}}`, 422, api.CodeInvalidField, "baseline.activation"},
		{"heads do not divide", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","baseline":{"dModel":100,"nHeads":3}}`, 422, api.CodeInvalidField, "baseline.dModel"},
		{"bad llm url", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","llm":{"baseUrl":"ftp://x","model":"m"}}`, 422, api.CodeInvalidField, "llm.baseUrl"},
		{"llm without model", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","llm":{"baseUrl":"http://127.0.0.1:1/v1"}}`, 422, api.CodeInvalidField, "llm.model"},
		{"bad campaign id", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","id":"Bad ID!"}`, 422, api.CodeInvalidField, "id"},
		{"huge body", "POST", "/api/v1/campaigns", "application/json", `{"domain":"ml","id":"` + strings.Repeat("a", 2<<20) + `"}`, 413, api.CodeTooLarge, ""},
		{"unknown campaign", "GET", "/api/v1/campaigns/nope", "", "", 404, api.CodeNotFound, ""},
		{"stop unknown campaign", "POST", "/api/v1/campaigns/nope/stop", "", "", 404, api.CodeNotFound, ""},
		{"unknown experiment", "GET", "/api/v1/experiments/nope", "", "", 404, api.CodeNotFound, ""},
		{"bad limit", "GET", "/api/v1/experiments?limit=0", "", "", 422, api.CodeInvalidField, "limit"},
		{"limit not a number", "GET", "/api/v1/experiments?limit=ten", "", "", 422, api.CodeInvalidField, "limit"},
		{"bad cursor", "GET", "/api/v1/experiments?cursor=%21%21", "", "", 422, api.CodeInvalidField, "cursor"},
		{"unknown leaderboard domain", "GET", "/api/v1/domains/nope/leaderboard", "", "", 404, api.CodeNotFound, ""},
		{"unknown route", "GET", "/api/v1/nothing", "", "", 404, api.CodeNotFound, ""},
		{"wrong method", "DELETE", "/api/v1/campaigns", "", "", 405, api.CodeMethodNotAllowed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, s.api.URL+c.path, strings.NewReader(c.body))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := http.DefaultClient.Do(s.authorize(req))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e api.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("status %d, body is not a JSON error: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != c.status || e.Error.Code != c.code || e.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, e.Error, c.status, c.code)
			}
			if c.field != "" && (e.Error.Field != c.field || !strings.Contains(e.Error.Message, c.field)) {
				t.Fatalf("error %+v does not name field %q", e.Error, c.field)
			}
		})
	}
	// Nothing was created by any of them.
	code, body := s.do(http.MethodGet, "/api/v1/campaigns", nil)
	if code != 200 || !strings.Contains(string(body), `"campaigns":[]`) {
		t.Fatalf("campaigns after bad input: %d %s", code, body)
	}
	// Health endpoints and the OpenAPI document.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/domains"} {
		if code, body := s.do(http.MethodGet, p, nil); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
}
