// Package admission is the one check every record from the network passes
// before anything stores or believes it: research receipts, papers, reviews
// and breakthrough announcements, whether they arrive by gossip, by
// leaderboard sync or by any later protocol. Adding a path means calling
// this package, not writing another check.
//
// A record is admitted when, in this order (cheapest first):
//
//   - it is no larger than MaxRecordBytes;
//   - its domain is one this node knows (when a domain list is set);
//   - its timestamp is not more than ClockSkew in the future, and, on paths
//     that carry only fresh records (gossip), not older than MaxAge+ClockSkew;
//   - the sending peer is within its quota on that path;
//   - its content hashes to its id and its signature verifies;
//   - its signer is vouched for: an agent-signed record (receipt, paper)
//     comes with a Cert by which a node binds the agent key to itself, and
//     on gossip that node is the message's authenticated publisher; a
//     review is signed with the key of the node it names (a reviewer is
//     bound to the reviewing node's identity, so nobody can review in
//     another node's name);
//   - its own invariants hold (a review scores 1-10; a paper or review
//     holds no NUL character, which PostgreSQL's TEXT and JSONB columns
//     cannot store, so such a record could never be kept by any site).
//
// The Checker counts what it admits and rejects per path, kind and reason
// (Stats). It holds no records: duplicates and replays, which need the
// caller's store, are the caller's to detect and to report with Reject.
package admission

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Paths a record arrives by.
const (
	PathGossip = "gossip" // GossipSub topics: fresh records only
	PathSync   = "sync"   // leaderboard anti-entropy: any age
	// PathTraining is DiLoCo's delta stream from other sites' nodes.
	PathTraining = "training"
)

// Kinds of record.
const (
	KindReceipt      = "receipt"
	KindPaper        = "paper"
	KindReview       = "review"
	KindBreakthrough = "breakthrough"
	KindDelta        = "delta"
	KindPresence     = "presence" // a pulse round presence
	KindVerdict      = "verdict"  // a pulse round validator verdict
	KindOutcome      = "outcome"  // a fraud-proof challenge's outcome
)

// DefaultTrainingQuota lets one peer send a delta every few seconds.
var DefaultTrainingQuota = Quota{Rate: 0.5, Burst: 4}

// Reasons a record is rejected (the reason label of the metrics).
const (
	ReasonOversized        = "oversized"         // larger than MaxRecordBytes
	ReasonMalformed        = "malformed"         // does not decode
	ReasonUnknownDomain    = "unknown_domain"    // not a domain this node knows
	ReasonClockSkew        = "clock_skew"        // timestamp too far in the future
	ReasonStale            = "stale"             // too old for a fresh-only path
	ReasonReplay           = "replay"            // too old and already known (reported by the caller)
	ReasonDuplicate        = "duplicate"         // already held (reported by the caller)
	ReasonQuota            = "quota"             // the sending peer exceeded its quota
	ReasonBadID            = "bad_id"            // content does not hash to the id: tampered
	ReasonBadSignature     = "bad_signature"     // signature or signer id invalid
	ReasonUnvouched        = "unvouched"         // no cert for the signer
	ReasonSignerMismatch   = "signer_mismatch"   // the cert does not bind the signer to the publisher
	ReasonReviewerMismatch = "reviewer_mismatch" // a review not signed by the node it names
	ReasonInvalid          = "invalid"           // the record's own invariants fail
)

// Defaults.
const (
	DefaultMaxRecordBytes = 1 << 20
	DefaultClockSkew      = 2 * time.Minute
	DefaultMaxAge         = 10 * time.Minute
)

// DefaultSyncQuota lets one peer hand this node 2,000 new records a second
// by sync with bursts of 20,000 (a full leaderboard of a busy network in a
// few exchanges); beyond it the rest waits for later exchanges.
var DefaultSyncQuota = Quota{Rate: 2000, Burst: 20000}

// Quota is a token bucket per sending peer: Rate records per second on
// average with bursts of up to Burst.
type Quota struct {
	Rate  float64
	Burst int
}

// Config configures a Checker; zero fields take the defaults.
type Config struct {
	MaxRecordBytes int
	ClockSkew      time.Duration
	MaxAge         time.Duration
	// Domains, when not empty, are the only domains admitted.
	Domains []string
	// Quotas per path (a path without one is unlimited here; gossip's own
	// per-publisher rate limit lives in package p2p, next to peer scoring).
	Quotas map[string]Quota
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Source says where a record came from.
type Source struct {
	Path string
	// Peer is the peer that handed us the record (quotas are charged to it).
	Peer peer.ID
	// Publisher is the authenticated publisher on gossip; a cert must name
	// it. Empty on sync, where records are relayed and the cert's own node
	// is the voucher.
	Publisher peer.ID
}

// Rejection is the error of a refused record.
type Rejection struct {
	Path, Kind, Reason string
	Err                error
}

func (r *Rejection) Error() string {
	msg := fmt.Sprintf("admission: %s %s rejected: %s", r.Path, r.Kind, r.Reason)
	if r.Err != nil {
		msg += ": " + r.Err.Error()
	}
	return msg
}

func (r *Rejection) Unwrap() error { return r.Err }

// ReasonOf is the reason of a Rejection ("" for nil or other errors).
func ReasonOf(err error) string {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// Checker admits records. It is safe for concurrent use.
type Checker struct {
	cfg     Config
	domains map[string]bool
	quotas  map[string]*limiter

	certMu sync.Mutex
	certs  map[Cert]bool // certs that verified (an agent publishes many records under one)

	mu       sync.Mutex
	accepted map[string]uint64 // path/kind
	rejected map[string]uint64 // path/kind/reason
}

// New returns a Checker.
func New(cfg Config) *Checker {
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Checker{cfg: cfg, quotas: map[string]*limiter{}, certs: map[Cert]bool{},
		accepted: map[string]uint64{}, rejected: map[string]uint64{}}
	if len(cfg.Domains) > 0 {
		c.domains = map[string]bool{}
		for _, d := range cfg.Domains {
			c.domains[d] = true
		}
	}
	for path, q := range cfg.Quotas {
		if q.Rate > 0 && q.Burst > 0 {
			c.quotas[path] = newLimiter(q)
		}
	}
	return c
}

// Reject counts a rejection found by the caller (a duplicate, a replay, a
// message that does not decode) and returns it as an error.
func (c *Checker) Reject(src Source, kind, reason string, err error) error {
	c.mu.Lock()
	c.rejected[src.Path+"/"+kind+"/"+reason]++
	c.mu.Unlock()
	return &Rejection{Path: src.Path, Kind: kind, Reason: reason, Err: err}
}

func (c *Checker) accept(src Source, kind string) {
	c.mu.Lock()
	c.accepted[src.Path+"/"+kind]++
	c.mu.Unlock()
}

// Delta applies the time and quota rules to a training delta sent by
// src.Peer at atMs and checks, with verify, that the sending peer signed it.
// What the delta holds (its run, round, shape and norm, and its size against
// the model's) is the training server's to check; it reports what it
// refuses with Reject(src, KindDelta, ...) and what it takes with Admit.
func (c *Checker) Delta(src Source, atMs int64, verify func() error) error {
	if err := c.checkCommon(src, KindDelta, 0, "-", atMs); err != nil {
		return err
	}
	if src.Path == PathTraining && time.UnixMilli(atMs).Before(c.cfg.Now().Add(-c.cfg.MaxAge-c.cfg.ClockSkew)) {
		return c.Reject(src, KindDelta, ReasonStale, fmt.Errorf("sent at %s", time.UnixMilli(atMs).UTC().Format(time.RFC3339)))
	}
	if err := verify(); err != nil {
		return c.Reject(src, KindDelta, ReasonBadSignature, err)
	}
	return nil
}

// Admit counts a record of kind the caller admitted after its own checks.
func (c *Checker) Admit(src Source, kind string) { c.accept(src, kind) }

// checkCommon applies size, domain ("-": the kind has none), time and
// quota rules.
func (c *Checker) checkCommon(src Source, kind string, size int, domain string, tsMs int64) error {
	if size > c.cfg.MaxRecordBytes {
		return c.Reject(src, kind, ReasonOversized, fmt.Errorf("%d bytes, limit %d", size, c.cfg.MaxRecordBytes))
	}
	if domain != "-" && c.domains != nil && !c.domains[domain] {
		return c.Reject(src, kind, ReasonUnknownDomain, fmt.Errorf("domain %q", domain))
	}
	now := c.cfg.Now()
	ts := time.UnixMilli(tsMs)
	if ts.After(now.Add(c.cfg.ClockSkew)) {
		return c.Reject(src, kind, ReasonClockSkew, fmt.Errorf("timestamp %s is ahead of %s", ts.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	if src.Path == PathGossip && ts.Before(now.Add(-c.cfg.MaxAge-c.cfg.ClockSkew)) {
		return c.Reject(src, kind, ReasonStale, fmt.Errorf("timestamp %s", ts.UTC().Format(time.RFC3339)))
	}
	if l := c.quotas[src.Path]; l != nil && !l.allow(src.Peer, now) {
		return c.Reject(src, kind, ReasonQuota, fmt.Errorf("peer %s", src.Peer))
	}
	return nil
}

// vouched checks that cert binds the signer key pub to the source's
// publisher (or, without one, to the node the cert names).
func (c *Checker) vouched(src Source, kind string, cert *Cert, pub string) error {
	if cert == nil {
		return c.Reject(src, kind, ReasonUnvouched, nil)
	}
	if src.Publisher != "" && cert.Node != src.Publisher.String() {
		return c.Reject(src, kind, ReasonSignerMismatch, fmt.Errorf("cert names %s, published by %s", cert.Node, src.Publisher))
	}
	if cert.AgentPublicKey != pub {
		return c.Reject(src, kind, ReasonSignerMismatch, errors.New("cert is for another key"))
	}
	c.certMu.Lock()
	hit := c.certs[*cert]
	c.certMu.Unlock()
	if hit {
		return nil
	}
	if err := cert.Verify("", pub); err != nil {
		return c.Reject(src, kind, ReasonSignerMismatch, err)
	}
	c.certMu.Lock()
	if len(c.certs) >= 4096 {
		c.certs = map[Cert]bool{} // crude but bounded
	}
	c.certs[*cert] = true
	c.certMu.Unlock()
	return nil
}

// Receipt admits a research receipt that arrived with cert (nil: the
// receipt's own Vouch, if any). size is its encoded size (0: computed).
func (c *Checker) Receipt(src Source, s receipt.Signed, cert *Cert, size int) error {
	_, err := c.AdmitReceipt(src, s, cert, size)
	return err
}

// AdmitReceipt is Receipt returning the admitted record as a
// receipt.Verified, which a replica takes without verifying it again (see
// crdt.Replica.AddVerified): the one check of the record is this one.
func (c *Checker) AdmitReceipt(src Source, s receipt.Signed, cert *Cert, size int) (receipt.Verified, error) {
	if size <= 0 {
		size = encodedSize(s)
	}
	if err := c.checkCommon(src, KindReceipt, size, s.Receipt.Domain, s.Receipt.Timestamp); err != nil {
		return receipt.Verified{}, err
	}
	v, err := s.Verified()
	if err != nil {
		if errors.Is(err, receipt.ErrBadID) {
			return receipt.Verified{}, c.Reject(src, KindReceipt, ReasonBadID, err)
		}
		return receipt.Verified{}, c.Reject(src, KindReceipt, ReasonBadSignature, err)
	}
	if cert == nil {
		cert = CertOf(s)
	}
	if err := c.vouched(src, KindReceipt, cert, s.Receipt.PublicKey); err != nil {
		return receipt.Verified{}, err
	}
	c.accept(src, KindReceipt)
	return v, nil
}

// Paper admits a signed paper (kind KindPaper or KindBreakthrough: an
// announcement is admitted as the paper it carries; its verdict is never
// believed, see package node) with the cert of its author's key. atMs is
// the time of an announcement (its freshness is judged by it; 0: the
// paper's own timestamp).
func (c *Checker) Paper(src Source, kind string, sp paper.Signed, cert *Cert, size int, atMs int64) error {
	ts := sp.Paper.Timestamp
	if atMs != 0 {
		ts = atMs
	}
	if err := c.checkCommon(src, kind, size, sp.Paper.Domain, ts); err != nil {
		return err
	}
	if err := sp.Verify(); err != nil {
		if errors.Is(err, paper.ErrBadID) {
			return c.Reject(src, kind, ReasonBadID, err)
		}
		return c.Reject(src, kind, ReasonBadSignature, err)
	}
	if sp.Paper.Number < 1 || sp.Paper.Campaign == "" || sp.Paper.Agent == "" {
		return c.Reject(src, kind, ReasonInvalid, errors.New("a paper names its campaign, agent and number (>= 1)"))
	}
	if hasNUL(reflect.ValueOf(sp.Paper)) {
		return c.Reject(src, kind, ReasonInvalid, errNUL)
	}
	if err := c.vouched(src, kind, cert, sp.Paper.PublicKey); err != nil {
		return err
	}
	c.accept(src, kind)
	return nil
}

// Review admits a signed review: it must be signed with the key of the node
// it names. size is its encoded size.
func (c *Checker) Review(src Source, sr paper.SignedReview, size int) error {
	r := sr.Review
	if err := c.checkCommon(src, KindReview, size, "-", r.Timestamp); err != nil {
		return err
	}
	if err := sr.Verify(); err != nil {
		if errors.Is(err, paper.ErrBadID) {
			return c.Reject(src, KindReview, ReasonBadID, err)
		}
		return c.Reject(src, KindReview, ReasonBadSignature, err)
	}
	nodeKey, err := nodePublicKey(r.Node)
	if err != nil {
		return c.Reject(src, KindReview, ReasonReviewerMismatch, err)
	}
	pub, err := base64.StdEncoding.DecodeString(r.PublicKey)
	if err != nil || !bytes.Equal(pub, nodeKey) {
		return c.Reject(src, KindReview, ReasonReviewerMismatch, fmt.Errorf("review names node %s but is signed by another key", r.Node))
	}
	if r.Score < 1 || r.Score > 10 || r.PaperID == "" {
		return c.Reject(src, KindReview, ReasonInvalid, fmt.Errorf("score %d (want 1-10), paper %q", r.Score, r.PaperID))
	}
	if hasNUL(reflect.ValueOf(r)) {
		return c.Reject(src, KindReview, ReasonInvalid, errNUL)
	}
	c.accept(src, KindReview)
	return nil
}

// Presence admits a node's signed pulse presence: it must be signed by the
// node it names, which (on gossip) is the message's publisher, and be
// fresh. size is its encoded size.
func (c *Checker) Presence(src Source, sp pulse.SignedPresence, size int) error {
	p := sp.Presence
	if err := c.checkCommon(src, KindPresence, size, "-", p.Timestamp); err != nil {
		return err
	}
	if err := sp.Verify(BoundToNode); err != nil {
		return c.Reject(src, KindPresence, pulseReason(err), err)
	}
	if src.Publisher != "" && src.Publisher.String() != p.Node {
		return c.Reject(src, KindPresence, ReasonSignerMismatch, fmt.Errorf("presence of %s published by %s", p.Node, src.Publisher))
	}
	if hasNUL(reflect.ValueOf(p)) {
		return c.Reject(src, KindPresence, ReasonInvalid, errNUL)
	}
	c.accept(src, KindPresence)
	return nil
}

// Verdict admits a validator's signed pulse verdict: signed by the
// validator node it names (the publisher on gossip).
func (c *Checker) Verdict(src Source, sv pulse.SignedVerdict, size int) error {
	v := sv.Verdict
	if err := c.checkCommon(src, KindVerdict, size, "-", v.Timestamp); err != nil {
		return err
	}
	if err := sv.Verify(BoundToNode); err != nil {
		return c.Reject(src, KindVerdict, pulseReason(err), err)
	}
	if src.Publisher != "" && src.Publisher.String() != v.Validator {
		return c.Reject(src, KindVerdict, ReasonSignerMismatch, fmt.Errorf("verdict of %s published by %s", v.Validator, src.Publisher))
	}
	if hasNUL(reflect.ValueOf(v)) {
		return c.Reject(src, KindVerdict, ReasonInvalid, errNUL)
	}
	c.accept(src, KindVerdict)
	return nil
}

// Outcome admits a challenge outcome: signed by the referee node it names
// (the publisher on gossip).
func (c *Checker) Outcome(src Source, so pulse.SignedOutcome, size int) error {
	o := so.Outcome
	if err := c.checkCommon(src, KindOutcome, size, "-", o.Timestamp); err != nil {
		return err
	}
	if err := so.Verify(BoundToNode); err != nil {
		return c.Reject(src, KindOutcome, pulseReason(err), err)
	}
	if src.Publisher != "" && src.Publisher.String() != o.Referee {
		return c.Reject(src, KindOutcome, ReasonSignerMismatch, fmt.Errorf("outcome by %s published by %s", o.Referee, src.Publisher))
	}
	if hasNUL(reflect.ValueOf(o)) {
		return c.Reject(src, KindOutcome, ReasonInvalid, errNUL)
	}
	c.accept(src, KindOutcome)
	return nil
}

func pulseReason(err error) string {
	switch {
	case errors.Is(err, pulse.ErrBadID):
		return ReasonBadID
	case errors.Is(err, pulse.ErrNodeMismatch):
		return ReasonSignerMismatch
	case errors.Is(err, pulse.ErrInvalid):
		return ReasonInvalid
	}
	return ReasonBadSignature
}

// BoundToNode reports whether pub (an Ed25519 key) is the key of node.
func BoundToNode(node string, pub ed25519.PublicKey) bool {
	k, err := nodePublicKey(node)
	return err == nil && bytes.Equal(k, pub)
}

// Stats are the checker's counters since New.
type Stats struct {
	// Accepted by "path/kind".
	Accepted map[string]uint64 `json:"accepted"`
	// Rejected by "path/kind/reason".
	Rejected map[string]uint64 `json:"rejected"`
}

// Stats returns a snapshot of the counters.
func (c *Checker) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Accepted: maps.Clone(c.accepted), Rejected: maps.Clone(c.rejected)}
}

var errNUL = errors.New("a string holds a NUL character (U+0000), which PostgreSQL cannot store")

// hasNUL reports whether any string in v (struct fields, slice and array
// elements, map keys and values, through pointers and interfaces) holds a
// NUL character.
func hasNUL(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return strings.IndexByte(v.String(), 0) >= 0
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && hasNUL(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if hasNUL(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if hasNUL(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if hasNUL(it.Key()) || hasNUL(it.Value()) {
				return true
			}
		}
	}
	return false
}

// encodedSize is the JSON size of a record whose caller did not know it.
func encodedSize(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return math.MaxInt
	}
	return len(b)
}
