package workflows

import (
	"context"
	"sync"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// reviewActs stand in for the review activities.
type reviewActs struct {
	mu        sync.Mutex
	scores    map[string]int // by reviewer queue; missing: the node fails
	asked     []string
	finished  []Verdict
	announced int
	archived  []string
}

func (r *reviewActs) ReviewPaper(ctx context.Context, in ReviewTask) (ReviewOutcome, error) {
	q := activity.GetInfo(ctx).TaskQueue
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, q)
	s, ok := r.scores[q]
	if !ok {
		return ReviewOutcome{}, temporal.NewNonRetryableApplicationError("node gone", "Gone", nil)
	}
	return ReviewOutcome{ReviewID: "r-" + q, Node: q, Score: s}, nil
}

func (r *reviewActs) FinishReview(_ context.Context, in FinishInput) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = append(r.finished, in.Verdict)
	return nil
}

func (r *reviewActs) Announce(context.Context, FinishInput) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.announced++
	return nil
}

func (r *reviewActs) ArchiveBreakthrough(context.Context, FinishInput) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.archived = append(r.archived, "breakthrough")
	return nil
}

func (r *reviewActs) ArchiveAgent(context.Context, ArchiveInput) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.archived = append(r.archived, "agent")
	return nil
}

func runReview(t *testing.T, acts *reviewActs, in ReviewInput) (*Verdict, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(PeerReviewWorkflow)
	env.RegisterActivityWithOptions(acts.ReviewPaper, activity.RegisterOptions{Name: ActReviewPaper})
	env.RegisterActivityWithOptions(acts.FinishReview, activity.RegisterOptions{Name: ActFinishReview})
	env.RegisterActivityWithOptions(acts.Announce, activity.RegisterOptions{Name: ActAnnounceBreakthrough})
	env.RegisterActivityWithOptions(acts.ArchiveBreakthrough, activity.RegisterOptions{Name: ActArchiveBreakthrough})
	env.RegisterActivityWithOptions(acts.ArchiveAgent, activity.RegisterOptions{Name: ActArchiveAgent})
	env.ExecuteWorkflow(PeerReviewWorkflow, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("review workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		return nil, err
	}
	var v Verdict
	if err := env.GetWorkflowResult(&v); err != nil {
		return nil, err
	}
	return &v, nil
}

func TestPeerReviewReplacesAFailedReviewer(t *testing.T) {
	acts := &reviewActs{scores: map[string]int{"node-b": 9, "node-c": 8, "node-d": 3}}
	v, err := runReview(t, acts, ReviewInput{PaperID: "p1", AuthorQueue: "node-a",
		Candidates: []string{"node-b", "node-c", "node-d", "node-x"}, Reviewers: 3, Archive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Reviews) != 3 || v.Status != "reviewed" {
		t.Fatalf("verdict %+v (asked %v)", v, acts.asked)
	}
	wantUnreachable := 0
	for _, q := range acts.asked {
		if q == "node-x" {
			wantUnreachable = 1
		}
		if q == "node-a" {
			t.Fatal("the author's node reviewed its own paper")
		}
	}
	if len(v.Unreachable) != wantUnreachable {
		t.Fatalf("unreachable %v, asked %v", v.Unreachable, acts.asked)
	}
	if v.Score != 8 || !v.Breakthrough {
		t.Fatalf("median of 9, 8, 3 is 8, a breakthrough: %+v", v)
	}
	if len(acts.finished) != 1 || acts.announced != 1 || len(acts.archived) != 1 || acts.archived[0] != "breakthrough" {
		t.Fatalf("finished %d announced %d archived %v", len(acts.finished), acts.announced, acts.archived)
	}
}

func TestPeerReviewWithFewerReviewers(t *testing.T) {
	acts := &reviewActs{scores: map[string]int{"node-b": 7}}
	v, err := runReview(t, acts, ReviewInput{PaperID: "p2", Candidates: []string{"node-b", "node-gone"}, Reviewers: 3, Archive: true})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "reviewed" || len(v.Reviews) != 1 || v.Score != 7 || v.Breakthrough || len(v.Unreachable) != 1 {
		t.Fatalf("verdict %+v", v)
	}
	if acts.announced != 0 || len(acts.archived) != 1 || acts.archived[0] != "agent" {
		t.Fatalf("a non-breakthrough was announced or not archived: %d %v", acts.announced, acts.archived)
	}
}

func TestPeerReviewWithoutReviewers(t *testing.T) {
	acts := &reviewActs{}
	v, err := runReview(t, acts, ReviewInput{PaperID: "p3", Candidates: nil})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "unreviewed" || len(acts.finished) != 1 || acts.finished[0].Status != "unreviewed" {
		t.Fatalf("verdict %+v finished %+v", v, acts.finished)
	}
}

func TestReviewerOrderIsDeterministicAndComplete(t *testing.T) {
	c := []string{"a", "b", "c", "d", "e"}
	x, y := reviewerOrder("paper", c), reviewerOrder("paper", []string{"e", "d", "c", "b", "a"})
	if len(x) != 5 {
		t.Fatal(x)
	}
	for i := range x {
		if x[i] != y[i] {
			t.Fatalf("order depends on input order: %v vs %v", x, y)
		}
	}
	seen := map[string]bool{}
	for _, q := range x {
		seen[q] = true
	}
	if len(seen) != 5 {
		t.Fatalf("not a permutation: %v", x)
	}
}
