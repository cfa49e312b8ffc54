// Package ml is the "ml" research domain: train a small GPT-style
// character-level transformer on the Cranfield aerodynamics abstracts with a
// pure-Go (float32, multi-core, deterministic) trainer and report the
// validation loss in nats per character.
//
// Determinism: for a given normalised config, seed and data file the
// validation and test losses are bit-identical across runs, GOMAXPROCS
// settings and goroutine schedules. The only non-deterministic path is the
// optional wall-clock cap (EvalOptions.BudgetSeconds): when it stops
// training early the result has values["truncated"] = 1.
package ml

import (
	"context"
	"fmt"
	"os"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Domain implements domains.Domain for character-level language modelling.
type Domain struct{}

// New returns the ml domain.
func New() *Domain { return &Domain{} }

var _ domains.Domain = (*Domain)(nil)

// Name implements domains.Domain.
func (*Domain) Name() string { return "ml" }

// Metric implements domains.Domain.
func (*Domain) Metric() domains.Metric {
	return domains.Metric{Name: "val_loss", Direction: domains.Minimize, Unit: "nats/char"}
}

// maxActBytes bounds the activation memory a config may need.
const maxActBytes = 4 << 30

var space = domains.Space{
	{Name: "nLayers", Kind: domains.Int, Min: 1, Max: 8, Help: "number of transformer blocks"},
	{Name: "dModel", Kind: domains.Int, Min: 16, Max: 256, Help: "residual stream width; must be divisible by nHeads"},
	{Name: "nHeads", Kind: domains.Int, Min: 1, Max: 8, Help: "attention heads per block (head size = dModel/nHeads)"},
	{Name: "contextLength", Kind: domains.Int, Min: 16, Max: 256, Help: "characters of context per training sequence (also the attention window)"},
	{Name: "dFFMult", Kind: domains.Int, Min: 1, Max: 8, Help: "MLP hidden width = dFFMult*dModel (2/3 of that for swiglu)"},
	{Name: "activation", Kind: domains.Choice, Choices: []string{actReLU, actGELU, actSwiGLU}, Help: "MLP nonlinearity"},
	{Name: "normalization", Kind: domains.Choice, Choices: []string{normLayer, normRMS}, Help: "pre-norm type used before attention, MLP and the output layer"},
	{Name: "initType", Kind: domains.Choice, Choices: []string{"normal", "xavier", "kaiming"}, Help: "weight init: normal(0.02, GPT-2 residual scaling), xavier or kaiming normal"},
	{Name: "learningRate", Kind: domains.Float, Min: 1e-5, Max: 1e-1, Log: true, Help: "peak AdamW learning rate"},
	{Name: "minLRRatio", Kind: domains.Float, Min: 0, Max: 1, Help: "final learning rate as a fraction of the peak (cosine decay)"},
	{Name: "warmupSteps", Kind: domains.Int, Min: 0, Max: 2000, Help: "linear warmup steps before cosine decay"},
	{Name: "weightDecay", Kind: domains.Float, Min: 0, Max: 0.5, Help: "decoupled AdamW weight decay on matrices and embeddings"},
	{Name: "gradientClipNorm", Kind: domains.Float, Min: 0, Max: 10, Help: "clip the global gradient L2 norm to this value (0 = off)"},
	{Name: "batchSize", Kind: domains.Int, Min: 1, Max: 128, Help: "sequences per optimizer step"},
	{Name: "tokenBudget", Kind: domains.Int, Min: 1000, Max: 50_000_000, Log: true, Help: "training characters; steps = tokenBudget/(batchSize*contextLength), at least 1"},
}

// Space implements domains.Domain.
func (*Domain) Space() domains.Space { return append(domains.Space(nil), space...) }

// Baseline implements domains.Domain: a 2-layer, 64-wide model (about 111k
// parameters) trained on 700k characters (683 steps of 16×64), which takes
// about 28 s on an otherwise idle 2-core machine with the scalar Go kernels
// (AMD EPYC, ~26k chars/s, ~17 GFLOP/s), several times less with the
// AVX2/AVX-512 kernels (see BENCHMARKS.md), and reaches val_loss 1.6465
// (seed 1).
func (*Domain) Baseline() domains.Config {
	return domains.Config{
		"nLayers":          2.0,
		"dModel":           64.0,
		"nHeads":           4.0,
		"contextLength":    64.0,
		"dFFMult":          4.0,
		"activation":       actGELU,
		"normalization":    normLayer,
		"initType":         "normal",
		"learningRate":     1e-2,
		"minLRRatio":       0.1,
		"warmupSteps":      20.0,
		"weightDecay":      0.1,
		"gradientClipNorm": 1.0,
		"batchSize":        16.0,
		"tokenBudget":      700_000.0,
	}
}

// Validate implements domains.Domain.
func (d *Domain) Validate(cfg domains.Config) (domains.Config, error) {
	out, err := d.Space().Normalize(cfg, d.Baseline())
	if err != nil {
		return nil, err
	}
	dm, nh := out.Int("dModel"), out.Int("nHeads")
	if dm%nh != 0 {
		return nil, &domains.FieldError{Field: "dModel", Message: fmt.Sprintf("%d is not divisible by nHeads=%d", dm, nh)}
	}
	h := hyperFrom(out, 64)
	if b := actBytes(h, h.Batch); b > maxActBytes {
		return nil, &domains.FieldError{Field: "batchSize", Message: fmt.Sprintf("needs about %.1f GiB of activations (limit %d GiB); reduce batchSize, contextLength, dModel or nLayers", b/(1<<30), maxActBytes>>30)}
	}
	return out, nil
}

// Evaluate implements domains.Domain: it trains from scratch and reports
// the validation loss (Metric) and test loss (TestMetric).
func (d *Domain) Evaluate(ctx context.Context, cfg domains.Config, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	ncfg, err := d.Validate(cfg)
	if err != nil {
		return domains.Result{}, err
	}
	dir := opts.DataDir
	if dir == "" {
		dir = os.Getenv("HYPERSPACE_DATA_DIR")
	}
	if dir == "" {
		return domains.Result{}, fmt.Errorf("ml: no data directory: set EvalOptions.DataDir or HYPERSPACE_DATA_DIR (expects cranfield/cran.all.1400 under it)")
	}
	corpus, err := LoadCorpus(dir)
	if err != nil {
		return domains.Result{}, err
	}
	return run(ctx, corpus, ncfg, seed, opts, nil)
}

// Describe implements domains.Domain.
func (d *Domain) Describe() string {
	s := `Domain "ml": character-level language modelling.

Task: train a small GPT-style decoder-only transformer from scratch on the
Cranfield collection (1,398 aerodynamics abstracts, about 1.4 MB of
lowercased, whitespace-normalised text, 52 distinct characters). Documents
are split in file order: first 80% train, next 10% validation, last 10% test.

Metric: val_loss, the mean cross-entropy in nats per character on a fixed
set of validation characters (32 evenly spaced 512-character segments, each
predicted left to right in windows of contextLength). Lower is better.
ln(52) = 3.95 is chance; the baseline reaches 1.647. Also reported:
valBpb (bits per character), trainLoss, testLoss, tokensPerSec, gflops,
params, steps, durationSec.

Model: token + learned position embeddings; nLayers pre-norm blocks
(norm -> causal multi-head self-attention -> residual; norm -> MLP ->
residual); final norm; linear output layer. Training: AdamW (beta1 0.9,
beta2 0.95, eps 1e-8), linear warmup for warmupSteps then cosine decay to
minLRRatio*learningRate, optional global gradient-norm clipping, random
contextLength windows from the training text, batchSize per step,
steps = tokenBudget / (batchSize*contextLength).

Budget: cost is about 6 * params * tokenBudget floating point operations
(plus attention, which grows with contextLength). The baseline (about 0.11M
parameters, 700k characters) takes about 30 s on 2 CPU cores with the
portable kernels, about 10 s on x86-64 with AVX2/AVX-512; time scales
linearly with tokenBudget and roughly with params. Bigger models need more
tokens to pay off; within a fixed time budget, balance model size against
tokenBudget. Evaluation is deterministic for a given config and seed. If the
caller imposes a wall-clock budget, training stops when it is exceeded and
the result is marked truncated=1 (the only non-deterministic outcome).

Parameters (name, type, range, meaning):
`
	for _, p := range space {
		switch p.Kind {
		case domains.Choice:
			s += fmt.Sprintf("  %s (choice: %v) - %s\n", p.Name, p.Choices, p.Help)
		default:
			lg := ""
			if p.Log {
				lg = ", log scale"
			}
			s += fmt.Sprintf("  %s (%s, %g..%g%s) - %s\n", p.Name, p.Kind, p.Min, p.Max, lg, p.Help)
		}
	}
	s += "\nConstraints: dModel % nHeads == 0; activation memory under 4 GiB.\nBaseline:"
	b := d.Baseline()
	for _, p := range space {
		s += fmt.Sprintf(" %s=%v", p.Name, b[p.Name])
	}
	return s + "\n"
}
