package ml

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// The fraud-proof view of training (see internal/fraud). A training run is
// a trace of step states; a step is a trace of op states.
//
// Step state: the persistent buffers params, m, v (little-endian float32)
// and step.rng (uint64 step, little endian, ‖ the sampler's 20-byte PCG
// encoding). Its root is the Merkle root (package merkle, RFC 6962
// hashing) over the four leaves [SHA-256(params), SHA-256(m), SHA-256(v),
// SHA-256(step.rng)].
//
// Op state: every buffer of the step program (Program.Buffers) in a fixed
// order, persistent ones first. A buffer's leaf is SHA-256 of its
// little-endian bytes, or Undefined (all zero) while no op of the step has
// written it. The op-state root is merkle.Node(step root of the persistent
// leaves, merkle.Root of the scratch leaves), so op state 0 of a step is
// merkle.Node(step-state root, Program.ScratchStart()) and the persistent
// half of the last op state is the next step-state root.

// Undefined is the leaf of a scratch buffer not yet written in the step.
var Undefined merkle.Hash

// BufferInfo describes one buffer of the step program.
type BufferInfo struct {
	Name string `json:"name"`
	// Kind is the element type: "f32", "i32", "f64" (little endian), or
	// "step.rng" (raw bytes).
	Kind string `json:"kind"`
	// Bytes is the encoded length.
	Bytes int `json:"bytes"`
	// Persistent buffers are the step state; the others are scratch.
	Persistent bool `json:"persistent"`
}

// OpInfo is one operation of the step program.
type OpInfo struct {
	Name   string   `json:"name"`
	Reads  []string `json:"reads"`
	Writes []string `json:"writes"`
}

// NumPersistent is the number of persistent buffers (the first ones).
const NumPersistent = numPersistent

// Program is the step program of one training run: its normalised config,
// vocabulary size, schedule length and public training text. It is
// immutable and safe for concurrent use.
type Program struct {
	cfg        domains.Config
	vocab      int
	totalSteps int
	data       []uint8
	h          hyper
	p          *program
	ops        []OpInfo
	bufs       []BufferInfo
	scratch0   merkle.Hash
}

// NewProgram validates cfg and returns the step program of a run of
// totalSteps steps on data (token ids, at least contextLength+2 long).
func NewProgram(cfg domains.Config, vocabSize, totalSteps int, data []uint8) (*Program, error) {
	ncfg, err := New().Validate(cfg)
	if err != nil {
		return nil, err
	}
	if vocabSize < 2 || vocabSize > 256 {
		return nil, fmt.Errorf("ml: vocabulary size %d out of range 2..256", vocabSize)
	}
	h := hyperFrom(ncfg, vocabSize)
	if len(data) < h.Ctx+2 {
		return nil, fmt.Errorf("ml: training text (%d chars) shorter than contextLength+2", len(data))
	}
	if totalSteps < 1 {
		return nil, fmt.Errorf("ml: schedule of %d steps", totalSteps)
	}
	p := programFor(newModel(h), h.Batch)
	if err := p.check(); err != nil {
		return nil, err
	}
	pr := &Program{cfg: ncfg, vocab: vocabSize, totalSteps: totalSteps, data: data, h: h, p: p}
	kinds := [...]string{kindF32: "f32", kindI32: "i32", kindF64: "f64", kindStepRNG: "step.rng"}
	for i, b := range p.bufs {
		pr.bufs = append(pr.bufs, BufferInfo{Name: b.name, Kind: kinds[b.kind], Bytes: b.bytes(), Persistent: i < numPersistent})
	}
	names := func(ix []int) []string {
		out := make([]string, len(ix))
		for i, b := range ix {
			out[i] = p.bufs[b].name
		}
		return out
	}
	for _, o := range p.ops {
		pr.ops = append(pr.ops, OpInfo{Name: o.name, Reads: names(o.reads), Writes: names(o.writes)})
	}
	pr.scratch0 = merkle.Root(make([]merkle.Hash, len(p.bufs)-numPersistent))
	return pr, nil
}

// Config is the normalised config.
func (pr *Program) Config() domains.Config { return pr.cfg.Clone() }

// VocabSize is the number of token ids.
func (pr *Program) VocabSize() int { return pr.vocab }

// TotalSteps is the schedule length (the steps of the run).
func (pr *Program) TotalSteps() int { return pr.totalSteps }

// NumOps is the number of ops in a step.
func (pr *Program) NumOps() int { return len(pr.p.ops) }

// Ops lists the ops in execution order.
func (pr *Program) Ops() []OpInfo { return append([]OpInfo(nil), pr.ops...) }

// Buffers lists the buffers in leaf order (persistent first).
func (pr *Program) Buffers() []BufferInfo { return append([]BufferInfo(nil), pr.bufs...) }

// OpIndex is the index of the op called name.
func (pr *Program) OpIndex(name string) (int, bool) {
	for i, o := range pr.p.ops {
		if o.name == name {
			return i, true
		}
	}
	return 0, false
}

// ScratchStart is the root over the scratch leaves at the start of a step
// (all Undefined).
func (pr *Program) ScratchStart() merkle.Hash { return pr.scratch0 }

// OpRoot is the op-state root of a full list of buffer leaves.
func (pr *Program) OpRoot(leaves []merkle.Hash) (merkle.Hash, error) {
	if len(leaves) != len(pr.p.bufs) {
		return merkle.Hash{}, fmt.Errorf("ml: %d leaves, the program has %d buffers", len(leaves), len(pr.p.bufs))
	}
	return OpStateRoot(leaves), nil
}

// OpStateRoot is merkle.Node(merkle.Root(persistent leaves), merkle.Root(scratch leaves)).
func OpStateRoot(leaves []merkle.Hash) merkle.Hash {
	return merkle.Node(merkle.Root(leaves[:numPersistent]), merkle.Root(leaves[numPersistent:]))
}

// env returns a fresh step environment of the program's shape (zero
// buffers, zero sampler).
func (pr *Program) env() *stepEnv {
	m := newModel(pr.h)
	return newStepEnv(m, newActs(pr.h, pr.h.Batch), new(rand.PCG), pr.data, 0, pr.totalSteps, pr.p)
}

// encode appends buffer i's bytes to dst.
func (p *program) encode(e *stepEnv, i int, dst []byte) []byte {
	b := &p.bufs[i]
	switch b.kind {
	case kindF32:
		for _, v := range b.f32(e) {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case kindI32:
		for _, v := range b.i32(e) {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(v))
		}
	case kindF64:
		for _, v := range b.f64(e) {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	case kindStepRNG:
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.step))
		dst, _ = e.pcg.AppendBinary(dst)
	}
	return dst
}

// maxStep bounds the step counter a step.rng buffer may hold.
const maxStep = 1 << 40

// decode sets buffer i from src, checking its length and, for token and
// target ids, their range (so that no kernel indexes out of bounds).
func (p *program) decode(e *stepEnv, i int, src []byte) error {
	b := &p.bufs[i]
	if len(src) != b.bytes() {
		return fmt.Errorf("ml: buffer %s has %d bytes, want %d", b.name, len(src), b.bytes())
	}
	switch b.kind {
	case kindF32:
		x := b.f32(e)
		for j := range x {
			x[j] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*j:]))
		}
	case kindI32:
		x := b.i32(e)
		lo := int32(0)
		if b.name == "targets" {
			lo = -1
		}
		for j := range x {
			v := int32(binary.LittleEndian.Uint32(src[4*j:]))
			if v < lo || int(v) >= e.m.h.Vocab {
				return fmt.Errorf("ml: buffer %s element %d is %d, outside %d..%d", b.name, j, v, lo, e.m.h.Vocab-1)
			}
			x[j] = v
		}
	case kindF64:
		x := b.f64(e)
		for j := range x {
			x[j] = math.Float64frombits(binary.LittleEndian.Uint64(src[8*j:]))
		}
	case kindStepRNG:
		st := binary.LittleEndian.Uint64(src)
		if st > maxStep {
			return fmt.Errorf("ml: step %d out of range", st)
		}
		if err := e.pcg.UnmarshalBinary(src[8:]); err != nil {
			return fmt.Errorf("ml: sampler state: %w", err)
		}
		e.step = int(st)
	}
	return nil
}

// hashBuf is SHA-256 of buffer i's bytes; scratch is reused.
func (p *program) hashBuf(e *stepEnv, i int, scratch *[]byte) merkle.Hash {
	*scratch = p.encode(e, i, (*scratch)[:0])
	return merkle.Sum(*scratch)
}

// stateRoot is the step-state root of e's persistent buffers.
func (p *program) stateRoot(e *stepEnv, scratch *[]byte) merkle.Hash {
	var l [numPersistent]merkle.Hash
	for i := range l {
		l[i] = p.hashBuf(e, i, scratch)
	}
	return merkle.Root(l[:])
}

// ExecOp re-executes op (by index) from its input buffers alone, as a
// referee does: inputs must hold exactly the op's read buffers (by name,
// in their encoding) and the result holds its written buffers. Buffers the
// op neither reads nor writes play no part.
func (pr *Program) ExecOp(opIndex int, inputs map[string][]byte) (map[string][]byte, error) {
	if opIndex < 0 || opIndex >= len(pr.p.ops) {
		return nil, fmt.Errorf("ml: op %d of %d", opIndex, len(pr.p.ops))
	}
	o := &pr.p.ops[opIndex]
	if len(inputs) != len(o.reads) {
		return nil, fmt.Errorf("ml: op %s reads %d buffers, got %d", o.name, len(o.reads), len(inputs))
	}
	e := pr.env()
	for _, r := range o.reads {
		name := pr.p.bufs[r].name
		b, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("ml: op %s: input %s missing", o.name, name)
		}
		if err := pr.p.decode(e, r, b); err != nil {
			return nil, fmt.Errorf("ml: op %s: %w", o.name, err)
		}
	}
	o.run(e)
	out := make(map[string][]byte, len(o.writes))
	for _, w := range o.writes {
		out[pr.p.bufs[w].name] = pr.p.encode(e, w, nil)
	}
	return out, nil
}

// StateLeaves are the four step-state leaves of s.
func StateLeaves(s *State) ([]merkle.Hash, error) {
	m, err := s.model()
	if err != nil {
		return nil, err
	}
	pcg, err := s.sampler()
	if err != nil {
		return nil, err
	}
	p := programFor(m, 1)
	e := &stepEnv{m: m, pcg: pcg, step: s.Step}
	var scratch []byte
	out := make([]merkle.Hash, numPersistent)
	for i := range out {
		out[i] = p.hashBuf(e, i, &scratch)
	}
	return out, nil
}

// StateRoot is the step-state root of s.
func StateRoot(s *State) (merkle.Hash, error) {
	l, err := StateLeaves(s)
	if err != nil {
		return merkle.Hash{}, err
	}
	return merkle.Root(l), nil
}

// Stepper runs one training step op by op and keeps the op-state leaves.
type Stepper struct {
	pr      *Program
	e       *stepEnv
	leaves  []merkle.Hash
	defined []bool
	next    int
	start   int // the step the stepper started at
	scratch []byte
}

// NewStepper starts the step s.Step of s (copied; s is not changed).
func (pr *Program) NewStepper(s *State) (*Stepper, error) {
	if s.VocabSize != pr.vocab || s.Config.Key() != pr.cfg.Key() {
		return nil, fmt.Errorf("ml: state of another config or vocabulary")
	}
	if s.Step < 0 || s.Step >= pr.totalSteps {
		return nil, fmt.Errorf("ml: step %d outside the schedule of %d steps", s.Step, pr.totalSteps)
	}
	m, err := s.Clone().model()
	if err != nil {
		return nil, err
	}
	pcg, err := s.sampler()
	if err != nil {
		return nil, err
	}
	e := newStepEnv(m, newActs(pr.h, pr.h.Batch), pcg, pr.data, s.Step, pr.totalSteps, pr.p)
	x := &Stepper{pr: pr, e: e, leaves: make([]merkle.Hash, len(pr.p.bufs)), defined: make([]bool, len(pr.p.bufs)), start: s.Step}
	for i := 0; i < numPersistent; i++ {
		x.leaves[i] = pr.p.hashBuf(e, i, &x.scratch)
		x.defined[i] = true
	}
	return x, nil
}

// poison fills every scratch buffer with NaN (floats) or 0 (ids), as if a
// previous step had left garbage: a step must not depend on it.
func (x *Stepper) poison() {
	for _, b := range x.pr.p.bufs[numPersistent:] {
		switch b.kind {
		case kindF32:
			for i, s := 0, b.f32(x.e); i < len(s); i++ {
				s[i] = float32(math.NaN())
			}
		case kindF64:
			for i, s := 0, b.f64(x.e); i < len(s); i++ {
				s[i] = math.NaN()
			}
		}
	}
}

// Step is the step being run (0-based).
func (x *Stepper) Step() int { return x.start }

// Next is the index of the next op to run (NumOps when the step is done).
func (x *Stepper) Next() int { return x.next }

// RunOp runs the next op and updates the leaves of the buffers it writes.
func (x *Stepper) RunOp() error {
	if x.next >= len(x.pr.p.ops) {
		return fmt.Errorf("ml: step %d already done", x.start)
	}
	o := &x.pr.p.ops[x.next]
	for _, r := range o.reads {
		if !x.defined[r] {
			return fmt.Errorf("ml: op %s reads %s before it is written", o.name, x.pr.p.bufs[r].name)
		}
	}
	o.run(x.e)
	for _, w := range o.writes {
		x.leaves[w] = x.pr.p.hashBuf(x.e, w, &x.scratch)
		x.defined[w] = true
	}
	x.next++
	return nil
}

// RunTo runs ops until Next() == to, applying c (when it targets this
// step) right after its op.
func (x *Stepper) RunTo(to int, c *Corruption) error {
	if to < x.next || to > len(x.pr.p.ops) {
		return fmt.Errorf("ml: run to op %d from op %d of %d", to, x.next, len(x.pr.p.ops))
	}
	at := -1
	if c != nil && c.Step == x.start {
		var err error
		if at, err = c.opIndex(x.pr); err != nil {
			return err
		}
	}
	for x.next < to {
		if err := x.RunOp(); err != nil {
			return err
		}
		if x.next-1 == at {
			if err := x.Flip(c.buffer(), c.Index, c.Bit); err != nil {
				return err
			}
		}
	}
	return nil
}

// Leaves is a copy of the current op-state leaves.
func (x *Stepper) Leaves() []merkle.Hash { return append([]merkle.Hash(nil), x.leaves...) }

// Root is the current op-state root.
func (x *Stepper) Root() merkle.Hash { return OpStateRoot(x.leaves) }

// Buffer is the named buffer's current contents (an error while it is
// undefined in this step).
func (x *Stepper) Buffer(name string) ([]byte, error) {
	i, ok := x.pr.p.index[name]
	if !ok {
		return nil, fmt.Errorf("ml: no buffer %q", name)
	}
	if !x.defined[i] {
		return nil, fmt.Errorf("ml: buffer %s is undefined at op %d of step %d", name, x.next, x.start)
	}
	return x.pr.p.encode(x.e, i, nil), nil
}

// Flip flips one bit of one element of a defined buffer (for tests and
// benchmarks of the fraud proof: a corrupt execution) and updates its leaf.
// For step.rng, index is a byte offset.
func (x *Stepper) Flip(name string, index, bit int) error {
	i, ok := x.pr.p.index[name]
	if !ok || !x.defined[i] {
		return fmt.Errorf("ml: cannot flip buffer %q (unknown or undefined)", name)
	}
	b := x.pr.p.encode(x.e, i, nil)
	w := map[bufKind]int{kindF32: 4, kindI32: 4, kindF64: 8, kindStepRNG: 1}[x.pr.p.bufs[i].kind]
	if index < 0 || (index+1)*w > len(b) || bit < 0 || bit >= 8*w {
		return fmt.Errorf("ml: flip element %d bit %d of %s (%d bytes)", index, bit, name, len(b))
	}
	b[index*w+bit/8] ^= 1 << (bit % 8)
	if err := x.pr.p.decode(x.e, i, b); err != nil {
		return err
	}
	x.leaves[i] = merkle.Sum(b)
	return nil
}

// State is a copy of the persistent state now (after the last op run).
func (x *Stepper) State() *State {
	pcg, _ := x.e.pcg.MarshalBinary()
	return (&State{
		Config: x.pr.cfg, VocabSize: x.pr.vocab,
		Params: x.e.m.params, M: x.e.m.m, V: x.e.m.v,
		Step: x.e.step, RNG: pcg,
	}).Clone()
}

// Corruption describes a corrupt execution for tests and benchmarks: after
// op Op (by name; "" is the last op, adamw) of the 0-based step Step, flip
// bit Bit of element Index of buffer Buffer ("" is params), then continue
// honestly.
type Corruption struct {
	Step   int    `json:"step"`
	Op     string `json:"op,omitempty"`
	Buffer string `json:"buffer,omitempty"`
	Index  int    `json:"index"`
	Bit    int    `json:"bit"`
}

func (c *Corruption) buffer() string {
	if c.Buffer == "" {
		return "params"
	}
	return c.Buffer
}

func (c *Corruption) opIndex(pr *Program) (int, error) {
	if c.Op == "" {
		return pr.NumOps() - 1, nil
	}
	i, ok := pr.OpIndex(c.Op)
	if !ok {
		return 0, fmt.Errorf("ml: corruption names unknown op %q", c.Op)
	}
	return i, nil
}

// TraceOptions tunes Trace and StateAt.
type TraceOptions struct {
	// Stream is the batch sampler's stream (0 as plain training).
	Stream int
	// Corrupt, when set, makes the run corrupt (see Corruption).
	Corrupt *Corruption
}

// Trace trains cfg from seed for steps steps on data (the schedule of a
// run of steps steps) and returns the step-state root before step 0 and
// after every step: steps+1 roots. Its parameters are those of
// TrainSteps (and plain training) bit for bit, unless opts.Corrupt is set.
func Trace(ctx context.Context, cfg domains.Config, vocabSize int, seed int64, data []uint8, steps int, opts TraceOptions) ([]merkle.Hash, error) {
	pr, st, err := start(cfg, vocabSize, seed, data, steps, opts)
	if err != nil {
		return nil, err
	}
	roots := make([]merkle.Hash, 0, steps+1)
	r, err := StateRoot(st)
	if err != nil {
		return nil, err
	}
	roots = append(roots, r)
	err = pr.Run(ctx, st, steps, opts.Corrupt, func(_ int, r merkle.Hash) { roots = append(roots, r) })
	return roots, err
}

// StateAt is the state after the first at steps of the run Trace describes.
func StateAt(ctx context.Context, cfg domains.Config, vocabSize int, seed int64, data []uint8, steps, at int, opts TraceOptions) (*State, error) {
	pr, st, err := start(cfg, vocabSize, seed, data, steps, opts)
	if err != nil {
		return nil, err
	}
	return st, pr.Run(ctx, st, at, opts.Corrupt, nil)
}

func start(cfg domains.Config, vocabSize int, seed int64, data []uint8, steps int, opts TraceOptions) (*Program, *State, error) {
	pr, err := NewProgram(cfg, vocabSize, steps, data)
	if err != nil {
		return nil, nil, err
	}
	st, err := NewState(cfg, vocabSize, seed, opts.Stream)
	return pr, st, err
}

// Run continues st in place to step to (of the program's schedule),
// applying c when it targets one of the steps run, and calls root, when
// set, with each step's number (1-based: the state after it) and its
// step-state root. Honest steps are trainStep's, bit for bit.
func (pr *Program) Run(ctx context.Context, st *State, to int, c *Corruption, root func(step int, r merkle.Hash)) error {
	if to < st.Step || to > pr.totalSteps {
		return fmt.Errorf("ml: run from step %d to %d of %d", st.Step, to, pr.totalSteps)
	}
	if st.VocabSize != pr.vocab || st.Config.Key() != pr.cfg.Key() {
		return fmt.Errorf("ml: state of another config or vocabulary")
	}
	m, err := st.model()
	if err != nil {
		return err
	}
	pcg, err := st.sampler()
	if err != nil {
		return err
	}
	e := newStepEnv(m, newActs(pr.h, pr.h.Batch), pcg, pr.data, st.Step, pr.totalSteps, pr.p)
	var scratch []byte
	for e.step < to {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c != nil && c.Step == e.step {
			st.Step, st.RNG = e.step, mustMarshal(e.pcg)
			x, err := pr.NewStepper(st)
			if err != nil {
				return err
			}
			if err := x.RunTo(pr.NumOps(), c); err != nil {
				return err
			}
			next := x.State()
			copy(m.params, next.Params)
			copy(m.m, next.M)
			copy(m.v, next.V)
			if err := e.pcg.UnmarshalBinary(next.RNG); err != nil {
				return err
			}
			e.step = next.Step
		} else {
			e.trainStep()
		}
		if root != nil {
			root(e.step, pr.p.stateRoot(e, &scratch))
		}
	}
	st.Step, st.RNG = e.step, mustMarshal(e.pcg)
	return nil
}

func mustMarshal(p *rand.PCG) []byte {
	b, _ := p.MarshalBinary()
	return b
}

// StepOpRoots runs step s.Step of s op by op (with c applied when it
// targets that step) and returns the op-state roots before the first op
// and after every op: NumOps+1 roots.
func (pr *Program) StepOpRoots(s *State, c *Corruption) ([]merkle.Hash, error) {
	x, err := pr.NewStepper(s)
	if err != nil {
		return nil, err
	}
	roots := []merkle.Hash{x.Root()}
	for x.Next() < pr.NumOps() {
		if err := x.RunTo(x.Next()+1, c); err != nil {
			return nil, err
		}
		roots = append(roots, x.Root())
	}
	return roots, nil
}
