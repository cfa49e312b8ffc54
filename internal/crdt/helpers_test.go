package crdt

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// testKey returns a deterministic signing key for i.
func testKey(i int) *identity.Key {
	seed := make([]byte, ed25519.SeedSize)
	binary.BigEndian.PutUint64(seed, uint64(i)+1)
	return identity.FromSeed(seed)
}

var activations = []string{"gelu", "relu", "silu", "tanh"}

// spec describes one test receipt.
type spec struct {
	key      *identity.Key
	domain   string
	run      int
	metric   float64
	dir      string // "minimize" (default) or "maximize"
	campaign string
	agent    string
	act      string // config "activation"
	variant  int    // distinguishes equivocating records
	baseline bool
}

// sign builds and signs a realistic receipt.
func sign(tb testing.TB, sp spec) receipt.Signed {
	tb.Helper()
	if sp.domain == "" {
		sp.domain = "ml"
	}
	if sp.dir == "" {
		sp.dir = "minimize"
	}
	if sp.campaign == "" {
		sp.campaign = "c1"
	}
	if sp.agent == "" {
		sp.agent = "agent-1"
	}
	if sp.act == "" {
		sp.act = activations[sp.run%len(activations)]
	}
	rc := receipt.Receipt{
		Project:    "cranfield",
		RunNumber:  sp.run,
		Timestamp:  1767225600000 + int64(sp.run)*60000 + int64(sp.variant),
		Hypothesis: fmt.Sprintf("raise learningRate and switch activation to %s (exploit, mutation %d)", sp.act, sp.variant),
		Config: map[string]any{
			"activation": sp.act, "learningRate": 0.003 * float64(1+sp.run%5), "layers": float64(2 + sp.run%4),
			"batchSize": 64.0, "tied": sp.run%2 == 0,
		},
		Result: receipt.Result{
			ValLoss: sp.metric, TrainLoss: sp.metric * 0.9, DurationSec: 61.5, TokensPerSec: 12345.5, TotalTokens: 1e6,
			Values: map[string]float64{"valLoss": sp.metric},
		},
		Domain:   sp.domain,
		Campaign: sp.campaign,
		Agent:    sp.agent,
		Seed:     int64(sp.run),
		Metric:   receipt.MetricValue{Name: "val_loss", Direction: sp.dir, Value: sp.metric, TestValue: sp.metric + 0.01},
		Proposer: "builtin",
		Baseline: sp.baseline,
	}
	s, err := receipt.Sign(rc, sp.key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// recordSize is the marshalled size of s.
func recordSize(tb testing.TB, s receipt.Signed) int {
	b, err := json.Marshal(s)
	if err != nil {
		tb.Fatal(err)
	}
	return len(b)
}

// pool makes records from nKeys origins over the given domains, runs
// 1..perKey each; with equivocate, every third origin also signs a second
// record for some of its runs.
func pool(tb testing.TB, rng *rand.Rand, nKeys, perKey int, doms []string, equivocate bool) []receipt.Signed {
	var out []receipt.Signed
	for k := 0; k < nKeys; k++ {
		key := testKey(k)
		for run := 1; run <= perKey; run++ {
			sp := spec{key: key, domain: doms[(k+run)%len(doms)], run: run, metric: 1 + rng.Float64(), agent: fmt.Sprintf("agent-%d", k%3)}
			out = append(out, sign(tb, sp))
			if equivocate && k%3 == 0 && rng.IntN(3) == 0 {
				sp.variant = 1
				sp.metric = 1 + rng.Float64()
				out = append(out, sign(tb, sp))
			}
		}
	}
	return out
}

// replicaOf returns an in-memory replica holding recs.
func replicaOf(tb testing.TB, recs []receipt.Signed) *Replica {
	tb.Helper()
	r := New()
	mustMerge(tb, r, recs)
	return r
}

func mustMerge(tb testing.TB, r *Replica, recs []receipt.Signed) int {
	tb.Helper()
	added, rejected, err := r.Merge(recs)
	if err != nil || rejected != 0 {
		tb.Fatalf("merge: added %d rejected %d err %v", added, rejected, err)
	}
	return added
}

// subset picks each record with probability p.
func subset(rng *rand.Rand, recs []receipt.Signed, p float64) []receipt.Signed {
	var out []receipt.Signed
	for _, s := range recs {
		if rng.Float64() < p {
			out = append(out, s)
		}
	}
	return out
}

// hashOf is the StateHash("") a replica holding exactly recs has.
func hashOf(tb testing.TB, recs ...[]receipt.Signed) string {
	r := New()
	for _, rs := range recs {
		mustMerge(tb, r, rs)
	}
	return r.StateHash("")
}

func ids(recs []receipt.Signed) []string {
	out := make([]string, len(recs))
	for i, s := range recs {
		out[i] = s.ID
	}
	sort.Strings(out)
	return out
}

func mustSync(tb testing.TB, a, b *Replica) (int, int) {
	tb.Helper()
	ab, ba, err := syncOf(a, b)
	if err != nil {
		tb.Fatal(err)
	}
	return ab, ba
}

// nameOf is the peer id a test replica is known by: its address, so that
// distinct replicas are distinct peers. (A restart, the same peer with a
// new replica, calls Sync with explicit names.)
func nameOf(r *Replica) string { return fmt.Sprintf("r%p", r) }

// syncOf runs Sync between a and b, each named by nameOf.
func syncOf(a, b *Replica, domains ...string) (int, int, error) {
	return Sync(a, nameOf(a), b, nameOf(b), domains...)
}
