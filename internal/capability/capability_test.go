package capability_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/capability"
)

func nodeKey(t testing.TB, seed byte) (crypto.PrivKey, peer.ID, ed25519.PublicKey) {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	priv := ed25519.NewKeyFromSeed(s)
	k, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id, priv.Public().(ed25519.PublicKey)
}

func record(id peer.ID) capability.Capabilities {
	return capability.Capabilities{
		Node:      id.String(),
		Models:    []capability.ModelCap{{ID: "m1", Kind: capability.KindChat, Hash: "ab", OwnedBy: "lab"}, {ID: "e1", Kind: capability.KindEmbedding}},
		Timestamp: 1_700_000_000_000,
		Seq:       3,
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k, id, pub := nodeKey(t, 1)
	s, err := capability.Sign(record(id), k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := capability.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(pub); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if m, ok := got.Lists("e1"); !ok || m.Kind != capability.KindEmbedding {
		t.Fatalf("Lists(e1) = %v, %v", m, ok)
	}
	if _, ok := got.Lists("nope"); ok {
		t.Fatal("lists a model it does not serve")
	}
	// The signing bytes are the documented ones.
	msg, _ := got.SigningBytes()
	want := `hyperspace-capabilities/v1` + "\n" + `{"models":[{"hash":"ab","id":"m1","kind":"chat","ownedBy":"lab"},{"id":"e1","kind":"embedding"}],"node":"` + id.String() + `","seq":3,"timestamp":1700000000000}`
	if string(msg) != want {
		t.Fatalf("signing bytes\n got %s\nwant %s", msg, want)
	}
}

func TestVerifyRejects(t *testing.T) {
	k, id, pub := nodeKey(t, 1)
	_, _, other := nodeKey(t, 2)
	s, err := capability.Sign(record(id), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(other); !errors.Is(err, capability.ErrBadSignature) {
		t.Fatalf("another key: %v", err)
	}
	tampered := s
	tampered.Models = append([]capability.ModelCap(nil), s.Models...)
	tampered.Models[0].ID = "m2"
	if err := tampered.Verify(pub); !errors.Is(err, capability.ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	bumped := s
	bumped.Seq++
	if err := bumped.Verify(pub); !errors.Is(err, capability.ErrBadSignature) {
		t.Fatalf("seq changed: %v", err)
	}
	garbage := s
	garbage.Signature = "!!"
	if err := garbage.Verify(pub); !errors.Is(err, capability.ErrBadSignature) {
		t.Fatalf("bad base64: %v", err)
	}
}

func TestCheck(t *testing.T) {
	_, id, _ := nodeKey(t, 1)
	many := record(id)
	many.Models = nil
	for i := range capability.MaxModels + 1 {
		many.Models = append(many.Models, capability.ModelCap{ID: strings.Repeat("x", i%8+1) + string(rune('a'+i%26)) + strings.Repeat("y", i/26), Kind: capability.KindChat})
	}
	for name, mut := range map[string]func(*capability.Capabilities){
		"no node":      func(c *capability.Capabilities) { c.Node = "" },
		"no timestamp": func(c *capability.Capabilities) { c.Timestamp = 0 },
		"seq too big":  func(c *capability.Capabilities) { c.Seq = 1 << 53 },
		"too many":     func(c *capability.Capabilities) { *c = many },
		"long id":      func(c *capability.Capabilities) { c.Models[0].ID = strings.Repeat("a", capability.MaxNameBytes+1) },
		"long owner":   func(c *capability.Capabilities) { c.Models[0].OwnedBy = strings.Repeat("a", capability.MaxNameBytes+1) },
		"nul":          func(c *capability.Capabilities) { c.Models[1].ID = "e\x00" },
		"bad utf8":     func(c *capability.Capabilities) { c.Models[0].Hash = "\xff" },
		"kind":         func(c *capability.Capabilities) { c.Models[0].Kind = "image" },
		"empty id":     func(c *capability.Capabilities) { c.Models[0].ID = "" },
		"duplicate":    func(c *capability.Capabilities) { c.Models[1].ID = "m1" },
	} {
		c := record(id)
		c.Models = append([]capability.ModelCap(nil), c.Models...)
		mut(&c)
		if err := c.Check(); !errors.Is(err, capability.ErrInvalid) {
			t.Errorf("%s: Check = %v", name, err)
		}
		if _, err := capability.Sign(c, nil); !errors.Is(err, capability.ErrInvalid) {
			t.Errorf("%s: Sign = %v", name, err)
		}
	}
	ok := record(id)
	ok.Models = many.Models[:capability.MaxModels]
	if err := ok.Check(); err != nil {
		t.Fatalf("%d models: %v", capability.MaxModels, err)
	}
	for _, kind := range []string{capability.KindChat, capability.KindEmbedding, capability.KindCompletion} {
		c := record(id)
		c.Models = []capability.ModelCap{{ID: "k", Kind: kind}}
		if err := c.Check(); err != nil {
			t.Errorf("kind %s: %v", kind, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field": `{"node":"x","models":[],"timestamp":1,"seq":0,"signature":"","extra":1}`,
		"trailing":      `{"node":"x","models":[],"timestamp":1,"seq":0,"signature":""} {}`,
		"not json":      `{`,
		"wrong type":    `{"node":1}`,
		"oversized":     `{"node":"` + strings.Repeat("a", capability.MaxRecordBytes) + `"}`,
	} {
		if _, err := capability.Decode([]byte(in)); !errors.Is(err, capability.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	k, id, pub := nodeKey(f, 1)
	s, err := capability.Sign(record(id), k)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := s.Marshal()
	f.Add(b)
	f.Add([]byte(`{"node":"x","models":null,"timestamp":1,"seq":0,"signature":""}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"models":[{"id":"a\u0000","kind":"chat"}]}`))
	f.Add([]byte(`{"seq":9007199254740993}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := capability.Decode(b)
		if err != nil {
			return
		}
		if s.Verify(pub) == nil {
			// Only the genuine record verifies; re-encoding it must too.
			b2, err := s.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			s2, err := capability.Decode(b2)
			if err != nil || s2.Verify(pub) != nil {
				t.Fatalf("verified record does not round-trip: %v", err)
			}
		}
		_ = s.Check()
	})
}

// BenchmarkVerify decodes and checks a record of 4 and of MaxModels
// models.
func BenchmarkVerify(b *testing.B) {
	k, id, pub := nodeKey(b, 1)
	for _, n := range []int{4, capability.MaxModels} {
		b.Run(fmt.Sprintf("models=%d", n), func(b *testing.B) {
			c := record(id)
			c.Models = nil
			for i := range n {
				c.Models = append(c.Models, capability.ModelCap{ID: strings.Repeat("m", 32) + string(rune('a'+i%26)) + strings.Repeat("z", i/26), Kind: capability.KindChat, Hash: strings.Repeat("ab", 32)})
			}
			s, err := capability.Sign(c, k)
			if err != nil {
				b.Fatal(err)
			}
			raw, _ := s.Marshal()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				got, err := capability.Decode(raw)
				if err != nil {
					b.Fatal(err)
				}
				if err := got.Verify(pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
