package p2p

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// allocated is the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func header(n uint64) []byte { return binary.AppendUvarint(nil, n) }

// TestFrameOversizedRefusedUnallocated: a frame announcing more than the
// limit is refused from its header, before anything is allocated for it.
func TestFrameOversizedRefusedUnallocated(t *testing.T) {
	in := append(header(1<<40), "tiny"...)
	var err error
	got := allocated(func() { _, _, err = readFrame(bufio.NewReader(bytes.NewReader(in)), DefaultMaxSyncBytes) })
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if got > 64<<10 {
		t.Fatalf("refusing a 1 TiB frame allocated %d bytes", got)
	}
}

// TestFrameAllocatesWhatArrives: a frame announcing 60 MiB (within the
// limit) whose sender stops after a few bytes costs about what it sent,
// not what it announced.
func TestFrameAllocatesWhatArrives(t *testing.T) {
	in := append(header(60<<20), bytes.Repeat([]byte("x"), 1000)...)
	var err error
	got := allocated(func() { _, _, err = readFrame(bufio.NewReader(bytes.NewReader(in)), DefaultMaxSyncBytes) })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
	if got > 1<<20 {
		t.Fatalf("a truncated 60 MiB frame allocated %d bytes (the claim, not the bytes sent)", got)
	}
	t.Logf("truncated 60 MiB frame: %d bytes allocated", got)
}

// TestFrameRoundTrip: frames of every size up to several chunks survive.
func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, frameChunk - 1, frameChunk, frameChunk + 1, 5*frameChunk + 7, 3 << 20} {
		body := bytes.Repeat([]byte{byte(n)}, n)
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		k, err := writeFrame(w, body)
		if err != nil {
			t.Fatal(err)
		}
		got, k2, err := readFrame(bufio.NewReader(&buf), DefaultMaxSyncBytes)
		if err != nil || !bytes.Equal(got, body) || k != k2 {
			t.Fatalf("n=%d: err %v, %d bytes back, sizes %d/%d", n, err, len(got), k, k2)
		}
	}
}

// FuzzReadFrame: any byte stream either yields a frame within the limit
// or an error, and never allocates beyond a small multiple of its size.
func FuzzReadFrame(f *testing.F) {
	f.Add(header(3), []byte("abc"))
	f.Add(header(1<<40), []byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, []byte("x"))
	f.Add(header(70000), bytes.Repeat([]byte("y"), 70000))
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, hdr, body []byte) {
		in := append(append([]byte(nil), hdr...), body...)
		b, n, err := readFrame(bufio.NewReader(bytes.NewReader(in)), limit)
		if err != nil {
			return
		}
		if len(b) > limit || n > len(in) || n < len(b) {
			t.Fatalf("frame of %d bytes (accounted %d) from %d input bytes", len(b), n, len(in))
		}
		if cap(b) > 2*len(in)+frameChunk {
			t.Fatalf("frame buffer of capacity %d for %d input bytes", cap(b), len(in))
		}
	})
}
