package p2p

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Reasons a gossip message is not accepted; the keys of Stats.Rejected and
// the reason label of the rejected metric.
//
// All are ValidationReject (the sender's P4 invalid-message counter grows)
// except ReasonDuplicate, which is ValidationIgnore, and ReasonRateLimited,
// which is Reject when the publisher sent the message to us itself and
// Ignore when an honest peer relayed it (see validator.rateLimit).
const (
	ReasonOversized      = "oversized"       // larger than MaxMessageBytes
	ReasonMalformed      = "malformed"       // not an envelope (or, on raw topics, not JSON)
	ReasonUnknownDomain  = "unknown_domain"  // receipt domain is not the topic's domain
	ReasonClockSkew      = "clock_skew"      // timestamp more than ClockSkew in the future
	ReasonStale          = "stale"           // older than MaxAge+ClockSkew and unknown: sync's job, not gossip's
	ReasonReplay         = "replay"          // older than MaxAge+ClockSkew and already known
	ReasonDuplicate      = "duplicate"       // fresh but already in the replica (e.g. got it by sync first): ignored
	ReasonBadID          = "bad_id"          // content does not hash to the id: tampered payload
	ReasonBadSignature   = "bad_signature"   // receipt signature or peerId invalid
	ReasonSignerMismatch = "signer_mismatch" // cert does not bind the signer to the publishing node
	ReasonRateLimited    = "rate_limited"    // publisher exceeded RateLimit
	ReasonReplicaError   = "replica_error"   // accepted by gossip but the replica refused it
)

// validated is attached to accepted messages as ValidatorData.
type validated struct {
	env   Envelope
	local bool
}

// validator holds the state shared by the topic validators of one node.
type validator struct {
	self      peer.ID
	cfg       *Config
	replica   Replica
	limiter   *rateLimiter // per publisher, in the topic validators
	admission *rateLimiter // per sending peer, in inspectRPC
	publish   *rateLimiter // our own Publish, so that peers never penalise us
	stats     *counters
	certs     certCache
}

// reject records reason and returns result.
func (v *validator) reject(reason string, result pubsub.ValidationResult) pubsub.ValidationResult {
	v.stats.reject(reason)
	return result
}

// rateLimit charges one message to its publisher. Only the publisher's
// own deliveries are rejected (and so penalised): an honest relay forwards
// at most what it accepted under the same limit, but messages of one flooder
// can reach us through several relays whose sum exceeds the limit, and those
// relays must not pay for it, so relayed excess is ignored instead.
func (v *validator) rateLimit(src, from peer.ID) (pubsub.ValidationResult, bool) {
	if src == v.self || v.limiter.allow(from, v.cfg.Now()) {
		return pubsub.ValidationAccept, true
	}
	if src == from {
		return v.reject(ReasonRateLimited, pubsub.ValidationReject), false
	}
	return v.reject(ReasonRateLimited, pubsub.ValidationIgnore), false
}

// research returns the validator of the topic of domain. Checks run
// cheapest first, signature verification last.
func (v *validator) research(domain string) pubsub.ValidatorEx {
	return func(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if src == v.self {
			// Our own Publish already ran checkEnvelope.
			if d, ok := msg.ValidatorData.(*validated); ok && d.local {
				return pubsub.ValidationAccept
			}
		}
		if len(msg.GetData()) > v.cfg.MaxMessageBytes {
			return v.reject(ReasonOversized, pubsub.ValidationReject)
		}
		if r, ok := v.rateLimit(src, msg.GetFrom()); !ok {
			return r
		}
		env, err := UnmarshalEnvelope(msg.GetData())
		if err != nil || (msg.ID != "" && msg.ID != env.Receipt.ID) {
			return v.reject(ReasonMalformed, pubsub.ValidationReject)
		}
		if reason, result := v.checkEnvelope(domain, env, msg.GetFrom(), false); reason != "" {
			return v.reject(reason, result)
		}
		msg.ValidatorData = &validated{env: env}
		return pubsub.ValidationAccept
	}
}

// checkEnvelope applies every rule of a research message to env published
// by from; local is true for our own Publish, which skips the duplicate
// check (the receipt is already in the replica) and requires the receipt
// to be fresh by MaxAge alone, so that peers with clocks up to ClockSkew
// apart still accept it. It returns "" when env is acceptable.
func (v *validator) checkEnvelope(domain string, env Envelope, from peer.ID, local bool) (string, pubsub.ValidationResult) {
	r := env.Receipt
	if r.Receipt.Domain != domain {
		return ReasonUnknownDomain, pubsub.ValidationReject
	}
	now := v.cfg.Now()
	ts := time.UnixMilli(r.Receipt.Timestamp)
	if ts.After(now.Add(v.cfg.ClockSkew)) {
		return ReasonClockSkew, pubsub.ValidationReject
	}
	oldest := now.Add(-v.cfg.MaxAge - v.cfg.ClockSkew)
	if local {
		oldest = now.Add(-v.cfg.MaxAge)
	}
	if ts.Before(oldest) {
		if !local && v.replica.Has(r.ID) {
			return ReasonReplay, pubsub.ValidationReject
		}
		return ReasonStale, pubsub.ValidationReject
	}
	if !local && v.replica.Has(r.ID) {
		// A fresh receipt we already hold (typically from a sync that
		// overtook the gossip). Pubsub's seen-cache, whose TTL exceeds the
		// freshness window, already dropped every re-delivery of a message
		// that came through gossip, so this is an honest relay: ignore it
		// without penalty and without forwarding.
		return ReasonDuplicate, pubsub.ValidationIgnore
	}
	if err := r.Verify(); err != nil {
		if errors.Is(err, receipt.ErrBadID) {
			return ReasonBadID, pubsub.ValidationReject
		}
		return ReasonBadSignature, pubsub.ValidationReject
	}
	if !v.certs.verified(env.Cert, from, r.Receipt.PublicKey) {
		return ReasonSignerMismatch, pubsub.ValidationReject
	}
	return "", pubsub.ValidationAccept
}

// certCache remembers certs that verified: an agent publishes many
// receipts under one cert, and a signature check costs as much as the
// receipt's own.
type certCache struct {
	mu sync.Mutex
	ok map[AgentCert]bool
}

const certCacheSize = 4096

func (c *certCache) verified(cert AgentCert, from peer.ID, agentPub string) bool {
	if cert.Node != from.String() || cert.AgentPublicKey != agentPub {
		return false
	}
	c.mu.Lock()
	hit := c.ok[cert]
	c.mu.Unlock()
	if hit {
		return true
	}
	if cert.Verify(from, agentPub) != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok == nil || len(c.ok) >= certCacheSize {
		c.ok = map[AgentCert]bool{} // crude but bounded
	}
	c.ok[cert] = true
	return true
}

// raw returns the validator of the papers and inspiration topics: size,
// rate and well-formed JSON only (their content rules come later).
func (v *validator) raw() pubsub.ValidatorEx {
	return func(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if len(msg.GetData()) > v.cfg.MaxMessageBytes {
			return v.reject(ReasonOversized, pubsub.ValidationReject)
		}
		if r, ok := v.rateLimit(src, msg.GetFrom()); !ok {
			return r
		}
		if !json.Valid(msg.GetData()) {
			return v.reject(ReasonMalformed, pubsub.ValidationReject)
		}
		return pubsub.ValidationAccept
	}
}

// admissionFactor is how much looser the admission limit (inspectRPC) is
// than the validator's rate limit.
const admissionFactor = 4

// errFlood makes pubsub drop an RPC unread.
var errFlood = errors.New("p2p: peer exceeds the admission rate")

// inspectRPC runs before pubsub queues an RPC's messages for validation
// (and before it checks their signatures). It charges the messages a peer
// publishes itself to a bucket admissionFactor times larger than the
// validator's and drops the whole RPC once that is exhausted, so that one
// flooding peer cannot fill the validation queue (whose overflow would drop
// honest messages too) in the moments before its rate-limit rejections
// graylist it. Messages it relays for others are left to the validator.
func (v *validator) inspectRPC(from peer.ID, rpc *pubsub.RPC) error {
	own := 0
	for _, m := range rpc.GetPublish() {
		if peer.ID(m.GetFrom()) == from {
			own++
		}
	}
	if own == 0 || v.admission.allowN(from, own, v.cfg.Now()) {
		return nil
	}
	v.stats.mu.Lock()
	v.stats.rejected[ReasonRateLimited] += uint64(own)
	v.stats.mu.Unlock()
	return errFlood
}

// rateLimiter is a set of token buckets keyed by publisher, driven by the
// injected clock.
type rateLimiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[peer.ID]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(l RateLimit) *rateLimiter {
	return &rateLimiter{rate: l.Rate, burst: float64(l.Burst), buckets: map[peer.ID]*bucket{}}
}

// allow takes one token from p's bucket if it has one.
func (l *rateLimiter) allow(p peer.ID, now time.Time) bool { return l.allowN(p, 1, now) }

// allowN takes k tokens from p's bucket if it has them.
func (l *rateLimiter) allowN(p peer.ID, k int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[p]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[p] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens < float64(k) {
		return false
	}
	b.tokens -= float64(k)
	return true
}

// gc forgets buckets that have refilled: they behave like new ones.
func (l *rateLimiter) gc(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, p)
		}
	}
}
