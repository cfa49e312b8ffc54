package crdt

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Summary is a compact description of the records a replica holds in some
// scope of domains: per origin, the run numbers held and a digest of the
// ids. Run numbers are per signer across all domains, so a replica that
// holds everything an origin published in the scope summarises it as one
// range. Its size grows with the number of origins, not of records (about
// 50 bytes per origin), which is why peers that have met exchange deltas
// against a summary both remember (see SyncRequest and Hash).
//
// JSON, kept terse because a summary (or a delta) travels on every
// exchange:
//
//	{"o": {"<origin key>": "1-40,42-57/<digest>", "<origin key>": {"r": "1-9", "h": "<digest>", "x": {"7": ["<id>", "<id>"]}}}}
//
// Origins are keyed by OriginKey (16 characters of the peer id). An
// origin's entry is a string "runs/digest" unless the origin equivocated,
// then an object; see OriginSummary.
type Summary struct {
	Origins map[string]OriginSummary `json:"o"`
}

// originKeyLen is the length of an origin key: 16 base32 characters, 80
// bits of the peer id's hash, so finding a key that collides with a given
// peer's takes about 2^80 key generations.
const originKeyLen = 16

// OriginKey returns the key a Summary uses for the origin peerID: the 16
// characters after the "hs1" prefix of an identity id (the whole string for
// anything else). A replica that holds two origins with one key (which
// needs a 2^80 search to arrange) leaves both out of its summaries and
// sends all their records, so a collision costs bytes, never records.
func OriginKey(peerID string) string { return originKey(peerID) }

func originKey(peerID string) string {
	if len(peerID) >= len(identity.IDPrefix)+originKeyLen && strings.HasPrefix(peerID, identity.IDPrefix) {
		return peerID[len(identity.IDPrefix) : len(identity.IDPrefix)+originKeyLen]
	}
	return peerID
}

// OriginSummary describes the records held of one origin.
//
//   - Runs ("r") lists the run numbers held as ascending, disjoint,
//     comma-separated ranges "a-b" or single numbers "a", e.g. "1-40,42".
//     The empty string means none (used only in SyncResponse deltas).
//   - Digest ("h") is the unpadded base64url encoding of the first 16 bytes
//     of sha256 over the sorted ids of all records held of the origin (in
//     the scope), each followed by "\n".
//   - Dups ("x"), present only when the origin equivocated, lists for each
//     run number held more than once all the ids held at it, sorted.
//
// Without Dups it marshals as the string Runs+"/"+Digest ("" for none).
type OriginSummary struct {
	Runs   string           `json:"r"`
	Digest string           `json:"h"`
	Dups   map[int][]string `json:"x,omitempty"`
}

type originSummaryJSON OriginSummary

// MarshalJSON encodes e as "runs/digest" when it has no Dups.
func (e OriginSummary) MarshalJSON() ([]byte, error) {
	if len(e.Dups) > 0 {
		return json.Marshal(originSummaryJSON(e))
	}
	if e.Runs == "" && e.Digest == "" {
		return []byte(`""`), nil
	}
	return json.Marshal(e.Runs + "/" + e.Digest)
}

// UnmarshalJSON accepts both forms MarshalJSON writes.
func (e *OriginSummary) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		if str == "" {
			*e = OriginSummary{}
			return nil
		}
		runs, dig, ok := strings.Cut(str, "/")
		if !ok {
			return fmt.Errorf("crdt: origin summary %q: want \"runs/digest\"", str)
		}
		*e = OriginSummary{Runs: runs, Digest: dig}
		return nil
	}
	var o originSummaryJSON
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*e = OriginSummary(o)
	return nil
}

func (e OriginSummary) equal(b OriginSummary) bool {
	return e.Runs == b.Runs && e.Digest == b.Digest &&
		maps.EqualFunc(e.Dups, b.Dups, slices.Equal[[]string])
}

// digestLen is the number of sha256 bytes kept in a digest: 128 bits, so
// an equivocating origin cannot grind two id sets with equal digests.
const digestLen = 16

// digest returns the digest of a sorted list of ids.
func digest(sortedIDs []string) string {
	h := sha256.New()
	for _, id := range sortedIDs {
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:digestLen])
}

// scope is the set of domains an exchange covers; nil means all.
type scope map[string]bool

func newScope(domains []string) scope {
	if len(domains) == 0 {
		return nil
	}
	sc := make(scope, len(domains))
	for _, d := range domains {
		sc[d] = true
	}
	return sc
}

func (sc scope) has(domain string) bool { return sc == nil || sc[domain] }

// view returns o's run numbers (ascending) and records within sc.
func (o *originState) view(sc scope) (seqs []int, at map[int][]*record) {
	if sc == nil {
		seqs = make([]int, 0, len(o.bySeq))
		for s := range o.bySeq {
			seqs = append(seqs, s)
		}
		sort.Ints(seqs)
		return seqs, o.bySeq
	}
	at = map[int][]*record{}
	for s, recs := range o.bySeq {
		for _, rec := range recs {
			if sc.has(rec.s.Receipt.Domain) {
				at[s] = append(at[s], rec)
			}
		}
		if len(at[s]) > 0 {
			seqs = append(seqs, s)
		}
	}
	sort.Ints(seqs)
	return seqs, at
}

// summarize returns o's summary within sc (cached for the full scope); ok
// is false when o has no records in sc.
func (o *originState) summarize(sc scope) (e OriginSummary, ok bool) {
	if sc == nil && !o.dirty && o.summary.Digest != "" {
		return o.summary, true
	}
	seqs, at := o.view(sc)
	if len(seqs) == 0 {
		return OriginSummary{}, false
	}
	ids := make([]string, 0, len(seqs))
	var dups map[int][]string
	for _, s := range seqs {
		recs := at[s]
		for _, rec := range recs {
			ids = append(ids, rec.s.ID)
		}
		if len(recs) > 1 {
			if dups == nil {
				dups = map[int][]string{}
			}
			dups[s] = recordIDs(recs)
		}
	}
	sort.Strings(ids)
	e = OriginSummary{Runs: formatRuns(seqs), Digest: digest(ids), Dups: dups}
	if sc == nil {
		o.summary, o.dirty = e, false
	}
	return e, true
}

func recordIDs(recs []*record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.s.ID
	}
	return out
}

// Summary returns the summary of the records in the given domains (all
// domains when none are given).
func (r *Replica) Summary(domains ...string) Summary {
	r.mu.Lock() // summaries are cached in place
	defer r.mu.Unlock()
	return r.summaryLocked(newScope(domains))
}

func (r *Replica) summaryLocked(sc scope) Summary {
	s := Summary{Origins: make(map[string]OriginSummary, len(r.origins))}
	for origin, o := range r.origins {
		key := originKey(origin)
		if r.keys[key] != origin {
			continue // key shared by two origins: the remote gets all of both
		}
		if e, ok := o.summarize(sc); ok {
			s.Origins[key] = e
		}
	}
	return s
}

// Missing returns the records in the given domains (all when none are
// given) that this replica holds and the owner of remote, a summary of the
// same domains, lacks; ordered by origin, run number and id.
//
// For each origin it sends the records at run numbers remote does not list.
// At listed run numbers it relies on the digest: when it holds every run
// number remote lists, it rebuilds remote's id set (its own record at each
// single run number, remote's explicit ids at equivocated ones) and, if the
// digest disagrees, sends all its records at those run numbers. When it
// cannot rebuild the set (remote holds run numbers it lacks), the other
// direction of the exchange detects any disagreement instead. With honest
// origins the result is exactly what remote lacks.
func (r *Replica) Missing(remote Summary, domains ...string) []receipt.Signed {
	r.mu.RLock()
	defer r.mu.RUnlock()
	recs, _ := r.missingLocked(remote, newScope(domains), 0)
	return signedOf(recs)
}

// missingLocked returns what remote lacks in sc. With budget > 0 it stops
// before the records' marshalled sizes (plus separators) would exceed
// budget, and reports more = true; it always returns at least one record
// when there is one.
func (r *Replica) missingLocked(remote Summary, sc scope, budget int) (out []*record, more bool) {
	used := 0
	for _, origin := range sortedKeys(r.origins) {
		key := originKey(origin)
		e, present := remote.Origins[key]
		present = present && r.keys[key] == origin
		for _, rec := range r.origins[origin].missing(sc, e, present) {
			if budget > 0 && len(out) > 0 && used+rec.size+1 > budget {
				return out, true
			}
			used += rec.size + 1
			out = append(out, rec)
		}
	}
	return out, false
}

// missing implements Missing for one origin; e is remote's entry (present
// reports whether remote has one).
func (o *originState) missing(sc scope, e OriginSummary, present bool) []*record {
	seqs, at := o.view(sc)
	var out []*record
	runs, err := parseRuns(e.Runs)
	if !present || err != nil || len(runs) == 0 {
		// Remote holds nothing of this origin (or sent runs we cannot
		// read, which Validate rejects earlier): send everything.
		for _, s := range seqs {
			out = append(out, at[s]...)
		}
		return out
	}
	var (
		guessIDs   []string  // our ids at run numbers remote holds once
		guessRecs  []*record // the same records
		covered    uint64    // our run numbers inside remote's runs
		verifiable = true
	)
	for _, s := range seqs {
		recs := at[s]
		if !runs.contains(s) {
			out = append(out, recs...)
			continue
		}
		covered++
		if ids, ok := e.Dups[s]; ok {
			for _, rec := range recs {
				if _, found := slices.BinarySearch(ids, rec.s.ID); !found {
					out = append(out, rec)
				}
			}
			continue
		}
		if len(recs) > 1 {
			// Remote holds one record here and we hold several: we cannot
			// tell which, so send them all (equivocation only).
			out = append(out, recs...)
			verifiable = false
			continue
		}
		guessIDs = append(guessIDs, recs[0].s.ID)
		guessRecs = append(guessRecs, recs[0])
	}
	if !verifiable || covered != runs.count() {
		return out
	}
	for _, ids := range e.Dups {
		guessIDs = append(guessIDs, ids...)
	}
	sort.Strings(guessIDs)
	if digest(guessIDs) != e.Digest {
		// Same run numbers, different ids: an equivocation that neither
		// side holds both halves of. Send ours; the remote then holds both
		// and lists them in Dups from now on.
		out = append(out, guessRecs...)
		sort.Slice(out, func(i, j int) bool { return out[i].less(out[j]) })
	}
	return out
}

func signedOf(recs []*record) []receipt.Signed {
	out := make([]receipt.Signed, len(recs))
	for i, rec := range recs {
		out[i] = rec.s
	}
	return out
}

// maxSummaryOrigins bounds the origins of one summary, as received or as
// rebuilt from a delta: a full summary of that many origins is about 3 MB.
const maxSummaryOrigins = 1 << 16

// Hash returns the identity by which an exchange names s as the base of a
// delta (SyncRequest.Base): the unpadded base64url encoding of the first 16
// bytes of sha256 over s's entries in ascending key order, each as the
// key, Runs and Digest (each a uvarint length and the bytes), the number of
// equivocated runs and, for each in ascending order, the run number and
// its ids (uvarint count, then each id length-prefixed). Equal summaries
// have equal hashes, whatever their map order or wire form; finding two
// summaries with one hash takes about 2^64 work, and a peer that did so
// would only confuse its own exchanges (bases are remembered per peer).
func (s Summary) Hash() string {
	h := sha256.New()
	var buf []byte
	str := func(v string) {
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
	}
	for _, key := range sortedKeys(s.Origins) {
		e := s.Origins[key]
		buf = buf[:0]
		str(key)
		str(e.Runs)
		str(e.Digest)
		buf = binary.AppendUvarint(buf, uint64(len(e.Dups)))
		seqs := make([]int, 0, len(e.Dups))
		for seq := range e.Dups {
			seqs = append(seqs, seq)
		}
		sort.Ints(seqs)
		for _, seq := range seqs {
			buf = binary.AppendUvarint(buf, uint64(seq))
			buf = binary.AppendUvarint(buf, uint64(len(e.Dups[seq])))
			for _, id := range e.Dups[seq] {
				str(id)
			}
		}
		h.Write(buf)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:hashLen])
}

// hashLen is the number of sha256 bytes kept in a summary hash.
const hashLen = 16

// validHash reports whether h has the form Hash returns.
func validHash(h string) bool {
	if len(h) != base64.RawURLEncoding.EncodedLen(hashLen) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	return err == nil && len(b) == hashLen
}

// Validate checks that s is well formed: at most 65536 origins, readable
// runs, digests of the right length, equivocation lists inside the runs.
func (s Summary) Validate() error {
	if len(s.Origins) > maxSummaryOrigins {
		return fmt.Errorf("crdt: summary: %d origins, over the limit of %d", len(s.Origins), maxSummaryOrigins)
	}
	for origin, e := range s.Origins {
		if origin == "" || len(origin) > 64 {
			return fmt.Errorf("crdt: summary: origin key %q is empty or longer than 64 bytes", origin)
		}
		runs, err := parseRuns(e.Runs)
		if err != nil {
			return fmt.Errorf("crdt: summary: %s: %w", origin, err)
		}
		if e.Runs == "" {
			if e.Digest != "" || len(e.Dups) > 0 {
				return fmt.Errorf("crdt: summary: %s: digest or ids without runs", origin)
			}
			continue // "holds none" (a delta entry)
		}
		if b, err := base64.RawURLEncoding.DecodeString(e.Digest); err != nil || len(b) != digestLen {
			return fmt.Errorf("crdt: summary: %s: digest %q is not %d bytes of unpadded base64url", origin, e.Digest, digestLen)
		}
		for seq, ids := range e.Dups {
			if !runs.contains(seq) {
				return fmt.Errorf("crdt: summary: %s: equivocated run %d is not in runs %q", origin, seq, e.Runs)
			}
			if len(ids) < 2 || !slices.IsSorted(ids) {
				return fmt.Errorf("crdt: summary: %s: run %d: want at least two sorted ids", origin, seq)
			}
		}
	}
	return nil
}

// runRange is an inclusive range of run numbers.
type runRange struct{ lo, hi int }

// runList is an ascending list of disjoint, non-adjacent ranges.
type runList []runRange

// formatRuns encodes ascending distinct run numbers as "a-b,c,d-e".
func formatRuns(seqs []int) string {
	var b strings.Builder
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(seqs[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(seqs[j]))
		}
		i = j + 1
	}
	return b.String()
}

var errRuns = errors.New("runs must be ascending, disjoint ranges \"a-b\" or numbers in [1, 2^53], separated by commas")

// parseRuns decodes formatRuns' encoding; "" gives an empty list.
func parseRuns(s string) (runList, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make(runList, 0, len(parts))
	prev := 0
	for _, p := range parts {
		lo, hi, isRange := strings.Cut(p, "-")
		a, err := parseRun(lo)
		if err != nil {
			return nil, fmt.Errorf("%w: %q", errRuns, s)
		}
		b := a
		if isRange {
			if b, err = parseRun(hi); err != nil || b <= a {
				return nil, fmt.Errorf("%w: %q", errRuns, s)
			}
		}
		if a <= prev {
			return nil, fmt.Errorf("%w: %q", errRuns, s)
		}
		out = append(out, runRange{a, b})
		prev = b
	}
	return out, nil
}

func parseRun(s string) (int, error) {
	if s == "" || len(s) > 16 || s[0] == '0' || s[0] == '+' {
		return 0, errRuns
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxRunNumber {
		return 0, errRuns
	}
	return n, nil
}

func (l runList) contains(seq int) bool {
	i := sort.Search(len(l), func(i int) bool { return l[i].hi >= seq })
	return i < len(l) && l[i].lo <= seq
}

func (l runList) count() uint64 {
	var n uint64
	for _, r := range l {
		n += uint64(r.hi-r.lo) + 1
	}
	return n
}
