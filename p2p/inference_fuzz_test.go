package p2p_test

import (
	"encoding/json"
	"testing"

	"github.com/hyperspace-ai/hyperspace/p2p"
)

// FuzzDecodeInferenceRequest: a request frame that decodes re-encodes to
// a frame that decodes to the same request.
func FuzzDecodeInferenceRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"caps"}`,
		`{"op":"chat","model":"m1","body":{"messages":[{"role":"user","content":"hi"}]},"stream":true}`,
		`{"op":"embeddings","model":"e","body":{"input":["a","b"]}}`,
		`{"op":"completions","model":"m\u0000"}`,
		`{"op":"chat"}`,
		`{"op":"chat","model":"m","body":null}`,
		`{"op":"chat","model":"m","extra":1}`,
		`{"op":"chat","model":"m"} {}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := p2p.DecodeInferenceRequest(b)
		if err != nil {
			return
		}
		b2, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", r, err)
		}
		r2, err := p2p.DecodeInferenceRequest(b2)
		if err != nil {
			t.Fatalf("re-encoded request %s does not decode: %v", b2, err)
		}
		if r2.Op != r.Op || r2.Model != r.Model || r2.Stream != r.Stream {
			t.Fatalf("round trip changed %+v to %+v", r, r2)
		}
	})
}

// FuzzDecodeInferenceHeader: a header that decodes has a valid status.
func FuzzDecodeInferenceHeader(f *testing.F) {
	for _, s := range []string{
		`{"status":200,"contentType":"application/json"}`,
		`{"status":200,"contentType":"text/event-stream"}`,
		`{"status":503,"contentType":""}`,
		`{"status":99}`,
		`{"status":200,"contentType":"a\nb"}`,
		`{"status":1e3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := p2p.DecodeInferenceHeader(b)
		if err != nil {
			return
		}
		if h.Status < 100 || h.Status > 599 {
			t.Fatalf("status %d decoded", h.Status)
		}
	})
}
