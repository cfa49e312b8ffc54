// Package identity manages the persisted Ed25519 keys that agents and peers
// sign receipts with.
//
// A key lives in <dir>/<name>.key as a PEM "PRIVATE KEY" block (PKCS#8,
// the format `openssl genpkey -algorithm ed25519` writes), mode 0600, in a
// directory with mode 0700. Keys are created atomically: the PEM is written
// to a temporary file, synced, and hard-linked into place, which fails if
// the name already exists, so concurrent creators (goroutines or processes)
// all end up with the one key that won. An existing file that cannot be
// parsed is an error naming the path; it is never replaced.
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
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
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

// Path returns the file LoadOrCreate uses for name in dir.
func Path(dir, name string) string { return filepath.Join(dir, name+".key") }

// LoadOrCreate loads the key <dir>/<name>.key, creating the directory (0700)
// and a new random key (0600) when the file does not exist. It is safe to
// call concurrently from several goroutines or processes: all callers get
// the same key. A file that exists but cannot be parsed is an error.
func LoadOrCreate(dir, name string) (*Key, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("identity: invalid key name %q", name)
	}
	path := Path(dir, name)
	if k, err := load(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: creating key directory: %w", err)
	}
	k, err := Generate()
	if err != nil {
		return nil, err
	}
	if err := CreateExclusive(dir, path, encodePEM(k.priv)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return load(path) // someone else won the race
		}
		return nil, err
	}
	return k, nil
}

// Load reads an existing key file written by LoadOrCreate (or openssl).
func Load(path string) (*Key, error) { return load(path) }

func load(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("identity: reading %s: %w", path, err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("identity: %s: corrupt key file: want one PEM \"PRIVATE KEY\" block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: corrupt key file: %w", path, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity: %s: key is %T, want Ed25519", path, parsed)
	}
	return newKey(priv), nil
}

func encodePEM(priv ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic(err) // cannot fail for a valid Ed25519 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// createExclusive atomically creates path with data unless it exists, in
// which case the returned error satisfies errors.Is(err, fs.ErrExist).
// Readers never observe a partially written file.
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
