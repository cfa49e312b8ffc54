package api

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// DefaultAPIKeyCacheTTL is how long the OpenAI-compatible API trusts a
// verified API key before checking it against the database again.
const DefaultAPIKeyCacheTTL = 2 * time.Second

// maxCachedKeys bounds the verified-key cache; beyond it the cache starts
// over (a flood of distinct keys gains nothing: each one still costs a
// database check).
const maxCachedKeys = 4096

// keyCache remembers, per presented key (by its SHA-256), the token the
// database verified it as and when. Only the /v1 routes use it: an OpenAI
// client's requests are many and small, and one PostgreSQL round trip each
// would bound a node's cached answers to the database's rate. So a key
// revoked elsewhere keeps working on /v1 for at most the TTL; expiry is
// checked on every request; every /api/v1 route checks the database each
// time.
type keyCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[32]byte]cachedKey
}

type cachedKey struct {
	tok store.Token
	at  time.Time
}

func (k *keyCache) verify(ctx context.Context, st *store.Store, raw string) (store.Token, error) {
	if k.ttl <= 0 {
		return st.VerifyToken(ctx, raw)
	}
	sum := sha256.Sum256([]byte(raw))
	now := time.Now()
	k.mu.Lock()
	c, ok := k.m[sum]
	k.mu.Unlock()
	if ok && now.Sub(c.at) < k.ttl && (c.tok.ExpiresAt == nil || now.Before(*c.tok.ExpiresAt)) {
		return c.tok, nil
	}
	t, err := st.VerifyToken(ctx, raw)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		delete(k.m, sum)
		return t, err
	}
	if k.m == nil || len(k.m) >= maxCachedKeys {
		k.m = map[[32]byte]cachedKey{}
	}
	k.m[sum] = cachedKey{tok: t, at: now}
	return t, nil
}
