package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/archive"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// checkOneKeyPerAgent: every receipt and paper of a campaign is signed by
// the key its agent was registered with; every review by the node it names.
func checkOneKeyPerAgent(t testing.TB, st *store.Store, campaign string) (runs, papers, reviews int) {
	t.Helper()
	ctx := context.Background()
	agents, err := st.ListAgents(ctx, campaign)
	if err != nil || len(agents) == 0 {
		t.Fatalf("agents of %s: %v %v", campaign, agents, err)
	}
	keyOf := map[string]store.Agent{}
	for _, a := range agents {
		keyOf[a.Name] = a
	}
	rows, _, err := st.ListExperiments(ctx, store.ExperimentFilter{CampaignID: campaign})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var s receipt.Signed
		if err := json.Unmarshal(r.Record, &s); err != nil {
			t.Fatal(err)
		}
		a := keyOf[r.Agent]
		if err := s.Verify(); err != nil || s.Receipt.PublicKey != a.PublicKey || s.Receipt.PeerID != a.PeerID {
			t.Fatalf("receipt %s of %s: verify %v, signed by %s, registered key %s", r.ID[:8], r.Agent, err, s.Receipt.PeerID, a.PeerID)
		}
	}
	ps, err := st.ListPapers(ctx, store.PaperFilter{CampaignID: campaign, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		var sp paper.Signed
		if err := json.Unmarshal(p.Record, &sp); err != nil {
			t.Fatal(err)
		}
		if err := sp.Verify(); err != nil || sp.Paper.PublicKey != keyOf[p.Agent].PublicKey {
			t.Fatalf("paper %s of %s: verify %v, key %s", p.ID[:8], p.Agent, err, sp.Paper.PeerID)
		}
		rs, err := st.ListReviews(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			var sr paper.SignedReview
			if err := json.Unmarshal(r.Record, &sr); err != nil {
				t.Fatal(err)
			}
			pub, _ := base64.StdEncoding.DecodeString(sr.Review.PublicKey)
			if err := sr.Verify(); err != nil || !admission.BoundToNode(sr.Review.Node, pub) {
				t.Fatalf("review %s: verify %v, not signed by node %s", r.ID[:8], err, sr.Review.Node)
			}
			reviews++
		}
	}
	return len(rows), len(ps), reviews
}

// TestComposeLayout runs a site as docker-compose does, without Docker:
// the API, a worker (workflows, agent bookkeeping, experiments), two P2P
// nodes and the archive worker as separate processes with separate state
// dirs. Every receipt and paper verifies against its agent's registered
// key (the keystore gives every process the same one), every review is
// signed by its node, every archive branch is named after the key that
// signed its runs (the archive worker holds no secret at all), and a
// restarted node keeps its peer id and task queue.
func TestComposeLayout(t *testing.T) {
	s := newSite(t)
	archiveDir := filepath.Join(s.root, "archive", "archive.git")
	s.startAPI("--archive-location", archiveDir)
	s.start("worker", true, "worker", "--queues", "hyperspace,experiments")
	node1, id1, addr1, tq1 := s.startNode("node1", "")
	s.startNode("node2", addr1)
	s.start("archive", false, "worker", "--queues", "archive", "--archive-dir", archiveDir)
	s.waitNodes(2)

	v := s.startCampaign(map[string]any{"domain": "search", "agents": 2, "experiments": 4, "seed": 5, "paperEvery": 2, "reviewers": 1})
	v = s.waitCampaign(v.ID, 6*time.Minute)
	if v.Status != store.StatusCompleted {
		t.Fatalf("campaign %s", v.Status)
	}
	for i := range 2 {
		s.waitWorkflow(workflows.ArchiverID(v.ID, workflows.AgentName(i)), 3*time.Minute)
	}
	ctx := context.Background()
	ps, _ := s.st.ListPapers(ctx, store.PaperFilter{CampaignID: v.ID})
	for _, p := range ps {
		s.waitWorkflow("review-"+p.ID, 3*time.Minute)
	}
	runs, papers, reviews := checkOneKeyPerAgent(t, s.st, v.ID)
	if runs != 3+2*4 || papers != 4 || reviews < 4 {
		t.Fatalf("%d runs, %d papers, %d reviews; want 11, 4, >= 4", runs, papers, reviews)
	}

	// The archive, written by a process without the site secret.
	repo, err := archive.Open(ctx, archiveDir)
	if err != nil {
		t.Fatal(err)
	}
	branches, err := repo.Branches(ctx, archive.AgentPrefix)
	if err != nil {
		t.Fatal(err)
	}
	agents, _ := s.st.ListAgents(ctx, v.ID)
	want := map[string]bool{}
	for _, a := range agents {
		b, _ := archive.BranchName(a.PeerID, "search")
		want[b] = true
	}
	if len(branches) != len(want) {
		t.Fatalf("archive branches %v, want one per agent key %v", branches, want)
	}
	for _, b := range branches {
		if !want[b] {
			t.Fatalf("branch %s is not named after a registered agent key (%v)", b, want)
		}
		files, err := repo.Files(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for name, body := range files {
			if !strings.HasPrefix(name, "run-") || !strings.HasSuffix(name, ".json") {
				continue
			}
			r, err := archive.ParseRun(body)
			if err != nil {
				t.Fatalf("%s/%s: %v", b, name, err)
			}
			if !strings.Contains(b, "/"+r.Receipt.PeerID+"/") {
				t.Fatalf("%s/%s is signed by %s, not the branch's key", b, name, r.Receipt.PeerID)
			}
			n++
		}
		if n == 0 {
			t.Fatalf("branch %s has no runs", b)
		}
	}

	// A restarted node keeps its identity and task queue.
	node1.stop(t)
	node1.run(t, s.bin)
	if got := node1.await(t, reNodeID, 60*time.Second)[1]; got != id1 {
		t.Fatalf("node1 restarted as %s, was %s", got, id1)
	}
	if got := node1.await(t, reNodeTQ, 10*time.Second)[1]; got != tq1 {
		t.Fatalf("node1's task queue %s, was %s", got, tq1)
	}
}

// TestNodeKilledMidCampaign: one of the site's two nodes is killed with
// SIGKILL mid-campaign. The agent that ran on it moves to the other node
// within about a minute and carries on; the campaign completes with every
// experiment accounted for (rows = completed experiments, one per run),
// and the moved agent's receipts, before and after the move, verify under
// its one registered key.
func TestNodeKilledMidCampaign(t *testing.T) {
	resumed, gap := nodeKilledMidCampaign(t)
	t.Logf("kill -> the moved agent's next experiment started: %s (its experiments started every %s before the kill)",
		resumed.Round(100*time.Millisecond), gap.Round(100*time.Millisecond))
}

// BenchmarkNodeFailover measures TestNodeKilledMidCampaign's time from the
// SIGKILL of an agent's node to that agent's next experiment starting on
// another node, against the agent's usual gap between experiment starts
// before the kill (same run).
//
//	go test -run '^$' -bench NodeFailover -benchtime 3x ./e2e
func BenchmarkNodeFailover(b *testing.B) {
	for i := 0; i < b.N; i++ {
		resumed, gap := nodeKilledMidCampaign(b)
		b.ReportMetric(resumed.Seconds(), "kill_to_next_experiment_s")
		b.ReportMetric(gap.Seconds(), "usual_gap_s")
		b.ReportMetric(resumed.Seconds()/gap.Seconds(), "ratio")
		b.Logf("kill -> next experiment %s; usual gap %s", resumed.Round(100*time.Millisecond), gap.Round(100*time.Millisecond))
	}
}

// nodeKilledMidCampaign runs the scenario and returns the time from the
// kill to the moved agent's next experiment start, and the agent's mean
// gap between experiment starts before the kill.
func nodeKilledMidCampaign(t testing.TB) (time.Duration, time.Duration) {
	s := newSite(t)
	s.startAPI()
	worker := s.start("worker", true, "worker", "--queues", "hyperspace,experiments")
	nodeA, _, addrA, tqA := s.startNode("nodeA", "")
	nodes := map[string]*proc{tqA: nodeA}
	nodeB, _, _, tqB := s.startNode("nodeB", addrA)
	nodes[tqB] = nodeB
	s.waitNodes(2)

	const perAgent = 12
	v := s.startCampaign(map[string]any{"domain": "search", "agents": 2, "experiments": perAgent, "seed": 9, "paperEvery": 0})
	// Wait until the research phase is under way, then kill the node of agent-1.
	var victim, survivor string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		p := s.campaign(v.ID).Progress
		if p != nil {
			if a := p.Agents[workflows.AgentName(0)]; a != nil && a.Done >= 3 && a.Node != "" {
				victim = a.Node
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent-1 never got going: %+v", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
	survivor = tqB
	if victim == tqB {
		survivor = tqA
	}
	starts := regexp.MustCompile(`time=(\S+) .*experiment started.* agent=agent-1 `)
	gap := meanGap(worker.matches(starts))
	startedBefore := worker.count(starts)
	if err := nodes[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	<-nodes[victim].done
	t.Logf("killed the node of agent-1 (%s)", victim)

	var resumed time.Duration
	for {
		if worker.count(starts) > startedBefore+1 { // one may have been in flight at the kill
			resumed = time.Since(killedAt)
			break
		}
		if time.Since(killedAt) > 3*time.Minute {
			t.Fatalf("agent-1 did not carry on within 3 minutes of its node's death:\n%s", worker.tail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}

	v = s.waitCampaign(v.ID, 8*time.Minute)
	if v.Status != store.StatusCompleted {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	var sum workflows.Summary
	if err := json.Unmarshal(v.Summary, &sum); err != nil {
		t.Fatal(err)
	}
	rows, _, err := s.st.ListExperiments(context.Background(), store.ExperimentFilter{CampaignID: v.ID})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		k := fmt.Sprintf("%s/%d", r.Agent, r.RunNumber)
		if seen[k] {
			t.Fatalf("two rows for %s", k)
		}
		seen[k] = true
	}
	if sum.Failed != 0 || sum.Experiments != 3+2*perAgent || len(rows) != sum.Experiments {
		t.Fatalf("summary: %d completed, %d failed; %d rows; want %d completed, 0 failed", sum.Experiments, sum.Failed, len(rows), 3+2*perAgent)
	}
	var moved *workflows.AgentProgress
	for i := range sum.Agents {
		if sum.Agents[i].Agent == workflows.AgentName(0) {
			moved = &sum.Agents[i]
		}
	}
	if moved == nil || moved.Moves < 1 || moved.Node != survivor {
		t.Fatalf("agent-1 ended %+v; want it moved to %s", moved, survivor)
	}
	checkOneKeyPerAgent(t, s.st, v.ID)
	t.Logf("node kill: agent-1 moved %d time(s) to %s; campaign completed with %d experiments, none failed or duplicated", moved.Moves, survivor, sum.Experiments)
	return resumed, gap
}

// meanGap is the mean interval between log timestamps (RFC 3339).
func meanGap(stamps [][]string) time.Duration {
	var ts []time.Time
	for _, m := range stamps {
		if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
			ts = append(ts, t)
		}
	}
	if len(ts) < 2 {
		return time.Second
	}
	return ts[len(ts)-1].Sub(ts[0]) / time.Duration(len(ts)-1)
}
