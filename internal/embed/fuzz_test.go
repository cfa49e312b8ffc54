package embed

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"testing"
)

// answer is an http.RoundTripper that answers every request with one
// canned response.
type answer struct {
	status int
	body   []byte
}

func (a answer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{StatusCode: a.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(a.body)), Request: req}, nil
}

// FuzzEmbeddingsResponse: any answer of a hosted embeddings API gives one
// L2-normalised, finite vector per text, all of one dimension, or an
// error (an *APIError for non-2xx, ErrBadResponse otherwise), never a
// panic.
func FuzzEmbeddingsResponse(f *testing.F) {
	for _, s := range []string{
		`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]},{"index":1,"embedding":[3,4]}],"model":"m"}`,
		`{"data":[{"index":1,"embedding":[1,0]},{"index":0,"embedding":[0,1]}]}`,
		`{"data":[{"embedding":[1,0]},{"embedding":[0,1]}]}`,
		`{"data":[{"index":0,"embedding":[1,0]},{"index":0,"embedding":[0,1]}]}`,
		`{"data":[{"index":0,"embedding":[0,0]},{"index":1,"embedding":[0,1]}]}`,
		`{"data":[{"index":0,"embedding":[1e-45,0]},{"index":1,"embedding":[3e38,3e38]}]}`,
		`{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1,2]}]}`,
		`{"data":[{"index":-1,"embedding":[1]},{"index":9,"embedding":[1]}]}`,
		`{"data":[{"index":0,"embedding":[]},{"index":1,"embedding":null}]}`, `{"data":[]}`, `{}`, `null`, `[`,
	} {
		f.Add(200, []byte(s))
	}
	f.Add(429, []byte(`{"error":{"message":"slow down","code":"rate_limit"}}`))
	f.Add(500, []byte(`oops`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		o := NewOpenAI("http://127.0.0.1:8000/v1", "m", "", &http.Client{Transport: answer{status, body}})
		vecs, err := o.Embed(context.Background(), []string{"a", "b"})
		if err != nil {
			var apiErr *APIError
			if (status < 200 || status > 299) != errors.As(err, &apiErr) {
				t.Fatalf("status %d gave %T: %v", status, err, err)
			}
			if !errors.As(err, &apiErr) && !errors.Is(err, ErrBadResponse) {
				t.Fatalf("2xx failure not wrapping ErrBadResponse: %v", err)
			}
			return
		}
		if status < 200 || status > 299 || len(vecs) != 2 {
			t.Fatalf("status %d gave %d vectors", status, len(vecs))
		}
		for i, v := range vecs {
			if len(v) == 0 || len(v) != len(vecs[0]) || len(v) != o.Dim() {
				t.Fatalf("vector %d has dimension %d (first %d, Dim %d)", i, len(v), len(vecs[0]), o.Dim())
			}
			var s float64
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("vector %d is not finite: %v", i, v)
				}
				s += float64(x) * float64(x)
			}
			if math.Abs(s-1) > 1e-3 {
				t.Fatalf("vector %d is not L2-normalised (|v|^2 = %v)", i, s)
			}
		}
	})
}
