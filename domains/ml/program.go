package ml

import (
	"fmt"
	"math/rand/v2"
)

// A training step as a program: an explicit, ordered list of operations,
// each naming the buffers it reads and the buffers it writes. Plain
// training (trainStep) runs exactly this list, and the fraud-proof view of
// a step (Stepper, ExecOp in trace.go) runs the same list one op at a time,
// so there is one code path.
//
// Buffers are the persistent training state (params, m, v and step.rng:
// the optimizer step and the batch sampler) and the scratch of one step
// (the batch, every activation, the gradient and the backward scratch).
// No op reads a scratch buffer before an earlier op of the same step wrote
// it (checked by checkProgram and TestStepIgnoresStaleScratch), so a step's
// result depends only on the step-start state and the public training text.

// The per-op pieces of the forward and backward passes. forward and
// backward (used by evaluation and data-parallel training) call the same
// methods in the same order as the program.

func (m *model) dims(a *acts) (bsz, T, d, H, bt int) {
	h := m.h
	return a.bsz, h.Ctx, h.DModel, h.NHeads, a.bsz * h.Ctx
}

func (m *model) embedFwd(a *acts) {
	bsz, T, d, _, _ := m.dims(a)
	embedForward(a.tokens, m.p(m.wte), m.p(m.wpe), a.xs[0], bsz, T, d)
}

func (m *model) norm1Fwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	normForward(m.h.Norm, a.xs[l], m.p(lp.n1g), m.p(lp.n1b), a.h1[l], a.m1[l], a.r1[l], bt, d)
}

func (m *model) qkvFwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	linearForward(a.h1[l], m.p(lp.wqkv), m.p(lp.bqkv), a.qkv[l], bt, d, 3*d)
}

func (m *model) attnFwd(a *acts, l int) {
	bsz, T, d, H, _ := m.dims(a)
	attnForward(a.qkv[l], a.ao[l], a.probs[l], bsz, T, H, d/H)
}

// projFwd writes xmid = x + ao·wo + bo.
func (m *model) projFwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	xm := a.xmid[l]
	copy(xm, a.xs[l])
	addBiasRows(xm, m.p(lp.bo), bt, d)
	gemm(false, false, bt, d, d, a.ao[l], d, m.p(lp.wo), d, xm, d, true)
}

func (m *model) norm2Fwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	normForward(m.h.Norm, a.xmid[l], m.p(lp.n2g), m.p(lp.n2b), a.h2[l], a.m2[l], a.r2[l], bt, d)
}

func (m *model) fc1Fwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	linearForward(a.h2[l], m.p(lp.w1), m.p(lp.b1), a.u[l], bt, d, m.h.ffIn())
}

func (m *model) actFwd(a *acts, l int) {
	_, _, _, _, bt := m.dims(a)
	actForward(m.h.Activation, a.u[l], a.a[l], a.aux[l], bt, m.h.ffHidden())
}

// fc2Fwd writes the next residual stream xs[l+1] = xmid + act·w2 + b2.
func (m *model) fc2Fwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	f := m.h.ffHidden()
	nx := a.xs[l+1]
	copy(nx, a.xmid[l])
	addBiasRows(nx, m.p(lp.b2), bt, d)
	gemm(false, false, bt, d, f, a.a[l], f, m.p(lp.w2), d, nx, d, true)
}

func (m *model) normfFwd(a *acts) {
	_, _, d, _, bt := m.dims(a)
	normForward(m.h.Norm, a.xs[len(m.layers)], m.p(m.nfg), m.p(m.nfb), a.hf, a.mf, a.rf, bt, d)
}

func (m *model) headFwd(a *acts) {
	_, _, d, _, bt := m.dims(a)
	linearForward(a.hf, m.p(m.wout), m.p(m.bout), a.logits, bt, d, m.h.Vocab)
}

// lossFwd returns the summed loss over targets >= 0 and their count; when
// withGrad, a.dlogits receives the gradient of the mean loss.
func (m *model) lossFwd(a *acts, withGrad bool) (float64, int) {
	_, _, _, _, bt := m.dims(a)
	V := m.h.Vocab
	if !withGrad {
		return crossEntropy(a.logits, a.targets, bt, V, nil, 1, a.rowLoss)
	}
	a.allocBackward(m.h)
	n := 0
	for _, t := range a.targets {
		if t >= 0 {
			n++
		}
	}
	return crossEntropy(a.logits, a.targets, bt, V, a.dlogits, float64(max(n, 1)), a.rowLoss)
}

func (m *model) headBwd(a *acts) {
	_, _, d, _, bt := m.dims(a)
	linearBackward(a.hf, m.p(m.wout), a.dlogits, a.dh, m.g(m.wout), m.g(m.bout), bt, d, m.h.Vocab, false)
}

// normfBwd writes dx = ∂L/∂xs[nLayers].
func (m *model) normfBwd(a *acts) {
	_, _, d, _, bt := m.dims(a)
	clear(a.dx)
	normBackward(m.h.Norm, a.xs[len(m.layers)], m.p(m.nfg), a.mf, a.rf, a.dh, a.dx, m.g(m.nfg), m.g(m.nfb), a.tmp, bt, d)
}

// fc2Bwd: dx is ∂L/∂xs[l+1]; the residual passes it unchanged to xmid.
func (m *model) fc2Bwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	linearBackward(a.a[l], m.p(lp.w2), a.dx, a.da, m.g(lp.w2), m.g(lp.b2), bt, m.h.ffHidden(), d, false)
}

func (m *model) actBwd(a *acts, l int) {
	_, _, _, _, bt := m.dims(a)
	actBackward(m.h.Activation, a.u[l], a.aux[l], a.da, a.du, bt, m.h.ffHidden())
}

func (m *model) fc1Bwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	linearBackward(a.h2[l], m.p(lp.w1), a.du, a.dh, m.g(lp.w1), m.g(lp.b1), bt, d, m.h.ffIn(), false)
}

// norm2Bwd adds the norm's input gradient to dx, which becomes ∂L/∂xmid.
func (m *model) norm2Bwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	normBackward(m.h.Norm, a.xmid[l], m.p(lp.n2g), a.m2[l], a.r2[l], a.dh, a.dx, m.g(lp.n2g), m.g(lp.n2b), a.tmp, bt, d)
}

// projBwd: dx is ∂L/∂xmid; the residual passes it unchanged to xs[l].
func (m *model) projBwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	linearBackward(a.ao[l], m.p(lp.wo), a.dx, a.dao, m.g(lp.wo), m.g(lp.bo), bt, d, d, false)
}

func (m *model) attnBwd(a *acts, l int) {
	bsz, T, d, H, _ := m.dims(a)
	attnBackward(a.qkv[l], a.probs[l], a.dao, a.dqkv, bsz, T, H, d/H, a.attnScratch)
}

func (m *model) qkvBwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	linearBackward(a.h1[l], m.p(lp.wqkv), a.dqkv, a.dh, m.g(lp.wqkv), m.g(lp.bqkv), bt, d, 3*d, false)
}

// norm1Bwd adds the norm's input gradient to dx, which becomes ∂L/∂xs[l].
func (m *model) norm1Bwd(a *acts, l int) {
	_, _, d, _, bt := m.dims(a)
	lp := m.layers[l]
	normBackward(m.h.Norm, a.xs[l], m.p(lp.n1g), a.m1[l], a.r1[l], a.dh, a.dx, m.g(lp.n1g), m.g(lp.n1b), a.tmp, bt, d)
}

func (m *model) embedBwd(a *acts) {
	bsz, T, d, _, _ := m.dims(a)
	embedBackward(a.tokens, a.dx, m.g(m.wte), m.g(m.wpe), bsz, T, d)
}

// forward runs the model on a.tokens and returns the summed loss over
// targets >= 0 and their count. Activations are kept in a for backward;
// when withGrad, a.dlogits receives the gradient of the mean loss.
func (m *model) forward(a *acts, withGrad bool) (float64, int) {
	m.embedFwd(a)
	for l := range m.layers {
		m.norm1Fwd(a, l)
		m.qkvFwd(a, l)
		m.attnFwd(a, l)
		m.projFwd(a, l)
		m.norm2Fwd(a, l)
		m.fc1Fwd(a, l)
		m.actFwd(a, l)
		m.fc2Fwd(a, l)
	}
	m.normfFwd(a)
	m.headFwd(a)
	return m.lossFwd(a, withGrad)
}

// backward accumulates into m.grads the gradient of the mean loss of the
// last forward(a, true). m.grads must be zeroed by the caller.
func (m *model) backward(a *acts) {
	m.headBwd(a)
	m.normfBwd(a)
	for l := len(m.layers) - 1; l >= 0; l-- {
		m.fc2Bwd(a, l)
		m.actBwd(a, l)
		m.fc1Bwd(a, l)
		m.norm2Bwd(a, l)
		m.projBwd(a, l)
		m.attnBwd(a, l)
		m.qkvBwd(a, l)
		m.norm1Bwd(a, l)
	}
	m.embedBwd(a)
}

// stepEnv is everything one training step runs on: the model (params,
// grads, moments), the activations, the batch sampler, the public training
// text, the 0-based step and the schedule length.
type stepEnv struct {
	m        *model
	a        *acts
	pcg      *rand.PCG
	rng      *rand.Rand
	data     []uint8
	step     int // optimizer steps taken so far (the step being run, 0-based)
	steps    int // schedule length (learning-rate schedule)
	normPart []float64
	loss     []float64 // [1]: the step's mean training loss
	prog     *program
}

// newStepEnv returns the environment of a step. prog is the step program
// of m's shape and a's batch size (nil: build it).
func newStepEnv(m *model, a *acts, pcg *rand.PCG, data []uint8, step, steps int, prog *program) *stepEnv {
	a.allocBackward(m.h)
	if prog == nil {
		prog = programFor(m, a.bsz)
	}
	return &stepEnv{
		m: m, a: a, pcg: pcg, rng: rand.New(pcg), data: data, step: step, steps: steps,
		normPart: make([]float64, len(m.tensors)),
		loss:     make([]float64, 1),
		prog:     prog,
	}
}

// trainStep is one optimizer step: it runs the step program (sample a
// batch, forward, loss, clear the gradient, backward, clip, AdamW) and
// returns the batch's mean loss. Plain training (run), segmented training
// (TrainSteps) and the fraud-proof trace (Trace) all go through it, so they
// agree bit for bit.
func (e *stepEnv) trainStep() float64 {
	for i := range e.prog.ops {
		e.prog.ops[i].run(e)
	}
	return e.loss[0]
}

// Persistent buffers, in this order, are the leaves of a step-state root.
const (
	bufParams = iota
	bufM
	bufV
	bufStepRNG
	numPersistent
)

type bufKind uint8

const (
	kindF32 bufKind = iota
	kindI32
	kindF64
	kindStepRNG // uint64 step (little endian) ‖ the PCG's MarshalBinary (20 bytes)
)

// stepRNGBytes is the encoded length of the step.rng buffer.
const stepRNGBytes = 8 + 20

// buf is one named buffer of the step program; exactly one accessor fits
// its kind.
type buf struct {
	name string
	kind bufKind
	n    int // elements (bytes for kindStepRNG)
	f32  func(e *stepEnv) []float32
	i32  func(e *stepEnv) []int32
	f64  func(e *stepEnv) []float64
}

// bytes is the encoded length of b.
func (b *buf) bytes() int {
	switch b.kind {
	case kindF32, kindI32:
		return 4 * b.n
	case kindF64:
		return 8 * b.n
	}
	return b.n
}

type op struct {
	name          string
	reads, writes []int
	run           func(e *stepEnv)
}

// program is the op list of one model shape and batch size.
type program struct {
	bufs  []buf
	ops   []op
	index map[string]int // buffer name -> index
}

// programFor builds the step program of m's shape for batch size bsz.
func programFor(m *model, bsz int) *program {
	h := m.h
	bt, d, T := bsz*h.Ctx, h.DModel, h.Ctx
	f, fi := h.ffHidden(), h.ffIn()
	L := h.NLayers
	p := &program{index: map[string]int{}}
	add := func(b buf) int {
		p.index[b.name] = len(p.bufs)
		p.bufs = append(p.bufs, b)
		return len(p.bufs) - 1
	}
	f32 := func(name string, n int, get func(e *stepEnv) []float32) int {
		return add(buf{name: name, kind: kindF32, n: n, f32: get})
	}
	np := len(m.params)
	f32("params", np, func(e *stepEnv) []float32 { return e.m.params })
	f32("m", np, func(e *stepEnv) []float32 { return e.m.m })
	f32("v", np, func(e *stepEnv) []float32 { return e.m.v })
	add(buf{name: "step.rng", kind: kindStepRNG, n: stepRNGBytes})
	const params, mom1, mom2, steprng = bufParams, bufM, bufV, bufStepRNG

	tokens := add(buf{name: "tokens", kind: kindI32, n: bt, i32: func(e *stepEnv) []int32 { return e.a.tokens }})
	targets := add(buf{name: "targets", kind: kindI32, n: bt, i32: func(e *stepEnv) []int32 { return e.a.targets }})
	xs := make([]int, L+1)
	for l := range xs {
		xs[l] = f32("x"+itoa(l), bt*d, func(e *stepEnv) []float32 { return e.a.xs[l] })
	}
	type layerBufs struct{ h1, m1, r1, qkv, ao, probs, xmid, h2, m2, r2, u, act, aux int }
	lb := make([]layerBufs, L)
	for l := range lb {
		pre := "l" + itoa(l) + "."
		b := &lb[l]
		b.h1 = f32(pre+"h1", bt*d, func(e *stepEnv) []float32 { return e.a.h1[l] })
		b.m1 = f32(pre+"mean1", bt, func(e *stepEnv) []float32 { return e.a.m1[l] })
		b.r1 = f32(pre+"rstd1", bt, func(e *stepEnv) []float32 { return e.a.r1[l] })
		b.qkv = f32(pre+"qkv", bt*3*d, func(e *stepEnv) []float32 { return e.a.qkv[l] })
		b.ao = f32(pre+"attn", bt*d, func(e *stepEnv) []float32 { return e.a.ao[l] })
		b.probs = f32(pre+"probs", bsz*h.NHeads*T*T, func(e *stepEnv) []float32 { return e.a.probs[l] })
		b.xmid = f32(pre+"xmid", bt*d, func(e *stepEnv) []float32 { return e.a.xmid[l] })
		b.h2 = f32(pre+"h2", bt*d, func(e *stepEnv) []float32 { return e.a.h2[l] })
		b.m2 = f32(pre+"mean2", bt, func(e *stepEnv) []float32 { return e.a.m2[l] })
		b.r2 = f32(pre+"rstd2", bt, func(e *stepEnv) []float32 { return e.a.r2[l] })
		b.u = f32(pre+"u", bt*fi, func(e *stepEnv) []float32 { return e.a.u[l] })
		b.act = f32(pre+"act", bt*f, func(e *stepEnv) []float32 { return e.a.a[l] })
		b.aux = -1
		if h.Activation != actReLU {
			b.aux = f32(pre+"aux", bt*f, func(e *stepEnv) []float32 { return e.a.aux[l] })
		}
	}
	hf := f32("hf", bt*d, func(e *stepEnv) []float32 { return e.a.hf })
	mf := f32("meanf", bt, func(e *stepEnv) []float32 { return e.a.mf })
	rf := f32("rstdf", bt, func(e *stepEnv) []float32 { return e.a.rf })
	logits := f32("logits", bt*h.Vocab, func(e *stepEnv) []float32 { return e.a.logits })
	dlogits := f32("dlogits", bt*h.Vocab, func(e *stepEnv) []float32 { return e.a.dlogits })
	rowLoss := add(buf{name: "rowloss", kind: kindF64, n: bt, f64: func(e *stepEnv) []float64 { return e.a.rowLoss }})
	loss := add(buf{name: "loss", kind: kindF64, n: 1, f64: func(e *stepEnv) []float64 { return e.loss }})
	grads := f32("grads", np, func(e *stepEnv) []float32 { return e.m.grads })
	dx := f32("dx", bt*d, func(e *stepEnv) []float32 { return e.a.dx })
	dh := f32("dh", bt*d, func(e *stepEnv) []float32 { return e.a.dh })
	dtmp := f32("dtmp", bt*d, func(e *stepEnv) []float32 { return e.a.tmp })
	dact := f32("dact", bt*f, func(e *stepEnv) []float32 { return e.a.da })
	du := f32("du", bt*fi, func(e *stepEnv) []float32 { return e.a.du })
	dao := f32("dattn", bt*d, func(e *stepEnv) []float32 { return e.a.dao })
	dqkv := f32("dqkv", bt*3*d, func(e *stepEnv) []float32 { return e.a.dqkv })
	dscores := f32("dscores", bsz*h.NHeads*T*T, func(e *stepEnv) []float32 { return e.a.attnScratch })

	emit := func(name string, reads, writes []int, run func(e *stepEnv)) {
		var r, w []int
		for _, i := range reads {
			if i >= 0 {
				r = append(r, i)
			}
		}
		for _, i := range writes {
			if i >= 0 {
				w = append(w, i)
			}
		}
		p.ops = append(p.ops, op{name: name, reads: r, writes: w, run: run})
	}
	ids := func(x ...int) []int { return x }

	emit("sample", ids(steprng), ids(tokens, targets, steprng), func(e *stepEnv) { e.m.sampleBatch(e.a, e.rng, e.data) })
	emit("embed.fwd", ids(tokens, params), ids(xs[0]), func(e *stepEnv) { e.m.embedFwd(e.a) })
	for l := 0; l < L; l++ {
		b := lb[l]
		pre := "l" + itoa(l) + "."
		emit(pre+"norm1.fwd", ids(xs[l], params), ids(b.h1, b.m1, b.r1), func(e *stepEnv) { e.m.norm1Fwd(e.a, l) })
		emit(pre+"qkv.fwd", ids(b.h1, params), ids(b.qkv), func(e *stepEnv) { e.m.qkvFwd(e.a, l) })
		emit(pre+"attn.fwd", ids(b.qkv), ids(b.ao, b.probs), func(e *stepEnv) { e.m.attnFwd(e.a, l) })
		emit(pre+"proj.fwd", ids(xs[l], b.ao, params), ids(b.xmid), func(e *stepEnv) { e.m.projFwd(e.a, l) })
		emit(pre+"norm2.fwd", ids(b.xmid, params), ids(b.h2, b.m2, b.r2), func(e *stepEnv) { e.m.norm2Fwd(e.a, l) })
		emit(pre+"fc1.fwd", ids(b.h2, params), ids(b.u), func(e *stepEnv) { e.m.fc1Fwd(e.a, l) })
		emit(pre+"act.fwd", ids(b.u), ids(b.act, b.aux), func(e *stepEnv) { e.m.actFwd(e.a, l) })
		emit(pre+"fc2.fwd", ids(b.xmid, b.act, params), ids(xs[l+1]), func(e *stepEnv) { e.m.fc2Fwd(e.a, l) })
	}
	emit("normf.fwd", ids(xs[L], params), ids(hf, mf, rf), func(e *stepEnv) { e.m.normfFwd(e.a) })
	emit("head.fwd", ids(hf, params), ids(logits), func(e *stepEnv) { e.m.headFwd(e.a) })
	emit("loss", ids(logits, targets), ids(dlogits, rowLoss, loss), func(e *stepEnv) {
		sum, n := e.m.lossFwd(e.a, true)
		e.loss[0] = sum / float64(n)
	})
	emit("grads.zero", nil, ids(grads), func(e *stepEnv) { clear(e.m.grads) })
	emit("head.bwd", ids(hf, params, dlogits, grads), ids(dh, grads), func(e *stepEnv) { e.m.headBwd(e.a) })
	emit("normf.bwd", ids(xs[L], params, mf, rf, dh, grads), ids(dx, grads, dtmp), func(e *stepEnv) { e.m.normfBwd(e.a) })
	for l := L - 1; l >= 0; l-- {
		b := lb[l]
		pre := "l" + itoa(l) + "."
		emit(pre+"fc2.bwd", ids(b.act, params, dx, grads), ids(dact, grads), func(e *stepEnv) { e.m.fc2Bwd(e.a, l) })
		emit(pre+"act.bwd", ids(b.u, b.aux, dact), ids(du), func(e *stepEnv) { e.m.actBwd(e.a, l) })
		emit(pre+"fc1.bwd", ids(b.h2, params, du, grads), ids(dh, grads), func(e *stepEnv) { e.m.fc1Bwd(e.a, l) })
		emit(pre+"norm2.bwd", ids(b.xmid, params, b.m2, b.r2, dh, dx, grads), ids(dx, grads, dtmp), func(e *stepEnv) { e.m.norm2Bwd(e.a, l) })
		emit(pre+"proj.bwd", ids(b.ao, params, dx, grads), ids(dao, grads), func(e *stepEnv) { e.m.projBwd(e.a, l) })
		emit(pre+"attn.bwd", ids(b.qkv, b.probs, dao), ids(dqkv, dscores), func(e *stepEnv) { e.m.attnBwd(e.a, l) })
		emit(pre+"qkv.bwd", ids(b.h1, params, dqkv, grads), ids(dh, grads), func(e *stepEnv) { e.m.qkvBwd(e.a, l) })
		emit(pre+"norm1.bwd", ids(xs[l], params, b.m1, b.r1, dh, dx, grads), ids(dx, grads, dtmp), func(e *stepEnv) { e.m.norm1Bwd(e.a, l) })
	}
	emit("embed.bwd", ids(tokens, dx, grads), ids(grads), func(e *stepEnv) { e.m.embedBwd(e.a) })
	emit("clip", ids(grads), ids(grads), func(e *stepEnv) { e.m.clipGrads(e.normPart) })
	emit("adamw", ids(params, grads, mom1, mom2, steprng), ids(params, mom1, mom2, steprng), func(e *stepEnv) {
		e.m.adamW(lrAt(e.m.h, e.step, e.steps), e.m.h.WD, e.step+1)
		e.step++
	})
	return p
}

// check reports the first op that reads a scratch buffer no earlier
// op of the step wrote, or a buffer index out of range.
func (p *program) check() error {
	defined := make([]bool, len(p.bufs))
	for i := 0; i < numPersistent; i++ {
		defined[i] = true
	}
	for _, o := range p.ops {
		for _, r := range o.reads {
			if r < 0 || r >= len(p.bufs) {
				return fmt.Errorf("op %s reads buffer %d of %d", o.name, r, len(p.bufs))
			}
			if !defined[r] {
				return fmt.Errorf("op %s reads %s before any op of the step writes it", o.name, p.bufs[r].name)
			}
		}
		for _, w := range o.writes {
			if w < 0 || w >= len(p.bufs) {
				return fmt.Errorf("op %s writes buffer %d of %d", o.name, w, len(p.bufs))
			}
			defined[w] = true
		}
	}
	return nil
}
