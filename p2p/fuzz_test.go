package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p/memreplica"
)

// The fuzz targets of this file drive the real topic validators (research
// and papers) with one message each, as pubsub would: the message id from
// receiptMsgID, the sending peer as publisher. They live in package p2p
// (not p2p_test, where p2ptest's helpers are) because receiptMsgID and the
// validator are unexported; p2ptest imports p2p, so its helpers are
// mirrored here in a few lines.

const fuzzDomain = "search"

// fuzzWorld is a fixed cast: two nodes (0 vouches for the agent), an agent
// key, and a clock at which the seeds are fresh.
type fuzzWorld struct {
	now    time.Time
	keys   [2]crypto.PrivKey
	ids    [2]peer.ID
	agent  *identity.Key
	cert   AgentCert // node 0 vouches for agent
	review *identity.Key
}

func fuzzKey(tb testing.TB, name string) crypto.PrivKey {
	seed := sha256.Sum256([]byte("p2p fuzz node " + name))
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newFuzzWorld(tb testing.TB) *fuzzWorld {
	w := &fuzzWorld{now: time.UnixMilli(1767225600000)}
	for i, name := range []string{"a", "b"} {
		w.keys[i] = fuzzKey(tb, name)
		id, err := peer.IDFromPrivateKey(w.keys[i])
		if err != nil {
			tb.Fatal(err)
		}
		w.ids[i] = id
	}
	seed := sha256.Sum256([]byte("p2p fuzz agent"))
	w.agent = identity.FromSeed(seed[:])
	w.cert = NewAgentCert(w.keys[0], w.agent.Public())
	rk, err := admission.NodeIdentity(w.keys[0])
	if err != nil {
		tb.Fatal(err)
	}
	w.review = rk
	return w
}

// validator returns a validator like the one of a node serving fuzzDomain
// with the world's clock and no effective rate limit.
func (w *fuzzWorld) validator(r Replica) *validator {
	cfg := &Config{
		MaxMessageBytes: DefaultMaxMessageBytes,
		ClockSkew:       DefaultClockSkew,
		MaxAge:          DefaultMaxAge,
		RateLimit:       RateLimit{Rate: 1e9, Burst: 1 << 30},
		Now:             func() time.Time { return w.now },
	}
	cfg.Admission = admission.New(admission.Config{ClockSkew: cfg.ClockSkew, MaxAge: cfg.MaxAge, Domains: []string{fuzzDomain}, Now: cfg.Now})
	return &validator{self: peer.ID("self"), cfg: cfg, replica: r, limiter: newRateLimiter(cfg.RateLimit),
		admission: newRateLimiter(cfg.RateLimit), publish: newRateLimiter(cfg.RateLimit), stats: newCounters(), adm: cfg.Admission}
}

// receipt signs the agent's run number run, timestamped at now+offset.
func (w *fuzzWorld) receipt(tb testing.TB, k *identity.Key, run int, offset time.Duration, hyp string) receipt.Signed {
	inspired := strings.Repeat("ab", 32)
	s, err := receipt.Sign(receipt.Receipt{
		Project: "cranfield", RunNumber: run, Timestamp: w.now.Add(offset).UnixMilli(),
		Hypothesis: hyp, Config: map[string]any{"k1": 1.2, "b": 0.75, "stem": "porter", "rm3": true, "fbDocs": 10.0},
		Result:     receipt.Result{DurationSec: 1.5, Values: map[string]float64{"ndcg10": 0.41}, LossCurve: [][2]float64{{1, 0.5}}},
		InspiredBy: &inspired, Parents: []string{inspired},
		Domain: fuzzDomain, Campaign: "c1", Agent: "agent-1", Seed: int64(run),
		Metric:   receipt.MetricValue{Name: "ndcg@10", Direction: "maximize", Value: 0.41, TestValue: 0.39},
		Proposer: "builtin", Artifacts: map[string]string{"log": "c1/agent-1/run-1.log"},
	}, k)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustJSON(tb testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func gossip(data []byte, from peer.ID, topic string) *pubsub.Message {
	pm := &pb.Message{Data: data, From: []byte(from), Topic: &topic}
	msg := &pubsub.Message{Message: pm, ReceivedFrom: from}
	if topic == TopicPapers {
		msg.ID = hashMsgID(pm)
	} else {
		msg.ID = receiptMsgID(pm)
	}
	return msg
}

// FuzzResearchMessage: any message on a research topic is accepted or
// rejected by the validator, never a panic. Its message id is a receipt id
// or "x"+sha256 of the data. An accepted message decodes, its receipt
// verifies, its cert binds the signer to the publisher, its message id is
// the decoded receipt id, and re-marshalling it gives an envelope with the
// same receipt id and message id that a fresh validator accepts too.
func FuzzResearchMessage(f *testing.F) {
	w := newFuzzWorld(f)
	good := w.receipt(f, w.agent, 1, -time.Minute, "raise k1 to 1.2 and add RM3 feedback (exploit)")
	env := Envelope{Receipt: good, Cert: w.cert}
	canonical := mustJSON(f, env)
	f.Add(canonical, false)
	f.Add(canonical, true) // published by the node that did not vouch
	// The same envelope with the cert first: no fast-path id.
	f.Add([]byte(`{"cert":`+string(mustJSON(f, w.cert))+`,"receipt":`+string(mustJSON(f, good))+`}`), false)
	// A receipt that carries its vouch inside.
	vouched := good
	vouched.Vouch = w.cert.Vouch()
	f.Add(mustJSON(f, Envelope{Receipt: vouched, Cert: w.cert}), false)
	// Duplicate id keys: the fast path reads the first, a decoder the last.
	other := strings.Repeat("0", 64)
	f.Add([]byte(`{"receipt":{"id":"`+other+`",`+strings.TrimPrefix(string(mustJSON(f, good)), "{")+`,"cert":`+string(mustJSON(f, w.cert))+`}`), false)
	f.Add([]byte(strings.Replace(string(canonical), `"id":"`, `"ID":"`+other+`","id":"`, 1)), false)
	// Stale, from the future, tampered, other domain, unvouched signer.
	f.Add(mustJSON(f, Envelope{Receipt: w.receipt(f, w.agent, 2, -time.Hour, "old"), Cert: w.cert}), false)
	f.Add(mustJSON(f, Envelope{Receipt: w.receipt(f, w.agent, 3, time.Hour, "future"), Cert: w.cert}), false)
	tampered := good
	tampered.Receipt.Metric.Value = 0.99
	f.Add(mustJSON(f, Envelope{Receipt: tampered, Cert: w.cert}), false)
	stranger := identity.FromSeed(bytes.Repeat([]byte{7}, 32))
	f.Add(mustJSON(f, Envelope{Receipt: w.receipt(f, stranger, 1, 0, "stranger"), Cert: w.cert}), false)
	f.Add(append(append([]byte{}, canonical...), ` {"x":1}`...), false) // trailing data
	f.Add(append(append([]byte{}, canonical...), `}`...), false)        // a stray closing brace
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"receipt":{"id":"` + other + `"}}`, `{"receipt":{"id":"` + other + `"`, `{"receipt":null,"cert":null}`,
		`{"receipt":{"id":"` + other + `","receipt":{"config":{"a":[1,{"b":[null,1e308,-0]}]},"timestamp":1e300}}}`} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, fromB bool) {
		from := w.ids[0]
		if fromB {
			from = w.ids[1]
		}
		msg := gossip(data, from, TopicForDomain(fuzzDomain))
		if !isReceiptID(msg.ID) && msg.ID != hashMsgID(msg.Message) {
			t.Fatalf("message id %q is neither a receipt id nor the data's hash", msg.ID)
		}
		id := msg.ID
		res := w.validator(memreplica.New()).research(fuzzDomain)(context.Background(), from, msg)
		if res != pubsub.ValidationAccept {
			return
		}
		env, err := UnmarshalEnvelope(data)
		if err != nil {
			t.Fatalf("accepted a message that does not decode: %v", err)
		}
		if env.Receipt.ID != id {
			t.Fatalf("accepted a message whose id %s is not its receipt's %s", id, env.Receipt.ID)
		}
		if d, ok := msg.ValidatorData.(*validated); !ok || d.env.Receipt.ID != id || d.rec.ID() != id {
			t.Fatalf("validator data %#v", msg.ValidatorData)
		}
		if err := env.Receipt.Verify(); err != nil {
			t.Fatalf("accepted a receipt that does not verify: %v", err)
		}
		if err := env.Cert.Verify(from, env.Receipt.Receipt.PublicKey); err != nil {
			t.Fatalf("accepted a receipt its publisher does not vouch for: %v", err)
		}
		again, err := env.Marshal()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		env2, err := UnmarshalEnvelope(again)
		if err != nil || env2.Receipt.ID != id {
			t.Fatalf("re-decoded envelope: id %q, err %v (want %s)", env2.Receipt.ID, err, id)
		}
		msg2 := gossip(again, from, TopicForDomain(fuzzDomain))
		if msg2.ID != id {
			t.Fatalf("re-marshalled envelope has message id %s, want %s", msg2.ID, id)
		}
		if res := w.validator(memreplica.New()).research(fuzzDomain)(context.Background(), from, msg2); res != pubsub.ValidationAccept {
			t.Fatalf("re-marshalled envelope rejected (%v): %s", res, again)
		}
	})
}

// FuzzPaperMessage: any message on the papers topic is accepted or
// rejected, never a panic. An accepted one decodes as the type it names
// with what admission requires of it (a verified paper vouched for by its
// publisher, or a verified review signed by the node it names with a score
// of 1-10), can be stored (PostgreSQL JSONB and TEXT hold no NUL), and
// survives a re-marshal: same ids, accepted again.
func FuzzPaperMessage(f *testing.F) {
	w := newFuzzWorld(f)
	signPaper := func(title string, offset time.Duration) *paper.Signed {
		sp, err := paper.Sign(paper.Paper{Domain: fuzzDomain, Project: "cranfield", Campaign: "c1", Agent: "agent-1", Number: 1,
			Timestamp: w.now.Add(offset).UnixMilli(), Title: title, Abstract: "RM3 beats the floor by 3 sigma.", Markdown: "# " + title + "\n",
			Writer: "builtin", Receipts: []string{strings.Repeat("ab", 32)}, Lineage: []string{strings.Repeat("ab", 32)},
			Claim: paper.Claim{Receipt: strings.Repeat("ab", 32), Metric: "ndcg@10", Direction: "maximize", Value: 0.41, TestValue: 0.39,
				FloorMean: 0.38, FloorSD: 0.01, FloorN: 3, Effect: 0.03, EffectCI: 0.02, Z: 3, K: 2}}, w.agent)
		if err != nil {
			f.Fatal(err)
		}
		return &sp
	}
	signReview := func(k *identity.Key, node peer.ID, score int, reason string) *paper.SignedReview {
		sr, err := paper.SignReview(paper.Review{PaperID: strings.Repeat("cd", 32), Node: node.String(), Timestamp: w.now.UnixMilli(), Score: score,
			Rubric:       []paper.Criterion{{Name: "reproduced", Points: 4, Max: 4, Note: "within tolerance"}},
			Reasons:      []string{reason},
			Reproduction: paper.Reproduction{Receipt: strings.Repeat("ab", 32), Seed: 99, Ran: true, Claimed: 0.41, Observed: 0.409, Tolerance: 0.02}}, k)
		if err != nil {
			f.Fatal(err)
		}
		return &sr
	}
	add := func(m PaperMessage, fromB bool) { f.Add(mustJSON(f, m), fromB) }
	cert := w.cert
	sp := signPaper("RM3 with 10 feedback docs", -time.Minute)
	add(PaperMessage{Type: PaperTypePaper, Paper: sp, Cert: &cert}, false)
	add(PaperMessage{Type: PaperTypePaper, Paper: sp, Cert: &cert}, true)
	add(PaperMessage{Type: PaperTypeBreakthrough, Paper: sp, Cert: &cert, Score: 8.5, At: w.now.UnixMilli()}, false)
	add(PaperMessage{Type: PaperTypeBreakthrough, Paper: sp, Cert: &cert, Score: 8.5}, false) // no time
	add(PaperMessage{Type: PaperTypePaper, Paper: sp}, false)                                 // unvouched
	add(PaperMessage{Type: PaperTypeReview, Review: signReview(w.review, w.ids[0], 7, "reproduced")}, false)
	add(PaperMessage{Type: PaperTypeReview, Review: signReview(w.review, w.ids[0], 11, "out of range")}, false)
	add(PaperMessage{Type: PaperTypeReview, Review: signReview(w.agent, w.ids[0], 10, "forged")}, false)
	// Signed, vouched records holding a NUL, which PostgreSQL cannot store.
	add(PaperMessage{Type: PaperTypePaper, Paper: signPaper("nul \x00 in the title", 0), Cert: &cert}, false)
	add(PaperMessage{Type: PaperTypeReview, Review: signReview(w.review, w.ids[0], 7, "nul \x00 in a reason")}, false)
	for _, s := range []string{``, `{}`, `null`, `{"type":"poem"}`, `{"type":"paper"}`, `{"type":"review","review":null}`,
		`{"type":"paper","paper":{"id":"x","paper":{"number":1e400}}}`, `{"type":"review","review":{},"cert":{}}`} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, fromB bool) {
		from := w.ids[0]
		if fromB {
			from = w.ids[1]
		}
		msg := gossip(data, from, TopicPapers)
		if w.validator(memreplica.New()).papers()(context.Background(), from, msg) != pubsub.ValidationAccept {
			return
		}
		m, err := UnmarshalPaperMessage(data)
		if err != nil {
			t.Fatalf("accepted a message that does not decode: %v", err)
		}
		if d, ok := msg.ValidatorData.(*PaperMessage); !ok || d.Type != m.Type {
			t.Fatalf("validator data %#v", msg.ValidatorData)
		}
		var stored []byte
		switch m.Type {
		case PaperTypePaper, PaperTypeBreakthrough:
			if err := m.Paper.Verify(); err != nil {
				t.Fatalf("accepted a paper that does not verify: %v", err)
			}
			if m.Cert == nil || m.Cert.Verify(from, m.Paper.Paper.PublicKey) != nil {
				t.Fatalf("accepted a paper its publisher does not vouch for")
			}
			stored = mustJSON(t, m.Paper)
		case PaperTypeReview:
			r := m.Review.Review
			if err := m.Review.Verify(); err != nil {
				t.Fatalf("accepted a review that does not verify: %v", err)
			}
			pub, _ := base64.StdEncoding.DecodeString(r.PublicKey)
			if r.Score < 1 || r.Score > 10 || !admission.BoundToNode(r.Node, pub) {
				t.Fatalf("accepted review %+v", r)
			}
			stored = mustJSON(t, m.Review)
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
		if bytes.Contains(stored, []byte(`\u0000`)) {
			t.Fatalf("accepted a record PostgreSQL cannot store (NUL): %s", stored)
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		m2, err := UnmarshalPaperMessage(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if (m.Paper != nil && m2.Paper.ID != m.Paper.ID) || (m.Review != nil && m2.Review.ID != m.Review.ID) {
			t.Fatalf("ids changed in a round trip: %s", again)
		}
		if w.validator(memreplica.New()).papers()(context.Background(), from, gossip(again, from, TopicPapers)) != pubsub.ValidationAccept {
			t.Fatalf("re-marshalled message rejected: %s", again)
		}
	})
}

func FuzzRoundAnnouncement(f *testing.F) {
	f.Add([]byte(`{"run":"r1","round":2,"global":"` + strings.Repeat("a", 64) + `","deadlineMs":1,"spec":{},"owner":"12D3KooWCWnRSte6m3Zp3QwyfMruo6d5pF434TwMeMYxXpNBWaej","at":5}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := UnmarshalRoundAnnouncement(b)
		if err != nil {
			return
		}
		if !runIDPattern.MatchString(a.Run) || len(a.Global) != 64 || a.Round < 0 {
			t.Fatalf("accepted %+v", a)
		}
	})
}

// FuzzPulseMessage: the pulse topic's decoder and admission never accept a
// message that is not a correctly signed record of its publisher.
func FuzzPulseMessage(f *testing.F) {
	priv, _, _ := crypto.GenerateEd25519Key(nil)
	pid, _ := peer.IDFromPrivateKey(priv)
	k, _ := admission.NodeIdentity(priv)
	now := time.Now().UnixMilli()
	sp, err := pulse.SignPresence(pulse.Presence{Node: pid.String(), Round: pulse.RoundOf(now, 90000), IntervalMs: 90000, Timestamp: now,
		Capabilities: []string{"research"}}, k)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(PulseMessage{Type: PulseTypePresence, Presence: &sp})
	f.Add(good)
	f.Add([]byte(`{"type":"verdict","verdict":{}}`))
	f.Add([]byte(`{"type":"presence"}`))
	adm := admission.New(admission.Config{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := UnmarshalPulseMessage(b)
		if err != nil {
			return
		}
		if (m.Type == PulseTypePresence) == (m.Presence == nil) {
			t.Fatalf("decoded %+v", m)
		}
		v := &validator{adm: adm}
		if err := v.admitPulse(admission.Source{Path: admission.PathGossip, Peer: pid, Publisher: pid}, m, len(b)); err == nil {
			if m.Type == PulseTypePresence && m.Presence.Verify(admission.BoundToNode) != nil {
				t.Fatal("admitted a presence that does not verify")
			}
			if m.Type == PulseTypeVerdict && m.Verdict.Verify(admission.BoundToNode) != nil {
				t.Fatal("admitted a verdict that does not verify")
			}
		}
	})
}

func FuzzProbeRequest(f *testing.F) {
	f.Add([]byte(`{"kind":"presence","round":1,"nonce":"ab"}`))
	f.Add([]byte(`{"kind":"embedding","nonce":"x","texts":["a","b"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalProbeRequest(b)
		if err != nil {
			return
		}
		if r.Nonce == "" || len(r.Receipts) > 8 || len(r.Texts) > 8 {
			t.Fatalf("accepted %+v", r)
		}
	})
}
