package node_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// BenchmarkAdmissionPaths throws forged, replayed, oversized and malformed
// inputs at a node on every path records arrive by (gossip research topic,
// gossip papers topic, leaderboard sync) alongside honest ones, and
// reports how many of each were tried and how many rejected, by path and
// reason. Nothing bad may get in; every honest record must.
//
//	go test -run '^$' -bench AdmissionPaths -benchtime 1x ./node
func BenchmarkAdmissionPaths(b *testing.B) {
	for range b.N {
		admissionPathsOnce(b)
	}
}

func admissionPathsOnce(b *testing.B) {
	const each = 10
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	target, err := node.Start(ctx, node.Options{Dir: filepath.Join(b.TempDir(), "t"), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Domains: []string{p2ptest.Domain}, P2P: func(c *p2p.Config) { c.SyncInterval = -1; c.DisableDHT = true }})
	if err != nil {
		b.Fatal(err)
	}
	defer target.Close()
	agent := p2ptest.AgentKey("bench-agent")
	tried := map[string]int{}
	run := 0
	fresh := func(ts time.Time) receipt.Signed {
		run++
		s, err := p2ptest.Receipt(agent, p2ptest.Domain, run, ts)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	forge := func(s receipt.Signed) receipt.Signed {
		canon, _ := receipt.Canonical(s.Receipt)
		s.Signature = base64.StdEncoding.EncodeToString(p2ptest.AgentKey("forger").Sign(canon))
		return s
	}
	tamper := func(s receipt.Signed) receipt.Signed { s.Receipt.Metric.Value += 0.5; return s }
	// Honest and replayed records the target holds already.
	known := fresh(time.Now().Add(-2 * time.Hour))
	if _, err := target.Replica.Add(known); err != nil {
		b.Fatal(err)
	}

	// Gossip, research topic: a fresh raw peer per input (invalid senders
	// are graylisted after a few).
	gossip := func(kind string, build func(a *p2ptest.RawPeer) []byte) {
		for range each {
			a, err := p2ptest.NewRawPeer(ctx, target.P2P, p2p.TopicForDomain(p2ptest.Domain))
			if err != nil {
				b.Fatal(err)
			}
			if err := a.Publish(ctx, build(a)); err != nil {
				b.Fatal(err)
			}
			tried["gossip/"+kind]++
			time.Sleep(20 * time.Millisecond)
			a.Close()
		}
	}
	env := func(s receipt.Signed, c p2p.AgentCert) []byte {
		data, _ := p2p.Envelope{Receipt: s, Cert: c}.Marshal()
		return data
	}
	gossip("honest", func(a *p2ptest.RawPeer) []byte {
		return env(fresh(time.Now()), p2p.NewAgentCert(a.Key, agent.Public()))
	})
	gossip("forged signature", func(a *p2ptest.RawPeer) []byte {
		return env(forge(fresh(time.Now())), p2p.NewAgentCert(a.Key, agent.Public()))
	})
	gossip("tampered", func(a *p2ptest.RawPeer) []byte {
		return env(tamper(fresh(time.Now())), p2p.NewAgentCert(a.Key, agent.Public()))
	})
	gossip("another node's cert", func(a *p2ptest.RawPeer) []byte {
		other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		return env(fresh(time.Now()), p2p.NewAgentCert(other, agent.Public()))
	})
	gossip("replayed", func(a *p2ptest.RawPeer) []byte { return env(known, p2p.NewAgentCert(a.Key, agent.Public())) })
	gossip("oversized", func(a *p2ptest.RawPeer) []byte {
		s := fresh(time.Now())
		s.Receipt.Hypothesis = strings.Repeat("x", p2p.DefaultMaxMessageBytes)
		return env(s, p2p.NewAgentCert(a.Key, agent.Public()))
	})
	gossip("malformed", func(*p2ptest.RawPeer) []byte { run++; return []byte(fmt.Sprintf(`{"receipt": not json %d`, run)) })

	// Gossip, papers topic.
	author := p2ptest.AgentKey("bench-author")
	signPaper := func() paper.Signed {
		run++
		sp, err := paper.Sign(paper.Paper{Domain: p2ptest.Domain, Campaign: "c1", Agent: "agent-1", Number: run, Title: "t",
			Timestamp: time.Now().UnixMilli(), Receipts: []string{"r"}, Claim: paper.Claim{Receipt: "r", Metric: "m", Direction: "minimize"}}, author)
		if err != nil {
			b.Fatal(err)
		}
		return sp
	}
	papers := func(kind string, build func(a *p2ptest.RawPeer) p2p.PaperMessage) {
		for range each {
			a, err := p2ptest.NewRawPeer(ctx, target.P2P, p2p.TopicPapers)
			if err != nil {
				b.Fatal(err)
			}
			m := build(a)
			data, _ := m.Marshal()
			run++ // distinct bytes: the topic's message id is their hash
			if kind == "oversized" {
				data = []byte(fmt.Sprintf(`{"type":"paper","n":%d,"paper":{"id":"%s"}}`, run, strings.Repeat("x", p2p.DefaultMaxMessageBytes)))
			}
			if kind == "malformed" {
				data = []byte(fmt.Sprintf(`{"type":"paper","n":%d,"paper":`, run))
			}
			if err := a.Publish(ctx, data); err != nil {
				b.Fatal(err)
			}
			tried["papers/"+kind]++
			time.Sleep(20 * time.Millisecond)
			a.Close()
		}
	}
	vouched := func(a *p2ptest.RawPeer) p2p.PaperMessage {
		sp, c := signPaper(), p2p.NewAgentCert(a.Key, author.Public())
		return p2p.PaperMessage{Type: p2p.PaperTypePaper, Paper: &sp, Cert: &c}
	}
	papers("honest", vouched)
	papers("unvouched paper", func(*p2ptest.RawPeer) p2p.PaperMessage {
		sp := signPaper()
		return p2p.PaperMessage{Type: p2p.PaperTypePaper, Paper: &sp}
	})
	papers("tampered paper", func(a *p2ptest.RawPeer) p2p.PaperMessage {
		m := vouched(a)
		m.Paper.Paper.Title = "better"
		return m
	})
	papers("forged review", func(*p2ptest.RawPeer) p2p.PaperMessage {
		run++
		sr, _ := paper.SignReview(paper.Review{PaperID: fmt.Sprintf("%064d", run), Node: target.PeerID(), Score: 10, Timestamp: time.Now().UnixMilli()},
			identity.FromSeed(make([]byte, 32)))
		return p2p.PaperMessage{Type: p2p.PaperTypeReview, Review: &sr}
	})
	papers("oversized", vouched)
	papers("malformed", vouched)

	// Sync: one raw exchange per batch.
	raw, err := p2ptest.NewRawPeer(ctx, target.P2P, p2p.TopicForDomain(p2ptest.Domain))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	nodeKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	vouch := func(s receipt.Signed) receipt.Signed { return p2ptest.Vouched(s, nodeKey) }
	req, _ := crdt.New().Request("", []string{p2ptest.Domain}).Marshal()
	sync := func(kind string, build func() receipt.Signed) int {
		recs := make([]receipt.Signed, each)
		for i := range recs {
			recs[i] = build()
		}
		push, err := crdt.SyncPush{Records: recs}.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		added, err := raw.RawSync(ctx, target.P2P, req, push)
		if err != nil {
			b.Fatalf("sync %s: %v", kind, err)
		}
		tried["sync/"+kind] += each
		return added
	}
	old := func() receipt.Signed { return fresh(time.Now().Add(-3 * time.Hour)) }
	if got := sync("honest", func() receipt.Signed { return vouch(old()) }); got != each {
		b.Fatalf("sync admitted %d of %d honest records", got, each)
	}
	bad := 0
	bad += sync("unvouched", old)
	bad += sync("falsely vouched", func() receipt.Signed {
		s := vouch(old())
		s.Vouch.Signature = p2p.NewAgentCert(nodeKey, p2ptest.AgentKey("x").Public()).Signature
		return s
	})
	bad += sync("forged signature", func() receipt.Signed { return vouch(forge(old())) })
	bad += sync("tampered", func() receipt.Signed { return vouch(tamper(old())) })
	bad += sync("oversized", func() receipt.Signed {
		s := old()
		s.Receipt.Hypothesis = strings.Repeat("y", admission.DefaultMaxRecordBytes)
		s, _ = receipt.Sign(s.Receipt, agent)
		return vouch(s)
	})
	if got := sync("replayed", func() receipt.Signed { return known }); got != 0 {
		b.Fatalf("a replayed record was added %d times", got)
	}
	if bad != 0 {
		b.Fatalf("sync admitted %d bad records", bad)
	}
	// Malformed and oversized frames: the stream is refused.
	failures := target.P2P.Stats().SyncFailures
	for range each {
		if _, err := raw.RawSync(ctx, target.P2P, []byte(`{"summary": not json`), nil); err == nil {
			b.Fatal("a malformed sync request was answered")
		}
		tried["sync/malformed frame"]++
		if _, err := raw.RawFrame(ctx, target.P2P, binary.AppendUvarint(nil, 1<<40), []byte("tiny")); err != nil {
			b.Fatal(err)
		}
		tried["sync/oversized frame"]++
	}
	deadline := time.Now().Add(10 * time.Second)
	for target.P2P.Stats().SyncFailures < failures+2*each && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let the last gossip validations land

	st := target.P2P.Stats()
	var lines []string
	for k, v := range st.Admission.Rejected {
		lines = append(lines, fmt.Sprintf("rejected %-45s %d", k, v))
	}
	for k, v := range st.Admission.Accepted {
		lines = append(lines, fmt.Sprintf("accepted %-45s %d", k, v))
	}
	for k, v := range tried {
		lines = append(lines, fmt.Sprintf("tried    %-45s %d", k, v))
	}
	sort.Strings(lines)
	lines = append(lines, fmt.Sprintf("sync streams failed (malformed or oversized frames) %d of %d", st.SyncFailures-failures, 2*each))
	b.Logf("admission by path:\n%s", strings.Join(lines, "\n"))
	if got := st.Admission.Accepted["gossip/receipt"]; got != each {
		b.Fatalf("gossip admitted %d receipts, want the %d honest ones", got, each)
	}
	if got := st.Admission.Accepted["gossip/paper"]; got != each {
		b.Fatalf("gossip admitted %d papers, want the %d honest ones", got, each)
	}
	rejected := 0
	for _, v := range st.Admission.Rejected {
		rejected += int(v)
	}
	b.ReportMetric(float64(rejected), "rejected")
	b.ReportMetric(float64(st.SyncFailures-failures), "frames_refused")
}
