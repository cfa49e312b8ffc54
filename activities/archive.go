package activities

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/hyperspace-ai/hyperspace/internal/archive"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/metrics"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// ArchiveResult is what ArchiveAgent committed.
type ArchiveResult struct {
	Branch  string `json:"branch"`
	Commit  string `json:"commit"`
	Changed bool   `json:"changed"`
	// LatencySec is the time from the newest receipt to this commit (0
	// when nothing changed).
	LatencySec float64 `json:"latencySec"`
}

func (a *Activities) archiveOrFail() (*Archive, error) {
	if a.Archive == nil || a.Archive.Repo == nil {
		return nil, temporal.NewNonRetryableApplicationError("this worker has no archive configured", "NoArchive", nil)
	}
	return a.Archive, nil
}

// paperSlug is the file name (without .md) of a paper on its agent branch.
func paperSlug(number int, id string) string {
	return fmt.Sprintf("paper-%04d-%s", number, receipt.ShortID(id))
}

// agentBranch loads one campaign agent's receipts and papers. The branch
// is named after the agent's registered key, and only runs and papers
// signed by that key go on it (the archive needs no secret: it signs
// nothing).
func (a *Activities) agentBranch(ctx context.Context, campaign, agent, domain string) (archive.AgentBranch, int64, error) {
	ag, err := a.Store.GetAgent(ctx, campaign, agent)
	if err != nil {
		return archive.AgentBranch{}, 0, err
	}
	b := archive.AgentBranch{PeerID: ag.PeerID, Domain: domain}
	rows, _, err := a.Store.ListExperiments(ctx, store.ExperimentFilter{CampaignID: campaign, Agent: agent})
	if err != nil {
		return b, 0, err
	}
	var newest int64
	for _, r := range rows {
		s, err := decodeReceipt(r)
		if err != nil {
			return b, 0, err
		}
		if s.Verify() != nil || s.Receipt.PeerID != ag.PeerID {
			a.log().Warn("archive skips a receipt that does not verify under the agent's registered key", "experiment", r.ID)
			continue
		}
		b.Runs = append(b.Runs, s)
		newest = max(newest, s.Receipt.Timestamp)
	}
	papers, err := a.Store.ListPapers(ctx, store.PaperFilter{CampaignID: campaign, PeerID: ag.PeerID, Limit: 500})
	if err != nil {
		return b, 0, err
	}
	for _, p := range papers {
		sp, err := decodePaper(p)
		if err != nil {
			return b, 0, err
		}
		b.Papers = append(b.Papers, archive.Paper{ID: p.ID, Slug: paperSlug(p.Number, p.ID), Markdown: withVerdict(sp.Paper.Markdown, p)})
		newest = max(newest, sp.Paper.Timestamp)
	}
	return b, newest, nil
}

// withVerdict appends the peer-review verdict to a paper's Markdown.
func withVerdict(md string, p store.Paper) string {
	if p.Status == store.PaperReviewing || p.Score == nil {
		return md
	}
	v := fmt.Sprintf("\n## Peer review\n\nMedian score %.1f of 10", *p.Score)
	if p.Breakthrough {
		v += " — **breakthrough**"
	}
	return md + v + ".\n"
}

// ArchiveAgent commits one agent's branch (agents/<peerId>/<domain>: its
// receipts, summaries, best.json, JOURNAL.md and papers) to the archive,
// then pushes it to the git remote and mirrors it to GitHub when those are
// configured. It is idempotent: the branch's tree is rebuilt from the
// database, and an unchanged tree makes no commit anywhere.
func (a *Activities) ArchiveAgent(ctx context.Context, in workflows.ArchiveInput) (ArchiveResult, error) {
	ar, err := a.archiveOrFail()
	if err != nil {
		return ArchiveResult{}, err
	}
	b, newest, err := a.agentBranch(ctx, in.CampaignID, in.Agent, in.Domain)
	if err != nil {
		return ArchiveResult{}, err
	}
	if len(b.Runs) == 0 {
		return ArchiveResult{}, nil
	}
	branch, err := archive.BranchName(b.PeerID, b.Domain)
	if err != nil {
		return ArchiveResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadBranch", err)
	}
	now := time.Now()
	commit, changed, err := ar.Repo.WriteAgent(ctx, b, now)
	if err != nil {
		return ArchiveResult{}, a.archiveError(ctx, err)
	}
	res := ArchiveResult{Branch: branch, Commit: commit, Changed: changed}
	if changed {
		res.LatencySec = now.Sub(time.UnixMilli(newest)).Seconds()
		metrics.ArchiveLatency.Observe(res.LatencySec)
		metrics.ArchiveCommits.WithLabelValues("local").Inc()
	}
	if err := a.publish(ctx, ar, branch, func() (map[string][]byte, error) { return archive.AgentFiles(b) }, "archive "+branch, now); err != nil {
		return res, a.archiveError(ctx, err)
	}
	at := now
	if err := a.Store.TouchArchive(ctx, "local", ar.Repo.Dir(), &at, nil, ""); err != nil {
		return res, err
	}
	return res, nil
}

// publish pushes a branch to the remote and mirrors its files to GitHub.
func (a *Activities) publish(ctx context.Context, ar *Archive, branch string, files func() (map[string][]byte, error), msg string, when time.Time) error {
	if ar.Remote != "" {
		if err := ar.Repo.Push(ctx, ar.Remote, "refs/heads/"+branch+":refs/heads/"+branch); err != nil {
			return fmt.Errorf("push %s: %w", branch, err)
		}
		metrics.ArchiveCommits.WithLabelValues("remote").Inc()
	}
	if ar.GitHub != nil {
		fs, err := files()
		if err != nil {
			return err
		}
		if _, changed, err := ar.GitHub.MirrorBranch(ctx, branch, fs, msg, when); err != nil {
			return err
		} else if changed {
			metrics.ArchiveCommits.WithLabelValues("github").Inc()
		}
	}
	return nil
}

func (a *Activities) archiveError(ctx context.Context, err error) error {
	if a.Archive != nil && a.Archive.Repo != nil {
		_ = a.Store.TouchArchive(ctx, "local", a.Archive.Repo.Dir(), nil, nil, llm.Truncate(err.Error(), 500))
	}
	return err
}

// ArchiveBreakthrough archives a breakthrough paper's author branch (with
// the verdict) and, with GitHub configured, opens a pull request that adds
// the paper to the archive's main branch.
func (a *Activities) ArchiveBreakthrough(ctx context.Context, in workflows.FinishInput) (ArchiveResult, error) {
	ar, err := a.archiveOrFail()
	if err != nil {
		return ArchiveResult{}, err
	}
	p, err := a.Store.GetPaper(ctx, in.Verdict.PaperID)
	if err != nil {
		return ArchiveResult{}, err
	}
	res, err := a.ArchiveAgent(ctx, workflows.ArchiveInput{CampaignID: p.CampaignID, Agent: p.Agent, Domain: p.Domain})
	if err != nil {
		return res, err
	}
	if ar.GitHub == nil {
		return res, nil
	}
	sp, err := decodePaper(p)
	if err != nil {
		return res, err
	}
	var body strings.Builder
	fmt.Fprintf(&body, "Breakthrough paper `%s` by agent %s (campaign %s, domain %s).\n\n", p.ID, p.Agent, p.CampaignID, p.Domain)
	fmt.Fprintf(&body, "Median peer-review score **%.1f** from %d reviews:\n\n", in.Verdict.Score, len(in.Verdict.Reviews))
	for _, r := range in.Verdict.Reviews {
		fmt.Fprintf(&body, "- node `%s`: %d/10 (review `%s`)\n", r.Node, r.Score, receipt.ShortID(r.ReviewID))
	}
	fmt.Fprintf(&body, "\n%s\n", sp.Paper.Abstract)
	path := "papers/" + p.Domain + "/" + paperSlug(p.Number, p.ID) + ".md"
	if _, _, _, err := ar.GitHub.OpenBreakthroughPR(ctx, p.ID, "Breakthrough: "+sp.Paper.Title, body.String(), path, []byte(withVerdict(sp.Paper.Markdown, p))); err != nil {
		return res, a.archiveError(ctx, err)
	}
	return res, nil
}

// WriteSnapshot writes snapshots/latest.json (public format, version 2)
// from every verified receipt the site holds, commits it to the snapshots
// branch, and pushes/mirrors it. The snapshot time comes from the workflow,
// so a retry writes the same bytes and makes no second commit.
func (a *Activities) WriteSnapshot(ctx context.Context, in workflows.SnapshotInput) (workflows.SnapshotResult, error) {
	ar, err := a.archiveOrFail()
	if err != nil {
		return workflows.SnapshotResult{}, err
	}
	rows, _, err := a.Store.ListExperiments(ctx, store.ExperimentFilter{})
	if err != nil {
		return workflows.SnapshotResult{}, err
	}
	runs := make([]receipt.Signed, 0, len(rows))
	for _, r := range rows {
		s, err := decodeReceipt(r)
		if err != nil || s.Verify() != nil {
			continue
		}
		runs = append(runs, s)
	}
	peers := 0
	var uptime float64
	if nodes, err := a.Store.LiveNodes(ctx, time.Minute); err == nil {
		peers = len(nodes)
	}
	at := time.UnixMilli(in.AtMs).UTC()
	if first, ok := firstRunTime(rows); ok {
		uptime = at.Sub(first).Hours()
	}
	host, _ := os.Hostname()
	snap := archive.BuildSnapshot(at, "hyperspace@"+host, peers, max(uptime, 0), runs)
	commit, changed, err := ar.Repo.WriteSnapshot(ctx, snap, at)
	if err != nil {
		return workflows.SnapshotResult{}, a.archiveError(ctx, err)
	}
	js, _ := snap.JSON()
	if err := a.publish(ctx, ar, archive.SnapshotBranch, func() (map[string][]byte, error) {
		return map[string][]byte{archive.SnapshotPath: js}, nil
	}, "snapshot "+at.Format(time.RFC3339), at); err != nil {
		return workflows.SnapshotResult{}, a.archiveError(ctx, err)
	}
	if err := a.Store.TouchArchive(ctx, "local", ar.Repo.Dir(), nil, &at, ""); err != nil {
		return workflows.SnapshotResult{}, err
	}
	return workflows.SnapshotResult{Commit: commit, Changed: changed, Runs: len(runs)}, nil
}

// firstRunTime is when the site recorded its first experiment.
func firstRunTime(rows []store.Experiment) (time.Time, bool) {
	if len(rows) == 0 {
		return time.Time{}, false
	}
	first := rows[0].CreatedAt
	for _, r := range rows {
		if r.CreatedAt.Before(first) {
			first = r.CreatedAt
		}
	}
	return first, true
}
