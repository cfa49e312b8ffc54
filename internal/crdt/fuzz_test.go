package crdt

import (
	"bytes"
	"encoding/json"
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
	b, err := r.Request().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSyncRequest(b); err != nil {
		t.Fatalf("the replica's own request does not decode: %v", err)
	}
}

// converges runs honest exchanges between x and y until they hold the same
// set; equivocating origins need two, so three is a generous bound.
func converges(t *testing.T, x, y *Replica) {
	t.Helper()
	for range 3 {
		if _, _, err := Sync(x, y); err != nil {
			t.Fatalf("honest exchange after the hostile message: %v", err)
		}
		if x.StateHash("") == y.StateHash("") {
			return
		}
	}
	t.Fatalf("replicas did not converge in three honest exchanges after the hostile message (%d vs %d records)", x.Len(""), y.Len(""))
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

// FuzzSyncRequest: a request from a hostile initiator decodes or fails;
// one that decodes re-encodes stably, and the responder answers it without
// error with records it holds in a response that decodes at the peer,
// leaving its own set untouched.
func FuzzSyncRequest(f *testing.F) {
	fx := newFixture(f)
	a := fx.replica(fx.a)
	f.Add(mustMarshal(f, a.Request()))
	f.Add(mustMarshal(f, a.Request("ml")))
	f.Add(mustMarshal(f, New().Request()))
	f.Add(mustMarshal(f, fx.replica(fx.all).Request("search", "ml")))
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
		b := fx.replica(fx.b)
		before := b.StateHash("")
		resp, err := b.Respond(req)
		if err != nil {
			t.Fatalf("Respond refused a request that decoded: %v", err)
		}
		holdsOnly(t, b, resp.Records)
		wire, err := resp.Marshal()
		if err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
		if _, err := UnmarshalSyncResponse(wire); err != nil {
			t.Fatalf("our response does not decode at the peer: %v", err)
		}
		if b.StateHash("") != before {
			t.Fatal("answering a request changed the replica")
		}
		fx.checkReplica(t, b)
	})
}

// FuzzSyncResponse: a response from a hostile responder decodes or fails;
// the initiator merges one that decodes without error, keeps only records
// that verify, pushes only records it holds in a push that decodes, and
// still converges with an honest peer afterwards.
func FuzzSyncResponse(f *testing.F) {
	fx := newFixture(f)
	a, b := fx.replica(fx.a), fx.replica(fx.b)
	f.Add(mustMarshal(f, must(b.Respond(a.Request()))))
	f.Add(mustMarshal(f, must(b.Respond(a.Request("ml")))))
	f.Add(mustMarshal(f, must(fx.replica(fx.all).Respond(New().Request()))))
	f.Add(mustMarshal(f, must(New().Respond(a.Request()))))
	tampered := fx.all[0]
	tampered.Receipt.Metric.Value += 1
	f.Add(mustMarshal(f, SyncResponse{Records: []receipt.Signed{tampered, fx.all[1], fx.all[1]}}))
	f.Add(mustMarshal(f, SyncResponse{Records: fx.all[:3], More: true}))
	key := OriginKey(testKey(1).ID())
	for _, s := range []string{`{}`, `null`, `{"records":null,"summary":{"o":null}}`, `{"records":[{}]}`, `{"records":[null,{"id":"x"}]}`,
		`{"summary":{"o":{"` + key + `":""}}}`, `{"summary":{"o":{"` + key + `":"1-2/` + strings.Repeat("A", 22) + `"}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := UnmarshalSyncResponse(data)
		if err != nil {
			return
		}
		a := fx.replica(fx.a)
		req := a.Request()
		push, _, _, err := a.HandleResponse(req, resp)
		if err != nil {
			t.Fatalf("HandleResponse failed on a response that decoded: %v", err)
		}
		holdsOnly(t, a, push.Records)
		wire, err := push.Marshal()
		if err != nil {
			t.Fatalf("push does not encode: %v", err)
		}
		if _, err := UnmarshalSyncPush(wire); err != nil {
			t.Fatalf("our push does not decode at the peer: %v", err)
		}
		fx.checkReplica(t, a)
		converges(t, a, fx.replica(fx.b))
	})
}

// FuzzSyncPush: a push from a hostile initiator decodes or fails; the
// responder merges one that decodes without error, keeps only records
// that verify, and still converges with an honest peer afterwards.
func FuzzSyncPush(f *testing.F) {
	fx := newFixture(f)
	a, b := fx.replica(fx.a), fx.replica(fx.b)
	req := a.Request()
	push, _, _, err := a.HandleResponse(req, must(b.Respond(req)))
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
		b := fx.replica(fx.b)
		if _, _, err := b.HandlePush(push); err != nil {
			t.Fatalf("HandlePush failed: %v", err)
		}
		fx.checkReplica(t, b)
		converges(t, fx.replica(fx.a), b)
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
