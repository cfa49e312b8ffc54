package admission

import (
	"bytes"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hyperspace-ai/hyperspace/internal/kvprefix"
)

func kvSet(t *testing.T, created time.Time) (kvprefix.Manifest, []kvprefix.Chunk) {
	t.Helper()
	seed := bytes.Repeat([]byte{7}, 32)
	key, _, err := crypto.GenerateEd25519Key(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	state := bytes.Repeat([]byte("kv state "), 1000)
	m, chunks, err := kvprefix.EncodeChunks("model-a", "prefix-1", state, 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	m.CreatedAt = created.UnixMilli()
	if err := kvprefix.Sign(&m, key); err != nil {
		t.Fatal(err)
	}
	return m, chunks
}

func TestKVAdmission(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	c := New(Config{Now: func() time.Time { return now }})
	src := Source{Path: PathKV, Peer: "peer"}
	m, chunks := kvSet(t, now.Add(-time.Hour))

	if err := c.KVManifest(src, m, 500); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	if err := c.KVChunk(src, m, chunks[3], 1000); err != nil {
		t.Fatalf("good chunk: %v", err)
	}
	bad := chunks[4]
	bad.Data = bytes.Clone(bad.Data)
	bad.Data[0] ^= 1
	if err := c.KVChunk(src, m, bad, 1000); ReasonOf(err) != ReasonBadID {
		t.Fatalf("corrupt chunk: %v", err)
	}
	if err := c.KVChunk(src, m, chunks[3], kvprefix.MaxChunkBytes+1); ReasonOf(err) != ReasonOversized {
		t.Fatalf("oversized chunk: %v", err)
	}
	if err := c.KVManifest(src, m, kvprefix.MaxManifestBytes+1); ReasonOf(err) != ReasonOversized {
		t.Fatalf("oversized manifest: %v", err)
	}
	// Tampered after signing (a cached good manifest must not help).
	tm := m
	tm.Size--
	tm.ShardSize = kvprefix.ShardSizeFor(tm.Codec, tm.Size, tm.K)
	if err := c.KVManifest(src, tm, 500); ReasonOf(err) != ReasonBadSignature {
		t.Fatalf("tampered manifest: %v", err)
	}
	tm = m
	tm.K = 0
	if err := c.KVManifest(src, tm, 500); ReasonOf(err) != ReasonInvalid {
		t.Fatalf("invalid manifest: %v", err)
	}
	future, _ := kvSet(t, now.Add(time.Hour))
	if err := c.KVManifest(src, future, 500); ReasonOf(err) != ReasonClockSkew {
		t.Fatalf("future manifest: %v", err)
	}
	old, oldChunks := kvSet(t, now.Add(-DefaultKVMaxAge-time.Hour))
	if err := c.KVChunk(src, old, oldChunks[0], 1000); ReasonOf(err) != ReasonStale {
		t.Fatalf("stale manifest: %v", err)
	}
	st := c.Stats()
	if st.Accepted["kv/kv_manifest"] != 1 || st.Accepted["kv/kv_chunk"] != 1 || st.Rejected["kv/kv_chunk/bad_id"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}
