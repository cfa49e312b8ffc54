package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// TestStartPoW: node.key is minted at Options.PoWDifficulty and the host
// enforces it; an existing node.key below it stops the node with the
// helpful error instead of being replaced; PoWOff accepts it.
func TestStartPoW(t *testing.T) {
	opts := func(dir string, d int) node.Options {
		return node.Options{Dir: dir, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Domains: []string{p2ptest.Domain}, PoWDifficulty: d}
	}
	n, err := node.Start(context.Background(), opts(t.TempDir(), 10))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := pow.CheckPeer(n.P2P.ID(), 10); err != nil {
		t.Fatalf("node.key not minted at 10: %v", err)
	}

	dir := t.TempDir()
	weak := p2ptest.WeakKey(p2p.DefaultPoWDifficulty)
	data, _ := crypto.MarshalPrivateKey(weak)
	if err := os.WriteFile(filepath.Join(dir, "node.key"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Start(context.Background(), opts(dir, 0)); !errors.Is(err, pow.ErrBelowDifficulty) {
		t.Fatalf("under-difficulty node.key at the default difficulty: %v", err)
	}
	m, err := node.Start(context.Background(), opts(dir, p2p.PoWOff))
	if err != nil {
		t.Fatalf("PoWOff: %v", err)
	}
	defer m.Close()
	// The weak node cannot join the first one.
	if err := m.P2P.Connect(context.Background(), n.P2P.Addrs()[0].String()); err != nil {
		t.Logf("weak node's dial: %v", err)
	}
	if err := n.P2P.Connect(context.Background(), m.P2P.Addrs()[0].String()); !errors.Is(err, pow.ErrBelowDifficulty) {
		t.Fatalf("dialling the weak node: %v", err)
	}
}
