package crdt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// propertyPool is shared by the property tests: 6 origins, 3 domains,
// equivocating origins included.
func propertyPool(t *testing.T) []receipt.Signed {
	return pool(t, rand.New(rand.NewPCG(30, 31)), 6, 8, []string{"ml", "search", "finance"}, true)
}

// merged returns a new replica holding the union of the replicas' records,
// merged in the given order.
func merged(t *testing.T, rs ...*Replica) *Replica {
	out := New()
	for _, r := range rs {
		mustMerge(t, out, r.Records(""))
	}
	return out
}

// sameState compares every domain's hash and the overall hash.
func sameState(a, b *Replica) error {
	for _, d := range []string{"", "ml", "search", "finance"} {
		if a.StateHash(d) != b.StateHash(d) {
			return fmt.Errorf("StateHash(%q) differs: %d vs %d records", d, a.Len(d), b.Len(d))
		}
	}
	return nil
}

// The merge laws over random subsets: commutative, associative,
// idempotent, and Sync computes the union (in both roles).
func TestMergeLaws(t *testing.T) {
	all := propertyPool(t)
	rng := rand.New(rand.NewPCG(32, 33))
	const iterations = 60
	for i := 0; i < iterations; i++ {
		x := replicaOf(t, subset(rng, all, rng.Float64()*0.5))
		y := replicaOf(t, subset(rng, all, rng.Float64()*0.5))
		z := replicaOf(t, subset(rng, all, rng.Float64()*0.5))

		if err := sameState(merged(t, x, y), merged(t, y, x)); err != nil {
			t.Fatalf("iteration %d: merge not commutative: %v", i, err)
		}
		if err := sameState(merged(t, merged(t, x, y), z), merged(t, x, merged(t, y, z))); err != nil {
			t.Fatalf("iteration %d: merge not associative: %v", i, err)
		}
		xx := merged(t, x)
		if added, _, _ := xx.Merge(x.Records("")); added != 0 {
			t.Fatalf("iteration %d: merging a replica into itself added %d", i, added)
		}
		if err := sameState(xx, x); err != nil {
			t.Fatalf("iteration %d: merge not idempotent: %v", i, err)
		}

		// Anti-entropy computes the same union (two exchanges suffice even
		// with equivocating origins).
		a, b := merged(t, x), merged(t, y)
		mustSync(t, a, b)
		mustSync(t, b, a)
		want := merged(t, x, y)
		if err := sameState(a, want); err != nil {
			t.Fatalf("iteration %d: sync initiator: %v", i, err)
		}
		if err := sameState(b, want); err != nil {
			t.Fatalf("iteration %d: sync responder: %v", i, err)
		}
		// Syncing again changes nothing.
		mustSync(t, a, b)
		if err := sameState(a, want); err != nil {
			t.Fatalf("iteration %d: repeated sync: %v", i, err)
		}
	}
}

// message is one in-flight sync message in the simulation.
type message struct {
	deliver func()
}

// A randomized gossip network: records are created at random replicas
// (some origins equivocate: two replicas each receive a different record
// for the same run number), replicas sync in random pairs while messages
// are lost, duplicated and delivered late and out of order. After the
// chaos stops, rounds of lossless exchanges make every replica identical
// to the union of all records.
func TestGossipSimulation(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { gossip(t, seed) })
	}
}

func gossip(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	n := 8 + rng.IntN(9) // 8..16 replicas
	nodes := make([]*Replica, n)
	for i := range nodes {
		nodes[i] = New()
	}
	doms := []string{"ml", "search", "finance"}
	const origins = 10
	nextRun := make([]int, origins)
	var created []receipt.Signed
	var inflight []message

	send := func(m message) {
		switch p := rng.Float64(); {
		case p < 0.15: // lost
		case p < 0.25: // duplicated
			inflight = append(inflight, m, m)
		default:
			inflight = append(inflight, m)
		}
	}
	// deliverSome delivers a random subset of the in-flight messages in a
	// random order; the rest stay for later (reordering).
	deliverSome := func() {
		rng.Shuffle(len(inflight), func(i, j int) { inflight[i], inflight[j] = inflight[j], inflight[i] })
		k := rng.IntN(len(inflight) + 1)
		now := inflight[:k]
		inflight = append([]message(nil), inflight[k:]...)
		for _, m := range now {
			m.deliver()
		}
	}

	for step := 0; step < 400; step++ {
		switch rng.IntN(4) {
		case 0: // an origin publishes at a random replica
			o := rng.IntN(origins)
			nextRun[o]++
			sp := spec{key: testKey(100 + o), domain: doms[rng.IntN(len(doms))], run: nextRun[o], metric: rng.Float64(), agent: fmt.Sprint("a", o%3)}
			s := sign(t, sp)
			created = append(created, s)
			if _, err := nodes[rng.IntN(n)].Add(s); err != nil {
				t.Fatal(err)
			}
			if o < 2 && rng.IntN(2) == 0 { // origins 0 and 1 equivocate
				sp.variant = 1
				sp.metric = rng.Float64()
				s2 := sign(t, sp)
				created = append(created, s2)
				if _, err := nodes[rng.IntN(n)].Add(s2); err != nil {
					t.Fatal(err)
				}
			}
		default: // a random pair starts an exchange through the lossy network
			a, b := nodes[rng.IntN(n)], nodes[rng.IntN(n)]
			var doms []string
			if rng.IntN(4) == 0 {
				doms = []string{"ml"}
			}
			req := a.Request(nameOf(b), doms)
			send(message{func() {
				resp, err := b.Respond(nameOf(a), req)
				if err != nil {
					t.Error(err)
					return
				}
				send(message{func() {
					push, _, _, err := a.HandleResponse(nameOf(b), req, resp)
					if errors.Is(err, ErrStaleResponse) {
						return // too late: a had forgotten the request, as after a timeout
					}
					if err != nil {
						t.Error(err)
						return
					}
					send(message{func() {
						if _, _, err := b.HandlePush(nameOf(a), push); err != nil {
							t.Error(err)
						}
					}})
				}})
			}})
			if rng.IntN(3) == 0 {
				deliverSome()
			}
		}
	}
	for len(inflight) > 0 { // late messages still arrive
		deliverSome()
	}

	want := hashOf(t, created)
	converged := func() bool {
		for _, r := range nodes {
			if r.StateHash("") != want {
				return false
			}
		}
		return true
	}
	// Lossless anti-entropy rounds: every node syncs with a random peer.
	rounds := 0
	for ; !converged(); rounds++ {
		if rounds == 20 {
			t.Fatalf("%d replicas did not converge in %d rounds", n, rounds)
		}
		for i, r := range nodes {
			j := rng.IntN(n - 1)
			if j >= i {
				j++
			}
			mustSync(t, r, nodes[j])
		}
	}
	t.Logf("%d replicas, %d records: converged after %d lossless rounds", n, len(created), rounds)
}
