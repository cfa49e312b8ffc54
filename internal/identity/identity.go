// Package identity holds the Ed25519 keys agents and nodes sign with: key
// values, their stable identifiers, signatures, and an atomic
// create-if-absent file write (CreateExclusive) for the key files that do
// live on disk (a P2P node's libp2p key). Agents' keys are not files: the
// site keeps them sealed in its database (package keystore), so every
// process that signs for an agent uses the one key registered for it.
//
// # Identifiers
//
// ID derives a stable, printable identifier from the public key:
//
//	"hs1" + lowercase unpadded RFC 4648 base32 of sha256(publicKey)[:20]
//
// i.e. "hs1" followed by 32 characters of [a-z2-7] (160 bits of the hash).
// See IDFromPublic.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// IDPrefix starts every identifier produced by IDFromPublic.
const IDPrefix = "hs1"

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Key is an Ed25519 signing key. The zero value is not usable; get one from
// LoadOrCreate, Generate or FromSeed. A Key is safe for concurrent use.
type Key struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

func newKey(priv ed25519.PrivateKey) *Key {
	pub := priv.Public().(ed25519.PublicKey)
	return &Key{priv: priv, pub: pub, id: IDFromPublic(pub)}
}

// FromSeed returns the key for a 32-byte Ed25519 seed (RFC 8032). It panics
// if the seed has the wrong length; it is meant for tests and fixtures.
func FromSeed(seed []byte) *Key {
	return newKey(ed25519.NewKeyFromSeed(seed))
}

// Generate returns a fresh random key that is not persisted.
func Generate() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generating key: %w", err)
	}
	return newKey(priv), nil
}

// Public returns the public key.
func (k *Key) Public() ed25519.PublicKey { return append(ed25519.PublicKey(nil), k.pub...) }

// Sign signs msg with Ed25519 (pure, no pre-hashing).
func (k *Key) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// ID returns the key's stable identifier (see IDFromPublic).
func (k *Key) ID() string { return k.id }

// Seed returns the 32-byte private seed, e.g. for backing the key up.
func (k *Key) Seed() []byte { return k.priv.Seed() }

// IDFromPublic returns "hs1" + lowercase unpadded base32 of the first 20
// bytes of sha256(pub). It is the PeerID of receipts signed by pub.
func IDFromPublic(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return IDPrefix + strings.ToLower(idEncoding.EncodeToString(sum[:20]))
}

// Verify reports whether sig is a valid signature of msg by pub.
func Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, msg, sig)
}

// CreateExclusive atomically creates path (mode 0600) holding data unless
// it exists, in which case the error satisfies errors.Is(err, fs.ErrExist).
// Readers never observe a partially written file. Other key stores (the
// p2p node key) use it too.
func CreateExclusive(dir, path string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("identity: creating temp key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: writing temp key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: syncing temp key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	// link(2) fails with EEXIST when path exists: an atomic create-if-absent.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// Filesystems without hard links: fall back to O_EXCL, which is
		// still exclusive but may briefly expose a partial file.
		f, err2 := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err2 != nil {
			if errors.Is(err2, fs.ErrExist) {
				return err2
			}
			return fmt.Errorf("identity: creating %s: %w", path, err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return fmt.Errorf("identity: writing %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("identity: syncing %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil { // persist the directory entry
		d.Sync()
		d.Close()
	}
	return nil
}
