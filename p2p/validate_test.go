package p2p_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// rawPeer wraps p2ptest.RawPeer for tests.
type rawPeer struct{ *p2ptest.RawPeer }

func newRawPeer(t *testing.T, ctx context.Context, target *p2p.Node) *rawPeer {
	t.Helper()
	return newRawPeerOn(t, ctx, target, p2p.TopicForDomain(p2ptest.Domain))
}

func newRawPeerOn(t *testing.T, ctx context.Context, target *p2p.Node, topic string) *rawPeer {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := p2ptest.NewRawPeer(wctx, target, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return &rawPeer{r}
}

func (r *rawPeer) close()      { r.Close() }
func (r *rawPeer) id() peer.ID { return r.ID() }

func (r *rawPeer) publish(t *testing.T, ctx context.Context, data []byte) {
	t.Helper()
	if err := r.Publish(ctx, data); err != nil {
		t.Fatal(err)
	}
}

func envelope(t *testing.T, s receipt.Signed, cert p2p.AgentCert) []byte {
	t.Helper()
	b, err := p2p.Envelope{Receipt: s, Cert: cert}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadMessages: every kind of bad message is rejected, counted under
// its reason, kept out of the replica, and (except an honest duplicate)
// costs the sender score.
func TestBadMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Node.Close()

	agent := p2ptest.AgentKey("attacker-agent")
	fresh := func(run int) receipt.Signed {
		s, err := p2ptest.Receipt(agent, p2ptest.Domain, run, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old, _ := p2ptest.Receipt(agent, p2ptest.Domain, 1000, time.Now().Add(-2*time.Hour))
	known, _ := p2ptest.Receipt(agent, p2ptest.Domain, 1001, time.Now())
	for _, s := range []receipt.Signed{old, known} {
		if _, err := target.Replica.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	baseline := target.Replica.Len()

	cases := []struct {
		reason  string
		penalty bool
		build   func(a *rawPeer) []byte
	}{
		{p2p.ReasonBadSignature, true, func(a *rawPeer) []byte {
			s := fresh(1)
			canon, _ := receipt.Canonical(s.Receipt)
			s.Signature = base64.StdEncoding.EncodeToString(p2ptest.AgentKey("forger").Sign(canon))
			return envelope(t, s, p2p.NewAgentCert(a.Key, agent.Public()))
		}},
		{p2p.ReasonBadID, true, func(a *rawPeer) []byte {
			s := fresh(2)
			s.Receipt.Metric.Value = 0.99 // tampered after signing
			return envelope(t, s, p2p.NewAgentCert(a.Key, agent.Public()))
		}},
		{p2p.ReasonReplay, true, func(a *rawPeer) []byte {
			return envelope(t, old, p2p.NewAgentCert(a.Key, agent.Public()))
		}},
		{p2p.ReasonStale, true, func(a *rawPeer) []byte {
			s, _ := p2ptest.Receipt(agent, p2ptest.Domain, 3, time.Now().Add(-time.Hour))
			return envelope(t, s, p2p.NewAgentCert(a.Key, agent.Public()))
		}},
		{p2p.ReasonClockSkew, true, func(a *rawPeer) []byte {
			s, _ := p2ptest.Receipt(agent, p2ptest.Domain, 4, time.Now().Add(time.Hour))
			return envelope(t, s, p2p.NewAgentCert(a.Key, agent.Public()))
		}},
		{p2p.ReasonOversized, true, func(a *rawPeer) []byte {
			s := fresh(5)
			s.Receipt.Hypothesis = strings.Repeat("x", p2p.DefaultMaxMessageBytes)
			return envelope(t, s, p2p.NewAgentCert(a.Key, agent.Public()))
		}},
		{p2p.ReasonMalformed, true, func(a *rawPeer) []byte { return []byte(`{"receipt": not json`) }},
		{p2p.ReasonMalformed, true, func(a *rawPeer) []byte {
			// The id the message-id fast path reads differs from the one
			// a JSON decoder sees.
			s := fresh(6)
			b := envelope(t, s, p2p.NewAgentCert(a.Key, agent.Public()))
			return append(b[:len(b)-1], []byte(`,"receipt":{"id":"`+strings.Repeat("0", 64)+`"}}`)...)
		}},
		{p2p.ReasonSignerMismatch, true, func(a *rawPeer) []byte {
			// A cert made by another node: not the sender's.
			other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
			return envelope(t, fresh(7), p2p.NewAgentCert(other, agent.Public()))
		}},
		{p2p.ReasonSignerMismatch, true, func(a *rawPeer) []byte {
			// The sender's cert, for another agent's key.
			return envelope(t, fresh(8), p2p.NewAgentCert(a.Key, p2ptest.AgentKey("x").Public()))
		}},
		{p2p.ReasonUnknownDomain, true, func(a *rawPeer) []byte {
			s, _ := p2ptest.Receipt(agent, "finance", 9, time.Now())
			return envelope(t, s, p2p.NewAgentCert(a.Key, agent.Public()))
		}},
		{p2p.ReasonDuplicate, false, func(a *rawPeer) []byte {
			// Fresh but already held (say, from sync): ignored, no penalty.
			return envelope(t, known, p2p.NewAgentCert(a.Key, agent.Public()))
		}},
	}
	for _, tc := range cases {
		// A fresh attacker per case: four invalid messages graylist a peer,
		// after which its messages are dropped unread (and uncounted).
		a := newRawPeer(t, ctx, target.Node)
		before := target.Node.Stats().Rejected[tc.reason]
		a.publish(t, ctx, tc.build(a))
		eventually(t, 5*time.Second, tc.reason+" to be counted", func() bool {
			return target.Node.Stats().Rejected[tc.reason] == before+1
		})
		if tc.penalty {
			eventually(t, 5*time.Second, tc.reason+" to cost the sender score", func() bool {
				s, ok := target.Node.PeerScore(a.id())
				return ok && s < 0
			})
		} else {
			time.Sleep(300 * time.Millisecond)
			if s, _ := target.Node.PeerScore(a.id()); s < 0 {
				t.Errorf("%s: honest duplicate cost the sender score %v", tc.reason, s)
			}
		}
		a.close()
	}
	st := target.Node.Stats()
	if got := target.Replica.Len(); got != baseline || st.Delivered != 0 {
		t.Fatalf("bad messages reached the replica: %d records (want %d), %d delivered", got, baseline, st.Delivered)
	}
	t.Logf("rejected: %v", st.Rejected)
}

// TestFloodGraylisted: a peer that floods valid findings is rate limited,
// its score falls below the graylist threshold, and an honest peer's
// findings still arrive promptly during the flood.
func TestFloodGraylisted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := p2ptest.NewCluster(ctx, 2, 1, 11, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	target, honest := c[0], c[1]
	if err := c.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the sync on connect", func() bool { return honest.Node.Stats().SyncRounds > 0 })
	flooder := newRawPeer(t, ctx, target.Node)

	const floodSize = 1500
	agent := p2ptest.AgentKey("flood-agent")
	cert := p2p.NewAgentCert(flooder.Key, agent.Public())
	flood := make([][]byte, floodSize)
	for i := range flood {
		s, err := p2ptest.Receipt(agent, p2ptest.Domain, i+1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		flood[i] = envelope(t, s, cert)
	}
	floodStart := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, b := range flood {
			if err := flooder.Publish(ctx, b); err != nil {
				return
			}
		}
	}()
	pub := p2ptest.NewPublisher(honest.Node, honest.Key, "honest-agent")
	var worst time.Duration
	for range 5 {
		time.Sleep(50 * time.Millisecond)
		s, err := pub.Publish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		// Arrival is measured at the replica: a sync can legitimately
		// overtake gossip, and then the finding is not announced again.
		for !target.Replica.Has(s.ID) {
			if time.Since(sent) > 5*time.Second {
				t.Fatalf("honest finding lost during the flood; target %+v; honest %+v", target.Node.Stats(), honest.Node.Stats())
			}
			time.Sleep(time.Millisecond)
		}
		at := time.Now()
		worst = max(worst, at.Sub(sent))
	}
	wg.Wait()
	floodDur := time.Since(floodStart)

	eventually(t, 10*time.Second, "the flooder to be graylisted", func() bool {
		s, ok := target.Node.PeerScore(flooder.id())
		return ok && s < p2p.GraylistThreshold
	})
	fs, _ := target.Node.PeerScore(flooder.id())
	hs, _ := target.Node.PeerScore(honest.Node.ID())
	if hs < 0 {
		t.Errorf("honest peer's score is %v", hs)
	}
	st := target.Node.Stats()
	accepted := int(st.Delivered) - 5
	limit := p2p.DefaultRateLimit
	if maxOK := limit.Burst + int(limit.Rate*floodDur.Seconds()) + 1; accepted > maxOK {
		t.Errorf("accepted %d flood messages, the rate limit allows %d", accepted, maxOK)
	}
	if st.Rejected[p2p.ReasonRateLimited] == 0 {
		t.Error("nothing was rate limited")
	}
	if worst > 2*time.Second {
		t.Errorf("honest findings took up to %v during the flood", worst)
	}
	t.Logf("flood of %d in %v: %d accepted, %d rate limited (the rest dropped unread once graylisted); flooder score %.0f, honest %.1f; honest findings arrived within %v",
		floodSize, floodDur.Round(time.Millisecond), accepted, st.Rejected[p2p.ReasonRateLimited], fs, hs, worst)
}

// TestPapersTopicAdmission: on the papers topic, papers, reviews and
// breakthrough announcements pass admission: a paper needs a cert from its
// publisher for its author's key, a review must be signed by the node it
// names, and anything else is rejected and counted; what is admitted is
// delivered decoded.
func TestPapersTopicAdmission(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Node.Close()
	ch, stop := target.Node.SubscribeRaw()
	defer stop()

	author := p2ptest.AgentKey("paper-author")
	signPaper := func(title string) paper.Signed {
		sp, err := paper.Sign(paper.Paper{Domain: p2ptest.Domain, Campaign: "c1", Agent: "agent-1", Number: 1, Title: title,
			Timestamp: time.Now().UnixMilli(), Receipts: []string{"r1"},
			Claim: paper.Claim{Receipt: "r1", Metric: "loss", Direction: "minimize", Value: 1}}, author)
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	msg := func(m p2p.PaperMessage) []byte {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	review := func(k *identity.Key, node peer.ID, score int) *paper.SignedReview {
		sr, err := paper.SignReview(paper.Review{PaperID: strings.Repeat("a", 64), Node: node.String(), Score: score, Timestamp: time.Now().UnixMilli()}, k)
		if err != nil {
			t.Fatal(err)
		}
		return &sr
	}
	cases := []struct {
		reason string
		build  func(a *rawPeer) []byte
	}{
		{p2p.ReasonUnvouched, func(a *rawPeer) []byte {
			sp := signPaper("no cert")
			return msg(p2p.PaperMessage{Type: p2p.PaperTypePaper, Paper: &sp})
		}},
		{p2p.ReasonSignerMismatch, func(a *rawPeer) []byte {
			other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
			sp, cert := signPaper("another node's cert"), p2p.NewAgentCert(other, author.Public())
			return msg(p2p.PaperMessage{Type: p2p.PaperTypePaper, Paper: &sp, Cert: &cert})
		}},
		{p2p.ReasonBadID, func(a *rawPeer) []byte {
			sp, cert := signPaper("honest"), p2p.NewAgentCert(a.Key, author.Public())
			sp.Paper.Title = "tampered"
			return msg(p2p.PaperMessage{Type: p2p.PaperTypePaper, Paper: &sp, Cert: &cert})
		}},
		{admission.ReasonReviewerMismatch, func(a *rawPeer) []byte {
			// A fresh key naming the target node, score 10.
			return msg(p2p.PaperMessage{Type: p2p.PaperTypeReview, Review: review(p2ptest.AgentKey("forger"), target.Node.ID(), 10)})
		}},
		{p2p.ReasonMalformed, func(a *rawPeer) []byte {
			sp, cert := signPaper("no time"), p2p.NewAgentCert(a.Key, author.Public())
			return msg(p2p.PaperMessage{Type: p2p.PaperTypeBreakthrough, Paper: &sp, Cert: &cert})
		}},
		{p2p.ReasonMalformed, func(a *rawPeer) []byte { return []byte(`{"type":"poem","text":"roses"}`) }},
	}
	for _, tc := range cases {
		a := newRawPeerOn(t, ctx, target.Node, p2p.TopicPapers)
		before := target.Node.Stats().Rejected[tc.reason]
		a.publish(t, ctx, tc.build(a))
		eventually(t, 5*time.Second, tc.reason+" to be counted", func() bool {
			return target.Node.Stats().Rejected[tc.reason] == before+1
		})
		a.close()
	}
	select {
	case m := <-ch:
		t.Fatalf("a rejected message was delivered: %s", m.Data)
	default:
	}
	// Admitted: a vouched paper, and a review signed with the sender's own
	// node key.
	a := newRawPeerOn(t, ctx, target.Node, p2p.TopicPapers)
	sp, cert := signPaper("an honest paper"), p2p.NewAgentCert(a.Key, author.Public())
	a.publish(t, ctx, msg(p2p.PaperMessage{Type: p2p.PaperTypePaper, Paper: &sp, Cert: &cert}))
	nodeKey, err := admission.NodeIdentity(a.Key)
	if err != nil {
		t.Fatal(err)
	}
	a.publish(t, ctx, msg(p2p.PaperMessage{Type: p2p.PaperTypeReview, Review: review(nodeKey, a.id(), 7)}))
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case m := <-ch:
			if m.Message == nil || m.From != a.id() || got[m.Message.Type] {
				t.Fatalf("got %+v from %s", m.Message, m.From)
			}
			got[m.Message.Type] = true
		case <-ctx.Done():
			t.Fatalf("delivered only %v of a paper and a review", got)
		}
	}
	st := target.Node.Stats()
	if st.Admission.Accepted["gossip/paper"] != 1 || st.Admission.Accepted["gossip/review"] != 1 {
		t.Fatalf("admission counters: %+v", st.Admission)
	}
	// The publishing side refuses what peers would reject.
	bad := signPaper("unvouched by us")
	other := p2p.NewAgentCert(a.Key, author.Public())
	if err := target.Node.PublishPaper(ctx, p2p.PaperMessage{Type: p2p.PaperTypePaper, Paper: &bad, Cert: &other}); err == nil {
		t.Fatal("published a paper with another node's cert")
	}
}
