package ml

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Serving-side inference: a checkpoint loaded read-only (LM) and per-request
// attention state (KVState), computed with the trainer's own kernels.
//
// Exactness: every per-row operation of the forward pass (embedding, norms,
// the linear layers, the activation, the head) gives the same bits whatever
// the number of rows it runs on (gemm sums each output element over k in
// order, independently of the matrix shape), and the attention of a query
// at position i sums over keys [0, i] in order, the masked positions of a
// row block adding exact zeros. So the logits of incremental decoding,
// of a prompt prefilled in one chunk or in several, and of the training
// forward pass (model.forward) at the same positions are bit-identical, on
// the SIMD and the scalar kernels alike (TestLMMatchesTrainingForward,
// TestLMPrefillChunks).

// Checkpoint bounds checked before anything is allocated.
const (
	ckptMagic      = "HSMLCKPT"
	ckptVersion    = 1
	maxHeaderBytes = 1 << 20
	// prefillChunk is the most positions one internal forward pass runs
	// (longer prompts are cut into chunks of it; the result is the same),
	// which bounds the per-request scratch.
	prefillChunk = 64
)

// LM is a checkpoint of the ML domain's character-level transformer,
// loaded for serving. It is read-only after LoadLM, so one LM may serve any
// number of concurrent requests; every request keeps its own KVState.
type LM struct {
	m     *model // params only (no gradients or optimizer moments)
	h     hyper
	cfg   domains.Config
	vocab string
	ids   [256]int32 // byte -> token id (0: unknown)
	nl    int32      // id of '\n', the document separator (0 when absent)
	hash  string     // hex SHA-256 of the checkpoint bytes
	raw   [32]byte   // the same hash, raw
	seed  int64
	steps int
	// wout and bout are the output layer with its columns padded with
	// zeros to ldo, a multiple of 16 (whole SIMD panels; the extra logits
	// are discarded).
	wout, bout []float32
	ldo        int
	// scratch holds activation buffers (*scratch): a forward pass takes
	// one for its duration, so concurrent requests never share one.
	scratch sync.Pool
}

// LMInfo describes a loaded checkpoint.
type LMInfo struct {
	// Config is the normalised ML-domain config the checkpoint was trained
	// with (a copy).
	Config domains.Config
	// Vocab holds the vocabulary bytes: token id i+1 is Vocab[i], id 0 is
	// the unknown byte.
	Vocab string
	// VocabSize is the number of token ids (len(Vocab)+1).
	VocabSize int
	// ContextLength is the attention window in tokens (the number of
	// learned positions).
	ContextLength int
	// NumParams is the number of float32 parameters.
	NumParams int
	// Layers, DModel and Heads are the transformer's shape.
	Layers, DModel, Heads int
	// Seed and Steps are the training seed and optimizer steps recorded in
	// the checkpoint header.
	Seed  int64
	Steps int
}

// ckptHeader is the JSON header of a checkpoint (see model.checkpoint).
type ckptHeader struct {
	Format    string         `json:"format"`
	Config    domains.Config `json:"config"`
	Seed      int64          `json:"seed"`
	Steps     int            `json:"steps"`
	Vocab     *string        `json:"vocab"`
	Tensors   []tensor       `json:"tensors"`
	NumParams int            `json:"numParams"`
}

// ErrCheckpoint reports a checkpoint that does not parse or does not
// match its own header.
var ErrCheckpoint = errors.New("ml: invalid checkpoint")

func ckptErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCheckpoint, fmt.Sprintf(format, a...))
}

// LoadLM parses and validates a checkpoint written by training
// (model.checkpoint, Checkpoint): the magic and version, the JSON header,
// the config (complete, and valid for the domain's Validate), the
// vocabulary (1 to 127 distinct ASCII bytes: the JSON header cannot carry
// other bytes intact, and ASCII keeps every decoded piece valid UTF-8),
// the tensor layout (equal to the one
// training uses for that config and vocabulary), the parameter count and
// byte length (exact), and every parameter finite. Sizes are checked
// against the input's length before anything is allocated.
func LoadLM(ckpt []byte) (*LM, error) {
	if len(ckpt) < 16 || string(ckpt[:8]) != ckptMagic {
		return nil, ckptErr("no %q magic", ckptMagic)
	}
	if v := binary.LittleEndian.Uint32(ckpt[8:]); v != ckptVersion {
		return nil, ckptErr("format version %d, want %d", v, ckptVersion)
	}
	hn := binary.LittleEndian.Uint32(ckpt[12:])
	if hn > maxHeaderBytes || uint64(hn) > uint64(len(ckpt)-16) {
		return nil, ckptErr("header length %d exceeds the file (%d bytes) or the %d-byte limit", hn, len(ckpt), maxHeaderBytes)
	}
	rest := ckpt[16+hn:]
	var hdr ckptHeader
	if err := json.Unmarshal(ckpt[16:16+hn], &hdr); err != nil {
		return nil, ckptErr("header: %v", err)
	}
	if hdr.Format != "" && hdr.Format != "hyperspace-ml-checkpoint" {
		return nil, ckptErr("header format %q", hdr.Format)
	}
	if hdr.Config == nil {
		return nil, ckptErr("header has no config")
	}
	cfg, err := New().Validate(hdr.Config)
	if err != nil {
		return nil, ckptErr("config: %v", err)
	}
	if len(hdr.Config) != len(cfg) {
		return nil, ckptErr("config has %d of the %d parameters (a checkpoint records the normalised config)", len(hdr.Config), len(cfg))
	}
	if hdr.Vocab == nil {
		return nil, ckptErr("header has no vocab")
	}
	vocab := *hdr.Vocab
	if len(vocab) < 1 || len(vocab) > 127 {
		return nil, ckptErr("vocabulary of %d bytes (want 1..127)", len(vocab))
	}
	lm := &LM{vocab: vocab, cfg: cfg, seed: hdr.Seed, steps: hdr.Steps}
	for i := 0; i < len(vocab); i++ {
		b := vocab[i]
		if b >= 0x80 {
			return nil, ckptErr("vocabulary byte %#x is not ASCII", b)
		}
		if lm.ids[b] != 0 {
			return nil, ckptErr("vocabulary byte %q repeated", b)
		}
		lm.ids[b] = int32(i + 1)
	}
	lm.nl = lm.ids['\n']
	h := hyperFrom(cfg, len(vocab)+1)
	m, n := newLayout(h) // the layout only: the parameters come after the size checks
	if hdr.NumParams != n {
		return nil, ckptErr("header numParams %d, the config has %d", hdr.NumParams, n)
	}
	if len(rest) < 8 {
		return nil, ckptErr("no parameter count")
	}
	if c := binary.LittleEndian.Uint64(rest); c != uint64(n) {
		return nil, ckptErr("parameter count %d, the config has %d", c, n)
	}
	rest = rest[8:]
	if uint64(len(rest)) != 4*uint64(n) {
		return nil, ckptErr("%d parameter bytes, want exactly %d", len(rest), 4*n)
	}
	if len(hdr.Tensors) != len(m.tensors) {
		return nil, ckptErr("%d tensors, the config has %d", len(hdr.Tensors), len(m.tensors))
	}
	for i, t := range m.tensors {
		g := hdr.Tensors[i]
		if g.Name != t.Name || g.Off != t.Off || g.Rows != t.Rows || g.Cols != t.Cols {
			return nil, ckptErr("tensor %d is %s@%d %dx%d, want %s@%d %dx%d", i, g.Name, g.Off, g.Rows, g.Cols, t.Name, t.Off, t.Rows, t.Cols)
		}
	}
	m.params = make([]float32, n) // no gradients or optimizer moments
	for i := range m.params {
		v := math.Float32frombits(binary.LittleEndian.Uint32(rest[4*i:]))
		if v != v || math.IsInf(float64(v), 0) {
			return nil, ckptErr("parameter %d is not finite", i)
		}
		m.params[i] = v
	}
	lm.m, lm.h = m, h
	lm.ldo = (h.Vocab + 15) &^ 15
	lm.wout = make([]float32, h.DModel*lm.ldo)
	w := m.p(m.wout)
	for i := 0; i < h.DModel; i++ {
		copy(lm.wout[i*lm.ldo:], w[i*h.Vocab:(i+1)*h.Vocab])
	}
	lm.bout = make([]float32, lm.ldo)
	copy(lm.bout, m.p(m.bout))
	lm.raw = sha256.Sum256(ckpt)
	lm.hash = hex.EncodeToString(lm.raw[:])
	return lm, nil
}

// Info describes the model.
func (lm *LM) Info() LMInfo {
	return LMInfo{
		Config: lm.cfg.Clone(), Vocab: lm.vocab, VocabSize: lm.h.Vocab, ContextLength: lm.h.Ctx,
		NumParams: len(lm.m.params), Layers: lm.h.NLayers, DModel: lm.h.DModel, Heads: lm.h.NHeads,
		Seed: lm.seed, Steps: lm.steps,
	}
}

// Hash is the hex SHA-256 of the checkpoint bytes: the model's identity
// for caches and KV states.
func (lm *LM) Hash() string { return lm.hash }

// Encode turns text into token ids: ASCII letters are lowercased first
// (the corpus is lowercased), then every byte maps to its vocabulary id,
// bytes outside the vocabulary to 0 (unknown). Whitespace is not
// normalised.
func (lm *LM) Encode(s string) []int32 {
	out := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		out[i] = lm.ids[b]
	}
	return out
}

// unknownPiece is how Decode renders the unknown id 0 (and ids out of
// range): U+FFFD, the replacement character.
const unknownPiece = "\uFFFD"

// Decode turns token ids into text: id i >= 1 is the vocabulary byte
// Vocab[i-1]; 0 and ids out of range become U+FFFD.
func (lm *LM) Decode(ids []int32) string {
	var b []byte
	for _, id := range ids {
		b = append(b, lm.piece(id)...)
	}
	return string(b)
}

func (lm *LM) piece(id int32) string {
	if id >= 1 && int(id) <= len(lm.vocab) {
		return lm.vocab[id-1 : id]
	}
	return unknownPiece
}

// KVState is one request's attention state: for every layer the keys and
// values of positions [0, Len()) and the token ids at those positions.
// Positions are absolute: the token at index i used learned position i. A
// KVState belongs to the LM that made it (NewState, UnmarshalState) and
// must not be used by two goroutines at once.
type KVState struct {
	model  [32]byte // the LM's hash
	ctx, d int      // contextLength and dModel
	ldk    int      // row stride of the transposed keys (kvStride(ctx))
	tokens []int32
	// k[l] holds layer l's keys transposed (d×ldk: component c of the key
	// of position j at c·ldk + j, so head h's keys are the hd×ldk block at
	// h·hd·ldk). v[l] is Ctx×d: the value of position j at j·d.
	k, v [][]float32
}

// Len is the number of positions held.
func (st *KVState) Len() int { return len(st.tokens) }

// Tokens returns a copy of the token ids held.
func (st *KVState) Tokens() []int32 { return slices.Clone(st.tokens) }

// NewState returns an empty state for lm.
func (lm *LM) NewState() *KVState {
	h := lm.h
	st := &KVState{model: lm.raw, ctx: h.Ctx, d: h.DModel, ldk: kvStride(h.Ctx), tokens: make([]int32, 0, h.Ctx)}
	st.k = make([][]float32, h.NLayers)
	st.v = make([][]float32, h.NLayers)
	for l := range st.k {
		st.k[l] = make([]float32, st.ldk*h.DModel)
		st.v[l] = make([]float32, h.Ctx*h.DModel)
	}
	return st
}

// Clone returns a deep copy of st (without its scratch).
func (st *KVState) Clone() *KVState {
	c := &KVState{model: st.model, ctx: st.ctx, d: st.d, ldk: st.ldk, tokens: append(make([]int32, 0, st.ctx), st.tokens...)}
	c.k = make([][]float32, len(st.k))
	c.v = make([][]float32, len(st.v))
	for l := range st.k {
		c.k[l] = slices.Clone(st.k[l])
		c.v[l] = slices.Clone(st.v[l])
	}
	return c
}

// kvStride is the row stride of transposed keys and attention rows for a
// context of ctx: ctx rounded up to 16 columns, so that the score product
// of any prefix can run over whole 16-column panels of the SIMD kernel
// (the extra columns are computed and discarded).
func kvStride(ctx int) int { return (ctx + 15) &^ 15 }

// scratch is one request's activation buffers for up to prefillChunk rows
// (a multiple of 4: the row count of a pass is rounded up to 4 so that
// the SIMD kernel's 4-row panels read the activations in place; the extra
// rows start from zero and are discarded).
type scratch struct {
	x, h, qkv, ao, u, a, aux, mean, rstd, logits []float32
	p                                            []float32 // attention rows: heads × prefillChunk × ldp
	ldp                                          int
}

func (lm *LM) newScratch() *scratch {
	h := lm.h
	r, d := prefillChunk, h.DModel
	ldp := kvStride(h.Ctx)
	return &scratch{
		x: make([]float32, r*d), h: make([]float32, r*d), qkv: make([]float32, r*3*d), ao: make([]float32, r*d),
		u: make([]float32, r*h.ffIn()), a: make([]float32, r*h.ffHidden()), aux: make([]float32, r*h.ffHidden()),
		mean: make([]float32, r), rstd: make([]float32, r), logits: make([]float32, r*lm.ldo),
		p: make([]float32, h.NHeads*attnRowBlock*ldp), ldp: ldp,
	}
}

func (lm *LM) checkState(st *KVState) error {
	if st == nil {
		return errors.New("ml: nil KVState")
	}
	if st.model != lm.raw || len(st.k) != lm.h.NLayers || st.ctx != lm.h.Ctx || st.d != lm.h.DModel {
		return errors.New("ml: KVState belongs to another model")
	}
	return nil
}

// Prefill appends tokens to st and returns the logits (VocabSize values)
// of the last position. The positions are computed in batches (matrix
// products over up to 64 rows at a time) with the trainer's kernels; the
// result is bit-identical to feeding the tokens one at a time with Step.
//
// Context window: a state holds at most ContextLength positions. When
// appending a token would exceed it, the window restarts as the last
// ContextLength/2 tokens of the sequence (the new token included), which
// are prefilled again from position 0; appending continues from there.
// This is deterministic, and Prefill of many tokens ends in the same state
// as the same tokens appended one by one. With no tokens Prefill returns
// nil logits and leaves st as it is.
func (lm *LM) Prefill(st *KVState, tokens []int32) ([]float32, error) {
	if err := lm.checkState(st); err != nil {
		return nil, err
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= lm.h.Vocab {
			return nil, fmt.Errorf("ml: token %d at %d out of range 0..%d", t, i, lm.h.Vocab-1)
		}
	}
	if len(tokens) == 0 {
		return nil, nil
	}
	ctx := lm.h.Ctx
	if n := st.Len(); n+len(tokens) > ctx {
		win := windowAfter(ctx, n, len(tokens))
		all := append(slices.Clone(st.tokens), tokens...)
		tokens = all[len(all)-win:]
		st.tokens = st.tokens[:0]
	}
	var logits []float32
	for len(tokens) > 0 {
		c := min(len(tokens), prefillChunk)
		logits = lm.forward(st, tokens[:c], false)
		tokens = tokens[c:]
	}
	return logits, nil
}

// windowAfter is the window length after appending k tokens to a window
// of n under the context rule of Prefill (n+k > ctx).
func windowAfter(ctx, n, k int) int {
	half := max(ctx/2, 1)
	for k > 0 {
		room := ctx - n
		if k <= room {
			return n + k
		}
		k -= room + 1 // fill the window; the next token restarts it
		n = half
	}
	return n
}

// Step appends one token to st and returns the logits of its position
// (Prefill of one token).
func (lm *LM) Step(st *KVState, token int32) ([]float32, error) {
	return lm.Prefill(st, []int32{token})
}

// serialRows is the size below which the matrix products of a forward
// pass run on the calling goroutine (same bits as the parallel gemm).
const serialRows = 8

// linear writes y = x·w + b for rows×in x (the bits of linearForward).
func linear(x, w, b, y []float32, rows, in, out int) {
	for r := 0; r < rows; r++ {
		copy(y[r*out:(r+1)*out], b)
	}
	mm(x, in, w, out, y, out, rows, out, in, true)
}

// mm is C (+)= A·B for rows×k A and k×n B: the parallel gemm for large
// row counts, gemmSerial for small ones (identical results).
func mm(a []float32, lda int, b []float32, ldb int, c []float32, ldc, rows, n, k int, acc bool) {
	if rows >= serialRows {
		gemm(false, false, rows, n, k, a, lda, b, ldb, c, ldc, acc)
		return
	}
	gemmSerial(false, false, 0, rows, 0, n, k, a, lda, b, ldb, c, ldc, acc)
}

// forward appends tokens (at most prefillChunk, fitting in the window) to
// st and returns the logits of the last position, or of every position
// (rows×VocabSize) when all. The returned slice is a copy.
func (lm *LM) forward(st *KVState, tokens []int32, all bool) []float32 {
	m, h := lm.m, lm.h
	s, _ := lm.scratch.Get().(*scratch)
	if s == nil {
		s = lm.newScratch()
	}
	defer lm.scratch.Put(s)
	n, d, p0 := len(tokens), h.DModel, st.Len()
	rows := (n + 3) &^ 3 // padded (see scratch)
	fi, f := h.ffIn(), h.ffHidden()
	wte, wpe := m.p(m.wte), m.p(m.wpe)
	x := s.x[:rows*d]
	clear(x[n*d:])
	clear(s.ao[n*d : rows*d])
	for r, t := range tokens {
		xr := x[r*d : (r+1)*d]
		e := wte[int(t)*d : (int(t)+1)*d]
		pe := wpe[(p0+r)*d : (p0+r+1)*d]
		e, pe = e[:len(xr)], pe[:len(xr)]
		for i := range xr {
			xr[i] = e[i] + pe[i]
		}
	}
	st.tokens = append(st.tokens, tokens...)
	hb, qkv, ao := s.h[:rows*d], s.qkv[:rows*3*d], s.ao[:rows*d]
	for l := range m.layers {
		lp := m.layers[l]
		normForward(h.Norm, x, m.p(lp.n1g), m.p(lp.n1b), hb, s.mean, s.rstd, rows, d)
		linear(hb, m.p(lp.wqkv), m.p(lp.bqkv), qkv, rows, d, 3*d)
		lm.attend(st, s, l, p0, n, qkv, ao)
		// x = x + bo + ao·wo (projFwd)
		addBiasRows(x, m.p(lp.bo), rows, d)
		mm(ao, d, m.p(lp.wo), d, x, d, rows, d, d, true)
		normForward(h.Norm, x, m.p(lp.n2g), m.p(lp.n2b), hb, s.mean, s.rstd, rows, d)
		u := s.u[:rows*fi]
		linear(hb, m.p(lp.w1), m.p(lp.b1), u, rows, d, fi)
		act := s.a[:rows*f]
		var aux []float32
		if h.Activation != actReLU {
			aux = s.aux[:rows*f]
		}
		actForward(h.Activation, u, act, aux, rows, f)
		// x = x + b2 + act·w2 (fc2Fwd)
		addBiasRows(x, m.p(lp.b2), rows, d)
		mm(act, f, m.p(lp.w2), d, x, d, rows, d, f, true)
	}
	// The head runs on the last 4 rows (the last position among them) or
	// on all.
	first, nr := rows-4, 4
	if all {
		first, nr = 0, rows
	}
	normForward(h.Norm, x[first*d:], m.p(m.nfg), m.p(m.nfb), hb, s.mean, s.rstd, nr, d)
	V, lv := h.Vocab, lm.ldo
	linear(hb, lm.wout, lm.bout, s.logits, nr, d, lv)
	r0 := n - 1 - first
	if all {
		r0 = 0
	}
	out := make([]float32, 0, (n-first-r0)*V)
	for r := r0; r < n-first; r++ {
		out = append(out, s.logits[r*lv:r*lv+V]...)
	}
	return out
}

// attend stores the keys and values of rows new positions (from p0) of
// layer l in st and writes their causal self-attention output to ao
// (rows×d), as attnForward does for the same positions.
func (lm *LM) attend(st *KVState, s *scratch, l, p0, rows int, qkv, ao []float32) {
	h := lm.h
	d, H, T := h.DModel, h.NHeads, st.ldk
	hd := d / H
	K, V := st.k[l], st.v[l]
	for r := 0; r < rows; r++ {
		pos := p0 + r
		q := qkv[r*3*d : (r+1)*3*d]
		for c, v := range q[d : 2*d] {
			K[c*T+pos] = v
		}
		copy(V[pos*d:(pos+1)*d], q[2*d:3*d])
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	ldp := s.ldp
	nb := (rows + attnRowBlock - 1) / attnRowBlock
	task := func(t int) {
		hh, b := t%H, t/H
		P := s.p[hh*attnRowBlock*ldp : (hh+1)*attnRowBlock*ldp]
		i0, i1 := b*attnRowBlock, min((b+1)*attnRowBlock, rows)
		cols := p0 + i1 // keys visible to the block's last row
		Q := qkv[i0*3*d+hh*hd:]
		// S = Q·Kᵀ for the block's rows (P row r-i0 holds row r), over
		// whole 16-column panels (see kvStride).
		gemmSerial(false, false, 0, i1-i0, 0, min((cols+15)&^15, T), hd, Q, 3*d, K[hh*hd*T:], T, P, ldp, false)
		for i := i0; i < i1; i++ {
			pr := P[(i-i0)*ldp : (i-i0+1)*ldp]
			n := p0 + i + 1
			softmaxRow(pr, n, scale)
			clear(pr[n:cols])
		}
		gemmSerial(false, false, 0, i1-i0, 0, hd, cols, P, ldp, V[hh*hd:], d, ao[i0*d+hh*hd:], d, false)
	}
	// One row block per task; heads in parallel only when there is work
	// enough to pay for it (each task has its own slice of s.p, so the
	// blocks of one head run one after another).
	if rows*(p0+rows)*d >= 1<<15 {
		for b := 0; b < nb; b++ {
			parallelFor(H, func(hh int) { task(b*H + hh) })
		}
		return
	}
	for t := 0; t < nb*H; t++ {
		task(t)
	}
}
