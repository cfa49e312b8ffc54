package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

const quadraticCause = `
name: quadratic
description: Minimise (x-2)^2 + (y+1)^2, evaluated by a shell script.
metric: {name: loss, direction: minimize}
space:
  - {name: x, kind: float, min: -5, max: 5, help: first coordinate}
  - {name: y, kind: float, min: -5, max: 5, help: second coordinate}
baseline: {x: 0, y: 0}
evaluator:
  command: [sh, eval.sh]
  timeoutSeconds: 10
  files:
    eval.sh: |
      x=$(tr -d ' \n' < config.json | sed -n 's/.*"x":\([-0-9.eE+]*\).*/\1/p')
      y=$(tr -d ' \n' < config.json | sed -n 's/.*"y":\([-0-9.eE+]*\).*/\1/p')
      awk -v x="$x" -v y="$y" 'BEGIN { printf "{\"metric\": %.6f, \"testMetric\": %.6f}\n", (x-2)^2+(y+1)^2, (x-2.1)^2+(y+1)^2 }'
`

func (s *stack) post(path, contentType, body string) (int, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.api.URL+path, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(s.authorize(req))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestCauseCampaign registers a user-defined domain over REST (YAML), runs a
// campaign on it through Temporal, and checks bad definitions are rejected.
func TestCauseCampaign(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	code, body := s.post("/api/v1/causes", "application/yaml", quadraticCause)
	if code != http.StatusCreated {
		t.Fatalf("register cause: %d %s", code, body)
	}
	if code, body := s.post("/api/v1/causes", "application/yaml", quadraticCause); code != http.StatusConflict {
		t.Fatalf("duplicate cause: %d %s", code, body)
	}
	for name, def := range map[string]string{
		"reserved name": strings.Replace(quadraticCause, "name: quadratic", "name: ml", 1),
		"bad direction": strings.Replace(quadraticCause, "direction: minimize", "direction: sideways", 1),
		"min > max":     strings.Replace(quadraticCause, "min: -5, max: 5, help: first", "min: 5, max: -5, help: first", 1),
		"no command":    strings.Replace(quadraticCause, "command: [sh, eval.sh]", "command: []", 1),
		"not yaml":      "name: [unclosed",
	} {
		code, body := s.post("/api/v1/causes", "application/yaml", def)
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(body, &e)
		if code != http.StatusUnprocessableEntity || e.Error.Message == "" {
			t.Fatalf("%s: %d %s", name, code, body)
		}
	}
	if code, _ := s.post("/api/v1/causes", "text/plain", quadraticCause); code != http.StatusUnsupportedMediaType {
		t.Fatalf("wrong content type: %d", code)
	}
	v := s.startCampaign(map[string]any{"domain": "quadratic", "agents": 1, "experiments": 4, "seed": 1, "budget": 10})
	v = s.waitCampaign(v.ID, 2*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	sum := s.summary(v)
	if sum.Experiments != 3+4 || sum.Best == nil {
		t.Fatalf("summary %+v", sum)
	}
	// Every recorded metric is the evaluator's function of the config it ran.
	distinct := map[string]bool{}
	for _, r := range s.allExperiments(v.ID) {
		var sr receipt.Signed
		_ = json.Unmarshal(r.Record, &sr)
		x, y := sr.Receipt.Config["x"].(float64), sr.Receipt.Config["y"].(float64)
		if want := (x-2)*(x-2) + (y+1)*(y+1); math.Abs(r.Metric-want) > 1e-5 {
			t.Fatalf("run %d: metric %v for x=%v y=%v, want %v", r.RunNumber, r.Metric, x, y, want)
		}
		distinct[fmt.Sprint(x, y)] = true
	}
	if len(distinct) != 1+4 {
		t.Fatalf("%d distinct configs, want the baseline + 4 proposals", len(distinct))
	}
	if code, body := s.do(http.MethodGet, "/api/v1/domains", nil); code != 200 || !strings.Contains(string(body), `"quadratic"`) {
		t.Fatalf("domains: %d %s", code, body)
	}
}
