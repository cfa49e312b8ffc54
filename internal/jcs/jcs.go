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
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and objects, as encoding/json's
// decoder does (its scanner refuses more than 10000 levels).
const maxDepth = 10000

// Canonicalize parses jsonBytes (one JSON value, surrounding whitespace
// allowed) and returns its RFC 8785 canonical form.
//
// It is a single-pass parser over the bytes (no token stream, no
// intermediate values): strings without escapes and short integers are
// copied as they are, members are written in input order and then
// reordered in place. Strings with escapes are decoded by encoding/json,
// so their meaning (including U+FFFD for lone surrogates) is exactly
// encoding/json's. FuzzCanonicalizeReference checks it against the
// token-stream implementation it replaced.
func Canonicalize(jsonBytes []byte) ([]byte, error) {
	if !utf8.Valid(jsonBytes) {
		return nil, errors.New("jcs: input is not valid UTF-8")
	}
	p := parsers.Get().(*parser)
	defer p.release()
	p.in, p.pos, p.out = jsonBytes, 0, make([]byte, 0, len(jsonBytes))
	p.skipSpace()
	if p.pos == len(p.in) {
		return nil, errors.New("jcs: empty input")
	}
	if err := p.value(0); err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return nil, fmt.Errorf("jcs: trailing data after JSON value at offset %d", p.pos)
	}
	return p.out, nil
}

// Marshal encodes v with encoding/json and canonicalises the result.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("jcs: %w", err)
	}
	return Canonicalize(b)
}

// parser writes the canonical form of in to out as it reads it.
type parser struct {
	in      []byte
	pos     int
	out     []byte
	members []member // a stack shared by the objects being parsed
	scratch []byte   // reordering buffer
}

// parsers keeps the scratch space of finished parsers.
var parsers = sync.Pool{New: func() any { return new(parser) }}

// release returns p to the pool, keeping only modest scratch buffers.
func (p *parser) release() {
	p.in, p.out = nil, nil
	clear(p.members[:cap(p.members)]) // no references into the caller's bytes
	if cap(p.members) > 1024 || cap(p.scratch) > 64<<10 {
		return
	}
	p.members, p.scratch = p.members[:0], p.scratch[:0]
	parsers.Put(p)
}

// member is one object member already written to out: its decoded name
// and where its canonical `"name":value` lies in out.
type member struct {
	key        []byte
	start, end int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("jcs: offset %d: "+format, append([]any{p.pos}, args...)...)
}

func (p *parser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value writes the value that starts at p.pos (whitespace skipped).
func (p *parser) value(depth int) error {
	if p.pos >= len(p.in) {
		return p.errorf("unexpected end of input")
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		if depth >= maxDepth {
			return p.errorf("nesting deeper than %d", maxDepth)
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= maxDepth {
			return p.errorf("nesting deeper than %d", maxDepth)
		}
		return p.array(depth + 1)
	case c == '"':
		key, err := p.str()
		if err != nil {
			return err
		}
		p.out = appendString(p.out, key)
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.errorf("invalid character %q looking for a value", c)
	}
}

func (p *parser) literal(lit string) error {
	if len(p.in)-p.pos < len(lit) || string(p.in[p.pos:p.pos+len(lit)]) != lit {
		return p.errorf("invalid literal")
	}
	p.pos += len(lit)
	p.out = append(p.out, lit...)
	return nil
}

// str reads the string literal at p.pos and returns its decoded bytes
// (aliasing the input when the literal has no escapes).
func (p *parser) str() ([]byte, error) {
	start := p.pos
	p.pos++ // opening quote
	escaped := false
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !escaped {
				return p.in[start+1 : p.pos-1], nil
			}
			// Escapes mean exactly what encoding/json makes of them.
			var s string
			if err := json.Unmarshal(p.in[start:p.pos], &s); err != nil {
				return nil, p.errorf("string: %v", err)
			}
			return []byte(s), nil
		case c == '\\':
			escaped = true
			if p.pos+1 >= len(p.in) {
				return nil, p.errorf("unterminated string")
			}
			switch p.in[p.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.pos += 2
			case 'u':
				if p.pos+6 > len(p.in) {
					return nil, p.errorf("unterminated string")
				}
				for _, h := range p.in[p.pos+2 : p.pos+6] {
					if !isHex(h) {
						return nil, p.errorf("invalid \\u escape")
					}
				}
				p.pos += 6
			default:
				return nil, p.errorf("invalid escape \\%c", p.in[p.pos+1])
			}
		case c < 0x20:
			return nil, p.errorf("control character %#x in string", c)
		default:
			p.pos++
		}
	}
	return nil, p.errorf("unterminated string")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number reads a JSON number (RFC 8259 grammar) and writes its ECMAScript
// form.
func (p *parser) number() error {
	start := p.pos
	in := p.in
	i := p.pos
	if in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case i < len(in) && in[i] >= '1' && in[i] <= '9':
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	default:
		return p.errorf("invalid number")
	}
	integer := true
	if i < len(in) && in[i] == '.' {
		integer = false
		i++
		if i >= len(in) || !isDigit(in[i]) {
			return p.errorf("invalid number")
		}
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		integer = false
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if i >= len(in) || !isDigit(in[i]) {
			return p.errorf("invalid number")
		}
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	}
	tok := in[start:i]
	p.pos = i
	// Integers of up to 15 digits are exact doubles whose ECMAScript form
	// is their own spelling (no leading zeros can occur), except -0.
	if integer && len(tok) <= 15 {
		if string(tok) == "-0" {
			tok = tok[1:]
		}
		p.out = append(p.out, tok...)
		return nil
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("jcs: offset %d: number %s is not a finite IEEE 754 double", start, tok)
	}
	p.out = appendNumber(p.out, f)
	return nil
}

func (p *parser) array(depth int) error {
	p.pos++ // [
	p.out = append(p.out, '[')
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.out = append(p.out, ']')
		return nil
	}
	for {
		p.skipSpace()
		if err := p.value(depth); err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.in) {
			return p.errorf("unterminated array")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			p.out = append(p.out, ',')
		case ']':
			p.pos++
			p.out = append(p.out, ']')
			return nil
		default:
			return p.errorf("invalid character %q after array element", p.in[p.pos])
		}
	}
}

func (p *parser) object(depth int) error {
	p.pos++ // {
	p.out = append(p.out, '{')
	start := len(p.out)
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		p.out = append(p.out, '}')
		return nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return p.errorf("object key is not a string")
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return p.errorf("missing ':' after object key")
		}
		p.pos++
		p.skipSpace()
		if len(p.members) > base {
			p.out = append(p.out, ',')
		}
		m := member{key: key, start: len(p.out)}
		p.out = appendString(p.out, key)
		p.out = append(p.out, ':')
		if err := p.value(depth); err != nil {
			return err
		}
		m.end = len(p.out)
		p.members = append(p.members, m)
		p.skipSpace()
		if p.pos >= len(p.in) {
			return p.errorf("unterminated object")
		}
		if p.in[p.pos] == '}' {
			p.pos++
			break
		}
		if p.in[p.pos] != ',' {
			return p.errorf("invalid character %q after object member", p.in[p.pos])
		}
		p.pos++
	}
	ms := p.members[base:]
	sorted := true
	for i := 1; i < len(ms); i++ {
		switch c := compareUTF16(ms[i-1].key, ms[i].key); {
		case c == 0:
			return p.errorf("duplicate object member %q", ms[i].key)
		case c > 0:
			sorted = false
		}
	}
	if !sorted {
		sort.Slice(ms, func(i, j int) bool { return compareUTF16(ms[i].key, ms[j].key) < 0 })
		for i := 1; i < len(ms); i++ {
			if compareUTF16(ms[i-1].key, ms[i].key) == 0 {
				return p.errorf("duplicate object member %q", ms[i].key)
			}
		}
		// Rewrite the members in order.
		p.scratch = append(p.scratch[:0], p.out[start:]...)
		p.out = p.out[:start]
		for i, m := range ms {
			if i > 0 {
				p.out = append(p.out, ',')
			}
			p.out = append(p.out, p.scratch[m.start-start:m.end-start]...)
		}
	}
	p.out = append(p.out, '}')
	return nil
}

// compareUTF16 compares two UTF-8 strings as arrays of UTF-16 code units.
// UTF-8 byte order is code point order, which differs from UTF-16 order
// only where a supplementary character (a surrogate pair, 0xD800...) meets
// one of U+E000-U+FFFF, so the first differing characters decide.
func compareUTF16(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return len(a) - len(b) // one is a prefix of the other (or equal)
	}
	if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
		return int(a[i]) - int(b[i])
	}
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRune(a[i:])
	rb, _ := utf8.DecodeRune(b[i:])
	return int(utf16Key(ra)) - int(utf16Key(rb))
}

// utf16Key orders runes as their UTF-16 encodings: the first code unit
// in the high bits, the low surrogate's 10 bits (0 for a BMP rune, which
// is never a surrogate itself) below.
func utf16Key(r rune) int32 {
	if r < 0x10000 {
		return r << 10
	}
	r -= 0x10000
	return (0xD800+(r>>10))<<10 | (r & 0x3FF)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string literal using RFC 8785 escaping.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, `\"`...)
		case '\\':
			dst = append(dst, `\\`...)
		case '\b':
			dst = append(dst, `\b`...)
		case '\f':
			dst = append(dst, `\f`...)
		case '\n':
			dst = append(dst, `\n`...)
		case '\r':
			dst = append(dst, `\r`...)
		case '\t':
			dst = append(dst, `\t`...)
		default:
			dst = append(dst, `\u00`...)
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendNumber appends FormatNumber(f) for a finite f, without
// allocating.
func appendNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // also -0
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// Shortest round-trip digits: "d.ddddde±XX".
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	ei := 0
	for e[ei] != 'e' {
		ei++
	}
	var digs [24]byte
	digits := append(digs[:0], e[0])
	if ei > 1 {
		digits = append(digits, e[2:ei]...) // skip the point
	}
	exp := 0
	neg := e[ei+1] == '-'
	for _, c := range e[ei+2:] {
		exp = exp*10 + int(c-'0')
	}
	if neg {
		exp = -exp
	}
	k := len(digits)
	n := exp + 1 // the decimal point sits after n digits
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
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
