// Package merkle is a binary Merkle tree over 32-byte leaves with
// inclusion proofs, shaped and hashed as in RFC 6962 / RFC 9162 (SHA-256,
// leaf hash H(0x00 ‖ leaf), node hash H(0x01 ‖ left ‖ right), the left
// subtree of n leaves holding the largest power of two below n). It is the
// commitment scheme of the fraud-proof game (internal/fraud) and of the ML
// trainer's state roots (domains/ml). Pure: no I/O.
package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Hash is a SHA-256 digest. It encodes as 64 lowercase hex digits in JSON.
type Hash [32]byte

// String is the hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short is the first 8 hex digits, for messages.
func (h Hash) Short() string { return hex.EncodeToString(h[:4]) }

// IsZero reports whether h is all zero bytes.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) {
	out := make([]byte, 64)
	hex.Encode(out, h[:])
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler: exactly 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("merkle: hash has %d hex digits, want 64", len(b))
	}
	var out Hash
	if _, err := hex.Decode(out[:], b); err != nil {
		return fmt.Errorf("merkle: hash: %w", err)
	}
	*h = out
	return nil
}

// Sum is SHA-256 of data (the digest a buffer contributes as a leaf).
func Sum(data []byte) Hash { return sha256.Sum256(data) }

// LeafHash is H(0x00 ‖ leaf).
func LeafHash(leaf Hash) Hash {
	var b [33]byte
	copy(b[1:], leaf[:])
	return sha256.Sum256(b[:])
}

// Node is H(0x01 ‖ left ‖ right).
func Node(left, right Hash) Hash {
	var b [65]byte
	b[0] = 1
	copy(b[1:], left[:])
	copy(b[33:], right[:])
	return sha256.Sum256(b[:])
}

// EmptyRoot is the root of a tree with no leaves: SHA-256 of nothing.
var EmptyRoot = Hash(sha256.Sum256(nil))

// MaxDepth bounds proof length: a tree of up to 2^63 leaves.
const MaxDepth = 63

// Tree keeps every level of a tree so that proofs cost O(log n).
// levels[0] holds the leaf hashes; levels[k+1][i] = Node(levels[k][2i],
// levels[k][2i+1]), and an unpaired last node moves up unchanged, which
// gives the RFC 6962 shape.
type Tree struct {
	levels [][]Hash
}

// New builds the tree over leaves (copied).
func New(leaves []Hash) *Tree {
	lv := make([]Hash, len(leaves))
	for i, l := range leaves {
		lv[i] = LeafHash(l)
	}
	t := &Tree{levels: [][]Hash{lv}}
	for len(lv) > 1 {
		next := make([]Hash, (len(lv)+1)/2)
		for i := range next {
			if 2*i+1 < len(lv) {
				next[i] = Node(lv[2*i], lv[2*i+1])
			} else {
				next[i] = lv[2*i]
			}
		}
		t.levels = append(t.levels, next)
		lv = next
	}
	return t
}

// Len is the number of leaves.
func (t *Tree) Len() int { return len(t.levels[0]) }

// Root is the tree's root (EmptyRoot for no leaves).
func (t *Tree) Root() Hash {
	top := t.levels[len(t.levels)-1]
	if len(top) == 0 {
		return EmptyRoot
	}
	return top[0]
}

// Prove returns the inclusion proof of leaf i: the sibling hashes from the
// leaf up (RFC 9162 audit path).
func (t *Tree) Prove(i int) (Proof, error) {
	if i < 0 || i >= t.Len() {
		return nil, fmt.Errorf("merkle: leaf %d of %d", i, t.Len())
	}
	var p Proof
	for _, lv := range t.levels[:len(t.levels)-1] {
		if s := i ^ 1; s < len(lv) {
			p = append(p, lv[s])
		}
		i >>= 1
	}
	return p, nil
}

// Root is the root over leaves without keeping the tree.
func Root(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return EmptyRoot
	case 1:
		return LeafHash(leaves[0])
	}
	k := 1
	for k<<1 < len(leaves) {
		k <<= 1
	}
	return Node(Root(leaves[:k]), Root(leaves[k:]))
}

// Proof is an inclusion proof: sibling hashes from the leaf up.
type Proof []Hash

// ErrProof reports a proof that does not verify.
var ErrProof = errors.New("merkle: proof does not verify")

// Verify checks that leaf is leaf i of a tree of n leaves with the given
// root (RFC 9162 section 2.1.3.2). As in RFC 9162 the proof does not bind
// n: a proof for a tree of 13 leaves can also verify for a smaller n whose
// path has the same shape (its last sibling is then read as a leaf). n
// must come from an authenticated source; in a challenge it is fixed by
// the game's agreed parameters (Steps+1 states, NumOps+1 op states).
func Verify(root Hash, i, n int, leaf Hash, proof Proof) error {
	if n <= 0 || i < 0 || i >= n {
		return fmt.Errorf("%w: leaf %d of %d", ErrProof, i, n)
	}
	if len(proof) > MaxDepth {
		return fmt.Errorf("%w: %d hashes, at most %d", ErrProof, len(proof), MaxDepth)
	}
	fn, sn := uint64(i), uint64(n-1)
	r := LeafHash(leaf)
	for _, p := range proof {
		if sn == 0 {
			return fmt.Errorf("%w: too long", ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			r = Node(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = Node(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: too short", ErrProof)
	}
	if r != root {
		return fmt.Errorf("%w: root %s, want %s", ErrProof, r.Short(), root.Short())
	}
	return nil
}

// MaxProofBytes bounds an encoded proof: MaxDepth quoted hex hashes.
const MaxProofBytes = 2 + MaxDepth*67

// DecodeProof decodes a JSON proof (an array of hex hashes) of at most
// MaxProofBytes and MaxDepth hashes.
func DecodeProof(b []byte) (Proof, error) {
	if len(b) > MaxProofBytes {
		return nil, fmt.Errorf("merkle: proof of %d bytes, at most %d", len(b), MaxProofBytes)
	}
	var p Proof
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("merkle: decode proof: %w", err)
	}
	if len(p) > MaxDepth {
		return nil, fmt.Errorf("merkle: proof of %d hashes, at most %d", len(p), MaxDepth)
	}
	return p, nil
}
