package p2p_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "node.key")
	var wg sync.WaitGroup
	ids := make([]peer.ID, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := p2p.LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], _ = peer.IDFromPrivateKey(k)
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent creators got different keys: %v", ids)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k, err := p2p.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := peer.IDFromPrivateKey(k); id != ids[0] || k.Type() != crypto.Ed25519 {
		t.Fatalf("reloaded key %s (%v), want %s Ed25519", id, k.Type(), ids[0])
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p2p.LoadOrCreateKey(path); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

func TestAgentCert(t *testing.T) {
	nodeKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	node, _ := peer.IDFromPrivateKey(nodeKey)
	otherID, _ := peer.IDFromPrivateKey(other)
	agent := p2ptest.AgentKey("a")
	s, err := p2ptest.Receipt(agent, p2ptest.Domain, 1, nowForTest())
	if err != nil {
		t.Fatal(err)
	}
	cert := p2p.NewAgentCert(nodeKey, agent.Public())
	if err := cert.Verify(node, s.Receipt.PublicKey); err != nil {
		t.Fatalf("valid cert: %v", err)
	}
	if err := cert.Verify(otherID, s.Receipt.PublicKey); err == nil {
		t.Error("cert accepted for another node")
	}
	forged := cert
	forged.Node = otherID.String()
	if err := forged.Verify(otherID, s.Receipt.PublicKey); err == nil {
		t.Error("cert with a swapped node accepted")
	}
	if err := cert.Verify(node, p2ptest.AgentKey("b").ID()); err == nil {
		t.Error("cert accepted for another agent")
	}
}
