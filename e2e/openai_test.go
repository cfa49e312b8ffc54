package e2e

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/modelserve"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// openAIClientDir holds the pinned official openai npm package
// (scripts/test.sh runs npm ci there).
func openAIClientDir(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs("openai-client")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the openai npm package is not installed in %s (scripts/test.sh runs `npm ci` there)", dir)
		}
		t.Skipf("the openai npm package is not installed: run `npm ci --prefix %s` (scripts/test.sh does)", dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed (scripts/test.sh installs it)")
	}
	return dir
}

// TestOpenAIClient publishes a trained ML checkpoint as a model and drives
// the /v1 API with the official openai npm package: models, chat (plain
// and streamed, with and without the usage chunk), completions, embeddings
// in base64 (the SDK's default) and float, and errors.
func TestOpenAIClient(t *testing.T) {
	dir := openAIClientDir(t)
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	v := s.startCampaign(map[string]any{"domain": "ml", "agents": 1, "experiments": 1, "seed": 3, "budget": 4, "baseline": tinyML})
	v = s.waitCampaign(v.ID, 5*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign ended %s: %s", v.Status, v.Error)
	}
	rows := s.allExperiments(v.ID)
	best := rows[0]
	for _, r := range rows {
		if r.Metric < best.Metric {
			best = r
		}
	}

	// Serve /v1 from the stack's API with the real model loader.
	svc := &inference.Service{Fingerprint: "hs-e2e"}
	em, err := modelserve.BuiltinEmbedding(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	svc.SetEmbed(em)
	reg := &modelserve.Registry{Store: s.st, Blob: s.blob, Service: svc, Load: modelserve.LoadML(nil)}
	srv := *s.srv
	srv.Inference, srv.Models = svc, reg
	s.serve(&srv)

	// Bad publishes are 4xx naming the field.
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"source": best.ID, "name": "bad name!"}, "name"},
		{map[string]any{"source": "nope", "name": "m"}, "source"},
		{map[string]any{"name": "m"}, "source"},
	} {
		code, body := s.do(http.MethodPost, "/api/v1/models", c.body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"field":"`+c.field+`"`) {
			t.Errorf("publish %v: %d %s", c.body, code, body)
		}
	}
	code, body := s.do(http.MethodPost, "/api/v1/models", map[string]any{"source": best.ID, "name": "cranfield-tiny"})
	if code != http.StatusCreated {
		t.Fatalf("publish: %d %s", code, body)
	}
	var m store.Model
	_ = json.Unmarshal(body, &m)
	if m.ExperimentID != best.ID || len(m.CheckpointHash) != 64 {
		t.Fatalf("published %+v", m)
	}

	readTok := testenv.Token(t, s.st, token.Read)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "client.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OPENAI_BASE_URL="+s.api.URL+"/v1", "OPENAI_API_KEY="+readTok,
		"HS_CHAT_MODEL=cranfield-tiny", "HS_EMBED_MODEL="+modelserve.EmbeddingModelName)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("openai client: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("openai client saw: %s", out)
	var got struct {
		Models []struct{ ID, Object, Kind string }
		Chat   struct {
			Object, Content, Finish string
			Usage                   struct{ Prompt_tokens, Completion_tokens, Total_tokens int }
		}
		ChatAgain string
		Stream    struct {
			Content, Finish string
			Chunks          int
			Usage           *struct{ Completion_tokens int }
		}
		StreamNoUsage struct {
			SawUsage bool
			Content  string
		}
		Completion struct{ Object, Text, Finish string }
		Embeddings struct {
			N, Dim, NonZero int
			Norm            float64
			SameAsFloat     bool
		}
		NotFound struct {
			Cls, Code, Param, Type string
			Status                 int
		}
		BadRequest struct {
			Cls, Param string
			Status     int
		}
		BadKey struct {
			Cls    string
			Status int
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output: %v: %s", err, out)
	}
	kinds := map[string]string{}
	for _, m := range got.Models {
		kinds[m.ID] = m.Kind
	}
	if kinds["cranfield-tiny"] != "chat" || kinds[modelserve.EmbeddingModelName] != "embedding" {
		t.Errorf("models: %+v", got.Models)
	}
	if got.Chat.Object != "chat.completion" || got.Chat.Content == "" || got.Chat.Usage.Total_tokens != got.Chat.Usage.Prompt_tokens+got.Chat.Usage.Completion_tokens {
		t.Errorf("chat: %+v", got.Chat)
	}
	if got.ChatAgain != got.Chat.Content || got.Stream.Content != got.Chat.Content {
		t.Errorf("greedy decoding is not deterministic: %q, %q, streamed %q", got.Chat.Content, got.ChatAgain, got.Stream.Content)
	}
	if got.Stream.Chunks < 3 || got.Stream.Usage == nil || got.Stream.Usage.Completion_tokens != got.Chat.Usage.Completion_tokens || got.Stream.Finish != got.Chat.Finish {
		t.Errorf("stream: %+v", got.Stream)
	}
	if got.StreamNoUsage.SawUsage || got.StreamNoUsage.Content == "" {
		t.Errorf("stream without include_usage: %+v", got.StreamNoUsage)
	}
	if got.Completion.Object != "text_completion" || got.Completion.Text == "" {
		t.Errorf("completion: %+v", got.Completion)
	}
	e := got.Embeddings
	if e.N != 2 || e.Dim != em.Dim() || e.NonZero < e.Dim/2 || math.Abs(e.Norm-1) > 1e-3 || !e.SameAsFloat {
		t.Errorf("embeddings: %+v (dim %d)", e, em.Dim())
	}
	if got.NotFound.Status != 404 || got.NotFound.Cls != "NotFoundError" || got.NotFound.Code != "model_not_found" || got.NotFound.Param != "model" {
		t.Errorf("unknown model: %+v", got.NotFound)
	}
	if got.BadRequest.Status != 400 || got.BadRequest.Cls != "BadRequestError" || got.BadRequest.Param != "temperature" {
		t.Errorf("bad temperature: %+v", got.BadRequest)
	}
	if got.BadKey.Status != 401 || got.BadKey.Cls != "AuthenticationError" {
		t.Errorf("bad key: %+v", got.BadKey)
	}
}
