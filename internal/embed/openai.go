package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/hyperspace-ai/hyperspace/internal/llm"
)

// MaxOpenAIBatch is the most inputs the OpenAI client sends in one request.
const MaxOpenAIBatch = 256

// OpenAI embeds texts with an OpenAI-compatible embeddings API (OpenAI,
// vLLM, Ollama, LiteLLM, ...): POST <baseURL>/embeddings with
// {"model": ..., "input": [...]}. Create it with NewOpenAI. It is safe for
// concurrent use.
type OpenAI struct {
	baseURL, model, apiKey string
	hc                     *http.Client

	// BatchSize is the number of inputs per request, 1..MaxOpenAIBatch;
	// 0 or out-of-range values mean MaxOpenAIBatch. Set it before use.
	BatchSize int

	mu  sync.Mutex
	dim int
}

// NewOpenAI returns a client for the API at baseURL, which includes the
// version prefix ("https://api.openai.com/v1", "http://host:8000/v1").
// apiKey is sent as "Authorization: Bearer <key>" when non-empty;
// httpClient nil means http.DefaultClient. Use the ctx passed to Embed for
// timeouts and cancellation.
func NewOpenAI(baseURL, model, apiKey string, httpClient *http.Client) *OpenAI {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &OpenAI{baseURL: strings.TrimRight(baseURL, "/"), model: model, apiKey: apiKey, hc: httpClient}
}

// Name is "openai:<model>".
func (o *OpenAI) Name() string { return "openai:" + o.model }

// Dim is the dimension of the vectors the server returned, 0 before the
// first successful call.
func (o *OpenAI) Dim() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dim
}

// APIError is a non-2xx answer, decoded from OpenAI's error shape
// {"error": {"message", "type", "code"}} when the body has it (the same
// type as the chat client's).
type APIError = llm.APIError

// ErrBadResponse wraps every failure to make sense of a 2xx answer: a body
// that is not JSON, a wrong number of embeddings, bad or repeated indices,
// empty, zero, non-finite or inconsistently sized vectors.
var ErrBadResponse = errors.New("embed: bad embeddings response")

type embeddingsRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embeddingsResponse struct {
	Data []struct {
		Index     *int      `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
}

// Embed returns one L2-normalised vector per text, in order, sending at
// most BatchSize texts per request. Every vector, across batches and calls,
// must have the same dimension. An empty texts makes no request. Non-2xx
// answers are *APIError; unusable 2xx answers wrap ErrBadResponse.
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if o.baseURL == "" || o.model == "" {
		return nil, errors.New("embed: OpenAI client needs a base URL and a model")
	}
	batch := o.BatchSize
	if batch <= 0 || batch > MaxOpenAIBatch {
		batch = MaxOpenAIBatch
	}
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		vecs, err := o.embedBatch(ctx, texts[start:min(start+batch, len(texts))])
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

func (o *OpenAI) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(embeddingsRequest{Model: o.model, Input: texts})
	if err != nil {
		return nil, fmt.Errorf("embed: encoding request: %w", err)
	}
	url := o.baseURL + "/embeddings"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if o.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.apiKey)
	}
	resp, err := o.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("embed: POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("embed: reading response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, llm.DecodeAPIError(resp.StatusCode, raw)
	}
	var er embeddingsResponse
	if err := json.Unmarshal(raw, &er); err != nil {
		return nil, fmt.Errorf("%w: decoding: %v (body %q)", ErrBadResponse, err, truncate(string(raw), 200))
	}
	if len(er.Data) != len(texts) {
		return nil, fmt.Errorf("%w: %d embeddings for %d inputs", ErrBadResponse, len(er.Data), len(texts))
	}

	// Place each embedding by its index (servers may answer out of order);
	// an item without an index keeps its position.
	vecs := make([][]float32, len(texts))
	dim := 0
	for pos, d := range er.Data {
		i := pos
		if d.Index != nil {
			i = *d.Index
		}
		if i < 0 || i >= len(texts) {
			return nil, fmt.Errorf("%w: index %d out of range [0, %d)", ErrBadResponse, i, len(texts))
		}
		if vecs[i] != nil {
			return nil, fmt.Errorf("%w: index %d appears twice", ErrBadResponse, i)
		}
		v := d.Embedding
		switch {
		case len(v) == 0:
			return nil, fmt.Errorf("%w: embedding %d is empty", ErrBadResponse, i)
		case dim != 0 && len(v) != dim:
			return nil, fmt.Errorf("%w: embedding %d has dimension %d, others %d", ErrBadResponse, i, len(v), dim)
		case !finite32(v):
			return nil, fmt.Errorf("%w: embedding %d has a non-finite component", ErrBadResponse, i)
		}
		if !normalize32(v) {
			return nil, fmt.Errorf("%w: embedding %d is the zero vector (it cannot be normalised)", ErrBadResponse, i)
		}
		dim = len(v)
		vecs[i] = v
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dim != 0 && o.dim != dim {
		return nil, fmt.Errorf("%w: dimension %d, earlier responses had %d", ErrBadResponse, dim, o.dim)
	}
	o.dim = dim
	return vecs, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

var _ Embedder = (*OpenAI)(nil)
