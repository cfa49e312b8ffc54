package jcs

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

func TestRFC8785MainExample(t *testing.T) {
	in := `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	want := `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
	got, err := Canonicalize([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestRFC8785SortingExample(t *testing.T) {
	in := `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`
	want := `{"\r":"Carriage Return","1":"One","` + "\u0080" + `":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","דּ":"Hebrew Letter Dalet With Dagesh"}`
	got, err := Canonicalize([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestUTF16Order checks that a supplementary-plane key (surrogates 0xD83D…)
// sorts before U+FB33 although its code point is larger: the comparison is
// by UTF-16 code units, not by code points or UTF-8 bytes.
func TestUTF16Order(t *testing.T) {
	got, err := Canonicalize([]byte(`{"דּ":1,"😀":2,"a":3,"B":4,"":5}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"":5,"B":4,"a":3,"😀":2,"דּ":1}`
	if string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

// ES6 number vectors from RFC 8785 appendix B (IEEE 754 bits -> text).
func TestES6Numbers(t *testing.T) {
	vectors := []struct{ bits, want string }{
		{"0000000000000000", "0"},
		{"8000000000000000", "0"},
		{"0000000000000001", "5e-324"},
		{"8000000000000001", "-5e-324"},
		{"7fefffffffffffff", "1.7976931348623157e+308"},
		{"ffefffffffffffff", "-1.7976931348623157e+308"},
		{"4340000000000000", "9007199254740992"},
		{"c340000000000000", "-9007199254740992"},
		{"4430000000000000", "295147905179352830000"},
		{"44b52d02c7e14af5", "9.999999999999997e+22"},
		{"44b52d02c7e14af6", "1e+23"},
		{"44b52d02c7e14af7", "1.0000000000000001e+23"},
		{"444b1ae4d6e2ef4e", "999999999999999700000"},
		{"444b1ae4d6e2ef4f", "999999999999999900000"},
		{"444b1ae4d6e2ef50", "1e+21"},
		{"3eb0c6f7a0b5ed8c", "9.999999999999997e-7"},
		{"3eb0c6f7a0b5ed8d", "0.000001"},
		{"41b3de4355555553", "333333333.3333332"},
		{"41b3de4355555554", "333333333.33333325"},
		{"41b3de4355555555", "333333333.3333333"},
		{"41b3de4355555556", "333333333.3333334"},
		{"41b3de4355555557", "333333333.33333343"},
		{"becbf647612f3696", "-0.0000033333333333333333"},
		{"43143ff3c1cb0959", "1424953923781206.2"},
	}
	for _, v := range vectors {
		u, err := strconv.ParseUint(v.bits, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		f := math.Float64frombits(u)
		got, err := FormatNumber(f)
		if err != nil {
			t.Fatalf("%s: %v", v.bits, err)
		}
		if got != v.want {
			t.Errorf("%s (%v): got %s want %s", v.bits, f, got, v.want)
		}
		// The same through the text path: canonicalising Go's own spelling.
		c, err := Canonicalize([]byte(strconv.FormatFloat(f, 'g', -1, 64)))
		if err != nil || string(c) != v.want {
			t.Errorf("%s via Canonicalize: got %s, %v want %s", v.bits, c, err, v.want)
		}
	}
	for _, bits := range []string{"7fffffffffffffff", "7ff0000000000000", "fff0000000000000"} {
		u, _ := strconv.ParseUint(bits, 16, 64)
		if _, err := FormatNumber(math.Float64frombits(u)); err == nil {
			t.Errorf("%s: want error for non-finite number", bits)
		}
	}
}

func TestNumberSpellings(t *testing.T) {
	cases := map[string]string{
		"1e21":                          "1e+21",
		"1E30":                          "1e+30",
		"4.50":                          "4.5",
		"2e-3":                          "0.002",
		"0.000000000000000000000000001": "1e-27",
		"-0":                            "0",
		"-0.0e5":                        "0",
		"333333333.33333329":            "333333333.3333333",
		"5e-324":                        "5e-324",
		"1.7976931348623157e308":        "1.7976931348623157e+308",
		"9007199254740992":              "9007199254740992",
		"9007199254740993":              "9007199254740992",
		"100":                           "100",
		"1e20":                          "100000000000000000000",
		"123456789012345678901":         "123456789012345680000",
		"0.1":                           "0.1",
		"1e-6":                          "0.000001",
		"1e-7":                          "1e-7",
		"-1.5e-7":                       "-1.5e-7",
		"12.34e10":                      "123400000000",
		"[1.0, -2.50, 3e2]":             "[1,-2.5,300]",
	}
	for in, want := range cases {
		got, err := Canonicalize([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s: got %s want %s", in, got, want)
		}
	}
}

func TestStringEscapes(t *testing.T) {
	in := `"\u0000\u0001\u001f\b\f\n\r\t \" \\ \/ < > & \u2028 \u00e9 \ud83d\ude00 \u007f"`
	want := `"\u0000\u0001\u001f\b\f\n\r\t \" \\ / < > & ` + "\u2028 é 😀 \u007f" + `"`
	got, err := Canonicalize([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestRejects(t *testing.T) {
	bad := []string{
		``,
		`   `,
		`{`,
		`{"a":1,}`,
		`[1,]`,
		`[1 2]`,
		`{"a" 1}`,
		`{"a":1 "b":2}`,
		`1 2`,
		`{"a":1}x`,
		`{"a":1,"a":2}`,
		`1e400`,
		`-1e400`,
		`NaN`,
		`Infinity`,
		`'a'`,
		"\"\xff\"",
		`01`,
		`{1:2}`,
	}
	for _, in := range bad {
		if got, err := Canonicalize([]byte(in)); err == nil {
			t.Errorf("%q: want error, got %s", in, got)
		}
	}
}

func TestMarshal(t *testing.T) {
	v := map[string]any{
		"z":    []any{1, 2.5, "x<y>&"},
		"a":    map[string]any{"b": nil, "a": true},
		"html": "<b>",
		"neg0": math.Copysign(0, -1),
	}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":{"a":true,"b":null},"html":"<b>","neg0":0,"z":[1,2.5,"x<y>&"]}`
	if string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if _, err := Marshal(math.NaN()); err == nil {
		t.Fatal("Marshal(NaN): want error")
	}
	if _, err := Marshal(map[string]float64{"x": math.Inf(1)}); err == nil {
		t.Fatal("Marshal(+Inf): want error")
	}
}

func TestIdempotent(t *testing.T) {
	inputs := []string{
		`{"b":[1,2,{"d":4.50,"c":"\u000f"}],"a":{"y":1e21,"x":-0}}`,
		`[]`, `{}`, `""`, `null`, `true`, `-1.25e-9`,
		`{"\u20ac":1,"\ud83d\ude00":2,"\ufb33":3}`,
	}
	for _, in := range inputs {
		once, err := Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		twice, err := Canonicalize(once)
		if err != nil {
			t.Fatalf("%s: second pass: %v", in, err)
		}
		if string(once) != string(twice) {
			t.Errorf("not idempotent: %s -> %s -> %s", in, once, twice)
		}
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"literals":[null,true,false]}`,
		`{"\u20ac":"Euro","\r":"CR","\ufb33":"x","1":"One","\ud83d\ude00":"e"}`,
		`[1e21, 1e-7, -0, 5e-324, "\u0001\"\\"]`,
		`{"a":{"b":[{}, [], ""]}}`,
		`  42  `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		if err != nil {
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON %q -> %q", in, out)
		}
		if !json.Valid(out) {
			t.Fatalf("output is not valid JSON: %q -> %q", in, out)
		}
		again, err := Canonicalize(out)
		if err != nil {
			t.Fatalf("canonical output rejected: %q: %v", out, err)
		}
		if string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}
