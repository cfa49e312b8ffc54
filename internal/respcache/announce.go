package respcache

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Announcement tells the network that Provider computed (not fetched) the
// response to RequestHash at ComputedAt, so that lookups can go straight to
// it before the DHT holds its provider record.
//
// Signature is the base64 (std) Ed25519 signature, by the key inside the
// Provider peer id, of the SHA-256 of the length-prefixed (8-byte
// big-endian length, then the bytes) parts
//
//	"hyperspace-cache-announcement/v1" || RequestHash || Model || Provider || decimal ComputedAt
type Announcement struct {
	RequestHash string `json:"requestHash"`
	Model       string `json:"model"`
	Provider    string `json:"provider"`
	ComputedAt  int64  `json:"computedAt"` // unix ms
	Signature   string `json:"signature"`
}

// MaxAnnouncementBytes bounds an encoded announcement.
const MaxAnnouncementBytes = 2 << 10

const announceDomain = "hyperspace-cache-announcement/v1"

func (a Announcement) digest() [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range []string{announceDomain, a.RequestHash, a.Model, a.Provider, strconv.FormatInt(a.ComputedAt, 10)} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// SignAnnouncement fills a.Provider and a.Signature with priv's identity.
func SignAnnouncement(a *Announcement, priv crypto.PrivKey) error {
	if priv == nil || priv.Type() != crypto.Ed25519 {
		return errors.New("respcache: sign announcement: need an Ed25519 key")
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("respcache: sign announcement: %w", err)
	}
	a.Provider = id.String()
	d := a.digest()
	sig, err := priv.Sign(d[:])
	if err != nil {
		return fmt.Errorf("respcache: sign announcement: %w", err)
	}
	a.Signature = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// Verify checks a's shape (ErrMalformed), and that it is signed by the key
// inside its Provider peer id (ErrBadSignature). Freshness is the caller's
// (admission) to judge.
func (a Announcement) Verify() error {
	if !isHexHash(a.RequestHash) {
		return fmt.Errorf("%w: request hash is not 64 lowercase hex characters", ErrMalformed)
	}
	if len(a.Model) == 0 || len(a.Model) > MaxModelBytes || a.ComputedAt <= 0 {
		return fmt.Errorf("%w: model %d bytes, computedAt %d", ErrMalformed, len(a.Model), a.ComputedAt)
	}
	id, err := peer.Decode(a.Provider)
	if err != nil {
		return fmt.Errorf("%w: provider %q is not a peer id", ErrMalformed, a.Provider)
	}
	sig, err := base64.StdEncoding.DecodeString(a.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is not a base64 Ed25519 signature", ErrMalformed)
	}
	pk, err := id.ExtractPublicKey()
	if err != nil || pk.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: provider %s has no embedded Ed25519 key", ErrBadSignature, a.Provider)
	}
	raw, err := pk.Raw()
	d := a.digest()
	if err != nil || !ed25519.Verify(ed25519.PublicKey(raw), d[:], sig) {
		return fmt.Errorf("%w: announcement by %s", ErrBadSignature, a.Provider)
	}
	return nil
}

// UnmarshalAnnouncement decodes exactly one bounded JSON announcement (no
// unknown fields, no trailing data). Its signature is Verify's to check.
func UnmarshalAnnouncement(b []byte) (Announcement, error) {
	if len(b) > MaxAnnouncementBytes {
		return Announcement{}, fmt.Errorf("%w: announcement of %d bytes, limit %d", ErrMalformed, len(b), MaxAnnouncementBytes)
	}
	var a Announcement
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Announcement{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Announcement{}, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	return a, nil
}
