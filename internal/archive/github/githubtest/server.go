// Package githubtest provides a fake GitHub REST API server for tests.
//
// The server is a stand-in for api.github.com because GitHub cannot be
// reached from the test machines; request and response shapes follow
// GitHub's REST docs (https://docs.github.com/rest) for the subset the
// archive publisher uses:
//
//   - Git database API: refs (get, matching, create, update, delete), blobs,
//     trees (including base_tree, nested paths, deletions and ?recursive=1)
//     and commits;
//   - pull requests: list (state, head, base, per_page, page), get, create;
//   - repository contents: create or update a file (PUT), the only way to
//     put the first commit into an empty repository.
//
// It hosts a single repository, owner/repo, which starts empty just like a
// repository created without auto_init: until its first commit, the Git
// database endpoints answer 409 "Git Repository is empty." as GitHub does.
// Object ids are real git SHA-1 ids (blob, tree and commit formats as git
// writes them), so identical content yields identical ids, as on GitHub.
//
// Authentication mirrors GitHub: when the server is given a token, every
// request must carry "Authorization: Bearer <token>" (or "token <token>"),
// otherwise it is answered 401 {"message":"Bad credentials"}. Requests for any
// other owner/repo get 404 "Not Found".
//
// Known differences from GitHub: no permissions model beyond the single
// token, no rate limiting (static X-RateLimit headers are sent), no signed
// commits, html_url values point at the fake server rather than github.com,
// and some 422 messages are paraphrased.
package githubtest

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

// PR is a pull request held by the fake server.
type PR struct {
	Number  int
	Title   string
	Body    string
	Head    string // head branch name
	Base    string // base branch name
	HeadSHA string // head branch commit when the PR was opened
	BaseSHA string // base branch commit when the PR was opened
	State   string // "open" or "closed"
	HTMLURL string
}

// Server is a fake GitHub API hosting one repository.
type Server struct {
	owner, repo, token string

	ts *httptest.Server

	mu            sync.Mutex
	blobs         map[string][]byte
	trees         map[string][]treeEntry
	commits       map[string]*commitObj
	refs          map[string]string // full ref name -> commit sha
	defaultBranch string
	pulls         []*PR
	pullCreated   map[int]time.Time
	requests      []string
	hook          func(method, path string)
}

// New starts a fake GitHub API on 127.0.0.1 hosting the empty repository
// owner/repo. If token is not empty, requests must authenticate with it.
// Call Close when done.
func New(owner, repo, token string) *Server {
	s := &Server{
		owner:       owner,
		repo:        repo,
		token:       token,
		blobs:       map[string][]byte{},
		trees:       map[string][]treeEntry{EmptyTreeSHA: nil},
		commits:     map[string]*commitObj{},
		refs:        map[string]string{},
		pullCreated: map[int]time.Time{},
	}
	s.ts = httptest.NewServer(s.routes())
	return s
}

// URL returns the API base URL, ending in "/", for use as a client's base URL.
func (s *Server) URL() string { return s.ts.URL + "/" }

// Close shuts the server down.
func (s *Server) Close() { s.ts.Close() }

// OnRequest installs fn to be called at the start of every request, before
// authentication and routing, outside the server's lock: fn may call the
// server's helpers (for example Push, to move a branch between two requests
// of a client). Pass nil to remove it.
func (s *Server) OnRequest(fn func(method, path string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// Branch returns the commit a branch points at.
func (s *Server) Branch(name string) (sha string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sha, ok = s.refs["refs/heads/"+name]
	return sha, ok
}

// Files returns path -> content of every file in the tree of the branch's
// head commit, or nil if the branch does not exist.
func (s *Server) Files(branch string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	head, ok := s.refs["refs/heads/"+branch]
	if !ok {
		return nil
	}
	flat := map[string]treeEntry{}
	s.flatten(s.commits[head].tree, "", flat)
	out := make(map[string]string, len(flat))
	for p, e := range flat {
		if e.typ == "blob" {
			out[p] = string(s.blobs[e.sha])
		}
	}
	return out
}

// Commits returns the length of the branch's first-parent history (0 if the
// branch does not exist).
func (s *Server) Commits(branch string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sha, ok := s.refs["refs/heads/"+branch]; ok; {
		n++
		c := s.commits[sha]
		if len(c.parents) == 0 {
			break
		}
		sha = c.parents[0]
	}
	return n
}

// Pulls returns copies of all pull requests, oldest first.
func (s *Server) Pulls() []PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PR, len(s.pulls))
	for i, p := range s.pulls {
		out[i] = *p
	}
	return out
}

// ClosePull closes a pull request, as if closed on github.com.
func (s *Server) ClosePull(number int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pulls {
		if p.Number == number {
			p.State = "closed"
			return true
		}
	}
	return false
}

// Requests returns the log of requests served so far, as "METHOD /path".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Push commits exactly files (path -> content) on top of the branch's head,
// or as a root commit if the branch does not exist, and moves the branch to
// it, as a `git push` from another clone would. It returns the new commit.
func (s *Server) Push(branch string, files map[string]string, message string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	flat := map[string]treeEntry{}
	for p, c := range files {
		flat[p] = treeEntry{mode: modeFile, typ: "blob", sha: s.putBlob([]byte(c))}
	}
	c := &commitObj{tree: s.writeFlat(flat), message: message}
	c.author = s.defaultSignature()
	c.committer = c.author
	ref := "refs/heads/" + branch
	if head, ok := s.refs[ref]; ok {
		c.parents = []string{head}
	}
	sha := s.putCommit(c)
	s.setRef(ref, sha)
	return sha
}

// CreateBranch creates branch name at the head of branch from, as GitHub's
// "create branch" button does. It reports false if from does not exist or
// name already does.
func (s *Server) CreateBranch(name, from string) (sha string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sha, ok = s.refs["refs/heads/"+from]
	if _, exists := s.refs["refs/heads/"+name]; !ok || exists {
		return "", false
	}
	s.setRef("refs/heads/"+name, sha)
	return sha, true
}

// --- object store; callers hold s.mu ---

func (s *Server) putBlob(content []byte) string {
	sha := hashObject("blob", content)
	if _, ok := s.blobs[sha]; !ok {
		s.blobs[sha] = append([]byte(nil), content...)
	}
	return sha
}

func (s *Server) putTree(entries []treeEntry) string {
	sortEntries(entries)
	raw, err := encodeTree(entries)
	if err != nil {
		panic("githubtest: " + err.Error()) // ids are validated before they get here
	}
	sha := hashObject("tree", raw)
	s.trees[sha] = entries
	return sha
}

func (s *Server) putCommit(c *commitObj) string {
	sha := hashObject("commit", encodeCommit(c))
	s.commits[sha] = c
	return sha
}

func (s *Server) setRef(ref, sha string) {
	if len(s.refs) == 0 && strings.HasPrefix(ref, "refs/heads/") {
		s.defaultBranch = strings.TrimPrefix(ref, "refs/heads/")
	}
	s.refs[ref] = sha
}

func (s *Server) empty() bool { return len(s.refs) == 0 }

func (s *Server) defaultSignature() signature {
	return signature{name: s.owner, email: s.owner + "@users.noreply.github.com", when: time.Now().Truncate(time.Second)}
}

// flatten adds every non-tree entry under tree sha to out, keyed by full path.
func (s *Server) flatten(sha, prefix string, out map[string]treeEntry) {
	for _, e := range s.trees[sha] {
		p := prefix + e.name
		if e.typ == "tree" {
			s.flatten(e.sha, p+"/", out)
			continue
		}
		e.name = p
		out[p] = e
	}
}

// writeFlat stores the trees for a flat path -> entry map and returns the
// root tree id.
func (s *Server) writeFlat(flat map[string]treeEntry) string {
	var entries []treeEntry
	sub := map[string]map[string]treeEntry{}
	for p, e := range flat {
		if dir, rest, ok := strings.Cut(p, "/"); ok {
			if sub[dir] == nil {
				sub[dir] = map[string]treeEntry{}
			}
			sub[dir][rest] = e
			continue
		}
		e.name = p
		entries = append(entries, e)
	}
	for dir, m := range sub {
		entries = append(entries, treeEntry{name: dir, mode: modeTree, typ: "tree", sha: s.writeFlat(m)})
	}
	return s.putTree(entries)
}

// setPath puts e at path p in flat, replacing whatever is in its way.
func setPath(flat map[string]treeEntry, p string, e treeEntry) {
	clearPath(flat, p)
	e.name = p
	flat[p] = e
}

// clearPath removes p, everything below it, and any file standing where one
// of p's parent directories has to be.
func clearPath(flat map[string]treeEntry, p string) {
	removePath(flat, p)
	for dir := p; ; {
		i := strings.LastIndexByte(dir, '/')
		if i < 0 {
			return
		}
		dir = dir[:i]
		delete(flat, dir)
	}
}

// removePath deletes p and everything below it.
func removePath(flat map[string]treeEntry, p string) {
	delete(flat, p)
	for q := range flat {
		if strings.HasPrefix(q, p+"/") {
			delete(flat, q)
		}
	}
}

// isAncestor reports whether commit anc is desc or one of its ancestors.
func (s *Server) isAncestor(anc, desc string) bool {
	seen := map[string]bool{}
	queue := []string{desc}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == anc {
			return true
		}
		if seen[c] {
			continue
		}
		seen[c] = true
		if obj, ok := s.commits[c]; ok {
			queue = append(queue, obj.parents...)
		}
	}
	return false
}

// ancestors returns the set of commits reachable from c, c included.
func (s *Server) ancestors(c string) map[string]bool {
	seen := map[string]bool{}
	queue := []string{c}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if seen[c] {
			continue
		}
		seen[c] = true
		if obj, ok := s.commits[c]; ok {
			queue = append(queue, obj.parents...)
		}
	}
	return seen
}

// resolveTree maps a tree id, commit id or branch name to a tree id.
func (s *Server) resolveTree(name string) (string, bool) {
	if _, ok := s.trees[name]; ok {
		return name, true
	}
	if c, ok := s.commits[name]; ok {
		return c.tree, true
	}
	for _, ref := range []string{"refs/heads/" + name, "refs/tags/" + name, "refs/" + name} {
		if sha, ok := s.refs[ref]; ok {
			return s.commits[sha].tree, true
		}
	}
	return "", false
}

// sortedPulls returns pulls newest first.
func (s *Server) sortedPulls() []*PR {
	out := append([]*PR(nil), s.pulls...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Number > out[j].Number })
	return out
}

// checkAuth reports whether r carries the server's token.
func (s *Server) checkAuth(r *http.Request) bool {
	if s.token == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok {
		return false
	}
	switch strings.ToLower(scheme) {
	case "bearer", "token":
		return strings.TrimSpace(cred) == s.token
	}
	return false
}
