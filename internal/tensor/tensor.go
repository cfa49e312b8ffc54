// Package tensor is the one format in which parameters, parameter deltas
// and optimizer state cross process, machine and backend boundaries (the Go
// trainer, the PyTorch worker, S3, libp2p streams). It also holds the
// compression codecs DiLoCo uses for pseudo-gradients.
//
// Format (little endian), "hyperspace tensor file" version 1:
//
//	[8]byte  magic "HSTENSOR"
//	uint32   version (1)
//	uint32   n = length of the JSON header
//	[n]byte  JSON header (Header): kind, layout, sections, meta
//	[]byte   payload: the sections' bytes, back to back, in header order
//
// A section is one flat vector of Numel values in one codec:
//
//	fp32  Numel × float32 (IEEE 754 binary32)
//	fp16  Numel × uint16 (IEEE 754 binary16, round to nearest even;
//	      magnitudes beyond 65504 saturate to ±65504)
//	int8  NB × float32 scales, then Numel × int8 (two's complement);
//	      value = scale[b] × q, q in -127..127
//	int4  NB × float32 scales, then ceil(Numel/2) bytes, two 4-bit two's
//	      complement values per byte, the lower index in the low nibble;
//	      value = scale[b] × q, q in -7..7
//
// A section may be entropy-coded ("entropy": "deflate"): its bytes are then
// the DEFLATE stream of the encoding above, at most 256 times smaller than
// it (a decoder refuses more, so a small input cannot claim a huge one).
//
// Blocks (int8, int4): when the header has a layout, every tensor of the
// layout is cut into blocks of at most Block values (a block never spans
// two tensors, since tensors differ in scale); without a layout the flat
// vector is cut into blocks of Block values. NB is the number of blocks.
// scale = max|x| / qmax over the block, q = round-half-even(x / scale),
// and dequantisation is float32(scale × float32(q)) so every backend
// reconstructs identical bits.
//
// The file's content hash (sha256 of all its bytes) names it in S3.
package tensor

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Codec names a section encoding.
type Codec string

// The codecs.
const (
	FP32 Codec = "fp32"
	FP16 Codec = "fp16"
	Int8 Codec = "int8"
	Int4 Codec = "int4"
)

// Codecs lists the codecs in order of size.
var Codecs = []Codec{FP32, FP16, Int8, Int4}

// ParseCodec validates a codec name.
func ParseCodec(s string) (Codec, error) {
	for _, c := range Codecs {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown compression %q (want fp32, fp16, int8 or int4)", s)
}

// Quantised reports whether c uses block scales.
func (c Codec) Quantised() bool { return c == Int8 || c == Int4 }

// DefaultBlock is the block size used for int8 and int4 when none is given.
const DefaultBlock = 4096

// Limits on decoded input.
const (
	MaxHeader = 1 << 20
	MaxNumel  = 1 << 28
	magic     = "HSTENSOR"
	version   = 1
)

// Info is one tensor of a layout.
type Info struct {
	Name   string `json:"name"`
	Offset int    `json:"offset"`
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
}

// Section describes one vector in the payload.
type Section struct {
	Name  string `json:"name"`
	Codec Codec  `json:"codec"`
	Numel int    `json:"numel"`
	Block int    `json:"block,omitempty"`
	Bytes int    `json:"bytes"`
	// Entropy "deflate": the section's bytes are the DEFLATE (RFC 1951)
	// stream of the encoding above; empty: stored as is.
	Entropy string `json:"entropy,omitempty"`
}

// Header is the JSON header.
type Header struct {
	Format string `json:"format"`
	Kind   string `json:"kind"`
	Layout []Info `json:"layout,omitempty"`
	// Segments, instead of Layout, gives only the tensors' sizes (what block
	// boundaries need): the compact header of deltas and updates.
	Segments []int           `json:"segments,omitempty"`
	Sections []Section       `json:"sections"`
	Meta     json.RawMessage `json:"meta,omitempty"`
}

// Vec is a named vector to encode.
type Vec struct {
	Name  string
	Codec Codec
	Block int // int8/int4 block size; 0 = DefaultBlock
	Data  []float32
	// Deflate entropy-codes the section (kept only when it is smaller).
	// Lossless: quantised pseudo-gradients are mostly small codes.
	Deflate bool
}

// File is a decoded tensor file: every section dequantised to float32.
type File struct {
	Header Header
	Vecs   map[string][]float32
}

// Encode writes a tensor file of kind with the given layout (may be nil),
// vectors and meta (any JSON-marshalable value, or nil).
func Encode(kind string, layout []Info, meta any, vecs ...Vec) ([]byte, error) {
	return encode(kind, layout, false, meta, vecs)
}

// EncodeCompact is Encode with the layout written as Segments (sizes only).
func EncodeCompact(kind string, layout []Info, meta any, vecs ...Vec) ([]byte, error) {
	return encode(kind, layout, true, meta, vecs)
}

func encode(kind string, layout []Info, compact bool, meta any, vecs []Vec) ([]byte, error) {
	h := Header{Format: "hyperspace-tensor", Kind: kind, Layout: layout}
	if compact {
		h.Layout = nil
		for _, t := range layout {
			h.Segments = append(h.Segments, t.Rows*t.Cols)
		}
	}
	if meta != nil {
		mb, err := json.Marshal(meta)
		if err != nil {
			return nil, err
		}
		h.Meta = mb
	}
	var payload bytes.Buffer
	for _, v := range vecs {
		blk := v.Block
		if v.Codec.Quantised() && blk <= 0 {
			blk = DefaultBlock
		}
		if !v.Codec.Quantised() {
			blk = 0
		}
		b, err := encodeVec(v.Codec, v.Data, blocks(layout, len(v.Data), blk))
		if err != nil {
			return nil, fmt.Errorf("tensor: section %s: %w", v.Name, err)
		}
		sec := Section{Name: v.Name, Codec: v.Codec, Numel: len(v.Data), Block: blk}
		if v.Deflate {
			// Only what Decode accepts: at most maxInflate times smaller.
			if z := deflate(b); len(z) < len(b) && len(b) <= maxInflate*len(z)+4096 {
				b, sec.Entropy = z, "deflate"
			}
		}
		sec.Bytes = len(b)
		h.Sections = append(h.Sections, sec)
		payload.Write(b)
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(16 + len(hb) + payload.Len())
	out.WriteString(magic)
	_ = binary.Write(&out, binary.LittleEndian, uint32(version))
	_ = binary.Write(&out, binary.LittleEndian, uint32(len(hb)))
	out.Write(hb)
	out.Write(payload.Bytes())
	return out.Bytes(), nil
}

// Hash is the hex sha256 of a file's bytes.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ErrFormat marks input that is not a valid tensor file.
var ErrFormat = errors.New("tensor: invalid file")

func formatErr(f string, a ...any) error {
	return fmt.Errorf("%w: "+f, append([]any{ErrFormat}, a...)...)
}

// Decode parses and dequantises a tensor file. It never allocates more
// than the input's size justifies.
func Decode(b []byte) (*File, error) {
	if len(b) < 16 || string(b[:8]) != magic {
		return nil, formatErr("bad magic")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != version {
		return nil, formatErr("version %d", v)
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if n > MaxHeader || int(n) > len(b)-16 {
		return nil, formatErr("header length %d", n)
	}
	var h Header
	if err := json.Unmarshal(b[16:16+n], &h); err != nil {
		return nil, formatErr("header: %v", err)
	}
	if h.Format != "hyperspace-tensor" {
		return nil, formatErr("format %q", h.Format)
	}
	if len(h.Segments) > 0 {
		if len(h.Layout) > 0 {
			return nil, formatErr("both layout and segments")
		}
		off := 0
		for _, n := range h.Segments {
			if n < 0 || n > MaxNumel-off {
				return nil, formatErr("segment of %d values at %d", n, off)
			}
			h.Layout = append(h.Layout, Info{Offset: off, Rows: 1, Cols: n})
			off += n
		}
	}
	if err := checkLayout(h.Layout); err != nil {
		return nil, err
	}
	rest := b[16+n:]
	f := &File{Header: h, Vecs: map[string][]float32{}}
	for _, s := range h.Sections {
		if _, err := ParseCodec(string(s.Codec)); err != nil {
			return nil, formatErr("section %q: %v", s.Name, err)
		}
		if s.Numel < 0 || s.Numel > MaxNumel {
			return nil, formatErr("section %q: numel %d", s.Name, s.Numel)
		}
		if _, dup := f.Vecs[s.Name]; dup {
			return nil, formatErr("duplicate section %q", s.Name)
		}
		if s.Codec.Quantised() && (s.Block < 1 || s.Block > MaxNumel) {
			return nil, formatErr("section %q: block %d", s.Name, s.Block)
		}
		if len(h.Layout) > 0 && s.Numel != layoutNumel(h.Layout) {
			return nil, formatErr("section %q: %d values, layout has %d", s.Name, s.Numel, layoutNumel(h.Layout))
		}
		nb := 0
		if s.Codec.Quantised() {
			nb = numBlocks(h.Layout, s.Numel, s.Block)
		}
		want := encodedSize(s.Codec, s.Numel, nb)
		raw := rest
		switch s.Entropy {
		case "":
			if s.Bytes != want || want > len(rest) {
				return nil, formatErr("section %q: %d bytes declared, %d expected, %d present", s.Name, s.Bytes, want, len(rest))
			}
		case "deflate":
			if s.Bytes < 1 || s.Bytes > len(rest) || want > maxInflate*s.Bytes+4096 {
				return nil, formatErr("section %q: %d deflated bytes for %d (%d present)", s.Name, s.Bytes, want, len(rest))
			}
			var err error
			if raw, err = inflate(rest[:s.Bytes], want); err != nil {
				return nil, formatErr("section %q: %v", s.Name, err)
			}
		default:
			return nil, formatErr("section %q: entropy coding %q", s.Name, s.Entropy)
		}
		var bl []int
		if s.Codec.Quantised() {
			bl = blocks(h.Layout, s.Numel, s.Block)
		}
		v, err := decodeVec(s.Codec, raw[:want], s.Numel, bl)
		if err != nil {
			return nil, formatErr("section %q: %v", s.Name, err)
		}
		f.Vecs[s.Name] = v
		rest = rest[s.Bytes:]
	}
	if len(rest) != 0 {
		return nil, formatErr("%d trailing bytes", len(rest))
	}
	return f, nil
}

// Meta unmarshals the file's meta into v.
func (f *File) Meta(v any) error {
	if len(f.Header.Meta) == 0 {
		return formatErr("no meta")
	}
	return json.Unmarshal(f.Header.Meta, v)
}

// Vec returns the named section, or an error naming what is missing.
func (f *File) Vec(name string) ([]float32, error) {
	v, ok := f.Vecs[name]
	if !ok {
		return nil, formatErr("no section %q", name)
	}
	return v, nil
}

func checkLayout(l []Info) error {
	off := 0
	for _, t := range l {
		if t.Rows < 0 || t.Cols < 0 || t.Offset != off || t.Rows > MaxNumel || t.Cols > MaxNumel || t.Rows*t.Cols > MaxNumel-off {
			return formatErr("layout tensor %q at %d (%dx%d), expected offset %d", t.Name, t.Offset, t.Rows, t.Cols, off)
		}
		off += t.Rows * t.Cols
	}
	return nil
}

func layoutNumel(l []Info) int {
	n := 0
	for _, t := range l {
		n += t.Rows * t.Cols
	}
	return n
}

// maxInflate bounds how many times its size a deflated section may expand
// (DEFLATE can reach ~1000x; a decoder of outside input must not).
const maxInflate = 256

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// inflate decompresses exactly n bytes from z.
func inflate(z []byte, n int) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(z))
	defer r.Close()
	out := make([]byte, 0, min(n, 64<<10))
	buf := bytes.NewBuffer(out)
	got, err := io.Copy(buf, io.LimitReader(r, int64(n)+1))
	if err != nil {
		return nil, err
	}
	if got != int64(n) {
		return nil, fmt.Errorf("inflated to %d bytes, want %d", got, n)
	}
	return buf.Bytes(), nil
}

// numBlocks is len(blocks(layout, n, blk)), computed without allocating.
func numBlocks(layout []Info, n, blk int) int {
	if len(layout) > 0 && layoutNumel(layout) == n {
		nb := 0
		for _, t := range layout {
			nb += (t.Rows*t.Cols + blk - 1) / blk
		}
		return nb
	}
	return (n + blk - 1) / blk
}

// blocks returns the end offsets of the blocks of a vector of n values
// (nil for blk 0).
func blocks(layout []Info, n, blk int) []int {
	if blk <= 0 {
		return nil
	}
	var ends []int
	cut := func(lo, hi int) {
		for s := lo; s < hi; s += blk {
			ends = append(ends, min(s+blk, hi))
		}
	}
	if len(layout) > 0 && layoutNumel(layout) == n {
		for _, t := range layout {
			cut(t.Offset, t.Offset+t.Rows*t.Cols)
		}
		return ends
	}
	cut(0, n)
	return ends
}

func encodedSize(c Codec, n, nb int) int {
	switch c {
	case FP32:
		return 4 * n
	case FP16:
		return 2 * n
	case Int8:
		return 4*nb + n
	case Int4:
		return 4*nb + (n+1)/2
	}
	return -1
}

// qmax is the largest quantised magnitude of a codec.
func qmax(c Codec) float32 {
	if c == Int4 {
		return 7
	}
	return 127
}

func encodeVec(c Codec, x []float32, ends []int) ([]byte, error) {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("value %d is %v", i, v)
		}
	}
	out := make([]byte, encodedSize(c, len(x), len(ends)))
	switch c {
	case FP32:
		for i, v := range x {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case FP16:
		for i, v := range x {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToF16(v))
		}
	case Int8, Int4:
		q := Quantise(c, x, ends)
		copy(out, q.scaleBytes())
		data := out[4*len(ends):]
		if c == Int8 {
			for i, v := range q.Q {
				data[i] = byte(v)
			}
		} else {
			for i, v := range q.Q {
				nib := byte(v) & 0x0f
				if i%2 == 0 {
					data[i/2] = nib
				} else {
					data[i/2] |= nib << 4
				}
			}
		}
	default:
		return nil, fmt.Errorf("unknown codec %q", c)
	}
	return out, nil
}

func decodeVec(c Codec, b []byte, n int, ends []int) ([]float32, error) {
	out := make([]float32, n)
	switch c {
	case FP32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			if f := float64(out[i]); math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("value %d is not finite", i)
			}
		}
	case FP16:
		for i := range out {
			out[i] = F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
			if f := float64(out[i]); math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("value %d is not finite", i)
			}
		}
	case Int8, Int4:
		scales := make([]float32, len(ends))
		for i := range scales {
			scales[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			if f := float64(scales[i]); math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				return nil, fmt.Errorf("block %d scale %v", i, scales[i])
			}
		}
		data := b[4*len(ends):]
		lim := int8(qmax(c))
		lo := 0
		for bi, hi := range ends {
			s := scales[bi]
			for i := lo; i < hi; i++ {
				var q int8
				if c == Int8 {
					q = int8(data[i])
				} else {
					nib := data[i/2]
					if i%2 == 1 {
						nib >>= 4
					}
					q = int8(nib<<4) >> 4
				}
				if q > lim || q < -lim {
					return nil, fmt.Errorf("value %d: code %d out of range", i, q)
				}
				out[i] = Dequant(s, q)
			}
			lo = hi
		}
	}
	return out, nil
}

// Dequant is the one dequantisation rule: float32(scale × float32(q)).
func Dequant(scale float32, q int8) float32 { return float32(scale * float32(q)) }

// Quantised is a block-quantised vector.
type Quantised struct {
	Codec  Codec
	Ends   []int     // block end offsets
	Scales []float32 // per block
	Q      []int8
}

// Quantise block-quantises x (absmax scaling, round half to even).
func Quantise(c Codec, x []float32, ends []int) Quantised {
	qm := qmax(c)
	q := Quantised{Codec: c, Ends: ends, Scales: make([]float32, len(ends)), Q: make([]int8, len(x))}
	lo := 0
	for bi, hi := range ends {
		var amax float32
		for _, v := range x[lo:hi] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		s := amax / qm
		q.Scales[bi] = s
		if s > 0 {
			for i := lo; i < hi; i++ {
				r := math.RoundToEven(float64(x[i] / s))
				q.Q[i] = int8(max(-float64(qm), min(float64(qm), r)))
			}
		}
		lo = hi
	}
	return q
}

// Dequantise reconstructs the float32 vector of q.
func (q Quantised) Dequantise() []float32 {
	out := make([]float32, len(q.Q))
	lo := 0
	for bi, hi := range q.Ends {
		for i := lo; i < hi; i++ {
			out[i] = Dequant(q.Scales[bi], q.Q[i])
		}
		lo = hi
	}
	return out
}

func (q Quantised) scaleBytes() []byte {
	b := make([]byte, 4*len(q.Scales))
	for i, s := range q.Scales {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(s))
	}
	return b
}

// RoundTrip returns what a receiver decodes after x is encoded with codec c
// in blocks of blk under layout (the lossy channel DiLoCo's error feedback
// compensates for). It is exactly Decode(Encode(...)).
func RoundTrip(c Codec, layout []Info, blk int, x []float32) []float32 {
	switch c {
	case FP32:
		return append([]float32(nil), x...)
	case FP16:
		out := make([]float32, len(x))
		for i, v := range x {
			out[i] = F16ToF32(F32ToF16(v))
		}
		return out
	}
	if blk <= 0 {
		blk = DefaultBlock
	}
	return Quantise(c, x, blocks(layout, len(x), blk)).Dequantise()
}

// F32ToF16 converts to IEEE binary16, rounding to nearest even; finite
// values beyond the binary16 range saturate to ±65504, NaN stays NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b >> 23) & 0xff)
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7bff // ±inf saturates too
	}
	e := exp - 127 + 15
	switch {
	case e >= 31:
		return sign | 0x7bff
	case e <= 0:
		if e < -10 {
			return sign
		}
		// Subnormal: shift the mantissa with its implicit bit.
		m := man | 0x800000
		shift := uint(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	if h >= 0x7c00 {
		return sign | 0x7bff
	}
	return sign | uint16(h)
}

// F16ToF32 converts IEEE binary16 to float32 (exact).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := int(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = man × 2^-24.
		v := float32(man) * float32(1.0/(1<<24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | man<<13)
}
