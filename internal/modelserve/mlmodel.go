package modelserve

import (
	"context"
	"slices"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
)

// PrefixStore keeps exported KV states of prompt prefixes (the L2 cache:
// erasure-coded across peers, or a local store).
type PrefixStore interface {
	// Get returns the state stored for (model hash, prefix hash).
	Get(ctx context.Context, modelHash, prefixHash string) ([]byte, bool)
	// Put stores a state (in the background; errors are the store's to log).
	Put(ctx context.Context, modelHash, prefixHash string, state []byte)
}

// PrefixBlock is the granularity of stored prefixes, in tokens: a prompt's
// prefix is looked up and stored at multiples of it, so prompts that share
// a long beginning (a system prompt, a document) share its state.
const PrefixBlock = 32

// MaxCompletionTokens bounds one request's completion.
const MaxCompletionTokens = 1024

// MLModel serves an ML-domain checkpoint with the pure-Go transformer
// (domains/ml's LM: KV cache, temperature, top_p, seed, stop).
type MLModel struct {
	name     string
	created  time.Time
	lm       *ml.LM
	prefixes PrefixStore
}

// LoadML returns a Loader for ML checkpoints; prefixes (nil: none) is the
// KV-prefix store the models use.
func LoadML(prefixes PrefixStore) Loader {
	return func(name string, created time.Time, ckpt []byte) (inference.TextModel, error) {
		lm, err := ml.LoadLM(ckpt)
		if err != nil {
			return nil, err
		}
		return &MLModel{name: name, created: created, lm: lm, prefixes: prefixes}, nil
	}
}

// LM is the model's engine.
func (m *MLModel) LM() *ml.LM { return m.lm }

// Info describes the model.
func (m *MLModel) Info() inference.ModelInfo {
	return inference.ModelInfo{ID: m.name, Kind: inference.KindChat, OwnedBy: "hyperspace", Created: m.created, Hash: m.lm.Hash()}
}

// MaxTokens is the most completion tokens a request may ask for.
func (m *MLModel) MaxTokens() int { return MaxCompletionTokens }

// Generate continues prompt. For chat the model's document separator (a
// newline) ends the answer; that is the caller's stop list's business.
func (m *MLModel) Generate(ctx context.Context, prompt string, p inference.GenParams, emit func(string) error) (inference.GenOutput, error) {
	ids := m.lm.Encode(prompt)
	st := m.lm.NewState()
	rest := ids
	prefixTokens := 0
	ctxLen := m.lm.Info().ContextLength
	hash := m.lm.Hash()
	if m.prefixes != nil && len(ids) > PrefixBlock && len(ids) < ctxLen {
		boundary := (len(ids) - 1) / PrefixBlock * PrefixBlock
		for l := boundary; l >= PrefixBlock && prefixTokens == 0; l -= PrefixBlock {
			if blob, ok := m.prefixes.Get(ctx, hash, ml.PrefixHash(hash, ids[:l])); ok {
				// A state from the network is believed only after spot checks:
				// three positions recomputed bit for bit from its tokens.
				if s2, err := m.lm.UnmarshalState(blob); err == nil && s2.Len() == l && slices.Equal(s2.Tokens(), ids[:l]) &&
					m.lm.VerifyState(s2, []int{0, l / 2, l - 1}) == nil {
					st, rest, prefixTokens = s2, ids[l:], l
				}
			}
		}
		if prefixTokens == 0 {
			// Prefill the block-aligned prefix on its own so its state can
			// be stored for the next prompt that starts with it.
			if _, err := m.lm.Prefill(st, ids[:boundary]); err != nil {
				return inference.GenOutput{}, err
			}
			if blob, err := st.MarshalBinary(); err == nil {
				m.prefixes.Put(context.WithoutCancel(ctx), hash, ml.PrefixHash(hash, ids[:boundary]), blob)
			}
			rest = ids[boundary:]
		}
	}
	opt := ml.GenOptions{MaxTokens: p.MaxTokens, Temperature: p.Temperature, TopP: p.TopP, Stop: p.Stop}
	if p.Seed != nil {
		opt.Seed, opt.HasSeed = *p.Seed, true
	}
	res, err := m.lm.Generate(ctx, st, rest, opt, emit)
	if err != nil {
		return inference.GenOutput{}, err
	}
	return inference.GenOutput{Text: res.Text, FinishReason: res.FinishReason, PromptTokens: len(ids), CompletionTokens: res.CompletionTokens,
		Deterministic: res.Deterministic, PrefixTokens: prefixTokens}, nil
}
