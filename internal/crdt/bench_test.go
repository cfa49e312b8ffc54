package crdt

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// BenchmarkSyncOneNewRecord measures a steady-state exchange between two
// replicas of 600 records in 3 domains after one side gained a record, for
// several numbers of origins (the summary costs about 50 bytes per origin).
// It reports the bytes on the wire per new record and their ratio to the
// record's own JSON size.
func BenchmarkSyncOneNewRecord(b *testing.B) {
	for _, origins := range []int{5, 10, 20, 40} {
		b.Run(fmt.Sprintf("origins=%d", origins), func(b *testing.B) { benchSyncOne(b, origins) })
	}
}

func benchSyncOne(b *testing.B, origins int) {
	rng := rand.New(rand.NewPCG(50, 51))
	perOrigin := 600 / origins
	base := pool(b, rng, origins, perOrigin, []string{"ml", "search", "finance"}, false)
	fresh := make([]receipt.Signed, b.N)
	size := 0
	for i := range fresh {
		fresh[i] = sign(b, spec{key: testKey(i % origins), run: perOrigin + 1 + i/origins, metric: rng.Float64(), domain: "ml"})
		size += recordSize(b, fresh[i])
	}
	x, y := replicaOf(b, base), replicaOf(b, base)
	total := 0
	b.ResetTimer()
	for i := range b.N {
		if _, err := x.Add(fresh[i]); err != nil {
			b.Fatal(err)
		}
		ab, ba, err := syncOf(x, y)
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
