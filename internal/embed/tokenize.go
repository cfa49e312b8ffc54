package embed

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tokenize splits text into the terms the LSA model counts:
//
//   - text is lowercased (Unicode-aware);
//   - a token is a maximal run of letters and digits; every other character
//     separates tokens ("warmup_steps" gives warmup, steps);
//   - a '.' between two digits stays inside the token, so numbers survive
//     ("0.003", "v1.2"), and a number may carry an exponent ("3e-4",
//     "2.5e+3");
//   - "key=value" (no spaces around '=') also yields the compound token
//     "key_value", where key and value are the identifier-like runs
//     (letters, digits, '_', '-', '.') touching the '=': "lr=0.003" gives
//     lr, 0.003 and lr_0.003;
//   - one-character tokens and a small list of English stopwords are
//     dropped (compounds are always kept).
//
// Plain tokens come in text order, followed by the compounds in text order.
func Tokenize(text string) []string {
	rs := []rune(strings.ToLower(text))
	out := make([]string, 0, len(rs)/5+1)

	for i := 0; i < len(rs); {
		if !isWordRune(rs[i]) {
			i++
			continue
		}
		j := i
	scan:
		for j < len(rs) {
			r := rs[j]
			switch {
			case isWordRune(r):
				j++
				continue
			case r == '.' && isDigit(rs[j-1]) && j+1 < len(rs) && isDigit(rs[j+1]):
				j++ // decimal point: "0.003"
				continue
			case (r == '-' || r == '+') && j+1 < len(rs) && isDigit(rs[j+1]) && isMantissa(rs[i:j]):
				j++ // exponent sign: "3e-4"
				continue
			}
			break scan
		}
		tok := string(rs[i:j])
		if utf8.RuneCountInString(tok) > 1 && !stopwords[tok] {
			out = append(out, tok)
		}
		i = j
	}

	for p, r := range rs {
		if r != '=' {
			continue
		}
		a := p
		for a > 0 && isIdentRune(rs[a-1]) {
			a--
		}
		b := p + 1
		for b < len(rs) && isIdentRune(rs[b]) {
			b++
		}
		key := strings.Trim(string(rs[a:p]), "._-")
		val := strings.TrimRight(strings.TrimLeft(string(rs[p+1:b]), "._"), "._-")
		if key != "" && val != "" && val != "-" {
			out = append(out, key+"_"+val)
		}
	}
	return out
}

// isWordRune: letters, digits and combining marks (so decomposed accents
// stay inside their word).
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// isIdentRune is what may make up a key or a value around '='.
func isIdentRune(r rune) bool {
	return isWordRune(r) || r == '_' || r == '-' || r == '.'
}

// isMantissa reports whether tok is a number followed by an exponent
// marker, like "3e" or "2.5e", so that a following sign belongs to it.
func isMantissa(tok []rune) bool {
	n := len(tok)
	if n < 2 || tok[n-1] != 'e' || !isDigit(tok[0]) {
		return false
	}
	for _, r := range tok[:n-1] {
		if !isDigit(r) && r != '.' {
			return false
		}
	}
	return true
}

// stopwords is a small list of very frequent English function words that
// carry no topic on their own.
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
		about above after again against all also am an and any are as at
		be because been before being below between both but by can could
		did do does doing done down during each else few for from further
		had has have having he her here hers him his how if in into is it
		its itself just me more most my no nor not now of off on once only
		onto or other our ours out over own per same she should so some
		such than that the their theirs them then there these they this
		those through to too under until up upon us very via was we were
		what when where which while who whom why will with within without
		would yet you your yours`) {
		m[w] = true
	}
	return m
}()
