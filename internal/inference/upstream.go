package inference

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Upstream is an operator-configured route to an OpenAI-compatible server
// (Ollama, vLLM, llama.cpp's server, LiteLLM, OpenAI itself): requests for
// Name are sent to BaseURL with the model renamed to Model.
type Upstream struct {
	Name    string // the name clients use
	Kind    string // KindChat or KindEmbedding
	BaseURL string // includes the version prefix, e.g. http://127.0.0.1:11434/v1
	Model   string // the upstream's name for it
	APIKey  string // sent as a bearer token when set
	Created time.Time
	// Client is the HTTP client (nil: one with a 10-minute timeout).
	Client *http.Client
}

// MaxUpstreamBody bounds a non-streaming upstream answer.
const MaxUpstreamBody = 32 << 20

// ParseUpstream parses a route "NAME=BASEURL[#UPSTREAM_MODEL]" (the
// upstream model defaults to NAME), e.g.
// "llama=http://127.0.0.1:11434/v1#llama3.2:1b".
func ParseUpstream(spec, kind, apiKey string) (*Upstream, error) {
	name, rest, ok := strings.Cut(spec, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || rest == "" {
		return nil, fmt.Errorf("upstream route %q: want NAME=BASEURL[#UPSTREAM_MODEL]", spec)
	}
	base, model, _ := strings.Cut(rest, "#")
	if model == "" {
		model = name
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream route %q: %q is not an http(s) URL", spec, base)
	}
	if kind != KindChat && kind != KindEmbedding {
		return nil, fmt.Errorf("upstream route %q: kind %q", spec, kind)
	}
	return &Upstream{Name: name, Kind: kind, BaseURL: strings.TrimRight(base, "/"), Model: model, APIKey: apiKey, Created: time.Now()}, nil
}

var opPath = map[string]string{OpChat: "/chat/completions", OpCompletions: "/completions", OpEmbeddings: "/embeddings"}

func (u *Upstream) client() *http.Client {
	if u.Client != nil {
		return u.Client
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

// forward sends the request upstream and relays the answer, SSE events as
// frames.
func (u *Upstream) forward(ctx context.Context, op string, body []byte, w FrameWriter) error {
	if (op == OpEmbeddings) != (u.Kind == KindEmbedding) {
		return Invalid("model", fmt.Sprintf("`%s` is an upstream %s model; it does not serve %s", u.Name, u.Kind, opPath[op]))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return Invalid("", "the request body is not a JSON object")
	}
	m["model"], _ = json.Marshal(u.Model)
	out, _ := json.Marshal(m)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.BaseURL+opPath[op], bytes.NewReader(out))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if u.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+u.APIKey)
	}
	resp, err := u.client().Do(req)
	if err != nil {
		return NewError(http.StatusBadGateway, TypeServer, "upstream_unavailable", "the upstream server for `"+u.Name+"` did not answer: "+err.Error())
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	if err := w.WriteHeader(resp.StatusCode, ct); err != nil {
		return err
	}
	if !strings.HasPrefix(ct, sseType) {
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxUpstreamBody))
		if err != nil {
			return err
		}
		return w.WriteFrame(b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if err := w.WriteFrame(bytes.TrimSpace(data)); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}
