package node_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

func start(t *testing.T, dir string, bootstrap []string) *node.Node {
	t.Helper()
	n, err := node.Start(context.Background(), node.Options{
		Dir: dir, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, Domains: []string{p2ptest.Domain},
		P2P: func(c *p2p.Config) { c.SyncInterval = time.Second },
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func addrs(n *node.Node) []string {
	var out []string
	for _, a := range n.P2P.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// TestRestartKeepsReplicaAndCatchesUp: a node killed and restarted has its
// replica from disk (no network needed) and catches up what it missed.
func TestRestartKeepsReplicaAndCatchesUp(t *testing.T) {
	base := t.TempDir()
	a := start(t, filepath.Join(base, "a"), nil)
	defer a.Close()
	cDir := filepath.Join(base, "c")
	c := start(t, cDir, addrs(a))
	k := p2ptest.AgentKey("writer")

	for run := 1; run <= 5; run++ {
		s, err := p2ptest.Receipt(k, p2ptest.Domain, run, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Replica.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	waitEqual(t, a, c)
	id := c.P2P.ID()
	c.Close()

	// On disk, without any network.
	r, err := crdt.Open(filepath.Join(cDir, "replica"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Len("") != 5 {
		t.Fatalf("replica on disk has %d records, want 5", r.Len(""))
	}
	r.Close()

	// Missed while down.
	for run := 6; run <= 9; run++ {
		s, _ := p2ptest.Receipt(k, p2ptest.Domain, run, time.Now())
		if _, err := a.Replica.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	c = start(t, cDir, addrs(a))
	defer c.Close()
	if c.P2P.ID() != id {
		t.Fatalf("identity changed across restart: %s -> %s", id, c.P2P.ID())
	}
	if c.Replica.Len("") < 5 {
		t.Fatalf("restarted node lost its replica: %d records", c.Replica.Len(""))
	}
	waitEqual(t, a, c)

}

func waitEqual(t *testing.T, a, b *node.Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for a.Replica.StateHash("") != b.Replica.StateHash("") {
		if time.Now().After(deadline) {
			t.Fatalf("replicas differ: %d vs %d records", a.Replica.Len(""), b.Replica.Len(""))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
