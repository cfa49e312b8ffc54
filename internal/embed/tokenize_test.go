package embed

import (
	"reflect"
	"testing"
)

func TestTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"Lower the Learning-Rate, and add warmup!", []string{"lower", "learning", "rate", "add", "warmup"}},
		{"lr=0.003 layers=4", []string{"lr", "0.003", "layers", "lr_0.003", "layers_4"}},
		{"learning_rate=3e-4.", []string{"learning", "rate", "3e-4", "learning_rate_3e-4"}},
		{"--opt=adam x=y", []string{"opt", "adam", "opt_adam", "x_y"}},
		{"a == b, k = v", nil},
		{"version 1.2.3 costs 2.5e+3 at 10.", []string{"version", "1.2.3", "costs", "2.5e+3", "10"}},
		{"note-5 e-mail", []string{"note", "mail"}},
		{"Élan Über straße ₂", []string{"élan", "über", "straße"}},
		{"", nil},
	}
	for _, c := range cases {
		got := Tokenize(c.in)
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
