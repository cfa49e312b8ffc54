package receipt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/jcs"
)

func key(b byte) *identity.Key { return identity.FromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize)) }

func sample() Receipt {
	parent := "3fa2c1d0aaaabbbbccccddddeeeeffff0000111122223333444455556666777f"
	return Receipt{
		Project:    "cranfield",
		RunNumber:  3,
		Timestamp:  1767225600000,
		Hypothesis: "Improve on 3fa2c1d0 (val_loss=2.4310): raise learningRate 0.003 -> 0.006 (exploit, mutation)",
		Config:     map[string]any{"learningRate": 0.006, "layers": 4.0, "optimizer": "adamw", "tied": true},
		Result: Result{
			ValLoss: 2.41, TrainLoss: 2.2, LossCurve: [][2]float64{{0, 5.5}, {100, 3.25}},
			DurationSec: 61.5, TokensPerSec: 12345.5, TotalTokens: 1e6,
			Values: map[string]float64{"valLoss": 2.41, "valBpb": 1.1},
		},
		Improvement: 0.0086,
		IsNewBest:   true,
		InspiredBy:  &parent,
		Domain:      "ml",
		Campaign:    "c1",
		Agent:       "agent-1",
		Seed:        42,
		Metric:      MetricValue{Name: "val_loss", Direction: "minimize", Value: 2.41, TestValue: 2.43},
		Parents:     []string{parent},
		Proposer:    "builtin",
		NoiseFloor:  &NoiseFloor{Mean: 2.44, SD: 0.004, N: 3, Threshold: 0.008},
		BeatsNoise:  true,
		Artifacts:   map[string]string{"log.txt": "runs/c1/3/log.txt"},
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := key(1)
	s, err := Sign(sample(), k)
	if err != nil {
		t.Fatal(err)
	}
	if s.Receipt.PeerID != k.ID() || s.Receipt.Version != Version {
		t.Fatalf("peer/version not set: %+v", s.Receipt)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Signed
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(); err != nil {
		t.Fatalf("after JSON round trip: %v", err)
	}
	if back.ID != s.ID {
		t.Fatal("id changed")
	}
	// And once more through a generic map (as JSONB storage would).
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(m)
	var back2 Signed
	if err := json.Unmarshal(b2, &back2); err != nil {
		t.Fatal(err)
	}
	if err := back2.Verify(); err != nil {
		t.Fatalf("after map round trip: %v", err)
	}
}

func TestEmptyCollectionsMarshal(t *testing.T) {
	r := Receipt{Project: "p", Metric: MetricValue{Name: "m", Direction: "maximize"}}
	s, err := Sign(r, key(2))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Canonical(s.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"parents":[]`, `"artifacts":{}`, `"config":{}`, `"values":{}`, `"lossCurve":[]`, `"inspiredBy":null`, `"gpu":null`, `"noiseFloor":null`} {
		if !strings.Contains(string(c), want) {
			t.Errorf("canonical form lacks %s: %s", want, c)
		}
	}
	// A nil-slices receipt and its round-tripped copy canonicalise identically.
	b, _ := json.Marshal(s)
	var back Signed
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(); err != nil {
		t.Fatal(err)
	}
	unsigned, _ := Canonical(Receipt{})
	var generic map[string]any
	if err := json.Unmarshal(unsigned, &generic); err != nil {
		t.Fatal(err)
	}
	if p, ok := generic["parents"].([]any); !ok || len(p) != 0 {
		t.Errorf("parents = %#v, want []", generic["parents"])
	}
}

func TestTamperingFails(t *testing.T) {
	k := key(3)
	s, err := Sign(sample(), k)
	if err != nil {
		t.Fatal(err)
	}
	tamper := map[string]func(r *Receipt){
		"config value":  func(r *Receipt) { r.Config["learningRate"] = 0.0061 },
		"config key":    func(r *Receipt) { r.Config["extra"] = 1.0 },
		"metric value":  func(r *Receipt) { r.Metric.Value = 2.40 },
		"metric test":   func(r *Receipt) { r.Metric.TestValue = 2.0 },
		"hypothesis":    func(r *Receipt) { r.Hypothesis += "!" },
		"result values": func(r *Receipt) { r.Result.Values["valBpb"] = 1.0 },
		"loss curve":    func(r *Receipt) { r.Result.LossCurve[1][1] = 3.0 },
		"is new best":   func(r *Receipt) { r.IsNewBest = false },
		"parents":       func(r *Receipt) { r.Parents = append(r.Parents, "x") },
		"seed":          func(r *Receipt) { r.Seed++ },
		"peer id":       func(r *Receipt) { r.PeerID = key(4).ID() },
		"noise floor":   func(r *Receipt) { r.NoiseFloor.SD = 0 },
		"artifacts":     func(r *Receipt) { r.Artifacts["x"] = "y" },
		"inspired by":   func(r *Receipt) { r.InspiredBy = nil },
		"gpu":           func(r *Receipt) { g := "H100"; r.GPU = &g },
		"improvement":   func(r *Receipt) { r.Improvement = 0.5 },
		"timestamp":     func(r *Receipt) { r.Timestamp++ },
		"proposer":      func(r *Receipt) { r.Proposer = "llm:x" },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			c := cloneSigned(t, s)
			f(&c.Receipt)
			if err := c.Verify(); !errors.Is(err, ErrBadID) {
				t.Fatalf("want ErrBadID, got %v", err)
			}
		})
	}
	t.Run("id", func(t *testing.T) {
		c := cloneSigned(t, s)
		c.ID = strings.Repeat("0", 64)
		if err := c.Verify(); !errors.Is(err, ErrBadID) {
			t.Fatalf("want ErrBadID, got %v", err)
		}
	})
	t.Run("signature bytes", func(t *testing.T) {
		c := cloneSigned(t, s)
		sig, _ := base64.StdEncoding.DecodeString(c.Signature)
		sig[0] ^= 1
		c.Signature = base64.StdEncoding.EncodeToString(sig)
		if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("want ErrBadSignature, got %v", err)
		}
	})
	t.Run("garbage signature", func(t *testing.T) {
		c := cloneSigned(t, s)
		c.Signature = "!!"
		if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("want ErrBadSignature, got %v", err)
		}
	})
}

func cloneSigned(t *testing.T, s Signed) Signed {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var c Signed
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOtherKeySignatureFails(t *testing.T) {
	k, other := key(5), key(6)
	s, err := Sign(sample(), k)
	if err != nil {
		t.Fatal(err)
	}
	canon, _ := Canonical(s.Receipt)
	forged := s
	forged.Signature = base64.StdEncoding.EncodeToString(other.Sign(canon))
	if err := forged.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature by another key: want ErrBadSignature, got %v", err)
	}
	// Another key signs honestly but claims the first key's peer id.
	r := s.Receipt
	r.PublicKey = base64.StdEncoding.EncodeToString(other.Public())
	canon, _ = Canonical(r)
	impostor := Signed{ID: IDOf(canon), Receipt: r, Signature: base64.StdEncoding.EncodeToString(other.Sign(canon))}
	if err := impostor.Verify(); !errors.Is(err, ErrPeerMismatch) {
		t.Fatalf("claimed peer id: want ErrPeerMismatch, got %v", err)
	}
	bad := s
	bad.Receipt.PublicKey = "AAAA"
	if err := bad.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad public key: want ErrBadSignature, got %v", err)
	}
}

func TestIDStableAcrossMapOrder(t *testing.T) {
	k := key(7)
	var first string
	for i := range 20 {
		r := sample()
		// Rebuild the maps with insertion orders that vary per iteration.
		keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "learningRate", "layers", "optimizer", "tied"}
		cfg := map[string]any{}
		for j := range keys {
			kk := keys[(j+i)%len(keys)]
			if v, ok := sample().Config[kk]; ok {
				cfg[kk] = v
			} else {
				cfg[kk] = float64(len(kk))
			}
		}
		r.Config = cfg
		r.Result.Values = map[string]float64{}
		for j := range 12 {
			n := (j*5 + i) % 12
			r.Result.Values[fmt.Sprintf("v%d", n)] = float64(n) / 3
		}
		s, err := Sign(r, k)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = s.ID
		} else if s.ID != first {
			t.Fatalf("iteration %d: id %s != %s", i, s.ID, first)
		}
	}
	// Integer and float spellings of the same config value agree.
	r1, r2 := sample(), sample()
	r1.Config["layers"] = 4
	r2.Config["layers"] = 4.0
	s1, _ := Sign(r1, k)
	s2, _ := Sign(r2, k)
	if s1.ID != s2.ID {
		t.Fatal("int 4 and float 4.0 give different ids")
	}
}

func TestRejectsNonFinite(t *testing.T) {
	cases := map[string]func(r *Receipt){
		"metric.value":           func(r *Receipt) { r.Metric.Value = math.NaN() },
		"improvement":            func(r *Receipt) { r.Improvement = math.Inf(1) },
		"result.values.valBpb":   func(r *Receipt) { r.Result.Values["valBpb"] = math.NaN() },
		"result.lossCurve[1][1]": func(r *Receipt) { r.Result.LossCurve[1][1] = math.Inf(-1) },
		"config.learningRate":    func(r *Receipt) { r.Config["learningRate"] = math.NaN() },
		"noiseFloor.sd":          func(r *Receipt) { r.NoiseFloor.SD = math.NaN() },
		"seed":                   func(r *Receipt) { r.Seed = 1<<53 + 1 },
	}
	for field, f := range cases {
		r := sample()
		f(&r)
		_, err := Sign(r, key(8))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: want error naming the field, got %v", field, err)
		}
	}
}

func TestShortID(t *testing.T) {
	if ShortID("0123456789abcdef") != "01234567" || ShortID("abc") != "abc" {
		t.Fatal("ShortID")
	}
}

func TestVerified(t *testing.T) {
	k := identity.FromSeed(make([]byte, 32))
	s, err := Sign(Receipt{Project: "p", RunNumber: 1, Domain: "ml", Config: map[string]any{"lr": 0.1}}, k)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Verified()
	if err != nil {
		t.Fatal(err)
	}
	if v.ID() != s.ID || v.Signed().Signature != s.Signature {
		t.Fatalf("Verified holds %+v, want %+v", v.Signed(), s)
	}
	vouched := v.WithVouch(&Vouch{Node: "n", Signature: "x"})
	if vouched.Signed().Vouch == nil || v.Signed().Vouch != nil || vouched.ID() != s.ID {
		t.Fatal("WithVouch must set the vouch on a copy and keep the record")
	}
	if err := vouched.Signed().Verify(); err != nil {
		t.Fatalf("a vouch is outside the signed content: %v", err)
	}

	tampered := s
	tampered.Receipt.Hypothesis = "better"
	badSig := s
	badSig.Signature = s.Signature[:10] + "A" + s.Signature[11:]
	if badSig.Signature == s.Signature {
		badSig.Signature = s.Signature[:10] + "B" + s.Signature[11:]
	}
	for name, bad := range map[string]Signed{"tampered": tampered, "bad signature": badSig, "zero": {}} {
		if v, err := bad.Verified(); err == nil || v.ID() != "" {
			t.Errorf("%s: Verified() = %q, %v; want an error and no record", name, v.ID(), err)
		}
	}
	if (Verified{}).ID() != "" {
		t.Fatal("the zero Verified holds a record")
	}
}

// TestCanonicalIsJCSOfMarshal: Canonical encodes the receipt without going
// through MarshalJSON, and must give what jcs.Marshal of the receipt gives.
func TestCanonicalIsJCSOfMarshal(t *testing.T) {
	r := sample()
	r.Hypothesis = `<b>&"quoted"</b> ` + "\u2028 é 😀"
	r.Config["html"] = "<script>"
	for _, rc := range []Receipt{r, {}, sample()} {
		got, err := Canonical(rc)
		if err != nil {
			t.Fatal(err)
		}
		want, err := jcs.Marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Canonical\n %s\njcs.Marshal\n %s", got, want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s, err := Sign(sample(), key(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Canonical", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := Canonical(s.Receipt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := s.Verify(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
