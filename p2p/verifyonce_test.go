package p2p_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/memreplica"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// countingReplica counts how records reach a memreplica.
type countingReplica struct {
	*memreplica.Replica
	adds, verified atomic.Int64
}

func (c *countingReplica) Add(s receipt.Signed) (bool, error) {
	c.adds.Add(1)
	return c.Replica.Add(s)
}

func (c *countingReplica) AddVerified(v receipt.Verified) (bool, error) {
	c.verified.Add(1)
	return c.Replica.AddVerified(v)
}

// TestGossipVerifiedOnce: a published and a gossiped receipt reach the
// replica through AddVerified, as admission verified them, never through
// Add (which would verify them again), and carry their vouch.
func TestGossipVerifiedOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(bootstrap ...string) (*p2p.Node, *countingReplica, func()) {
		key, err := pow.MintKey(ctx, p2ptest.Difficulty)
		if err != nil {
			t.Fatal(err)
		}
		r := &countingReplica{Replica: memreplica.New()}
		n, err := p2p.New(ctx, p2ptest.Options{NoSyncOnConn: true}.Config(key, r, bootstrap...))
		if err != nil {
			t.Fatal(err)
		}
		return n, r, func() { n.Close() }
	}
	a, ra, closeA := start()
	defer closeA()
	b, rb, closeB := start(a.Addrs()[0].String())
	defer closeB()
	eventually(t, 10*time.Second, "mesh", func() bool {
		return a.Stats().Mesh[p2p.TopicForDomain(p2ptest.Domain)] > 0 && b.Stats().Mesh[p2p.TopicForDomain(p2ptest.Domain)] > 0
	})

	pub := p2ptest.NewPublisher(b, b.PrivKey(), "verify-once")
	s, err := pub.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "delivery", func() bool { return ra.Has(s.ID) })
	for name, r := range map[string]*countingReplica{"publisher": rb, "receiver": ra} {
		if got, want := r.verified.Load(), int64(1); got != want {
			t.Errorf("%s: AddVerified called %d times, want %d", name, got, want)
		}
		if got := r.adds.Load(); got != 0 {
			t.Errorf("%s: Add called %d times, want 0 (the record would be verified twice)", name, got)
		}
	}
	recent := a.Recent(1)
	if len(recent) != 1 || recent[0].Receipt.ID != s.ID || recent[0].Receipt.Vouch == nil || recent[0].Receipt.Vouch.Node != b.ID().String() {
		t.Fatalf("received %+v: want %s vouched by the publishing node", recent, receipt.ShortID(s.ID))
	}
}
