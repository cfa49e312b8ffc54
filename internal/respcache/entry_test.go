package respcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testKey returns a deterministic Ed25519 libp2p key for name.
func testKey(t testing.TB, name string) crypto.PrivKey {
	t.Helper()
	seed := sha256.Sum256([]byte("respcache test " + name))
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(append(seed[:], seed[:]...)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func reqHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

var t0 = time.UnixMilli(1_750_000_000_000)

func signed(t testing.TB, key crypto.PrivKey, request string, response []byte, ttl time.Duration) Entry {
	t.Helper()
	e := Entry{RequestHash: reqHash(request), Model: "tiny-lm", Response: response, Proof: Proof{ComputedAt: t0.UnixMilli()}}
	if err := Sign(&e, key, ttl); err != nil {
		t.Fatal(err)
	}
	return e
}

// resign recomputes e's proof hash and signs it with key, keeping every
// other proof field (as a forger who controls key would).
func resign(t testing.TB, e *Entry, key crypto.PrivKey) {
	t.Helper()
	raw := proofHashRaw(e.Proof, e.Model)
	e.Proof.ProofHash = hex.EncodeToString(raw[:])
	sig, err := key.Sign(raw[:])
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.GetPublic().Raw()
	e.Proof.PublicKey = base64.StdEncoding.EncodeToString(pub)
	e.Proof.Signature = base64.StdEncoding.EncodeToString(sig)
}

func TestSignVerify(t *testing.T) {
	k := testKey(t, "a")
	e := signed(t, k, "q1", []byte(`{"text":"lift"}`), time.Hour)
	if err := Verify(e, e.RequestHash, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	if e.Proof.Provider != id.String() || e.Proof.TTLSeconds != 3600 || e.Proof.ComputedAt != t0.UnixMilli() {
		t.Fatalf("proof %+v", e.Proof)
	}
	if e.Proof.ProofHash != ComputeProofHash(e.Proof, e.Model) {
		t.Fatal("ComputeProofHash disagrees with Sign")
	}
	// JSON round trip keeps it valid.
	b, _ := json.Marshal(e)
	d, err := UnmarshalEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(d, e.RequestHash, t0); err != nil {
		t.Fatal(err)
	}
	// Default TTL.
	e2 := signed(t, k, "q2", []byte("x"), 0)
	if e2.Proof.TTLSeconds != int64(DefaultTTL/time.Second) {
		t.Fatalf("ttl %d", e2.Proof.TTLSeconds)
	}
}

// TestProofHashBytes pins the documented byte layout of ProofHash.
func TestProofHashBytes(t *testing.T) {
	p := Proof{RequestHash: reqHash("r"), ResponseHash: HashResponse([]byte("x")), ComputedAt: 1, TTLSeconds: 2, Provider: "P"}
	var buf []byte
	for _, s := range []string{"hyperspace-cache-proof/v1", p.RequestHash, p.ResponseHash, "1", "2", "P", "m"} {
		buf = append(buf, 0, 0, 0, 0, 0, 0, 0, byte(len(s)))
		buf = append(buf, s...)
	}
	want := sha256.Sum256(buf)
	if got := ComputeProofHash(p, "m"); got != hex.EncodeToString(want[:]) {
		t.Fatalf("proof hash %s, want %s", got, hex.EncodeToString(want[:]))
	}
}

func TestVerifyRejectsPoison(t *testing.T) {
	honest := testKey(t, "honest")
	evil := testKey(t, "evil")
	good := signed(t, honest, "q", []byte(`{"text":"the answer"}`), time.Hour)
	want := good.RequestHash
	now := t0.Add(time.Minute)

	cases := []struct {
		name string
		mut  func(e *Entry)
		at   time.Time
		err  error
	}{
		{"bad signature", func(e *Entry) {
			sig, _ := base64.StdEncoding.DecodeString(e.Proof.Signature)
			sig[0] ^= 1
			e.Proof.Signature = base64.StdEncoding.EncodeToString(sig)
		}, now, ErrBadSignature},
		{"tampered metadata", func(e *Entry) { e.Proof.TTLSeconds = 7200 }, now, ErrBadSignature},
		{"tampered model", func(e *Entry) { e.Model = "other" }, now, ErrBadSignature},
		{"response not matching its hash", func(e *Entry) { e.Response = []byte(`{"text":"a lie"}`) }, now, ErrResponseMismatch},
		{"proof for another request", func(e *Entry) {
			e.RequestHash = reqHash("other")
			e.Proof.RequestHash = e.RequestHash
			resign(t, e, honest)
		}, now, ErrWrongRequest},
		{"entry filed under another request", func(e *Entry) { e.RequestHash = reqHash("other") }, now, ErrWrongRequest},
		{"expired", func(*Entry) {}, t0.Add(time.Hour), ErrExpired},
		{"signer not the provider", func(e *Entry) {
			// A lie re-signed by evil but naming honest as its provider.
			e.Response = []byte(`{"text":"a lie"}`)
			e.Proof.ResponseHash = HashResponse(e.Response)
			resign(t, e, evil)
		}, now, ErrSignerNotProvider},
		{"signer key swapped for the provider's", func(e *Entry) {
			e.Response = []byte(`{"text":"a lie"}`)
			e.Proof.ResponseHash = HashResponse(e.Response)
			resign(t, e, evil)
			pub, _ := honest.GetPublic().Raw()
			e.Proof.PublicKey = base64.StdEncoding.EncodeToString(pub)
		}, now, ErrBadSignature},
		{"provider not a peer id", func(e *Entry) { e.Proof.Provider = "nobody" }, now, ErrMalformed},
		{"no ttl", func(e *Entry) { e.Proof.TTLSeconds = 0 }, now, ErrMalformed},
		{"ttl too long", func(e *Entry) { e.Proof.TTLSeconds = int64(MaxTTL/time.Second) + 1 }, now, ErrMalformed},
		{"uppercase hash", func(e *Entry) { e.Proof.ResponseHash = "A" + e.Proof.ResponseHash[1:] }, now, ErrMalformed},
		{"no model", func(e *Entry) { e.Model = "" }, now, ErrMalformed},
		{"signature not base64", func(e *Entry) { e.Proof.Signature = "!!" }, now, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := good
			e.Response = bytes.Clone(good.Response)
			c.mut(&e)
			err := Verify(e, want, c.at)
			if !errors.Is(err, c.err) {
				t.Fatalf("Verify = %v, want %v", err, c.err)
			}
		})
	}
	// Evil's own honest-looking proof for its own lie verifies: a signature
	// says who vouches, not that the answer is right (sampled re-computation
	// catches that).
	lie := signed(t, evil, "q", []byte(`{"text":"a lie"}`), time.Hour)
	if err := Verify(lie, want, now); err != nil {
		t.Fatalf("self-signed lie: %v", err)
	}
}

func TestAnnouncement(t *testing.T) {
	k := testKey(t, "a")
	a := Announcement{RequestHash: reqHash("q"), Model: "tiny-lm", ComputedAt: t0.UnixMilli()}
	if err := SignAnnouncement(&a, k); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(a)
	d, err := UnmarshalAnnouncement(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(); err != nil {
		t.Fatal(err)
	}
	forged := d
	forged.Provider = mustID(t, testKey(t, "b"))
	if err := forged.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged provider: %v", err)
	}
	moved := d
	moved.RequestHash = reqHash("other")
	if err := moved.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("moved announcement: %v", err)
	}
	if _, err := UnmarshalAnnouncement(append(b, []byte(`{}`)...)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing data: %v", err)
	}
	if _, err := UnmarshalAnnouncement([]byte(`{"requestHash":"x","extra":1}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown field: %v", err)
	}
}

func mustID(t testing.TB, k crypto.PrivKey) string {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}
