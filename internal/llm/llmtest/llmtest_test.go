package llmtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, s *Server, body string) (int, map[string]any) {
	t.Helper()
	resp, err := s.Client().Post(s.BaseURL()+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestQueueAndRecording(t *testing.T) {
	s := New()
	defer s.Close()
	s.EnqueueContent("first")
	s.Enqueue(Reply{Status: http.StatusServiceUnavailable})
	const body = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	if code, out := post(t, s, body); code != 200 || out["object"] != "chat.completion" {
		t.Fatalf("first: %d %v", code, out)
	}
	if code, out := post(t, s, body); code != 503 || out["error"] == nil {
		t.Fatalf("second: %d %v", code, out)
	}
	if code, out := post(t, s, body); code != 500 || !strings.Contains(out["error"].(map[string]any)["message"].(string), "no scripted reply") {
		t.Fatalf("empty queue: %d %v", code, out)
	}
	if n := len(s.Requests()); n != 3 || s.Pending() != 0 {
		t.Fatalf("recorded %d, pending %d", n, s.Pending())
	}
	if got := s.Requests()[0].Chat.Model; got != "m" {
		t.Fatalf("recorded model %q", got)
	}
}

func TestRequireKey(t *testing.T) {
	s := New()
	defer s.Close()
	s.RequireKey("k")
	code, out := post(t, s, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	e, _ := out["error"].(map[string]any)
	if code != 401 || e["code"] != "invalid_api_key" || e["type"] != "invalid_request_error" {
		t.Fatalf("%d %v", code, out)
	}
	if s.Pending() != 0 {
		t.Fatal("queue touched")
	}
}
