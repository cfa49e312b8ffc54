package pow

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestLeadingZeros(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want int
	}{
		{nil, 0},
		{[]byte{0x80}, 0},
		{[]byte{0x7f}, 1},
		{[]byte{0x01}, 7},
		{[]byte{0x00, 0x80}, 8},
		{[]byte{0x00, 0x00, 0x10}, 19},
		{[]byte{0x00, 0x00}, 16},
	} {
		if got := LeadingZeros(c.b); got != c.want {
			t.Errorf("LeadingZeros(%x) = %d, want %d", c.b, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, d := range []int{0, 1, 16, MaxDifficulty} {
		if err := Validate(d); err != nil {
			t.Errorf("Validate(%d): %v", d, err)
		}
	}
	for _, d := range []int{-1, MaxDifficulty + 1, 256} {
		if err := Validate(d); !errors.Is(err, ErrDifficulty) {
			t.Errorf("Validate(%d) = %v, want ErrDifficulty", d, err)
		}
	}
	if _, err := Mint(context.Background(), 33); !errors.Is(err, ErrDifficulty) {
		t.Errorf("Mint(33) = %v, want ErrDifficulty", err)
	}
}

// keyWithBits returns a key whose static score is exactly bits (found by
// search, so it is small).
func keyWithBits(t *testing.T, bits int) crypto.PrivKey {
	t.Helper()
	for i := uint64(0); ; i++ {
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], i)
		k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed[:]))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := KeyBytes(k.GetPublic())
		if StaticBits(p) == bits {
			return k
		}
	}
}

// TestStaticBoundary: a key with exactly d zero bits passes at d and fails
// at d+1; the score is SHA-256(SHA-256(P)) over the libp2p encoding.
func TestStaticBoundary(t *testing.T) {
	for _, d := range []int{1, 4, 9} {
		k := keyWithBits(t, d)
		p, _ := KeyBytes(k.GetPublic())
		h1 := sha256.Sum256(p)
		h2 := sha256.Sum256(h1[:])
		if LeadingZeros(h2[:]) != d {
			t.Fatalf("score is not SHA-256(SHA-256(P))")
		}
		if err := CheckKey(k.GetPublic(), d); err != nil {
			t.Errorf("d=%d: key with exactly %d bits refused: %v", d, d, err)
		}
		if err := CheckKey(k.GetPublic(), d+1); !errors.Is(err, ErrBelowDifficulty) {
			t.Errorf("d=%d: key accepted at %d: %v", d, d+1, err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		if err := CheckPeer(id, d); err != nil {
			t.Errorf("CheckPeer at %d: %v", d, err)
		}
		if err := CheckPeer(id, d+1); !errors.Is(err, ErrBelowDifficulty) {
			t.Errorf("CheckPeer accepted at %d: %v", d+1, err)
		}
	}
	// d = 0 is off: a key with a 1 in the first bit passes.
	k := keyWithBits(t, 0)
	if err := CheckKey(k.GetPublic(), 0); err != nil {
		t.Errorf("d=0: %v", err)
	}
}

func TestEd25519Prefix(t *testing.T) {
	k := MustMint(0)
	p, _ := KeyBytes(k.GetPublic())
	raw, _ := k.GetPublic().Raw()
	if !bytes.Equal(p, append(ed25519Prefix[:], raw...)) {
		t.Fatalf("libp2p encoding %x does not start with the prefix Mint assumes", p)
	}
	// The peer ID inlines exactly these bytes.
	id, _ := peer.IDFromPrivateKey(k)
	if pb, err := PeerKeyBytes(id); err != nil || !bytes.Equal(pb, p) {
		t.Fatalf("peer ID key bytes %x, %v; want %x", pb, err, p)
	}
}

func TestMintThenVerify(t *testing.T) {
	for _, d := range []int{0, 1, 8, 12} {
		var reports atomic.Int64
		r, err := Mint(context.Background(), d, WithProgress(func(uint64) { reports.Add(1) }))
		if err != nil {
			t.Fatal(err)
		}
		if r.Key.Type() != crypto.Ed25519 || r.Tries == 0 {
			t.Fatalf("d=%d: key %v after %d tries", d, r.Key.Type(), r.Tries)
		}
		if err := CheckKey(r.Key.GetPublic(), d); err != nil {
			t.Fatalf("d=%d: minted key fails: %v", d, err)
		}
		id, _ := peer.IDFromPrivateKey(r.Key)
		if err := CheckPeer(id, d); err != nil {
			t.Fatalf("d=%d: minted peer fails: %v", d, err)
		}
		// The key signs and verifies (the seed was turned into a real key).
		sig, _ := r.Key.Sign([]byte("x"))
		if ok, _ := r.Key.GetPublic().Verify([]byte("x"), sig); !ok {
			t.Fatal("minted key does not sign")
		}
		if r.Tries >= 2*progressEvery && reports.Load() == 0 {
			t.Errorf("d=%d: %d tries and no progress report", d, r.Tries)
		}
	}
}

func TestCorruptedKeyFails(t *testing.T) {
	const d = 12
	k := MustMint(d)
	raw, _ := k.GetPublic().Raw()
	failed := 0
	for bit := range 8 * len(raw) {
		c := bytes.Clone(raw)
		c[bit/8] ^= 1 << (bit % 8)
		pub, err := crypto.UnmarshalEd25519PublicKey(c)
		if err != nil {
			t.Fatal(err)
		}
		if CheckKey(pub, d) != nil {
			failed++
		}
	}
	// A flipped bit gives an unrelated hash: it keeps 12 zero bits with
	// probability 2^-12, so (almost) all 256 corruptions must fail.
	if failed < 8*len(raw)-2 {
		t.Fatalf("only %d of %d corrupted keys fail", failed, 8*len(raw))
	}
}

func TestMintCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Mint(ctx, MaxDifficulty)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Mint(32) under a 50ms deadline = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("Mint took %v to notice cancellation", time.Since(start))
	}
}

func TestNoPublicKey(t *testing.T) {
	// A hashed (non-inlined) peer ID: sha2-256 multihash of something.
	id, err := peer.Decode("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPeer(id, 1); !errors.Is(err, ErrNoPublicKey) {
		t.Fatalf("CheckPeer(hashed ID) = %v, want ErrNoPublicKey", err)
	}
	if err := CheckPeer(id, 0); err != nil {
		t.Fatalf("d=0 must accept any peer: %v", err)
	}
}

func TestDynamic(t *testing.T) {
	k := MustMint(4)
	const d2 = 10
	x, err := SolveDynamic(context.Background(), k.GetPublic(), d2)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := KeyBytes(k.GetPublic())
	got := DynamicBits(p, x)
	if got < d2 {
		t.Fatalf("solution has %d bits", got)
	}
	pr, err := NewProof(k, x)
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Verify(k.GetPublic(), d2); err != nil {
		t.Fatalf("valid proof: %v", err)
	}
	if err := pr.Verify(k.GetPublic(), got); err != nil {
		t.Fatalf("proof at exactly its %d bits: %v", got, err)
	}
	if err := pr.Verify(k.GetPublic(), got+1); !errors.Is(err, ErrBelowDifficulty) {
		t.Fatalf("proof accepted above its bits: %v", err)
	}
	// Another key's X, signed by this key, does not solve this key's puzzle.
	other := MustMint(4)
	xo, _ := SolveDynamic(context.Background(), other.GetPublic(), d2)
	if DynamicBits(p, xo) < d2 {
		bad, _ := NewProof(k, xo)
		if err := bad.Verify(k.GetPublic(), d2); !errors.Is(err, ErrBelowDifficulty) {
			t.Fatalf("foreign X accepted: %v", err)
		}
	}
	// A proof signed by another key fails its signature check.
	forged, _ := NewProof(other, x)
	if err := forged.Verify(k.GetPublic(), d2); err == nil {
		t.Fatal("proof signed by another key accepted")
	}
	// A tampered X fails.
	tampered := pr
	tampered.X[31] ^= 1
	if err := tampered.Verify(k.GetPublic(), d2); err == nil {
		t.Fatal("tampered X accepted")
	}
}

func TestProofWire(t *testing.T) {
	k := MustMint(0)
	x, _ := SolveDynamic(context.Background(), k.GetPublic(), 3)
	pr, _ := NewProof(k, x)
	b, err := pr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseProof(b)
	if err != nil || back.X != pr.X || !bytes.Equal(back.Sig, pr.Sig) {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	bad := [][]byte{
		nil,
		b[:34],
		b[:len(b)-1],
		append(bytes.Clone(b), 0),
		append([]byte{2}, b[1:]...),
		append(bytes.Clone(b[:33]), 0, 0), // zero-length signature
		append(bytes.Clone(b[:33]), 0xff, 0xff, 1), // signature too long
	}
	for i, in := range bad {
		if _, err := ParseProof(in); !errors.Is(err, ErrMalformedProof) {
			t.Errorf("case %d: ParseProof(%x) = %v, want ErrMalformedProof", i, in, err)
		}
	}
}

func FuzzParseProof(f *testing.F) {
	k := MustMint(0)
	pr, _ := NewProof(k, [32]byte{1, 2, 3})
	b, _ := pr.MarshalBinary()
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(append([]byte{1}, make([]byte, 34)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParseProof(in)
		if err != nil {
			if !errors.Is(err, ErrMalformedProof) {
				t.Fatalf("error %v is not ErrMalformedProof", err)
			}
			return
		}
		out, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("decoded input does not re-encode to itself: %x -> %x (%v)", in, out, err)
		}
		if len(in) > MaxProofSize {
			t.Fatalf("accepted %d bytes, limit %d", len(in), MaxProofSize)
		}
		// Verification of arbitrary input must not panic, and must fail
		// unless the fuzzer forged an Ed25519 signature.
		if p.Verify(k.GetPublic(), 0) == nil && !bytes.Equal(in, b) {
			t.Fatalf("arbitrary proof verified: %x", in)
		}
	})
}
