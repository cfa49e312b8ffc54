package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/pow"
)

// LoadOrCreateKey loads the node's libp2p private key from path, creating
// a new Ed25519 key there (mode 0600, parent directory 0700) when the file
// does not exist. A new key is minted to pass the static identity puzzle
// at difficulty (package pow; 0: any key; ctx bounds the minting). An
// existing key that falls below difficulty is an error wrapping
// pow.ErrBelowDifficulty that says what to do; it is never replaced, since
// replacing it would change the node's peer ID. The file holds the key in libp2p's protobuf encoding
// (crypto.MarshalPrivateKey). Creation is atomic: the key is written to a
// temporary file, synced, and hard-linked into place, so concurrent callers
// all end up with the same key and readers never see a partial file. A file
// that exists but cannot be parsed is an error; it is never replaced.
func LoadOrCreateKey(ctx context.Context, path string, difficulty int) (crypto.PrivKey, error) {
	if path == "" {
		return nil, errors.New("p2p: empty key file path")
	}
	if err := pow.Validate(difficulty); err != nil {
		return nil, fmt.Errorf("p2p: node key %s: %w", path, err)
	}
	if k, err := loadKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return nil, err
		}
		return k, checkKeyFile(path, k, difficulty)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("p2p: creating key directory %s: %w", dir, err)
	}
	priv, err := pow.MintKey(ctx, difficulty)
	if err != nil {
		return nil, fmt.Errorf("p2p: minting node key at difficulty %d: %w", difficulty, err)
	}
	data, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p: encoding node key: %w", err)
	}
	if err := identity.CreateExclusive(dir, path, data); err != nil {
		if errors.Is(err, fs.ErrExist) { // a concurrent creator won
			k, err := loadKey(path)
			if err != nil {
				return nil, err
			}
			return k, checkKeyFile(path, k, difficulty)
		}
		return nil, err
	}
	return priv, nil
}

// checkKeyFile explains what to do with a key file below the difficulty.
func checkKeyFile(path string, k crypto.PrivKey, difficulty int) error {
	err := pow.CheckKey(k.GetPublic(), difficulty)
	if err == nil {
		return nil
	}
	id, _ := peer.IDFromPrivateKey(k)
	p, _ := pow.KeyBytes(k.GetPublic())
	return fmt.Errorf("p2p: node key %s (peer ID %s) does not meet the proof-of-work difficulty %d: %w; "+
		"delete the file to mint a new identity at this difficulty (the node's peer ID will change: update the --bootstrap addresses that name it), "+
		"or run with --pow-difficulty %d or lower to keep this identity",
		path, id, difficulty, err, pow.StaticBits(p))
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
