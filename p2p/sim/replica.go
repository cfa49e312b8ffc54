package sim

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// replica adapts an in-memory crdt.Replica (the leaderboard CRDT the
// production node keeps on disk) to p2p.Replica, as node/replica.go does:
// records that arrive by sync pass the node's admission check before they
// are merged. Unlike node's adapter it keeps no set of records refused for
// good (a simulation has no attackers), so a refused record is checked
// again on the next exchange.
var _ p2p.VerifiedAdder = replica{}

type replica struct {
	r   *crdt.Replica
	adm *admission.Checker
}

func (a replica) Add(s receipt.Signed) (bool, error) { return a.r.Add(s) }
func (a replica) Has(id string) bool                 { return a.r.Has(id) }

func (a replica) SyncRequest(to peer.ID, domains []string) ([]byte, error) {
	return a.r.Request(string(to), domains).Marshal()
}

func (a replica) HandleSyncRequest(from peer.ID, req []byte) ([]byte, error) {
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

func (a replica) admit(from peer.ID, recs []receipt.Signed) []receipt.Signed {
	if a.adm == nil {
		return recs
	}
	out := recs[:0]
	for _, s := range recs {
		if a.r.Has(s.ID) || a.adm.Receipt(admission.Source{Path: admission.PathSync, Peer: from}, s, nil, 0) == nil {
			out = append(out, s)
		}
	}
	return out
}

func (a replica) HandleSyncResponse(from peer.ID, req, resp []byte) ([]byte, int, error) {
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

func (a replica) HandleSyncPush(from peer.ID, push []byte) (int, error) {
	p, err := crdt.UnmarshalSyncPush(push)
	if err != nil {
		return 0, err
	}
	p.Records = a.admit(from, p.Records)
	added, _, err := a.r.HandlePush(string(from), p)
	return added, err
}

// AddVerified takes gossip's admitted records (p2p.VerifiedAdder), as
// node's adapter does, so that a simulated node checks a gossiped receipt
// once, as a production node does.
func (a replica) AddVerified(v receipt.Verified) (bool, error) { return a.r.AddVerified(v) }
