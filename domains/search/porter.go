package search

// PorterStem returns the Porter (1980) stem of a lowercase ASCII word.
//
// It follows Martin Porter's reference ANSI C implementation (tartarus.org),
// including its two documented departures from the paper: step 2 maps
// "bli" -> "ble" (instead of "abli" -> "able") and adds "logi" -> "log".
// Words of one or two letters are returned unchanged. The caller must pass
// a lowercase word of letters a-z; other bytes are treated as consonants.
func PorterStem(word string) string {
	if len(word) <= 2 {
		return word
	}
	s := porter{b: []byte(word), k: len(word) - 1}
	s.step1ab()
	if s.k > 0 {
		s.step1c()
		s.step2()
		s.step3()
		s.step4()
		s.step5()
	}
	return string(s.b[:s.k+1])
}

// porter holds the word being stemmed: b[0..k] is the current word and j
// is a general offset set by ends.
type porter struct {
	b    []byte
	k, j int
}

// cons reports whether b[i] is a consonant.
func (p *porter) cons(i int) bool {
	switch p.b[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		if i == 0 {
			return true
		}
		return !p.cons(i - 1)
	}
	return true
}

// m measures the number of consonant sequences in b[0..j]: with c a
// consonant sequence and v a vowel sequence, [c](vc)^m[v] gives m.
func (p *porter) m() int {
	n, i := 0, 0
	for {
		if i > p.j {
			return n
		}
		if !p.cons(i) {
			break
		}
		i++
	}
	i++
	for {
		for {
			if i > p.j {
				return n
			}
			if p.cons(i) {
				break
			}
			i++
		}
		i++
		n++
		for {
			if i > p.j {
				return n
			}
			if !p.cons(i) {
				break
			}
			i++
		}
		i++
	}
}

// vowelInStem reports whether b[0..j] contains a vowel.
func (p *porter) vowelInStem() bool {
	for i := 0; i <= p.j; i++ {
		if !p.cons(i) {
			return true
		}
	}
	return false
}

// doubleC reports whether b[j-1..j] is a double consonant.
func (p *porter) doubleC(j int) bool {
	if j < 1 || p.b[j] != p.b[j-1] {
		return false
	}
	return p.cons(j)
}

// cvc reports whether b[i-2..i] is consonant-vowel-consonant and the last
// consonant is not w, x or y (used to restore an e: cav(e), lov(e), hop(e)).
func (p *porter) cvc(i int) bool {
	if i < 2 || !p.cons(i) || p.cons(i-1) || !p.cons(i-2) {
		return false
	}
	switch p.b[i] {
	case 'w', 'x', 'y':
		return false
	}
	return true
}

// ends reports whether b[0..k] ends with s, and if so sets j to the offset
// before the suffix.
func (p *porter) ends(s string) bool {
	n := len(s)
	if n > p.k+1 || s[n-1] != p.b[p.k] {
		return false
	}
	if string(p.b[p.k-n+1:p.k+1]) != s {
		return false
	}
	p.j = p.k - n
	return true
}

// setTo replaces b[j+1..k] with s and adjusts k.
func (p *porter) setTo(s string) {
	p.b = append(p.b[:p.j+1], s...)
	p.k = p.j + len(s)
}

// r replaces the suffix with s when m() > 0.
func (p *porter) r(s string) {
	if p.m() > 0 {
		p.setTo(s)
	}
}

// step1ab removes plurals and -ed or -ing:
// caresses->caress, ponies->poni, cats->cat, feed->feed, agreed->agree,
// plastered->plaster, motoring->motor, hopping->hop, filing->file.
func (p *porter) step1ab() {
	if p.b[p.k] == 's' {
		switch {
		case p.ends("sses"):
			p.k -= 2
		case p.ends("ies"):
			p.setTo("i")
		case p.b[p.k-1] != 's':
			p.k--
		}
	}
	if p.ends("eed") {
		if p.m() > 0 {
			p.k--
		}
	} else if (p.ends("ed") || p.ends("ing")) && p.vowelInStem() {
		p.k = p.j
		switch {
		case p.ends("at"):
			p.setTo("ate")
		case p.ends("bl"):
			p.setTo("ble")
		case p.ends("iz"):
			p.setTo("ize")
		case p.doubleC(p.k):
			p.k--
			switch p.b[p.k] {
			case 'l', 's', 'z':
				p.k++
			}
		default:
			p.j = p.k
			if p.m() == 1 && p.cvc(p.k) {
				p.setTo("e")
			}
		}
	}
	p.b = p.b[:p.k+1]
}

// step1c turns a terminal y into i when there is another vowel in the stem.
func (p *porter) step1c() {
	if p.ends("y") && p.vowelInStem() {
		p.b[p.k] = 'i'
	}
}

// rule is one suffix rewrite.
type rule struct{ from, to string }

// applyFirst applies the first rule whose suffix matches (replacing it
// only when m() > 0, as r does); later rules are not tried.
func (p *porter) applyFirst(rules []rule) {
	for _, rl := range rules {
		if p.ends(rl.from) {
			p.r(rl.to)
			return
		}
	}
}

var step2Rules = map[byte][]rule{
	'a': {{"ational", "ate"}, {"tional", "tion"}},
	'c': {{"enci", "ence"}, {"anci", "ance"}},
	'e': {{"izer", "ize"}},
	'l': {{"bli", "ble"}, {"alli", "al"}, {"entli", "ent"}, {"eli", "e"}, {"ousli", "ous"}},
	'o': {{"ization", "ize"}, {"ation", "ate"}, {"ator", "ate"}},
	's': {{"alism", "al"}, {"iveness", "ive"}, {"fulness", "ful"}, {"ousness", "ous"}},
	't': {{"aliti", "al"}, {"iviti", "ive"}, {"biliti", "ble"}},
	'g': {{"logi", "log"}},
}

// step2 maps double suffixes to single ones when m() > 0
// (-ization -> -ize, -ational -> -ate, ...).
func (p *porter) step2() {
	if p.k < 1 {
		return
	}
	p.applyFirst(step2Rules[p.b[p.k-1]])
}

var step3Rules = map[byte][]rule{
	'e': {{"icate", "ic"}, {"ative", ""}, {"alize", "al"}},
	'i': {{"iciti", "ic"}},
	'l': {{"ical", "ic"}, {"ful", ""}},
	's': {{"ness", ""}},
}

// step3 deals with -ic-, -full, -ness etc.
func (p *porter) step3() {
	p.applyFirst(step3Rules[p.b[p.k]])
}

var step4Suffixes = map[byte][]string{
	'a': {"al"},
	'c': {"ance", "ence"},
	'e': {"er"},
	'i': {"ic"},
	'l': {"able", "ible"},
	'n': {"ant", "ement", "ment", "ent"},
	'o': {"ion", "ou"},
	's': {"ism"},
	't': {"ate", "iti"},
	'u': {"ous"},
	'v': {"ive"},
	'z': {"ize"},
}

// step4 removes -ant, -ence etc. in context <c>vcvc<v> (m() > 1).
func (p *porter) step4() {
	if p.k < 1 {
		return
	}
	matched := false
	for _, suf := range step4Suffixes[p.b[p.k-1]] {
		if !p.ends(suf) {
			continue
		}
		if suf == "ion" && (p.j < 0 || (p.b[p.j] != 's' && p.b[p.j] != 't')) {
			continue // -ion only after s or t; try "ou" (cannot match) next
		}
		matched = true
		break
	}
	if matched && p.m() > 1 {
		p.k = p.j
		p.b = p.b[:p.k+1]
	}
}

// step5 removes a final -e if m() > 1 (or m() == 1 and not cvc), and
// changes -ll to -l if m() > 1.
func (p *porter) step5() {
	p.j = p.k
	if p.b[p.k] == 'e' {
		a := p.m()
		if a > 1 || (a == 1 && !p.cvc(p.k-1)) {
			p.k--
		}
	}
	if p.b[p.k] == 'l' && p.doubleC(p.k) && p.m() > 1 {
		p.k-- // m() is measured up to the original end, as in the reference
	}
	p.b = p.b[:p.k+1]
}
