package p2p

import (
	"context"
	"errors"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
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
	ReasonOversized      = admission.ReasonOversized      // larger than MaxMessageBytes
	ReasonMalformed      = admission.ReasonMalformed      // not an envelope (papers topic: not a paper message)
	ReasonUnknownDomain  = admission.ReasonUnknownDomain  // receipt domain is not the topic's domain
	ReasonClockSkew      = admission.ReasonClockSkew      // timestamp more than ClockSkew in the future
	ReasonStale          = admission.ReasonStale          // older than MaxAge+ClockSkew and unknown: sync's job, not gossip's
	ReasonReplay         = admission.ReasonReplay         // older than MaxAge+ClockSkew and already known
	ReasonDuplicate      = admission.ReasonDuplicate      // fresh but already in the replica (e.g. got it by sync first): ignored
	ReasonBadID          = admission.ReasonBadID          // content does not hash to the id: tampered payload
	ReasonBadSignature   = admission.ReasonBadSignature   // receipt signature or peerId invalid
	ReasonSignerMismatch = admission.ReasonSignerMismatch // cert does not bind the signer to the publishing node
	ReasonUnvouched      = admission.ReasonUnvouched      // no cert for the signer
	ReasonRateLimited    = "rate_limited"                 // publisher exceeded RateLimit
	ReasonReplicaError   = "replica_error"                // accepted by gossip but the replica refused it
)

// validated is attached to accepted research messages as ValidatorData:
// the decoded envelope and its receipt as admission verified it, which
// readResearch hands to the replica without decoding or verifying it
// again.
type validated struct {
	env   Envelope
	rec   receipt.Verified
	local bool
}

// kind of the records of a topic, for admission's counters.
func (v *validator) kindOf(topic string) string {
	if topic == TopicPapers {
		return admission.KindPaper
	}
	return admission.KindReceipt
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
	adm       *admission.Checker
}

// reject records a rejection this package found (admission's own are
// counted by it: see admitted) and returns result.
func (v *validator) reject(src peer.ID, kind, reason string, result pubsub.ValidationResult) pubsub.ValidationResult {
	if src == v.self {
		return result // our own Publish: the caller reports it
	}
	v.stats.reject(reason)
	_ = v.adm.Reject(admission.Source{Path: admission.PathGossip, Peer: src}, kind, reason, nil)
	return result
}

// admitted turns admission's verdict into a validation result.
func (v *validator) admitted(err error) (string, pubsub.ValidationResult) {
	if err == nil {
		return "", pubsub.ValidationAccept
	}
	reason := admission.ReasonOf(err)
	if reason == "" {
		reason = ReasonMalformed
	}
	v.stats.reject(reason)
	return reason, pubsub.ValidationReject
}

// rateLimit charges one message to its publisher. Only the publisher's
// own deliveries are rejected (and so penalised): an honest relay forwards
// at most what it accepted under the same limit, but messages of one flooder
// can reach us through several relays whose sum exceeds the limit, and those
// relays must not pay for it, so relayed excess is ignored instead.
func (v *validator) rateLimit(src, from peer.ID, kind string) (pubsub.ValidationResult, bool) {
	if src == v.self || v.limiter.allow(from, v.cfg.Now()) {
		return pubsub.ValidationAccept, true
	}
	if src == from {
		return v.reject(src, kind, ReasonRateLimited, pubsub.ValidationReject), false
	}
	return v.reject(src, kind, ReasonRateLimited, pubsub.ValidationIgnore), false
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
		const kind = admission.KindReceipt
		if len(msg.GetData()) > v.cfg.MaxMessageBytes {
			return v.reject(src, kind, ReasonOversized, pubsub.ValidationReject)
		}
		if r, ok := v.rateLimit(src, msg.GetFrom(), kind); !ok {
			return r
		}
		env, err := UnmarshalEnvelope(msg.GetData())
		if err != nil || (msg.ID != "" && msg.ID != env.Receipt.ID) {
			return v.reject(src, kind, ReasonMalformed, pubsub.ValidationReject)
		}
		rec, reason, result := v.checkEnvelope(domain, env, src, msg.GetFrom(), len(msg.GetData()), false)
		if reason != "" {
			return result
		}
		msg.ValidatorData = &validated{env: env, rec: rec}
		return pubsub.ValidationAccept
	}
}

// checkEnvelope applies every rule of a research message to env, handed
// to us by src and published by from; local is true for our own Publish,
// which skips the duplicate check (the receipt is already in the replica)
// and requires the receipt to be fresh by MaxAge alone, so that peers with
// clocks up to ClockSkew apart still accept it. The topic and freshness
// rules need the replica and live here; the record itself (size,
// signature, vouching cert) is admission's. It returns "" when env is
// acceptable, with the receipt as admission verified it; rejections are
// counted.
func (v *validator) checkEnvelope(domain string, env Envelope, src, from peer.ID, size int, local bool) (receipt.Verified, string, pubsub.ValidationResult) {
	const kind = admission.KindReceipt
	r := env.Receipt
	if r.Receipt.Domain != domain {
		return receipt.Verified{}, ReasonUnknownDomain, v.reject(src, kind, ReasonUnknownDomain, pubsub.ValidationReject)
	}
	now := v.cfg.Now()
	ts := time.UnixMilli(r.Receipt.Timestamp)
	if ts.After(now.Add(v.cfg.ClockSkew)) {
		return receipt.Verified{}, ReasonClockSkew, v.reject(src, kind, ReasonClockSkew, pubsub.ValidationReject)
	}
	oldest := now.Add(-v.cfg.MaxAge - v.cfg.ClockSkew)
	if local {
		oldest = now.Add(-v.cfg.MaxAge)
	}
	if ts.Before(oldest) {
		if !local && v.replica.Has(r.ID) {
			return receipt.Verified{}, ReasonReplay, v.reject(src, kind, ReasonReplay, pubsub.ValidationReject)
		}
		return receipt.Verified{}, ReasonStale, v.reject(src, kind, ReasonStale, pubsub.ValidationReject)
	}
	if !local && v.replica.Has(r.ID) {
		// A fresh receipt we already hold (typically from a sync that
		// overtook the gossip). Pubsub's seen-cache, whose TTL exceeds the
		// freshness window, already dropped every re-delivery of a message
		// that came through gossip, so this is an honest relay: ignore it
		// without penalty and without forwarding.
		return receipt.Verified{}, ReasonDuplicate, v.reject(src, kind, ReasonDuplicate, pubsub.ValidationIgnore)
	}
	path := admission.PathGossip
	if local {
		path = "local"
	}
	cert := env.Cert
	rec, err := v.adm.AdmitReceipt(admission.Source{Path: path, Peer: src, Publisher: from}, r, &cert, size)
	reason, result := v.admitted(err)
	return rec, reason, result
}

// papers returns the validator of the papers topic: papers, reviews and
// breakthrough announcements pass admission like receipts do.
func (v *validator) papers() pubsub.ValidatorEx {
	return func(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if src == v.self {
			if d, ok := msg.ValidatorData.(*PaperMessage); ok && d.local {
				return pubsub.ValidationAccept
			}
		}
		const kind = admission.KindPaper
		if len(msg.GetData()) > v.cfg.MaxMessageBytes {
			return v.reject(src, kind, ReasonOversized, pubsub.ValidationReject)
		}
		if r, ok := v.rateLimit(src, msg.GetFrom(), kind); !ok {
			return r
		}
		m, err := UnmarshalPaperMessage(msg.GetData())
		if err != nil {
			return v.reject(src, kind, ReasonMalformed, pubsub.ValidationReject)
		}
		if _, result := v.admitted(v.admitPaper(admission.Source{Path: admission.PathGossip, Peer: src, Publisher: msg.GetFrom()}, m, len(msg.GetData()))); result != pubsub.ValidationAccept {
			return result
		}
		msg.ValidatorData = &m
		return pubsub.ValidationAccept
	}
}

// admitPaper runs admission on a papers-topic message.
func (v *validator) admitPaper(src admission.Source, m PaperMessage, size int) error {
	switch m.Type {
	case PaperTypeReview:
		return v.adm.Review(src, *m.Review, size)
	case PaperTypeBreakthrough:
		return v.adm.Paper(src, admission.KindBreakthrough, *m.Paper, m.Cert, size, m.At)
	default:
		return v.adm.Paper(src, admission.KindPaper, *m.Paper, m.Cert, size, 0)
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
