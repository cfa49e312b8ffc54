package llm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
)

func TestAllowListMatching(t *testing.T) {
	a, err := ParseAllowList(" http://127.0.0.1:8000/v1 , HTTPS://API.Example.COM/v1/, http://LocalHost ")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.String(); got != "http://127.0.0.1:8000/v1,https://api.example.com:443/v1,http://localhost:80" {
		t.Fatalf("normalised list %q", got)
	}
	for u, want := range map[string]bool{
		"http://127.0.0.1:8000/v1":                  true,
		"http://127.0.0.1:8000/v1/":                 true,
		"http://127.0.0.1:8000/v1/chat/completions": true,
		"http://127.0.0.1:8000/v10":                 false, // segment boundary
		"http://127.0.0.1:8000/":                    false,
		"http://127.0.0.1:8001/v1":                  false, // port
		"https://127.0.0.1:8000/v1":                 false, // scheme
		"http://127.0.0.2:8000/v1":                  false, // host
		"https://api.example.com/v1":                true,  // default port
		"https://api.example.com:443/v1":            true,
		"https://API.EXAMPLE.com./v1/models":        true, // case, trailing dot
		"http://api.example.com/v1":                 false,
		"http://localhost/anything/at/all":          true,
		"http://localhost:80/":                      true,
		"http://localhost:8080/":                    false,
		"http://127.0.0.1:8000/v1/../admin":         false, // dot segments
		"http://127.0.0.1:8000/v1/%2e%2e/admin":     false, // encoded dot segments
		"http://127.0.0.1:8000/v1?x=1":              false, // query
		"http://user:pw@127.0.0.1:8000/v1":          false, // user info
		"http://169.254.169.254/latest/v1":          false,
		"ftp://127.0.0.1:8000/v1":                   false,
		"127.0.0.1:8000/v1":                         false,
		"":                                          false,
	} {
		if got := a.Allows(u); got != want {
			t.Errorf("Allows(%q) = %v, want %v", u, got, want)
		}
	}
	var none *AllowList
	if none.Allows("http://127.0.0.1:8000/v1") || !none.Empty() {
		t.Fatal("a nil list must allow nothing")
	}
	empty, _ := ParseAllowList("")
	if empty.Allows("http://127.0.0.1:8000/v1") || !empty.Empty() {
		t.Fatal("an empty list must allow nothing")
	}
	for _, bad := range []string{"ftp://x", "not a url", "http://", "http://h/v1?q", "http://u@h/v1", "http://h/a/../b"} {
		if _, err := ParseAllowList(bad); err == nil {
			t.Errorf("ParseAllowList(%q): want error", bad)
		}
	}
}

// An endpoint off the allow-list gets no request at all (so never the key),
// and the fallback says endpoint_not_allowed.
func TestUnlistedEndpointGetsNothing(t *testing.T) {
	s := llmtest.New()
	defer s.Close()
	c := &Client{BaseURL: s.BaseURL(), Model: "m", APIKey: "sk-secret", HTTP: s.Client(), Allow: MustAllowList("http://127.0.0.1:1/v1")}
	_, name, err := Hypothesize(context.Background(), c, fake{}, history(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if name != "builtin (llm fallback: endpoint_not_allowed)" {
		t.Fatalf("proposer %q", name)
	}
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("the unlisted endpoint got %d requests", n)
	}
	c.Allow = MustAllowList(s.BaseURL())
	s.EnqueueContent(`{"hypothesis":"h","config":{"lr":0.01,"layers":3,"opt":"sgd"}}`)
	if _, name, _ := Hypothesize(context.Background(), c, fake{}, history(), 7); name != "llm:m" {
		t.Fatalf("listed endpoint: proposer %q", name)
	}
}

// Redirects to another origin are not followed, so the key stays home;
// same-origin redirects on the list are.
func TestRedirectsStayOnOrigin(t *testing.T) {
	var otherHits atomic.Int32
	var otherAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		otherAuth.Store(r.Header.Get("Authorization"))
		w.Write([]byte(`{"choices":[{"message":{"content":"{}"}}]}`))
	}))
	defer other.Close()
	var sameHits atomic.Int32
	var origin *httptest.Server
	origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away/v1/chat/completions":
			http.Redirect(w, r, other.URL+"/v1/chat/completions", http.StatusTemporaryRedirect)
		case "/here/v1/chat/completions":
			http.Redirect(w, r, origin.URL+"/v1/chat/completions", http.StatusTemporaryRedirect)
		case "/off/v1/chat/completions":
			http.Redirect(w, r, origin.URL+"/admin", http.StatusTemporaryRedirect)
		case "/v1/chat/completions":
			sameHits.Add(1)
			w.Write([]byte(`{"choices":[{"message":{"content":"ok"}}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()
	allow := MustAllowList(origin.URL + "/away/v1," + origin.URL + "/here/v1," + origin.URL + "/off/v1," + origin.URL + "/v1," + other.URL)
	hc := HTTPClient(5*time.Second, allow)
	chat := func(base string) (string, error) {
		c := &Client{BaseURL: origin.URL + base, Model: "m", APIKey: "sk-secret", HTTP: hc, Allow: allow}
		return c.Chat(context.Background(), []Message{{Role: "user", Content: "json"}}, ChatOptions{})
	}
	if _, err := chat("/away/v1"); !errors.Is(err, ErrRedirectNotAllowed) || ReasonCode(err) != ReasonRedirect {
		t.Fatalf("cross-origin redirect: %v (%s)", err, ReasonCode(err))
	}
	if otherHits.Load() != 0 {
		t.Fatalf("the other origin was contacted (Authorization %q)", otherAuth.Load())
	}
	if _, err := chat("/off/v1"); !errors.Is(err, ErrRedirectNotAllowed) {
		t.Fatalf("redirect off the allow-list: %v", err)
	}
	if out, err := chat("/here/v1"); err != nil || out != "ok" || sameHits.Load() != 1 {
		t.Fatalf("same-origin redirect: %q %v (%d hits)", out, err, sameHits.Load())
	}
}

// Reason codes never carry provider text.
func TestReasonCodesAreFixed(t *testing.T) {
	long := "leaked provider text " + strings.Repeat("x", 1000)
	for err, want := range map[error]string{
		DecodeAPIError(500, []byte(long)):                               "http_500",
		DecodeAPIError(401, []byte(`{"error":{"message":"`+long+`"}}`)): "http_401",
		&ProposalError{Kind: ErrInvalidJSON, Detail: long}:              "bad_json",
		&ProposalError{Kind: ErrInvalidConfig, Detail: long}:            "invalid_config",
		&ProposalError{Kind: ErrRepeatedConfig, Detail: long}:           "repeat",
		ErrEndpointNotAllowed:                                           "endpoint_not_allowed",
		ErrEmptyResponse:                                                "empty_response",
		context.DeadlineExceeded:                                        "timeout",
		errors.New(long):                                                "error",
	} {
		if got := ReasonCode(err); got != want {
			t.Errorf("ReasonCode(%.40q) = %q, want %q", err.Error(), got, want)
		}
	}
}
