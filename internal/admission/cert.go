package admission

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Cert binds an agent's signing key to the node that vouches for it: the
// node signs, with its libp2p key, the byte string
//
//	"hyperspace-agent-cert/v1\n" + AgentPublicKey + "\n" + Node
//
// A record signed by an agent key is admitted only with a cert for that key
// whose signature verifies under the public key inside the Node peer id (on
// gossip, Node must also be the message's authenticated publisher). The
// cert travels beside the record: in the gossip envelope, and in the
// receipt's Vouch (Node and Signature; the key is the receipt's own) so that
// leaderboard sync can forward it.
type Cert struct {
	AgentPublicKey string `json:"agentPublicKey"` // base64 std Ed25519 public key
	Node           string `json:"node"`           // peer.ID string of the vouching node
	Signature      string `json:"signature"`      // base64 std, by the node's libp2p key
}

const certDomain = "hyperspace-agent-cert/v1\n"

func certBytes(agentPub, node string) []byte {
	return []byte(certDomain + agentPub + "\n" + node)
}

// NewCert returns the cert by which the node owning nodeKey vouches for the
// agent key agentPub. It panics only if nodeKey cannot sign or derive a peer
// id, which does not happen for libp2p's key types.
func NewCert(nodeKey crypto.PrivKey, agentPub ed25519.PublicKey) Cert {
	id, err := peer.IDFromPrivateKey(nodeKey)
	if err != nil {
		panic(fmt.Sprintf("admission: peer id from node key: %v", err))
	}
	pub := base64.StdEncoding.EncodeToString(agentPub)
	sig, err := nodeKey.Sign(certBytes(pub, id.String()))
	if err != nil {
		panic(fmt.Sprintf("admission: signing agent cert: %v", err))
	}
	return Cert{AgentPublicKey: pub, Node: id.String(), Signature: base64.StdEncoding.EncodeToString(sig)}
}

// ErrSignerMismatch reports a cert that does not bind a record's signer to
// the node that published it.
var ErrSignerMismatch = errors.New("admission: signer is not vouched for by the publishing node")

// Verify checks that c vouches for the agent key agentPub (base64 std) and
// is signed by the node it names; publisher, when not empty, must be that
// node.
func (c Cert) Verify(publisher peer.ID, agentPub string) error {
	if publisher != "" && c.Node != publisher.String() {
		return fmt.Errorf("%w: cert names node %q, the record was published by %s", ErrSignerMismatch, c.Node, publisher)
	}
	if c.AgentPublicKey != agentPub {
		return fmt.Errorf("%w: cert is for agent key %q, the record is signed by %q", ErrSignerMismatch, c.AgentPublicKey, agentPub)
	}
	node, err := peer.Decode(c.Node)
	if err != nil {
		return fmt.Errorf("%w: cert node %q is not a peer id", ErrSignerMismatch, c.Node)
	}
	pk, err := node.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: no public key in peer id %s: %v", ErrSignerMismatch, node, err)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil {
		return fmt.Errorf("%w: cert signature is not base64", ErrSignerMismatch)
	}
	ok, err := pk.Verify(certBytes(c.AgentPublicKey, c.Node), sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: bad cert signature", ErrSignerMismatch)
	}
	return nil
}

// Vouch is the part of c a receipt carries (its key is the receipt's own).
func (c Cert) Vouch() *receipt.Vouch {
	return &receipt.Vouch{Node: c.Node, Signature: c.Signature}
}

// CertOf rebuilds the cert a receipt's Vouch stands for (nil without one).
func CertOf(s receipt.Signed) *Cert {
	if s.Vouch == nil {
		return nil
	}
	return &Cert{AgentPublicKey: s.Receipt.PublicKey, Node: s.Vouch.Node, Signature: s.Vouch.Signature}
}

// NodeIdentity returns the node's libp2p Ed25519 key as an identity.Key:
// reviews are signed with it, so a review is bound to the node it names
// (see Checker.Review).
func NodeIdentity(nodeKey crypto.PrivKey) (*identity.Key, error) {
	if nodeKey.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("admission: node key is %v, want Ed25519", nodeKey.Type())
	}
	raw, err := nodeKey.Raw()
	if err != nil || len(raw) < ed25519.SeedSize {
		return nil, fmt.Errorf("admission: raw node key: %v", err)
	}
	return identity.FromSeed(raw[:ed25519.SeedSize]), nil
}

// nodePublicKey is the Ed25519 public key inside a peer id string.
func nodePublicKey(node string) (ed25519.PublicKey, error) {
	id, err := peer.Decode(node)
	if err != nil {
		return nil, fmt.Errorf("node %q is not a peer id", node)
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("no public key in peer id %s", node)
	}
	if pk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("node %s has a %v key, want Ed25519", node, pk.Type())
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("node %s: bad Ed25519 key", node)
	}
	return ed25519.PublicKey(raw), nil
}
