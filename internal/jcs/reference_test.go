package jcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// canonicalizeTokens is the token-stream implementation Canonicalize
// replaced, kept as the reference of FuzzCanonicalizeReference. It parses jsonBytes (one JSON value, surrounding whitespace
// allowed) and returns its RFC 8785 canonical form.
func canonicalizeTokens(jsonBytes []byte) ([]byte, error) {
	if !utf8.Valid(jsonBytes) {
		return nil, errors.New("jcs: input is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(jsonBytes))
	dec.UseNumber()
	var buf bytes.Buffer
	buf.Grow(len(jsonBytes))
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("jcs: empty input")
		}
		return nil, fmt.Errorf("jcs: %w", err)
	}
	if err := refWriteValue(&buf, dec, tok, "$"); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, errors.New("jcs: trailing data after JSON value")
		}
		return nil, fmt.Errorf("jcs: trailing data after JSON value: %w", err)
	}
	return buf.Bytes(), nil
}

// writeValue writes the canonical form of the value that starts with tok.
// path is a JSONPath-like location used in error messages.
func refWriteValue(buf *bytes.Buffer, dec *json.Decoder, tok json.Token, path string) error {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return refWriteObject(buf, dec, path)
		case '[':
			return refWriteArray(buf, dec, path)
		}
		return fmt.Errorf("jcs: %s: unexpected %q", path, t)
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("jcs: %s: number %s is not a finite IEEE 754 double", path, t)
		}
		s, err := FormatNumber(f)
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case string:
		refWriteString(buf, t)
	case bool:
		if t {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case nil:
		buf.WriteString("null")
	default:
		return fmt.Errorf("jcs: %s: unexpected token %T", path, tok)
	}
	return nil
}

func refWriteObject(buf *bytes.Buffer, dec *json.Decoder, path string) error {
	var members []refMember
	seen := map[string]bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("jcs: %s: %w", path, err)
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			break
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("jcs: %s: object key is %T, not a string", path, tok)
		}
		if seen[key] {
			return fmt.Errorf("jcs: %s: duplicate object member %q", path, key)
		}
		seen[key] = true
		vtok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("jcs: %s.%s: %w", path, key, err)
		}
		var vb bytes.Buffer
		if err := refWriteValue(&vb, dec, vtok, path+"."+key); err != nil {
			return err
		}
		members = append(members, refMember{key: key, units: utf16.Encode([]rune(key)), value: vb.Bytes()})
	}
	sort.Slice(members, func(i, j int) bool { return lessUTF16(members[i].units, members[j].units) })
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		refWriteString(buf, m.key)
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return nil
}

func refWriteArray(buf *bytes.Buffer, dec *json.Decoder, path string) error {
	buf.WriteByte('[')
	for i := 0; ; i++ {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("jcs: %s: %w", path, err)
		}
		if d, ok := tok.(json.Delim); ok && d == ']' {
			break
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := refWriteValue(buf, dec, tok, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	return nil
}

type refMember struct {
	key   string
	units []uint16
	value []byte
}

// lessUTF16 compares two strings as arrays of UTF-16 code units.
func lessUTF16(a, b []uint16) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func refWriteString(buf *bytes.Buffer, s string) { buf.Write(appendString(nil, []byte(s))) }

// FuzzCanonicalizeReference checks Canonicalize against the token-stream
// implementation it replaced: both accept the same inputs and produce the
// same bytes (error messages may differ).
func FuzzCanonicalizeReference(f *testing.F) {
	for _, s := range []string{
		`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"literals":[null,true,false]}`,
		`{"\u20ac":"Euro","\r":"CR","\ufb33":"x","1":"One","\ud83d\ude00":"e","\u0080":"c"}`,
		`{"דּ":1,"😀":2,"a":3,"B":4,"":5,"a\u0000":6}`,
		`[1e21, 1e-7, -0, -0.0, 5e-324, 123456789012345, 1234567890123456, 9007199254740993, "\u0001\"\\"]`,
		`{"a":{"b":[{}, [], ""]}}`,
		`{"a":1,"\u0061":2}`,
		`{"z":{"y":1,"x":2},"w":[{"b":1,"a":2}]}`,
		`"\ud800" `, `"\udc00\ud800x"`, `  42  `, `-`, `01`, `1.`, `1e`, `[1,]`, `{"a":1,}`,
		`tru`, `nul`, `"abc`, "\"a\tb\"", `"\x"`, `"\u12"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Canonicalize(in)
		want, refErr := canonicalizeTokens(in)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("%q: Canonicalize err %v, reference err %v", in, err, refErr)
		}
		if err == nil && string(got) != string(want) {
			t.Fatalf("%q:\n got  %q\n want %q", in, got, want)
		}
	})
}

func TestDepthLimit(t *testing.T) {
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, err := Canonicalize([]byte(deep)); err != nil {
		t.Fatalf("depth %d: %v", maxDepth, err)
	}
	deeper := "[" + deep + "]"
	if _, err := Canonicalize([]byte(deeper)); err == nil {
		t.Fatalf("depth %d accepted", maxDepth+1)
	}
}

// benchDoc is shaped like a research receipt as json.Marshal writes it
// (struct field order, so objects need reordering).
const benchDoc = `{"version":1,"project":"p2ptest","peerId":"hs1abcdefghijklmnopqrstuvwxyz234567abcd","publicKey":"MCowBQYDK2VwAyEAq1w2e3r4t5y6u7i8o9p0asdfghjklzxcvbnm1234=","runNumber":17,"timestamp":1764760000123,"hypothesis":"run 17 of hs1abc: lower lr \"warmup\"","config":{"lr":0.003,"layers":4,"heads":[1,2,4],"opt":{"name":"adam","beta2":0.999}},"result":{"valLoss":0.05555555555555555,"trainLoss":0,"lossCurve":[[0,4.2],[100,3.1],[200,2.5]],"durationSec":12.5,"tokensPerSec":1234.5,"totalTokens":100000,"values":{"ndcg":0.017}},"improvement":0,"isNewBest":false,"inspiredBy":null,"gpu":null,"domain":"search","campaign":"p2ptest","agent":"agent","seed":17,"metric":{"name":"ndcg","direction":"maximize","value":0.017,"testValue":0},"parents":[],"proposer":"","baseline":false,"noiseFloor":null,"beatsNoiseFloor":false,"artifacts":{}}`

func BenchmarkCanonicalize(b *testing.B) {
	in := []byte(benchDoc)
	b.Run("single-pass", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := Canonicalize(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("token-stream", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := canonicalizeTokens(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzAppendNumber: appendNumber writes what FormatNumber returns.
func FuzzAppendNumber(f *testing.F) {
	for _, v := range []float64{0, -0.0, 1, -1, 0.1, 1e21, 1e-7, 1e-6, 123456789012345680000, 5e-324, math.MaxFloat64, 333333333.33333329, 4.5, 2e-3, 1e30} {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		want, err := FormatNumber(v)
		if err != nil {
			return
		}
		if got := string(appendNumber(nil, v)); got != want {
			t.Fatalf("%v (%#x): appendNumber %q, FormatNumber %q", v, bits, got, want)
		}
	})
}
