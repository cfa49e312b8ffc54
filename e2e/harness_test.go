// Package e2e runs whole campaigns through the REST API against a real
// PostgreSQL, a real S3 server (versitygw) and a real Temporal server
// (temporaltest, in-process), with the real ML domain on tiny configs.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/finance"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/domains/skills"
	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/keystore"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/memory"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
	"github.com/hyperspace-ai/hyperspace/workers"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// testSiteSecret seals the agent keys of the test sites (every process of
// a site gets it, as HYPERSPACE_SITE_SECRET).
const testSiteSecret = "e2e-site-secret-0123456789abcdef"

// tinyML is a baseline override that trains in about a second.
var tinyML = map[string]any{"nLayers": 1, "dModel": 32, "nHeads": 2, "contextLength": 32, "batchSize": 8, "tokenBudget": 20000, "warmupSteps": 5}

type stack struct {
	t       testing.TB
	ts      *temporaltest.TestServer
	tc      client.Client
	st      *store.Store
	dsn     string
	blob    *blob.Store
	blobCfg blob.Config
	api     *httptest.Server
	srv     *api.Server
	// token is an admin token of the stack's database, sent by do and post.
	token    string
	acts     *activities.Activities
	stateDir string
	dataDir  string
	registry *domains.Registry
}

// queues: which task queues the in-process worker serves.
func newStack(t *testing.T, queues []string, heartbeatSecs int) *stack {
	return newStackQueues(t, queues, heartbeatSecs)
}

// newStackTB is a full stack for benchmarks (both queues in-process).
func newStackTB(b *testing.B) *stack {
	return newStackQueues(b, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
}

func newStackQueues(t testing.TB, queues []string, heartbeatSecs int) *stack {
	return newStackSlots(t, queues, heartbeatSecs, 0)
}

// newStackSlots is newStackQueues with slots experiments at once in-process.
func newStackSlots(t testing.TB, queues []string, heartbeatSecs, slots int) *stack {
	t.Helper()
	s := &stack{t: t}
	if tt, ok := t.(*testing.T); ok {
		s.ts = temporaltest.NewServer(temporaltest.WithT(tt))
	} else {
		s.ts = temporaltest.NewServer()
		t.Cleanup(s.ts.Stop)
	}
	s.tc = s.ts.GetDefaultClient()
	s.st, s.dsn = testenv.Database(t)
	s.blob, s.blobCfg = testenv.Blob(t)
	s.dataDir = testenv.DataDir(t)
	s.stateDir = t.TempDir()
	ks, err := keystore.Open(context.Background(), s.st, []byte(testSiteSecret))
	if err != nil {
		t.Fatal(err)
	}
	s.registry = domains.NewRegistry(ml.New(), search.New(), finance.New(), skills.New())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	s.acts = &activities.Activities{Store: s.st, Blob: s.blob, Domains: s.registry, Keys: ks,
		DataDir: s.dataDir, WorkerID: "test", HeartbeatEvery: 500 * time.Millisecond, Logger: log,
		Memory: memory.New(activities.StoreCorpus(s.st), memory.Options{})}
	g, err := workers.Start(workers.Options{Client: s.tc, Queues: queues, Activities: s.acts, Identity: "in-process", ExperimentSlots: slots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	s.token = testenv.Token(t, s.st, token.Admin)
	s.serve(&api.Server{Store: s.st, Blob: s.blob, Temporal: s.tc, Domains: s.registry, Logger: log,
		Namespace: s.ts.GetDefaultNamespace(), DefaultHeartbeatSeconds: heartbeatSecs})
	return s
}

// serve makes srv the stack's API (closing the previous one), keeping the
// LLM allow-list the stack was given.
func (s *stack) serve(srv *api.Server) {
	if s.api != nil {
		s.api.Close()
	}
	if s.srv != nil && srv.LLMAllow == nil {
		srv.LLMAllow = s.srv.LLMAllow
	}
	s.srv = srv
	s.api = httptest.NewServer(srv.Handler())
	s.t.Cleanup(s.api.Close)
}

// allowLLM puts URL prefixes on the LLM allow-list of both the API and
// the in-process workers (the operator's --llm-allow).
func (s *stack) allowLLM(prefixes ...string) {
	s.t.Helper()
	a, err := llm.ParseAllowList(strings.Join(prefixes, ","))
	if err != nil {
		s.t.Fatal(err)
	}
	s.acts.LLMAllow = a
	s.srv.LLMAllow = a
}

// authorize adds the stack's admin token to req.
func (s *stack) authorize(req *http.Request) *http.Request {
	req.Header.Set("Authorization", "Bearer "+s.token)
	return req
}

func (s *stack) do(method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = bytes.NewBufferString(b)
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
	}
	req, _ := http.NewRequest(method, s.api.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	s.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (s *stack) startCampaign(req map[string]any) api.CampaignView {
	s.t.Helper()
	noConfirmations(req)
	code, body := s.do(http.MethodPost, "/api/v1/campaigns", req)
	if code != http.StatusCreated {
		s.t.Fatalf("start campaign: %d %s", code, body)
	}
	var v api.CampaignView
	if err := json.Unmarshal(body, &v); err != nil {
		s.t.Fatal(err)
	}
	return v
}

// waitCampaign polls until the campaign ends.
func (s *stack) waitCampaign(id string, timeout time.Duration) api.CampaignView {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := s.do(http.MethodGet, "/api/v1/campaigns/"+id, nil)
		if code != http.StatusOK {
			s.t.Fatalf("get campaign: %d %s", code, body)
		}
		var v api.CampaignView
		_ = json.Unmarshal(body, &v)
		switch v.Status {
		case store.StatusCompleted, store.StatusStopped, store.StatusFailed:
			return v
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("campaign %s still %s after %s: %s", id, v.Status, timeout, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *stack) summary(v api.CampaignView) workflows.Summary {
	s.t.Helper()
	var sum workflows.Summary
	if err := json.Unmarshal(v.Summary, &sum); err != nil {
		s.t.Fatalf("summary of %s: %v (%s)", v.ID, err, v.Summary)
	}
	return sum
}

// allExperiments pages through GET /experiments.
func (s *stack) allExperiments(campaign string) []store.Experiment {
	s.t.Helper()
	var out []store.Experiment
	cursor := ""
	for i := 0; i < 100; i++ {
		path := "/api/v1/experiments?limit=2&campaign=" + campaign
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		code, body := s.do(http.MethodGet, path, nil)
		if code != http.StatusOK {
			s.t.Fatalf("list experiments: %d %s", code, body)
		}
		var page struct {
			Experiments []store.Experiment
			NextCursor  string
		}
		_ = json.Unmarshal(body, &page)
		out = append(out, page.Experiments...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
	s.t.Fatal("pagination did not end")
	return nil
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// httptestRecorder GETs path from h with the bearer token tok.
func httptestRecorder(h http.Handler, path, tok string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(rec, req)
	return rec
}

// noConfirmations sets confirmations 0 unless req names it: the e2e tests
// count rows against the research experiments, and the confirmation runs
// have tests of their own (TestJudgedCampaign, activities, workflows).
func noConfirmations(req map[string]any) {
	if _, ok := req["confirmations"]; !ok {
		req["confirmations"] = 0
	}
}
