// Package github mirrors Hyperspace archive branches to a GitHub repository
// and opens a pull request for each breakthrough paper.
//
// The local git archive keeps one branch per agent and domain
// (agents/<peerId>/<domain>) plus a snapshots branch. MirrorBranch makes a
// GitHub branch hold exactly a given set of files, as one commit on top of
// the branch's current head, through the Git database API (blobs, trees,
// commits, refs); no local clone or git binary is needed. OpenBreakthroughPR
// puts a paper on its own branch off the base branch and opens a pull request
// for it, once per paper.
//
// Both operations are idempotent: mirroring unchanged files creates no
// commit, and asking again for a paper's pull request returns the existing
// one.
package github

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	gh "github.com/google/go-github/v93/github"
)

const (
	// AuthorName and AuthorEmail sign every commit the publisher makes.
	AuthorName  = "hyperspace-archive"
	AuthorEmail = "archive@hyperspace.invalid"

	// ReadmeContent is README.md of the root commit created on a repository
	// that has no base branch yet.
	ReadmeContent = "# Hyperspace research archive\n"

	defaultBaseBranch = "main"
	breakthroughRoot  = "breakthroughs/"
	paperIDPrefixLen  = 12
	maxAttempts       = 4 // the first try plus 3 retries when a branch moves underneath us
	fileMode          = "100644"
)

// Config says which repository to publish to and how to reach it.
type Config struct {
	Owner string
	Repo  string
	// Token is a GitHub token with Contents and Pull requests write access
	// to Owner/Repo. Empty sends unauthenticated requests.
	Token string
	// BaseURL is the REST API root, e.g. a GitHub Enterprise ".../api/v3/"
	// or a test server. Empty means https://api.github.com/.
	BaseURL string
	// BaseBranch is the branch breakthrough pull requests target. Default "main".
	BaseBranch string
	// HTTPClient is used for requests if set (it is copied, not modified).
	HTTPClient *http.Client
}

// Publisher writes archive branches and breakthrough pull requests to one
// GitHub repository. It is safe for concurrent use.
type Publisher struct {
	client *gh.Client
	owner  string
	repo   string
	base   string
}

// New checks cfg and returns a Publisher for cfg.Owner/cfg.Repo.
func New(cfg Config) (*Publisher, error) {
	if !validOwner(cfg.Owner) {
		return nil, fmt.Errorf("github: invalid owner %q", cfg.Owner)
	}
	if !validRepo(cfg.Repo) {
		return nil, fmt.Errorf("github: invalid repository name %q", cfg.Repo)
	}
	base := cfg.BaseBranch
	if base == "" {
		base = defaultBaseBranch
	}
	if !validBranch(base) {
		return nil, fmt.Errorf("github: invalid base branch %q", base)
	}
	opts := []gh.ClientOptionsFunc{gh.WithUserAgent("hyperspace-archive")}
	if cfg.HTTPClient != nil {
		opts = append(opts, gh.WithHTTPClient(cfg.HTTPClient))
	}
	if cfg.Token != "" {
		opts = append(opts, gh.WithAuthToken(cfg.Token))
	}
	if cfg.BaseURL != "" {
		u := cfg.BaseURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		opts = append(opts, gh.WithURLs(&u, &u))
	}
	client, err := gh.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	return &Publisher{client: client, owner: cfg.Owner, repo: cfg.Repo, base: base}, nil
}

// MirrorBranch makes branch hold exactly files (path -> content): files not
// in the map are absent afterwards. The change is one commit, dated when, on
// top of the branch's current head, or a root commit if the branch does not
// exist yet. If the branch already holds exactly these files nothing is
// written and changed is false; sha is the branch's head either way.
//
// If the branch moves while the commit is being made, MirrorBranch starts
// over from the new head, up to 3 times. On an empty repository it first
// creates the base branch with a README, since GitHub's Git database API
// refuses to work on a repository without commits.
func (p *Publisher) MirrorBranch(ctx context.Context, branch string, files map[string][]byte, message string, when time.Time) (sha string, changed bool, err error) {
	sha, changed, err = p.mirror(ctx, branch, files, message, when)
	if err != nil {
		return "", false, fmt.Errorf("mirror %s: %w", branch, err)
	}
	return sha, changed, nil
}

func (p *Publisher) mirror(ctx context.Context, branch string, files map[string][]byte, message string, when time.Time) (string, bool, error) {
	if !validBranch(branch) {
		return "", false, errors.New("invalid branch name")
	}
	if len(files) == 0 {
		return "", false, errors.New("no files to mirror")
	}
	paths := make([]string, 0, len(files))
	local := make(map[string]string, len(files)) // path -> git blob id
	for path, content := range files {
		if !validPath(path) {
			return "", false, fmt.Errorf("invalid file path %q", path)
		}
		paths = append(paths, path)
		local[path] = blobSHA(content)
	}
	sort.Strings(paths)
	if when.IsZero() {
		when = time.Now()
	}

	present := map[string]bool{} // blob ids the repository is known to hold
	var tree string
	for attempt := 1; ; attempt++ {
		head, err := p.head(ctx, branch)
		if err != nil {
			return "", false, err
		}
		var headTree string
		if head != "" {
			if headTree, err = p.commitTree(ctx, head); err != nil {
				return "", false, err
			}
			if tree == "" {
				// Learn what the branch holds: if it is exactly our files we
				// are done without writing anything, and blobs it already
				// has need not be uploaded again (GitHub limits how many
				// objects may be created per minute).
				remote, complete, err := p.listTree(ctx, headTree)
				if err != nil {
					return "", false, err
				}
				if complete && sameFiles(remote, local) {
					return head, false, nil
				}
				for _, e := range remote {
					present[e.GetSHA()] = true
				}
			}
		}
		if tree == "" {
			if tree, err = p.writeTree(ctx, paths, files, local, present); err != nil {
				return "", false, err
			}
		}
		if tree == headTree {
			return head, false, nil
		}
		commit, err := p.commit(ctx, tree, head, message, when)
		if err != nil {
			return "", false, err
		}
		err = p.moveBranch(ctx, branch, head, commit)
		if err == nil {
			return commit, true, nil
		}
		if status(err) != http.StatusUnprocessableEntity || attempt == maxAttempts {
			return "", false, err
		}
		// The branch moved (or appeared) since we read it: start over.
	}
}

// OpenBreakthroughPR opens a pull request that adds a breakthrough paper
// (content, at path) to the base branch, from the branch
// breakthroughs/<first 12 characters of paperID>. It is idempotent per
// paper: if a pull request from that branch exists, open or closed, its
// number and URL are returned with created false.
//
// If the repository has no base branch, one is created holding only a
// README. An existing breakthrough branch is reused; the paper is committed
// to it if it does not already hold it.
func (p *Publisher) OpenBreakthroughPR(ctx context.Context, paperID, title, body, path string, content []byte) (number int, url string, created bool, err error) {
	number, url, created, err = p.openPR(ctx, paperID, title, body, path, content)
	if err != nil {
		return 0, "", false, fmt.Errorf("breakthrough PR for paper %s: %w", paperID, err)
	}
	return number, url, created, nil
}

func (p *Publisher) openPR(ctx context.Context, paperID, title, body, path string, content []byte) (int, string, bool, error) {
	branch, err := BreakthroughBranch(paperID)
	if err != nil {
		return 0, "", false, err
	}
	if !validPath(path) {
		return 0, "", false, fmt.Errorf("invalid file path %q", path)
	}
	if title == "" {
		title = "Breakthrough: " + paperID
	}
	existing, err := p.findPR(ctx, branch)
	if err != nil {
		return 0, "", false, err
	}
	if existing != nil {
		return existing.GetNumber(), existing.GetHTMLURL(), false, nil
	}
	baseHead, err := p.ensureBase(ctx)
	if err != nil {
		return 0, "", false, err
	}
	if err := p.ensurePaper(ctx, branch, baseHead, path, content, "Add breakthrough paper "+paperID); err != nil {
		return 0, "", false, err
	}
	pr, _, err := p.client.PullRequests.Create(ctx, p.owner, p.repo, gh.CreatePullRequest{
		Title: &title, Head: branch, Base: p.base, Body: &body,
	})
	if err != nil {
		if status(err) == http.StatusUnprocessableEntity {
			// Someone else opened it in the meantime?
			if existing, ferr := p.findPR(ctx, branch); ferr == nil && existing != nil {
				return existing.GetNumber(), existing.GetHTMLURL(), false, nil
			}
		}
		return 0, "", false, p.fail("create pull request", err)
	}
	return pr.GetNumber(), pr.GetHTMLURL(), true, nil
}

// BreakthroughBranch returns the branch name used for a paper's pull request.
func BreakthroughBranch(paperID string) (string, error) {
	if paperID == "" {
		return "", errors.New("empty paper id")
	}
	short := paperID
	if len(short) > paperIDPrefixLen {
		short = short[:paperIDPrefixLen]
	}
	for _, r := range short {
		if !isWordChar(r) {
			return "", fmt.Errorf("paper id %q has characters not allowed in a branch name", paperID)
		}
	}
	return breakthroughRoot + short, nil
}

// findPR returns the newest pull request from branch, preferring an open one,
// or nil if there is none.
func (p *Publisher) findPR(ctx context.Context, branch string) (*gh.PullRequest, error) {
	pulls, _, err := p.client.PullRequests.List(ctx, p.owner, p.repo, &gh.PullRequestListOptions{
		State: "all", Head: p.owner + ":" + branch, ListOptions: gh.ListOptions{PerPage: 100},
	})
	if err != nil {
		return nil, p.fail("list pull requests", err)
	}
	var found *gh.PullRequest
	for _, pr := range pulls {
		if pr.GetHead().GetRef() != branch {
			continue
		}
		if pr.GetState() == "open" {
			return pr, nil
		}
		if found == nil {
			found = pr
		}
	}
	return found, nil
}

// ensureBase returns the base branch's head, creating the branch as a root
// commit holding README.md if it does not exist.
func (p *Publisher) ensureBase(ctx context.Context) (string, error) {
	for attempt := 1; ; attempt++ {
		head, err := p.head(ctx, p.base)
		if err != nil || head != "" {
			return head, err
		}
		blob, err := p.createBlob(ctx, "README.md", []byte(ReadmeContent))
		if err != nil {
			return "", err
		}
		tree, err := p.createTree(ctx, "", []*gh.TreeEntry{treeEntry("README.md", blob)})
		if err != nil {
			return "", err
		}
		commit, err := p.commit(ctx, tree, "", "Initialize Hyperspace research archive", time.Now())
		if err != nil {
			return "", err
		}
		err = p.moveBranch(ctx, p.base, "", commit)
		if err == nil {
			return commit, nil
		}
		if status(err) != http.StatusUnprocessableEntity || attempt == maxAttempts {
			return "", err
		}
		// Created concurrently: use that one.
	}
}

// ensurePaper makes branch hold the paper at path: a new branch starts from
// baseHead; an existing one gets a commit on top unless it already has it.
func (p *Publisher) ensurePaper(ctx context.Context, branch, baseHead, path string, content []byte, message string) error {
	blob, err := p.createBlob(ctx, path, content)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		head, err := p.head(ctx, branch)
		if err != nil {
			return err
		}
		parent := head
		if parent == "" {
			parent = baseHead
		}
		parentTree, err := p.commitTree(ctx, parent)
		if err != nil {
			return err
		}
		tree, err := p.createTree(ctx, parentTree, []*gh.TreeEntry{treeEntry(path, blob)})
		if err != nil {
			return err
		}
		if head != "" && tree == parentTree {
			return nil // the existing branch already carries the paper
		}
		commit, err := p.commit(ctx, tree, parent, message, time.Now())
		if err != nil {
			return err
		}
		err = p.moveBranch(ctx, branch, head, commit)
		if err == nil {
			return nil
		}
		if status(err) != http.StatusUnprocessableEntity || attempt == maxAttempts {
			return err
		}
		// The branch appeared or moved: reuse it.
	}
}

// --- Git database steps ---

// head returns the commit branch points at, or "" if it does not exist. An
// empty repository is initialized first (see initRepo).
func (p *Publisher) head(ctx context.Context, branch string) (string, error) {
	for initialized := false; ; initialized = true {
		ref, _, err := p.client.Git.GetRef(ctx, p.owner, p.repo, "heads/"+branch)
		switch status(err) {
		case 0:
			if err != nil {
				return "", p.fail("get branch "+branch, err)
			}
			return ref.GetObject().GetSHA(), nil
		case http.StatusNotFound:
			// Either the branch or the repository is missing; the next
			// call tells which.
			return "", nil
		case http.StatusConflict: // "Git Repository is empty."
			if initialized {
				return "", p.fail("get branch "+branch, err)
			}
			if err := p.initRepo(ctx); err != nil {
				return "", err
			}
		default:
			return "", p.fail("get branch "+branch, err)
		}
	}
}

// initRepo gives an empty repository its first commit, README.md on the base
// branch, through the contents API: GitHub's Git database API answers 409
// for every call until a repository has a commit.
func (p *Publisher) initRepo(ctx context.Context) error {
	sig := signature(time.Now())
	_, _, err := p.client.Repositories.CreateFile(ctx, p.owner, p.repo, "README.md", &gh.RepositoryContentFileOptions{
		Message:   gh.Ptr("Initialize Hyperspace research archive"),
		Content:   []byte(ReadmeContent),
		Branch:    &p.base,
		Author:    sig,
		Committer: sig,
	})
	if err != nil && status(err) != http.StatusUnprocessableEntity && status(err) != http.StatusConflict {
		// 422/409: someone else initialized it first.
		return p.fail("initialize empty repository", err)
	}
	return nil
}

func (p *Publisher) commitTree(ctx context.Context, commit string) (string, error) {
	c, _, err := p.client.Git.GetCommit(ctx, p.owner, p.repo, commit)
	if err != nil {
		return "", p.fail("get commit "+commit, err)
	}
	return c.GetTree().GetSHA(), nil
}

// listTree returns the non-directory entries below tree, and whether the
// listing is complete (GitHub truncates very large trees).
func (p *Publisher) listTree(ctx context.Context, tree string) ([]*gh.TreeEntry, bool, error) {
	t, _, err := p.client.Git.GetTree(ctx, p.owner, p.repo, tree, true)
	if err != nil {
		return nil, false, p.fail("get tree "+tree, err)
	}
	var out []*gh.TreeEntry
	for _, e := range t.Entries {
		if e.GetType() != "tree" {
			out = append(out, e)
		}
	}
	return out, !t.GetTruncated(), nil
}

// writeTree uploads the blobs not known to be present and creates the full
// tree of files (no base tree).
func (p *Publisher) writeTree(ctx context.Context, paths []string, files map[string][]byte, local map[string]string, present map[string]bool) (string, error) {
	for retried := false; ; retried = true {
		entries := make([]*gh.TreeEntry, 0, len(paths))
		for _, path := range paths {
			sha := local[path]
			if !present[sha] {
				got, err := p.createBlob(ctx, path, files[path])
				if err != nil {
					return "", err
				}
				present[got] = true
				sha = got
			}
			entries = append(entries, treeEntry(path, sha))
		}
		tree, err := p.createTree(ctx, "", entries)
		if err != nil && !retried && status(err) == http.StatusUnprocessableEntity && len(present) > 0 {
			// A blob we assumed present is gone: upload everything.
			clear(present)
			continue
		}
		return tree, err
	}
}

func (p *Publisher) createBlob(ctx context.Context, path string, content []byte) (string, error) {
	b, _, err := p.client.Git.CreateBlob(ctx, p.owner, p.repo, gh.Blob{
		Content:  encodeBase64(content),
		Encoding: gh.Ptr("base64"),
	})
	if err != nil {
		return "", p.fail("create blob "+path, err)
	}
	return b.GetSHA(), nil
}

func (p *Publisher) createTree(ctx context.Context, base string, entries []*gh.TreeEntry) (string, error) {
	t, _, err := p.client.Git.CreateTree(ctx, p.owner, p.repo, base, entries)
	if err != nil {
		return "", p.fail("create tree", err)
	}
	return t.GetSHA(), nil
}

// commit creates a commit of tree whose parent is parent ("" for a root commit).
func (p *Publisher) commit(ctx context.Context, tree, parent, message string, when time.Time) (string, error) {
	sig := signature(when)
	c := gh.Commit{Message: &message, Tree: &gh.Tree{SHA: &tree}, Author: sig, Committer: sig}
	if parent != "" {
		c.Parents = []*gh.Commit{{SHA: &parent}}
	}
	out, _, err := p.client.Git.CreateCommit(ctx, p.owner, p.repo, c, nil)
	if err != nil {
		return "", p.fail("create commit", err)
	}
	return out.GetSHA(), nil
}

// moveBranch points branch at commit: a fast-forward update from head, or
// the creation of the branch when head is "". A 422 means the branch moved
// or was created meanwhile; it is returned unwrapped by any hint.
func (p *Publisher) moveBranch(ctx context.Context, branch, head, commit string) error {
	var err error
	if head != "" {
		_, _, err = p.client.Git.UpdateRef(ctx, p.owner, p.repo, "heads/"+branch, gh.UpdateRef{SHA: commit, Force: gh.Ptr(false)})
	} else {
		_, _, err = p.client.Git.CreateRef(ctx, p.owner, p.repo, gh.CreateRef{Ref: "refs/heads/" + branch, SHA: commit})
	}
	if err != nil {
		return p.fail("update branch "+branch, err)
	}
	return nil
}

// --- errors ---

// fail wraps err with the step that failed and, for authorization and
// not-found answers, a hint about the token.
func (p *Publisher) fail(step string, err error) error {
	return fmt.Errorf("%s: %w", step, p.explain(err))
}

func (p *Publisher) explain(err error) error {
	repo := p.owner + "/" + p.repo
	if rl, ok := errors.AsType[*gh.RateLimitError](err); ok {
		return fmt.Errorf("GitHub API rate limit exhausted until %s: %w", rl.Rate.Reset.Format(time.RFC3339), err)
	}
	if _, ok := errors.AsType[*gh.AbuseRateLimitError](err); ok {
		return fmt.Errorf("GitHub secondary rate limit hit, slow down: %w", err)
	}
	switch status(err) {
	case http.StatusUnauthorized:
		return fmt.Errorf("GitHub rejected the token for %s (bad credentials): %w", repo, err)
	case http.StatusForbidden:
		return fmt.Errorf("token lacks access to %s (it needs Contents and Pull requests write permission): %w", repo, err)
	case http.StatusNotFound:
		return fmt.Errorf("%s not found, or token lacks access to %s: %w", repo, repo, err)
	}
	return err
}

// status returns the HTTP status of a GitHub API error, or 0.
func status(err error) int {
	if err == nil {
		return 0
	}
	if er, ok := errors.AsType[*gh.ErrorResponse](err); ok && er.Response != nil {
		return er.Response.StatusCode
	}
	if er, ok := errors.AsType[*gh.RateLimitError](err); ok && er.Response != nil {
		return er.Response.StatusCode
	}
	if er, ok := errors.AsType[*gh.AbuseRateLimitError](err); ok && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

// --- helpers ---

func signature(when time.Time) *gh.CommitAuthor {
	return &gh.CommitAuthor{
		Name:  gh.Ptr(AuthorName),
		Email: gh.Ptr(AuthorEmail),
		Date:  &gh.Timestamp{Time: when.Truncate(time.Second)},
	}
}

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func treeEntry(path, blob string) *gh.TreeEntry {
	return &gh.TreeEntry{Path: gh.Ptr(path), Mode: gh.Ptr(fileMode), Type: gh.Ptr("blob"), SHA: gh.Ptr(blob)}
}

// blobSHA is git's object id for a blob, as GitHub computes it.
func blobSHA(content []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(content))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// sameFiles reports whether the remote listing is exactly the local files
// as regular blobs.
func sameFiles(remote []*gh.TreeEntry, local map[string]string) bool {
	if len(remote) != len(local) {
		return false
	}
	for _, e := range remote {
		if e.GetType() != "blob" || e.GetMode() != fileMode || local[e.GetPath()] != e.GetSHA() {
			return false
		}
	}
	return true
}

func validOwner(s string) bool {
	if s == "" || len(s) > 39 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func validRepo(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if !isWordChar(r) {
			return false
		}
	}
	return true
}

func isWordChar(r rune) bool {
	return r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}

// validBranch applies git's branch naming rules (git check-ref-format).
func validBranch(s string) bool {
	if s == "" || s == "@" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, ".lock") ||
		strings.Contains(s, "..") || strings.Contains(s, "@{") {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") || strings.HasSuffix(seg, ".lock") {
			return false
		}
	}
	return true
}

// validPath accepts relative slash-separated paths without "." or ".."
// segments.
func validPath(s string) bool {
	if s == "" {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || seg == "." || seg == ".." || seg == ".git" || strings.ContainsAny(seg, "\x00\\") {
			return false
		}
	}
	return true
}
