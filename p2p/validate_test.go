package p2p_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// rawPeer is an attacker: a plain libp2p host speaking GossipSub with no
// validation of its own, so it can publish anything.
type rawPeer struct {
	key   crypto.PrivKey
	host  host.Host
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	stop  context.CancelFunc
}

func newRawPeer(t *testing.T, ctx context.Context, target *p2p.Node) *rawPeer {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(pctx, h,
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerOutboundQueueSize(8192),
		pubsub.WithMaxMessageSize(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(p2p.TopicForDomain(p2ptest.Domain))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	r := &rawPeer{key: key, host: h, topic: topic, sub: sub, stop: stop}
	t.Cleanup(r.close)
	eventually(t, 10*time.Second, "the target's subscription", func() bool {
		for _, p := range topic.ListPeers() {
			if p == target.ID() {
				return true
			}
		}
		return false
	})
	return r
}

func (r *rawPeer) close() {
	r.sub.Cancel()
	r.stop()
	r.host.Close()
}

func (r *rawPeer) id() peer.ID { return r.host.ID() }

func (r *rawPeer) publish(t *testing.T, ctx context.Context, data []byte) {
	t.Helper()
	if err := r.topic.Publish(ctx, data); err != nil {
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
			return envelope(t, s, p2p.NewAgentCert(a.key, agent.Public()))
		}},
		{p2p.ReasonBadID, true, func(a *rawPeer) []byte {
			s := fresh(2)
			s.Receipt.Metric.Value = 0.99 // tampered after signing
			return envelope(t, s, p2p.NewAgentCert(a.key, agent.Public()))
		}},
		{p2p.ReasonReplay, true, func(a *rawPeer) []byte {
			return envelope(t, old, p2p.NewAgentCert(a.key, agent.Public()))
		}},
		{p2p.ReasonStale, true, func(a *rawPeer) []byte {
			s, _ := p2ptest.Receipt(agent, p2ptest.Domain, 3, time.Now().Add(-time.Hour))
			return envelope(t, s, p2p.NewAgentCert(a.key, agent.Public()))
		}},
		{p2p.ReasonClockSkew, true, func(a *rawPeer) []byte {
			s, _ := p2ptest.Receipt(agent, p2ptest.Domain, 4, time.Now().Add(time.Hour))
			return envelope(t, s, p2p.NewAgentCert(a.key, agent.Public()))
		}},
		{p2p.ReasonOversized, true, func(a *rawPeer) []byte {
			s := fresh(5)
			s.Receipt.Hypothesis = strings.Repeat("x", p2p.DefaultMaxMessageBytes)
			return envelope(t, s, p2p.NewAgentCert(a.key, agent.Public()))
		}},
		{p2p.ReasonMalformed, true, func(a *rawPeer) []byte { return []byte(`{"receipt": not json`) }},
		{p2p.ReasonMalformed, true, func(a *rawPeer) []byte {
			// The id the message-id fast path reads differs from the one
			// a JSON decoder sees.
			s := fresh(6)
			b := envelope(t, s, p2p.NewAgentCert(a.key, agent.Public()))
			return append(b[:len(b)-1], []byte(`,"receipt":{"id":"`+strings.Repeat("0", 64)+`"}}`)...)
		}},
		{p2p.ReasonSignerMismatch, true, func(a *rawPeer) []byte {
			// A cert made by another node: not the sender's.
			other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
			return envelope(t, fresh(7), p2p.NewAgentCert(other, agent.Public()))
		}},
		{p2p.ReasonSignerMismatch, true, func(a *rawPeer) []byte {
			// The sender's cert, for another agent's key.
			return envelope(t, fresh(8), p2p.NewAgentCert(a.key, p2ptest.AgentKey("x").Public()))
		}},
		{p2p.ReasonUnknownDomain, true, func(a *rawPeer) []byte {
			s, _ := p2ptest.Receipt(agent, "finance", 9, time.Now())
			return envelope(t, s, p2p.NewAgentCert(a.key, agent.Public()))
		}},
		{p2p.ReasonDuplicate, false, func(a *rawPeer) []byte {
			// Fresh but already held (say, from sync): ignored, no penalty.
			return envelope(t, known, p2p.NewAgentCert(a.key, agent.Public()))
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
	cert := p2p.NewAgentCert(flooder.key, agent.Public())
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
			if err := flooder.topic.Publish(ctx, b); err != nil {
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

// TestRawTopics: papers and inspiration carry any JSON within the size
// limit; malformed payloads are rejected.
func TestRawTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p2ptest.NewCluster(ctx, 2, 1, 5, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ch, stop := c[1].Node.SubscribeRaw()
	defer stop()
	time.Sleep(300 * time.Millisecond) // raw topic meshes
	payload, _ := json.Marshal(map[string]string{"title": "a paper"})
	if err := c[0].Node.PublishPaper(ctx, payload); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if m.Topic != p2p.TopicPapers || string(m.Data) != string(payload) || m.From != c[0].Node.ID() {
			t.Fatalf("got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("paper not delivered")
	}
	if err := c[0].Node.PublishInspiration(ctx, []byte("not json")); err == nil {
		t.Fatal("malformed inspiration was published")
	}
}
