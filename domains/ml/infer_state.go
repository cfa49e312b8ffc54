package ml

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
)

// KV state format (little endian), MarshalBinary and UnmarshalState:
//
//	[8]byte   magic "HSMLKVST"
//	uint32    format version (1)
//	[32]byte  the model's SHA-256 (LM.Hash, raw)
//	uint32    nLayers
//	uint32    dModel
//	uint32    contextLength
//	uint32    n, the number of positions (0..contextLength)
//	[n]uint32 the token ids at positions 0..n-1
//	then for each layer l in order: K_l then V_l, each n×dModel float32,
//	row-major (row j is position j's key or value, heads in consecutive
//	blocks of dModel/nHeads as the attention projection lays them out)
//
// The length is exactly 60 + 4n + 8·nLayers·n·dModel bytes.
const (
	kvMagic     = "HSMLKVST"
	kvVersion   = 1
	kvHeaderLen = 8 + 4 + 32 + 4*4
)

// MarshalBinary encodes st in the KV state format above.
func (st *KVState) MarshalBinary() ([]byte, error) {
	if st == nil || len(st.k) == 0 {
		return nil, errors.New("ml: empty KVState")
	}
	L, n, d, T, ldk := len(st.k), st.Len(), st.d, st.ctx, st.ldk
	out := make([]byte, 0, kvHeaderLen+4*n+8*L*n*d)
	out = append(out, kvMagic...)
	out = binary.LittleEndian.AppendUint32(out, kvVersion)
	out = append(out, st.model[:]...)
	out = binary.LittleEndian.AppendUint32(out, uint32(L))
	out = binary.LittleEndian.AppendUint32(out, uint32(d))
	out = binary.LittleEndian.AppendUint32(out, uint32(T))
	out = binary.LittleEndian.AppendUint32(out, uint32(n))
	for _, t := range st.tokens {
		out = binary.LittleEndian.AppendUint32(out, uint32(t))
	}
	for l := 0; l < L; l++ {
		K := st.k[l]
		for j := 0; j < n; j++ {
			for c := 0; c < d; c++ {
				out = binary.LittleEndian.AppendUint32(out, math.Float32bits(K[c*ldk+j]))
			}
		}
		for _, v := range st.v[l][:n*d] {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	}
	return out, nil
}

// UnmarshalState decodes a state written by MarshalBinary for this model:
// it checks the magic, version and model hash, the shape against lm's, the
// position count (at most ContextLength), the exact length, the token ids
// and that every key and value is finite. It does not recompute the keys
// and values: a state from an untrusted source can be spot-checked with
// VerifyState.
func (lm *LM) UnmarshalState(b []byte) (*KVState, error) {
	if len(b) < kvHeaderLen || string(b[:8]) != kvMagic {
		return nil, fmt.Errorf("ml: KV state: no %q magic", kvMagic)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != kvVersion {
		return nil, fmt.Errorf("ml: KV state: format version %d, want %d", v, kvVersion)
	}
	if [32]byte(b[12:44]) != lm.raw {
		return nil, fmt.Errorf("ml: KV state is for model %x, not %s", b[12:44], lm.hash)
	}
	L, d, T, n := le.Uint32(b[44:]), le.Uint32(b[48:]), le.Uint32(b[52:]), le.Uint32(b[56:])
	h := lm.h
	if int64(L) != int64(h.NLayers) || int64(d) != int64(h.DModel) || int64(T) != int64(h.Ctx) {
		return nil, fmt.Errorf("ml: KV state shape %d layers × %d × context %d, the model has %d × %d × %d", L, d, T, h.NLayers, h.DModel, h.Ctx)
	}
	if int64(n) > int64(h.Ctx) {
		return nil, fmt.Errorf("ml: KV state holds %d positions, more than the context length %d", n, h.Ctx)
	}
	N, D := int(n), h.DModel
	if want := kvHeaderLen + 4*N + 8*h.NLayers*N*D; len(b) != want {
		return nil, fmt.Errorf("ml: KV state of %d positions is %d bytes, want exactly %d", N, len(b), want)
	}
	st := lm.NewState()
	p := b[kvHeaderLen:]
	for i := 0; i < N; i++ {
		t := le.Uint32(p[4*i:])
		if t >= uint32(h.Vocab) {
			return nil, fmt.Errorf("ml: KV state token %d at %d out of range 0..%d", t, i, h.Vocab-1)
		}
		st.tokens = append(st.tokens, int32(t))
	}
	p = p[4*N:]
	// Every value must be finite: exponent bits not all ones.
	for i := 0; i+4 <= len(p); i += 4 {
		if le.Uint32(p[i:])&0x7f800000 == 0x7f800000 {
			return nil, fmt.Errorf("ml: KV state value %d is not finite", i/4)
		}
	}
	ldk := st.ldk
	for l := 0; l < h.NLayers; l++ {
		kb := p[2*l*N*D*4 : (2*l+1)*N*D*4]
		vb := p[(2*l+1)*N*D*4 : (2*l+2)*N*D*4]
		K, V := st.k[l], st.v[l]
		for j := 0; j < N; j++ {
			row := kb[j*D*4 : (j+1)*D*4]
			for c := 0; c < D; c++ {
				K[c*ldk+j] = math.Float32frombits(le.Uint32(row[4*c:]))
			}
		}
		for i := range V[:N*D] {
			V[i] = math.Float32frombits(le.Uint32(vb[4*i:]))
		}
	}
	return st, nil
}

// PrefixHash names the state of a token prefix under a model: the hex
// SHA-256 of "hyperspace-ml-prefix/1", a NUL, modelHash, a NUL, then the
// token ids as little-endian uint32.
func PrefixHash(modelHash string, tokens []int32) string {
	hs := sha256.New()
	hs.Write([]byte("hyperspace-ml-prefix/1\x00"))
	hs.Write([]byte(modelHash))
	hs.Write([]byte{0})
	var buf [4 * 256]byte
	for len(tokens) > 0 {
		c := min(len(tokens), 256)
		for i, t := range tokens[:c] {
			binary.LittleEndian.PutUint32(buf[4*i:], uint32(t))
		}
		hs.Write(buf[:4*c])
		tokens = tokens[c:]
	}
	return hex.EncodeToString(hs.Sum(nil))
}

// ErrStateMismatch reports a KV state whose keys or values are not the ones
// its tokens produce under the model.
var ErrStateMismatch = errors.New("ml: KV state does not match its tokens")

// VerifyState recomputes the keys and values of the given positions of st
// (from its tokens and its own keys and values of the earlier positions)
// and reports ErrStateMismatch when any differs in any bit. Checking every
// position costs about one prefill; checking a few random ones catches a
// state with many altered positions with high probability at a fraction of
// that. st is not modified.
func (lm *LM) VerifyState(st *KVState, positions []int) error {
	if err := lm.checkState(st); err != nil {
		return err
	}
	h := lm.h
	d, T, ldk := h.DModel, h.Ctx, st.ldk
	for _, pos := range positions {
		if pos < 0 || pos >= st.Len() {
			return fmt.Errorf("ml: position %d outside the state's %d", pos, st.Len())
		}
		c := &KVState{model: st.model, ctx: T, d: d, ldk: ldk, tokens: append(make([]int32, 0, T), st.tokens[:pos]...)}
		c.k = make([][]float32, h.NLayers)
		c.v = make([][]float32, h.NLayers)
		for l := range c.k {
			c.k[l] = slices.Clone(st.k[l])
			c.v[l] = slices.Clone(st.v[l])
		}
		lm.forward(c, st.tokens[pos:pos+1], false)
		for l := range c.k {
			for q := 0; q < d; q++ {
				if math.Float32bits(c.k[l][q*ldk+pos]) != math.Float32bits(st.k[l][q*ldk+pos]) ||
					math.Float32bits(c.v[l][pos*d+q]) != math.Float32bits(st.v[l][pos*d+q]) {
					return fmt.Errorf("%w: layer %d position %d", ErrStateMismatch, l, pos)
				}
			}
		}
	}
	return nil
}
