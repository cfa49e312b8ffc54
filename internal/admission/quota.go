package admission

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// limiter is a set of token buckets keyed by peer, driven by the caller's
// clock. Buckets that have refilled are forgotten, so memory stays bounded
// by the peers active within one refill time.
type limiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[peer.ID]*bucket
	seen    int // allows since the last sweep
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(q Quota) *limiter {
	return &limiter{rate: q.Rate, burst: float64(q.Burst), buckets: map[peer.ID]*bucket{}}
}

// allow takes one token from p's bucket if it has one.
func (l *limiter) allow(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen++; l.seen >= 4096 {
		l.seen = 0
		for id, b := range l.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
				delete(l.buckets, id)
			}
		}
	}
	b, ok := l.buckets[p]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[p] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
