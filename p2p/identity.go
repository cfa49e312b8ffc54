package p2p

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
)

// LoadOrCreateKey loads the node's libp2p private key from path, creating
// a new Ed25519 key there (mode 0600, parent directory 0700) when the file
// does not exist. The file holds the key in libp2p's protobuf encoding
// (crypto.MarshalPrivateKey). Creation is atomic: the key is written to a
// temporary file, synced, and hard-linked into place, so concurrent callers
// all end up with the same key and readers never see a partial file. A file
// that exists but cannot be parsed is an error; it is never replaced.
func LoadOrCreateKey(path string) (crypto.PrivKey, error) {
	if path == "" {
		return nil, errors.New("p2p: empty key file path")
	}
	if k, err := loadKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("p2p: creating key directory %s: %w", dir, err)
	}
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: generating node key: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p: encoding node key: %w", err)
	}
	if err := identity.CreateExclusive(dir, path, data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path) // a concurrent creator won
		}
		return nil, err
	}
	return priv, nil
}

func loadKey(path string) (crypto.PrivKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("p2p: reading key %s: %w", path, err)
	}
	k, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("p2p: %s: corrupt node key: %w", path, err)
	}
	if k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("p2p: %s: node key is %v, want Ed25519", path, k.Type())
	}
	return k, nil
}

// AgentCert binds an agent's signing key to the node that gossips its
// records (see admission.Cert, which defines and checks it).
type AgentCert = admission.Cert

// ErrSignerMismatch reports a cert that does not bind the record's signer
// to the publishing node.
var ErrSignerMismatch = admission.ErrSignerMismatch

// NewAgentCert returns the cert by which the node owning nodeKey vouches for
// the agent key agentPub.
func NewAgentCert(nodeKey crypto.PrivKey, agentPub ed25519.PublicKey) AgentCert {
	return admission.NewCert(nodeKey, agentPub)
}
