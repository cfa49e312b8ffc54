package kvprefix

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

// The figures of the report: go test ./internal/kvprefix -run XXX -bench . -benchtime 20x
// Every benchmark's bytes are the state's size, so MB/s compare directly.

var benchSizes = []int{1 << 20, 8 << 20}

func benchShards(b *testing.B, size int) (Manifest, [][]byte) {
	m, shards, err := Encode("model-a", "prefix-1", randomState(1, size), DefaultK, DefaultN)
	if err != nil {
		b.Fatal(err)
	}
	return m, shards
}

func BenchmarkRSEncode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			_, shards := benchShards(b, size)
			enc, _ := encoder(DefaultK, DefaultN)
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := enc.Encode(shards); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRSRebuild rebuilds the data from parity alone (all 32 data
// shards lost: the worst case).
func BenchmarkRSRebuild(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			_, shards := benchShards(b, size)
			enc, _ := encoder(DefaultK, DefaultN)
			work := make([][]byte, DefaultN)
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(work, shards)
				for i := range DefaultK {
					work[i] = nil
				}
				if err := enc.ReconstructData(work); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCommit is the Merkle commitment over all 64 chunks (twice the
// state's bytes hashed, on up to 4 goroutines).
func BenchmarkCommit(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			_, shards := benchShards(b, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				commit(shards)
			}
		})
	}
}

// BenchmarkSHA256 is plain SHA-256 of the state, the unit of the ratios.
func BenchmarkSHA256(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			state := randomState(1, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				sha256.Sum256(state)
			}
		})
	}
}

// BenchmarkEncodeChunks is the publisher's whole pipeline: copy, encode,
// commit, proofs.
func BenchmarkEncodeChunks(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			state := randomState(1, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, _, err := EncodeChunks("model-a", "prefix-1", state, 0, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode is the fetcher's: verify 32 parity chunks, rebuild all
// data, check the state hash.
func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			m, chunks := signed(b, randomState(1, size), DefaultK, DefaultN)
			in := chunks[DefaultK:]
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := Decode(m, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
