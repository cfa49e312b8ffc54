package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/archive"
	ghpub "github.com/hyperspace-ai/hyperspace/internal/archive/github"
	"github.com/hyperspace-ai/hyperspace/internal/archive/github/githubtest"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/llm/llmtest"
	"github.com/hyperspace-ai/hyperspace/internal/memory"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workers"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// communityStack adds the archive (a local bare repository, a second bare
// repository as its git remote, and a GitHub mirror against the in-process
// fake GitHub of package githubtest: GitHub itself cannot be reached from
// the test machines), an archive worker, and an API that serves papers,
// search and status.
type communityStack struct {
	*stack
	repoDir, remoteDir string
	gh                 *githubtest.Server
	archInfo           *api.ArchiveInfo
}

func newCommunityStack(t testing.TB) *communityStack {
	s := newStackQueues(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	cs := &communityStack{stack: s, repoDir: filepath.Join(t.TempDir(), "archive.git"), remoteDir: filepath.Join(t.TempDir(), "remote.git")}
	ctx := context.Background()
	repo, err := archive.Open(ctx, cs.repoDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archive.Open(ctx, cs.remoteDir); err != nil {
		t.Fatal(err)
	}
	cs.gh = githubtest.New("hyperspace", "agi", "ghp_test")
	t.Cleanup(cs.gh.Close)
	pub, err := ghpub.New(ghpub.Config{Owner: "hyperspace", Repo: "agi", Token: "ghp_test", BaseURL: cs.gh.URL()})
	if err != nil {
		t.Fatal(err)
	}
	s.acts.Archive = &activities.Archive{Repo: repo, Remote: cs.remoteDir, GitHub: pub, GitHubRepo: "hyperspace/agi"}
	s.acts.Memory = memory.New(activities.StoreCorpus(s.st), memory.Options{MinRefit: time.Millisecond})
	g, err := workers.Start(workers.Options{Client: s.tc, Queues: []string{workflows.ArchiveQueue}, Activities: s.acts, Identity: "archive"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	cs.archInfo = &api.ArchiveInfo{Location: cs.repoDir, Remote: cs.remoteDir, GitHub: "hyperspace/agi", SnapshotEvery: "1h0m0s"}
	s.serve(&api.Server{Store: s.st, Blob: s.blob, Temporal: s.tc, Domains: s.registry, Logger: s.acts.Logger,
		Namespace: s.ts.GetDefaultNamespace(), Archive: cs.archInfo, Memory: s.acts.Memory})
	return cs
}

func (cs *communityStack) papers(campaign string) []api.PaperSummary {
	code, body := cs.do(http.MethodGet, "/api/v1/papers?campaign="+campaign, nil)
	if code != 200 {
		cs.t.Fatalf("papers: %d %s", code, body)
	}
	var out struct{ Papers []api.PaperSummary }
	_ = json.Unmarshal(body, &out)
	return out.Papers
}

// waitReviewed waits until every paper of the campaign has a verdict.
func (cs *communityStack) waitReviewed(campaign string, want int, timeout time.Duration) []api.PaperSummary {
	deadline := time.Now().Add(timeout)
	for {
		ps := cs.papers(campaign)
		done := 0
		for _, p := range ps {
			if p.Status != store.PaperReviewing {
				done++
			}
		}
		if len(ps) >= want && done == len(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			cs.t.Fatalf("%d papers, %d reviewed after %s", len(ps), done, timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestCommunity runs a campaign long enough to write papers over three P2P
// nodes: each paper is reviewed on the two nodes that did not write it, the
// verdicts land with signed reviews, the archive holds a branch per agent
// with runs, summaries, best.json, JOURNAL.md and papers, pushed to the
// remote and mirrored to (fake) GitHub; re-archiving after a restart makes
// no commit; the scheduled snapshot parses as the public format; and
// fabricated claims are caught by review.
func TestCommunity(t *testing.T) {
	cs := newCommunityStack(t)
	nodes := cs.startNodes(t, 3)
	v := cs.startCampaign(map[string]any{"domain": "ml", "agents": 2, "experiments": 4, "seed": 11, "budget": 10,
		"baseline": tinyML, "paperEvery": 2, "reviewers": 2})
	var in workflows.CampaignInput
	_ = jsonUnmarshal(v.Request, &in)
	if in.Community == nil || in.Community.PaperEvery != 2 || !in.Community.Archive || len(in.NodeQueues) != 3 {
		t.Fatalf("campaign input: %+v %+v", in.Community, in.NodeQueues)
	}
	v = cs.waitCampaign(v.ID, 4*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	ps := cs.waitReviewed(v.ID, 4, 4*time.Minute)
	if len(ps) != 4 {
		t.Fatalf("want 2 papers per agent, got %d", len(ps))
	}
	ctx := context.Background()
	for _, p := range ps {
		// The verdict is recorded before the review workflow archives it:
		// wait for the workflows to end before reading the archive.
		if err := cs.tc.GetWorkflow(ctx, "review-"+p.ID, "").Get(ctx, nil); err != nil {
			t.Fatalf("review of %s: %v", p.ID, err)
		}
	}
	// The agents' archivers commit after their agents' last finding.
	for i := range 2 {
		if err := cs.tc.GetWorkflow(ctx, workflows.ArchiverID(v.ID, workflows.AgentName(i)), "").Get(ctx, nil); err != nil {
			t.Fatalf("archiver of agent %d: %v", i+1, err)
		}
	}
	// Histories for the replay tests (HYPERSPACE_RECORD_HISTORIES=1).
	saveHistory(t, history(t, cs.tc, v.WorkflowID[len("campaign-"):]+"/"+workflows.AgentName(0)), "agent_community.json")
	saveHistory(t, history(t, cs.tc, "review-"+ps[0].ID), "review.json")
	saveHistory(t, history(t, cs.tc, workflows.ArchiverID(v.ID, workflows.AgentName(0))), "archiver.json")
	for _, p := range ps {
		if p.Status != store.PaperReviewed || p.Score == nil {
			t.Fatalf("paper %s: %+v", p.ID, p)
		}
		code, body := cs.do(http.MethodGet, "/api/v1/papers/"+p.ID, nil)
		if code != 200 {
			t.Fatalf("paper %s: %d %s", p.ID, code, body)
		}
		var full struct {
			Markdown string
			Record   paper.Signed
			Reviews  []paper.SignedReview
		}
		_ = json.Unmarshal(body, &full)
		if err := full.Record.Verify(); err != nil {
			t.Fatalf("paper %s does not verify: %v", p.ID, err)
		}
		for _, sec := range paper.Sections {
			if !strings.Contains(full.Markdown, sec) {
				t.Fatalf("paper lacks %s", sec)
			}
		}
		if len(full.Reviews) != 2 {
			t.Fatalf("paper %s has %d reviews, want 2", p.ID, len(full.Reviews))
		}
		// Reviews ran on the two nodes other than the author's.
		author := authorNode(t, cs.tc, p.ID)
		seen := map[string]bool{}
		var scores []int
		for _, r := range full.Reviews {
			if err := r.Verify(); err != nil {
				t.Fatalf("review does not verify: %v", err)
			}
			if !r.Review.Reproduction.Ran || r.Review.Reproduction.Seed == 0 {
				t.Fatalf("review did not re-run the key receipt: %+v", r.Review.Reproduction)
			}
			if "node-"+r.Review.Node == author || seen[r.Review.Node] {
				t.Fatalf("review on the author's node or twice on one node: %s (author %s)", r.Review.Node, author)
			}
			seen[r.Review.Node] = true
			scores = append(scores, r.Review.Score)
			t.Logf("paper %s review by %s: %d %v", receipt.ShortID(p.ID), receipt.ShortID(r.Review.Node), r.Review.Score, r.Review.Reasons)
		}
		if got := paper.Median(scores); got != *p.Score || p.Breakthrough != (got >= 8) {
			t.Fatalf("verdict %v/%v, reviews %v", *p.Score, p.Breakthrough, scores)
		}
	}

	// The archive: a branch per agent with its runs, summaries, best,
	// journal and papers.
	repo := cs.acts.Archive.Repo
	branches, err := repo.Branches(ctx, archive.AgentPrefix)
	if err != nil || len(branches) != 2 {
		t.Fatalf("agent branches %v: %v", branches, err)
	}
	rows := cs.allExperiments(v.ID)
	runs := 0
	for _, b := range branches {
		files, err := repo.Files(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		npapers := 0
		for name, body := range files {
			switch {
			case strings.HasPrefix(name, "run-") && strings.HasSuffix(name, ".json"):
				runs++
				s, err := archive.ParseRun(body)
				if err != nil || s.Verify() != nil {
					t.Fatalf("%s/%s: %v", b, name, err)
				}
				if _, ok := files[strings.TrimSuffix(name, ".json")+".md"]; !ok {
					t.Fatalf("%s lacks the summary of %s", b, name)
				}
			case strings.HasPrefix(name, "papers/"):
				npapers++
				if !strings.Contains(string(body), "## Peer review") {
					t.Fatalf("%s/%s lacks its verdict", b, name)
				}
			}
		}
		if files[archive.BestFile] == nil || files[archive.JournalFile] == nil || npapers != 2 {
			t.Fatalf("branch %s: best %v journal %v papers %d", b, files[archive.BestFile] != nil, files[archive.JournalFile] != nil, npapers)
		}
		// Pushed to the remote and mirrored to GitHub, identical.
		remote, err := archive.Open(ctx, cs.remoteDir)
		if err != nil {
			t.Fatal(err)
		}
		rfiles, err := remote.Files(ctx, b)
		if err != nil || len(rfiles) != len(files) {
			t.Fatalf("remote branch %s: %d files vs %d: %v", b, len(rfiles), len(files), err)
		}
		gfiles := cs.gh.Files(b)
		for name, body := range files {
			if gfiles[name] != string(body) {
				t.Fatalf("GitHub mirror of %s differs at %s", b, name)
			}
		}
	}
	if runs != len(rows) {
		t.Fatalf("archive holds %d runs, the database %d", runs, len(rows))
	}

	// A restart: reopen the repository, re-run the archive for every agent.
	// Same trees, no new commits.
	before := map[string]int{}
	heads := map[string]string{}
	for _, b := range branches {
		before[b], _ = repo.CommitCount(ctx, b)
		heads[b], _, _ = repo.Head(ctx, b)
	}
	repo2, err := archive.Open(ctx, cs.repoDir)
	if err != nil {
		t.Fatal(err)
	}
	acts2 := *cs.acts
	arch2 := *cs.acts.Archive
	arch2.Repo = repo2
	acts2.Archive = &arch2
	for _, a := range []string{workflows.AgentName(0), workflows.AgentName(1)} {
		res, err := acts2.ArchiveAgent(ctx, workflows.ArchiveInput{CampaignID: v.ID, Agent: a, Domain: "ml"})
		if err != nil || res.Changed {
			t.Fatalf("re-archive %s: changed=%v err=%v", a, res.Changed, err)
		}
	}
	for _, b := range branches {
		n, _ := repo2.CommitCount(ctx, b)
		h, _, _ := repo2.Head(ctx, b)
		if n != before[b] || h != heads[b] {
			t.Fatalf("%s: %d commits (head %s) after restart, %d (%s) before", b, n, h, before[b], heads[b])
		}
	}

	// Breakthroughs have GitHub pull requests.
	code, body := cs.do(http.MethodGet, "/api/v1/breakthroughs", nil)
	if code != 200 {
		t.Fatalf("breakthroughs: %d %s", code, body)
	}
	var bt struct{ Breakthroughs []api.PaperSummary }
	_ = json.Unmarshal(body, &bt)
	deadline := time.Now().Add(time.Minute)
	for len(cs.gh.Pulls()) < len(bt.Breakthroughs) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if len(cs.gh.Pulls()) != len(bt.Breakthroughs) {
		t.Fatalf("%d breakthroughs, %d pull requests", len(bt.Breakthroughs), len(cs.gh.Pulls()))
	}
	t.Logf("%d papers, %d breakthroughs", len(ps), len(bt.Breakthroughs))

	// The snapshot schedule: triggered now, it writes the public format.
	if err := workers.EnsureSnapshotSchedule(ctx, cs.tc, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := cs.tc.ScheduleClient().GetHandle(ctx, workflows.SnapshotScheduleID).Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	var snap archive.Snapshot
	deadline = time.Now().Add(time.Minute)
	for {
		files, err := repo.Files(ctx, archive.SnapshotBranch)
		if err == nil {
			if snap, err = archive.ParseSnapshot(files[archive.SnapshotPath]); err != nil {
				t.Fatalf("snapshot does not parse: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot commit")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if snap.ExperimentCounts.MLTotalRuns != len(rows) || snap.Leaderboards.MachineLearning.GlobalBest == nil {
		t.Fatalf("snapshot: %+v", snap.ExperimentCounts)
	}
	// The mirror and the status row follow the local commit (same activity).
	for {
		code, body = cs.do(http.MethodGet, "/api/v1/status", nil)
		mirrored := cs.gh.Files(archive.SnapshotBranch)[archive.SnapshotPath] != ""
		if code == 200 && mirrored && strings.Contains(string(body), `"lastSnapshot":"`) && strings.Contains(string(body), cs.repoDir) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot mirrored to GitHub: %v; status: %d %s", mirrored, code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Semantic search finds papers and experiments.
	code, body = cs.do(http.MethodGet, "/api/v1/search?q=learning+rate+warmup+val_loss&domain=ml&k=5", nil)
	if code != 200 || !strings.Contains(string(body), `"kind":"experiment"`) {
		t.Fatalf("search: %d %s", code, body)
	}
	code, body = cs.do(http.MethodGet, "/api/v1/search?q=noise+floor+paper&kind=paper", nil)
	if code != 200 || !strings.Contains(string(body), `"kind":"paper"`) {
		t.Fatalf("paper search: %d %s", code, body)
	}
	if code, _ := cs.do(http.MethodGet, "/api/v1/search", nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("search without q: %d", code)
	}

	// Fabricated claims are caught.
	var queues []string
	for _, n := range nodes {
		queues = append(queues, n.TaskQueue())
	}
	t.Run("fabricated", func(t *testing.T) { fabricatedClaims(t, cs, v.ID, rows, queues) })
}

// authorNode finds the node queue the paper's author ran on, from the
// review workflow's input.
func authorNode(t *testing.T, tc client.Client, paperID string) string {
	t.Helper()
	h := history(t, tc, "review-"+paperID)
	var in workflows.ReviewInput
	attrs := h.Events[0].GetWorkflowExecutionStartedEventAttributes()
	if err := json.Unmarshal(attrs.GetInput().GetPayloads()[0].GetData(), &in); err != nil {
		t.Fatal(err)
	}
	return in.AuthorQueue
}

// fabricatedClaims: (1) a receipt whose metric was altered after signing,
// and (2) an honestly signed receipt whose claimed metric a re-run misses
// by far; each gets a paper and a peer review, and neither passes.
func fabricatedClaims(t *testing.T, cs *communityStack, campaign string, rows []store.Experiment, queues []string) {
	ctx := context.Background()
	var src receipt.Signed
	for _, r := range rows {
		if !r.Baseline {
			_ = json.Unmarshal(r.Record, &src)
			break
		}
	}
	key := identity.FromSeed([]byte("fabricator-fabricator-fabricator"))
	floor := paper.Floor{Mean: src.Receipt.NoiseFloor.Mean, SD: src.Receipt.NoiseFloor.SD, N: src.Receipt.NoiseFloor.N, K: 2}

	review := func(name string, window receipt.Signed) *workflows.Verdict {
		d, err := paper.Synthesize(paper.Facts{Domain: "ml", Project: src.Receipt.Project, Campaign: campaign, Agent: name, Number: 1,
			Metric: src.Receipt.Metric.Name, Direction: src.Receipt.Metric.Direction, Floor: floor, Window: []receipt.Signed{window}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sp, err := paper.Sign(d.Paper, key)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := json.Marshal(sp)
		if _, err := cs.st.InsertPaper(ctx, store.Paper{ID: sp.ID, CampaignID: campaign, Domain: "ml", Agent: name, Number: 1, PeerID: sp.Paper.PeerID, Title: sp.Paper.Title, Record: rec}); err != nil {
			t.Fatal(err)
		}
		run, err := cs.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "review-" + sp.ID, TaskQueue: workflows.TaskQueue}, workflows.PeerReviewWorkflow,
			workflows.ReviewInput{PaperID: sp.ID, CampaignID: campaign, Domain: "ml", Agent: name, Candidates: queues, Reviewers: 3, BudgetSeconds: 10})
		if err != nil {
			t.Fatal(err)
		}
		var v workflows.Verdict
		if err := run.Get(ctx, &v); err != nil {
			t.Fatal(err)
		}
		return &v
	}

	// (1) Altered after signing: the stored copy says 0.5, the signature
	// covers the real value.
	altered := src
	altered.Receipt.Metric.Value = 0.5
	altered.Receipt.Agent = "forger-1"
	altered.Receipt.RunNumber = 1
	altered.ID = "f0" + src.ID[2:]
	forged, _ := json.Marshal(altered)
	if _, err := cs.st.InsertExperiment(ctx, store.Experiment{ID: altered.ID, CampaignID: campaign, Agent: "forger-1", Domain: "ml", RunNumber: 1,
		Metric: 0.5, Seed: src.Receipt.Seed, Record: forged}); err != nil {
		t.Fatal(err)
	}
	v := review("forger-1", altered)
	if v.Status != "reviewed" || v.Score > 1 || v.Breakthrough || len(v.Reviews) != 3 {
		t.Fatalf("altered receipt passed review: %+v", v)
	}

	// (2) Signed, but the number is made up: the re-runs miss it by far.
	made := src.Receipt
	made.Agent, made.RunNumber, made.Metric.Value = "forger-2", 1, src.Receipt.Metric.Value*0.3
	ms, err := receipt.Sign(made, key)
	if err != nil {
		t.Fatal(err)
	}
	mrec, _ := json.Marshal(ms)
	if _, err := cs.st.InsertExperiment(ctx, store.Experiment{ID: ms.ID, CampaignID: campaign, Agent: "forger-2", Domain: "ml", RunNumber: 1,
		Metric: made.Metric.Value, Seed: made.Seed, Record: mrec}); err != nil {
		t.Fatal(err)
	}
	v = review("forger-2", ms)
	if v.Status != "reviewed" || v.Score > 2 || v.Breakthrough {
		t.Fatalf("unreproducible claim passed review: %+v", v)
	}
}

// TestLLMWritesPaper: with an LLM configured (llmtest, an in-process
// stand-in for a hosted OpenAI-compatible endpoint), the LLM writes a
// paper's title, abstract and discussion from the computed facts; an
// unusable answer falls back to the built-in writer and says so. No P2P
// nodes: papers are written and marked unreviewed.
func TestLLMWritesPaper(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue, workflows.ExperimentsQueue}, 0)
	srv := llmtest.New()
	defer srv.Close()
	s.allowLLM(srv.BaseURL()) // the operator lists the endpoint (--llm-allow)
	prose, _ := json.Marshal(map[string]any{"title": "Short budgets favour small models",
		"abstract": "We ran two experiments against a three-seed noise floor.", "discussion": "Try a shorter context next."})
	// hypothesize x2 (unusable: built-in fallback), paper 1, hypothesize x2, paper 2 (unusable).
	srv.EnqueueContent("no", "no", string(prose), "no", "no", "this is not JSON")
	v := s.startCampaign(map[string]any{"domain": "ml", "agents": 1, "experiments": 4, "seed": 5, "budget": 10, "baseline": tinyML,
		"paperEvery": 2, "llm": map[string]any{"baseUrl": srv.BaseURL(), "model": "test-model"}})
	v = s.waitCampaign(v.ID, 3*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign %s: %s", v.Status, v.Error)
	}
	ps, err := s.st.ListPapers(context.Background(), store.PaperFilter{CampaignID: v.ID})
	if err != nil || len(ps) != 2 {
		t.Fatalf("papers %d: %v", len(ps), err)
	}
	byNum := map[int]paper.Signed{}
	for _, p := range ps {
		var sp paper.Signed
		_ = json.Unmarshal(p.Record, &sp)
		byNum[p.Number] = sp
		if p.Status != store.PaperUnreviewed {
			t.Fatalf("paper without reviewer nodes: %s", p.Status)
		}
	}
	p1, p2 := byNum[1].Paper, byNum[2].Paper
	if p1.Writer != "llm:test-model" || p1.Title != "Short budgets favour small models" || !strings.Contains(p1.Markdown, "## Discussion\n\nTry a shorter context next.") {
		t.Fatalf("paper 1: writer %q title %q", p1.Writer, p1.Title)
	}
	if p2.Writer != "builtin (llm fallback: bad_json)" || strings.Contains(p2.Markdown, "## Discussion") {
		t.Fatalf("paper 2: writer %q", p2.Writer)
	}
	// The facts stay computed: the results table is there either way.
	for _, p := range []paper.Paper{p1, p2} {
		if !strings.Contains(p.Markdown, "## Results") || len(p.Receipts) != 2 {
			t.Fatalf("paper %d lacks its facts", p.Number)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 6 || !strings.Contains(string(reqs[2].Body), "Facts") {
		t.Fatalf("%d LLM requests; paper request %s", len(reqs), reqs[2].Body)
	}
	// Hypothesize consults semantic memory: similar past work is in the prompt.
	for _, i := range []int{0, 3} {
		if !strings.Contains(string(reqs[i].Body), "Related work from the network's memory") {
			t.Fatalf("hypothesis prompt %d has no related work: %s", i, reqs[i].Body)
		}
	}
}

// TestBreakthroughToGitHub: an honest, reproducible result far beyond its
// noise floor (a search pipeline whose evaluation does not depend on the
// seed, against a stated floor of the baseline's value ± 0.001) is reviewed
// on two nodes, scores 8 or more, is announced over gossip, lands in the
// author's archive branch with its verdict, and gets one pull request on the
// (fake) GitHub mirror.
func TestBreakthroughToGitHub(t *testing.T) {
	cs := newCommunityStack(t)
	nodes := cs.startNodes(t, 3)
	ctx := context.Background()
	d, _ := cs.registry.Get("search")
	eval := func(over map[string]any) (domains.Config, float64, float64) {
		base := d.Baseline().Clone()
		for k, v := range over {
			base[k] = v
		}
		cfg, err := d.Validate(base)
		if err != nil {
			t.Fatal(err)
		}
		r, err := d.Evaluate(ctx, cfg, 1, domains.EvalOptions{DataDir: cs.dataDir})
		if err != nil {
			t.Fatal(err)
		}
		return cfg, r.Metric, r.TestMetric
	}
	_, m0, _ := eval(map[string]any{"reranker": "none"})
	cfg, v, tv := eval(map[string]any{"reranker": "none", "stemmer": "porter", "stopwords": true, "rm3": true})
	if v < m0+0.01 {
		t.Fatalf("the chosen pipeline (%.4f) does not beat the baseline (%.4f)", v, m0)
	}
	const campaign, agent = "bt", "agent-0"
	if err := cs.st.CreateCampaign(ctx, store.Campaign{ID: campaign, Domain: "search", Status: store.StatusCompleted, Agents: 1, Experiments: 1, BaselineSeeds: 3, Request: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	key, err := cs.acts.Keys.Register(context.Background(), campaign, agent)
	if err != nil {
		t.Fatal(err)
	}
	floor := receipt.NoiseFloor{Mean: m0, SD: 0.001, N: 3, Threshold: 0.002}
	rs, err := receipt.Sign(receipt.Receipt{Project: "cranfield", RunNumber: 1, Timestamp: time.Now().UnixMilli(),
		Hypothesis: "Porter stemming, stopwords and RM3 feedback on BM25F", Config: cfg, Domain: "search", Campaign: campaign, Agent: agent,
		Seed: 1, Metric: receipt.MetricValue{Name: d.Metric().Name, Direction: string(d.Metric().Direction), Value: v, TestValue: tv},
		NoiseFloor: &floor, IsNewBest: true, BeatsNoise: true}, key)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(rs)
	if _, err := cs.st.InsertExperiment(ctx, store.Experiment{ID: rs.ID, CampaignID: campaign, Agent: agent, Domain: "search", RunNumber: 1,
		Metric: v, TestMetric: &tv, Seed: 1, IsNewBest: true, Record: rec}); err != nil {
		t.Fatal(err)
	}
	pd, err := paper.Synthesize(paper.Facts{Domain: "search", Project: "cranfield", Campaign: campaign, Agent: agent, Number: 1,
		Metric: d.Metric().Name, Direction: string(d.Metric().Direction), Floor: paper.Floor{Mean: m0, SD: 0.001, N: 3, K: 2},
		Window: []receipt.Signed{rs}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sp, err := paper.Sign(pd.Paper, key)
	if err != nil {
		t.Fatal(err)
	}
	prec, _ := json.Marshal(sp)
	if _, err := cs.st.InsertPaper(ctx, store.Paper{ID: sp.ID, CampaignID: campaign, Domain: "search", Agent: agent, Number: 1,
		PeerID: sp.Paper.PeerID, Title: sp.Paper.Title, Record: prec}); err != nil {
		t.Fatal(err)
	}
	feed, stop := nodes[1].P2P.SubscribeRaw()
	defer stop()
	run, err := cs.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "review-" + sp.ID, TaskQueue: workflows.TaskQueue}, workflows.PeerReviewWorkflow,
		workflows.ReviewInput{PaperID: sp.ID, CampaignID: campaign, Domain: "search", Agent: agent, AuthorQueue: nodes[0].TaskQueue(),
			Candidates: []string{nodes[1].TaskQueue(), nodes[2].TaskQueue()}, Reviewers: 2, BudgetSeconds: 30, Archive: true})
	if err != nil {
		t.Fatal(err)
	}
	var verdict workflows.Verdict
	if err := run.Get(ctx, &verdict); err != nil {
		t.Fatal(err)
	}
	if !verdict.Breakthrough || verdict.Score < 8 || len(verdict.Reviews) != 2 {
		rows, _ := cs.st.ListReviews(ctx, sp.ID)
		for _, r := range rows {
			t.Logf("review: %s", r.Record)
		}
		t.Fatalf("verdict %+v", verdict)
	}
	// Announced over gossip from the author's node.
	deadline := time.After(20 * time.Second)
	for announced := false; !announced; {
		select {
		case m := <-feed:
			announced = strings.Contains(string(m.Data), `"type":"breakthrough"`) && strings.Contains(string(m.Data), sp.ID)
		case <-deadline:
			t.Fatal("no breakthrough announcement reached another node")
		}
	}
	// Listed, archived with its verdict, and proposed on GitHub.
	code, body := cs.do(http.MethodGet, "/api/v1/breakthroughs?domain=search", nil)
	if code != 200 || !strings.Contains(string(body), sp.ID) {
		t.Fatalf("breakthroughs: %d %s", code, body)
	}
	branch, _ := archive.BranchName(key.ID(), "search")
	files, err := cs.acts.Archive.Repo.Files(ctx, branch)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for name, b := range files {
		if strings.HasPrefix(name, "papers/") && strings.Contains(string(b), "**breakthrough**") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the archive branch %s lacks the breakthrough paper", branch)
	}
	pulls := cs.gh.Pulls()
	if len(pulls) != 1 || !strings.HasPrefix(pulls[0].Title, "Breakthrough: ") {
		t.Fatalf("pull requests: %+v", pulls)
	}
	// Re-running the archive step opens no second pull request.
	if _, err := cs.acts.ArchiveBreakthrough(ctx, workflows.FinishInput{Verdict: verdict}); err != nil {
		t.Fatal(err)
	}
	if len(cs.gh.Pulls()) != 1 {
		t.Fatalf("a second pull request: %+v", cs.gh.Pulls())
	}
}
