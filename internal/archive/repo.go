package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Author is the fixed author and committer of every archive commit.
const (
	AuthorName  = "hyperspace-archive"
	AuthorEmail = "archive@hyperspace.invalid"
)

// DefaultBranch is the initial branch of a repository Open creates.
const DefaultBranch = "main"

// defaultAttempts bounds the compare-and-swap retries of WriteBranch.
const defaultAttempts = 20

// ErrNoBranch is returned (wrapped) by Files for a branch that does not
// exist.
var ErrNoBranch = errors.New("archive: no such branch")

// GitError is a failed git invocation; its message includes git's stderr.
type GitError struct {
	Args     []string // the arguments after "git"
	ExitCode int      // -1 when git did not run or was killed
	Stderr   string
	Err      error
}

func (e *GitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	} else {
		msg = e.Err.Error() + ": " + msg
	}
	return "archive: git " + redact(strings.Join(e.Args, " ")) + ": " + redact(msg)
}

func (e *GitError) Unwrap() error { return e.Err }

// credentialsRE matches the user-info part of a URL.
var credentialsRE = regexp.MustCompile(`(://)[^/@\s]*@`)

// redact hides credentials embedded in URLs (https://user:token@host).
func redact(s string) string { return credentialsRE.ReplaceAllString(s, "${1}***@") }

// Option configures a Repo.
type Option func(*Repo)

// WithGit names the git binary to run (default: "git" from PATH).
func WithGit(path string) Option { return func(r *Repo) { r.gitBin = path } }

// WithEnv adds KEY=VALUE entries to the isolated environment of every git
// invocation, e.g. SSH_AUTH_SOCK and GIT_SSH_COMMAND for an ssh remote, or
// GIT_CONFIG_COUNT=1, GIT_CONFIG_KEY_0=http.extraHeader,
// GIT_CONFIG_VALUE_0="Authorization: Bearer ..." for an https one. Later
// entries override earlier ones and the defaults.
func WithEnv(kv ...string) Option {
	return func(r *Repo) { r.extraEnv = append(r.extraEnv, kv...) }
}

// Repo is a local bare git repository used as the archive. It is safe for
// concurrent use, and several Repos (in this or other processes) may share
// one directory.
type Repo struct {
	dir      string // absolute
	gitBin   string
	extraEnv []string
	format   string // object format: "sha1" or "sha256"

	attempts     int    // compare-and-swap attempts per write
	noMutex      bool   // tests: skip the process-level mutex to exercise the CAS
	beforeCommit func() // tests: runs once, after the objects are written
}

// Dir returns the repository directory (absolute).
func (r *Repo) Dir() string { return r.dir }

// Open opens the bare repository at dir, creating it (git init --bare,
// default branch main) when dir does not exist or is empty. It fails when
// the git binary is missing or dir is something other than a git
// repository.
func Open(ctx context.Context, dir string, opts ...Option) (*Repo, error) {
	if dir == "" {
		return nil, errors.New("archive: empty repository directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	r := &Repo{dir: abs, gitBin: "git", attempts: defaultAttempts}
	for _, o := range opts {
		o(r)
	}
	bin, err := exec.LookPath(r.gitBin)
	if err != nil {
		return nil, fmt.Errorf("archive: the git binary is required: %w", err)
	}
	r.gitBin = bin
	if empty, err := missingOrEmpty(abs); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	} else if empty {
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		// --template= copies no sample hooks or description.
		if _, err := r.run(ctx, nil, nil, "init", "--quiet", "--bare", "--template=", "--initial-branch="+DefaultBranch, abs); err != nil {
			return nil, err
		}
	}
	out, err := r.git(ctx, nil, "rev-parse", "--is-bare-repository", "--show-object-format")
	if err != nil {
		return nil, fmt.Errorf("archive: %s is not a git repository: %w", abs, err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != 2 {
		return nil, fmt.Errorf("archive: unexpected rev-parse output %q", out)
	}
	if lines[0] != "true" {
		return nil, fmt.Errorf("archive: %s is not a bare repository", abs)
	}
	switch lines[1] {
	case "sha1", "sha256":
		r.format = lines[1]
	default:
		return nil, fmt.Errorf("archive: unsupported object format %q", lines[1])
	}
	return r, nil
}

func missingOrEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return true, nil
	}
	if len(names) > 0 {
		return false, nil
	}
	return false, err
}

// env returns the isolated environment of git invocations.
func (r *Repo) env(extra []string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=true",
		"GIT_AUTHOR_NAME=" + AuthorName,
		"GIT_AUTHOR_EMAIL=" + AuthorEmail,
		"GIT_COMMITTER_NAME=" + AuthorName,
		"GIT_COMMITTER_EMAIL=" + AuthorEmail,
	}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		env = append(env, "TMPDIR="+tmp)
	}
	env = append(env, r.extraEnv...)
	return append(env, extra...)
}

// git runs git against the repository with stdin (may be nil) and returns
// its stdout.
func (r *Repo) git(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	return r.run(ctx, stdin, nil, append([]string{"--git-dir=" + r.dir}, args...)...)
}

func (r *Repo) run(ctx context.Context, stdin []byte, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.gitBin, args...)
	cmd.Env = r.env(env)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return stdout.Bytes(), &GitError{Args: args, ExitCode: code, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// Head returns the commit id at the head of branch and whether the branch
// exists.
func (r *Repo) Head(ctx context.Context, branch string) (string, bool, error) {
	if err := ValidBranch(branch); err != nil {
		return "", false, err
	}
	return r.head(ctx, branch)
}

func (r *Repo) head(ctx context.Context, branch string) (string, bool, error) {
	commit, _, ok, err := r.headTree(ctx, branch)
	return commit, ok, err
}

// headTree returns the head commit of branch and its tree, with one git
// invocation.
func (r *Repo) headTree(ctx context.Context, branch string) (commit, tree string, ok bool, err error) {
	ref := "refs/heads/" + branch
	out, err := r.git(ctx, nil, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(objecttype)%00%(tree)", ref)
	if err != nil {
		return "", "", false, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\x00")
		if len(f) != 4 || f[0] != ref {
			continue // another ref under the pattern
		}
		if f[2] != "commit" {
			return "", "", false, fmt.Errorf("archive: %s points to a %s, not a commit", ref, f[2])
		}
		return f[1], f[3], true, nil
	}
	return "", "", false, nil
}

// Branches returns the branches whose names start with prefix (all when
// prefix is empty), sorted, without "refs/heads/".
func (r *Repo) Branches(ctx context.Context, prefix string) ([]string, error) {
	out, err := r.git(ctx, nil, "for-each-ref", "--format=%(refname)", "refs/heads/")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		name, ok := strings.CutPrefix(line, "refs/heads/")
		if ok && strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// CommitCount returns the number of commits reachable from branch; 0 when
// the branch does not exist.
func (r *Repo) CommitCount(ctx context.Context, branch string) (int, error) {
	head, ok, err := r.Head(ctx, branch)
	if err != nil || !ok {
		return 0, err
	}
	out, err := r.git(ctx, nil, "rev-list", "--count", head)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

// Files returns every file of branch's head tree, keyed by its slash
// separated path. Symbolic links are returned as their target; submodule
// entries are skipped. A missing branch gives an error wrapping
// ErrNoBranch.
func (r *Repo) Files(ctx context.Context, branch string) (map[string][]byte, error) {
	head, ok, err := r.Head(ctx, branch)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoBranch, branch)
	}
	out, err := r.git(ctx, nil, "ls-tree", "-r", "-z", "--full-tree", head)
	if err != nil {
		return nil, err
	}
	var paths, ids []string
	for _, rec := range strings.Split(string(out), "\x00") {
		if rec == "" {
			continue
		}
		meta, path, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("archive: unexpected ls-tree record %q", rec)
		}
		if f[1] != "blob" {
			continue
		}
		paths = append(paths, path)
		ids = append(ids, f[2])
	}
	files := make(map[string][]byte, len(paths))
	if len(ids) == 0 {
		return files, nil
	}
	blobs, err := r.readBlobs(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, p := range paths {
		files[p] = blobs[i]
	}
	return files, nil
}

// readBlobs reads objects with one git cat-file --batch.
func (r *Repo) readBlobs(ctx context.Context, ids []string) ([][]byte, error) {
	in := strings.Join(ids, "\n") + "\n"
	out, err := r.git(ctx, []byte(in), "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	res := make([][]byte, 0, len(ids))
	for _, id := range ids {
		nl := bytes.IndexByte(out, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("archive: truncated cat-file output for %s", id)
		}
		f := strings.Fields(string(out[:nl]))
		if len(f) != 3 || f[0] != id {
			return nil, fmt.Errorf("archive: cat-file: unexpected header %q for %s", out[:nl], id)
		}
		size, err := strconv.Atoi(f[2])
		if err != nil || size < 0 || nl+1+size+1 > len(out) {
			return nil, fmt.Errorf("archive: cat-file: bad size in %q", out[:nl])
		}
		res = append(res, bytes.Clone(out[nl+1:nl+1+size]))
		out = out[nl+1+size+1:]
	}
	return res, nil
}

// missing returns the subset of ids that are not in the object store.
func (r *Repo) missing(ctx context.Context, ids []string) (map[string]bool, error) {
	miss := map[string]bool{}
	if len(ids) == 0 {
		return miss, nil
	}
	out, err := r.git(ctx, []byte(strings.Join(ids, "\n")+"\n"), "cat-file", "--batch-check")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if id, ok := strings.CutSuffix(line, " missing"); ok {
			miss[id] = true
		}
	}
	return miss, nil
}

// branchLocks serialises writers of one branch of one repository within
// this process; key: dir + "\x00" + branch.
var branchLocks sync.Map

func (r *Repo) lock(branch string) func() {
	if r.noMutex {
		return func() {}
	}
	v, _ := branchLocks.LoadOrStore(r.dir+"\x00"+branch, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// WriteBranch makes the tree of branch exactly files (slash-separated
// paths, nested directories allowed; every file gets mode 100644) and
// commits it on top of the current head with message, author and
// committer date when. If the head's tree already equals the new tree it
// makes no commit and returns (head, false): re-running with the same
// content never duplicates a commit. The head moves with a
// compare-and-swap, retried when another writer moved it first.
func (r *Repo) WriteBranch(ctx context.Context, branch string, files map[string][]byte, message string, when time.Time) (commit string, changed bool, err error) {
	if err := ValidBranch(branch); err != nil {
		return "", false, err
	}
	if when.IsZero() {
		return "", false, errors.New("archive: zero commit time")
	}
	if message == "" {
		message = "Update " + branch
	}
	if !strings.HasSuffix(message, "\n") {
		message += "\n"
	}
	root, err := buildTree(files)
	if err != nil {
		return "", false, err
	}
	h := newHasher(r.format)
	objs := h.hashTree(root)
	tree := root.id

	defer r.lock(branch)()

	written := false
	var lastErr error
	for attempt := 0; attempt < r.attempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return "", false, err
			}
		}
		head, headTree, ok, err := r.headTree(ctx, branch)
		if err != nil {
			return "", false, err
		}
		if ok && headTree == tree {
			return head, false, nil
		}
		if !written {
			if err := r.writeObjects(ctx, objs); err != nil {
				return "", false, err
			}
			written = true
			if r.beforeCommit != nil {
				r.beforeCommit()
			}
		}
		commit, err := r.commitTree(ctx, tree, head, message, when)
		if err != nil {
			return "", false, err
		}
		old := head
		if !ok {
			old = strings.Repeat("0", h.size*2) // the ref must not exist yet
		}
		if _, err := r.git(ctx, nil, "update-ref", "refs/heads/"+branch, commit, old); err != nil {
			lastErr = err // lost the race (or the ref is locked): retry
			continue
		}
		return commit, true, nil
	}
	return "", false, fmt.Errorf("archive: updating %s: gave up after %d attempts: %w", branch, r.attempts, lastErr)
}

func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(attempt) * 5 * time.Millisecond
	d += time.Duration(rand.Int64N(int64(10 * time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Repo) commitTree(ctx context.Context, tree, parent, message string, when time.Time) (string, error) {
	args := []string{"commit-tree", "--no-gpg-sign", tree}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	args = append(args, "-F", "-")
	date := fmt.Sprintf("%d +0000", when.Unix())
	out, err := r.run(ctx, []byte(message), []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date},
		append([]string{"--git-dir=" + r.dir}, args...)...)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// writeObjects stores the blobs and trees of objs that the repository
// lacks, checking that git computes the same ids.
func (r *Repo) writeObjects(ctx context.Context, objs []object) error {
	ids := make([]string, len(objs))
	for i, o := range objs {
		ids[i] = o.id
	}
	miss, err := r.missing(ctx, ids)
	if err != nil {
		return err
	}
	var blobs []object
	for _, o := range objs {
		if o.kind == "blob" && miss[o.id] {
			blobs = append(blobs, o)
		}
	}
	if err := r.writeBlobs(ctx, blobs); err != nil {
		return err
	}
	// One mktree --batch writes every missing tree; trees come children
	// first, and an empty record ends each tree.
	var in bytes.Buffer
	var trees []string
	for _, o := range objs {
		if o.kind == "tree" && miss[o.id] {
			in.Write(o.mktree)
			in.WriteByte(0)
			trees = append(trees, o.id)
		}
	}
	if len(trees) == 0 {
		return nil
	}
	out, err := r.git(ctx, in.Bytes(), "mktree", "-z", "--batch")
	if err != nil {
		return err
	}
	got := strings.Fields(string(out))
	if len(got) != len(trees) {
		return fmt.Errorf("archive: mktree returned %d ids for %d trees", len(got), len(trees))
	}
	for i, id := range trees {
		if err := checkID(got[i], id); err != nil {
			return err
		}
	}
	return nil
}

// writeBlobs stores blobs with one git hash-object -w --stdin-paths.
func (r *Repo) writeBlobs(ctx context.Context, blobs []object) error {
	if len(blobs) == 0 {
		return nil
	}
	if len(blobs) == 1 {
		out, err := r.git(ctx, blobs[0].data, "hash-object", "-w", "-t", "blob", "--no-filters", "--stdin")
		if err != nil {
			return err
		}
		return checkID(string(out), blobs[0].id)
	}
	tmp, err := os.MkdirTemp("", "hyperspace-archive-")
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer os.RemoveAll(tmp)
	var paths strings.Builder
	for i, b := range blobs {
		p := filepath.Join(tmp, strconv.Itoa(i))
		if err := os.WriteFile(p, b.data, 0o600); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		paths.WriteString(p + "\n")
	}
	out, err := r.git(ctx, []byte(paths.String()), "hash-object", "-w", "-t", "blob", "--no-filters", "--stdin-paths")
	if err != nil {
		return err
	}
	got := strings.Fields(string(out))
	if len(got) != len(blobs) {
		return fmt.Errorf("archive: hash-object returned %d ids for %d blobs", len(got), len(blobs))
	}
	for i, b := range blobs {
		if err := checkID(got[i], b.id); err != nil {
			return err
		}
	}
	return nil
}

func checkID(got, want string) error {
	if got = strings.TrimSpace(got); got != want {
		return fmt.Errorf("archive: git stored object %s, expected %s", got, want)
	}
	return nil
}

// DefaultRefspecs are what Push pushes when given none: every agent branch
// and the snapshots branch (each only when it exists).
var DefaultRefspecs = []string{
	"refs/heads/agents/*:refs/heads/agents/*",
	"refs/heads/" + SnapshotBranch + ":refs/heads/" + SnapshotBranch,
}

// Push runs git push remote refspecs... (DefaultRefspecs when none are
// given). remote is a URL or a repository path. Pushes are fast-forward
// only: a remote whose history diverged is an error. Errors include git's
// stderr, with credentials in URLs redacted.
func (r *Repo) Push(ctx context.Context, remote string, refspecs ...string) error {
	if remote == "" || strings.HasPrefix(remote, "-") {
		return fmt.Errorf("archive: invalid remote %q", redact(remote))
	}
	if len(refspecs) == 0 {
		agents, err := r.Branches(ctx, AgentPrefix)
		if err != nil {
			return err
		}
		if len(agents) > 0 {
			refspecs = append(refspecs, DefaultRefspecs[0])
		}
		if _, ok, err := r.head(ctx, SnapshotBranch); err != nil {
			return err
		} else if ok {
			refspecs = append(refspecs, DefaultRefspecs[1])
		}
		if len(refspecs) == 0 {
			return nil // nothing to publish yet
		}
	}
	for _, s := range refspecs {
		if s == "" || strings.HasPrefix(s, "-") {
			return fmt.Errorf("archive: invalid refspec %q", s)
		}
	}
	args := append([]string{"push", "--quiet", "--", remote}, refspecs...)
	_, err := r.git(ctx, nil, args...)
	return err
}
