package p2p_test

import (
	"context"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// TestRedialLostPeer: when the connection between two nodes drops (as
// when a link fails), they reconnect within a few redial backoffs (250 ms
// first), not at the peer keeper's next 30 s round, and sync on connect.
func TestRedialLostPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Node.Close()
	b, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Node.Close()
	if err := b.Node.Connect(ctx, a.Node.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "connected", func() bool { return len(a.Node.Peers()) == 1 && len(b.Node.Peers()) == 1 })
	for round := range 3 {
		before := a.Node.Stats().Redialed + b.Node.Stats().Redialed
		if err := a.Node.DropConnsForTest(b.Node.ID()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "reconnected by the redialer", func() bool {
			return len(a.Node.Peers()) == 1 && len(b.Node.Peers()) == 1 && a.Node.Stats().Redialed+b.Node.Stats().Redialed > before
		})
		if a.Node.Redialing() != 0 || b.Node.Redialing() != 0 {
			t.Fatalf("round %d: still redialling %d/%d peers after reconnecting", round, a.Node.Redialing(), b.Node.Redialing())
		}
	}
}
