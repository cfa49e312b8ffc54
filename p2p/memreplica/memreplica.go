// Package memreplica is a simple in-memory p2p.Replica for tests and
// benchmarks. Its sync summary is the full sorted id list: correct, not
// compact.
package memreplica

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Replica holds verified receipts by id. The zero value is not usable; use
// New. It is safe for concurrent use.
type Replica struct {
	// Admit, when set, checks every record that arrives by sync (from the
	// named peer) before it is merged; a refused record is skipped.
	Admit func(from peer.ID, s receipt.Signed) error

	mu   sync.RWMutex
	recs map[string]receipt.Signed
}

// New returns an empty replica.
func New() *Replica { return &Replica{recs: map[string]receipt.Signed{}} }

type summary struct {
	Domains []string `json:"domains"` // empty: all
	IDs     []string `json:"ids"`
}

type response struct {
	Domains []string         `json:"domains"`
	Records []receipt.Signed `json:"records"` // what the initiator lacks
	IDs     []string         `json:"ids"`     // what the responder has
}

type push struct {
	Records []receipt.Signed `json:"records"`
}

// Add verifies s and stores it; added is false if it was already there.
func (r *Replica) Add(s receipt.Signed) (bool, error) {
	r.mu.RLock()
	_, ok := r.recs[s.ID]
	r.mu.RUnlock()
	if ok {
		return false, nil
	}
	if err := s.Verify(); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.recs[s.ID]; ok {
		return false, nil
	}
	r.recs[s.ID] = s
	return true, nil
}

// AddVerified stores a record already verified (p2p.VerifiedAdder): the
// node's admission check verified it, so it is not verified again.
func (r *Replica) AddVerified(v receipt.Verified) (bool, error) {
	s := v.Signed()
	if s.ID == "" {
		return false, errors.New("memreplica: no record")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.recs[s.ID]; ok {
		return false, nil
	}
	r.recs[s.ID] = s
	return true, nil
}

// Has reports whether id is stored.
func (r *Replica) Has(id string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.recs[id]
	return ok
}

// Len returns the number of records.
func (r *Replica) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.recs)
}

// IDs returns the sorted ids of every record.
func (r *Replica) IDs() []string { return r.ids(nil) }

func inDomains(domains []string, d string) bool {
	return len(domains) == 0 || slices.Contains(domains, d)
}

func (r *Replica) ids(domains []string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.recs))
	for id, s := range r.recs {
		if inDomains(domains, s.Receipt.Domain) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// missing returns the records in domains whose ids are not in have.
func (r *Replica) missing(domains, have []string) []receipt.Signed {
	set := make(map[string]bool, len(have))
	for _, id := range have {
		set[id] = true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []receipt.Signed
	for id, s := range r.recs {
		if !set[id] && inDomains(domains, s.Receipt.Domain) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b receipt.Signed) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

func (r *Replica) addAll(from peer.ID, recs []receipt.Signed) (int, error) {
	n := 0
	for _, s := range recs {
		if r.Admit != nil && r.Admit(from, s) != nil {
			continue
		}
		added, err := r.Add(s)
		if err != nil {
			return n, fmt.Errorf("memreplica: record %s: %w", receipt.ShortID(s.ID), err)
		}
		if added {
			n++
		}
	}
	return n, nil
}

// SyncRequest returns the initiator's summary for domains (always in full:
// this replica remembers nothing of its peers).
func (r *Replica) SyncRequest(_ peer.ID, domains []string) ([]byte, error) {
	return json.Marshal(summary{Domains: domains, IDs: r.ids(domains)})
}

// HandleSyncRequest returns the records the initiator lacks and the
// responder's summary.
func (r *Replica) HandleSyncRequest(_ peer.ID, req []byte) ([]byte, error) {
	var s summary
	if err := json.Unmarshal(req, &s); err != nil {
		return nil, fmt.Errorf("memreplica: sync request: %w", err)
	}
	return json.Marshal(response{Domains: s.Domains, Records: r.missing(s.Domains, s.IDs), IDs: r.ids(s.Domains)})
}

// HandleSyncResponse merges the responder's records and returns what the
// responder lacks.
func (r *Replica) HandleSyncResponse(from peer.ID, _, resp []byte) ([]byte, int, error) {
	var rs response
	if err := json.Unmarshal(resp, &rs); err != nil {
		return nil, 0, fmt.Errorf("memreplica: sync response: %w", err)
	}
	added, err := r.addAll(from, rs.Records)
	if err != nil {
		return nil, added, err
	}
	b, err := json.Marshal(push{Records: r.missing(rs.Domains, rs.IDs)})
	return b, added, err
}

// HandleSyncPush merges the initiator's push.
func (r *Replica) HandleSyncPush(from peer.ID, b []byte) (int, error) {
	var p push
	if err := json.Unmarshal(b, &p); err != nil {
		return 0, fmt.Errorf("memreplica: sync push: %w", err)
	}
	return r.addAll(from, p.Records)
}
