package crdt

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// BenchmarkSyncOneNewRecord measures an exchange between two replicas of
// 600 records in 3 domains after one side (the initiator) gained a record,
// for several numbers of origins. "first" is the first exchange between
// the two peers (nothing remembered: full summaries, about 50 bytes per
// origin); "steady" is every later one (what peers do every few seconds:
// deltas against the summaries remembered from the previous exchange). It
// reports the bytes on the wire per new record and their ratio to the
// record's own JSON size; both are deterministic.
func BenchmarkSyncOneNewRecord(b *testing.B) {
	for _, origins := range []int{5, 10, 20, 40, 100} {
		for _, steady := range []bool{false, true} {
			name := fmt.Sprintf("origins=%d/first", origins)
			if steady {
				name = fmt.Sprintf("origins=%d/steady", origins)
			}
			b.Run(name, func(b *testing.B) { benchSyncOne(b, origins, steady) })
		}
	}
}

func benchSyncOne(b *testing.B, origins int, steady bool) {
	x, y, next := inSync(b, origins)
	rng := rand.New(rand.NewPCG(52, 53))
	fresh := make([]receipt.Signed, b.N)
	size := 0
	for i := range fresh {
		fresh[i] = sign(b, spec{key: testKey(i % origins), run: next + i/origins, metric: rng.Float64(), domain: "ml"})
		size += recordSize(b, fresh[i])
	}
	if _, _, err := Sync(x, "x", y, "y"); err != nil { // the peers have met
		b.Fatal(err)
	}
	total := 0
	b.ResetTimer()
	for i := range b.N {
		if _, err := x.Add(fresh[i]); err != nil {
			b.Fatal(err)
		}
		xID, yID := "x", "y"
		if !steady { // peers this exchange has never seen
			xID, yID = fmt.Sprint("x", i), fmt.Sprint("y", i)
		}
		ab, ba, err := Sync(x, xID, y, yID)
		if err != nil {
			b.Fatal(err)
		}
		total += ab + ba
	}
	b.StopTimer()
	if x.StateHash("") != y.StateHash("") {
		b.Fatal("not converged")
	}
	b.ReportMetric(float64(total)/float64(b.N), "bytes/record")
	b.ReportMetric(float64(total)/float64(size), "ratio")
}

// BenchmarkFullSnapshot measures a new, empty node pulling a 1000-record
// snapshot in one exchange (verification of every record included).
func BenchmarkFullSnapshot(b *testing.B) {
	rng := rand.New(rand.NewPCG(52, 53))
	recs := pool(b, rng, 20, 50, []string{"ml", "search", "finance"}, false)
	full := replicaOf(b, recs)
	size := 0
	for _, s := range recs {
		size += recordSize(b, s)
	}
	total := 0
	b.ResetTimer()
	for range b.N {
		empty := New()
		ab, ba, err := syncOf(empty, full)
		if err != nil {
			b.Fatal(err)
		}
		if empty.Len("") != len(recs) {
			b.Fatalf("snapshot has %d of %d records", empty.Len(""), len(recs))
		}
		total += ab + ba
	}
	b.ReportMetric(float64(total)/float64(b.N), "bytes/op")
	b.ReportMetric(float64(total)/float64(b.N)/float64(size), "ratio")
}
