package ml

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Generation limits.
const (
	// DefaultMaxTokens is the completion length when GenOptions.MaxTokens
	// is 0.
	DefaultMaxTokens = 128
	// MaxGenTokens bounds GenOptions.MaxTokens.
	MaxGenTokens = 1 << 16
	// MaxStops bounds the number of stop strings, MaxStopBytes the length
	// of each.
	MaxStops     = 4
	MaxStopBytes = 256
	// MaxTemperature bounds GenOptions.Temperature.
	MaxTemperature = 100
)

// streamSample is the PCG stream of the token sampler.
const streamSample = 0x73616d70

// GenOptions are the sampling parameters of Generate.
type GenOptions struct {
	// MaxTokens is the most completion tokens (0: DefaultMaxTokens).
	MaxTokens int
	// Temperature divides the logits before the softmax; 0 is greedy
	// decoding (argmax, ties to the lowest id).
	Temperature float64
	// TopP keeps the smallest set of most likely tokens (ties to the lower
	// id) whose probability reaches TopP (nucleus sampling); 0 or 1 is off.
	TopP float64
	// Seed seeds the sampler when HasSeed; without one and with
	// Temperature > 0 a seed is drawn from crypto/rand and reported.
	Seed    int64
	HasSeed bool
	// Stop ends the completion before the first occurrence of any of
	// these strings (at most MaxStops; empty strings are ignored). Text
	// that might be the beginning of a stop string is held back until it
	// is known not to be, so no emitted piece ever contains part of a stop.
	Stop []string
}

// GenResult describes a completion.
type GenResult struct {
	// Text is the completion: the concatenation of the emitted pieces.
	Text string
	// FinishReason is "stop" (a stop string was produced) or "length"
	// (MaxTokens reached).
	FinishReason string
	// PromptTokens is the number of context tokens the completion
	// continued: the state's positions before the call plus the prompt
	// (plus the '\n' start token for an empty context). After a context
	// restart the model saw fewer (see Prefill).
	PromptTokens int
	// CompletionTokens is the number of tokens sampled.
	CompletionTokens int
	// Seed is the sampler's seed (given or drawn; 0 for greedy decoding).
	Seed int64
	// Deterministic is true when the same checkpoint, context and options
	// give the same completion on every run and machine: greedy decoding
	// or a given seed.
	Deterministic bool
}

// Generate continues the context held in st (nil: an empty state) with
// prompt and then samples up to opt.MaxTokens tokens, calling emit (when
// set) with each new piece of text as soon as it is known not to be part
// of a stop string. An empty context (empty st and prompt) starts from
// the '\n' document separator, so the model begins a new abstract; an
// empty prompt on a non-empty st continues st (its last token is fed
// again to recover its logits, with the same bits). ctx is checked before
// every token. On return st holds the context and every sampled token but
// the last, which is never fed back.
//
// Sampling is deterministic: the logits come from the trainer's kernels
// (bit-identical on every machine), the probabilities are computed with
// the package's expf in a fixed order, and the sampler is a PCG seeded
// from the seed.
func (lm *LM) Generate(ctx context.Context, st *KVState, prompt []int32, opt GenOptions, emit func(piece string) error) (GenResult, error) {
	if err := opt.check(); err != nil {
		return GenResult{}, err
	}
	maxTok := opt.MaxTokens
	if maxTok == 0 {
		maxTok = DefaultMaxTokens
	}
	if st == nil {
		st = lm.NewState()
	}
	if err := lm.checkState(st); err != nil {
		return GenResult{}, err
	}
	res := GenResult{Deterministic: opt.Temperature == 0 || opt.HasSeed}
	res.PromptTokens = st.Len() + len(prompt)
	if len(prompt) == 0 {
		if n := st.Len(); n > 0 {
			prompt = []int32{st.tokens[n-1]}
			st.tokens = st.tokens[:n-1]
		} else {
			prompt = []int32{lm.nl}
			res.PromptTokens = 1
		}
	}
	if err := ctx.Err(); err != nil {
		return GenResult{}, err
	}
	logits, err := lm.Prefill(st, prompt)
	if err != nil {
		return GenResult{}, err
	}
	var smp *sampler
	if opt.Temperature > 0 {
		if !opt.HasSeed {
			var b [8]byte
			if _, err := crand.Read(b[:]); err != nil {
				return GenResult{}, fmt.Errorf("ml: drawing a seed: %w", err)
			}
			opt.Seed = int64(binary.LittleEndian.Uint64(b[:]))
		}
		res.Seed = opt.Seed
		smp = newSampler(lm.h.Vocab, opt)
	}
	stops := make([]string, 0, len(opt.Stop))
	for _, s := range opt.Stop {
		if s != "" {
			stops = append(stops, s)
		}
	}
	var text strings.Builder
	emitted := 0 // bytes of text already emitted
	flush := func(upto int) error {
		if upto <= emitted {
			return nil
		}
		piece := text.String()[emitted:upto]
		emitted = upto
		if emit != nil {
			return emit(piece)
		}
		return nil
	}
	res.FinishReason = "length"
	for i := 0; i < maxTok; i++ {
		if err := ctx.Err(); err != nil {
			return GenResult{}, err
		}
		var tok int32
		if smp == nil {
			tok = argmax(logits)
		} else {
			tok = smp.sample(logits)
		}
		res.CompletionTokens++
		text.WriteString(lm.piece(tok))
		s := text.String()
		if at, ok := findStop(s, emitted, stops); ok {
			if err := flush(at); err != nil {
				return GenResult{}, err
			}
			res.FinishReason = "stop"
			break
		}
		if err := flush(len(s) - heldBack(s[emitted:], stops)); err != nil {
			return GenResult{}, err
		}
		if i+1 < maxTok {
			if logits, err = lm.Step(st, tok); err != nil {
				return GenResult{}, err
			}
		}
	}
	if res.FinishReason == "length" {
		if err := flush(text.Len()); err != nil {
			return GenResult{}, err
		}
	}
	res.Text = text.String()[:emitted]
	return res, nil
}

func (o *GenOptions) check() error {
	switch {
	case o.MaxTokens < 0 || o.MaxTokens > MaxGenTokens:
		return fmt.Errorf("ml: max tokens %d out of range 0..%d", o.MaxTokens, MaxGenTokens)
	case !(o.Temperature >= 0 && o.Temperature <= MaxTemperature):
		return fmt.Errorf("ml: temperature %v out of range 0..%d", o.Temperature, MaxTemperature)
	case !(o.TopP >= 0 && o.TopP <= 1):
		return fmt.Errorf("ml: top_p %v out of range 0..1", o.TopP)
	case len(o.Stop) > MaxStops:
		return fmt.Errorf("ml: %d stop strings, at most %d", len(o.Stop), MaxStops)
	}
	for _, s := range o.Stop {
		if len(s) > MaxStopBytes {
			return fmt.Errorf("ml: stop string of %d bytes, at most %d", len(s), MaxStopBytes)
		}
	}
	return nil
}

// findStop returns the earliest offset >= from at which a stop string
// occurs in s.
func findStop(s string, from int, stops []string) (int, bool) {
	best := -1
	for _, st := range stops {
		if i := strings.Index(s[from:], st); i >= 0 && (best < 0 || from+i < best) {
			best = from + i
		}
	}
	return best, best >= 0
}

// heldBack is the length of the longest suffix of s that is a proper
// prefix of a stop string (text that a later token may turn into a stop).
func heldBack(s string, stops []string) int {
	hold := 0
	for _, st := range stops {
		for k := min(len(st)-1, len(s)); k > hold; k-- {
			if strings.HasSuffix(s, st[:k]) {
				hold = k
				break
			}
		}
	}
	return hold
}

// argmax is the index of the largest logit, ties to the lowest index (NaN
// never wins).
func argmax(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// sampler draws tokens from softmax(logits/T), optionally restricted to
// the top-p nucleus. Its buffers are per request.
type sampler struct {
	rng   *rand.Rand
	inv   float32 // 1/T
	topP  float64
	p     []float64
	order []int32
}

func newSampler(vocab int, opt GenOptions) *sampler {
	s := &sampler{
		rng:  rand.New(rand.NewPCG(uint64(opt.Seed), streamSample)),
		inv:  float32(1 / opt.Temperature),
		topP: opt.TopP,
		p:    make([]float64, vocab),
	}
	if s.topP <= 0 || s.topP >= 1 {
		s.topP = 0
	} else {
		s.order = make([]int32, vocab)
	}
	return s
}

// sample draws one token. Weights are expf((l_i - max)·(1/T)) in float32,
// summed in float64 in id order (or in nucleus order); one Float64 draw
// per token picks the first token whose running sum exceeds u·total.
func (s *sampler) sample(logits []float32) int32 {
	mx := logits[argmax(logits)]
	var z float64
	for i, l := range logits {
		w := float64(expf(float32(float32(l-mx) * s.inv)))
		if w != w { // a NaN logit never gets drawn
			w = 0
		}
		s.p[i] = w
		z += w
	}
	if s.topP == 0 {
		u := s.rng.Float64() * z
		var c float64
		for i, w := range s.p {
			c += w
			if u < c {
				return int32(i)
			}
		}
		return argmax(logits)
	}
	for i := range s.order {
		s.order[i] = int32(i)
	}
	slices.SortFunc(s.order, func(a, b int32) int {
		switch {
		case s.p[a] > s.p[b]:
			return -1
		case s.p[a] < s.p[b]:
			return 1
		}
		return int(a - b)
	})
	// The nucleus: the shortest prefix of the order whose mass reaches
	// topP of the total.
	var c float64
	k := len(s.order)
	for i, id := range s.order {
		c += s.p[id]
		if c >= s.topP*z {
			k = i + 1
			break
		}
	}
	var kz float64
	for _, id := range s.order[:k] {
		kz += s.p[id]
	}
	u := s.rng.Float64() * kz
	c = 0
	for _, id := range s.order[:k] {
		c += s.p[id]
		if u < c {
			return id
		}
	}
	return s.order[0]
}
