// Package crdt keeps the per-domain research leaderboards as a state-based
// CRDT and reconciles replicas with delta anti-entropy.
//
// # State and merge
//
// A Replica holds, per domain (Receipt.Domain), the set of immutable signed
// research receipts it has accepted, keyed by receipt id. Merge is set
// union, so it is commutative, associative and idempotent; every ranking
// (BestPerAgent, Top, ByTechnique) is derived from the set on demand and
// never stored. Every record is verified (receipt.Signed.Verify) before it
// is admitted, so no replica has to trust another; AddVerified takes a
// record its caller's admission check verified (a receipt.Verified, which
// only verification makes) without verifying it a second time.
//
// # Origins and sequence numbers
//
// A record's origin is its signer (Receipt.PeerID) and its sequence number
// is Receipt.RunNumber, 1-based and strictly increasing per signer. Honest
// origins give each run number exactly one record, so a replica's knowledge
// of an origin is summarised by the run numbers it holds (compact ranges)
// plus a short digest of the ids. An origin that equivocates (two different
// records with one run number) is still handled: both records are kept, and
// the summaries list the ids at such run numbers explicitly, while the
// digest detects disagreements that neither side can see locally. See
// Summary and Missing for the exchange and its guarantees.
//
// # Anti-entropy
//
// The exchange between an initiator A and a responder B is one round trip
// of three messages (see SyncRequest, SyncResponse, SyncPush):
//
//	A -> B  SyncRequest{Summary(A), or a delta against a summary B holds}
//	B -> A  SyncResponse{Missing(A) records, Summary(B) as a delta against Summary(A)}
//	A -> B  SyncPush{Missing(B) records}
//
// Replicas with honest origins are identical after one exchange (unless a
// message hit the size limit and says More, or B had lost the base A's
// delta named: then B gets what it lacks at once and A the rest in the
// next exchange). An equivocating origin is reconciled within two
// exchanges between the same pair when neither side changes meanwhile;
// under churn it still converges, later.
//
// Each side remembers the last summaries it exchanged with each peer
// (bounded: WithPeerMemory), so a request lists only the origins whose
// entries changed since, and the response only those where the responder
// differs: a steady-state exchange costs about 250 bytes beyond the new
// records themselves, whatever the number of origins. The first exchange
// with a peer (or the first after either side forgot it) sends the full
// summary, about 50 bytes per origin in scope. Package p2p carries the
// messages over /hyperspace/leaderboard/1.0.0; this package does no I/O
// apart from its optional append-only log (Open).
//
// A Replica is safe for concurrent use.
package crdt

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Defaults for the tunables set by options.
const (
	// DefaultMaxRecordSize is the largest marshalled record (bytes) a
	// replica admits.
	DefaultMaxRecordSize = 1 << 20
	// MaxMessageSize is the largest wire message (bytes) that Marshal
	// produces and Unmarshal accepts. Replicas page their records to stay
	// below their own limit (WithMaxMessageSize), which is at most this.
	MaxMessageSize = 16 << 20
	// maxRunNumber bounds run numbers: canonical JSON integers are exact
	// only within 2^53.
	maxRunNumber = 1 << 53
	// maxDomainLen bounds the length of a domain name.
	maxDomainLen = 128
)

// Errors returned (wrapped) by the replica; test with errors.Is.
var (
	// ErrInvalid marks a record that failed verification or a structural
	// check (no domain, run number < 1, too large).
	ErrInvalid = errors.New("crdt: invalid record")
	// ErrNotAdmitted marks a valid record refused by an admission check.
	ErrNotAdmitted = errors.New("crdt: record not admitted")
	// ErrClosed is returned by writes to a closed persistent replica.
	ErrClosed = errors.New("crdt: replica is closed")
	// ErrBadDelta marks a sync message whose summary delta does not fit
	// the summary it is against: it removes an origin that summary lacks,
	// grows it past the origin limit, or acknowledges a summary the
	// request did not describe. Honest peers never send one.
	ErrBadDelta = errors.New("crdt: sync delta does not fit its base")
	// ErrStaleResponse marks a sync response that acknowledges a request
	// whose summary this replica no longer remembers: the request was
	// answered already, or more than four newer requests went to the same
	// peer since. The exchange fails as if the response were lost.
	ErrStaleResponse = errors.New("crdt: stale sync response")
)

// Option configures a Replica (New or Open).
type Option func(*config)

type config struct {
	admit         []func(receipt.Signed) error
	maxRecordSize int
	maxMessage    int
	memoryPeers   int
	memoryBytes   int
}

func defaultConfig() config {
	return config{maxRecordSize: DefaultMaxRecordSize, maxMessage: MaxMessageSize,
		memoryPeers: DefaultPeerMemory, memoryBytes: DefaultPeerMemoryBytes}
}

// WithAdmission adds an admission check run after a record has been
// verified: a non-nil error refuses the record (Add wraps it with
// ErrNotAdmitted). Several checks may be added; all must pass. Records
// loaded from a replica's own log are not re-checked (they were admitted
// when appended), only re-verified.
func WithAdmission(check func(receipt.Signed) error) Option {
	return func(c *config) { c.admit = append(c.admit, check) }
}

// WithDomains admits only records whose domain is one of names.
func WithDomains(names ...string) Option {
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	return WithAdmission(func(s receipt.Signed) error {
		if !known[s.Receipt.Domain] {
			return fmt.Errorf("unknown domain %q", s.Receipt.Domain)
		}
		return nil
	})
}

// WithMaxRecordSize sets the largest marshalled record admitted (default
// DefaultMaxRecordSize).
func WithMaxRecordSize(bytes int) Option {
	return func(c *config) {
		if bytes > 0 {
			c.maxRecordSize = bytes
		}
	}
}

// WithMaxMessageSize sets the byte budget for the records this replica puts
// into one SyncResponse or SyncPush (default and ceiling MaxMessageSize).
// When its records exceed it, the message carries a prefix of them and sets
// More, and the caller runs another exchange.
func WithMaxMessageSize(bytes int) Option {
	return func(c *config) {
		if bytes > 0 && bytes <= MaxMessageSize {
			c.maxMessage = bytes
		}
	}
}

// WithPeerMemory bounds what the replica remembers of the summaries
// exchanged with its peers (see SyncRequest): at most peers peers, least
// recently used forgotten first (default DefaultPeerMemory), and about
// bytes of summaries in all (default DefaultPeerMemoryBytes). Values below
// 1 keep the default. A forgotten peer costs one exchange with a full
// summary, never a record.
func WithPeerMemory(peers, bytes int) Option {
	return func(c *config) {
		if peers > 0 {
			c.memoryPeers = peers
		}
		if bytes > 0 {
			c.memoryBytes = bytes
		}
	}
}

// Replica is one node's copy of the leaderboard CRDT: per domain, the set of
// verified signed receipts. Use New (in memory) or Open (with an append-only
// log). The zero value is not usable.
type Replica struct {
	cfg config

	mu      sync.RWMutex
	domains map[string]map[string]*record // domain -> id -> record
	origins map[string]*originState       // peerId -> its records in every domain
	keys    map[string]string             // originKey -> peerId, "" when two origins share the key
	byID    map[string]*record            // ids are globally unique (the domain is in the content)
	log     *appendLog                    // nil for in-memory replicas
	closed  bool

	peers *peerMemory // the summaries exchanged with each peer (own lock)
}

// record is one admitted receipt with its marshalled size.
type record struct {
	s    receipt.Signed
	size int // len(json.Marshal(s))
}

// originState indexes one origin's records, in every domain, by run number
// (run numbers are per signer, not per domain).
type originState struct {
	bySeq map[int][]*record // each slice sorted by id; >1 entry means equivocation
	// Summary over all domains, cached until the next insert.
	dirty   bool
	summary OriginSummary
}

// New returns an empty in-memory replica.
func New(opts ...Option) *Replica {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	return &Replica{
		cfg:     cfg,
		domains: map[string]map[string]*record{},
		origins: map[string]*originState{},
		keys:    map[string]string{},
		byID:    map[string]*record{},
		peers:   newPeerMemory(cfg.memoryPeers, cfg.memoryBytes),
	}
}

// prepare checks s without touching the replica: it copies s through its
// JSON form (so that the stored record is exactly what is persisted and
// sent, and shares no maps with the caller), verifies the copy and runs the
// structural checks. Admission checks are applied separately.
func (r *Replica) prepare(s receipt.Signed) (*record, error) {
	b, err := r.marshalRecord(s)
	if err != nil {
		return nil, err
	}
	return decodeRecord(b)
}

// marshalRecord is s as the replica stores and sends it, within the size
// limit.
func (r *Replica) marshalRecord(s receipt.Signed) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("%w %s: marshal: %v", ErrInvalid, receipt.ShortID(s.ID), err)
	}
	if len(b) > r.cfg.maxRecordSize {
		return nil, fmt.Errorf("%w %s: %d bytes exceeds the limit of %d", ErrInvalid, receipt.ShortID(s.ID), len(b), r.cfg.maxRecordSize)
	}
	return b, nil
}

// decodeRecord parses one marshalled record, verifies it and checks the
// fields the CRDT relies on.
func decodeRecord(b []byte) (*record, error) {
	var c receipt.Signed
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalid, receipt.ShortID(c.ID), err)
	}
	if err := checkFields(c.Receipt); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrInvalid, receipt.ShortID(c.ID), err)
	}
	return &record{s: c, size: len(b)}, nil
}

func checkFields(rc receipt.Receipt) error {
	if err := validDomain(rc.Domain); err != nil {
		return err
	}
	if rc.RunNumber < 1 || rc.RunNumber > maxRunNumber {
		return fmt.Errorf("runNumber %d is not in [1, 2^53]", rc.RunNumber)
	}
	return nil
}

func validDomain(d string) error {
	if d == "" {
		return errors.New("empty domain")
	}
	if len(d) > maxDomainLen {
		return fmt.Errorf("domain longer than %d bytes", maxDomainLen)
	}
	for _, c := range []byte(d) {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("domain %q contains a control character", d)
		}
	}
	return nil
}

func (r *Replica) admit(rec *record) error {
	for _, check := range r.cfg.admit {
		if err := check(rec.s); err != nil {
			return fmt.Errorf("%w %s: %w", ErrNotAdmitted, receipt.ShortID(rec.s.ID), err)
		}
	}
	return nil
}

// Has reports whether the replica holds the record with id.
func (r *Replica) Has(id string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.byID[id]
	return ok
}

// Get returns the record with id. The record is shared: treat it as
// read-only.
func (r *Replica) Get(id string) (receipt.Signed, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rec, ok := r.byID[id]
	if !ok {
		return receipt.Signed{}, false
	}
	return rec.s, true
}

// Add verifies s, applies the admission checks and inserts it. It reports
// whether s was new; adding a record already held is a no-op (its id is
// looked up first, so the duplicate is not re-verified). An invalid record
// gives an error wrapping ErrInvalid, a refused one ErrNotAdmitted; on a
// persistent replica the record is appended to the log and fsynced before
// Add returns.
func (r *Replica) Add(s receipt.Signed) (added bool, err error) {
	if r.Has(s.ID) {
		return false, nil
	}
	rec, err := r.prepare(s)
	if err != nil {
		return false, err
	}
	if err := r.admit(rec); err != nil {
		return false, err
	}
	n, err := r.insert([]*record{rec})
	return n == 1, err
}

// AddVerified is Add for a record the caller's admission check has
// already verified (only verification makes a receipt.Verified): the
// record is copied, size-limited, structurally checked and admitted as by
// Add, but its id and signature are not checked again.
func (r *Replica) AddVerified(v receipt.Verified) (added bool, err error) {
	s := v.Signed()
	if s.ID == "" {
		return false, fmt.Errorf("%w: no record", ErrInvalid)
	}
	if r.Has(s.ID) {
		return false, nil
	}
	b, err := r.marshalRecord(s)
	if err != nil {
		return false, err
	}
	var c receipt.Signed
	if err := json.Unmarshal(b, &c); err != nil {
		return false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.ID != s.ID {
		return false, fmt.Errorf("%w %s: the copy has id %s", ErrInvalid, receipt.ShortID(s.ID), receipt.ShortID(c.ID))
	}
	if err := checkFields(c.Receipt); err != nil {
		return false, fmt.Errorf("%w %s: %v", ErrInvalid, receipt.ShortID(c.ID), err)
	}
	rec := &record{s: c, size: len(b)}
	if err := r.admit(rec); err != nil {
		return false, err
	}
	n, err := r.insert([]*record{rec})
	return n == 1, err
}

// Merge adds every valid, admitted record of recs (set union) and reports
// how many were new and how many were rejected (invalid or not admitted).
// Records already held count as neither. On a persistent replica the new
// records are appended with one fsync per domain file; err is non-nil only
// when that fails, in which case none of the failed domain's records are
// added.
func (r *Replica) Merge(recs []receipt.Signed) (added, rejected int, err error) {
	seen := make(map[string]bool, len(recs))
	batch := make([]*record, 0, len(recs))
	for _, s := range recs {
		if seen[s.ID] || r.Has(s.ID) {
			continue
		}
		rec, err := r.prepare(s)
		if err == nil {
			err = r.admit(rec)
		}
		if err != nil {
			rejected++
			continue
		}
		seen[s.ID] = true
		batch = append(batch, rec)
	}
	added, err = r.insert(batch)
	return added, rejected, err
}

// insert stores the records that are still new, writing them to the log
// first when there is one.
func (r *Replica) insert(recs []*record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrClosed
	}
	fresh := recs[:0:0]
	for _, rec := range recs {
		if _, ok := r.byID[rec.s.ID]; !ok {
			fresh = append(fresh, rec)
		}
	}
	var errs []error
	if r.log != nil {
		var ok []*record
		ok, errs = r.log.append(fresh)
		fresh = ok
	}
	for _, rec := range fresh {
		r.insertLocked(rec)
	}
	return len(fresh), errors.Join(errs...)
}

func (r *Replica) insertLocked(rec *record) bool {
	if _, ok := r.byID[rec.s.ID]; ok {
		return false
	}
	rc := rec.s.Receipt
	d := r.domains[rc.Domain]
	if d == nil {
		d = map[string]*record{}
		r.domains[rc.Domain] = d
	}
	d[rec.s.ID] = rec
	o := r.origins[rc.PeerID]
	if o == nil {
		o = &originState{bySeq: map[int][]*record{}}
		r.origins[rc.PeerID] = o
		k := originKey(rc.PeerID)
		if _, taken := r.keys[k]; taken {
			r.keys[k] = "" // ambiguous: summarise and reconcile neither by key
		} else {
			r.keys[k] = rc.PeerID
		}
	}
	at := o.bySeq[rc.RunNumber]
	i := sort.Search(len(at), func(i int) bool { return at[i].s.ID >= rec.s.ID })
	o.bySeq[rc.RunNumber] = slices.Insert(at, i, rec)
	o.dirty = true
	r.byID[rec.s.ID] = rec
	return true
}

// Len returns the number of records in domain, or in all domains when
// domain is "".
func (r *Replica) Len(domain string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if domain == "" {
		return len(r.byID)
	}
	return len(r.domains[domain])
}

// Domains returns the domains the replica holds records of, sorted.
func (r *Replica) Domains() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.domainNamesLocked()
}

func (r *Replica) domainNamesLocked() []string {
	out := make([]string, 0, len(r.domains))
	for d := range r.domains {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Records returns the records of domain (all domains when domain is ""),
// sorted by domain, origin, run number and id. The records are shared:
// treat them as read-only.
func (r *Replica) Records(domain string) []receipt.Signed {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []receipt.Signed
	names := []string{domain}
	if domain == "" {
		names = r.domainNamesLocked()
	}
	for _, name := range names {
		r.eachRecordLocked(name, func(rec *record) { out = append(out, rec.s) })
	}
	return out
}

// eachRecordLocked calls f for the records of one domain in (origin, run
// number, id) order.
func (r *Replica) eachRecordLocked(domain string, f func(*record)) {
	d := r.domains[domain]
	recs := make([]*record, 0, len(d))
	for _, rec := range d {
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].less(recs[j]) })
	for _, rec := range recs {
		f(rec)
	}
}

// less orders records by origin, run number and id.
func (a *record) less(b *record) bool {
	ar, br := a.s.Receipt, b.s.Receipt
	if ar.PeerID != br.PeerID {
		return ar.PeerID < br.PeerID
	}
	if ar.RunNumber != br.RunNumber {
		return ar.RunNumber < br.RunNumber
	}
	return a.s.ID < b.s.ID
}

// StateHash returns a deterministic fingerprint of the set held for domain
// (all domains when domain is ""): hex sha256 over the sorted record ids,
// each followed by "\n". Two replicas hold the same set exactly when their
// hashes are equal (up to sha256 collisions).
func (r *Replica) StateHash(domain string) string {
	r.mu.RLock()
	ids := make([]string, 0, len(r.byID))
	if domain == "" {
		for id := range r.byID {
			ids = append(ids, id)
		}
	} else {
		r.eachRecordLocked(domain, func(rec *record) { ids = append(ids, rec.s.ID) })
	}
	r.mu.RUnlock()
	sort.Strings(ids)
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
