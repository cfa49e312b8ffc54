// Package jcs implements the JSON Canonicalization Scheme (JCS) of RFC 8785.
//
// Canonical JSON is what receipts are hashed and signed over: the same
// logical document always serialises to the same bytes, whatever the key
// order, whitespace or number spelling of the input.
//
// The rules (RFC 8785 section 3.2):
//   - no insignificant whitespace;
//   - object members sorted by their names compared as arrays of UTF-16
//     code units;
//   - strings escaped minimally: \" \\ \b \f \n \r \t, other control
//     characters as \u00xx (lowercase hex), everything else verbatim (UTF-8);
//   - numbers are IEEE 754 doubles serialised like ECMAScript's
//     Number.prototype.toString (shortest round-trip digits, exponent form
//     below 1e-6 and from 1e21 on, -0 as 0); NaN and Infinity cannot occur.
//
// Inputs must be I-JSON (RFC 7493): valid UTF-8, no duplicate object
// member names, numbers representable as finite doubles. Violations are
// errors. Integers beyond 2^53 lose precision exactly as they would in
// JavaScript; callers that need exact large integers must encode them as
// strings.
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
	"unicode/utf16"
	"unicode/utf8"
)

// Canonicalize parses jsonBytes (one JSON value, surrounding whitespace
// allowed) and returns its RFC 8785 canonical form.
func Canonicalize(jsonBytes []byte) ([]byte, error) {
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
	if err := writeValue(&buf, dec, tok, "$"); err != nil {
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

// Marshal encodes v with encoding/json and canonicalises the result.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("jcs: %w", err)
	}
	return Canonicalize(b)
}

// writeValue writes the canonical form of the value that starts with tok.
// path is a JSONPath-like location used in error messages.
func writeValue(buf *bytes.Buffer, dec *json.Decoder, tok json.Token, path string) error {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return writeObject(buf, dec, path)
		case '[':
			return writeArray(buf, dec, path)
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
		writeString(buf, t)
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

type member struct {
	key   string
	units []uint16
	value []byte
}

func writeObject(buf *bytes.Buffer, dec *json.Decoder, path string) error {
	var members []member
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
		if err := writeValue(&vb, dec, vtok, path+"."+key); err != nil {
			return err
		}
		members = append(members, member{key: key, units: utf16.Encode([]rune(key)), value: vb.Bytes()})
	}
	sort.Slice(members, func(i, j int) bool { return lessUTF16(members[i].units, members[j].units) })
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, m.key)
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return nil
}

func writeArray(buf *bytes.Buffer, dec *json.Decoder, path string) error {
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
		if err := writeValue(buf, dec, tok, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	return nil
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

const hexDigits = "0123456789abcdef"

// writeString writes s as a JSON string literal using RFC 8785 escaping.
func writeString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf.WriteString(s[start:i])
		switch c {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\b':
			buf.WriteString(`\b`)
		case '\f':
			buf.WriteString(`\f`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case '\t':
			buf.WriteString(`\t`)
		default:
			buf.WriteString(`\u00`)
			buf.WriteByte(hexDigits[c>>4])
			buf.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

// FormatNumber serialises f like ECMAScript's Number.prototype.toString
// (ECMA-262 7.1.12.1), as RFC 8785 requires. NaN and ±Inf are errors.
func FormatNumber(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("jcs: %v is not allowed in JSON", f)
	}
	if f == 0 {
		return "0", nil // also -0
	}
	var sb strings.Builder
	if f < 0 {
		sb.WriteByte('-')
		f = -f
	}
	// Shortest round-trip digits: "d.ddddde±XX".
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, err := strconv.Atoi(expStr)
	if err != nil {
		return "", fmt.Errorf("jcs: formatting %v: %w", f, err)
	}
	k := len(digits)
	n := exp + 1 // the decimal point sits after n digits
	switch {
	case k <= n && n <= 21:
		sb.WriteString(digits)
		sb.WriteString(strings.Repeat("0", n-k))
	case 0 < n && n <= 21:
		sb.WriteString(digits[:n])
		sb.WriteByte('.')
		sb.WriteString(digits[n:])
	case -6 < n && n <= 0:
		sb.WriteString("0.")
		sb.WriteString(strings.Repeat("0", -n))
		sb.WriteString(digits)
	default:
		sb.WriteByte(digits[0])
		if k > 1 {
			sb.WriteByte('.')
			sb.WriteString(digits[1:])
		}
		sb.WriteByte('e')
		if n-1 >= 0 {
			sb.WriteByte('+')
		}
		sb.WriteString(strconv.Itoa(n - 1))
	}
	return sb.String(), nil
}
