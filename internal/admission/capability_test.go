package admission_test

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/capability"
)

func capKey(t *testing.T, seed byte) (crypto.PrivKey, peer.ID) {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(s))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

func TestCapabilities(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	c := admission.New(admission.Config{Now: func() time.Time { return now }})
	ka, a := capKey(t, 1)
	kb, b := capKey(t, 2)
	caps := func(node peer.ID, n int) capability.Capabilities {
		cp := capability.Capabilities{Node: node.String(), Timestamp: now.UnixMilli(), Seq: 1}
		for i := range n {
			cp.Models = append(cp.Models, capability.ModelCap{ID: "m" + strings.Repeat("x", i), Kind: capability.KindChat})
		}
		return cp
	}
	sign := func(cp capability.Capabilities, k crypto.PrivKey) capability.Signed {
		s, err := capability.Sign(cp, k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fromA := admission.Source{Path: admission.PathInference, Peer: a}

	good := sign(caps(a, 2), ka)
	if err := c.Capabilities(fromA, good, 0); err != nil {
		t.Fatalf("genuine record: %v", err)
	}

	// Signed by another key (b's), naming a.
	forged := sign(caps(a, 2), kb)
	// Naming b, but sent by a (and signed by b: a relays b's genuine record).
	relayed := sign(caps(b, 2), kb)
	// Too many models: built by hand (Sign refuses it).
	many := good
	many.Models = nil
	for i := range capability.MaxModels + 1 {
		many.Models = append(many.Models, capability.ModelCap{ID: strings.Repeat("m", i+1)[:min(i+1, 200)] + string(rune('A'+i%50)), Kind: capability.KindChat})
	}
	longName := good
	longName.Models = []capability.ModelCap{{ID: strings.Repeat("n", capability.MaxNameBytes+1), Kind: capability.KindChat}}
	nul := good
	nul.Models = []capability.ModelCap{{ID: "a\x00b", Kind: capability.KindChat}}
	future := sign(func() capability.Capabilities {
		x := caps(a, 1)
		x.Timestamp = now.Add(time.Hour).UnixMilli()
		return x
	}(), ka)

	for _, tc := range []struct {
		name   string
		src    admission.Source
		s      capability.Signed
		size   int
		reason string
	}{
		{"another key", fromA, forged, 0, admission.ReasonBadSignature},
		{"names another node", fromA, relayed, 0, admission.ReasonSignerMismatch},
		{"no sender", admission.Source{Path: admission.PathInference}, good, 0, admission.ReasonSignerMismatch},
		{"publisher differs", admission.Source{Path: admission.PathGossip, Peer: a, Publisher: b}, good, 0, admission.ReasonSignerMismatch},
		{"oversized", fromA, good, admission.DefaultMaxRecordBytes + 1, admission.ReasonOversized},
		{"over the record limit", fromA, good, capability.MaxRecordBytes + 1, admission.ReasonOversized},
		{"too many models", fromA, many, 0, admission.ReasonInvalid},
		{"long name", fromA, longName, 0, admission.ReasonInvalid},
		{"nul", fromA, nul, 0, admission.ReasonInvalid},
		{"future", fromA, future, 0, admission.ReasonClockSkew},
		{"node not a peer id", admission.Source{Path: admission.PathInference, Peer: peer.ID("junk")}, func() capability.Signed { x := good; x.Node = peer.ID("junk").String(); return x }(), 0, admission.ReasonSignerMismatch},
	} {
		err := c.Capabilities(tc.src, tc.s, tc.size)
		if got := admission.ReasonOf(err); got != tc.reason {
			t.Errorf("%s: reason %q (%v), want %q", tc.name, got, err, tc.reason)
		}
	}
	st := c.Stats()
	if st.Accepted["inference/capability"] != 1 || st.Rejected["inference/capability/bad_signature"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}
