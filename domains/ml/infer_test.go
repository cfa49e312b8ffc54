package ml

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// testVocab is a corpus-like vocabulary for tests that do not need the
// Cranfield text.
const testVocab = "\n ()+,-./0123456789:;=abcdefghijklmnopqrstuvwxyz"

// inferConfig is a small config with the given overrides.
func inferConfig(kv ...any) domains.Config {
	c := domains.Config{
		"nLayers": 2.0, "dModel": 32.0, "nHeads": 4.0, "contextLength": 32.0, "dFFMult": 2.0,
		"batchSize": 2.0, "tokenBudget": 2000.0, "warmupSteps": 2.0,
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// testCheckpoint is a checkpoint of cfg with random weights of scale
// about 0.3 (larger than the training init, so that attention and the
// logits are far from uniform).
func testCheckpoint(t testing.TB, cfg domains.Config, vocab string, seed int64) []byte {
	t.Helper()
	st, err := NewState(cfg, len(vocab)+1, seed, 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	for i := range st.Params {
		st.Params[i] += float32(rng.NormFloat64() * 0.3)
	}
	ck, err := Checkpoint(st.Config, []byte(vocab), st.Params, seed, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func testLM(t testing.TB, cfg domains.Config, seed int64) *LM {
	t.Helper()
	lm, err := LoadLM(testCheckpoint(t, cfg, testVocab, seed))
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

// randTokens draws n token ids in 1..V-1.
func randTokens(lm *LM, n int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(1 + rng.IntN(lm.h.Vocab-1))
	}
	return out
}

// allLogits appends tokens to st and returns the logits of every position.
func allLogits(lm *LM, st *KVState, tokens []int32) []float32 {
	var out []float32
	for len(tokens) > 0 {
		c := min(len(tokens), prefillChunk)
		out = append(out, lm.forward(st, tokens[:c], true)...)
		tokens = tokens[c:]
	}
	return out
}

// trainingLogits runs the training forward pass (batch 1) on tokens
// (at most contextLength; the rest of the window is padded with 0).
func trainingLogits(lm *LM, tokens []int32) []float32 {
	m := newModel(lm.h)
	m.params = lm.m.params
	a := newActs(lm.h, 1)
	for i := range a.tokens {
		a.tokens[i], a.targets[i] = 0, -1
	}
	copy(a.tokens, tokens)
	m.forward(a, false)
	return a.logits[:len(tokens)*lm.h.Vocab]
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func identical(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// eachSIMD runs f with the SIMD kernels on and, where the CPU has them,
// off.
func eachSIMD(t *testing.T, f func(t *testing.T)) {
	modes := []bool{false}
	if haveSIMD {
		modes = append(modes, true)
	}
	old := simdEnabled
	defer func() { simdEnabled = old }()
	for _, on := range modes {
		simdEnabled = on
		t.Run(fmt.Sprintf("simd=%v", on), f)
	}
}

var inferConfigs = []domains.Config{
	inferConfig(),
	inferConfig("normalization", "rmsnorm", "activation", "swiglu", "nHeads", 2.0, "dModel", 48.0, "contextLength", 40.0),
	inferConfig("activation", "relu", "dModel", 20.0, "nHeads", 4.0, "contextLength", 19.0, "nLayers", 3.0),
	inferConfig("contextLength", 100.0, "nLayers", 1.0),
}

func TestLMMatchesTrainingForward(t *testing.T) {
	eachSIMD(t, func(t *testing.T) {
		for ci, cfg := range inferConfigs {
			lm := testLM(t, cfg, int64(ci+1))
			T, V := lm.h.Ctx, lm.h.Vocab
			toks := randTokens(lm, T, uint64(ci))
			ref := trainingLogits(lm, toks)
			// Prefill a part, then step token by token.
			st := lm.NewState()
			split := T / 3
			got := allLogits(lm, st, toks[:split])
			for _, tk := range toks[split:] {
				lg, err := lm.Step(st, tk)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, lg...)
			}
			if len(got) != T*V {
				t.Fatalf("config %d: %d logits, want %d", ci, len(got), T*V)
			}
			d := maxAbsDiff(got, ref)
			t.Logf("config %d: max |incremental - training forward| = %g (bit-identical: %v)", ci, d, identical(got, ref))
			if d > 1e-4 {
				t.Fatalf("config %d: incremental logits differ from the training forward by %g", ci, d)
			}
			// Stronger than the 1e-4 the server needs: the kernels make it
			// exact (see the package's inference notes).
			if !identical(got, ref) {
				t.Fatalf("config %d: incremental logits are within %g of the training forward but not bit-identical", ci, d)
			}
		}
	})
}

func TestLMPrefillChunks(t *testing.T) {
	eachSIMD(t, func(t *testing.T) {
		for ci, cfg := range inferConfigs {
			lm := testLM(t, cfg, int64(ci+10))
			toks := randTokens(lm, lm.h.Ctx, uint64(ci+3))
			one := lm.NewState()
			want, err := lm.Prefill(one, toks)
			if err != nil {
				t.Fatal(err)
			}
			wantState, _ := one.MarshalBinary()
			for _, cuts := range [][]int{{1}, {7, 8}, {16, 17, 20}, {len(toks) - 1}} {
				st := lm.NewState()
				var got []float32
				prev := 0
				for _, c := range append(cuts, len(toks)) {
					if c <= prev || c > len(toks) {
						continue
					}
					if got, err = lm.Prefill(st, toks[prev:c]); err != nil {
						t.Fatal(err)
					}
					prev = c
				}
				if !identical(got, want) {
					t.Fatalf("config %d cuts %v: logits differ from one chunk (max %g)", ci, cuts, maxAbsDiff(got, want))
				}
				if b, _ := st.MarshalBinary(); !bytes.Equal(b, wantState) {
					t.Fatalf("config %d cuts %v: state differs from one chunk", ci, cuts)
				}
			}
		}
	})
}

func TestLMContextWindow(t *testing.T) {
	lm := testLM(t, inferConfig("contextLength", 16.0), 3)
	T := lm.h.Ctx
	toks := randTokens(lm, 3*T+5, 9)
	one := lm.NewState()
	want, err := lm.Prefill(one, toks)
	if err != nil {
		t.Fatal(err)
	}
	step := lm.NewState()
	var got []float32
	for i, tk := range toks {
		if got, err = lm.Step(step, tk); err != nil {
			t.Fatal(err)
		}
		if step.Len() > T {
			t.Fatalf("after %d tokens the state holds %d > %d", i+1, step.Len(), T)
		}
	}
	if !identical(got, want) || one.Len() != step.Len() {
		t.Fatalf("one prefill (len %d) and steps (len %d) disagree", one.Len(), step.Len())
	}
	// The window is the sequence's last Len() tokens, prefilled from 0.
	n := one.Len()
	fresh := lm.NewState()
	ref, _ := lm.Prefill(fresh, toks[len(toks)-n:])
	if !identical(ref, want) {
		t.Fatal("the window's state is not a fresh prefill of its tokens")
	}
	if n != windowAfter(T, 0, len(toks)) {
		t.Fatalf("window %d, windowAfter says %d", n, windowAfter(T, 0, len(toks)))
	}
	// Window lengths: full at T, then T/2 at the next token.
	if w := windowAfter(T, T, 1); w != T/2 {
		t.Fatalf("a full window plus one token keeps %d, want %d", w, T/2)
	}
	if w := windowAfter(T, 0, T); w != T {
		t.Fatalf("windowAfter(T, 0, T) = %d", w)
	}
}

func TestLMEvalLoss(t *testing.T) {
	corpus, err := LoadCorpus(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	// Train through the domain's Evaluate (40 steps) and serve its
	// checkpoint artifact.
	cfg := inferConfig("contextLength", 64.0, "batchSize", 4.0, "tokenBudget", 40*4*64.0)
	res, err := New().Evaluate(context.Background(), cfg, 1, evalOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	lm, err := LoadLM(res.Artifacts["checkpoint.bin"])
	if err != nil {
		t.Fatal(err)
	}
	if info := lm.Info(); info.Steps != 40 || info.Seed != 1 || info.Vocab != string(corpus.Vocab) {
		t.Fatalf("info %+v", info)
	}
	want := res.Metric // valLoss
	// The engine on evalLoss's windows: each window from an empty state.
	split := corpus.Validation
	T, V := lm.h.Ctx, lm.h.Vocab
	segLen := min(evalSegLen, len(split)/evalSegments)
	var sum float64
	var count int
	for k := 0; k < evalSegments; k++ {
		s0 := k * (len(split) - segLen) / (evalSegments - 1)
		for off := 0; off < segLen-1; off += T {
			n := min(T, segLen-1-off)
			toks := make([]int32, n)
			tg := make([]int32, n)
			for i := range toks {
				toks[i] = int32(split[s0+off+i])
				tg[i] = int32(split[s0+off+i+1])
			}
			lg := allLogits(lm, lm.NewState(), toks)
			s, c := crossEntropy(lg, tg, n, V, nil, 1, make([]float64, n))
			sum += s
			count += c
		}
	}
	got := sum / float64(count)
	t.Logf("validation loss: engine %.9f, Evaluate's valLoss %.9f", got, want)
	if math.Abs(got-want) > 1e-6 {
		t.Fatalf("engine loss %v, eval loss %v", got, want)
	}
}

func TestLoadLMRejects(t *testing.T) {
	good := testCheckpoint(t, inferConfig(), testVocab, 1)
	lm, err := LoadLM(good)
	if err != nil {
		t.Fatal(err)
	}
	if info := lm.Info(); info.NumParams != NumParams(info.Config, info.VocabSize) || info.ContextLength != 32 || info.Vocab != testVocab {
		t.Fatalf("info %+v", info)
	}
	if len(lm.Hash()) != 64 {
		t.Fatalf("hash %q", lm.Hash())
	}
	hdrLen := int(binary.LittleEndian.Uint32(good[12:]))
	var hdr map[string]any
	if err := json.Unmarshal(good[16:16+hdrLen], &hdr); err != nil {
		t.Fatal(err)
	}
	rebuild := func(f func(h map[string]any)) []byte {
		h := map[string]any{}
		b, _ := json.Marshal(hdr)
		_ = json.Unmarshal(b, &h)
		f(h)
		nb, _ := json.Marshal(h)
		var out bytes.Buffer
		out.Write(good[:12])
		_ = binary.Write(&out, binary.LittleEndian, uint32(len(nb)))
		out.Write(nb)
		out.Write(good[16+hdrLen:])
		return out.Bytes()
	}
	if _, err := LoadLM(rebuild(func(map[string]any) {})); err != nil {
		t.Fatalf("re-encoded header: %v", err)
	}
	nan := bytes.Clone(good)
	binary.LittleEndian.PutUint32(nan[len(nan)-4:], math.Float32bits(float32(math.NaN())))
	cases := map[string][]byte{
		"empty":       nil,
		"magic":       append([]byte("XXXXXXXX"), good[8:]...),
		"version":     append(append(bytes.Clone(good[:8]), 2, 0, 0, 0), good[12:]...),
		"truncated":   good[:len(good)-1],
		"extra":       append(bytes.Clone(good), 0, 0, 0, 0),
		"nan":         nan,
		"header len":  append(append(bytes.Clone(good[:12]), 0xff, 0xff, 0xff, 0x7f), good[16:]...),
		"no config":   rebuild(func(h map[string]any) { delete(h, "config") }),
		"partial cfg": rebuild(func(h map[string]any) { delete(h["config"].(map[string]any), "activation") }),
		"bad cfg":     rebuild(func(h map[string]any) { h["config"].(map[string]any)["nHeads"] = 3.0 }),
		"other cfg":   rebuild(func(h map[string]any) { h["config"].(map[string]any)["dModel"] = 64.0 }),
		"vocab dup":   rebuild(func(h map[string]any) { h["vocab"] = "aab" }),
		"vocab len":   rebuild(func(h map[string]any) { h["vocab"] = testVocab + "!" }),
		"no vocab":    rebuild(func(h map[string]any) { delete(h, "vocab") }),
		"non-ascii":   rebuild(func(h map[string]any) { h["vocab"] = strings.Replace(testVocab, "z", "é", 1) }),
		"numParams":   rebuild(func(h map[string]any) { h["numParams"] = 5.0 }),
		"tensor name": rebuild(func(h map[string]any) { h["tensors"].([]any)[0].(map[string]any)["name"] = "x" }),
		"tensor off":  rebuild(func(h map[string]any) { h["tensors"].([]any)[1].(map[string]any)["offset"] = 3.0 }),
		"tensors":     rebuild(func(h map[string]any) { h["tensors"] = h["tensors"].([]any)[1:] }),
		"format":      rebuild(func(h map[string]any) { h["format"] = "other" }),
	}
	for name, b := range cases {
		if _, err := LoadLM(b); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s: LoadLM = %v, want ErrCheckpoint", name, err)
		}
	}
}

func TestLMEncodeDecode(t *testing.T) {
	lm := testLM(t, inferConfig(), 1)
	ids := lm.Encode("Mach 2.5\tflow")
	if ids[4] != lm.ids[' '] || ids[8] != 0 || ids[0] != lm.ids['m'] {
		t.Fatalf("encode: %v", ids)
	}
	if got := lm.Decode(ids); got != "mach 2.5\uFFFDflow" {
		t.Fatalf("decode: %q", got)
	}
	if got := lm.Decode([]int32{-1, 1000}); got != "\uFFFD\uFFFD" {
		t.Fatalf("decode out of range: %q", got)
	}
	if _, err := lm.Prefill(lm.NewState(), []int32{int32(lm.h.Vocab)}); err == nil {
		t.Fatal("token out of range accepted")
	}
	other := testLM(t, inferConfig(), 2)
	if _, err := lm.Step(other.NewState(), 1); err == nil {
		t.Fatal("another model's state accepted")
	}
}

func TestKVStateRoundTrip(t *testing.T) {
	eachSIMD(t, func(t *testing.T) {
		for ci, cfg := range inferConfigs[:3] {
			lm := testLM(t, cfg, int64(ci+20))
			toks := randTokens(lm, lm.h.Ctx+lm.h.Ctx/2, uint64(ci))
			split := lm.h.Ctx * 2 / 3
			orig := lm.NewState()
			if _, err := lm.Prefill(orig, toks[:split]); err != nil {
				t.Fatal(err)
			}
			blob, err := orig.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if want := kvHeaderLen + 4*split + 8*lm.h.NLayers*split*lm.h.DModel; len(blob) != want {
				t.Fatalf("blob %d bytes, want %d", len(blob), want)
			}
			imp, err := lm.UnmarshalState(blob)
			if err != nil {
				t.Fatal(err)
			}
			if imp.Len() != split {
				t.Fatalf("imported %d positions, want %d", imp.Len(), split)
			}
			if err := lm.VerifyState(imp, []int{0, split / 2, split - 1}); err != nil {
				t.Fatal(err)
			}
			// Continue both, across a context restart.
			for _, tk := range toks[split:] {
				a, err1 := lm.Step(orig, tk)
				b, err2 := lm.Step(imp, tk)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if !identical(a, b) {
					t.Fatalf("config %d: imported state continues differently", ci)
				}
			}
			// Generation from an imported state equals generation from the
			// original.
			opt := GenOptions{MaxTokens: 20, Temperature: 0.9, Seed: 5, HasSeed: true}
			orig2 := lm.NewState()
			_, _ = lm.Prefill(orig2, toks[:split])
			imp2, _ := lm.UnmarshalState(blob)
			r1, err1 := lm.Generate(context.Background(), orig2, toks[split:split+3], opt, nil)
			r2, err2 := lm.Generate(context.Background(), imp2, toks[split:split+3], opt, nil)
			if err1 != nil || err2 != nil || r1.Text != r2.Text {
				t.Fatalf("generate from imported state: %q vs %q (%v %v)", r1.Text, r2.Text, err1, err2)
			}
			// A flipped bit in a value is caught by VerifyState at its position.
			bad := bytes.Clone(blob)
			off := kvHeaderLen + 4*split + 4*(lm.h.DModel*(split-1)) // layer 0 key, last position
			bad[off] ^= 1
			imp3, err := lm.UnmarshalState(bad)
			if err != nil {
				t.Fatal(err)
			}
			if err := lm.VerifyState(imp3, []int{split - 1}); !errors.Is(err, ErrStateMismatch) {
				t.Fatalf("VerifyState of a corrupted state = %v", err)
			}
		}
	})
}

func TestUnmarshalStateRejects(t *testing.T) {
	lm := testLM(t, inferConfig(), 1)
	st := lm.NewState()
	_, _ = lm.Prefill(st, randTokens(lm, 10, 1))
	good, _ := st.MarshalBinary()
	other := testLM(t, inferConfig(), 2)
	if _, err := other.UnmarshalState(good); err == nil || !strings.Contains(err.Error(), "model") {
		t.Fatalf("another model's state: %v", err)
	}
	empty, _ := lm.NewState().MarshalBinary()
	if s, err := lm.UnmarshalState(empty); err != nil || s.Len() != 0 {
		t.Fatalf("empty state: %v", err)
	}
	mod := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	nan := bytes.Clone(good)
	binary.LittleEndian.PutUint32(nan[len(nan)-4:], math.Float32bits(float32(math.Inf(1))))
	cases := map[string][]byte{
		"short":     good[:20],
		"magic":     append([]byte("HSMLKVSX"), good[8:]...),
		"version":   mod(8, 2),
		"layers":    mod(44, 3),
		"dmodel":    mod(48, 16),
		"ctx":       mod(52, 64),
		"count big": mod(56, 33),
		"count":     mod(56, 9),
		"token":     mod(60, 200),
		"truncated": good[:len(good)-4],
		"extra":     append(bytes.Clone(good), 0),
		"inf":       nan,
	}
	for name, b := range cases {
		if _, err := lm.UnmarshalState(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPrefixHash(t *testing.T) {
	a := PrefixHash("m1", []int32{1, 2, 3})
	if len(a) != 64 || a != PrefixHash("m1", []int32{1, 2, 3}) {
		t.Fatal("not a stable hex SHA-256")
	}
	for _, b := range []string{PrefixHash("m2", []int32{1, 2, 3}), PrefixHash("m1", []int32{1, 2}), PrefixHash("m1", []int32{1, 2, 4}), PrefixHash("m1", nil)} {
		if b == a {
			t.Fatal("collision")
		}
	}
	long := make([]int32, 600)
	if PrefixHash("m", long) == PrefixHash("m", long[:599]) {
		t.Fatal("long prefixes collide")
	}
}

func collect(lm *LM, st *KVState, prompt []int32, opt GenOptions) (GenResult, string, error) {
	var pieces strings.Builder
	res, err := lm.Generate(context.Background(), st, prompt, opt, func(p string) error {
		pieces.WriteString(p)
		return nil
	})
	return res, pieces.String(), err
}

func TestGenerateGreedyIsArgmax(t *testing.T) {
	lm := testLM(t, inferConfig("contextLength", 16.0), 4)
	prompt := lm.Encode("the flow")
	res, text, err := collect(lm, nil, prompt, GenOptions{MaxTokens: 40})
	if err != nil {
		t.Fatal(err)
	}
	if res.FinishReason != "length" || res.CompletionTokens != 40 || text != res.Text || !res.Deterministic || res.Seed != 0 {
		t.Fatalf("result %+v, pieces %q", res, text)
	}
	st := lm.NewState()
	lg, _ := lm.Prefill(st, prompt)
	var want []int32
	for i := 0; i < 40; i++ {
		best := 0
		for j, v := range lg {
			if v > lg[best] {
				best = j
			}
		}
		want = append(want, int32(best))
		lg, _ = lm.Step(st, int32(best))
	}
	if w := lm.Decode(want); w != res.Text {
		t.Fatalf("greedy %q, argmax of steps %q", res.Text, w)
	}
	if res.PromptTokens != len(prompt) {
		t.Fatalf("prompt tokens %d", res.PromptTokens)
	}
}

func TestGenerateSeeds(t *testing.T) {
	lm := testLM(t, inferConfig(), 5)
	prompt := lm.Encode("pressure")
	for _, topP := range []float64{0, 0.9} {
		opt := GenOptions{MaxTokens: 50, Temperature: 1, TopP: topP, Seed: 42, HasSeed: true}
		a, ta, err := collect(lm, nil, prompt, opt)
		if err != nil {
			t.Fatal(err)
		}
		b, _, _ := collect(lm, nil, prompt, opt)
		if a.Text != b.Text || ta != a.Text || !a.Deterministic || a.Seed != 42 {
			t.Fatalf("top_p %v: same seed gave %q and %q", topP, a.Text, b.Text)
		}
		opt.Seed = 43
		c, _, _ := collect(lm, nil, prompt, opt)
		if c.Text == a.Text {
			t.Fatalf("top_p %v: seeds 42 and 43 gave the same 50 tokens", topP)
		}
	}
	// No seed: one is drawn, reported, and reproduces the text.
	r, _, err := collect(lm, nil, prompt, GenOptions{MaxTokens: 30, Temperature: 0.8})
	if err != nil || r.Deterministic {
		t.Fatalf("unseeded: %+v %v", r, err)
	}
	again, _, _ := collect(lm, nil, prompt, GenOptions{MaxTokens: 30, Temperature: 0.8, Seed: r.Seed, HasSeed: true})
	if again.Text != r.Text {
		t.Fatalf("reported seed %d does not reproduce %q (got %q)", r.Seed, r.Text, again.Text)
	}
	// A tiny top_p is greedy.
	g, _, _ := collect(lm, nil, prompt, GenOptions{MaxTokens: 30})
	tp, _, _ := collect(lm, nil, prompt, GenOptions{MaxTokens: 30, Temperature: 1, TopP: 1e-9, Seed: 1, HasSeed: true})
	if g.Text != tp.Text {
		t.Fatalf("top_p 1e-9 %q, greedy %q", tp.Text, g.Text)
	}
}

func TestGenerateStop(t *testing.T) {
	lm := testLM(t, inferConfig(), 6)
	prompt := lm.Encode("wing")
	opt := GenOptions{MaxTokens: 60, Temperature: 1, Seed: 3, HasSeed: true}
	full, _, err := collect(lm, nil, prompt, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Text) < 30 {
		t.Fatalf("completion %q too short", full.Text)
	}
	for _, at := range []int{0, 5, 20, 27} {
		stop := full.Text[at : at+3]
		idx := strings.Index(full.Text, stop)
		o := opt
		o.Stop = []string{"\x00never", stop}
		var pieces []string
		res, err := lm.Generate(context.Background(), nil, prompt, o, func(p string) error {
			pieces = append(pieces, p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.FinishReason != "stop" || res.Text != full.Text[:idx] || strings.Join(pieces, "") != res.Text {
			t.Fatalf("stop %q: %+v pieces %q, want text %q", stop, res, pieces, full.Text[:idx])
		}
		if res.CompletionTokens != idx+len(stop) {
			t.Fatalf("stop %q: %d completion tokens, want %d", stop, res.CompletionTokens, idx+len(stop))
		}
		for _, p := range pieces {
			if strings.Contains(p, stop) {
				t.Fatalf("piece %q holds the stop string", p)
			}
		}
	}
	// A stop that never completes: everything is emitted at the end,
	// including a held-back partial match.
	last := full.Text[len(full.Text)-2:]
	o := opt
	o.Stop = []string{last + "\x00"}
	res, text, _ := collect(lm, nil, prompt, o)
	if res.FinishReason != "length" || res.Text != full.Text || text != full.Text {
		t.Fatalf("partial stop at the end: %+v %q", res, text)
	}
}

func TestGenerateEdges(t *testing.T) {
	lm := testLM(t, inferConfig(), 7)
	// Empty prompt and empty state: starts from '\n'.
	res, text, err := collect(lm, nil, nil, GenOptions{MaxTokens: 10})
	if err != nil || res.CompletionTokens != 10 || text != res.Text || res.PromptTokens != 1 {
		t.Fatalf("empty prompt: %+v %v", res, err)
	}
	nl, _, _ := collect(lm, nil, []int32{lm.nl}, GenOptions{MaxTokens: 10})
	if nl.Text != res.Text {
		t.Fatalf("empty prompt %q, '\\n' prompt %q", res.Text, nl.Text)
	}
	// Empty prompt on a state continues the state.
	prompt := lm.Encode("shock wave")
	st := lm.NewState()
	_, _ = lm.Prefill(st, prompt)
	cont, _, err := collect(lm, st, nil, GenOptions{MaxTokens: 10})
	ref, _, _ := collect(lm, nil, prompt, GenOptions{MaxTokens: 10})
	if err != nil || cont.Text != ref.Text || cont.PromptTokens != len(prompt) {
		t.Fatalf("continue state %q, fresh %q (%v)", cont.Text, ref.Text, err)
	}
	// Default max tokens, and a run through several context restarts.
	def, _, err := collect(lm, nil, prompt, GenOptions{})
	if err != nil || def.CompletionTokens != DefaultMaxTokens {
		t.Fatalf("default: %+v %v", def, err)
	}
	// Bad options.
	for _, o := range []GenOptions{{MaxTokens: -1}, {MaxTokens: MaxGenTokens + 1}, {Temperature: -1}, {Temperature: math.NaN()},
		{TopP: 1.5}, {TopP: math.NaN()}, {Stop: []string{"a", "b", "c", "d", "e"}}, {Stop: []string{strings.Repeat("x", MaxStopBytes+1)}}} {
		if _, err := lm.Generate(context.Background(), nil, prompt, o, nil); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	// Cancellation between tokens, and emit errors.
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = lm.Generate(ctx, nil, prompt, GenOptions{MaxTokens: 100}, func(string) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Fatalf("cancel: %v after %d pieces", err, n)
	}
	boom := errors.New("client gone")
	if _, err := lm.Generate(context.Background(), nil, prompt, GenOptions{MaxTokens: 5}, func(string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("emit error: %v", err)
	}
}

func TestGenerateConcurrent(t *testing.T) {
	lm := testLM(t, inferConfig("contextLength", 64.0), 8)
	// The long prompt takes the parallel paths (gemm over >= serialRows
	// rows, attention heads in parallel).
	prompts := []string{"the boundary layer", "supersonic", "heat transfer in", "a",
		"an experimental study of the laminar boundary layer on a flat plate at mach 3"}
	want := make([]string, len(prompts))
	for i, p := range prompts {
		r, _, err := collect(lm, nil, lm.Encode(p), GenOptions{MaxTokens: 40, Temperature: 0.7, Seed: int64(i), HasSeed: true})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = r.Text
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 3; k++ {
				i := (g + k) % len(prompts)
				r, _, err := collect(lm, nil, lm.Encode(prompts[i]), GenOptions{MaxTokens: 40, Temperature: 0.7, Seed: int64(i), HasSeed: true})
				if err != nil {
					errs <- err
					return
				}
				if r.Text != want[i] {
					errs <- fmt.Errorf("prompt %d: concurrent %q, alone %q", i, r.Text, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
