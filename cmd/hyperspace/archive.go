package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/archive"
	ghpub "github.com/hyperspace-ai/hyperspace/internal/archive/github"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// archiveFlags configure the git archive (the `archive` task queue).
type archiveFlags struct {
	Dir           string
	Remote        string
	GitHubRepo    string
	GitHubToken   string
	GitHubAPIURL  string
	GitHubBase    string
	SnapshotEvery time.Duration
}

func (a *archiveFlags) add(cmd *cobra.Command, dirDefault string) {
	f := cmd.Flags()
	f.StringVar(&a.Dir, "archive-dir", dirDefault, "local bare git repository of the research archive (created if missing; empty: no archive)")
	f.StringVar(&a.Remote, "archive-remote", "", "git remote (URL or path) the archive pushes its branches to (empty: none)")
	f.StringVar(&a.GitHubRepo, "github-repo", "", "mirror the archive to this GitHub repository, owner/repo (empty: none)")
	f.StringVar(&a.GitHubToken, "github-token", "", "GitHub token with contents and pull-request write access")
	f.StringVar(&a.GitHubAPIURL, "github-api-url", "", "GitHub REST API base URL (empty: https://api.github.com/; GitHub Enterprise: https://host/api/v3/)")
	f.StringVar(&a.GitHubBase, "github-base-branch", "main", "branch breakthrough pull requests target")
	f.DurationVar(&a.SnapshotEvery, "snapshot-every", workflows.DefaultSnapshotEvery, "interval of the snapshot schedule (snapshots/latest.json)")
}

// open returns the archive, or nil when --archive-dir is empty.
func (a *archiveFlags) open(ctx context.Context) (*activities.Archive, *api.ArchiveInfo, error) {
	if a.Dir == "" {
		return nil, nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(a.Dir), 0o755); err != nil {
		return nil, nil, fmt.Errorf("archive dir: %w", err)
	}
	repo, err := archive.Open(ctx, a.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open archive %s: %w (is git installed?)", a.Dir, err)
	}
	ar := &activities.Archive{Repo: repo, Remote: a.Remote}
	info := &api.ArchiveInfo{Location: repo.Dir(), Remote: a.Remote, SnapshotEvery: a.SnapshotEvery.String()}
	if a.GitHubRepo != "" {
		owner, name, ok := strings.Cut(a.GitHubRepo, "/")
		if !ok {
			return nil, nil, fmt.Errorf("--github-repo must be owner/repo, got %q", a.GitHubRepo)
		}
		if a.GitHubToken == "" {
			return nil, nil, fmt.Errorf("--github-repo needs --github-token (or HYPERSPACE_GITHUB_TOKEN)")
		}
		p, err := ghpub.New(ghpub.Config{Owner: owner, Repo: name, Token: a.GitHubToken, BaseURL: a.GitHubAPIURL, BaseBranch: a.GitHubBase})
		if err != nil {
			return nil, nil, err
		}
		ar.GitHub, ar.GitHubRepo, info.GitHub = p, a.GitHubRepo, a.GitHubRepo
	}
	return ar, info, nil
}
