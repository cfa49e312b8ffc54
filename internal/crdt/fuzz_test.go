package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// The fuzz targets of this file play a hostile peer: each decodes one wire
// message (or one record) as the node does and hands it to a replica.
// Whatever the input, nothing panics, the replica holds only records that
// verify, its indexes agree, what it sends back decodes at the peer, and an
// honest exchange afterwards still converges.

// fuzzFixture is a pool of prepared (verified) records: four origins over
// two domains, one of them equivocating, and two replicas' worth of them.
type fuzzFixture struct {
	all      []receipt.Signed
	prepared map[string]*record
	a, b     []receipt.Signed // the records of replicas A and B
}

var (
	fixtureOnce sync.Once
	fixture     *fuzzFixture
)

func newFixture(tb testing.TB) *fuzzFixture {
	fixtureOnce.Do(func() {
		rng := rand.New(rand.NewPCG(3, 4))
		fx := &fuzzFixture{all: pool(tb, rng, 4, 5, []string{"ml", "search"}, true), prepared: map[string]*record{}}
		for _, s := range fx.all {
			rec, err := New().prepare(s)
			if err != nil {
				tb.Fatal(err)
			}
			fx.prepared[s.ID] = rec
		}
		for i, s := range fx.all {
			if i%3 != 0 {
				fx.a = append(fx.a, s)
			}
			if i%2 == 0 {
				fx.b = append(fx.b, s)
			}
		}
		fixture = fx
	})
	return fixture
}

// replica builds a replica holding recs without re-verifying them (they
// were verified once, and records are immutable).
func (fx *fuzzFixture) replica(recs []receipt.Signed) *Replica {
	r := New()
	for _, s := range recs {
		r.insertLocked(fx.prepared[s.ID])
	}
	return r
}

// checkReplica verifies r's invariants: every record it holds verifies and
// passes the structural checks (records of the fixture are known to), each
// is indexed by id, domain and origin exactly once, and its summary and
// request validate and decode.
func (fx *fuzzFixture) checkReplica(t *testing.T, r *Replica) {
	t.Helper()
	r.mu.RLock()
	inDomains, inOrigins := 0, 0
	for d, m := range r.domains {
		for id, rec := range m {
			inDomains++
			if rec.s.ID != id || rec.s.Receipt.Domain != d || r.byID[id] != rec {
				t.Fatalf("record %s misfiled (domain %q)", id, d)
			}
			if fx.prepared[id] != rec {
				if err := rec.s.Verify(); err != nil {
					t.Fatalf("replica holds a record that does not verify: %v", err)
				}
				if err := checkFields(rec.s.Receipt); err != nil {
					t.Fatalf("replica holds an invalid record: %v", err)
				}
				if b, err := json.Marshal(rec.s); err != nil || len(b) != rec.size {
					t.Fatalf("record %s: size %d, marshals to %d bytes (%v)", id, rec.size, len(b), err)
				} else if _, err := decodeRecord(b); err != nil {
					t.Fatalf("a held record does not reload from its own encoding: %v", err)
				}
			}
		}
	}
	for peerID, o := range r.origins {
		for seq, recs := range o.bySeq {
			for i, rec := range recs {
				inOrigins++
				if rec.s.Receipt.PeerID != peerID || rec.s.Receipt.RunNumber != seq || r.byID[rec.s.ID] != rec || (i > 0 && recs[i-1].s.ID >= rec.s.ID) {
					t.Fatalf("origin index of %s is inconsistent", rec.s.ID)
				}
			}
		}
	}
	n := len(r.byID)
	r.mu.RUnlock()
	if inDomains != n || inOrigins != n {
		t.Fatalf("%d records by id, %d by domain, %d by origin", n, inDomains, inOrigins)
	}
	if err := r.Summary().Validate(); err != nil {
		t.Fatalf("the replica's own summary is invalid: %v", err)
	}
	b, err := r.Request("b", nil).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSyncRequest(b); err != nil {
		t.Fatalf("the replica's own request does not decode: %v", err)
	}
}

// converges runs honest exchanges between x (known to y as xID) and y
// (known to x as yID) until they hold the same set. Equivocating origins
// need two, and a base a hostile message left behind costs at most one
// more (the exchange that names it falls back), so four is a generous
// bound.
func converges(t *testing.T, x *Replica, xID string, y *Replica, yID string) {
	t.Helper()
	for range 4 {
		if _, _, err := Sync(x, xID, y, yID); err != nil {
			t.Fatalf("honest exchange after the hostile message: %v", err)
		}
		if x.StateHash("") == y.StateHash("") {
			return
		}
	}
	t.Fatalf("replicas did not converge in four honest exchanges after the hostile message (%d vs %d records)", x.Len(""), y.Len(""))
}

// checkMemory verifies r's peer memory: every base is stored under its own
// hash, per peer at most basesPerPeer with distinct hashes, and the byte
// accounting adds up within the bounds.
func checkMemory(t *testing.T, r *Replica) {
	t.Helper()
	m := r.peers
	m.mu.Lock()
	defer m.mu.Unlock()
	total := 0
	if m.lru.Len() != len(m.byID) || m.lru.Len() > m.maxPeers {
		t.Fatalf("peer memory: %d in the LRU, %d by id, limit %d", m.lru.Len(), len(m.byID), m.maxPeers)
	}
	for el := m.lru.Front(); el != nil; el = el.Next() {
		ps := el.Value.(*peerState)
		if len(ps.bases) > basesPerPeer {
			t.Fatalf("peer %s: %d bases", ps.id, len(ps.bases))
		}
		sum, seen := 0, map[string]bool{}
		for _, b := range ps.pending {
			if b.s.Hash() != b.hash || summaryBytes(b.s) != b.bytes {
				t.Fatalf("peer %s: pending request %s misfiled", ps.id, b.hash)
			}
			sum += b.bytes
		}
		if len(ps.pending) > pendingPerPeer {
			t.Fatalf("peer %s: %d pending requests", ps.id, len(ps.pending))
		}
		for _, b := range ps.bases {
			if seen[b.hash] || b.s.Hash() != b.hash || summaryBytes(b.s) != b.bytes {
				t.Fatalf("peer %s: base %s misfiled", ps.id, b.hash)
			}
			seen[b.hash] = true
			sum += b.bytes
		}
		if sum != ps.bytes || (ps.legacy && len(ps.bases) > 0) {
			t.Fatalf("peer %s: %d bytes counted, %d held, legacy %v with %d bases", ps.id, ps.bytes, sum, ps.legacy, len(ps.bases))
		}
		total += sum
	}
	if total != m.bytes {
		t.Fatalf("peer memory counts %d bytes, holds %d", m.bytes, total)
	}
}

func mustMarshal(tb testing.TB, m interface{ Marshal() ([]byte, error) }) []byte {
	tb.Helper()
	b, err := m.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// holdsOnly fails unless every record of recs is held by r.
func holdsOnly(t *testing.T, r *Replica, recs []receipt.Signed) {
	t.Helper()
	for _, s := range recs {
		if !r.Has(s.ID) {
			t.Fatalf("sent record %s that the replica does not hold", receipt.ShortID(s.ID))
		}
	}
}

// The fuzz targets that exercise the delta path run a hostile message
// between two replicas that already exchanged honestly, so that each holds
// bases of the other: "alice" (the fixture's A) and "bob" (B).
const (
	alice = "alice"
	bob   = "bob"
)

// remembering returns fresh replicas A and B after one honest exchange
// (A initiating), so each remembers the other's summaries.
func (fx *fuzzFixture) remembering(tb testing.TB) (a, b *Replica) {
	a, b = fx.replica(fx.a), fx.replica(fx.b)
	if _, _, err := Sync(a, alice, b, bob); err != nil {
		tb.Fatal(err)
	}
	// A record neither held (i%3 == 0, i%2 == 1) reaches A after the
	// exchange: A's next request is a delta naming its origin.
	a.insertLocked(fx.prepared[fx.all[3].ID])
	return a, b
}

// FuzzSyncRequest: a request from a hostile initiator decodes or fails;
// one that decodes re-encodes stably, and the responder (which remembers
// bases of that peer) answers it, or refuses a delta that does not fit its
// base with ErrBadDelta, with records it holds in a response that decodes
// at the peer, leaving its own set untouched and its peer memory
// consistent; honest exchanges with that peer still converge.
func FuzzSyncRequest(f *testing.F) {
	fx := newFixture(f)
	a, _ := fx.remembering(f)
	f.Add(mustMarshal(f, a.Request(bob, nil)))
	f.Add(mustMarshal(f, a.Request(bob, []string{"ml"})))
	f.Add(mustMarshal(f, a.Request("", nil)))
	f.Add(mustMarshal(f, New().Request(bob, nil)))
	f.Add(mustMarshal(f, fx.replica(fx.all).Request(bob, []string{"search", "ml"})))
	delta := a.Request(bob, nil)
	key := OriginKey(testKey(0).ID())
	dig := strings.Repeat("A", 22)
	for _, s := range []string{
		`{"summary":{"o":{}}}`, `{}`, `null`, `{"domains":[""]}`, `{"domains":["ml\u0000"]}`,
		`{"summary":{"o":{"` + key + `":"1-5/` + dig + `"}}}`,
		`{"summary":{"o":{"` + key + `":"1-9007199254740992/` + dig + `"}}}`,
		`{"summary":{"o":{"` + key + `":"3,1/` + dig + `"}}}`,
		`{"summary":{"o":{"` + key + `":{"r":"1-5","h":"` + dig + `","x":{"2":["a","b"]}}}}}`,
		`{"summary":{"o":{"` + key + `":{"r":"1-5","h":"` + dig + `","x":{"9":["a","b"]}}}}}`,
		`{"summary":{"o":{"` + key + `":{"r":"","h":"","x":{}}}}}`,
		`{"summary":{"o":{"` + key + `":"/"}}}`, `{"summary":{"o":{"":"1/` + dig + `"}}}`,
		// Deltas: against the real base, an unknown one, malformed hashes,
		// removing an origin the base lacks, a base without a hash.
		`{"base":"` + delta.Base + `","hash":"` + delta.Hash + `","summary":{"o":{}}}`,
		`{"base":"` + delta.Base + `","hash":"` + dig + `","summary":{"o":{"` + key + `":""}}}`,
		`{"base":"` + delta.Base + `","hash":"` + dig + `","summary":{"o":{"nosuchorigin":""}}}`,
		`{"base":"` + dig + `","hash":"` + dig + `","summary":{"o":{}}}`,
		`{"base":"` + delta.Base + `","summary":{"o":{}}}`,
		`{"base":"x","hash":"` + dig + `","summary":{"o":{}}}`,
		`{"base":"` + delta.Base + `","hash":"` + dig + `=","summary":{"o":{}}}`,
		`{"hash":"` + dig + `","summary":{"o":{"` + key + `":"1-5/` + dig + `"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := UnmarshalSyncRequest(data)
		if err != nil {
			return
		}
		enc := mustMarshal(t, req)
		req2, err := UnmarshalSyncRequest(enc)
		if err != nil {
			t.Fatalf("a decoded request does not decode after re-encoding: %v\n%s", err, enc)
		}
		if enc2 := mustMarshal(t, req2); !bytes.Equal(enc, enc2) {
			t.Fatalf("request encoding is not stable:\n%s\n%s", enc, enc2)
		}
		a, b := fx.remembering(t)
		before := b.StateHash("")
		resp, err := b.Respond(alice, req)
		if errors.Is(err, ErrBadDelta) {
			if req.Base == "" {
				t.Fatalf("a full request refused as a bad delta: %v", err)
			}
		} else if err != nil {
			t.Fatalf("Respond refused a request that decoded: %v", err)
		} else {
			holdsOnly(t, b, resp.Records)
			if resp.Ack != "" && resp.Ack != req.Hash || resp.NoBase && (resp.Ack != "" || len(resp.Records) > 0 || req.Base == "") {
				t.Fatalf("response ack %q nobase %v records %d to a request with base %q hash %q", resp.Ack, resp.NoBase, len(resp.Records), req.Base, req.Hash)
			}
			wire, err := resp.Marshal()
			if err != nil {
				t.Fatalf("response does not encode: %v", err)
			}
			if _, err := UnmarshalSyncResponse(wire); err != nil {
				t.Fatalf("our response does not decode at the peer: %v", err)
			}
		}
		if b.StateHash("") != before {
			t.Fatal("answering a request changed the replica")
		}
		fx.checkReplica(t, b)
		checkMemory(t, b)
		converges(t, a, alice, b, bob)
		converges(t, b, bob, a, alice)
	})
}

// FuzzSyncResponse: a response from a hostile responder decodes or fails;
// the initiator, whose request was a delta against a remembered base,
// merges one that decodes (or refuses one whose delta does not fit, with
// ErrBadDelta), keeps only records that verify, pushes only records it
// holds in a push that decodes, keeps its peer memory consistent, and
// still converges with the honest peer afterwards, whatever the hostile
// response made it remember.
func FuzzSyncResponse(f *testing.F) {
	fx := newFixture(f)
	a, b := fx.remembering(f)
	req := a.Request(bob, nil)
	if req.Base == "" {
		f.Fatal("the fixture's second request is not a delta")
	}
	f.Add(mustMarshal(f, must(b.Respond(alice, req))))
	a, b = fx.remembering(f)
	f.Add(mustMarshal(f, must(b.Respond(alice, a.Request(bob, []string{"ml"})))))
	f.Add(mustMarshal(f, must(fx.replica(fx.all).Respond(alice, New().Request(bob, nil)))))
	f.Add(mustMarshal(f, must(New().Respond(alice, a.Request(bob, nil)))))
	f.Add(mustMarshal(f, must(b.Respond("", a.Request(bob, nil)))))
	tampered := fx.all[0]
	tampered.Receipt.Metric.Value += 1
	f.Add(mustMarshal(f, SyncResponse{Records: []receipt.Signed{tampered, fx.all[1], fx.all[1]}}))
	f.Add(mustMarshal(f, SyncResponse{Records: fx.all[:3], More: true, Ack: req.Hash}))
	key := OriginKey(testKey(1).ID())
	dig := strings.Repeat("A", 22)
	for _, s := range []string{`{}`, `null`, `{"records":null,"summary":{"o":null}}`, `{"records":[{}]}`, `{"records":[null,{"id":"x"}]}`,
		`{"summary":{"o":{"` + key + `":""}}}`, `{"summary":{"o":{"` + key + `":"1-2/` + dig + `"}}}`,
		`{"summary":{"o":{}},"ack":"` + req.Hash + `"}`,
		`{"summary":{"o":{"` + key + `":""}},"ack":"` + req.Hash + `"}`,
		`{"summary":{"o":{"nosuchorigin":""}},"ack":"` + req.Hash + `"}`,
		`{"summary":{"o":{}},"ack":"` + dig + `"}`,
		`{"summary":{"o":{}},"ack":"` + req.Hash + `","nobase":true}`,
		`{"summary":{"o":{"` + key + `":"1-2/` + dig + `"}},"nobase":true}`,
		`{"summary":{"o":{}},"nobase":true}`,
		`{"summary":{"o":{}},"ack":"short"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := UnmarshalSyncResponse(data)
		if err != nil {
			return
		}
		a, b := fx.remembering(t)
		req := a.Request(bob, nil)
		held := a.StateHash("")
		push, _, _, err := a.HandleResponse(bob, req, resp)
		if errors.Is(err, ErrBadDelta) {
			if a.StateHash("") != held {
				t.Fatal("a response refused as a bad delta changed the replica")
			}
		} else if err != nil {
			t.Fatalf("HandleResponse failed on a response that decoded: %v", err)
		} else {
			holdsOnly(t, a, push.Records)
			wire, err := push.Marshal()
			if err != nil {
				t.Fatalf("push does not encode: %v", err)
			}
			if _, err := UnmarshalSyncPush(wire); err != nil {
				t.Fatalf("our push does not decode at the peer: %v", err)
			}
		}
		fx.checkReplica(t, a)
		checkMemory(t, a)
		converges(t, a, alice, b, bob)
		converges(t, b, bob, a, alice)
	})
}

// FuzzSyncPush: a push from a hostile initiator decodes or fails; the
// responder merges one that decodes without error, keeps only records
// that verify, and still converges with the honest peer afterwards.
func FuzzSyncPush(f *testing.F) {
	fx := newFixture(f)
	a, b := fx.remembering(f)
	req := a.Request(bob, nil)
	push, _, _, err := a.HandleResponse(bob, req, must(b.Respond(alice, req)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mustMarshal(f, push))
	f.Add(mustMarshal(f, SyncPush{Records: fx.all}))
	other := fx.all[2]
	other.Receipt.RunNumber = 0
	f.Add(mustMarshal(f, SyncPush{Records: []receipt.Signed{other}, More: true}))
	for _, s := range []string{`{}`, `null`, `{"records":[{}]}`, `{"records":{}}`, `{"records":[{"receipt":{"config":{"x":1e999}}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		push, err := UnmarshalSyncPush(data)
		if err != nil {
			return
		}
		a, b := fx.remembering(t)
		if _, err := b.Respond(alice, a.Request(bob, nil)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.HandlePush(alice, push); err != nil {
			t.Fatalf("HandlePush failed: %v", err)
		}
		fx.checkReplica(t, b)
		checkMemory(t, b)
		converges(t, a, alice, b, bob)
		converges(t, b, bob, a, alice)
	})
}

// FuzzReplicaAdd: a receipt decoded from a peer's JSON is added or
// refused; an added one verifies, is stored exactly as it reloads from
// disk (decodeRecord of its own encoding), and the replica's invariants
// hold.
func FuzzReplicaAdd(f *testing.F) {
	fx := newFixture(f)
	for _, s := range fx.all[:4] {
		f.Add(mustJSON(f, s))
	}
	bad := fx.all[5]
	bad.Receipt.Domain = ""
	f.Add(mustJSON(f, bad))
	f.Add([]byte(`{"id":"` + fx.all[0].ID + `"}`))
	f.Add([]byte(`{"receipt":{"runNumber":9007199254740993,"seed":-9007199254740993}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s receipt.Signed
		if json.Unmarshal(data, &s) != nil {
			return
		}
		r := fx.replica(fx.a)
		had := r.Has(s.ID)
		added, err := r.Add(s)
		if added && (had || err != nil) {
			t.Fatalf("added %v with err %v (held before: %v)", added, err, had)
		}
		if added {
			got, ok := r.Get(s.ID)
			if !ok || got.ID != s.ID {
				t.Fatalf("added record %s is not held", s.ID)
			}
		}
		fx.checkReplica(t, r)
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
