package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenCreatesBareRepo(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b.git")
	r := openRepo(t, dir)
	if r.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", r.Dir(), dir)
	}
	head, err := os.ReadFile(filepath.Join(dir, "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(head)) != "ref: refs/heads/main" {
		t.Errorf("HEAD = %q, want refs/heads/main", head)
	}
	if _, ok, err := r.Head(context.Background(), "main"); err != nil || ok {
		t.Errorf("Head(main) on a fresh repo = %v, %v; want not found", ok, err)
	}
	if n := count(t, r, "main"); n != 0 {
		t.Errorf("CommitCount on missing branch = %d", n)
	}
	if _, err := r.Files(context.Background(), "main"); !errors.Is(err, ErrNoBranch) {
		t.Errorf("Files on missing branch: %v, want ErrNoBranch", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir); err == nil {
		t.Error("Open of a non-empty non-repository directory succeeded")
	}
	_, err := Open(ctx, filepath.Join(t.TempDir(), "r"), WithGit("/nonexistent/git-binary"))
	if err == nil || !strings.Contains(err.Error(), "git binary is required") {
		t.Errorf("Open without git: %v", err)
	}
	// A non-bare repository is refused.
	work := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", work).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	if _, err := Open(ctx, work); err == nil {
		t.Error("Open of a work tree succeeded")
	}
}

func TestWriteBranchIdempotent(t *testing.T) {
	t.Parallel()
	r := tempRepo(t)
	f := map[string][]byte{"a.txt": []byte("hello\n"), "b.json": []byte("{}\n")}
	c1, changed := mustWrite(t, r, "main", f, t0)
	if !changed {
		t.Fatal("first write reported no change")
	}
	// Same content, later time, new map: no commit.
	c2, changed := mustWrite(t, r, "main", map[string][]byte{"b.json": []byte("{}\n"), "a.txt": []byte("hello\n")}, t0.Add(time.Hour))
	if changed || c2 != c1 {
		t.Errorf("second write: %s changed=%v, want %s unchanged", c2, changed, c1)
	}
	if n := count(t, r, "main"); n != 1 {
		t.Errorf("CommitCount = %d, want 1", n)
	}
	head, ok, err := r.Head(context.Background(), "main")
	if err != nil || !ok || head != c1 {
		t.Errorf("Head = %s %v %v, want %s", head, ok, err, c1)
	}
	// A change makes exactly one more commit.
	f["a.txt"] = []byte("hello again\n")
	if _, changed := mustWrite(t, r, "main", f, t0.Add(2*time.Hour)); !changed {
		t.Error("changed content made no commit")
	}
	if n := count(t, r, "main"); n != 2 {
		t.Errorf("CommitCount = %d, want 2", n)
	}
	sameFiles(t, files(t, r, "main"), f)
}

func TestWriteBranchNestedAndRemoval(t *testing.T) {
	t.Parallel()
	r := tempRepo(t)
	f := map[string][]byte{
		"JOURNAL.md":         []byte("# j\n"),
		"papers/a.md":        []byte("# A\n"),
		"papers/b.md":        []byte("# B\n"),
		"papers/deep/x/y.md": []byte("deep\n"),
		"papers-x":           []byte("sorts after papers/ in git order\n"),
		"dup1":               []byte("same\n"),
		"dup2":               []byte("same\n"),
		"empty":              {},
	}
	mustWrite(t, r, "agents/p/ml", f, t0)
	sameFiles(t, files(t, r, "agents/p/ml"), f)
	// git itself agrees the tree is well formed.
	if _, err := r.git(context.Background(), nil, "fsck", "--strict", "--no-progress"); err != nil {
		t.Fatalf("fsck: %v", err)
	}

	// Removing files (a whole directory included) and adding one.
	g := map[string][]byte{"JOURNAL.md": []byte("# j2\n"), "papers/b.md": []byte("# B\n"), "new.txt": []byte("n\n")}
	mustWrite(t, r, "agents/p/ml", g, t0.Add(time.Minute))
	sameFiles(t, files(t, r, "agents/p/ml"), g)

	// The empty tree is a valid state.
	mustWrite(t, r, "agents/p/ml", map[string][]byte{}, t0.Add(2*time.Minute))
	if got := files(t, r, "agents/p/ml"); len(got) != 0 {
		t.Errorf("files after emptying: %v", names(got))
	}
	if n := count(t, r, "agents/p/ml"); n != 3 {
		t.Errorf("CommitCount = %d, want 3", n)
	}
}

func TestWriteBranchRejects(t *testing.T) {
	t.Parallel()
	r := tempRepo(t)
	ctx := context.Background()
	for _, p := range []string{"", "/a", "a/", "a//b", "../x", "a/./b", ".git/config", "x/.GIT/y", "a\x00b"} {
		if _, _, err := r.WriteBranch(ctx, "main", map[string][]byte{p: nil}, "m", t0); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	if _, _, err := r.WriteBranch(ctx, "main", map[string][]byte{"a": nil, "a/b": nil}, "m", t0); err == nil {
		t.Error("file/directory clash accepted")
	}
	for _, b := range []string{"", "HEAD", "a..b", "a/.b", "x.lock", "-x", "a b", "a:b", "a//b", "a/"} {
		if _, _, err := r.WriteBranch(ctx, b, map[string][]byte{"f": nil}, "m", t0); err == nil {
			t.Errorf("branch %q accepted", b)
		}
	}
	if _, _, err := r.WriteBranch(ctx, "main", map[string][]byte{"f": nil}, "m", time.Time{}); err == nil {
		t.Error("zero time accepted")
	}
	if n := count(t, r, "main"); n != 0 {
		t.Errorf("rejected writes made %d commits", n)
	}
}

// writeSequence writes the same three states to a repo.
func writeSequence(t *testing.T, r *Repo) []string {
	var heads []string
	for i, f := range []map[string][]byte{
		{"a": []byte("1")},
		{"a": []byte("1"), "d/b": []byte("2")},
		{"d/b": []byte("3")},
	} {
		c, _ := mustWrite(t, r, "agents/peer/ml", f, t0.Add(time.Duration(i)*time.Minute))
		heads = append(heads, c)
	}
	s, _ := mustWrite(t, r, SnapshotBranch, map[string][]byte{SnapshotPath: []byte("{}\n")}, t0)
	return append(heads, s)
}

func TestDeterministicCommitIDs(t *testing.T) {
	t.Parallel()
	a := writeSequence(t, tempRepo(t))
	b := writeSequence(t, tempRepo(t))
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Errorf("fresh repos disagree:\n%v\n%v", a, b)
	}
	// The time is part of the commit.
	r := tempRepo(t)
	c, _ := mustWrite(t, r, "agents/peer/ml", map[string][]byte{"a": []byte("1")}, t0.Add(time.Second))
	if c == a[0] {
		t.Error("a different commit time gave the same commit id")
	}
}

func TestReopenAfterRestart(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "archive.git")
	r1 := openRepo(t, dir)
	f := map[string][]byte{"x/y.md": []byte("y\n"), "z": []byte("z\n")}
	c1, _ := mustWrite(t, r1, "agents/p/d", f, t0)

	r2 := openRepo(t, dir) // a new process would do the same
	c2, changed := mustWrite(t, r2, "agents/p/d", f, t0.Add(24*time.Hour))
	if changed || c2 != c1 {
		t.Errorf("rewrite after reopen: %s changed=%v, want %s unchanged", c2, changed, c1)
	}
	if n := count(t, r2, "agents/p/d"); n != 1 {
		t.Errorf("CommitCount = %d, want 1", n)
	}
}

// history returns every commit reachable from branch.
func history(t *testing.T, r *Repo, branch string) map[string]bool {
	t.Helper()
	out, err := r.git(context.Background(), nil, "rev-list", "refs/heads/"+branch)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, c := range strings.Fields(string(out)) {
		m[c] = true
	}
	return m
}

func testConcurrent(t *testing.T, noMutex bool) {
	dir := filepath.Join(t.TempDir(), "archive.git")
	openRepo(t, dir)
	const writers, writes = 4, 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	commits := map[string][]string{} // branch -> commits returned
	errs := make(chan error, 2*writers*writes)
	for w := 0; w < writers; w++ {
		// Each writer has its own Repo on the shared directory, like
		// separate processes would.
		r := openRepo(t, dir)
		r.noMutex = noMutex
		r.attempts = 200
		for _, branch := range []string{"agents/shared/ml", fmt.Sprintf("agents/own%d/ml", w)} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < writes; i++ {
					f := map[string][]byte{
						"common.md":                          []byte("same for everyone\n"),
						fmt.Sprintf("w%d/run-%d.json", w, i): []byte(fmt.Sprintf("%d/%d\n", w, i)),
					}
					c, changed, err := r.WriteBranch(context.Background(), branch, f, fmt.Sprintf("w%d i%d", w, i), t0.Add(time.Duration(i)*time.Second))
					if err != nil {
						errs <- err
						return
					}
					if !changed {
						errs <- fmt.Errorf("%s: write %d/%d made no commit", branch, w, i)
					}
					mu.Lock()
					commits[branch] = append(commits[branch], c)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r := openRepo(t, dir)
	for branch, cs := range commits {
		h := history(t, r, branch)
		for _, c := range cs {
			if !h[c] {
				t.Errorf("%s: commit %s was lost", branch, c)
			}
		}
		if len(h) != len(cs) {
			t.Errorf("%s: %d commits in history, %d writes", branch, len(h), len(cs))
		}
	}
	if n := len(commits["agents/shared/ml"]); n != writers*writes {
		t.Errorf("shared branch: %d commits, want %d", n, writers*writes)
	}
	if _, err := r.git(context.Background(), nil, "fsck", "--strict", "--no-progress"); err != nil {
		t.Fatalf("fsck: %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	t.Run("mutex", func(t *testing.T) { testConcurrent(t, false) })
	t.Run("cas-only", func(t *testing.T) { testConcurrent(t, true) })
}

// TestCompareAndSwapRetry makes another writer move the head between
// reading it and updating it: the first update-ref must fail and the
// retry must commit on top of the other writer's commit.
func TestCompareAndSwapRetry(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "archive.git")
	a, b := openRepo(t, dir), openRepo(t, dir)
	a.noMutex, b.noMutex = true, true
	mustWrite(t, a, "main", map[string][]byte{"f": []byte("0")}, t0)
	var other string
	a.beforeCommit = func() {
		other, _ = mustWrite(t, b, "main", map[string][]byte{"f": []byte("b")}, t0.Add(time.Second))
	}
	c, changed := mustWrite(t, a, "main", map[string][]byte{"f": []byte("a")}, t0.Add(2*time.Second))
	if !changed || other == "" {
		t.Fatalf("changed=%v other=%q", changed, other)
	}
	out, err := a.git(context.Background(), nil, "rev-parse", c+"^")
	if err != nil {
		t.Fatal(err)
	}
	if p := strings.TrimSpace(string(out)); p != other {
		t.Errorf("parent of %s is %s, want the other writer's %s", c, p, other)
	}
	if n := count(t, a, "main"); n != 3 {
		t.Errorf("CommitCount = %d, want 3", n)
	}
	sameFiles(t, files(t, a, "main"), map[string][]byte{"f": []byte("a")})

	// When the other writer wrote the very same tree, no commit is made.
	a.beforeCommit = func() {
		other, _ = mustWrite(t, b, "main", map[string][]byte{"f": []byte("same")}, t0.Add(3*time.Second))
	}
	c, changed = mustWrite(t, a, "main", map[string][]byte{"f": []byte("same")}, t0.Add(4*time.Second))
	if changed || c != other {
		t.Errorf("same tree: %s changed=%v, want %s unchanged", c, changed, other)
	}
}

func TestBranches(t *testing.T) {
	t.Parallel()
	r := tempRepo(t)
	for _, b := range []string{"agents/p2/ml", "agents/p1/search", "agents/p1/ml", SnapshotBranch} {
		mustWrite(t, r, b, map[string][]byte{"f": []byte(b)}, t0)
	}
	got, err := r.Branches(context.Background(), "agents/")
	if err != nil {
		t.Fatal(err)
	}
	if want := "agents/p1/ml agents/p1/search agents/p2/ml"; strings.Join(got, " ") != want {
		t.Errorf("Branches(agents/) = %v, want %s", got, want)
	}
	all, _ := r.Branches(context.Background(), "")
	if len(all) != 4 {
		t.Errorf("Branches() = %v", all)
	}
}

func TestPush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := tempRepo(t)
	remoteDir := filepath.Join(t.TempDir(), "remote.git")
	remote := openRepo(t, remoteDir)

	// Nothing to push yet is not an error.
	if err := r.Push(ctx, remoteDir); err != nil {
		t.Fatalf("empty push: %v", err)
	}
	mustWrite(t, r, "agents/p1/ml", map[string][]byte{"a": []byte("1")}, t0)
	mustWrite(t, r, "agents/p2/search", map[string][]byte{"b/c": []byte("2")}, t0)
	mustWrite(t, r, "main", map[string][]byte{"not": []byte("pushed")}, t0)
	if err := r.Push(ctx, remoteDir); err != nil {
		t.Fatalf("push without snapshots: %v", err)
	}
	mustWrite(t, r, SnapshotBranch, map[string][]byte{SnapshotPath: []byte("{}\n")}, t0)
	mustWrite(t, r, "agents/p1/ml", map[string][]byte{"a": []byte("1b")}, t0.Add(time.Minute))
	if err := r.Push(ctx, remoteDir); err != nil {
		t.Fatalf("push: %v", err)
	}
	if err := r.Push(ctx, "file://"+remoteDir); err != nil { // up to date, via a URL
		t.Fatalf("second push: %v", err)
	}
	local, _ := r.Branches(ctx, "")
	got, _ := remote.Branches(ctx, "")
	if want := "agents/p1/ml agents/p2/search snapshots"; strings.Join(got, " ") != want {
		t.Errorf("remote branches %v, want %s", got, want)
	}
	for _, b := range local {
		lh, _, _ := r.Head(ctx, b)
		rh, ok, err := remote.Head(ctx, b)
		if b == "main" {
			if ok {
				t.Error("main was pushed")
			}
			continue
		}
		if err != nil || !ok || rh != lh {
			t.Errorf("%s: remote head %s (%v, %v), local %s", b, rh, ok, err, lh)
		}
	}
	sameFiles(t, files(t, remote, "agents/p2/search"), map[string][]byte{"b/c": []byte("2")})

	// Explicit refspecs.
	if err := r.Push(ctx, remoteDir, "refs/heads/main:refs/heads/main"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := remote.Head(ctx, "main"); !ok {
		t.Error("explicit refspec did not push main")
	}

	// A diverged remote is refused with git's message.
	mustWrite(t, remote, "agents/p1/ml", map[string][]byte{"other": []byte("x")}, t0)
	mustWrite(t, r, "agents/p1/ml", map[string][]byte{"a": []byte("1c")}, t0.Add(2*time.Minute))
	err := r.Push(ctx, remoteDir)
	if err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Errorf("diverged push: %v", err)
	}
	// A missing remote fails with git's stderr.
	err = r.Push(ctx, filepath.Join(t.TempDir(), "nope"))
	var ge *GitError
	if !errors.As(err, &ge) || ge.Stderr == "" || !strings.Contains(err.Error(), ge.Stderr[:10]) {
		t.Errorf("push to a missing remote: %v", err)
	}
	if err := r.Push(ctx, "--upload-pack=evil"); err == nil {
		t.Error("option-like remote accepted")
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	got := redact("push https://user:s3cret@github.com/o/r.git failed for https://tok@x.y/z")
	if strings.Contains(got, "s3cret") || strings.Contains(got, "tok@") {
		t.Errorf("redact left credentials: %s", got)
	}
}

// TestValidComponentAgreesWithGit checks that every component we accept
// is accepted by git check-ref-format, and that what git rejects we
// reject too.
func TestValidComponentAgreesWithGit(t *testing.T) {
	t.Parallel()
	cases := []string{
		"hs1abcdefghijklmnopqrstuvwxyz234567abc", "12D3KooWBV9nFQY6e284hjbB7a4CouuywyGtDn9nwVrCySQDsnxM",
		"ml", "p2p-network", "a_b", "x.y", "a+b", "é", "a@b",
		"", ".hidden", "-dash", "end.", "x.lock", "a..b", "a@{b", "@", "a b", "a~b", "a^b", "a:b",
		"a?b", "a*b", "a[b", `a\b`, "a/b", "tab\tx", "del\x7fx", "nl\nx",
	}
	for _, c := range cases {
		ours := ValidComponent(c) == nil
		err := exec.Command("git", "check-ref-format", "refs/heads/agents/"+c+"/ml").Run()
		gits := err == nil
		if ours && !gits {
			t.Errorf("%q: we accept, git rejects", c)
		}
		if c == "ml" || c == "p2p-network" || strings.HasPrefix(c, "hs1") || strings.HasPrefix(c, "12D3") {
			if !ours {
				t.Errorf("%q rejected", c)
			}
		}
	}
	if b, err := BranchName("hs1abc", "p2p-network"); err != nil || b != "agents/hs1abc/p2p-network" {
		t.Errorf("BranchName = %q, %v", b, err)
	}
	for _, bad := range [][2]string{{"", "ml"}, {"p", ""}, {"a/b", "ml"}, {"p", "x..y"}, {"p", "-x"}} {
		if _, err := BranchName(bad[0], bad[1]); err == nil {
			t.Errorf("BranchName(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// TestSHA256Repository checks the local object ids against git in a
// sha256 repository.
func TestSHA256Repository(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sha256.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", "--object-format=sha256", dir).CombinedOutput(); err != nil {
		t.Skipf("git cannot make sha256 repositories: %v %s", err, out)
	}
	r := openRepo(t, dir)
	f := map[string][]byte{"a": []byte("1"), "d/e/f": []byte("2"), "d/g": []byte("3")}
	c, _ := mustWrite(t, r, "main", f, t0)
	if len(c) != 64 {
		t.Errorf("commit id %q is not sha256", c)
	}
	if _, changed := mustWrite(t, r, "main", f, t0.Add(time.Hour)); changed {
		t.Error("rewrite made a commit")
	}
	sameFiles(t, files(t, r, "main"), f)
}
