// Package keystore keeps a site's agent signing keys.
//
// An agent's identity belongs to the site, not to a process: its Ed25519
// key is created once, when the agent is registered, sealed, and stored in
// the site's PostgreSQL beside the agent's public key. Every process of the
// site that signs for the agent (the node that records and shares its
// results and writes its papers, the archive worker that names its branch,
// a node it moves to when its own dies) unseals the same key. Nothing else
// holds it: no key files per process, nothing in S3, nothing in workflow
// history (activities carry only the agent's name).
//
// # Sealing
//
// A key is sealed with AES-256-GCM under a key derived with HKDF-SHA256 from
// the site secret, a value every process of the site is given (flag
// --site-secret-file or HYPERSPACE_SITE_SECRET; `hyperspace dev` creates one
// in its state dir). The agent's (campaign, name) is the additional data, so
// a sealed key cannot be moved to another agent's row. The sealed form is
//
//	0x01 || nonce (12 bytes) || AES-GCM(seed (32 bytes)) (48 bytes)
//
// A check value sealed the same way lets a process with the wrong secret
// fail at start instead of at its first signature.
//
// # Why not sign only on the agent's node
//
// The alternative, keys held only by the agent's node and handed over with
// a certificate when the agent moves, cannot survive the case that matters:
// a node that dies (SIGKILL, a lost machine) hands nothing over, and its
// agents would lose their identity. A sealed site keystore lets any live
// process of the site carry on for the agent, under the one key the site
// registered. What it asks is that the site secret be kept like any other
// site credential (the database password, the S3 key).
package keystore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
)

// MinSecretBytes is the shortest site secret accepted.
const MinSecretBytes = 16

const (
	sealVersion = 1
	sealedLen   = 1 + 12 + ed25519.SeedSize + 16
	checkLabel  = "hyperspace-site-secret-check/v1"
)

// Errors (wrapped; test with errors.Is).
var (
	// ErrNoSecret: the process was given no site secret.
	ErrNoSecret = errors.New("keystore: no site secret (set --site-secret-file or HYPERSPACE_SITE_SECRET; `hyperspace dev` creates one)")
	// ErrWrongSecret: the secret does not open what the site sealed.
	ErrWrongSecret = errors.New("keystore: the site secret does not match the one this site's keys were sealed with")
	// ErrUnknownAgent: no key was registered for the agent.
	ErrUnknownAgent = errors.New("keystore: agent is not registered")
)

// Sealer seals and opens agent keys under a site secret.
type Sealer struct{ aead cipher.AEAD }

// NewSealer derives the sealing key from secret.
func NewSealer(secret []byte) (*Sealer, error) {
	if len(secret) == 0 {
		return nil, ErrNoSecret
	}
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("keystore: the site secret has %d bytes; use at least %d (e.g. 32 random bytes, base64)", len(secret), MinSecretBytes)
	}
	key, err := hkdf.Key(sha256.New, secret, []byte("hyperspace-site"), "agent-key-seal/v1", 32)
	if err != nil {
		return nil, fmt.Errorf("keystore: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Label is the additional data a campaign agent's key is sealed with.
func Label(campaign, agent string) string { return "agent/" + campaign + "/" + agent }

// Seal seals k for label.
func (s *Sealer) Seal(k *identity.Key, label string) ([]byte, error) {
	return s.seal(k.Seed(), label)
}

func (s *Sealer) seal(plain []byte, label string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keystore: nonce: %w", err)
	}
	out := append([]byte{sealVersion}, nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(label)), nil
}

// Open opens a sealed key for label.
func (s *Sealer) Open(sealed []byte, label string) (*identity.Key, error) {
	plain, err := s.open(sealed, label)
	if err != nil {
		return nil, err
	}
	if len(plain) != ed25519.SeedSize {
		return nil, fmt.Errorf("keystore: sealed key has %d bytes", len(plain))
	}
	return identity.FromSeed(plain), nil
}

func (s *Sealer) open(sealed []byte, label string) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("keystore: not a sealed key (version %d, %d bytes)", firstByte(sealed), len(sealed))
	}
	plain, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(label))
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrWrongSecret, label)
	}
	return plain, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// CheckValue is a value sealed under the secret that proves, later, that a
// process holds the same secret (see Verify).
func (s *Sealer) CheckValue() ([]byte, error) { return s.seal([]byte(checkLabel), checkLabel) }

// Verify reports whether check was made by CheckValue under this secret.
func (s *Sealer) Verify(check []byte) error {
	plain, err := s.open(check, checkLabel)
	if err != nil {
		return ErrWrongSecret
	}
	if subtle.ConstantTimeCompare(plain, []byte(checkLabel)) != 1 {
		return ErrWrongSecret
	}
	return nil
}

// LoadSecret reads a site secret: the value of env when set, else the
// contents of file (surrounding whitespace removed). Neither: ErrNoSecret.
func LoadSecret(value, file string) ([]byte, error) {
	if v := strings.TrimSpace(value); v != "" {
		return []byte(v), nil
	}
	if file == "" {
		return nil, ErrNoSecret
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("keystore: read site secret: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return nil, fmt.Errorf("keystore: site secret file %s is empty", file)
	}
	return []byte(v), nil
}

// CreateSecretFile writes a new random secret (32 bytes, base64) to path
// (mode 0600) unless the file exists, and returns the secret in the file.
func CreateSecretFile(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return []byte(v), nil
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	v := base64.StdEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadSecret("", path) // created concurrently
		}
		return nil, fmt.Errorf("keystore: create site secret: %w", err)
	}
	if _, err := f.WriteString(v + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return []byte(v), f.Close()
}

// Store is what the keystore needs from the site database.
type Store interface {
	// InsertAgentKey records the agent with its public key and sealed key
	// unless it is already registered (then nothing changes).
	InsertAgentKey(ctx context.Context, campaign, agent, peerID, publicKey string, sealed []byte) error
	// AgentKey returns an agent's sealed key and public key (base64);
	// found is false when the agent is not registered.
	AgentKey(ctx context.Context, campaign, agent string) (sealed []byte, publicKey string, found bool, err error)
	// SiteSetting / InsertSiteSetting hold the secret's check value.
	SiteSetting(ctx context.Context, name string) ([]byte, bool, error)
	InsertSiteSetting(ctx context.Context, name string, value []byte) error
}

// Keystore creates and loads agent keys. It is safe for concurrent use;
// loaded keys are cached in memory.
type Keystore struct {
	store  Store
	sealer *Sealer

	mu    sync.Mutex
	cache map[string]*identity.Key
}

const checkSetting = "site_secret_check"

// Open checks the secret against the site's check value (recording one if
// the site has none yet) and returns the keystore.
func Open(ctx context.Context, st Store, secret []byte) (*Keystore, error) {
	s, err := NewSealer(secret)
	if err != nil {
		return nil, err
	}
	check, ok, err := st.SiteSetting(ctx, checkSetting)
	if err != nil {
		return nil, err
	}
	if !ok {
		v, err := s.CheckValue()
		if err != nil {
			return nil, err
		}
		if err := st.InsertSiteSetting(ctx, checkSetting, v); err != nil {
			return nil, err
		}
		if check, _, err = st.SiteSetting(ctx, checkSetting); err != nil { // a concurrent first process may have won
			return nil, err
		}
	}
	if err := s.Verify(check); err != nil {
		return nil, err
	}
	return &Keystore{store: st, sealer: s, cache: map[string]*identity.Key{}}, nil
}

// Register creates the agent's key unless the site already has one, and
// returns the site's key: concurrent and repeated calls all get the same.
func (k *Keystore) Register(ctx context.Context, campaign, agent string) (*identity.Key, error) {
	if key, err := k.Load(ctx, campaign, agent); err == nil {
		return key, nil
	} else if !errors.Is(err, ErrUnknownAgent) {
		return nil, err
	}
	fresh, err := identity.Generate()
	if err != nil {
		return nil, err
	}
	sealed, err := k.sealer.Seal(fresh, Label(campaign, agent))
	if err != nil {
		return nil, err
	}
	pub := base64.StdEncoding.EncodeToString(fresh.Public())
	if err := k.store.InsertAgentKey(ctx, campaign, agent, fresh.ID(), pub, sealed); err != nil {
		return nil, err
	}
	return k.Load(ctx, campaign, agent)
}

// Load returns a registered agent's key (ErrUnknownAgent if none).
func (k *Keystore) Load(ctx context.Context, campaign, agent string) (*identity.Key, error) {
	label := Label(campaign, agent)
	k.mu.Lock()
	key := k.cache[label]
	k.mu.Unlock()
	if key != nil {
		return key, nil
	}
	sealed, pub, found, err := k.store.AgentKey(ctx, campaign, agent)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %s/%s", ErrUnknownAgent, campaign, agent)
	}
	if len(sealed) == 0 {
		return nil, fmt.Errorf("%w: %s/%s has no sealed key (registered before the keystore existed)", ErrUnknownAgent, campaign, agent)
	}
	key, err = k.sealer.Open(sealed, label)
	if err != nil {
		return nil, err
	}
	if got := base64.StdEncoding.EncodeToString(key.Public()); got != pub {
		return nil, fmt.Errorf("keystore: %s/%s: the sealed key does not match the registered public key", campaign, agent)
	}
	k.mu.Lock()
	k.cache[label] = key
	k.mu.Unlock()
	return key, nil
}
