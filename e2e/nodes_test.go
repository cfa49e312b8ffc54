package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// startNodes starts n P2P nodes in this process, each with its own libp2p
// host on 127.0.0.1, CRDT replica and Temporal worker on node-<peerID>.
func (s *stack) startNodes(t testing.TB, n int) []*node.Node {
	t.Helper()
	return s.startNodesWith(t, n, nil)
}

// startNodesWith is startNodes with each node's options adjusted by opt.
func (s *stack) startNodesWith(t testing.TB, n int, opt func(*node.Options)) []*node.Node {
	t.Helper()
	var out []*node.Node
	var bootstrap []string
	for i := 0; i < n; i++ {
		o := node.Options{
			Dir: filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i)), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			Bootstrap: bootstrap, Domains: s.registry.Names(), Temporal: s.tc, Activities: s.acts, Store: s.st, Logger: s.acts.Logger,
		}
		if opt != nil {
			opt(&o)
		}
		nd, err := node.Start(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nd.Close)
		if i == 0 {
			for _, a := range nd.P2P.Addrs() {
				bootstrap = append(bootstrap, a.String())
			}
		}
		out = append(out, nd)
	}
	return out
}

// TestCampaignOverNodes: a campaign's agents run on two P2P nodes; every
// experiment is shared over gossip, both replicas converge to the same state,
// and the receipts agree with the site database.
func TestCampaignOverNodes(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	nodes := s.startNodes(t, 2)
	code, body := s.do(http.MethodGet, "/api/v1/nodes", nil)
	if code != 200 || strings.Count(string(body), `"peerId"`) != 2 {
		t.Fatalf("nodes: %d %s", code, body)
	}
	v := s.startCampaign(map[string]any{"domain": "ml", "agents": 2, "experiments": 2, "seed": 9, "budget": 4, "baseline": tinyML})
	var in workflows.CampaignInput
	_ = jsonUnmarshal(v.Request, &in)
	if len(in.NodeQueues) != 2 {
		t.Fatalf("campaign not spread over the nodes: %+v", in.NodeQueues)
	}
	v = s.waitCampaign(v.ID, 3*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	rows := s.allExperiments(v.ID)
	saveHistory(t, history(t, s.tc, v.WorkflowID[len("campaign-"):]+"/"+workflows.AgentName(0)), "agent_nodes.json")
	saveHistory(t, history(t, s.tc, v.WorkflowID), "campaign_nodes.json")
	// Gossip is fast, but anti-entropy is the guarantee: wait for both.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, b := nodes[0].Replica, nodes[1].Replica
		if a.Len("ml") == len(rows) && a.StateHash("ml") == b.StateHash("ml") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge: %d vs %d records, %d rows", a.Len("ml"), b.Len("ml"), len(rows))
		}
		for _, n := range nodes {
			_ = n.P2P.SyncAll(context.Background())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, r := range rows {
		for i, n := range nodes {
			if !n.Replica.Has(r.ID) {
				t.Fatalf("node %d lacks experiment %s", i, r.ID)
			}
		}
	}
	// Each node heard the other's findings over gossip (not only through sync).
	for i, n := range nodes {
		remote := 0
		for _, f := range n.P2P.Recent(100) {
			if !f.Local {
				remote++
			}
		}
		if remote == 0 {
			t.Fatalf("node %d received no finding by gossip", i)
		}
	}
	// The API of a node shows its peers, feed and network leaderboard.
	srv := &api.Server{Store: s.st, Temporal: s.tc, Domains: s.registry, Node: &api.NetworkNode{P2P: nodes[0].P2P, Replica: nodes[0].Replica}}
	h := srv.Handler()
	for _, p := range []string{"/api/v1/peers", "/api/v1/gossip", "/api/v1/network/leaderboard/ml"} {
		rec := httptestRecorder(h, p, s.token)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

// TestGossipStreamSSE: a finding published on one node arrives as a
// server-sent event on another node's API.
func TestGossipStreamSSE(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue}, 0)
	nodes := s.startNodes(t, 2)
	srv := &api.Server{Store: s.st, Temporal: s.tc, Domains: s.registry, Node: &api.NetworkNode{P2P: nodes[1].P2P, Replica: nodes[1].Replica}}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/gossip/stream", nil)
	resp, err := http.DefaultClient.Do(s.authorize(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				got <- sc.Text()
				return
			}
		}
	}()
	// Publish from node 0 once its mesh has formed (retry: gossip before the
	// first heartbeat may reach no one; the receipt is then in node 0's
	// replica and a re-publish is a no-op, so use a fresh receipt each time).
	key := p2ptest.AgentKey("sse")
	deadline := time.Now().Add(30 * time.Second)
	for run := 1; ; run++ {
		rec, err := p2ptest.Receipt(key, "ml", run, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := nodes[0].Share(context.Background(), rec, key); err != nil {
			t.Fatal(err)
		}
		select {
		case line := <-got:
			if !strings.Contains(line, rec.ID[:16]) && !strings.Contains(line, `"domain":"ml"`) {
				t.Fatalf("unexpected event %s", line)
			}
			return
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatal("no server-sent event within 30 s")
		}
	}
}
