package p2p_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/pow"
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
			k, err := p2p.LoadOrCreateKey(t.Context(), path, p2ptest.Difficulty)
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
	k, err := p2p.LoadOrCreateKey(t.Context(), path, p2ptest.Difficulty)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := peer.IDFromPrivateKey(k); id != ids[0] || k.Type() != crypto.Ed25519 {
		t.Fatalf("reloaded key %s (%v), want %s Ed25519", id, k.Type(), ids[0])
	}
	if err := pow.CheckPeer(ids[0], p2ptest.Difficulty); err != nil {
		t.Fatalf("created key was not minted at the difficulty: %v", err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p2p.LoadOrCreateKey(t.Context(), path, p2ptest.Difficulty); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

// TestLoadOrCreateKeyDifficulty: a new key is minted at the difficulty; an
// existing key below it is refused with an error that says what to do, and
// the file is left alone; a key meets every lower difficulty.
func TestLoadOrCreateKeyDifficulty(t *testing.T) {
	dir := t.TempDir()
	const d = 10
	minted := filepath.Join(dir, "minted.key")
	k, err := p2p.LoadOrCreateKey(t.Context(), minted, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := pow.CheckKey(k.GetPublic(), d); err != nil {
		t.Fatalf("created key below its difficulty: %v", err)
	}
	if _, err := p2p.LoadOrCreateKey(t.Context(), minted, d-4); err != nil {
		t.Fatalf("key refused at a lower difficulty: %v", err)
	}

	weak := filepath.Join(dir, "weak.key")
	wk := p2ptest.WeakKey(d)
	data, _ := crypto.MarshalPrivateKey(wk)
	if err := os.WriteFile(weak, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = p2p.LoadOrCreateKey(t.Context(), weak, d)
	if !errors.Is(err, pow.ErrBelowDifficulty) {
		t.Fatalf("under-difficulty key file: %v, want ErrBelowDifficulty", err)
	}
	id, _ := peer.IDFromPrivateKey(wk)
	for _, want := range []string{weak, id.String(), "delete the file", "peer ID will change", "--pow-difficulty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if after, _ := os.ReadFile(weak); !bytes.Equal(after, data) {
		t.Fatal("the under-difficulty key file was replaced")
	}
	if _, err := p2p.LoadOrCreateKey(t.Context(), weak, 0); err != nil {
		t.Fatalf("difficulty 0 refused a key: %v", err)
	}
	if _, err := p2p.LoadOrCreateKey(t.Context(), filepath.Join(dir, "x.key"), pow.MaxDifficulty+1); !errors.Is(err, pow.ErrDifficulty) {
		t.Fatalf("difficulty 33: %v", err)
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
