package kvprefix

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testKey is a deterministic Ed25519 node key.
func testKey(t testing.TB, seed uint64) crypto.PrivKey {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomState(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// signed encodes state into chunks under a signed manifest.
func signed(t testing.TB, state []byte, k, n int) (Manifest, []Chunk) {
	t.Helper()
	m, chunks, err := EncodeChunks("model-a", "prefix-1", state, k, n)
	if err != nil {
		t.Fatal(err)
	}
	m.CreatedAt = 1_700_000_000_000
	if err := Sign(&m, testKey(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	return m, chunks
}

func pick(chunks []Chunk, idx []int) []Chunk {
	out := make([]Chunk, 0, len(idx))
	for _, i := range idx {
		out = append(out, chunks[i])
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, size := range []int{1, 31, 32, 33, 1000, 10 << 10, 100_003} {
		state := randomState(uint64(size), size)
		m, chunks := signed(t, state, 0, 0)
		if m.K != DefaultK || m.N != DefaultN || len(chunks) != DefaultN {
			t.Fatalf("size %d: k=%d n=%d chunks=%d", size, m.K, m.N, len(chunks))
		}
		for _, c := range chunks {
			if err := VerifyChunk(m, c); err != nil {
				t.Fatal(err)
			}
		}
		got, err := Decode(m, chunks)
		if err != nil || !bytes.Equal(got, state) {
			t.Fatalf("size %d: decode: %v (equal %v)", size, err, bytes.Equal(got, state))
		}
	}
}

func TestLoseAnyHalf(t *testing.T) {
	state := randomState(9, 300_001)
	m, chunks := signed(t, state, 32, 64)
	cases := map[string][]int{
		"all data lost":   span(32, 64),
		"all parity lost": span(0, 32),
		"interleaved":     append(span(16, 32), span(48, 64)...),
	}
	r := rand.New(rand.NewPCG(42, 42))
	for i := range 20 {
		cases["random "+string(rune('a'+i))] = r.Perm(64)[:32]
	}
	for name, keep := range cases {
		// Shuffle input order too: Decode must not depend on it.
		in := pick(chunks, keep)
		r.Shuffle(len(in), func(a, b int) { in[a], in[b] = in[b], in[a] })
		got, err := Decode(m, in)
		if err != nil || !bytes.Equal(got, state) {
			t.Fatalf("%s: decode: %v", name, err)
		}
	}
	// The inputs are not modified by a reconstruction.
	for _, c := range chunks {
		if err := VerifyChunk(m, c); err != nil {
			t.Fatalf("input chunk changed: %v", err)
		}
	}
	// 31 chunks are not enough.
	if _, err := Decode(m, pick(chunks, span(0, 31))); !errors.Is(err, ErrTooFewChunks) {
		t.Fatalf("31 chunks: %v", err)
	}
	// Duplicates count once.
	dup := append(pick(chunks, span(0, 31)), chunks[0])
	if _, err := Decode(m, dup); !errors.Is(err, ErrTooFewChunks) {
		t.Fatalf("31 chunks + duplicate: %v", err)
	}
}

func TestCorruptChunk(t *testing.T) {
	state := randomState(3, 65_536)
	m, chunks := signed(t, state, 32, 64)
	bad := chunks[5]
	bad.Data = bytes.Clone(bad.Data)
	bad.Data[17] ^= 0x04
	if err := VerifyChunk(m, bad); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("flipped bit: %v", err)
	}
	// A chunk moved to another index is caught too.
	moved := chunks[6]
	moved.Index = 7
	if err := VerifyChunk(m, moved); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("moved chunk: %v", err)
	}
	short := chunks[8]
	short.Data = short.Data[:len(short.Data)-1]
	if err := VerifyChunk(m, short); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("short chunk: %v", err)
	}
	// 32 good + 1 corrupt: decodes.
	in := append([]Chunk{bad}, pick(chunks, span(32, 64))...)
	if got, err := Decode(m, in); err != nil || !bytes.Equal(got, state) {
		t.Fatalf("32 good + corrupt: %v", err)
	}
	// 31 good + 1 corrupt: fails clearly, naming the corrupt chunk.
	in = append([]Chunk{bad}, pick(chunks, span(33, 64))...)
	_, err := Decode(m, in)
	if !errors.Is(err, ErrTooFewChunks) || !bytes.Contains([]byte(err.Error()), []byte("chunk 5")) {
		t.Fatalf("31 good + corrupt: %v", err)
	}
}

// A publisher that commits to parity inconsistent with the data is caught
// by the state hash (the commitment alone cannot catch it).
func TestInconsistentParity(t *testing.T) {
	state := randomState(4, 4096)
	m, shards, err := Encode("model-a", "prefix-1", state, 4, 8)
	if err != nil {
		t.Fatal(err)
	}
	shards[6][0] ^= 1 // parity changed before committing
	tree := commit(shards)
	m.Root = tree.Root()
	m.CreatedAt = 1
	if err := Sign(&m, testKey(t, 1)); err != nil {
		t.Fatal(err)
	}
	chunks, _ := chunksOf(tree, shards)
	if _, err := Decode(m, pick(chunks, []int{0, 1, 2, 3})); err != nil {
		t.Fatalf("data chunks: %v", err)
	}
	if _, err := Decode(m, pick(chunks, []int{0, 1, 2, 6})); !errors.Is(err, ErrStateHash) {
		t.Fatalf("with the bad parity: %v", err)
	}
	if _, err := Repair(m, pick(chunks, []int{0, 1, 2, 3}), []int{6}); err == nil {
		t.Fatal("repair of an inconsistent set succeeded")
	}
}

// The default shape uses Leopard (chunks a multiple of 64 bytes); shapes
// Leopard cannot take use the classic code, and both survive the loss of
// any N-K chunks.
func TestCodecs(t *testing.T) {
	if CodecFor(DefaultK, DefaultN) != CodecLeopardGF8 || CodecFor(4, 8) != CodecLeopardGF8 {
		t.Fatal("default shapes are not Leopard's")
	}
	if CodecFor(200, 256) != CodecClassicGF8 || CodecFor(1, 256) != CodecClassicGF8 {
		t.Fatal("200/256 and 1/256 do not fit Leopard GF(2^8)")
	}
	for _, tc := range []struct {
		k, n  int
		codec string
	}{{32, 64, CodecLeopardGF8}, {3, 5, CodecLeopardGF8}, {200, 256, CodecClassicGF8}, {10, 250, CodecClassicGF8}} {
		state := randomState(uint64(tc.k), 50_001)
		m, chunks := signed(t, state, tc.k, tc.n)
		if m.Codec != tc.codec {
			t.Fatalf("%d/%d: codec %s, want %s", tc.k, tc.n, m.Codec, tc.codec)
		}
		want := (50_001 + tc.k - 1) / tc.k
		if tc.codec == CodecLeopardGF8 {
			want = (want + 63) / 64 * 64
		}
		if m.ShardSize != want {
			t.Fatalf("%d/%d: shard size %d, want %d", tc.k, tc.n, m.ShardSize, want)
		}
		r := rand.New(rand.NewPCG(uint64(tc.n), 9))
		for range 3 {
			keep := r.Perm(tc.n)[:tc.k]
			got, err := Decode(m, pick(chunks, keep))
			if err != nil || !bytes.Equal(got, state) {
				t.Fatalf("%d/%d: decode from %v: %v", tc.k, tc.n, keep, err)
			}
		}
		// Worst case: only parity (and the last data chunks, if parity is
		// fewer than k).
		got, err := Decode(m, pick(chunks, span(tc.n-tc.k, tc.n)))
		if err != nil || !bytes.Equal(got, state) {
			t.Fatalf("%d/%d: decode from the last k chunks: %v", tc.k, tc.n, err)
		}
	}
}

func TestManifestTampering(t *testing.T) {
	m, _ := signed(t, randomState(5, 5000), 32, 64)
	other, _ := peer.IDFromPrivateKey(testKey(t, 2))
	tamper := map[string]func(*Manifest){
		"model":     func(m *Manifest) { m.Model = "model-b" },
		"prefix":    func(m *Manifest) { m.PrefixHash = "prefix-2" },
		"size":      func(m *Manifest) { m.Size-- },
		"k":         func(m *Manifest) { m.K = 31 },
		"n":         func(m *Manifest) { m.N = 63 },
		"shard":     func(m *Manifest) { m.ShardSize++ },
		"codec":     func(m *Manifest) { m.Codec = CodecClassicGF8 },
		"statehash": func(m *Manifest) { m.StateHash[0] ^= 1 },
		"root":      func(m *Manifest) { m.Root[31] ^= 1 },
		"created":   func(m *Manifest) { m.CreatedAt++ },
		"publisher": func(m *Manifest) { m.Publisher = other.String() },
		"signature": func(m *Manifest) { m.Signature[3] ^= 1 },
	}
	for name, f := range tamper {
		c := m
		c.Signature = bytes.Clone(m.Signature)
		f(&c)
		if err := c.Verify(); err == nil {
			t.Errorf("%s: tampered manifest verifies", name)
		}
	}
	// Strict validation.
	bad := []func(*Manifest){
		func(m *Manifest) { m.K, m.N = 0, 64 },
		func(m *Manifest) { m.K, m.N = 64, 64 },
		func(m *Manifest) { m.N = MaxN + 1 },
		func(m *Manifest) { m.Size = MaxStateBytes + 1 },
		func(m *Manifest) { m.Size = 0 },
		func(m *Manifest) { m.Model = "a/b" },
		func(m *Manifest) { m.PrefixHash = "x\ny" },
		func(m *Manifest) { m.CreatedAt = 0 },
		func(m *Manifest) { m.Publisher = "nobody" },
		func(m *Manifest) { m.Codec = CodecClassicGF8 }, // 32/64 is Leopard's
		func(m *Manifest) { m.Codec = "" },
		func(m *Manifest) { m.ShardSize = (int(m.Size) + m.K - 1) / m.K }, // not a multiple of 64
	}
	for i, f := range bad {
		c := m
		f(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	// Wire round trip.
	b, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeManifest(b)
	if err != nil || back.Verify() != nil || back.Root != m.Root {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := DecodeManifest(append(b, []byte(" {}")...)); err == nil {
		t.Fatal("trailing data accepted")
	}
	if _, err := DecodeManifest(bytes.Replace(b, []byte(`"k"`), []byte(`"kk"`), 1)); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestChunkWire(t *testing.T) {
	_, chunks := signed(t, randomState(6, 7777), 32, 64)
	for _, c := range chunks[:3] {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeChunk(b, 0)
		if err != nil || back.Index != c.Index || !bytes.Equal(back.Data, c.Data) || len(back.Proof) != len(c.Proof) {
			t.Fatalf("round trip: %v", err)
		}
		if _, err := DecodeChunk(b[:len(b)-1], 0); err == nil {
			t.Fatal("truncated chunk accepted")
		}
		if _, err := DecodeChunk(b, len(c.Data)-1); err == nil {
			t.Fatal("oversized chunk accepted")
		}
	}
}

func TestRepair(t *testing.T) {
	state := randomState(7, 200_000)
	m, chunks := signed(t, state, 32, 64)
	missing := []int{0, 3, 40, 63}
	have := pick(chunks, span(10, 42))
	got, err := Repair(m, have, missing)
	if err != nil {
		t.Fatal(err)
	}
	for j, c := range got {
		if c.Index != missing[j] || !bytes.Equal(c.Data, chunks[c.Index].Data) || VerifyChunk(m, c) != nil {
			t.Fatalf("regenerated chunk %d differs", c.Index)
		}
	}
	if _, err := Repair(m, have[:31], missing); !errors.Is(err, ErrTooFewChunks) {
		t.Fatalf("31 chunks: %v", err)
	}
}
