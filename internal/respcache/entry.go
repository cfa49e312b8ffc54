// Package respcache is the inference plane's L1 response cache, shared
// across peers: entries keyed by a request hash hold a response verbatim
// and a proof signed by the node that computed it.
//
// It is pure logic (no network): the entry and proof format with Sign and
// Verify, gossip announcements, an in-memory Store with TTL and a byte
// bound with LRU eviction, and an optional SemanticIndex that maps a prompt
// to a stored prompt of the same meaning. Package p2p moves entries between
// nodes; package admission decides which ones are believed.
//
// # Trust
//
// A proof names its Provider, the peer id of the node that computed the
// response, and is signed with that node's key (the Ed25519 key inside the
// peer id), so an entry can be served by anyone (fetchers re-serve what
// they fetched) without being forgeable by the server. A signature proves
// who vouched for an answer, not that the answer is right: callers re-check
// the response against the request it claims to answer (CheckContent) and
// re-compute a sample of what they fetch.
package respcache

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DefaultTTL is how long an entry is valid unless its signer says less.
const DefaultTTL = 24 * time.Hour

// Bounds of an entry's fields.
const (
	// MaxResponseBytes bounds a cached response (the p2p stream frame is
	// 4 MiB, which leaves room for the JSON and base64 overhead).
	MaxResponseBytes = 2 << 20
	// MaxModelBytes bounds the model name.
	MaxModelBytes = 256
	// MaxTTL is the longest TTL a proof may claim.
	MaxTTL = 30 * 24 * time.Hour
)

// Errors of Verify; each is wrapped with the details.
var (
	// ErrMalformed: a field is missing or out of shape (not a hash, not a
	// peer id, not base64, TTL out of range, response too large).
	ErrMalformed = errors.New("respcache: malformed entry")
	// ErrWrongRequest: the entry or its proof is for another request hash.
	ErrWrongRequest = errors.New("respcache: entry is for another request")
	// ErrResponseMismatch: the response does not hash to the proof's
	// ResponseHash.
	ErrResponseMismatch = errors.New("respcache: response does not match its proof")
	// ErrExpired: ComputedAt + TTL is in the past.
	ErrExpired = errors.New("respcache: entry expired")
	// ErrSignerNotProvider: the proof is signed by another key than the one
	// inside the Provider peer id.
	ErrSignerNotProvider = errors.New("respcache: proof not signed by its provider")
	// ErrBadSignature: the signature does not verify, or the ProofHash does
	// not match the proof's fields.
	ErrBadSignature = errors.New("respcache: bad proof signature")
)

// Entry is one cached response.
type Entry struct {
	RequestHash string `json:"requestHash"` // lowercase hex SHA-256 (inference.RequestHash)
	Model       string `json:"model"`
	// Response is stored and served verbatim (JSON: base64).
	Response []byte `json:"response"`
	Proof    Proof  `json:"proof"`
}

// Proof binds a response to its request, its model and the node that
// computed it.
//
// ProofHash is the lowercase hex SHA-256 of the concatenation of these
// parts, each preceded by its length as an 8-byte big-endian integer:
//
//	"hyperspace-cache-proof/v1"
//	RequestHash                       (64 hex characters)
//	ResponseHash                      (64 hex characters: SHA-256 of Response)
//	decimal ComputedAt                (unix milliseconds, e.g. "1719000000000")
//	decimal TTLSeconds                (e.g. "86400")
//	Provider                          (peer id, base58 as peer.ID.String)
//	Model
//
// Signature is the base64 (standard, padded) Ed25519 signature of the 32
// raw bytes of ProofHash, by the key PublicKey names, which must be the
// key inside Provider.
type Proof struct {
	RequestHash  string `json:"requestHash"`
	ResponseHash string `json:"responseHash"`
	ProofHash    string `json:"proofHash"`
	ComputedAt   int64  `json:"computedAt"` // unix ms
	TTLSeconds   int64  `json:"ttlSeconds"`
	Provider     string `json:"provider"` // peer id of the computing node
	// PublicKey is the signer's Ed25519 public key (base64 std); Verify
	// requires it to be Provider's key. It lets a verifier tell a forged
	// signature from a proof signed by another node.
	PublicKey string `json:"publicKey"`
	Signature string `json:"signature"` // base64 std Ed25519
}

const proofDomain = "hyperspace-cache-proof/v1"

// HashResponse is the ResponseHash of response.
func HashResponse(response []byte) string {
	s := sha256.Sum256(response)
	return hex.EncodeToString(s[:])
}

// ComputeProofHash returns the ProofHash of p's fields and model (see
// Proof for the exact bytes). It ignores p.ProofHash, PublicKey and
// Signature.
func ComputeProofHash(p Proof, model string) string {
	s := proofHashRaw(p, model)
	return hex.EncodeToString(s[:])
}

func proofHashRaw(p Proof, model string) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range []string{proofDomain, p.RequestHash, p.ResponseHash,
		strconv.FormatInt(p.ComputedAt, 10), strconv.FormatInt(p.TTLSeconds, 10), p.Provider, model} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Sign fills e.Proof for e.RequestHash, e.Model and e.Response as computed
// by the node owning priv (an Ed25519 libp2p key), valid for ttl (rounded
// down to whole seconds; <= 0: DefaultTTL). ComputedAt is kept when set,
// otherwise it is the current time.
func Sign(e *Entry, priv crypto.PrivKey, ttl time.Duration) error {
	if priv == nil || priv.Type() != crypto.Ed25519 {
		return fmt.Errorf("respcache: sign: need an Ed25519 key")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("respcache: sign: %w", err)
	}
	pub, err := priv.GetPublic().Raw()
	if err != nil {
		return fmt.Errorf("respcache: sign: %w", err)
	}
	p := Proof{
		RequestHash:  e.RequestHash,
		ResponseHash: HashResponse(e.Response),
		ComputedAt:   e.Proof.ComputedAt,
		TTLSeconds:   int64(ttl / time.Second),
		Provider:     id.String(),
		PublicKey:    base64.StdEncoding.EncodeToString(pub),
	}
	if p.ComputedAt == 0 {
		p.ComputedAt = time.Now().UnixMilli()
	}
	if p.TTLSeconds < 1 {
		p.TTLSeconds = 1
	}
	raw := proofHashRaw(p, e.Model)
	p.ProofHash = hex.EncodeToString(raw[:])
	sig, err := priv.Sign(raw[:])
	if err != nil {
		return fmt.Errorf("respcache: sign: %w", err)
	}
	p.Signature = base64.StdEncoding.EncodeToString(sig)
	e.Proof = p
	return nil
}

// Expires is when the entry stops being valid (ComputedAt + TTL).
func (p Proof) Expires() time.Time {
	return time.UnixMilli(p.ComputedAt).Add(time.Duration(p.TTLSeconds) * time.Second)
}

// isHexHash reports whether s is 64 lowercase hex characters.
func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// IsRequestHash reports whether s has the shape of a request hash (64
// lowercase hex characters).
func IsRequestHash(s string) bool { return isHexHash(s) }

// Verify checks e as an answer to wantRequestHash at time now, cheapest
// checks first: shape (ErrMalformed), request (ErrWrongRequest), response
// hash (ErrResponseMismatch), expiry (ErrExpired), that the signing key is
// the provider's (ErrSignerNotProvider), and the signature over the
// recomputed proof hash (ErrBadSignature).
func Verify(e Entry, wantRequestHash string, now time.Time) error {
	p := e.Proof
	switch {
	case !isHexHash(e.RequestHash) || !isHexHash(p.RequestHash):
		return fmt.Errorf("%w: request hash is not 64 lowercase hex characters", ErrMalformed)
	case !isHexHash(p.ResponseHash) || !isHexHash(p.ProofHash):
		return fmt.Errorf("%w: response or proof hash is not 64 lowercase hex characters", ErrMalformed)
	case len(e.Response) > MaxResponseBytes:
		return fmt.Errorf("%w: response of %d bytes, limit %d", ErrMalformed, len(e.Response), MaxResponseBytes)
	case len(e.Model) == 0 || len(e.Model) > MaxModelBytes:
		return fmt.Errorf("%w: model name of %d bytes (want 1-%d)", ErrMalformed, len(e.Model), MaxModelBytes)
	case p.ComputedAt <= 0:
		return fmt.Errorf("%w: computedAt %d", ErrMalformed, p.ComputedAt)
	case p.TTLSeconds <= 0 || p.TTLSeconds > int64(MaxTTL/time.Second):
		return fmt.Errorf("%w: ttl %ds (want 1-%d)", ErrMalformed, p.TTLSeconds, int64(MaxTTL/time.Second))
	}
	provider, err := peer.Decode(p.Provider)
	if err != nil {
		return fmt.Errorf("%w: provider %q is not a peer id", ErrMalformed, p.Provider)
	}
	signer, err := base64.StdEncoding.DecodeString(p.PublicKey)
	if err != nil || len(signer) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: publicKey is not a base64 Ed25519 key", ErrMalformed)
	}
	sig, err := base64.StdEncoding.DecodeString(p.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is not a base64 Ed25519 signature", ErrMalformed)
	}
	if e.RequestHash != wantRequestHash || p.RequestHash != wantRequestHash {
		return fmt.Errorf("%w: entry for %s, proof for %s, wanted %s", ErrWrongRequest, e.RequestHash, p.RequestHash, wantRequestHash)
	}
	if got := HashResponse(e.Response); got != p.ResponseHash {
		return fmt.Errorf("%w: response hashes to %s, proof says %s", ErrResponseMismatch, got, p.ResponseHash)
	}
	if exp := p.Expires(); !now.Before(exp) {
		return fmt.Errorf("%w: at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	pk, err := provider.ExtractPublicKey()
	if err != nil || pk.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: provider %s has no embedded Ed25519 key", ErrSignerNotProvider, p.Provider)
	}
	raw, err := pk.Raw()
	if err != nil || !bytes.Equal(raw, signer) {
		return fmt.Errorf("%w: signed by another key than provider %s's", ErrSignerNotProvider, p.Provider)
	}
	h := proofHashRaw(p, e.Model)
	if hex.EncodeToString(h[:]) != p.ProofHash {
		return fmt.Errorf("%w: proof hash does not match the proof's fields", ErrBadSignature)
	}
	if !ed25519.Verify(ed25519.PublicKey(signer), h[:], sig) {
		return fmt.Errorf("%w: by provider %s", ErrBadSignature, p.Provider)
	}
	return nil
}

// MaxEntryJSON bounds an encoded entry (the p2p stream's frame limit).
const MaxEntryJSON = 4 << 20

// UnmarshalEntry decodes exactly one JSON entry (no trailing data, no
// unknown fields). Its proof is Verify's to check.
func UnmarshalEntry(b []byte) (Entry, error) {
	if len(b) > MaxEntryJSON {
		return Entry{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), MaxEntryJSON)
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Entry{}, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	return e, nil
}
