package kvprefix

import (
	"errors"
	"runtime"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// splitMinBytes is the shortest byte range worth its own goroutine for a
// rebuild; encoding, several times faster per byte, needs longer ranges
// (encodeSplitMinBytes) before splitting pays (measured: BenchmarkRSEncode,
// BenchmarkRSRebuild).
const (
	splitMinBytes       = 8 << 10
	encodeSplitMinBytes = 64 << 10
)

// Reed-Solomon codes every byte position of the shards independently (the
// Leopard codec every 64-byte block), so the shards' byte ranges can be
// coded in parallel, each by its own call, with byte-identical results.
// klauspost/reedsolomon spreads its classic encoder over goroutines itself
// but runs Leopard GF(2^8) on one core; these split every call over
// GOMAXPROCS ranges of at least splitMinBytes, 64-byte aligned.

// ranges returns the [lo, hi) byte ranges, at least minLen long, to code
// shards of size bytes in.
func ranges(size, minLen int) [][2]int {
	parts := min(runtime.GOMAXPROCS(0), size/minLen)
	if parts < 2 {
		return [][2]int{{0, size}}
	}
	step := (size/parts + 63) &^ 63
	var out [][2]int
	for lo := 0; lo < size; lo += step {
		out = append(out, [2]int{lo, min(lo+step, size)})
	}
	return out
}

// inRanges runs code on every range of shards in parallel; sub's entries
// are the shards' sub-slices (nil where build leaves them nil).
func inRanges(shards [][]byte, size, minLen int, code func(sub [][]byte) error) error {
	rs := ranges(size, minLen)
	if len(rs) == 1 {
		return code(shards)
	}
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for j, r := range rs {
		sub := make([][]byte, len(shards))
		for i, s := range shards {
			if cap(s) > 0 {
				if len(s) == 0 { // an output: empty, with room for the range
					sub[i] = s[r[0]:r[1]][:0]
				} else {
					sub[i] = s[r[0]:r[1]]
				}
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[j] = code(sub)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// encodeParallel is enc.Encode over byte ranges in parallel (shards all
// allocated, parity to be overwritten).
func encodeParallel(enc reedsolomon.Encoder, shards [][]byte) error {
	return inRanges(shards, len(shards[0]), encodeSplitMinBytes, enc.Encode)
}

// reconstructParallel is enc.ReconstructData (dataOnly) or
// enc.Reconstruct over byte ranges in parallel. A missing shard given as
// an empty slice with room for a shard is rebuilt in place (as reedsolomon
// does); the others get one new backing array; with dataOnly, missing
// parity stays nil.
func reconstructParallel(enc reedsolomon.Encoder, shards [][]byte, k int, dataOnly bool) error {
	size := 0
	for _, s := range shards {
		if len(s) > 0 {
			size = len(s)
			break
		}
	}
	whole := enc.Reconstruct
	if dataOnly {
		whole = enc.ReconstructData
	}
	if size == 0 || len(ranges(size, splitMinBytes)) == 1 {
		return whole(shards)
	}
	var missing []int
	for i, s := range shards {
		if len(s) == 0 && (!dataOnly || i < k) {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var buf []byte
	for j, i := range missing {
		if cap(shards[i]) >= size { // the caller's buffer, as reedsolomon reuses it
			shards[i] = shards[i][:0:size]
			continue
		}
		if buf == nil {
			buf = make([]byte, len(missing)*size)
		}
		shards[i] = buf[j*size : j*size : (j+1)*size] // empty: an output
	}
	err := inRanges(shards, size, splitMinBytes, whole)
	for _, i := range missing {
		if err != nil {
			shards[i] = nil
			continue
		}
		shards[i] = shards[i][:size]
	}
	return err
}
