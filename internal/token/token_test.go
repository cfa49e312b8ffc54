package token

import (
	"strings"
	"testing"
)

func TestNewParseHash(t *testing.T) {
	id, secret, full, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(full, "hs_"+id+"_") || len(id) != 16 || len(secret) != 64 {
		t.Fatalf("token %q (id %q)", full, id)
	}
	gid, gsecret, err := Parse(full)
	if err != nil || gid != id || gsecret != secret {
		t.Fatalf("Parse: %q %q %v", gid, gsecret, err)
	}
	if !Matches(secret, Hash(secret)) || Matches(secret, Hash(secret+"0")) || Matches(secret, nil) {
		t.Fatal("Matches is wrong")
	}
	_, _, other, _ := New()
	if other == full {
		t.Fatal("two tokens are equal")
	}
	for _, bad := range []string{"", "hs_", "hs_" + id, "hs_" + id + "_", "xx_" + id + "_" + secret, "hs_" + id + "_" + secret + "0",
		"hs_" + strings.ToUpper(id) + "_" + secret, "hs_" + id + "x_" + secret[1:], "Bearer " + full} {
		if _, _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): want error", bad)
		}
	}
}

func TestScopes(t *testing.T) {
	for _, c := range []struct {
		have []Scope
		need Scope
		ok   bool
	}{
		{[]Scope{Read}, Read, true}, {[]Scope{Read}, Run, false}, {[]Scope{Read}, Admin, false},
		{[]Scope{Run}, Read, true}, {[]Scope{Run}, Run, true}, {[]Scope{Run}, Admin, false},
		{[]Scope{Admin}, Read, true}, {[]Scope{Admin}, Run, true}, {[]Scope{Admin}, Admin, true},
		{nil, Read, false}, {[]Scope{"bogus"}, Read, false}, {[]Scope{Admin}, "bogus", false},
	} {
		if got := Allows(c.have, c.need); got != c.ok {
			t.Errorf("Allows(%v, %s) = %v", c.have, c.need, got)
		}
	}
	s, err := ParseScopes(" run, READ,run ")
	if err != nil || len(s) != 2 || s[0] != Read || s[1] != Run {
		t.Fatalf("ParseScopes: %v %v", s, err)
	}
	for _, bad := range []string{"", " , ", "read,write"} {
		if _, err := ParseScopes(bad); err == nil {
			t.Errorf("ParseScopes(%q): want error", bad)
		}
	}
}
