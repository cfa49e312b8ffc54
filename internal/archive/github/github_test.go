package github_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/archive/github"
	"github.com/hyperspace-ai/hyperspace/internal/archive/github/githubtest"
)

const (
	owner  = "hyperspace-ai"
	repo   = "research"
	token  = "test-token"
	branch = "agents/12D3KooWpeer/ml"
)

var when = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*githubtest.Server, *github.Publisher) {
	t.Helper()
	srv := githubtest.New(owner, repo, token)
	t.Cleanup(srv.Close)
	return srv, publisher(t, srv, token)
}

func publisher(t *testing.T, srv *githubtest.Server, tok string) *github.Publisher {
	t.Helper()
	p, err := github.New(github.Config{Owner: owner, Repo: repo, Token: tok, BaseURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runFiles(n int) map[string][]byte {
	files := map[string][]byte{
		"best.json":          []byte(`{"run":1}`),
		"JOURNAL.md":         []byte("# Journal\n"),
		"papers/p-0001.md":   []byte("# Paper\n\nresult\n"),
		"papers/sub/deep.md": []byte("deep\n"),
	}
	for i := 1; i <= n; i++ {
		files[fmt.Sprintf("run-%04d.json", i)] = []byte(fmt.Sprintf(`{"run":%d}`, i))
		files[fmt.Sprintf("run-%04d.md", i)] = []byte(fmt.Sprintf("run %d\n", i))
	}
	return files
}

func assertFiles(t *testing.T, srv *githubtest.Server, branch string, want map[string][]byte) {
	t.Helper()
	got := srv.Files(branch)
	if len(got) != len(want) {
		t.Fatalf("%s holds %d files %v, want %d", branch, len(got), keys(got), len(want))
	}
	for p, c := range want {
		if got[p] != string(c) {
			t.Fatalf("%s: %s = %q, want %q", branch, p, got[p], c)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func countPrefix(reqs []string, prefix string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []github.Config{
		{Owner: "", Repo: "r"},
		{Owner: "o", Repo: ""},
		{Owner: "o/x", Repo: "r"},
		{Owner: "o", Repo: "r/x"},
		{Owner: "o", Repo: "r", BaseBranch: "bad..name"},
	} {
		if _, err := github.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := github.New(github.Config{Owner: "o", Repo: "r", BaseURL: "http://127.0.0.1:1/api"}); err != nil {
		t.Fatal(err)
	}
}

func TestMirrorNewBranchInEmptyRepo(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	files := runFiles(2)

	sha, changed, err := p.MirrorBranch(ctx, branch, files, "mirror 1", when)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("changed = false for a new branch")
	}
	if head, ok := srv.Branch(branch); !ok || head != sha {
		t.Fatalf("branch head = %s %v, want %s", head, ok, sha)
	}
	assertFiles(t, srv, branch, files)
	if n := srv.Commits(branch); n != 1 {
		t.Fatalf("commits = %d, want a single root commit", n)
	}
	// The empty repository was initialized with a README on main first.
	assertFiles(t, srv, "main", map[string][]byte{"README.md": []byte(github.ReadmeContent)})
}

func TestMirrorUnchangedIsNoop(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	files := runFiles(3)
	first, _, err := p.MirrorBranch(ctx, branch, files, "mirror 1", when)
	if err != nil {
		t.Fatal(err)
	}
	before := len(srv.Requests())

	sha, changed, err := p.MirrorBranch(ctx, branch, maps.Clone(files), "mirror 2", when.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if changed || sha != first {
		t.Fatalf("second mirror: sha %s changed %v, want %s false", sha, changed, first)
	}
	if n := srv.Commits(branch); n != 1 {
		t.Fatalf("commits = %d, want 1", n)
	}
	if writes := srv.Requests()[before:]; countPrefix(writes, "POST")+countPrefix(writes, "PATCH") != 0 {
		t.Fatalf("unchanged mirror wrote: %v", writes)
	}
}

func TestMirrorChangesAndRemovals(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	files := runFiles(2)
	if _, _, err := p.MirrorBranch(ctx, branch, files, "mirror 1", when); err != nil {
		t.Fatal(err)
	}

	// Add a run, change best.json, drop a paper.
	next := runFiles(3)
	next["best.json"] = []byte(`{"best":3}`)
	delete(next, "papers/sub/deep.md")
	before := len(srv.Requests())
	sha, changed, err := p.MirrorBranch(ctx, branch, next, "mirror 2", when.Add(time.Minute))
	if err != nil || !changed {
		t.Fatalf("mirror 2: %v changed=%v", err, changed)
	}
	assertFiles(t, srv, branch, next)
	if n := srv.Commits(branch); n != 2 {
		t.Fatalf("commits = %d, want 2", n)
	}
	if head, _ := srv.Branch(branch); head != sha {
		t.Fatalf("head = %s, want %s", head, sha)
	}
	// Only the new or changed contents were uploaded.
	if n := countPrefix(srv.Requests()[before:], "POST /repos/"+owner+"/"+repo+"/git/blobs"); n != 3 {
		t.Fatalf("uploaded %d blobs, want 3 (run-0003.json, run-0003.md, best.json)", n)
	}

	// Mirroring a same-content tree under a different map instance is a no-op,
	// and the other branch is untouched by all this.
	if _, changed, err := p.MirrorBranch(ctx, branch, next, "again", when); err != nil || changed {
		t.Fatalf("re-mirror: %v changed=%v", err, changed)
	}
	snap := map[string][]byte{"snapshots/latest.json": []byte(`{"seq":1}`)}
	if _, _, err := p.MirrorBranch(ctx, "snapshots", snap, "snapshot", when); err != nil {
		t.Fatal(err)
	}
	assertFiles(t, srv, "snapshots", snap)
	assertFiles(t, srv, branch, next)
}

func TestMirrorRetriesWhenBranchMoves(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	if _, _, err := p.MirrorBranch(ctx, branch, runFiles(1), "mirror 1", when); err != nil {
		t.Fatal(err)
	}

	// Someone else pushes to the branch just before our first ref update.
	var once sync.Once
	srv.OnRequest(func(method, path string) {
		if method == "PATCH" && strings.HasSuffix(path, "/git/refs/heads/"+branch) {
			once.Do(func() { srv.Push(branch, map[string]string{"other.txt": "x"}, "concurrent push") })
		}
	})
	files := runFiles(2)
	sha, changed, err := p.MirrorBranch(ctx, branch, files, "mirror 2", when)
	if err != nil || !changed {
		t.Fatalf("mirror: %v changed=%v", err, changed)
	}
	assertFiles(t, srv, branch, files)
	if n := srv.Commits(branch); n != 3 {
		t.Fatalf("commits = %d, want 3 (ours on top of the concurrent push)", n)
	}
	if head, _ := srv.Branch(branch); head != sha {
		t.Fatalf("head = %s, want %s", head, sha)
	}
	if n := countPrefix(srv.Requests(), "PATCH"); n != 2 {
		t.Fatalf("PATCH requests = %d, want 2", n)
	}
}

func TestMirrorGivesUpWhenBranchKeepsMoving(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	if _, _, err := p.MirrorBranch(ctx, branch, runFiles(1), "mirror 1", when); err != nil {
		t.Fatal(err)
	}
	i := 0
	srv.OnRequest(func(method, path string) {
		if method == "PATCH" {
			i++
			srv.Push(branch, map[string]string{"other.txt": fmt.Sprint(i)}, "push")
		}
	})
	_, _, err := p.MirrorBranch(ctx, branch, runFiles(2), "mirror 2", when)
	if err == nil || !strings.Contains(err.Error(), "mirror "+branch) || !strings.Contains(err.Error(), "not a fast forward") {
		t.Fatalf("err = %v", err)
	}
	if i != 4 {
		t.Fatalf("attempts = %d, want 4 (1 + 3 retries)", i)
	}
}

func TestMirrorConcurrentPublishers(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	if _, _, err := p.MirrorBranch(ctx, branch, runFiles(1), "mirror 1", when); err != nil {
		t.Fatal(err)
	}
	p2 := publisher(t, srv, token)
	a, b := runFiles(2), runFiles(3)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, job := range []struct {
		p     *github.Publisher
		files map[string][]byte
	}{{p, a}, {p2, b}} {
		wg.Go(func() { _, _, errs[i] = job.p.MirrorBranch(ctx, branch, job.files, "mirror", when) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := srv.Files(branch)
	if len(got) != len(a) && len(got) != len(b) {
		t.Fatalf("final files %v match neither publisher", keys(got))
	}
	if n := srv.Commits(branch); n != 3 {
		t.Fatalf("commits = %d, want 3", n)
	}
}

func TestMirrorRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	_, p := setup(t)
	for name, files := range map[string]map[string][]byte{
		"empty":    {},
		"absolute": {"/etc/x": nil},
		"dotdot":   {"a/../b": nil},
	} {
		if _, _, err := p.MirrorBranch(ctx, branch, files, "m", when); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, _, err := p.MirrorBranch(ctx, "bad branch", runFiles(1), "m", when); err == nil {
		t.Error("bad branch name accepted")
	}
}

func TestOpenBreakthroughPR(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	paper := []byte("# Breakthrough\n\nloss 0.01\n")
	const id = "a1b2c3d4e5f6a7b8c9d0"
	const br = "breakthroughs/a1b2c3d4e5f6"

	n, url, created, err := p.OpenBreakthroughPR(ctx, id, "Breakthrough: loss 0.01", "details", "papers/"+id+".md", paper)
	if err != nil {
		t.Fatal(err)
	}
	if !created || n != 1 || !strings.HasSuffix(url, "/pull/1") {
		t.Fatalf("got #%d %s created=%v", n, url, created)
	}
	// The empty repository got a base branch holding only the README.
	assertFiles(t, srv, "main", map[string][]byte{"README.md": []byte(github.ReadmeContent)})
	assertFiles(t, srv, br, map[string][]byte{"README.md": []byte(github.ReadmeContent), "papers/" + id + ".md": paper})
	if n := srv.Commits(br); n != 2 {
		t.Fatalf("breakthrough branch commits = %d, want 2", n)
	}
	prs := srv.Pulls()
	if len(prs) != 1 || prs[0].Head != br || prs[0].Base != "main" || prs[0].Title != "Breakthrough: loss 0.01" || prs[0].Body != "details" {
		t.Fatalf("pulls = %+v", prs)
	}

	// Idempotent, even once the PR is closed.
	srv.ClosePull(1)
	n2, url2, created, err := p.OpenBreakthroughPR(ctx, id, "again", "again", "papers/"+id+".md", paper)
	if err != nil || created || n2 != n || url2 != url {
		t.Fatalf("second call: #%d %s created=%v err=%v", n2, url2, created, err)
	}
	if len(srv.Pulls()) != 1 || srv.Commits(br) != 2 {
		t.Fatalf("second call changed the repository: %+v", srv.Pulls())
	}
}

func TestOpenBreakthroughPRCreatesMissingBase(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	// The repository has history, but no main branch.
	srv.Push("legacy", map[string]string{"old.txt": "old"}, "legacy")

	n, _, created, err := p.OpenBreakthroughPR(ctx, "feedbeef", "t", "b", "papers/feedbeef.md", []byte("paper"))
	if err != nil || !created || n != 1 {
		t.Fatalf("#%d created=%v err=%v", n, created, err)
	}
	assertFiles(t, srv, "main", map[string][]byte{"README.md": []byte(github.ReadmeContent)})
	if c := srv.Commits("main"); c != 1 {
		t.Fatalf("main commits = %d, want 1 (root commit)", c)
	}
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r, "PUT ") {
			t.Fatalf("used the contents API on a non-empty repository: %s", r)
		}
	}
}

func TestOpenBreakthroughPRReusesBranch(t *testing.T) {
	ctx := context.Background()
	srv, p := setup(t)
	if _, _, err := p.MirrorBranch(ctx, "main", map[string][]byte{"README.md": []byte("hi\n")}, "base", when); err != nil {
		t.Fatal(err)
	}
	// A leftover branch from an interrupted run: created, but without the paper.
	const br = "breakthroughs/0123456789ab"
	if _, ok := srv.CreateBranch(br, "main"); !ok {
		t.Fatal("CreateBranch failed")
	}

	n, _, created, err := p.OpenBreakthroughPR(ctx, "0123456789abcdef", "t", "b", "papers/p.md", []byte("paper"))
	if err != nil || !created || n != 1 {
		t.Fatalf("#%d created=%v err=%v", n, created, err)
	}
	assertFiles(t, srv, br, map[string][]byte{"README.md": []byte("hi\n"), "papers/p.md": []byte("paper")})
	if c := srv.Commits(br); c != srv.Commits("main")+1 {
		t.Fatalf("branch commits = %d, want main's + 1", c)
	}
}

func TestBadToken(t *testing.T) {
	ctx := context.Background()
	srv, _ := setup(t)
	p := publisher(t, srv, "wrong-token")

	_, _, err := p.MirrorBranch(ctx, branch, runFiles(1), "m", when)
	if err == nil || !strings.Contains(err.Error(), "bad credentials") || !strings.Contains(err.Error(), "mirror "+branch) {
		t.Fatalf("mirror err = %v", err)
	}
	_, _, _, err = p.OpenBreakthroughPR(ctx, "abc", "t", "b", "papers/abc.md", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "bad credentials") {
		t.Fatalf("PR err = %v", err)
	}
}

func TestUnknownRepository(t *testing.T) {
	ctx := context.Background()
	srv, _ := setup(t)
	p, err := github.New(github.Config{Owner: owner, Repo: "missing", Token: token, BaseURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = p.MirrorBranch(ctx, branch, runFiles(1), "m", when)
	if err == nil || !strings.Contains(err.Error(), "token lacks access to "+owner+"/missing") {
		t.Fatalf("err = %v", err)
	}
}
