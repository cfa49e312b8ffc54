package admission

import (
	"errors"
	"fmt"

	"github.com/hyperspace-ai/hyperspace/internal/respcache"
)

// PathCache is the L1 response cache's fetch stream (p2p's
// /hyperspace/cache/1.0.0): entries of any age up to their TTL.
const PathCache = "cache"

// Kinds of the L1 response cache's records.
const (
	KindCacheEntry        = "cache"              // a cached response with its signed proof
	KindCacheAnnouncement = "cache_announcement" // "I computed this request" on gossip
)

// CacheEntry admits an L1 cache entry fetched as the answer to
// wantRequestHash: size (its encoded size; 0: computed) and the proof's
// ComputedAt pass the common rules (no domain), then respcache.Verify at
// the checker's clock. Its errors map to reasons: ErrBadSignature to
// bad_signature, ErrResponseMismatch to bad_id (the content does not hash
// to what was signed), ErrSignerNotProvider to signer_mismatch, and
// ErrWrongRequest, ErrExpired and ErrMalformed to invalid. Whether the
// response answers the request (its content) is the caller's hook to check.
func (c *Checker) CacheEntry(src Source, e respcache.Entry, wantRequestHash string, size int) error {
	if size <= 0 {
		size = encodedSize(e)
	}
	if err := c.checkCommon(src, KindCacheEntry, size, "-", e.Proof.ComputedAt); err != nil {
		return err
	}
	if err := respcache.Verify(e, wantRequestHash, c.cfg.Now()); err != nil {
		return c.Reject(src, KindCacheEntry, cacheReason(err), err)
	}
	c.accept(src, KindCacheEntry)
	return nil
}

func cacheReason(err error) string {
	switch {
	case errors.Is(err, respcache.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, respcache.ErrResponseMismatch):
		return ReasonBadID
	case errors.Is(err, respcache.ErrSignerNotProvider):
		return ReasonSignerMismatch
	}
	return ReasonInvalid // wrong request, expired, malformed
}

// CacheAnnouncement admits a gossiped "I computed this" announcement: the
// common rules with its ComputedAt (fresh only, on gossip), a signature by
// the provider it names (bad_signature; invalid when malformed), and, on
// gossip, that provider being the message's authenticated publisher
// (signer_mismatch): nobody announces in another node's name.
func (c *Checker) CacheAnnouncement(src Source, a respcache.Announcement, size int) error {
	if size <= 0 {
		size = encodedSize(a)
	}
	if err := c.checkCommon(src, KindCacheAnnouncement, size, "-", a.ComputedAt); err != nil {
		return err
	}
	if err := a.Verify(); err != nil {
		reason := ReasonBadSignature
		if errors.Is(err, respcache.ErrMalformed) {
			reason = ReasonInvalid
		}
		return c.Reject(src, KindCacheAnnouncement, reason, err)
	}
	if src.Publisher != "" && src.Publisher.String() != a.Provider {
		return c.Reject(src, KindCacheAnnouncement, ReasonSignerMismatch, fmt.Errorf("announcement by %s published by %s", a.Provider, src.Publisher))
	}
	c.accept(src, KindCacheAnnouncement)
	return nil
}
