package node_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
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

// TestPapersFromAnotherSite: two sites (two databases), one node each. A
// paper and its reviews published by site A's node are stored by site B
// after their signatures check; a tampered paper is not; a breakthrough
// announcement marks the paper at B only because the signed reviews B holds
// give a median of 8 or more.
func TestPapersFromAnotherSite(t *testing.T) {
	stA, _ := testenv.Database(t)
	stB, _ := testenv.Database(t)
	base := t.TempDir()
	a := startWithStore(t, filepath.Join(base, "a"), stA, nil)
	b := startWithStore(t, filepath.Join(base, "b"), stB, addrs(a))
	ctx := context.Background()
	// Wait for the papers topic mesh between the two.
	deadline := time.Now().Add(20 * time.Second)
	for a.P2P.Stats().Mesh[p2p.TopicPapers] == 0 || b.P2P.Stats().Mesh[p2p.TopicPapers] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no papers mesh")
		}
		time.Sleep(100 * time.Millisecond)
	}
	author := identity.FromSeed([]byte("author-author-author-author-auth"))
	sp, err := paper.Sign(paper.Paper{Domain: p2ptest.Domain, Campaign: "c1", Agent: "agent-0", Number: 1, Title: "A result",
		Markdown: "# A result", Receipts: []string{"r1"}, Claim: paper.Claim{Receipt: "r1", Metric: "loss", Direction: "minimize", Value: 1}}, author)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := a.P2P.PublishPaper(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("site B never got %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// A tampered copy first: never stored.
	bad := sp
	bad.Paper.Title = "A much better result"
	publish(map[string]any{"type": "paper", "paper": bad})
	publish(map[string]any{"type": "paper", "paper": sp})
	waitFor("the paper", func() bool { _, err := stB.GetPaper(ctx, sp.ID); return err == nil })
	if ps, _ := stB.ListPapers(ctx, store.PaperFilter{}); len(ps) != 1 || ps[0].Title != "A result" {
		t.Fatalf("site B papers: %+v", ps)
	}
	// Reviews, then the breakthrough announcement.
	for i, score := range []int{9, 8} {
		k := identity.FromSeed([]byte{byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31})
		sr, err := paper.SignReview(paper.Review{PaperID: sp.ID, Node: "node-" + string(rune('x'+i)), Score: score}, k)
		if err != nil {
			t.Fatal(err)
		}
		publish(map[string]any{"type": "review", "review": sr})
	}
	waitFor("the reviews", func() bool { rs, _ := stB.ListReviews(ctx, sp.ID); return len(rs) == 2 })
	publish(map[string]any{"type": "breakthrough", "score": 10, "paper": sp})
	waitFor("the verdict", func() bool { p, _ := stB.GetPaper(ctx, sp.ID); return p.Breakthrough })
	p, _ := stB.GetPaper(ctx, sp.ID)
	if p.Score == nil || *p.Score != 8.5 || p.Status != store.PaperReviewed {
		t.Fatalf("verdict at site B: %+v (the announcement's 10 must not be believed)", p)
	}
}
