package search

import "strings"

// Stemmer names accepted by the "stemmer" parameter.
const (
	StemNone   = "none"
	StemS      = "s-stemmer"
	StemPorter = "porter"
)

// Analyzer turns text into index terms: lowercase, split on every byte
// that is not an ASCII letter or digit (so "boundary-layer" gives
// "boundary", "layer"), optionally drop stopwords (before stemming), then
// optionally stem purely alphabetic tokens (tokens containing digits are
// kept as they are).
type Analyzer struct {
	Stemmer   string // StemNone, StemS or StemPorter
	Stopwords bool   // drop the embedded English stopword list
}

// Tokens returns the analysed terms of text in order.
func (a Analyzer) Tokens(text string) []string {
	var out []string
	i := 0
	for i < len(text) {
		for i < len(text) && !isAlnum(text[i]) {
			i++
		}
		j := i
		alpha := true
		for j < len(text) && isAlnum(text[j]) {
			if text[j] >= '0' && text[j] <= '9' {
				alpha = false
			}
			j++
		}
		if j == i {
			break
		}
		tok := strings.ToLower(text[i:j])
		i = j
		if a.Stopwords && IsStopword(tok) {
			continue
		}
		if alpha {
			tok = a.stem(tok)
		}
		out = append(out, tok)
	}
	return out
}

// stem applies the configured stemmer to one lowercase alphabetic word.
func (a Analyzer) stem(w string) string {
	switch a.Stemmer {
	case StemPorter:
		return PorterStem(w)
	case StemS:
		return SStem(w)
	}
	return w
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// SStem is the "S" stemmer (Harman 1991) in the form of Lucene's
// EnglishMinimalStemmer: words shorter than 3 letters and words ending in
// -us or -ss are kept; -ies becomes -y unless preceded by a or e
// (queries -> query, but not aies/eies); -es is kept whole after a, e, i or o
// (toes, sees); otherwise a final -s is removed (cats -> cat, horses -> horse).
func SStem(w string) string {
	n := len(w)
	if n < 3 || w[n-1] != 's' {
		return w
	}
	switch w[n-2] {
	case 'u', 's':
		return w
	case 'e':
		if n > 3 && w[n-3] == 'i' && w[n-4] != 'a' && w[n-4] != 'e' {
			return w[:n-3] + "y"
		}
		switch w[n-3] {
		case 'i', 'a', 'o', 'e':
			return w
		}
	}
	return w[:n-1]
}

// IsStopword reports whether the lowercase word w is in the embedded list.
func IsStopword(w string) bool {
	_, ok := stopwords[w]
	return ok
}

// stopwordList is the NLTK English stopword list (179 words) without the
// entries that contain an apostrophe ("don't", "it's", ...): the tokeniser
// splits on apostrophes, and the pieces ("don", "t", "s") are in the list.
var stopwordList = strings.Fields(`
i me my myself we our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their
theirs themselves what which who whom this that these those am is are was
were be been being have has had having do does did doing a an the and but
if or because as until while of at by for with about against between into
through during before after above below to from up down in out on off over
under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too
very s t can will just don should now d ll m o re ve y ain aren couldn
didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn
weren won wouldn`)

var stopwords = func() map[string]struct{} {
	m := make(map[string]struct{}, len(stopwordList))
	for _, w := range stopwordList {
		m[w] = struct{}{}
	}
	return m
}()
