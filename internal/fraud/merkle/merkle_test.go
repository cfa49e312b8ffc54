package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func leaves(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		out[i] = sha256.Sum256(b[:])
	}
	return out
}

// TestTreeMatchesRFC6962: the level-by-level tree has the recursive RFC
// 6962 root for every size, and known small roots hold.
func TestTreeMatchesRFC6962(t *testing.T) {
	for n := 0; n <= 70; n++ {
		ls := leaves(n)
		if got, want := New(ls).Root(), Root(ls); got != want {
			t.Fatalf("n=%d: tree root %s, recursive %s", n, got, want)
		}
	}
	ls := leaves(3)
	if want := Node(Node(LeafHash(ls[0]), LeafHash(ls[1])), LeafHash(ls[2])); Root(ls) != want {
		t.Fatal("3-leaf shape is not ((0,1),2)")
	}
	if EmptyRoot.String() != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatal("empty root is not SHA-256 of nothing")
	}
	// Domain separation: a node is not a leaf.
	if LeafHash(Node(ls[0], ls[1])) == Node(ls[0], ls[1]) || LeafHash(ls[0]) == Sum(ls[0][:]) {
		t.Fatal("leaf and node hashes are not separated")
	}
}

// TestProofs: every leaf's proof verifies, and changing the leaf, the
// index, any bit of the proof or its length makes it fail. (The size n is
// bound by the root, not the proof: the game fixes n in its commitment.)
func TestProofs(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 100, 10001} {
		ls := leaves(n)
		tr := New(ls)
		root := tr.Root()
		step := 1
		if n > 200 {
			step = 97
		}
		for i := 0; i < n; i += step {
			p, err := tr.Prove(i)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(root, i, n, ls[i], p); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			bad := ls[i]
			bad[0] ^= 1
			if Verify(root, i, n, bad, p) == nil {
				t.Fatalf("n=%d i=%d: wrong leaf verified", n, i)
			}
			if n > 1 && Verify(root, (i+1)%n, n, ls[i], p) == nil {
				t.Fatalf("n=%d i=%d: wrong index verified", n, i)
			}
			for j := range p {
				q := append(Proof(nil), p...)
				q[j][31] ^= 0x80
				if Verify(root, i, n, ls[i], q) == nil {
					t.Fatalf("n=%d i=%d: altered proof hash %d verified", n, i, j)
				}
			}
			if len(p) > 0 && Verify(root, i, n, ls[i], p[:len(p)-1]) == nil {
				t.Fatalf("n=%d i=%d: short proof verified", n, i)
			}
			if Verify(root, i, n, ls[i], append(append(Proof(nil), p...), root)) == nil {
				t.Fatalf("n=%d i=%d: long proof verified", n, i)
			}
		}
		if _, err := tr.Prove(n); err == nil {
			t.Fatal("proof of a leaf past the end")
		}
	}
	if err := Verify(Hash{}, 0, 0, Hash{}, nil); !errors.Is(err, ErrProof) {
		t.Fatalf("empty tree: %v", err)
	}
}

func TestHashText(t *testing.T) {
	h := Sum([]byte("x"))
	b, _ := json.Marshal(h)
	var g Hash
	if err := json.Unmarshal(b, &g); err != nil || g != h {
		t.Fatalf("round trip %s: %v", b, err)
	}
	for _, s := range []string{`"00"`, `"` + string(make([]byte, 64)) + `"`, `[1,2]`, `"zz` + h.String()[2:] + `"`} {
		if json.Unmarshal([]byte(s), &g) == nil {
			t.Fatalf("accepted %q", s)
		}
	}
}

// FuzzDecodeProof: the decoder never panics, bounds what it accepts, and
// a decoded proof re-encodes to the same proof; verifying it never panics.
func FuzzDecodeProof(f *testing.F) {
	ls := leaves(13)
	tr := New(ls)
	p, _ := tr.Prove(5)
	b, _ := json.Marshal(p)
	f.Add(b, 5, 13)
	f.Add([]byte(`[]`), 0, 1)
	f.Add([]byte(`null`), 0, 0)
	f.Add([]byte(`["`+ls[0].String()+`"]`), 1, 2)
	root := tr.Root()
	f.Fuzz(func(t *testing.T, b []byte, i, n int) {
		p, err := DecodeProof(b)
		if err != nil {
			return
		}
		if len(p) > MaxDepth || len(b) > MaxProofBytes {
			t.Fatalf("accepted %d hashes in %d bytes", len(p), len(b))
		}
		again, _ := json.Marshal(p)
		q, err := DecodeProof(again)
		if err != nil || len(q) != len(p) {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		// For the tree's own size, the only proof that verifies is the
		// honest one (anything else is a second preimage of SHA-256). Other
		// sizes may accept a proof of the same shape: n is authenticated by
		// the caller, not the proof (see Verify).
		if i >= 0 && i < len(ls) && n == len(ls) && Verify(root, i, n, ls[i], p) == nil {
			want, _ := tr.Prove(i)
			if !slices.Equal(want, p) {
				t.Fatalf("a foreign proof verified: i=%d n=%d", i, n)
			}
		}
	})
}
