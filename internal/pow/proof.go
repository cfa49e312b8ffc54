package pow

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// Proof is the dynamic-puzzle message a node sends a peer on connect: its
// solution X and its key's signature over X (see ProofPayload). Wire form
// (MarshalBinary, ParseProof):
//
//	version (1 byte, ProofVersion) | X (32 bytes) | signature length
//	(2 bytes, big endian, 1..MaxSignatureSize) | signature
type Proof struct {
	X   [32]byte
	Sig []byte
}

// Wire limits of a Proof.
const (
	ProofVersion     = 1
	MaxSignatureSize = 512 // Ed25519 signs with 64 bytes; room for others
	MaxProofSize     = 1 + 32 + 2 + MaxSignatureSize
)

// ErrMalformedProof: bytes that are not a Proof.
var ErrMalformedProof = errors.New("pow: malformed proof")

// proofContext separates the proof's signatures from every other use of
// the node key.
const proofContext = "hyperspace/pow/1.0.0 dynamic solution\x00"

// ProofPayload is what a Proof's signature covers: a context string and X.
func ProofPayload(x [32]byte) []byte {
	return append([]byte(proofContext), x[:]...)
}

// NewProof signs x with priv.
func NewProof(priv crypto.PrivKey, x [32]byte) (Proof, error) {
	sig, err := priv.Sign(ProofPayload(x))
	if err != nil {
		return Proof{}, fmt.Errorf("pow: signing proof: %w", err)
	}
	return Proof{X: x, Sig: sig}, nil
}

// Verify checks that p is signed by pub and that X solves the dynamic
// puzzle for pub at difficulty d2.
func (p Proof) Verify(pub crypto.PubKey, d2 int) error {
	if err := Validate(d2); err != nil {
		return err
	}
	ok, err := pub.Verify(ProofPayload(p.X), p.Sig)
	if err != nil || !ok {
		return fmt.Errorf("pow: proof signature does not verify (err: %v)", err)
	}
	kb, err := KeyBytes(pub)
	if err != nil {
		return err
	}
	if got := DynamicBits(kb, p.X); got < d2 {
		return fmt.Errorf("%w: dynamic solution has %d leading zero bits, difficulty is %d", ErrBelowDifficulty, got, d2)
	}
	return nil
}

// MarshalBinary encodes p (see Proof).
func (p Proof) MarshalBinary() ([]byte, error) {
	if len(p.Sig) == 0 || len(p.Sig) > MaxSignatureSize {
		return nil, fmt.Errorf("%w: signature of %d bytes, want 1..%d", ErrMalformedProof, len(p.Sig), MaxSignatureSize)
	}
	b := make([]byte, 0, 1+32+2+len(p.Sig))
	b = append(b, ProofVersion)
	b = append(b, p.X[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.Sig)))
	return append(b, p.Sig...), nil
}

// ParseProof decodes a Proof from outside input: the exact wire form, no
// trailing bytes.
func ParseProof(b []byte) (Proof, error) {
	const head = 1 + 32 + 2
	if len(b) < head {
		return Proof{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformedProof, len(b), head)
	}
	if b[0] != ProofVersion {
		return Proof{}, fmt.Errorf("%w: version %d, want %d", ErrMalformedProof, b[0], ProofVersion)
	}
	var p Proof
	copy(p.X[:], b[1:33])
	n := int(binary.BigEndian.Uint16(b[33:35]))
	if n == 0 || n > MaxSignatureSize {
		return Proof{}, fmt.Errorf("%w: signature of %d bytes, want 1..%d", ErrMalformedProof, n, MaxSignatureSize)
	}
	if len(b) != head+n {
		return Proof{}, fmt.Errorf("%w: %d bytes, want %d", ErrMalformedProof, len(b), head+n)
	}
	p.Sig = append([]byte(nil), b[head:]...)
	return p, nil
}
