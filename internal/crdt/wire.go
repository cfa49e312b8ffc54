package crdt

import (
	"encoding/json"
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
//	initiator -> responder  SyncRequest   {"domains": [...], "summary": Summary}
//	responder -> initiator  SyncResponse  {"records": [Signed...], "summary": Summary, "more": bool}
//	initiator -> responder  SyncPush      {"records": [Signed...], "more": bool}
//
// Records are receipt.Signed envelopes exactly as the receipt package
// marshals them. No message may exceed MaxMessageSize bytes.
type SyncRequest struct {
	// Domains limits the exchange; empty means every domain either side
	// holds.
	Domains []string `json:"domains,omitempty"`
	Summary Summary  `json:"summary"`
}

// SyncResponse carries the records the initiator lacks and the responder's
// summary as a delta against the request's: an origin left out has exactly
// the entry the request gave it, and an entry with empty Runs means the
// responder holds nothing of that origin.
type SyncResponse struct {
	Records []receipt.Signed `json:"records"`
	Summary Summary          `json:"summary"`
	// More says Records was cut at the message size budget; run another
	// exchange to get the rest.
	More bool `json:"more,omitempty"`
}

// SyncPush carries the records the responder lacks.
type SyncPush struct {
	Records []receipt.Signed `json:"records"`
	More    bool             `json:"more,omitempty"`
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
	for _, d := range m.Domains {
		if err := validDomain(d); err != nil {
			return SyncRequest{}, fmt.Errorf("crdt: sync request: %w", err)
		}
	}
	return m, m.Summary.Validate()
}

// UnmarshalSyncResponse decodes and validates a SyncResponse. The records
// are not verified here; Merge does that.
func UnmarshalSyncResponse(data []byte) (SyncResponse, error) {
	var m SyncResponse
	if err := unmarshal("response", data, &m); err != nil {
		return SyncResponse{}, err
	}
	return m, m.Summary.Validate()
}

// UnmarshalSyncPush decodes a SyncPush. The records are not verified here;
// Merge does that.
func UnmarshalSyncPush(data []byte) (SyncPush, error) {
	var m SyncPush
	err := unmarshal("push", data, &m)
	return m, err
}

// Request starts an exchange over the given domains (all when none).
func (r *Replica) Request(domains ...string) SyncRequest {
	return SyncRequest{Domains: domains, Summary: r.Summary(domains...)}
}

// Respond answers req: the records the initiator lacks (up to the replica's
// message budget) and this replica's summary as a delta against req's, both
// taken atomically. It fails only when req is malformed.
func (r *Replica) Respond(req SyncRequest) (SyncResponse, error) {
	if err := req.Summary.Validate(); err != nil {
		return SyncResponse{}, err
	}
	sc := newScope(req.Domains)
	r.mu.Lock()
	defer r.mu.Unlock()
	recs, more := r.missingLocked(req.Summary, sc, r.cfg.maxMessage)
	return SyncResponse{
		Records: signedOf(recs),
		Summary: delta(r.summaryLocked(sc), req.Summary),
		More:    more,
	}, nil
}

// HandleResponse completes an exchange this replica started with req: it
// merges resp's records and returns the push with the records the
// responder lacks. Rejected records are counted, not fatal; err reports a
// malformed response or a storage failure.
func (r *Replica) HandleResponse(req SyncRequest, resp SyncResponse) (push SyncPush, added, rejected int, err error) {
	if err := resp.Summary.Validate(); err != nil {
		return SyncPush{}, 0, 0, err
	}
	added, rejected, err = r.Merge(resp.Records)
	if err != nil {
		return SyncPush{}, added, rejected, err
	}
	remote := applyDelta(req.Summary, resp.Summary)
	r.mu.RLock()
	defer r.mu.RUnlock()
	recs, more := r.missingLocked(remote, newScope(req.Domains), r.cfg.maxMessage)
	return SyncPush{Records: signedOf(recs), More: more}, added, rejected, nil
}

// HandlePush merges the records of the exchange's last message.
func (r *Replica) HandlePush(push SyncPush) (added, rejected int, err error) {
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
func applyDelta(base, d Summary) Summary {
	out := Summary{Origins: maps.Clone(base.Origins)}
	if out.Origins == nil {
		out.Origins = map[string]OriginSummary{}
	}
	for origin, e := range d.Origins {
		if e.Runs == "" {
			delete(out.Origins, origin)
		} else {
			out.Origins[origin] = e
		}
	}
	return out
}

// Sync runs one in-memory exchange with a as initiator and b as responder,
// through the marshalled wire messages, and returns the bytes each way
// (request + push from a to b, response from b to a). Records either side
// rejects are dropped silently, as over the network; err reports encoding,
// validation or storage failures. It is the reference for what the network
// layer does over one stream; a message whose More is set means the budget
// cut it short and another exchange will carry the rest.
func Sync(a, b *Replica, domains ...string) (bytesAtoB, bytesBtoA int, err error) {
	req := a.Request(domains...)
	wreq, err := req.Marshal()
	if err != nil {
		return 0, 0, err
	}
	bytesAtoB += len(wreq)
	breq, err := UnmarshalSyncRequest(wreq)
	if err != nil {
		return bytesAtoB, 0, err
	}
	resp, err := b.Respond(breq)
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
	push, _, _, err := a.HandleResponse(req, aresp)
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
	_, _, err = b.HandlePush(bpush)
	return bytesAtoB, bytesBtoA, err
}
