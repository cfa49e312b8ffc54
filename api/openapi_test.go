package api

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// The OpenAPI document states, for every route, the scope the middleware
// enforces, and the 401/403 answers.
func TestOpenAPISecurityMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Security  []map[string][]string      `json:"security"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
		Components struct {
			SecuritySchemes map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Components.SecuritySchemes["bearer"] == nil {
		t.Fatal("no bearer security scheme")
	}
	param := regexp.MustCompile(`[:*]([a-zA-Z]+)`)
	eng := (&Server{}).Handler().(*gin.Engine)
	for _, r := range eng.Routes() {
		p := param.ReplaceAllString(r.Path, "{$1}")
		op, ok := doc.Paths[p][strings.ToLower(r.Method)]
		if !ok {
			t.Errorf("%s %s is not in openapi.json", r.Method, p)
			continue
		}
		open := r.Path == "/healthz" || r.Path == "/readyz" || r.Path == "/api/v1/openapi.json" || r.Path == MeshPagePath ||
			r.Path == "/login" || r.Path == "/assets/*file" || r.Path == "/api/v1/session" // the dashboard's login and static files
		if open {
			if len(op.Security) != 0 {
				t.Errorf("%s %s is open but documented with security %v", r.Method, p, op.Security)
			}
			continue
		}
		want := string(requiredScope(r.Method, r.Path))
		if len(op.Security) != 1 || len(op.Security[0]["bearer"]) != 1 || op.Security[0]["bearer"][0] != want {
			t.Errorf("%s %s: documented security %v, enforced scope %s", r.Method, p, op.Security, want)
		}
		if op.Responses["401"] == nil || op.Responses["403"] == nil {
			t.Errorf("%s %s: 401/403 not documented", r.Method, p)
		}
	}
}
