package ml

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Run with:
//
//	go test -run '^$' -bench 'Generate|TTFT' ./domains/ml/
//
// benchLM is cfg with the training init (seed 1) and the corpus's
// vocabulary (a 52-byte stand-in when the corpus is absent), and a text to
// prompt it with.
func benchLM(b *testing.B, cfg domains.Config) (*LM, []byte) {
	vocab := []byte(testVocab + "!'\"")
	text := []byte("the boundary layer on a flat plate in supersonic flow was investigated with a view to the heat transfer ")
	if c, err := LoadCorpus(testDataDirOrEmpty()); err == nil {
		vocab = c.Vocab
		text = text[:0]
		for _, id := range c.Validation[:4096] {
			text = append(text, c.Vocab[id-1])
		}
	}
	st, err := NewState(cfg, len(vocab)+1, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	ck, err := Checkpoint(st.Config, vocab, st.Params, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	lm, err := LoadLM(ck)
	if err != nil {
		b.Fatal(err)
	}
	return lm, text
}

// testDataDirOrEmpty is where testDataDir looks, without skipping.
func testDataDirOrEmpty() string {
	if dir := os.Getenv("HYPERSPACE_DATA_DIR"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "..", "shared", "data")
}

// BenchmarkGenerate samples 128 tokens (temperature 0.8, seeded) from the
// baseline config after a 16-token prompt and reports completion tokens
// per second. With contextLength 64 the window restarts every 32 tokens
// (a 32-token re-prefill), which is included.
func BenchmarkGenerate(b *testing.B) {
	lm, text := benchLM(b, New().Baseline())
	prompt := lm.Encode(string(text[:16]))
	opt := GenOptions{MaxTokens: 128, Temperature: 0.8, Seed: 1, HasSeed: true}
	var toks int
	start := time.Now()
	for b.Loop() {
		res, err := lm.Generate(context.Background(), nil, prompt, opt, nil)
		if err != nil {
			b.Fatal(err)
		}
		toks += res.CompletionTokens
	}
	b.ReportMetric(float64(toks)/time.Since(start).Seconds(), "tokens/s")
}

// BenchmarkTTFT is the time to the first token of a 200-token prompt with
// the baseline config at contextLength 256: cold (prefill all 200) and
// with a KV-prefix hit (import the exported state of the first 192 tokens,
// then prefill 8), both through Generate with MaxTokens 1; the import
// (UnmarshalState of the blob) is timed, fetching it is not.
func BenchmarkTTFT(b *testing.B) {
	cfg := New().Baseline()
	cfg["contextLength"] = 256.0
	lm, text := benchLM(b, cfg)
	for len(text) < 200 {
		text = append(text, text...)
	}
	prompt := lm.Encode(string(text[:200]))
	pre := lm.NewState()
	if _, err := lm.Prefill(pre, prompt[:192]); err != nil {
		b.Fatal(err)
	}
	blob, err := pre.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	opt := GenOptions{MaxTokens: 1}
	var cold, hit time.Duration
	ctx := context.Background()
	for b.Loop() {
		t0 := time.Now()
		r1, err := lm.Generate(ctx, nil, prompt, opt, nil)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		st, err := lm.UnmarshalState(blob)
		if err != nil {
			b.Fatal(err)
		}
		r2, err := lm.Generate(ctx, st, prompt[192:], opt, nil)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if r1.Text != r2.Text {
			b.Fatalf("cold %q, prefix hit %q", r1.Text, r2.Text)
		}
		cold += t1.Sub(t0)
		hit += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(cold.Seconds()*1e3/n, "cold-ms")
	b.ReportMetric(hit.Seconds()*1e3/n, "hit-ms")
	b.ReportMetric(cold.Seconds()/hit.Seconds(), "speedup")
	b.ReportMetric(float64(len(blob))/1024, "state-KiB")
}
