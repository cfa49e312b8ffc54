package tensor

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestF16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		if (h>>10)&0x1f == 0x1f {
			continue // inf/NaN
		}
		f := F16ToF32(uint16(h))
		if back := F32ToF16(f); back != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
	// Nearest-even rounding of arbitrary float32 values.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		x := float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(12)-8)))
		h := F32ToF16(x)
		got := float64(F16ToF32(h))
		if math.Abs(float64(x)) > 65504 {
			continue
		}
		for _, nb := range []uint16{h - 1, h + 1} {
			if (nb>>10)&0x1f == 0x1f {
				continue
			}
			alt := float64(F16ToF32(nb))
			if math.Abs(alt-float64(x)) < math.Abs(got-float64(x)) {
				t.Fatalf("%v -> %v, but %v is nearer", x, got, alt)
			}
		}
	}
	if F16ToF32(F32ToF16(1e6)) != 65504 || F16ToF32(F32ToF16(-1e6)) != -65504 {
		t.Fatal("no saturation")
	}
}

func TestRoundTripAndSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	layout := []Info{{"a", 0, 3, 5}, {"b", 15, 1, 7}, {"c", 22, 100, 101}}
	n := layoutNumel(layout)
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.01)
	}
	x[16] = 0.5 // a large value in tensor b only
	for _, c := range Codecs {
		b, err := Encode("delta", layout, map[string]int{"round": 3}, Vec{Name: "delta", Codec: c, Block: 512, Data: x})
		if err != nil {
			t.Fatal(err)
		}
		f, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		got, _ := f.Vec("delta")
		want := RoundTrip(c, layout, 512, x)
		var maxErr float64
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: decode %v != RoundTrip %v at %d", c, got[i], want[i], i)
			}
			maxErr = max(maxErr, math.Abs(float64(got[i]-x[i])))
		}
		var m struct{ Round int }
		if err := f.Meta(&m); err != nil || m.Round != 3 {
			t.Fatalf("meta %v %v", m, err)
		}
		sec := f.Header.Sections[0]
		var nb int
		if c.Quantised() {
			nb = len(blocks(layout, n, 512))
		}
		if sec.Bytes != encodedSize(c, n, nb) {
			t.Fatalf("%s: %d bytes", c, sec.Bytes)
		}
		// Error bounds: fp32 exact; fp16 relative 2^-11; int8/int4 half a
		// quantisation step of the block (blocks never span tensors, so
		// tensor b's 0.5 does not coarsen tensor a's grid).
		bound := map[Codec]float64{FP32: 0, FP16: 0.5 * 0.0005, Int8: 0.5 * 0.05 / 127, Int4: 0.5 * 0.05 / 7}[c]
		var maxA float64
		for i := 0; i < 15; i++ {
			maxA = max(maxA, math.Abs(float64(got[i]-x[i])))
		}
		if maxA > bound*1.01 {
			t.Fatalf("%s: max error in tensor a %g > %g", c, maxA, bound)
		}
		t.Logf("%s: %d bytes for %d values, max error %.3g", c, len(b), n, maxErr)
	}
}

func TestDecodeRejects(t *testing.T) {
	x := []float32{1, 2, 3, 4}
	good, _ := Encode("params", nil, nil, Vec{Name: "p", Codec: Int8, Data: x})
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXTENSOR"), good[8:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Encode("p", nil, nil, Vec{Name: "p", Codec: FP32, Data: []float32{float32(math.NaN())}}); err == nil {
		t.Error("NaN encoded")
	}
	if _, err := ParseCodec("int3"); err == nil {
		t.Error("int3 accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range Codecs {
		b, _ := Encode("delta", []Info{{"w", 0, 2, 3}}, map[string]int{"r": 1}, Vec{Name: "d", Codec: c, Block: 4, Data: []float32{1, -2, 3, 0.5, 0, -0.25}})
		f.Add(b)
		z, _ := Encode("delta", nil, nil, Vec{Name: "d", Codec: c, Block: 64, Deflate: true, Data: make([]float32, 300)})
		f.Add(z)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not ErrFormat: %v", err)
			}
			return
		}
		for _, s := range file.Header.Sections {
			v := file.Vecs[s.Name]
			if len(v) != s.Numel {
				t.Fatalf("section %s: %d values, header %d", s.Name, len(v), s.Numel)
			}
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatal("non-finite value decoded")
				}
			}
		}
	})
}

func TestCompactEqualsLayout(t *testing.T) {
	layout := []Info{{"a", 0, 3, 5}, {"b", 15, 1, 700}}
	x := make([]float32, 715)
	for i := range x {
		x[i] = float32(i%13) - 6
	}
	full, _ := Encode("delta", layout, nil, Vec{Name: "d", Codec: Int8, Block: 64, Data: x})
	compact, _ := EncodeCompact("delta", layout, nil, Vec{Name: "d", Codec: Int8, Block: 64, Data: x})
	if len(compact) >= len(full) {
		t.Fatalf("compact %d bytes, full %d", len(compact), len(full))
	}
	a, err := Decode(full)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(compact)
	if err != nil {
		t.Fatal(err)
	}
	for i := range x {
		if a.Vecs["d"][i] != b.Vecs["d"][i] {
			t.Fatalf("value %d differs", i)
		}
	}
}

func TestDeflate(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	x := make([]float32, 50000)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.01)
	}
	plain, _ := Encode("delta", nil, nil, Vec{Name: "d", Codec: Int8, Data: x})
	z, _ := Encode("delta", nil, nil, Vec{Name: "d", Codec: Int8, Data: x, Deflate: true})
	a, err := Decode(plain)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(z)
	if err != nil {
		t.Fatal(err)
	}
	for i := range x {
		if a.Vecs["d"][i] != b.Vecs["d"][i] {
			t.Fatalf("value %d differs", i)
		}
	}
	if b.Header.Sections[0].Entropy != "deflate" || len(z) >= len(plain) {
		t.Fatalf("deflate %d bytes vs %d", len(z), len(plain))
	}
	t.Logf("int8: %d bytes stored, %d deflated", len(plain), len(z))
	// A bomb: a tiny stream claiming a huge section.
	big := make([]float32, 1<<20)
	stored, _ := Encode("delta", nil, nil, Vec{Name: "d", Codec: Int8, Data: big, Deflate: true})
	if f, err := Decode(stored); err != nil || f.Header.Sections[0].Entropy != "" {
		t.Fatalf("an all-zero vector must be stored so that it decodes: %v", err)
	}
	raw := encodedSize(Int8, len(big), numBlocks(nil, len(big), DefaultBlock))
	zb := deflate(make([]byte, raw))
	hdr, _ := json.Marshal(Header{Format: "hyperspace-tensor", Kind: "delta", Sections: []Section{{Name: "d", Codec: Int8, Numel: len(big), Block: DefaultBlock, Bytes: len(zb), Entropy: "deflate"}}})
	bomb := append([]byte("HSTENSOR\x01\x00\x00\x00"), byte(len(hdr)), byte(len(hdr)>>8), byte(len(hdr)>>16), byte(len(hdr)>>24))
	bomb = append(append(bomb, hdr...), zb...)
	if _, err := Decode(bomb); !errors.Is(err, ErrFormat) {
		t.Fatalf("deflate bomb (%d bytes for %d values): %v", len(bomb), len(big), err)
	}
}
