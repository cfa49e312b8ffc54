package node_test

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

func startWithStore(t *testing.T, dir string, st *store.Store, bootstrap []string) *node.Node {
	t.Helper()
	n, err := node.Start(context.Background(), node.Options{
		Dir: dir, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, Domains: []string{p2ptest.Domain}, Store: st,
		P2P: func(c *p2p.Config) { c.SyncInterval = time.Second },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// otherNode is a reviewer node of site A that this test does not run: its
// libp2p key signs its reviews.
type otherNode struct {
	id  peer.ID
	key *identity.Key
}

func newOtherNode(t *testing.T) otherNode {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	ik, err := admission.NodeIdentity(k)
	if err != nil {
		t.Fatal(err)
	}
	return otherNode{id: id, key: ik}
}

func (o otherNode) review(t *testing.T, paperID string, score int) paper.SignedReview {
	t.Helper()
	sr, err := paper.SignReview(paper.Review{PaperID: paperID, Node: o.id.String(), Score: score, Timestamp: time.Now().UnixMilli()}, o.key)
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

// TestPapersFromAnotherSite: two sites (two databases), one node each. A
// paper and its reviews published by site A's node are stored by site B
// as the network's, never as B's own: a forged review (a fresh key naming
// one of A's reviewer nodes, score 10) is rejected and the real review by
// that node still lands; a paper claiming the (campaign, agent, number) of
// one of B's own agents does not take that agent's place; a breakthrough
// announcement marks the paper at B only because the signed reviews B
// holds give a median of 8 or more.
func TestPapersFromAnotherSite(t *testing.T) {
	stA, _ := testenv.Database(t)
	stB, _ := testenv.Database(t)
	base := t.TempDir()
	a := startWithStore(t, filepath.Join(base, "a"), stA, nil)
	b := startWithStore(t, filepath.Join(base, "b"), stB, addrs(a))
	ctx := context.Background()
	waitFor(t, "the papers mesh", func() bool {
		return a.P2P.Stats().Mesh[p2p.TopicPapers] > 0 && b.P2P.Stats().Mesh[p2p.TopicPapers] > 0
	})
	author := identity.FromSeed([]byte("author-author-author-author-auth"))
	sp, err := paper.Sign(paper.Paper{Domain: p2ptest.Domain, Campaign: "c1", Agent: "agent-1", Number: 1, Title: "A result",
		Timestamp: time.Now().UnixMilli(), Markdown: "# A result", Receipts: []string{"r1"},
		Claim: paper.Claim{Receipt: "r1", Metric: "loss", Direction: "minimize", Value: 1}}, author)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PublishPaper(ctx, sp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the paper at site B", func() bool { _, err := stB.GetPaper(ctx, sp.ID); return err == nil })
	if p, _ := stB.GetPaper(ctx, sp.ID); p.Origin != store.OriginNetwork || p.Title != "A result" {
		t.Fatalf("site B holds %+v", p)
	}

	// A forged review first: a fresh key naming reviewer x, score 10. Site
	// A's node refuses to publish it, and a raw peer's copy is rejected
	// by site B.
	x, y := newOtherNode(t), newOtherNode(t)
	forger := newOtherNode(t)
	forged, err := paper.SignReview(paper.Review{PaperID: sp.ID, Node: x.id.String(), Score: 10, Timestamp: time.Now().UnixMilli()}, forger.key)
	if err != nil {
		t.Fatal(err)
	}
	var rej *p2p.RejectedError
	if err := a.PublishReview(ctx, forged); !errors.As(err, &rej) || rej.Reason != admission.ReasonReviewerMismatch {
		t.Fatalf("publishing a forged review: %v", err)
	}
	raw, err := p2ptest.NewRawPeer(ctx, b.P2P, p2p.TopicPapers)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	msg, _ := p2p.PaperMessage{Type: p2p.PaperTypeReview, Review: &forged}.Marshal()
	if err := raw.Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the forged review to be rejected", func() bool {
		return b.P2P.Stats().Admission.Rejected["gossip/review/"+admission.ReasonReviewerMismatch] == 1
	})
	// The real reviews, then the breakthrough announcement.
	for _, r := range []paper.SignedReview{x.review(t, sp.ID, 9), y.review(t, sp.ID, 8)} {
		if err := a.PublishReview(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the reviews at site B", func() bool { rs, _ := stB.ListReviews(ctx, sp.ID); return len(rs) == 2 })
	rs, _ := stB.ListReviews(ctx, sp.ID)
	for _, r := range rs {
		if r.Node == x.id.String() && r.Score != 9 {
			t.Fatalf("x's review at site B scores %d: the forged review took its place", r.Score)
		}
	}
	if err := a.AnnounceBreakthrough(ctx, sp, 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the verdict", func() bool { p, _ := stB.GetPaper(ctx, sp.ID); return p.Breakthrough })
	p, _ := stB.GetPaper(ctx, sp.ID)
	if p.Score == nil || *p.Score != 8.5 || p.Status != store.PaperReviewed {
		t.Fatalf("verdict at site B: %+v (the announcement's 10 must not be believed)", p)
	}

	// A paper from site A claiming the number of one of site B's own
	// agents' papers: stored as the network's, never found as B's.
	claim := sp.Paper
	claim.Campaign, claim.Agent, claim.Number, claim.Title = "c-b", "agent-1", 1, "Not yours"
	fake, err := paper.Sign(claim, author)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PublishPaper(ctx, fake); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the claiming paper at site B", func() bool { _, err := stB.GetPaper(ctx, fake.ID); return err == nil })
	if got, err := stB.GetPaperByNumber(ctx, "c-b", "agent-1", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("site B's agent-1 would adopt %+v (err %v)", got, err)
	}
	own := store.Paper{ID: "own-paper", CampaignID: "c-b", Domain: p2ptest.Domain, Agent: "agent-1", Number: 1, PeerID: "hs1own", Title: "Mine", Record: []byte(`{}`)}
	if ok, err := stB.InsertPaper(ctx, own); err != nil || !ok {
		t.Fatalf("site B's own paper was pre-empted: inserted=%v err=%v", ok, err)
	}
	// And a review from the network of B's own paper is not stored.
	if ok, err := stB.InsertReview(ctx, store.Review{ID: "r-net", PaperID: "own-paper", Node: x.id.String(), Reviewer: "k", Score: 10,
		Record: []byte(`{}`), Origin: store.OriginNetwork}); err != nil || ok {
		t.Fatalf("a network review of a site paper was stored: %v %v", ok, err)
	}
}
