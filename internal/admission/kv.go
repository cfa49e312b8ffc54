package admission

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/kvprefix"
)

// The inference plane's L2 cache: erasure-coded KV-prefix states
// (internal/kvprefix) stored on and fetched from peers over the kv-cache
// stream protocol (p2p/kvcache.go).
const (
	// PathKV is the kv-cache stream protocol: chunks put by publishers and
	// repairers, manifests and chunks returned to fetchers.
	PathKV = "kv"
	// KindKVManifest is a signed manifest of an erasure-coded state.
	KindKVManifest = "kv_manifest"
	// KindKVChunk is one coded chunk with its inclusion proof.
	KindKVChunk = "kv_chunk"
)

// DefaultKVMaxAge is how long a KV-prefix set lives: a manifest created
// longer ago (plus ClockSkew) is refused as stale, so old sets age out of
// every store and cannot be replayed into one.
const DefaultKVMaxAge = 7 * 24 * time.Hour

// KVManifest admits a KV-prefix manifest: at most kvprefix.MaxManifestBytes
// (size is its encoded size), created neither in the future nor more than
// DefaultKVMaxAge ago, within the peer's quota, valid and signed by the
// publisher it names.
func (c *Checker) KVManifest(src Source, m kvprefix.Manifest, size int) error {
	if size > kvprefix.MaxManifestBytes {
		return c.Reject(src, KindKVManifest, ReasonOversized, fmt.Errorf("%d bytes, limit %d", size, kvprefix.MaxManifestBytes))
	}
	if err := c.checkKV(src, KindKVManifest, m); err != nil {
		return err
	}
	c.accept(src, KindKVManifest)
	return nil
}

// KVChunk admits a chunk of the set m describes: the chunk (size is its
// encoded size) is at most kvprefix.MaxChunkBytes, m passes the manifest
// rules, and the chunk matches m's commitment (a corrupted or substituted
// chunk is refused as bad_id). The quota is charged once per chunk.
func (c *Checker) KVChunk(src Source, m kvprefix.Manifest, ch kvprefix.Chunk, size int) error {
	if size > kvprefix.MaxChunkBytes {
		return c.Reject(src, KindKVChunk, ReasonOversized, fmt.Errorf("%d bytes, limit %d", size, kvprefix.MaxChunkBytes))
	}
	if err := c.checkKV(src, KindKVChunk, m); err != nil {
		return err
	}
	if err := kvprefix.VerifyChunk(m, ch); err != nil {
		return c.Reject(src, KindKVChunk, ReasonBadID, err)
	}
	c.accept(src, KindKVChunk)
	return nil
}

// checkKV applies the time, quota and signature rules to m for a record of
// kind.
func (c *Checker) checkKV(src Source, kind string, m kvprefix.Manifest) error {
	if err := c.checkCommon(src, kind, 0, "-", m.CreatedAt); err != nil {
		return err
	}
	if created := time.UnixMilli(m.CreatedAt); created.Before(c.cfg.Now().Add(-DefaultKVMaxAge - c.cfg.ClockSkew)) {
		return c.Reject(src, kind, ReasonStale, fmt.Errorf("manifest created %s", created.UTC().Format(time.RFC3339)))
	}
	if kvVerified.has(m) {
		return nil
	}
	if err := m.Verify(); err != nil {
		if errors.Is(err, kvprefix.ErrInvalid) {
			return c.Reject(src, kind, ReasonInvalid, err)
		}
		return c.Reject(src, kind, ReasonBadSignature, err)
	}
	kvVerified.add(m)
	return nil
}

// kvVerified remembers manifests whose signature verified (the chunks of
// one set arrive with the same manifest): a fact about the bytes, so one
// cache serves every Checker.
var kvVerified = &manifestCache{seen: map[string]bool{}}

type manifestCache struct {
	mu   sync.Mutex
	seen map[string]bool
}

func manifestKey(m kvprefix.Manifest) string {
	return string(m.SigningBytes()) + string(m.Signature)
}

func (c *manifestCache) has(m kvprefix.Manifest) bool {
	k := manifestKey(m)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[k]
}

func (c *manifestCache) add(m kvprefix.Manifest) {
	k := manifestKey(m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) >= 4096 {
		c.seen = map[string]bool{} // crude but bounded
	}
	c.seen[k] = true
}
