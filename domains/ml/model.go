package ml

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// hyper is a normalised config in typed form.
type hyper struct {
	NLayers, DModel, NHeads, Ctx int
	DFFMult                      int
	Activation, Norm, Init       string
	LR, MinLRRatio, WD, Clip     float64
	Warmup, Batch                int
	TokenBudget                  int64
	Vocab                        int
}

func hyperFrom(cfg domains.Config, vocab int) hyper {
	return hyper{
		NLayers:     cfg.Int("nLayers"),
		DModel:      cfg.Int("dModel"),
		NHeads:      cfg.Int("nHeads"),
		Ctx:         cfg.Int("contextLength"),
		DFFMult:     cfg.Int("dFFMult"),
		Activation:  cfg.String("activation"),
		Norm:        cfg.String("normalization"),
		Init:        cfg.String("initType"),
		LR:          cfg.Float("learningRate"),
		MinLRRatio:  cfg.Float("minLRRatio"),
		WD:          cfg.Float("weightDecay"),
		Clip:        cfg.Float("gradientClipNorm"),
		Warmup:      cfg.Int("warmupSteps"),
		Batch:       cfg.Int("batchSize"),
		TokenBudget: int64(math.Round(cfg.Float("tokenBudget"))),
		Vocab:       vocab,
	}
}

// ffHidden is the MLP hidden width: dFFMult·dModel for relu/gelu; for
// swiglu 2/3 of that (rounded up to a multiple of 4), so that the three
// swiglu matrices hold about as many weights as the two of a plain MLP.
func (h hyper) ffHidden() int {
	if h.Activation == actSwiGLU {
		return (2*h.DFFMult*h.DModel/3 + 3) / 4 * 4
	}
	return h.DFFMult * h.DModel
}

// ffIn is the width of the first MLP projection's output.
func (h hyper) ffIn() int {
	if h.Activation == actSwiGLU {
		return 2 * h.ffHidden()
	}
	return h.ffHidden()
}

// tensor is one named parameter inside the flat parameter vector.
type tensor struct {
	Name   string `json:"name"`
	Off    int    `json:"offset"`
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
	decay  bool   // AdamW weight decay applies (2-D weights)
	fanIn  int    // for xavier/kaiming; 0 = embedding
	fanOut int
	ones   bool // norm gain: initialised to 1
	resid  bool // residual output projection (GPT-2 scaled init)
}

type layerParams struct {
	n1g, n1b, wqkv, bqkv, wo, bo, n2g, n2b, w1, b1, w2, b2 tensor
}

// model holds the parameters, their gradients and AdamW state.
type model struct {
	h       hyper
	tensors []tensor
	wte     tensor
	wpe     tensor
	layers  []layerParams
	nfg     tensor
	nfb     tensor
	wout    tensor
	bout    tensor
	params  []float32
	grads   []float32
	m, v    []float32
	hasBias bool // norms have a bias (layernorm)
}

// newModel lays out h's tensors and allocates zeroed parameters,
// gradients and AdamW moments.
func newModel(h hyper) *model {
	m, n := newLayout(h)
	m.params = make([]float32, n)
	m.grads = make([]float32, n)
	m.m = make([]float32, n)
	m.v = make([]float32, n)
	return m
}

// newLayout is newModel without the parameter, gradient and moment
// vectors: the tensor layout of h and the parameter count n (so a
// checkpoint's size can be checked before anything that large is
// allocated).
func newLayout(h hyper) (m *model, n int) {
	m = &model{h: h, hasBias: h.Norm == normLayer}
	add := func(name string, rows, cols int, fn func(*tensor)) tensor {
		t := tensor{Name: name, Off: n, Rows: rows, Cols: cols}
		if fn != nil {
			fn(&t)
		}
		n += rows * cols
		m.tensors = append(m.tensors, t)
		return t
	}
	mat := func(resid bool) func(*tensor) {
		return func(t *tensor) { t.decay, t.fanIn, t.fanOut, t.resid = true, t.Rows, t.Cols, resid }
	}
	emb := func(t *tensor) { t.decay = true }
	gain := func(t *tensor) { t.ones = true }
	d, f := h.DModel, h.ffIn()
	m.wte = add("wte", h.Vocab, d, emb)
	m.wpe = add("wpe", h.Ctx, d, emb)
	for l := 0; l < h.NLayers; l++ {
		var lp layerParams
		p := func(s string) string { return "h" + itoa(l) + "." + s }
		lp.n1g = add(p("ln1.g"), 1, d, gain)
		if m.hasBias {
			lp.n1b = add(p("ln1.b"), 1, d, nil)
		}
		lp.wqkv = add(p("attn.wqkv"), d, 3*d, mat(false))
		lp.bqkv = add(p("attn.bqkv"), 1, 3*d, nil)
		lp.wo = add(p("attn.wo"), d, d, mat(true))
		lp.bo = add(p("attn.bo"), 1, d, nil)
		lp.n2g = add(p("ln2.g"), 1, d, gain)
		if m.hasBias {
			lp.n2b = add(p("ln2.b"), 1, d, nil)
		}
		lp.w1 = add(p("mlp.w1"), d, f, mat(false))
		lp.b1 = add(p("mlp.b1"), 1, f, nil)
		lp.w2 = add(p("mlp.w2"), h.ffHidden(), d, mat(true))
		lp.b2 = add(p("mlp.b2"), 1, d, nil)
		m.layers = append(m.layers, lp)
	}
	m.nfg = add("lnf.g", 1, d, gain)
	if m.hasBias {
		m.nfb = add("lnf.b", 1, d, nil)
	}
	m.wout = add("out.w", d, h.Vocab, mat(false))
	m.bout = add("out.b", 1, h.Vocab, nil)
	return m, n
}

func itoa(i int) string { return strconv.Itoa(i) }

// p returns the parameter slice of t (nil for an absent tensor).
func (m *model) p(t tensor) []float32 {
	if t.Rows == 0 {
		return nil
	}
	return m.params[t.Off : t.Off+t.Rows*t.Cols]
}

// g returns the gradient slice of t (nil for an absent tensor).
func (m *model) g(t tensor) []float32 {
	if t.Rows == 0 {
		return nil
	}
	return m.grads[t.Off : t.Off+t.Rows*t.Cols]
}

// init draws the initial weights from rng, tensor by tensor in layout order.
//
//   - embeddings (wte, wpe): N(0, 0.02) for every initType;
//   - matrices: "normal" N(0, 0.02), with the residual output projections
//     (attn.wo, mlp.w2) scaled by 1/sqrt(2·nLayers) as in GPT-2;
//     "xavier" N(0, sqrt(2/(fanIn+fanOut))); "kaiming" N(0, sqrt(2/fanIn));
//   - biases 0, norm gains 1.
func (m *model) init(rng *rand.Rand) {
	for _, t := range m.tensors {
		w := m.p(t)
		switch {
		case t.ones:
			for i := range w {
				w[i] = 1
			}
			continue
		case !t.decay:
			clear(w)
			continue
		}
		std := 0.02
		if t.fanIn > 0 {
			switch m.h.Init {
			case "xavier":
				std = math.Sqrt(2 / float64(t.fanIn+t.fanOut))
			case "kaiming":
				std = math.Sqrt(2 / float64(t.fanIn))
			default:
				if t.resid {
					std /= math.Sqrt(2 * float64(m.h.NLayers))
				}
			}
		}
		for i := range w {
			w[i] = float32(rng.NormFloat64() * std)
		}
	}
}

// numParams is the number of trainable scalars.
func (m *model) numParams() int { return len(m.params) }

// acts holds the activations of one forward pass (kept for backward) and
// the backward scratch, for a fixed batch size. Reused across steps.
type acts struct {
	bsz             int
	tokens, targets []int32
	// xs[l] is the residual stream entering layer l; xs[nLayers] leaves the
	// last layer.
	xs                                 [][]float32
	h1, qkv, ao, probs, xmid, h2, u, a [][]float32
	aux                                [][]float32 // activation values kept for backward
	m1, r1, m2, r2                     [][]float32
	hf, mf, rf, logits                 []float32
	rowLoss                            []float64
	// backward scratch (allocated on first use)
	dx, dh, dqkv, dao, du, da, tmp, dlogits, attnScratch []float32
}

func newActs(h hyper, bsz int) *acts {
	bt, d, T := bsz*h.Ctx, h.DModel, h.Ctx
	f, fi := h.ffHidden(), h.ffIn()
	a := &acts{bsz: bsz}
	a.tokens = make([]int32, bt)
	a.targets = make([]int32, bt)
	mk := func(layers, n int) [][]float32 {
		out := make([][]float32, layers)
		for i := range out {
			out[i] = make([]float32, n)
		}
		return out
	}
	L := h.NLayers
	a.xs = mk(L+1, bt*d)
	a.h1, a.qkv, a.ao = mk(L, bt*d), mk(L, bt*3*d), mk(L, bt*d)
	a.probs, a.xmid, a.h2, a.u, a.a = mk(L, bsz*h.NHeads*T*T), mk(L, bt*d), mk(L, bt*d), mk(L, bt*fi), mk(L, bt*f)
	a.m1, a.r1, a.m2, a.r2 = mk(L, bt), mk(L, bt), mk(L, bt), mk(L, bt)
	if h.Activation != actReLU {
		a.aux = mk(L, bt*f)
	} else {
		a.aux = make([][]float32, L)
	}
	a.hf, a.mf, a.rf = make([]float32, bt*d), make([]float32, bt), make([]float32, bt)
	a.logits = make([]float32, bt*h.Vocab)
	a.rowLoss = make([]float64, bt)
	return a
}

func (a *acts) allocBackward(h hyper) {
	if a.dx != nil {
		return
	}
	bt, d := a.bsz*h.Ctx, h.DModel
	a.dx, a.dh, a.dqkv, a.dao = make([]float32, bt*d), make([]float32, bt*d), make([]float32, bt*3*d), make([]float32, bt*d)
	a.du, a.da, a.tmp = make([]float32, bt*h.ffIn()), make([]float32, bt*h.ffHidden()), make([]float32, bt*d)
	a.dlogits = make([]float32, bt*h.Vocab)
	a.attnScratch = make([]float32, a.bsz*h.NHeads*h.Ctx*h.Ctx)
}

// actBytes estimates the memory of a training batch's activations and
// backward scratch in bytes.
func actBytes(h hyper, bsz int) float64 {
	bt := float64(bsz * h.Ctx)
	d := float64(h.DModel)
	attn := float64(bsz * h.NHeads * h.Ctx * h.Ctx)
	perLayer := bt*(8*d+float64(h.ffIn()+2*h.ffHidden())+4) + attn
	return 4 * (float64(h.NLayers)*perLayer + attn + bt*(10*d+2*float64(h.ffIn())+2*float64(h.Vocab)))
}

// addBiasRows adds b to every row of x (rows×len(b)).
func addBiasRows(x, b []float32, rows, n int) {
	parallelRows(rows, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			addVec(x[r*n:(r+1)*n], b)
		}
	})
}

// flopsPerStep is the analytic floating-point operation count of one
// training step (forward + backward) on bsz sequences: 6 flops per weight
// per token for every matmul (2 forward, 2 for dX, 2 for dW), plus causal
// attention (QKᵀ and P·V over the T(T+1)/2 visible pairs: 2 products
// forward, 4 backward, 2 flops each per head dimension). Elementwise work
// (norms, activations, softmax, AdamW) is not counted.
func flopsPerStep(h hyper, bsz int) float64 {
	bt := float64(bsz * h.Ctx)
	d := float64(h.DModel)
	perLayer := d*3*d + d*d + d*float64(h.ffIn()) + float64(h.ffHidden())*d
	mat := float64(h.NLayers)*perLayer + d*float64(h.Vocab)
	pairs := float64(h.Ctx*(h.Ctx+1)) / 2
	attn := float64(h.NLayers) * float64(bsz) * pairs * d * 2 * 6
	return 6*bt*mat + attn
}

// adamW applies one AdamW update with learning rate lr at 1-based step t.
// Weight decay (decoupled) applies to the 2-D weights (matrices and
// embeddings), not to biases or norm gains. Elementwise, parallel over
// fixed chunks.
func (m *model) adamW(lr, wd float64, t int) {
	const b1, b2, eps = 0.9, 0.95, 1e-8
	c1 := 1 - math.Pow(b1, float64(t))
	c2 := 1 - math.Pow(b2, float64(t))
	base := adamConsts{c1: c1, c2: c2, eps: eps, lr: float32(lr), b1: b1, nb1: 1 - b1, b2: b2, nb2: 1 - b2}
	parallelFor(len(m.tensors), func(i int) {
		tn := m.tensors[i]
		p := m.p(tn)
		k := base
		if tn.decay {
			k.decay = float32(wd)
		}
		adamWVec(p, m.g(tn), m.m[tn.Off:tn.Off+len(p)], m.v[tn.Off:tn.Off+len(p)], &k)
	})
}

// gradNorm returns the global L2 norm of the gradient (per-tensor partial
// sums in parallel, each in 8 lanes (see sumSq64), combined in tensor
// order).
func (m *model) gradNorm(part []float64) float64 {
	parallelFor(len(m.tensors), func(i int) {
		part[i] = sumSq64(m.g(m.tensors[i]))
	})
	var s float64
	for _, v := range part[:len(m.tensors)] {
		s += v
	}
	return math.Sqrt(s)
}

// Checkpoint format (little endian):
//
//	[8]byte  magic "HSMLCKPT"
//	uint32   format version (1)
//	uint32   n = length of the JSON header
//	[n]byte  JSON header: {"config": normalised config, "seed", "steps",
//	         "vocab": string of the vocabulary bytes (id i+1 = vocab[i],
//	         id 0 = unknown), "tensors": [{name, offset, rows, cols}],
//	         "numParams"}
//	uint64   number of float32 parameters
//	[]float32 parameters, row-major, at the offsets listed in the header
func (m *model) checkpoint(cfg domains.Config, seed int64, steps int, vocab []byte) []byte {
	hdr, _ := json.Marshal(map[string]any{
		"format":    "hyperspace-ml-checkpoint",
		"config":    cfg,
		"seed":      seed,
		"steps":     steps,
		"vocab":     string(vocab),
		"tensors":   m.tensors,
		"numParams": len(m.params),
	})
	var buf bytes.Buffer
	buf.WriteString("HSMLCKPT")
	_ = binary.Write(&buf, binary.LittleEndian, uint32(1))
	_ = binary.Write(&buf, binary.LittleEndian, uint32(len(hdr)))
	buf.Write(hdr)
	_ = binary.Write(&buf, binary.LittleEndian, uint64(len(m.params)))
	_ = binary.Write(&buf, binary.LittleEndian, m.params)
	return buf.Bytes()
}
