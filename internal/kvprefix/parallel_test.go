package kvprefix

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/reedsolomon"
)

// TestParallelMatchesSerial: coding the shards' byte ranges in parallel
// gives exactly the bytes one call gives, for both codecs, sizes that do
// and do not split evenly, and loss patterns of data, parity and both.
func TestParallelMatchesSerial(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	}
	rng := rand.New(rand.NewPCG(7, 9))
	for _, c := range []struct{ k, n, size int }{{32, 64, 1 << 20}, {32, 64, 3*encodeSplitMinBytes + 64*5}, {32, 64, 64}, {10, 14, 200_001}} {
		enc, err := encoder(c.k, c.n)
		if err != nil {
			t.Fatal(err)
		}
		ss := c.size // bytes per shard
		if CodecFor(c.k, c.n) == CodecLeopardGF8 {
			ss = (c.size + 63) &^ 63
		}
		shards := make([][]byte, c.n)
		for i := range shards {
			shards[i] = make([]byte, ss)
			if i < c.k {
				for j := range shards[i] {
					shards[i][j] = byte(rng.Uint32())
				}
			}
		}
		serial := clone(shards)
		if err := enc.Encode(serial); err != nil {
			t.Fatal(err)
		}
		if err := encodeParallel(enc, shards); err != nil {
			t.Fatal(err)
		}
		for i := range shards {
			if !bytes.Equal(shards[i], serial[i]) {
				t.Fatalf("%+v: parallel encode differs at shard %d", c, i)
			}
		}
		for _, lose := range []string{"data", "parity", "mixed"} {
			for _, dataOnly := range []bool{true, false} {
				t.Run(fmt.Sprintf("k%d-n%d-%dB-%s-dataOnly=%v", c.k, c.n, ss, lose, dataOnly), func(t *testing.T) {
					work := clone(serial)
					var lost []int
					switch lose {
					case "data":
						for i := range c.n - c.k {
							lost = append(lost, i)
						}
					case "parity":
						for i := c.k; i < c.n; i++ {
							lost = append(lost, i)
						}
					default:
						lost = rng.Perm(c.n)[:c.n-c.k]
					}
					for _, i := range lost {
						work[i] = nil
					}
					if err := reconstructParallel(enc, work, c.k, dataOnly); err != nil {
						t.Fatal(err)
					}
					for i := range c.n {
						switch {
						case work[i] == nil && dataOnly && i >= c.k:
						case !bytes.Equal(work[i], serial[i]):
							t.Fatalf("shard %d differs after rebuilding %v", i, lost)
						}
					}
				})
			}
		}
	}
	// Too few shards is an error, not a partial result.
	enc, _ := encoder(32, 64)
	work := make([][]byte, 64)
	for i := 40; i < 64; i++ {
		work[i] = make([]byte, 1<<20)
	}
	if err := reconstructParallel(enc, work, 32, true); !errors.Is(err, reedsolomon.ErrTooFewShards) || work[0] != nil {
		t.Fatalf("24 of 64 shards: %v", err)
	}
}

func clone(s [][]byte) [][]byte {
	out := make([][]byte, len(s))
	for i := range s {
		out[i] = append([]byte(nil), s[i]...)
	}
	return out
}
