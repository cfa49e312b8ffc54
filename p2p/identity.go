package p2p

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

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

// AgentCert binds an agent's receipt-signing key to the node that gossips
// its receipts: the node signs, with its libp2p key, the byte string
// "hyperspace-agent-cert/v1\n" + AgentPublicKey + "\n" + Node. Receivers
// accept a receipt only if the cert names the message's publisher
// (pubsub's From, authenticated by the message signature), the cert
// signature verifies with the key in that peer ID, and AgentPublicKey is
// the receipt's publicKey.
type AgentCert struct {
	AgentPublicKey string `json:"agentPublicKey"` // base64 std Ed25519 public key
	Node           string `json:"node"`           // peer.ID string of the gossiping node
	Signature      string `json:"signature"`      // base64 std, by the node's libp2p key
}

const agentCertDomain = "hyperspace-agent-cert/v1\n"

func agentCertBytes(agentPub, node string) []byte {
	return []byte(agentCertDomain + agentPub + "\n" + node)
}

// NewAgentCert returns the cert by which the node owning nodeKey vouches for
// the agent key agentPub. It panics only if nodeKey cannot sign or derive a
// peer ID, which does not happen for libp2p's key types.
func NewAgentCert(nodeKey crypto.PrivKey, agentPub ed25519.PublicKey) AgentCert {
	id, err := peer.IDFromPrivateKey(nodeKey)
	if err != nil {
		panic(fmt.Sprintf("p2p: peer id from node key: %v", err))
	}
	pub := base64.StdEncoding.EncodeToString(agentPub)
	sig, err := nodeKey.Sign(agentCertBytes(pub, id.String()))
	if err != nil {
		panic(fmt.Sprintf("p2p: signing agent cert: %v", err))
	}
	return AgentCert{AgentPublicKey: pub, Node: id.String(), Signature: base64.StdEncoding.EncodeToString(sig)}
}

// ErrSignerMismatch reports a cert that does not bind the receipt's signer
// to the publishing node.
var ErrSignerMismatch = errors.New("p2p: receipt signer is not vouched for by the publishing node")

// Verify checks that c is signed by publisher and vouches for the agent key
// agentPub (base64 std, as in receipt.Receipt.PublicKey).
func (c AgentCert) Verify(publisher peer.ID, agentPub string) error {
	if c.Node != publisher.String() {
		return fmt.Errorf("%w: cert names node %q, message is from %s", ErrSignerMismatch, c.Node, publisher)
	}
	if c.AgentPublicKey != agentPub {
		return fmt.Errorf("%w: cert is for agent key %q, receipt is signed by %q", ErrSignerMismatch, c.AgentPublicKey, agentPub)
	}
	pk, err := publisher.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: no public key in peer id %s: %v", ErrSignerMismatch, publisher, err)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil {
		return fmt.Errorf("%w: cert signature is not base64", ErrSignerMismatch)
	}
	ok, err := pk.Verify(agentCertBytes(c.AgentPublicKey, c.Node), sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: bad cert signature", ErrSignerMismatch)
	}
	return nil
}
