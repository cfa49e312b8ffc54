package kvprefix

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/klauspost/reedsolomon"
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

// benchCodecs are the encoder in use (Leopard GF(2^8) for 32/64) and, for
// the record, the classic one it replaced. "leopard" runs as the package
// does (byte ranges coded in parallel on GOMAXPROCS cores, parallel.go);
// "leopard-1core" is the same codec in one call, the baseline.
func benchCodecs(b *testing.B) map[string]reedsolomon.Encoder {
	leo, err := encoder(DefaultK, DefaultN)
	if err != nil {
		b.Fatal(err)
	}
	classic, err := reedsolomon.New(DefaultK, DefaultN-DefaultK, reedsolomon.WithInversionCache(false))
	if err != nil {
		b.Fatal(err)
	}
	return map[string]reedsolomon.Encoder{"leopard": leo, "leopard-1core": leo, "classic": classic}
}

// BenchmarkRSEncode computes the 32 parity shards of a state's 32 data
// shards.
func BenchmarkRSEncode(b *testing.B) {
	codecs := benchCodecs(b)
	for _, codec := range []string{"leopard", "leopard-1core", "classic"} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dMiB", codec, size>>20), func(b *testing.B) {
				_, shards := benchShards(b, size)
				b.SetBytes(int64(size))
				enc := codecs[codec].Encode
				if codec == "leopard" {
					enc = func(s [][]byte) error { return encodeParallel(codecs[codec], s) }
				}
				for b.Loop() {
					if err := enc(shards); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRSRebuild rebuilds lost data shards from 32 remaining shards:
// all 32 data shards lost (the worst case: parity only) and 8 lost (a
// fetch that met a few missing holders), into the same output buffers each
// time (the coder's throughput, without the allocator's).
func BenchmarkRSRebuild(b *testing.B) {
	codecs := benchCodecs(b)
	for _, codec := range []string{"leopard", "leopard-1core", "classic"} {
		for _, lost := range []int{32, 8} {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("%s/lost%d/%dMiB", codec, lost, size>>20), func(b *testing.B) {
					state := randomState(1, size)
					shards := make([][]byte, DefaultN)
					ss := ShardSizeFor(CodecLeopardGF8, int64(size), DefaultK)
					for i := range shards {
						shards[i] = make([]byte, ss)
						if i < DefaultK {
							copy(shards[i], state[min(i*ss, size):min((i+1)*ss, size)])
						}
					}
					enc := codecs[codec]
					if err := enc.Encode(shards); err != nil {
						b.Fatal(err)
					}
					work := make([][]byte, DefaultN)
					out := make([][]byte, lost) // rebuilt into the same buffers each time
					for i := range out {
						out[i] = make([]byte, 0, ss)
					}
					b.SetBytes(int64(size))
					for b.Loop() {
						copy(work, shards)
						for i := range lost {
							work[i] = out[i][:0] // data shards 0..lost-1, lost
						}
						for i := DefaultK + lost; i < DefaultN; i++ {
							work[i] = nil // and as many parity: 32 remain
						}
						rebuild := enc.ReconstructData
						if codec == "leopard" {
							rebuild = func(s [][]byte) error { return reconstructParallel(enc, s, DefaultK, true) }
						}
						if err := rebuild(work); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
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
