package node

import (
	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// replica adapts the CRDT to the p2p layer's byte-message Replica interface.
type replica struct{ r *crdt.Replica }

func (a replica) Add(s receipt.Signed) (bool, error) { return a.r.Add(s) }
func (a replica) Has(id string) bool                 { return a.r.Has(id) }

func (a replica) SyncRequest(domains []string) ([]byte, error) {
	return a.r.Request(domains...).Marshal()
}

func (a replica) HandleSyncRequest(req []byte) ([]byte, error) {
	r, err := crdt.UnmarshalSyncRequest(req)
	if err != nil {
		return nil, err
	}
	resp, err := a.r.Respond(r)
	if err != nil {
		return nil, err
	}
	return resp.Marshal()
}

func (a replica) HandleSyncResponse(req, resp []byte) ([]byte, int, error) {
	rq, err := crdt.UnmarshalSyncRequest(req)
	if err != nil {
		return nil, 0, err
	}
	rs, err := crdt.UnmarshalSyncResponse(resp)
	if err != nil {
		return nil, 0, err
	}
	push, added, _, err := a.r.HandleResponse(rq, rs)
	if err != nil {
		return nil, added, err
	}
	b, err := push.Marshal()
	return b, added, err
}

func (a replica) HandleSyncPush(push []byte) (int, error) {
	p, err := crdt.UnmarshalSyncPush(push)
	if err != nil {
		return 0, err
	}
	added, _, err := a.r.HandlePush(p)
	return added, err
}
