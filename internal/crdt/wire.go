package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// ProtocolID is the libp2p stream protocol that carries the exchange.
const ProtocolID = "/hyperspace/leaderboard/1.0.0"

// SyncRequest opens an exchange with the initiator's summary of the domains
// in scope.
//
// It is the first of the three wire messages of one anti-entropy exchange.
// Each is one JSON object; framing (length prefixes) is the transport's
// job. On one stream:
//
//	initiator -> responder  SyncRequest   {"domains": [...], "base": "<hash>", "hash": "<hash>", "summary": Summary}
//	responder -> initiator  SyncResponse  {"records": [Signed...], "summary": Summary, "more": bool, "ack": "<hash>", "nobase": bool}
//	initiator -> responder  SyncPush      {"records": [Signed...], "more": bool}
//
// Records are receipt.Signed envelopes exactly as the receipt package
// marshals them. No message may exceed MaxMessageSize bytes, and no
// summary, as sent or as rebuilt from a delta, may name more than 65536
// origins.
//
// # Deltas against a remembered base
//
// Each side remembers, per peer, the last few summaries exchanged with it
// (see WithPeerMemory), each named by its Hash (22 characters). The
// initiator then sends, instead of its full summary, a delta against one
// the responder holds:
//
//   - "hash" is the Hash of the initiator's full summary in scope. It is
//     always present in requests of this version that name a peer; a
//     request without it comes from an older initiator (or a stateless
//     one), which is answered as before and not remembered.
//   - "base", when present, is the Hash of a summary both sides hold
//     from an earlier exchange between them; "summary" is then a delta
//     against it: the entries that differ, and an entry with empty runs
//     ("") for each origin of the base that the initiator's summary lacks.
//     A delta that removes an origin its base does not hold is refused
//     with an error.
//   - A responder that holds the base rebuilds the full summary, checks
//     it against "hash", and answers as to a full request. One that does
//     not (a restart, an eviction, another peer's base, a fresh node, a
//     rebuilt summary that does not match) sets "nobase": it sends no
//     records (it cannot tell what the initiator lacks) and its summary in
//     full (as a delta against the request's "summary" taken literally),
//     so the initiator still pushes everything the responder lacks and the
//     next exchange, against the responder's summary just received,
//     brings the rest: a lost base costs one exchange's bytes, never a
//     record.
//   - "ack", in the response, is the request's "hash" when the responder
//     holds the initiator's full summary (and remembers it): "summary" is
//     then a delta against that full summary. Without "ack" it is a delta
//     against the request's "summary" as sent, which is what responders
//     older than this version always send.
//
// A peer that answers a request naming a base with neither "ack" nor
// "nobase" is an older version: it is remembered as such and gets full
// summaries only, so the wire stays compatible both ways.
type SyncRequest struct {
	// Domains limits the exchange; empty means every domain either side
	// holds.
	Domains []string `json:"domains,omitempty"`
	// Base names the summary Summary is a delta against (its Hash); empty
	// when Summary is full.
	Base string `json:"base,omitempty"`
	// Hash is the Hash of the initiator's full summary in scope.
	Hash    string  `json:"hash,omitempty"`
	Summary Summary `json:"summary"`
}

// SyncResponse carries the records the initiator lacks and the responder's
// summary as a delta against the initiator's (the full one when Ack is
// set, else the request's Summary as sent): an origin left out has exactly
// the entry the initiator's gave it, and an entry with empty Runs means the
// responder holds nothing of that origin.
type SyncResponse struct {
	Records []receipt.Signed `json:"records"`
	Summary Summary          `json:"summary"`
	// More says Records was cut at the message size budget; run another
	// exchange to get the rest.
	More bool `json:"more,omitempty"`
	// Ack is the request's Hash when the responder holds the initiator's
	// full summary; Summary is then a delta against it.
	Ack string `json:"ack,omitempty"`
	// NoBase says the responder does not hold the request's Base: Records
	// is empty and Summary is a delta against the request's Summary as
	// sent.
	NoBase bool `json:"nobase,omitempty"`
}

// SyncPush carries the records the responder lacks.
type SyncPush struct {
	Records []receipt.Signed `json:"records"`
	More    bool             `json:"more,omitempty"`
}

// Validate checks that m is well formed: domains, hashes and summary.
func (m SyncRequest) Validate() error {
	for _, d := range m.Domains {
		if err := validDomain(d); err != nil {
			return fmt.Errorf("crdt: sync request: %w", err)
		}
	}
	if m.Hash != "" && !validHash(m.Hash) {
		return fmt.Errorf("crdt: sync request: hash %q is not %d bytes of unpadded base64url", m.Hash, hashLen)
	}
	if m.Base != "" {
		if !validHash(m.Base) {
			return fmt.Errorf("crdt: sync request: base %q is not %d bytes of unpadded base64url", m.Base, hashLen)
		}
		if m.Hash == "" {
			return errors.New("crdt: sync request: a base without the hash of the full summary")
		}
	}
	return m.Summary.Validate()
}

// Validate checks that m is well formed: ack and summary (the records are
// verified by Merge).
func (m SyncResponse) Validate() error {
	if m.Ack != "" {
		if !validHash(m.Ack) {
			return fmt.Errorf("crdt: sync response: ack %q is not %d bytes of unpadded base64url", m.Ack, hashLen)
		}
		if m.NoBase {
			return errors.New("crdt: sync response: both ack and nobase")
		}
	}
	return m.Summary.Validate()
}

// Marshal encodes m as JSON, refusing results over MaxMessageSize.
func (m SyncRequest) Marshal() ([]byte, error) { return marshal("request", m) }

// Marshal encodes m as JSON, refusing results over MaxMessageSize.
func (m SyncResponse) Marshal() ([]byte, error) { return marshal("response", m) }

// Marshal encodes m as JSON, refusing results over MaxMessageSize.
func (m SyncPush) Marshal() ([]byte, error) { return marshal("push", m) }

func marshal(kind string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("crdt: marshal sync %s: %w", kind, err)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("crdt: sync %s is %d bytes, over the limit of %d", kind, len(b), MaxMessageSize)
	}
	return b, nil
}

func unmarshal(kind string, data []byte, v any) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("crdt: sync %s is %d bytes, over the limit of %d", kind, len(data), MaxMessageSize)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("crdt: decode sync %s: %w", kind, err)
	}
	return nil
}

// UnmarshalSyncRequest decodes and validates a SyncRequest.
func UnmarshalSyncRequest(data []byte) (SyncRequest, error) {
	var m SyncRequest
	if err := unmarshal("request", data, &m); err != nil {
		return SyncRequest{}, err
	}
	return m, m.Validate()
}

// UnmarshalSyncResponse decodes and validates a SyncResponse. The records
// are not verified here; Merge does that.
func UnmarshalSyncResponse(data []byte) (SyncResponse, error) {
	var m SyncResponse
	if err := unmarshal("response", data, &m); err != nil {
		return SyncResponse{}, err
	}
	return m, m.Validate()
}

// UnmarshalSyncPush decodes a SyncPush. The records are not verified here;
// Merge does that.
func UnmarshalSyncPush(data []byte) (SyncPush, error) {
	var m SyncPush
	err := unmarshal("push", data, &m)
	return m, err
}

// Request starts an exchange with peer over the given domains (all when
// none). peer is the responder's id as the transport authenticates it;
// the request is a delta against the summary remembered of peer that makes
// it smallest, or full. With peer "" the request is stateless: full, with
// no Hash, and nothing is remembered (the pre-delta wire form).
func (r *Replica) Request(peer string, domains []string) SyncRequest {
	full := r.Summary(domains...)
	req := SyncRequest{Domains: domains, Summary: full}
	if peer == "" {
		return req
	}
	req.Hash = full.Hash()
	bases, legacy := r.peers.candidates(peer)
	if legacy {
		return req
	}
	best := wireSize(full)
	for _, b := range bases {
		d := delta(full, b.s)
		if n := wireSize(d) + len(`"base":"",`) + len(b.hash); n < best {
			best, req.Base, req.Summary = n, b.hash, d
		}
	}
	r.peers.request(peer, req.Hash, full)
	return req
}

// wireSize estimates the bytes s marshals to.
func wireSize(s Summary) int {
	n := len(`{"o":{}}`)
	for key, e := range s.Origins {
		n += len(key) + len(e.Runs) + len(e.Digest) + 7
		for _, ids := range e.Dups {
			n += 24
			for _, id := range ids {
				n += len(id) + 3
			}
		}
	}
	return n
}

// Respond answers req from peer (its id as the transport authenticates
// it; "" for a stateless exchange): the records the initiator lacks (up to
// the replica's message budget) and this replica's summary as a delta
// against the initiator's, both taken atomically. When req names a base
// this replica does not hold for peer, the response says NoBase instead
// (see SyncRequest). It fails only when req is malformed, including a
// delta that does not fit its base.
func (r *Replica) Respond(peer string, req SyncRequest) (SyncResponse, error) {
	if err := req.Validate(); err != nil {
		return SyncResponse{}, err
	}
	remote, known := req.Summary, req.Base == "" // the initiator's summary, and whether it is the full one
	if req.Base != "" && peer != "" {
		if b, ok := r.peers.lookup(peer, req.Base); ok {
			full, err := applyDelta(b, req.Summary)
			if err != nil {
				return SyncResponse{}, fmt.Errorf("crdt: sync request from %s: %w", peer, err)
			}
			if full.Hash() == req.Hash {
				remote, known = full, true
			}
		}
	}
	sc := newScope(req.Domains)
	r.mu.Lock()
	var recs []*record
	more := false
	if known {
		recs, more = r.missingLocked(remote, sc, r.cfg.maxMessage)
	}
	own := r.summaryLocked(sc)
	r.mu.Unlock()
	resp := SyncResponse{Records: signedOf(recs), Summary: delta(own, remote), More: more, NoBase: !known}
	if peer == "" {
		return resp, nil
	}
	switch {
	case req.Hash == "":
		r.peers.forget(peer, true) // an older initiator: full summaries only
	case !known:
		// The initiator will forget its bases and keep only ours.
		r.peers.forget(peer, false)
		ownHash := own.Hash()
		r.peers.remember(peer, ownHash, own, false)
		r.peers.awaitPush(peer, ownHash)
	case req.Base != "" || remote.Hash() == req.Hash:
		resp.Ack = req.Hash
		ownHash := own.Hash()
		r.peers.setLegacy(peer, false)
		r.peers.remember(peer, req.Hash, remote, false)
		r.peers.remember(peer, ownHash, own, false)
		r.peers.awaitPush(peer, req.Hash, ownHash)
	}
	return resp, nil
}

// HandleResponse completes an exchange this replica started with req to
// peer: it merges resp's records and returns the push with the records the
// responder lacks. Rejected records are counted, not fatal; err reports a
// malformed response (a delta that does not fit, an ack of a summary req
// did not describe) or a storage failure.
func (r *Replica) HandleResponse(peer string, req SyncRequest, resp SyncResponse) (push SyncPush, added, rejected int, err error) {
	if err := resp.Validate(); err != nil {
		return SyncPush{}, 0, 0, err
	}
	against := req.Summary
	if resp.Ack != "" {
		if resp.Ack != req.Hash {
			return SyncPush{}, 0, 0, fmt.Errorf("%w: the response acknowledges summary %s; the request described %q", ErrBadDelta, resp.Ack, req.Hash)
		}
		if against, err = r.requested(peer, req); err != nil {
			return SyncPush{}, 0, 0, err
		}
	}
	remote, err := applyDelta(against, resp.Summary)
	if err != nil {
		return SyncPush{}, 0, 0, fmt.Errorf("crdt: sync response from %s: %w", peer, err)
	}
	added, rejected, err = r.Merge(resp.Records)
	if err != nil {
		return SyncPush{}, added, rejected, err
	}
	if peer != "" {
		r.peers.answered(peer, req.Hash)
		switch {
		case resp.Ack != "":
			r.peers.setLegacy(peer, false)
			r.peers.remember(peer, req.Hash, against, true)
			r.peers.remember(peer, remote.Hash(), remote, true)
		case resp.NoBase:
			r.peers.forget(peer, false)
			r.peers.remember(peer, remote.Hash(), remote, true)
		case req.Base != "":
			r.peers.forget(peer, true) // an older responder: full summaries only
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	recs, more := r.missingLocked(remote, newScope(req.Domains), r.cfg.maxMessage)
	return SyncPush{Records: signedOf(recs), More: more}, added, rejected, nil
}

// requested returns the full summary that req, sent to peer, described.
func (r *Replica) requested(peer string, req SyncRequest) (Summary, error) {
	if req.Base == "" {
		if req.Summary.Hash() != req.Hash {
			return Summary{}, fmt.Errorf("crdt: sync request to %s: hash %q does not match its summary", peer, req.Hash)
		}
		return req.Summary, nil
	}
	if s, ok := r.peers.lookup(peer, req.Hash); ok {
		return s, nil
	}
	if b, ok := r.peers.lookup(peer, req.Base); ok {
		if s, err := applyDelta(b, req.Summary); err == nil && s.Hash() == req.Hash {
			return s, nil
		}
	}
	return Summary{}, fmt.Errorf("%w: from %s, to a request (summary %s) answered or forgotten", ErrStaleResponse, peer, req.Hash)
}

// HandlePush merges the records of the exchange's last message from peer
// (which confirms that peer took in the response: the summaries of the
// exchange become bases this replica may name).
func (r *Replica) HandlePush(peer string, push SyncPush) (added, rejected int, err error) {
	if peer != "" {
		r.peers.pushed(peer)
	}
	return r.Merge(push.Records)
}

// delta returns the entries of full that differ from base, plus an entry
// with empty Runs for each origin in base that full lacks.
func delta(full, base Summary) Summary {
	out := Summary{Origins: map[string]OriginSummary{}}
	for origin, e := range full.Origins {
		if be, ok := base.Origins[origin]; !ok || !be.equal(e) {
			out.Origins[origin] = e
		}
	}
	for origin := range base.Origins {
		if _, ok := full.Origins[origin]; !ok {
			out.Origins[origin] = OriginSummary{}
		}
	}
	return out
}

// applyDelta rebuilds a full summary from base and a delta made by delta.
// It refuses a delta that removes an origin base does not hold and a
// result over maxSummaryOrigins.
func applyDelta(base, d Summary) (Summary, error) {
	out := Summary{Origins: maps.Clone(base.Origins)}
	if out.Origins == nil {
		out.Origins = map[string]OriginSummary{}
	}
	for origin, e := range d.Origins {
		if e.Runs != "" {
			out.Origins[origin] = e
			continue
		}
		if _, ok := base.Origins[origin]; !ok {
			return Summary{}, fmt.Errorf("%w: it removes origin %q, which its base does not hold", ErrBadDelta, origin)
		}
		delete(out.Origins, origin)
	}
	if len(out.Origins) > maxSummaryOrigins {
		return Summary{}, fmt.Errorf("%w: it makes a summary of %d origins, over the limit of %d", ErrBadDelta, len(out.Origins), maxSummaryOrigins)
	}
	return out, nil
}

// Sync runs one in-memory exchange with a as initiator and b as responder,
// through the marshalled wire messages, and returns the bytes each way
// (request + push from a to b, response from b to a). aID is a's id as b
// knows it and bID b's as a knows it (each side remembers the other's
// summaries under it; "" for a stateless exchange). Records either side
// rejects are dropped silently, as over the network; err reports encoding,
// validation or storage failures. It is the reference for what the network
// layer does over one stream; a message whose More is set means the budget
// cut it short and another exchange will carry the rest.
func Sync(a *Replica, aID string, b *Replica, bID string, domains ...string) (bytesAtoB, bytesBtoA int, err error) {
	req := a.Request(bID, domains)
	wreq, err := req.Marshal()
	if err != nil {
		return 0, 0, err
	}
	bytesAtoB += len(wreq)
	breq, err := UnmarshalSyncRequest(wreq)
	if err != nil {
		return bytesAtoB, 0, err
	}
	resp, err := b.Respond(aID, breq)
	if err != nil {
		return bytesAtoB, 0, err
	}
	wresp, err := resp.Marshal()
	if err != nil {
		return bytesAtoB, 0, err
	}
	bytesBtoA += len(wresp)
	aresp, err := UnmarshalSyncResponse(wresp)
	if err != nil {
		return bytesAtoB, bytesBtoA, err
	}
	push, _, _, err := a.HandleResponse(bID, req, aresp)
	if err != nil {
		return bytesAtoB, bytesBtoA, err
	}
	wpush, err := push.Marshal()
	if err != nil {
		return bytesAtoB, bytesBtoA, err
	}
	bytesAtoB += len(wpush)
	bpush, err := UnmarshalSyncPush(wpush)
	if err != nil {
		return bytesAtoB, bytesBtoA, err
	}
	_, _, err = b.HandlePush(aID, bpush)
	return bytesAtoB, bytesBtoA, err
}
