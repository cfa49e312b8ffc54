// Package crdtreplica adapts the leaderboard CRDT (internal/crdt) to the
// p2p layer's byte-message Replica interface; the production node and the
// mocknet simulation (p2p/sim) share it.
package crdtreplica

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// Adapter adapts the CRDT to the p2p layer's byte-message Replica
// interface. Every record that arrives by sync passes admission first
// (signature, the cert of the node that vouches for its signer, the sending
// peer's quota); refused records are counted and left out of the merge, so
// a later exchange may offer them again (a record over quota then lands).
type Adapter struct {
	r   *crdt.Replica
	adm *admission.Checker
	bad *badSet // records refused for good: not checked (or charged to a quota) again
}

var _ p2p.VerifiedAdder = Adapter{}

// New adapts r; records arriving by sync pass adm (nil: none is checked).
func New(r *crdt.Replica, adm *admission.Checker) Adapter {
	return Adapter{r: r, adm: adm, bad: &badSet{}}
}

func (a Adapter) Add(s receipt.Signed) (bool, error) { return a.r.Add(s) }
func (a Adapter) Has(id string) bool                 { return a.r.Has(id) }

// AddVerified takes gossip's admitted records (p2p.VerifiedAdder).
func (a Adapter) AddVerified(v receipt.Verified) (bool, error) { return a.r.AddVerified(v) }

func (a Adapter) SyncRequest(to peer.ID, domains []string) ([]byte, error) {
	return a.r.Request(string(to), domains).Marshal()
}

func (a Adapter) HandleSyncRequest(from peer.ID, req []byte) ([]byte, error) {
	r, err := crdt.UnmarshalSyncRequest(req)
	if err != nil {
		return nil, err
	}
	resp, err := a.r.Respond(string(from), r)
	if err != nil {
		return nil, err
	}
	return resp.Marshal()
}

// admit keeps the records that pass admission (and those already held,
// which need no check).
func (a Adapter) admit(from peer.ID, recs []receipt.Signed) []receipt.Signed {
	if a.adm == nil {
		return recs
	}
	out := recs[:0]
	for _, s := range recs {
		if a.r.Has(s.ID) {
			out = append(out, s)
			continue
		}
		key := badKey(s)
		if a.bad.has(key) {
			continue
		}
		err := a.adm.Receipt(admission.Source{Path: admission.PathSync, Peer: from}, s, nil, 0)
		switch admission.ReasonOf(err) {
		case "":
			out = append(out, s)
		case admission.ReasonQuota, admission.ReasonClockSkew:
			// Transient: offered again by a later exchange.
		default:
			a.bad.add(key)
		}
	}
	return out
}

// badKey identifies a record together with the vouch it came with (the
// same receipt may come vouched properly from another peer).
func badKey(s receipt.Signed) string {
	k := s.ID
	if s.Vouch != nil {
		k += "/" + s.Vouch.Node + "/" + s.Vouch.Signature
	}
	return k
}

// badSet is a bounded set of refused records (cleared when full: a record
// forgotten is checked, and refused, once more).
type badSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const maxBad = 1 << 16

func (b *badSet) has(k string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[k]
	return ok
}

func (b *badSet) add(k string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil || len(b.m) >= maxBad {
		b.m = map[string]struct{}{}
	}
	b.m[k] = struct{}{}
}

func (a Adapter) HandleSyncResponse(from peer.ID, req, resp []byte) ([]byte, int, error) {
	rq, err := crdt.UnmarshalSyncRequest(req)
	if err != nil {
		return nil, 0, err
	}
	rs, err := crdt.UnmarshalSyncResponse(resp)
	if err != nil {
		return nil, 0, err
	}
	rs.Records = a.admit(from, rs.Records)
	push, added, _, err := a.r.HandleResponse(string(from), rq, rs)
	if err != nil {
		return nil, added, err
	}
	b, err := push.Marshal()
	return b, added, err
}

func (a Adapter) HandleSyncPush(from peer.ID, push []byte) (int, error) {
	p, err := crdt.UnmarshalSyncPush(push)
	if err != nil {
		return 0, err
	}
	p.Records = a.admit(from, p.Records)
	added, _, err := a.r.HandlePush(string(from), p)
	return added, err
}
