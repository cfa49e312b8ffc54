package workflows

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hyperspace-ai/hyperspace/internal/paper"
)

// The community stages of the research loop: synthesize (WritePaper), peer
// review (PeerReviewWorkflow, one per paper), evolve (breakthroughs enter
// Hypothesize), and the archive (ArchiveAgent per finding, SnapshotWorkflow
// on a schedule).

// ArchiveQueue serves the git/GitHub archive activities.
const ArchiveQueue = "archive"

// Community activity names.
const (
	ActWritePaper           = "WritePaper"
	ActReviewPaper          = "ReviewPaper"
	ActFinishReview         = "FinishReview"
	ActAnnounceBreakthrough = "AnnounceBreakthrough"
	ActArchiveAgent         = "ArchiveAgent"
	ActArchiveBreakthrough  = "ArchiveBreakthrough"
	ActWriteSnapshot        = "WriteSnapshot"
)

// Defaults of the community stages.
const (
	DefaultReviewers = 3
	// ReviewerWait is how long a review waits for its reviewer node to pick
	// it up before another node is asked.
	ReviewerWait = 2 * time.Minute
	// SnapshotScheduleID is the Temporal Schedule that writes snapshots.
	SnapshotScheduleID = "hyperspace-snapshot"
	// DefaultSnapshotEvery is the snapshot schedule's interval.
	DefaultSnapshotEvery = time.Hour
)

// Community configures the synthesize/review/evolve/archive stages of a
// campaign. A nil Community (older campaigns) means none of them.
type Community struct {
	// PaperEvery: an agent writes a paper after every PaperEvery successful
	// experiments (0: no papers).
	PaperEvery int `json:"paperEvery"`
	// Reviewers per paper (R); default DefaultReviewers. Fewer are used when
	// fewer other nodes exist.
	Reviewers int `json:"reviewers"`
	// NoEvolve keeps breakthroughs out of the hypothesis context (for
	// measuring what evolve does).
	NoEvolve bool `json:"noEvolve,omitempty"`
	// Archive: an archive worker serves ArchiveQueue; every finding and
	// paper is committed to the git archive.
	Archive bool `json:"archive,omitempty"`
}

// PaperInput asks an agent to write its next paper.
type PaperInput struct {
	CampaignID string     `json:"campaignId"`
	Domain     string     `json:"domain"`
	Agent      string     `json:"agent"`
	Number     int        `json:"number"`
	Window     []string   `json:"window"` // receipt ids the paper covers
	Floor      NoiseFloor `json:"floor"`
	LLM        *LLMConfig `json:"llm,omitempty"`
	// TimestampMs comes from workflow time so a retry signs the same paper.
	TimestampMs int64 `json:"timestampMs"`
}

// PaperRef names a stored paper.
type PaperRef struct {
	PaperID string `json:"paperId"`
	Number  int    `json:"number"`
	Title   string `json:"title"`
}

// ReviewInput starts the peer review of one paper.
type ReviewInput struct {
	PaperID    string `json:"paperId"`
	CampaignID string `json:"campaignId"`
	Domain     string `json:"domain"`
	Agent      string `json:"agent"`
	// AuthorQueue is the author's node queue (announcements go there).
	AuthorQueue string `json:"authorQueue,omitempty"`
	// Candidates are the node queues that may review, the author's excluded.
	Candidates       []string `json:"candidates"`
	Reviewers        int      `json:"reviewers"`
	BudgetSeconds    float64  `json:"budgetSeconds"`
	HeartbeatSeconds int      `json:"heartbeatSeconds"`
	Archive          bool     `json:"archive,omitempty"`
}

// ReviewTask is one reviewer's job.
type ReviewTask struct {
	PaperID       string  `json:"paperId"`
	Domain        string  `json:"domain"`
	BudgetSeconds float64 `json:"budgetSeconds"`
}

// ReviewOutcome is one finished review.
type ReviewOutcome struct {
	ReviewID string `json:"reviewId"`
	Node     string `json:"node"`
	Queue    string `json:"queue"`
	Score    int    `json:"score"`
}

// Verdict is PeerReviewWorkflow's result.
type Verdict struct {
	PaperID      string          `json:"paperId"`
	Status       string          `json:"status"` // reviewed | unreviewed
	Score        float64         `json:"score"`  // median of the review scores
	Breakthrough bool            `json:"breakthrough"`
	Reviews      []ReviewOutcome `json:"reviews"`
	// Unreachable lists reviewer queues that timed out or failed.
	Unreachable []string `json:"unreachable,omitempty"`
}

// FinishInput records a verdict.
type FinishInput struct {
	Verdict Verdict `json:"verdict"`
}

// ArchiveInput archives one agent's branch (its receipts and papers).
type ArchiveInput struct {
	CampaignID string `json:"campaignId"`
	Agent      string `json:"agent"`
	Domain     string `json:"domain"`
}

// SnapshotInput writes the network snapshot.
type SnapshotInput struct {
	AtMs int64 `json:"atMs"`
}

// SnapshotResult says what a snapshot wrote.
type SnapshotResult struct {
	Commit  string `json:"commit"`
	Changed bool   `json:"changed"`
	Runs    int    `json:"runs"`
}

// BreakthroughScore is the median review score from which a paper is a breakthrough.
const BreakthroughScore = paper.BreakthroughScore

// reviewerOrder shuffles the candidates deterministically by paper id, so
// papers spread over the nodes and a replay picks the same ones.
func reviewerOrder(paperID string, candidates []string) []string {
	out := append([]string(nil), candidates...)
	sort.Strings(out)
	h := fnv.New64a()
	_, _ = h.Write([]byte(paperID))
	x := h.Sum64()
	for i := len(out) - 1; i > 0; i-- {
		x = x*6364136223846793005 + 1442695040888963407
		j := int((x >> 33) % uint64(i+1))
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// PeerReviewWorkflow reviews one paper on R nodes other than its author's.
// Each review runs on a reviewer node's queue; a node that does not pick
// its review up within ReviewerWait, or fails it, is replaced by the next
// candidate, and with no candidates left the paper is decided by the
// reviews it has (or marked unreviewed with none). The median score
// decides; 8 or more is a breakthrough, announced on gossip and proposed
// to the archive.
func PeerReviewWorkflow(ctx workflow.Context, in ReviewInput) (*Verdict, error) {
	log := workflow.GetLogger(ctx)
	r := in.Reviewers
	if r <= 0 {
		r = DefaultReviewers
	}
	hb := in.HeartbeatSeconds
	if hb <= 0 {
		hb = DefaultHeartbeatSecs
	}
	queue := reviewerOrder(in.PaperID, in.Candidates)
	v := &Verdict{PaperID: in.PaperID, Reviews: []ReviewOutcome{}}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Verdict, error) { return *v, nil }); err != nil {
		return nil, err
	}

	sel := workflow.NewSelector(ctx)
	running := 0
	next := 0
	var launch func()
	launch = func() {
		if next >= len(queue) {
			return
		}
		q := queue[next]
		next++
		running++
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              q,
			ScheduleToStartTimeout: ReviewerWait,
			StartToCloseTimeout:    activityTimeouts(in.BudgetSeconds),
			HeartbeatTimeout:       time.Duration(hb) * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 3,
				NonRetryableErrorTypes: []string{"PaperNotFound"},
			},
		})
		f := workflow.ExecuteActivity(actx, ActReviewPaper, ReviewTask{PaperID: in.PaperID, Domain: in.Domain, BudgetSeconds: in.BudgetSeconds})
		sel.AddFuture(f, func(f workflow.Future) {
			running--
			var out ReviewOutcome
			if err := f.Get(ctx, &out); err != nil {
				log.Warn("reviewer failed; asking another", "queue", q, "error", err)
				v.Unreachable = append(v.Unreachable, q)
				launch()
				return
			}
			out.Queue = q
			v.Reviews = append(v.Reviews, out)
		})
	}
	for i := 0; i < r; i++ {
		launch()
	}
	for running > 0 {
		sel.Select(ctx)
	}

	scores := make([]int, len(v.Reviews))
	for i, o := range v.Reviews {
		scores[i] = o.Score
	}
	sort.Slice(v.Reviews, func(i, j int) bool { return v.Reviews[i].Node < v.Reviews[j].Node })
	if len(scores) == 0 {
		v.Status = "unreviewed"
	} else {
		v.Status = "reviewed"
		v.Score = paper.Median(scores)
		v.Breakthrough = v.Score >= BreakthroughScore
	}
	bctx := workflow.WithActivityOptions(ctx, bookkeepingOptions())
	if err := workflow.ExecuteActivity(bctx, ActFinishReview, FinishInput{Verdict: *v}).Get(ctx, nil); err != nil {
		return nil, fmt.Errorf("record verdict: %w", err)
	}
	if v.Breakthrough {
		if in.AuthorQueue != "" {
			// From the author's node, or a live one if it is gone.
			o := bookkeepingOptions()
			o.RetryPolicy.MaximumAttempts = 3
			r := &route{agent: in.Agent, queue: in.AuthorQueue}
			if err := r.execute(ctx, o, ActAnnounceBreakthrough, FinishInput{Verdict: *v}, nil); err != nil {
				log.Warn("breakthrough announcement failed", "paper", in.PaperID, "error", err)
			}
		}
	}
	if in.Archive {
		// The verdict goes into the author's branch; a breakthrough also
		// gets a pull request on the GitHub mirror.
		actx := workflow.WithActivityOptions(ctx, archiveOptions())
		var err error
		if v.Breakthrough {
			err = workflow.ExecuteActivity(actx, ActArchiveBreakthrough, FinishInput{Verdict: *v}).Get(ctx, nil)
		} else {
			err = workflow.ExecuteActivity(actx, ActArchiveAgent, ArchiveInput{CampaignID: in.CampaignID, Agent: in.Agent, Domain: in.Domain}).Get(ctx, nil)
		}
		if err != nil {
			log.Warn("archiving the verdict failed", "paper", in.PaperID, "error", err)
		}
	}
	return v, nil
}

// archiveOptions: the archive is best effort from a workflow's point of
// view (a site without an archive worker must not stall research), but it
// retries for a while because git remotes and GitHub have bad minutes.
func archiveOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		TaskQueue:              ArchiveQueue,
		ScheduleToStartTimeout: 10 * time.Minute,
		StartToCloseTimeout:    5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10,
		},
	}
}

// SnapshotWorkflow writes snapshots/latest.json (started by the snapshot
// Schedule, hourly by default). The snapshot time is the workflow's start
// time, so a retried activity writes the same content and commits once.
func SnapshotWorkflow(ctx workflow.Context, in SnapshotInput) (*SnapshotResult, error) {
	if in.AtMs == 0 {
		in.AtMs = workflow.Now(ctx).UnixMilli()
	}
	o := archiveOptions()
	o.ScheduleToStartTimeout = 0
	var res SnapshotResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), ActWriteSnapshot, in).Get(ctx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// startReview starts the paper's PeerReviewWorkflow as an abandoned child
// (it outlives the agent's run and ContinueAsNew) and waits until it runs.
// Reviewers are drawn from the site's nodes that are live now, the
// author's excluded.
func startReview(ctx workflow.Context, in AgentInput, r *route, ref PaperRef) error {
	c := in.Community
	cands := liveCandidates(ctx, r.queue, in.AllNodeQueues)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        "review-" + ref.PaperID,
		TaskQueue:         TaskQueue,
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	f := workflow.ExecuteChildWorkflow(cctx, PeerReviewWorkflow, ReviewInput{
		PaperID: ref.PaperID, CampaignID: in.CampaignID, Domain: in.Domain, Agent: in.Agent,
		AuthorQueue: r.queue, Candidates: cands, Reviewers: c.Reviewers,
		BudgetSeconds: in.BudgetSeconds, HeartbeatSeconds: in.HeartbeatSeconds, Archive: c.Archive,
	})
	return f.GetChildWorkflowExecution().Get(ctx, nil)
}
