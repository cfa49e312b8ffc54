package githubtest

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	gh "github.com/google/go-github/v93/github"
)

const (
	owner = "hyperspace-ai"
	repo  = "archive"
	token = "secret-token"
)

func newClient(t *testing.T, s *Server, tok string) *gh.Client {
	t.Helper()
	u := s.URL()
	opts := []gh.ClientOptionsFunc{gh.WithURLs(&u, &u)}
	if tok != "" {
		opts = append(opts, gh.WithAuthToken(tok))
	}
	c, err := gh.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func statusOf(err error) int {
	if er, ok := errors.AsType[*gh.ErrorResponse](err); ok {
		return er.Response.StatusCode
	}
	return 0
}

// seeded returns a server whose repository has a main branch, and a client.
func seeded(t *testing.T) (*Server, *gh.Client) {
	t.Helper()
	s := New(owner, repo, token)
	t.Cleanup(s.Close)
	s.Push("main", map[string]string{"README.md": "hi\n"}, "init")
	return s, newClient(t, s, token)
}

func TestObjectIDsMatchGit(t *testing.T) {
	ctx := context.Background()
	_, c := seeded(t)

	// `printf 'hello\n' | git hash-object --stdin`
	b, _, err := c.Git.CreateBlob(ctx, owner, repo, gh.Blob{Content: "hello\n", Encoding: gh.Ptr("utf-8")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.GetSHA(), "ce013625030ba8dba906f756967f9e9ca394464a"; got != want {
		t.Fatalf("blob sha = %s, want %s", got, want)
	}
	b64, _, err := c.Git.CreateBlob(ctx, owner, repo, gh.Blob{
		Content: base64.StdEncoding.EncodeToString([]byte("hello\n")), Encoding: gh.Ptr("base64"),
	})
	if err != nil || b64.GetSHA() != b.GetSHA() {
		t.Fatalf("base64 blob = %s, %v; want %s", b64.GetSHA(), err, b.GetSHA())
	}

	empty, _, err := c.Git.CreateTree(ctx, owner, repo, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := empty.GetSHA(); got != "4b825dc642cb6eb9a060e54bf8d69288fbee4904" {
		t.Fatalf("empty tree sha = %s", got)
	}

	// Reference values from git 2.x: files a-, a.b, a/c.txt, papers/x.md
	// written with `git write-tree`; a-, a.b and a/ exercise git's ordering
	// of a subtree's name as if it ended in "/".
	blob := func(s string) string {
		b, _, err := c.Git.CreateBlob(ctx, owner, repo, gh.Blob{Content: s, Encoding: gh.Ptr("utf-8")})
		if err != nil {
			t.Fatal(err)
		}
		return b.GetSHA()
	}
	entry := func(p, sha string) *gh.TreeEntry {
		return &gh.TreeEntry{Path: gh.Ptr(p), Mode: gh.Ptr("100644"), Type: gh.Ptr("blob"), SHA: gh.Ptr(sha)}
	}
	tree, _, err := c.Git.CreateTree(ctx, owner, repo, "", []*gh.TreeEntry{
		entry("papers/x.md", blob("# x\n")),
		entry("a/c.txt", blob("hello\n")),
		entry("a.b", blob("x\n")),
		{Path: gh.Ptr("a-"), Mode: gh.Ptr("100644"), Type: gh.Ptr("blob"), Content: gh.Ptr("top\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tree.GetSHA(), "cad03dd32866873c3838f1a0ff02d6de85b23b64"; got != want {
		t.Fatalf("tree sha = %s, want %s", got, want)
	}
	var names []string
	for _, e := range tree.Entries {
		names = append(names, e.GetPath()+":"+e.GetType())
	}
	if got := strings.Join(names, " "); got != "a-:blob a.b:blob a:tree papers:tree" {
		t.Fatalf("top-level entries = %s", got)
	}

	// `git commit-tree` with the same tree, identity, date and message.
	when := time.Unix(1700000000, 0).In(time.FixedZone("", 3600))
	sig := &gh.CommitAuthor{Name: gh.Ptr("hyperspace-archive"), Email: gh.Ptr("archive@hyperspace.invalid"), Date: &gh.Timestamp{Time: when}}
	commit, _, err := c.Git.CreateCommit(ctx, owner, repo, gh.Commit{
		Message: gh.Ptr("snapshot 1\n"), Tree: &gh.Tree{SHA: tree.SHA}, Author: sig, Committer: sig,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := commit.GetSHA(), "176ddeb6176babc6d8b605d9e92ce250bd6b15a7"; got != want {
		t.Fatalf("commit sha = %s, want %s", got, want)
	}

	full, _, err := c.Git.GetTree(ctx, owner, repo, tree.GetSHA(), true)
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, e := range full.Entries {
		names = append(names, e.GetPath())
	}
	if got := strings.Join(names, " "); got != "a- a.b a a/c.txt papers papers/x.md" {
		t.Fatalf("recursive listing = %s", got)
	}
}

func TestRefsAndFastForward(t *testing.T) {
	ctx := context.Background()
	s, c := seeded(t)

	ref, _, err := c.Git.GetRef(ctx, owner, repo, "heads/main")
	if err != nil {
		t.Fatal(err)
	}
	head := ref.GetObject().GetSHA()
	if sha, _ := s.Branch("main"); sha != head || ref.GetRef() != "refs/heads/main" {
		t.Fatalf("ref = %+v, branch = %s", ref, sha)
	}
	if _, _, err := c.Git.GetRef(ctx, owner, repo, "heads/nope"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("missing ref: %v", err)
	}

	base, _, err := c.Git.GetCommit(ctx, owner, repo, head)
	if err != nil {
		t.Fatal(err)
	}
	child, _, err := c.Git.CreateCommit(ctx, owner, repo, gh.Commit{
		Message: gh.Ptr("child"), Tree: base.Tree, Parents: []*gh.Commit{{SHA: &head}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, _, err := c.Git.CreateCommit(ctx, owner, repo, gh.Commit{Message: gh.Ptr("unrelated"), Tree: base.Tree}, nil)
	if err != nil {
		t.Fatal(err)
	}

	if _, _, err := c.Git.CreateRef(ctx, owner, repo, gh.CreateRef{Ref: "refs/heads/main", SHA: head}); statusOf(err) != 422 ||
		!strings.Contains(err.Error(), "Reference already exists") {
		t.Fatalf("duplicate ref: %v", err)
	}
	if _, _, err := c.Git.UpdateRef(ctx, owner, repo, "heads/main", gh.UpdateRef{SHA: root.GetSHA(), Force: gh.Ptr(false)}); statusOf(err) != 422 ||
		!strings.Contains(err.Error(), "Update is not a fast forward") {
		t.Fatalf("non-fast-forward update: %v", err)
	}
	if _, _, err := c.Git.UpdateRef(ctx, owner, repo, "heads/main", gh.UpdateRef{SHA: child.GetSHA(), Force: gh.Ptr(false)}); err != nil {
		t.Fatalf("fast-forward update: %v", err)
	}
	if _, _, err := c.Git.UpdateRef(ctx, owner, repo, "heads/main", gh.UpdateRef{SHA: root.GetSHA(), Force: gh.Ptr(true)}); err != nil {
		t.Fatalf("forced update: %v", err)
	}
	if n := s.Commits("main"); n != 1 {
		t.Fatalf("commits after force to root = %d", n)
	}
	if _, _, err := c.Git.CreateTree(ctx, owner, repo, "", []*gh.TreeEntry{{
		Path: gh.Ptr("x"), Mode: gh.Ptr("100644"), Type: gh.Ptr("blob"), SHA: gh.Ptr(strings.Repeat("1", 40)),
	}}); statusOf(err) != 422 || !strings.Contains(err.Error(), "not a valid blob") {
		t.Fatalf("tree with missing blob: %v", err)
	}
}

func TestTreeWithBaseTreeAndDeletion(t *testing.T) {
	ctx := context.Background()
	s, c := seeded(t)
	s.Push("main", map[string]string{"a.txt": "a", "dir/b.txt": "b", "dir/c.txt": "c"}, "files")
	head, _ := s.Branch("main")
	base, _, _ := c.Git.GetCommit(ctx, owner, repo, head)
	tree, _, err := c.Git.CreateTree(ctx, owner, repo, base.GetTree().GetSHA(), []*gh.TreeEntry{
		{Path: gh.Ptr("dir/b.txt"), Mode: gh.Ptr("100644"), Type: gh.Ptr("blob")}, // sha: null deletes
		{Path: gh.Ptr("new/d.txt"), Mode: gh.Ptr("100644"), Type: gh.Ptr("blob"), Content: gh.Ptr("d")},
	})
	if err != nil {
		t.Fatal(err)
	}
	commit, _, err := c.Git.CreateCommit(ctx, owner, repo, gh.Commit{
		Message: gh.Ptr("edit"), Tree: tree, Parents: []*gh.Commit{{SHA: &head}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Git.UpdateRef(ctx, owner, repo, "heads/main", gh.UpdateRef{SHA: commit.GetSHA()}); err != nil {
		t.Fatal(err)
	}
	got := s.Files("main")
	want := map[string]string{"a.txt": "a", "dir/c.txt": "c", "new/d.txt": "d"}
	if len(got) != len(want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("files = %v, want %v", got, want)
		}
	}
}

func TestPullRequests(t *testing.T) {
	ctx := context.Background()
	s, c := seeded(t)
	main, _ := s.Branch("main")
	s.Push("feature", nil, "unrelated root") // no history in common with main

	create := func(head string) (*gh.PullRequest, error) {
		pr, _, err := c.PullRequests.Create(ctx, owner, repo, gh.CreatePullRequest{
			Title: gh.Ptr("t"), Head: head, Base: "main", Body: gh.Ptr("b"),
		})
		return pr, err
	}
	if _, err := create("missing"); statusOf(err) != 422 || !strings.Contains(err.Error(), "Validation Failed") {
		t.Fatalf("missing head: %v", err)
	}
	if _, err := create("feature"); statusOf(err) != 422 || !strings.Contains(err.Error(), "no history in common") {
		t.Fatalf("unrelated head: %v", err)
	}
	if _, _, err := c.Git.CreateRef(ctx, owner, repo, gh.CreateRef{Ref: "refs/heads/same", SHA: main}); err != nil {
		t.Fatal(err)
	}
	if _, err := create("same"); statusOf(err) != 422 || !strings.Contains(err.Error(), "No commits between") {
		t.Fatalf("no commits: %v", err)
	}
	s.Push("same", map[string]string{"README.md": "hi\n", "x": "y"}, "change")

	pr, err := create(owner + ":same")
	if err != nil {
		t.Fatal(err)
	}
	if pr.GetNumber() != 1 || pr.GetState() != "open" || pr.GetHead().GetRef() != "same" || pr.GetBase().GetRef() != "main" ||
		!strings.HasSuffix(pr.GetHTMLURL(), "/pull/1") {
		t.Fatalf("pr = %+v", pr)
	}
	if _, err := create("same"); statusOf(err) != 422 || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate PR: %v", err)
	}

	list := func(state, head string) []*gh.PullRequest {
		prs, _, err := c.PullRequests.List(ctx, owner, repo, &gh.PullRequestListOptions{State: state, Head: head})
		if err != nil {
			t.Fatal(err)
		}
		return prs
	}
	if n := len(list("", owner+":same")); n != 1 {
		t.Fatalf("open PRs for head = %d", n)
	}
	if n := len(list("all", owner+":other")); n != 0 {
		t.Fatalf("PRs for other head = %d", n)
	}
	s.ClosePull(1)
	if n := len(list("open", "")); n != 0 {
		t.Fatalf("open PRs after close = %d", n)
	}
	if prs := list("all", owner+":same"); len(prs) != 1 || prs[0].GetState() != "closed" {
		t.Fatalf("all PRs = %v", prs)
	}
	if got := s.Pulls(); len(got) != 1 || got[0].Head != "same" || got[0].Body != "b" {
		t.Fatalf("Pulls() = %+v", got)
	}
}

func TestAuthAndRepoChecks(t *testing.T) {
	ctx := context.Background()
	s := New(owner, repo, token)
	defer s.Close()

	_, _, err := newClient(t, s, "wrong").Git.GetRef(ctx, owner, repo, "heads/main")
	if statusOf(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), "Bad credentials") {
		t.Fatalf("bad token: %v", err)
	}
	_, _, err = newClient(t, s, "").Git.GetRef(ctx, owner, repo, "heads/main")
	if statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("no token: %v", err)
	}
	c := newClient(t, s, token)
	if _, _, err := c.Git.GetRef(ctx, owner, "other", "heads/main"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("unknown repo: %v", err)
	}

	// A new repository is empty: the Git database API answers 409 until the
	// first commit, which the contents API can make.
	if _, _, err := c.Git.CreateBlob(ctx, owner, repo, gh.Blob{Content: "x"}); statusOf(err) != http.StatusConflict ||
		!strings.Contains(err.Error(), "Git Repository is empty") {
		t.Fatalf("blob in empty repo: %v", err)
	}
	if _, _, err := c.Git.GetRef(ctx, owner, repo, "heads/main"); statusOf(err) != http.StatusConflict {
		t.Fatalf("ref in empty repo: %v", err)
	}
	res, _, err := c.Repositories.CreateFile(ctx, owner, repo, "README.md", &gh.RepositoryContentFileOptions{
		Message: gh.Ptr("init"), Content: []byte("hello\n"), Branch: gh.Ptr("trunk"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetContent().GetSHA() != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Fatalf("content sha = %s", res.GetContent().GetSHA())
	}
	if got := s.Files("trunk"); got["README.md"] != "hello\n" || len(got) != 1 {
		t.Fatalf("files = %v", got)
	}
	if _, _, err := c.Repositories.CreateFile(ctx, owner, repo, "README.md", &gh.RepositoryContentFileOptions{
		Message: gh.Ptr("again"), Content: []byte("x"), Branch: gh.Ptr("trunk"),
	}); statusOf(err) != 422 {
		t.Fatalf("overwrite without sha: %v", err)
	}
	if reqs := s.Requests(); len(reqs) == 0 || reqs[0] != "GET /repos/"+owner+"/"+repo+"/git/ref/heads/main" {
		t.Fatalf("requests = %v", reqs)
	}
}
