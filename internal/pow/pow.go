// Package pow gives node identities a cost: the S/Kademlia crypto puzzles
// (Baumgart and Mies, 2007) over libp2p public keys.
//
// The puzzles are computed over P, a key's libp2p protobuf encoding
// (crypto.MarshalPublicKey): for Ed25519 that is the 36 bytes an Ed25519
// peer ID inlines (the digest of its identity multihash), so a node can
// check a peer from its peer ID alone.
//
//   - Static puzzle: P is valid at difficulty d when SHA-256(SHA-256(P))
//     has at least d leading zero bits. Minting (Mint) generates Ed25519
//     keys until one is valid, 2^d tries on average; checking it is two
//     SHA-256 calls. A node's identity is its key, so every identity costs
//     its maker 2^d key generations.
//   - Dynamic puzzle: X is a solution at difficulty d2 when
//     SHA-256(SHA-256(P) XOR X) has at least d2 leading zero bits. Solving
//     (SolveDynamic) costs 2^d2 hashes and can be redone at a higher
//     difficulty without changing the identity. A Proof carries X with
//     the key's signature over it.
//
// Difficulty 0 turns a puzzle off: every key (every X) is valid.
//
// The checks are pure functions; minting and solving run on every core
// (WithWorkers bounds them), stop when their context is cancelled, and can
// report progress (WithProgress).
package pow

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxDifficulty is the highest difficulty either puzzle accepts: 2^32
// tries is days of minting on one machine, well past any sensible setting.
const MaxDifficulty = 32

// Errors. Check* errors wrap ErrBelowDifficulty or ErrNoPublicKey so
// callers can tell a weak identity from one that cannot be checked.
var (
	// ErrDifficulty: a difficulty outside 0..MaxDifficulty.
	ErrDifficulty = errors.New("pow: difficulty out of range")
	// ErrBelowDifficulty: the key (or the dynamic solution) has fewer
	// leading zero bits than required.
	ErrBelowDifficulty = errors.New("pow: below difficulty")
	// ErrNoPublicKey: the peer ID does not inline its public key (only
	// Ed25519 and secp256k1 IDs do), so the puzzle cannot be checked.
	ErrNoPublicKey = errors.New("pow: peer ID does not inline its public key")
)

// Validate reports whether d is a valid difficulty (0..MaxDifficulty; 0 is
// off).
func Validate(d int) error {
	if d < 0 || d > MaxDifficulty {
		return fmt.Errorf("%w: %d, want 0 (off) to %d leading zero bits", ErrDifficulty, d, MaxDifficulty)
	}
	return nil
}

// LeadingZeros is the number of leading zero bits of b (8*len(b) when b is
// all zeros).
func LeadingZeros(b []byte) int {
	n := 0
	for _, c := range b {
		if c != 0 {
			return n + bits.LeadingZeros8(c)
		}
		n += 8
	}
	return n
}

// StaticBits is the static puzzle's score of the encoded key p: the
// leading zero bits of SHA-256(SHA-256(p)).
func StaticBits(p []byte) int {
	h := sha256.Sum256(p)
	h = sha256.Sum256(h[:])
	return LeadingZeros(h[:])
}

// DynamicBits is the dynamic puzzle's score of X for the encoded key p:
// the leading zero bits of SHA-256(SHA-256(p) XOR x).
func DynamicBits(p []byte, x [32]byte) int {
	return dynamicBits(sha256.Sum256(p), x)
}

func dynamicBits(h, x [32]byte) int {
	for i := range h {
		h[i] ^= x[i]
	}
	h = sha256.Sum256(h[:])
	return LeadingZeros(h[:])
}

// KeyBytes is P, the bytes both puzzles hash: the key's libp2p encoding.
func KeyBytes(pub crypto.PubKey) ([]byte, error) {
	p, err := crypto.MarshalPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pow: encoding public key: %w", err)
	}
	return p, nil
}

// PeerKeyBytes is P for a peer ID that inlines its key.
func PeerKeyBytes(id peer.ID) ([]byte, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoPublicKey, id, err)
	}
	return KeyBytes(pub)
}

// CheckKey checks pub against the static puzzle at difficulty d.
func CheckKey(pub crypto.PubKey, d int) error {
	if err := Validate(d); err != nil {
		return err
	}
	if d == 0 {
		return nil
	}
	p, err := KeyBytes(pub)
	if err != nil {
		return err
	}
	if got := StaticBits(p); got < d {
		return fmt.Errorf("%w: key has %d leading zero bits, difficulty is %d", ErrBelowDifficulty, got, d)
	}
	return nil
}

// CheckPeer checks the key that id inlines against the static puzzle at
// difficulty d. At d = 0 every peer passes, including those whose IDs do
// not inline a key.
func CheckPeer(id peer.ID, d int) error {
	if err := Validate(d); err != nil {
		return err
	}
	if d == 0 {
		return nil
	}
	p, err := PeerKeyBytes(id)
	if err != nil {
		return err
	}
	if got := StaticBits(p); got < d {
		return fmt.Errorf("%w: peer %s has %d leading zero bits, difficulty is %d", ErrBelowDifficulty, id, got, d)
	}
	return nil
}
