package search

import (
	"slices"
	"testing"
)

func TestPorterStem(t *testing.T) {
	// Examples from Porter (1980) and the reference implementation's
	// vocabulary/output files (tartarus.org/martin/PorterStemmer).
	cases := map[string]string{
		"caresses": "caress", "ponies": "poni", "ties": "ti", "caress": "caress", "cats": "cat",
		"feed": "feed", "agreed": "agre", "plastered": "plaster", "bled": "bled", "motoring": "motor",
		"sing": "sing", "conflated": "conflat", "troubled": "troubl", "sized": "size", "hopping": "hop",
		"tanned": "tan", "falling": "fall", "hissing": "hiss", "fizzed": "fizz", "failing": "fail",
		"filing": "file", "happy": "happi", "sky": "sky",
		"relational": "relat", "conditional": "condit", "rational": "ration", "valenci": "valenc",
		"hesitanci": "hesit", "digitizer": "digit", "conformabli": "conform", "radicalli": "radic",
		"differentli": "differ", "vileli": "vile", "analogousli": "analog", "vietnamization": "vietnam",
		"predication": "predic", "operator": "oper", "feudalism": "feudal", "decisiveness": "decis",
		"hopefulness": "hope", "callousness": "callous", "formaliti": "formal", "sensitiviti": "sensit",
		"sensibiliti": "sensibl",
		"triplicate":  "triplic", "formative": "form", "formalize": "formal", "electriciti": "electr",
		"electrical": "electr", "hopeful": "hope", "goodness": "good",
		"revival": "reviv", "allowance": "allow", "inference": "infer", "airliner": "airlin",
		"gyroscopic": "gyroscop", "adjustable": "adjust", "defensible": "defens", "irritant": "irrit",
		"replacement": "replac", "adjustment": "adjust", "dependent": "depend", "adoption": "adopt",
		"homologou": "homolog", "communism": "commun", "activate": "activ", "angulariti": "angular",
		"homologous": "homolog", "effective": "effect", "bowdlerize": "bowdler",
		"probate": "probat", "rate": "rate", "cease": "ceas", "controll": "control", "roll": "roll",
		"generalization": "gener", "generalizations": "gener", "oscillators": "oscil",
		"aeroelastic": "aeroelast", "similarity": "similar", "obeyed": "obei", "boundary": "boundari",
		"a": "a", "is": "is", "ies": "i",
	}
	for in, want := range cases {
		if got := PorterStem(in); got != want {
			t.Errorf("PorterStem(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSStem(t *testing.T) {
	cases := map[string]string{
		"cats": "cat", "queries": "query", "horses": "horse", "toes": "toes", "sees": "sees",
		"boss": "boss", "virus": "virus", "is": "is", "flow": "flow", "aies": "aies", "layers": "layer",
	}
	for in, want := range cases {
		if got := SStem(in); got != want {
			t.Errorf("SStem(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnalyzer(t *testing.T) {
	text := "The Boundary-layer flows at M=6.5, in 1958."
	cases := []struct {
		a    Analyzer
		want []string
	}{
		{Analyzer{StemNone, false}, []string{"the", "boundary", "layer", "flows", "at", "m", "6", "5", "in", "1958"}},
		{Analyzer{StemS, true}, []string{"boundary", "layer", "flow", "6", "5", "1958"}},
		{Analyzer{StemPorter, true}, []string{"boundari", "layer", "flow", "6", "5", "1958"}},
	}
	for _, c := range cases {
		if got := c.a.Tokens(text); !slices.Equal(got, c.want) {
			t.Errorf("%+v: got %q, want %q", c.a, got, c.want)
		}
	}
	if !IsStopword("the") || IsStopword("flow") {
		t.Fatal("stopword list")
	}
}
