package pulse

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// bound binds node ids "node-<signer>" to their key for tests.
func bound(node string, pub ed25519.PublicKey) bool {
	return node == "node-"+identity.IDFromPublic(pub)
}

func key(t testing.TB, b byte) *identity.Key {
	return identity.FromSeed(bytes.Repeat([]byte{b}, 32))
}

func presence(t testing.TB, k *identity.Key, caps ...string) SignedPresence {
	t.Helper()
	const iv = 90_000
	ts := int64(1_800_000_000_000)
	sp, err := SignPresence(Presence{Node: "node-" + k.ID(), Round: RoundOf(ts, iv), IntervalMs: iv, Timestamp: ts,
		Capabilities: caps, Receipts: []string{strings.Repeat("ab", 32)}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestUptimeFormula(t *testing.T) {
	if got := Uptime(0); got != 1 {
		t.Fatalf("U(0) = %v", got)
	}
	// 30 days of continuous presence: about +83%.
	if got := Uptime(30 * 24); math.Abs(got-1.822) > 0.001 {
		t.Fatalf("U(720h) = %v, want ~1.822", got)
	}
	if got := PresencePoints(0, nil); got != 10 {
		t.Fatalf("base = %v", got)
	}
	// research 12% + validation 4%, duplicates counted once
	if got := PresencePoints(0, []string{CapResearch, CapValidation, CapResearch}); math.Abs(got-11.6) > 1e-9 {
		t.Fatalf("with capabilities = %v, want 11.6", got)
	}
	all := 0.0
	for _, w := range Weights {
		all += w
	}
	if math.Abs(all-0.58) > 1e-9 || len(Weights) != 9 || len(Capabilities) != 9 {
		t.Fatalf("weights sum %v over %d", all, len(Weights))
	}
	if got := WorkPoints(3, 2, 12); math.Abs(got-6*(1+0.2*math.Log(2))) > 1e-9 {
		t.Fatalf("work points %v", got)
	}
	if WorkPoints(math.Inf(1), 1, 0) != 0 || WorkPoints(-1, 1, 0) != 0 {
		t.Fatal("non-finite or negative units must earn nothing")
	}
}

func TestUnits(t *testing.T) {
	if u := UnitsOf(receipt.Receipt{Domain: "search"}); u != 1 {
		t.Fatalf("search %v", u)
	}
	if u := UnitsOf(receipt.Receipt{Domain: "ml", Result: receipt.Result{TotalTokens: 2.5e6}}); u != 2.5 {
		t.Fatalf("ml %v", u)
	}
	if u := UnitsOf(receipt.Receipt{Domain: "ml", Result: receipt.Result{TotalTokens: 1e15}}); u != MaxUnits {
		t.Fatalf("capped %v", u)
	}
}

func TestPresenceSignVerify(t *testing.T) {
	k := key(t, 1)
	sp := presence(t, k, "Validation", "research", "validation")
	if err := sp.Verify(bound); err != nil {
		t.Fatal(err)
	}
	if got := sp.Presence.Capabilities; len(got) != 2 || got[0] != "research" || got[1] != "validation" {
		t.Fatalf("capabilities not normalised: %v", got)
	}
	// Forged presences: each must be rejected with the right error.
	forged := map[string]func(*SignedPresence){
		"extra capability": func(s *SignedPresence) { s.Presence.Capabilities = append(s.Presence.Capabilities, "storage") },
		"other round":      func(s *SignedPresence) { s.Presence.Round++ },
		"other node": func(s *SignedPresence) {
			o := presence(t, key(t, 2))
			s.Presence.Node = o.Presence.Node
		},
		"signature": func(s *SignedPresence) {
			b, _ := base64.StdEncoding.DecodeString(s.Signature)
			b[0] ^= 1
			s.Signature = base64.StdEncoding.EncodeToString(b)
		},
		"resigned by another key for this node": func(s *SignedPresence) {
			o, err := SignPresence(s.Presence, key(t, 3))
			if err != nil {
				t.Fatal(err)
			}
			*s = o
		},
	}
	for name, f := range forged {
		s := sp
		s.Presence.Capabilities = append([]string(nil), sp.Presence.Capabilities...)
		f(&s)
		err := s.Verify(bound)
		if err == nil {
			t.Fatalf("%s: forged presence verified", name)
		}
		if !errors.Is(err, ErrBadID) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrNodeMismatch) {
			t.Fatalf("%s: unexpected error %v", name, err)
		}
	}
	if _, err := SignPresence(Presence{Node: "n", Round: 1, IntervalMs: 90_000, Timestamp: 1, Capabilities: []string{"mining"}}, k); err == nil {
		t.Fatal("unknown capability accepted")
	}
	if _, err := SignPresence(Presence{Node: "n", Round: 5, IntervalMs: 90_000, Timestamp: 1}, k); err == nil {
		t.Fatal("timestamp outside its round accepted")
	}
}

func TestVerdictSignVerify(t *testing.T) {
	k := key(t, 4)
	sv, err := SignVerdict(Verdict{Round: 7, Validator: "node-" + k.ID(), Timestamp: 1,
		Nodes: []NodeVerdict{{Node: "b", Present: true}, {Node: "a"}}}, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := sv.Verify(bound); err != nil {
		t.Fatal(err)
	}
	sv.Verdict.Nodes[0].Present = !sv.Verdict.Nodes[0].Present
	if err := sv.Verify(bound); !errors.Is(err, ErrBadID) {
		t.Fatalf("altered verdict: %v", err)
	}
}

func nv(node string, present bool, caps []string, work ...WorkCheck) NodeVerdict {
	return NodeVerdict{Node: node, Present: present, Verified: caps, Work: work}
}

func TestCombineOneLiarCannotMint(t *testing.T) {
	r1 := strings.Repeat("1", 64)
	honest := func(v string) Verdict {
		return Verdict{Validator: v, Nodes: []NodeVerdict{
			nv("x", true, []string{CapResearch}, WorkCheck{Receipt: r1, Domain: "ml", Units: 2, OK: true}),
			nv("y", false, nil),
		}}
	}
	// The liar claims y present with every capability and a huge work
	// credit, x's receipt worth 1000 units, and also judges itself.
	liar := Verdict{Validator: "L", Nodes: []NodeVerdict{
		nv("x", true, Capabilities, WorkCheck{Receipt: r1, Domain: "ml", Units: 1000, OK: true},
			WorkCheck{Receipt: strings.Repeat("2", 64), Domain: "ml", Units: 1000, OK: true}),
		nv("y", true, Capabilities, WorkCheck{Receipt: strings.Repeat("3", 64), Units: 1000, OK: true}),
		nv("L", true, Capabilities, WorkCheck{Receipt: strings.Repeat("4", 64), Units: 1000, OK: true}),
	}}
	// The liar's reputation is enormous; clipping keeps it from a majority.
	weight := func(v string) float64 {
		if v == "L" {
			return ValidatorWeight(1e12)
		}
		return 1
	}
	out := Combine([]Verdict{honest("A"), liar, honest("B")}, weight)
	got := map[string]Outcome{}
	for _, o := range out {
		got[o.Node] = o
	}
	if _, ok := got["L"]; ok {
		t.Fatal("a validator judged itself")
	}
	x, y := got["x"], got["y"]
	if !x.Present || len(x.Verified) != 1 || x.Verified[0] != CapResearch {
		t.Fatalf("x: %+v", x)
	}
	if len(x.Work) != 1 || x.Work[0].Units != 2 {
		t.Fatalf("x work: %+v", x.Work)
	}
	if y.Present || len(y.Work) != 0 {
		t.Fatalf("y minted by the liar: %+v", y)
	}
	// Two validators, one liar: nothing passes without both.
	out = Combine([]Verdict{honest("A"), liar}, func(string) float64 { return 1 })
	for _, o := range out {
		if o.Node == "y" && o.Present {
			t.Fatal("liar alone made y present")
		}
		if o.Node == "x" && len(o.Work) != 1 {
			t.Fatalf("x work with two validators: %+v", o.Work)
		}
		if o.Node == "x" && o.Work[0].Units != 2 {
			t.Fatalf("lower median should be the honest 2, got %v", o.Work[0].Units)
		}
	}
	// A duplicate verdict from one validator counts once.
	out = Combine([]Verdict{liar, liar, liar, honest("A")}, func(string) float64 { return 1 })
	for _, o := range out {
		if o.Node == "y" && o.Present {
			t.Fatal("repeated verdicts outvoted an honest validator")
		}
	}
}

func TestWeightedMedian(t *testing.T) {
	cases := []struct {
		v, w []float64
		want float64
	}{
		{[]float64{1, 2, 3}, []float64{1, 1, 1}, 2},
		{[]float64{1, 100}, []float64{1, 1}, 1},
		{[]float64{1, 100}, []float64{1, 3}, 100},
		{[]float64{math.NaN(), 5, 5}, []float64{1, 1, 1}, 5},
		{nil, nil, 0},
	}
	for _, c := range cases {
		if got := WeightedMedian(c.v, c.w); got != c.want {
			t.Fatalf("WeightedMedian(%v, %v) = %v, want %v", c.v, c.w, got, c.want)
		}
	}
}
