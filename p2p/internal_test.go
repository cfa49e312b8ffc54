package p2p

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestRateLimiter(t *testing.T) {
	l := newRateLimiter(RateLimit{Rate: 10, Burst: 5})
	now := time.Unix(1000, 0)
	p, q := peer.ID("p"), peer.ID("q")
	for i := range 5 {
		if !l.allow(p, now) {
			t.Fatalf("message %d within the burst refused", i)
		}
	}
	if l.allow(p, now) {
		t.Fatal("burst exceeded")
	}
	if !l.allow(q, now) {
		t.Fatal("buckets are not per peer")
	}
	if !l.allow(p, now.Add(100*time.Millisecond)) || l.allow(p, now.Add(100*time.Millisecond)) {
		t.Fatal("refill is not Rate per second")
	}
	l.gc(now.Add(time.Hour))
	if len(l.buckets) != 0 {
		t.Fatalf("gc kept %d refilled buckets", len(l.buckets))
	}
}

func TestScoreParamsValid(t *testing.T) {
	// pubsub validates parameters when a node starts; check the maths of
	// the documented thresholds here.
	for n, want := range map[int]string{1: "ok", 2: "no gossip", 3: "no publish", 4: "graylisted"} {
		s := invalidMessageWeight * float64(n*n)
		var got string
		switch {
		case s < GraylistThreshold:
			got = "graylisted"
		case s < PublishThreshold:
			got = "no publish"
		case s < GossipThreshold:
			got = "no gossip"
		default:
			got = "ok"
		}
		if got != want {
			t.Errorf("%d invalid messages: %s, want %s", n, got, want)
		}
	}
}
