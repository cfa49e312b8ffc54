// Package capability is the signed record by which a node says which
// models it serves to its peers (the inference plane's provider records).
//
// A node signs its Capabilities with its libp2p Ed25519 key. The signing
// bytes are
//
//	"hyperspace-capabilities/v1\n" + JCS(Capabilities)
//
// where JCS is the RFC 8785 canonical JSON (package jcs) of the
// Capabilities object as encoded by encoding/json with the field names
// below ({"models":[{"hash","id","kind","ownedBy"}...],"node","seq",
// "timestamp"}; empty hash and ownedBy are omitted). Signature is the
// standard base64 of the Ed25519 signature. The public key is the one
// inside the Node peer id, so a record can only be signed by the node it
// names; package admission checks that binding and that the record came
// from that node.
//
// The package is a leaf: it knows nothing of libp2p beyond the Signer
// interface, which a libp2p crypto.PrivKey satisfies.
package capability

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hyperspace-ai/hyperspace/internal/jcs"
)

// Model kinds. KindChat and KindEmbedding are package inference's words
// (a chat model also answers /v1/completions); KindCompletion is a model
// that answers /v1/completions only (a base model without a chat template).
const (
	KindChat       = "chat"       // text generation: chat and completions
	KindEmbedding  = "embedding"  // /v1/embeddings
	KindCompletion = "completion" // /v1/completions only
)

// Limits of a record.
const (
	// MaxModels is the most models one record lists.
	MaxModels = 256
	// MaxNameBytes bounds every string of a ModelCap.
	MaxNameBytes = 256
	// MaxRecordBytes bounds an encoded Signed record (256 models of four
	// 256-byte strings, with room for JSON's escapes).
	MaxRecordBytes = 512 << 10
	// maxSeq keeps Seq exact in canonical JSON (IEEE doubles).
	maxSeq = 1 << 53
)

const signingDomain = "hyperspace-capabilities/v1\n"

// Errors of checking a record; Decode, Check and Verify wrap them.
var (
	ErrMalformed    = errors.New("capability: malformed record")
	ErrInvalid      = errors.New("capability: invalid record")
	ErrBadSignature = errors.New("capability: invalid signature")
)

// ModelCap is one model a node serves.
type ModelCap struct {
	ID      string `json:"id"`                // the model name requests use
	Kind    string `json:"kind"`              // KindChat, KindEmbedding or KindCompletion
	Hash    string `json:"hash,omitempty"`    // hex SHA-256 of the weights, when known
	OwnedBy string `json:"ownedBy,omitempty"` // OpenAI's owned_by
}

// Capabilities is what a node serves, as of Timestamp.
type Capabilities struct {
	Node      string     `json:"node"`      // peer id of the serving node (and signer)
	Models    []ModelCap `json:"models"`    // at most MaxModels, unique ids
	Timestamp int64      `json:"timestamp"` // unix ms
	Seq       uint64     `json:"seq"`       // grows with every record the node signs
}

// Signed is a Capabilities record with its node's signature. It encodes as
// one flat JSON object (the Capabilities fields and "signature").
type Signed struct {
	Capabilities
	Signature string `json:"signature"` // base64 std Ed25519 signature of SigningBytes
}

// Signer signs bytes; a libp2p crypto.PrivKey of type Ed25519 is one.
type Signer interface {
	Sign(msg []byte) ([]byte, error)
}

// Lists reports whether the record lists model id, and its entry.
func (c Capabilities) Lists(id string) (ModelCap, bool) {
	for _, m := range c.Models {
		if m.ID == id {
			return m, true
		}
	}
	return ModelCap{}, false
}

// Check checks the record's own invariants: a node, a positive timestamp,
// Seq below 2^53, at most MaxModels models with unique non-empty ids of a
// known kind, and every string valid UTF-8 of at most MaxNameBytes bytes
// without NUL characters.
func (c Capabilities) Check() error {
	if c.Node == "" {
		return fmt.Errorf("%w: no node", ErrInvalid)
	}
	if err := checkString("node", c.Node); err != nil {
		return err
	}
	if c.Timestamp <= 0 {
		return fmt.Errorf("%w: timestamp %d", ErrInvalid, c.Timestamp)
	}
	if c.Seq >= maxSeq {
		return fmt.Errorf("%w: seq %d is not below 2^53", ErrInvalid, c.Seq)
	}
	if len(c.Models) > MaxModels {
		return fmt.Errorf("%w: %d models, at most %d", ErrInvalid, len(c.Models), MaxModels)
	}
	seen := make(map[string]bool, len(c.Models))
	for i, m := range c.Models {
		if m.ID == "" {
			return fmt.Errorf("%w: model %d has no id", ErrInvalid, i)
		}
		for _, f := range [...]struct{ name, v string }{{"id", m.ID}, {"kind", m.Kind}, {"hash", m.Hash}, {"ownedBy", m.OwnedBy}} {
			if err := checkString(fmt.Sprintf("model %d %s", i, f.name), f.v); err != nil {
				return err
			}
		}
		if m.Kind != KindChat && m.Kind != KindEmbedding && m.Kind != KindCompletion {
			return fmt.Errorf("%w: model %.64q has kind %.64q (want %s, %s or %s)", ErrInvalid, m.ID, m.Kind, KindChat, KindEmbedding, KindCompletion)
		}
		if seen[m.ID] {
			return fmt.Errorf("%w: model %.64q listed twice", ErrInvalid, m.ID)
		}
		seen[m.ID] = true
	}
	return nil
}

func checkString(what, s string) error {
	switch {
	case len(s) > MaxNameBytes:
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalid, what, len(s), MaxNameBytes)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s holds a NUL character", ErrInvalid, what)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, what)
	}
	return nil
}

// SigningBytes are the bytes a node signs (see the package comment).
func (c Capabilities) SigningBytes() ([]byte, error) {
	if c.Models == nil {
		c.Models = []ModelCap{} // "models":[] whether empty or nil
	}
	b, err := jcs.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("capability: canonicalising: %w", err)
	}
	return append([]byte(signingDomain), b...), nil
}

// Sign checks c and signs it with k, the key of the node c.Node names.
func Sign(c Capabilities, k Signer) (Signed, error) {
	if err := c.Check(); err != nil {
		return Signed{}, err
	}
	msg, err := c.SigningBytes()
	if err != nil {
		return Signed{}, err
	}
	sig, err := k.Sign(msg)
	if err != nil {
		return Signed{}, fmt.Errorf("capability: signing: %w", err)
	}
	return Signed{Capabilities: c, Signature: base64.StdEncoding.EncodeToString(sig)}, nil
}

// Verify checks the record's invariants and that its signature verifies
// under pub (the caller derives pub from the node the record names; see
// admission.Checker.Capabilities).
func (s Signed) Verify(pub ed25519.PublicKey) error {
	if err := s.Check(); err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key is %d bytes", ErrBadSignature, len(pub))
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is not a base64 Ed25519 signature", ErrBadSignature)
	}
	msg, err := s.SigningBytes()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w: record of %s", ErrBadSignature, s.Node)
	}
	return nil
}

// Marshal encodes s as JSON.
func (s Signed) Marshal() ([]byte, error) { return json.Marshal(s) }

// Decode parses one Signed record of at most MaxRecordBytes, refusing
// unknown fields and trailing data. It checks the shape only: Verify (or
// admission) checks invariants and the signature.
func Decode(b []byte) (Signed, error) {
	var s Signed
	if len(b) > MaxRecordBytes {
		return s, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxRecordBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Signed{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Signed{}, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	if _, err := dec.Token(); err == nil {
		return Signed{}, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	return s, nil
}
