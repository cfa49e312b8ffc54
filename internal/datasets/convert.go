package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ToCRLF makes every line end CRLF (LF and CRLF input alike). The shared
// Cranfield files have CRLF line ends; converting makes the pin hold
// whichever line ends the origin's copy has, and changes nothing when it
// already has CRLF.
func ToCRLF(b []byte) ([]byte, error) {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")), nil
}

// ToLF makes CRLF line ends LF.
func ToLF(b []byte) ([]byte, error) {
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), nil
}

// fbasicsDateHeader is the first header field of fBasics' DowJones30
// table; R's read.csv turns it into the column name "X.Y..m..d".
const fbasicsDateHeader = "%Y-%m-%d"

// FBasicsToCSV converts fBasics' data/DowJones30.csv (";"-separated:
// header "%Y-%m-%d;AA;AXP;...", rows "1990-12-31;5.92;4.7;...") into the
// R export the finance domain reads, as write.csv(read.csv(...)) writes it:
// header `"","X.Y..m..d","AA",...` and rows `"1","1990-12-31",5.92,...`
// (quoted row number and date, the prices verbatim), LF line ends.
func FBasicsToCSV(b []byte) ([]byte, error) {
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	if len(lines) < 2 {
		return nil, errors.New("fBasics DowJones30: want a header and rows")
	}
	head := strings.Split(lines[0], ";")
	if len(head) < 2 || head[0] != fbasicsDateHeader {
		return nil, fmt.Errorf("fBasics DowJones30: header %.60q does not start with %q", lines[0], fbasicsDateHeader+";")
	}
	var out strings.Builder
	out.Grow(len(b) + len(lines)*10)
	out.WriteString(`"","X.Y..m..d"`)
	for _, s := range head[1:] {
		if strings.ContainsAny(s, `",`) || s == "" {
			return nil, fmt.Errorf("fBasics DowJones30: odd symbol %q in the header", s)
		}
		out.WriteString(`,"` + s + `"`)
	}
	out.WriteByte('\n')
	for i, l := range lines[1:] {
		f := strings.Split(l, ";")
		if len(f) != len(head) {
			return nil, fmt.Errorf("fBasics DowJones30: line %d has %d fields, want %d", i+2, len(f), len(head))
		}
		if strings.Contains(f[0], `"`) {
			return nil, fmt.Errorf("fBasics DowJones30: line %d: odd date %q", i+2, f[0])
		}
		out.WriteString(`"` + strconv.Itoa(i+1) + `","` + f[0] + `"`)
		for _, v := range f[1:] {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return nil, fmt.Errorf("fBasics DowJones30: line %d: %q is not a number", i+2, v)
			}
			out.WriteString("," + v)
		}
		out.WriteByte('\n')
	}
	return []byte(out.String()), nil
}

// ModuleToJSON converts a JSONTestSuite data module of the npm package
// ("// Generated file, do NOT edit\n\nexport default [ ... ]\n") into the
// JSON file of the shared copy: the exported value with its object keys in
// the same order, one member per line indented one space per level,
// ": " between key and value, strings escaped only where JSON
// requires it (", \, control characters; non-ASCII kept as UTF-8) and no
// final newline; the layout of Python's json.dumps(v, indent=1,
// ensure_ascii=False).
func ModuleToJSON(b []byte) ([]byte, error) {
	const marker = "export default"
	i := bytes.Index(b, []byte(marker))
	if i < 0 {
		return nil, fmt.Errorf("JSONTestSuite module: no %q", marker)
	}
	body := bytes.TrimSpace(b[i+len(marker):])
	body = bytes.TrimSpace(bytes.TrimSuffix(body, []byte(";")))
	if !json.Valid(body) {
		return nil, errors.New("JSONTestSuite module: the exported value is not JSON")
	}
	return reindent(body, " ")
}

// reindent re-writes one JSON value with the given indent per level,
// keeping key order and number literals.
func reindent(body []byte, indent string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		obj     bool
		n       int  // members written
		wantKey bool // in an object, the next string is a key
	}
	var (
		out   bytes.Buffer
		stack []frame
	)
	newline := func() {
		out.WriteByte('\n')
		for range stack {
			out.WriteString(indent)
		}
	}
	// begin is called before a key or an array element.
	begin := func() {
		if len(stack) == 0 {
			return
		}
		f := &stack[len(stack)-1]
		if f.obj && !f.wantKey {
			return // the value after a key: ": " is written
		}
		if f.n > 0 {
			out.WriteByte(',')
		}
		f.n++
		newline()
	}
	// ended is called after a complete value.
	ended := func() {
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '[', '{':
				begin()
				out.WriteByte(byte(v))
				stack = append(stack, frame{obj: v == '{', wantKey: true})
			case ']', '}':
				f := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if f.n > 0 {
					newline()
				}
				out.WriteByte(byte(v))
				ended()
			}
		case string:
			key := len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].wantKey
			begin()
			writeJSONString(&out, v)
			if key {
				out.WriteString(": ")
				stack[len(stack)-1].wantKey = false
			} else {
				ended()
			}
		case json.Number:
			begin()
			out.WriteString(v.String())
			ended()
		case bool:
			begin()
			out.WriteString(strconv.FormatBool(v))
			ended()
		case nil:
			begin()
			out.WriteString("null")
			ended()
		}
	}
	return out.Bytes(), nil
}

func writeJSONString(out *bytes.Buffer, s string) {
	out.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			out.WriteString(`\"`)
		case '\\':
			out.WriteString(`\\`)
		case '\n':
			out.WriteString(`\n`)
		case '\r':
			out.WriteString(`\r`)
		case '\t':
			out.WriteString(`\t`)
		case '\b':
			out.WriteString(`\b`)
		case '\f':
			out.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(out, `\u%04x`, r)
			} else {
				var buf [utf8.UTFMax]byte
				out.Write(buf[:utf8.EncodeRune(buf[:], r)])
			}
		}
	}
	out.WriteByte('"')
}
