package githubtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

const docsURL = "https://docs.github.com/rest"

// apiError is GitHub's error body.
type apiError struct {
	Message          string       `json:"message"`
	Errors           []fieldError `json:"errors,omitempty"`
	DocumentationURL string       `json:"documentation_url"`
	Status           string       `json:"status"`
}

// fieldError is one entry of a 422 "Validation Failed" body.
type fieldError struct {
	Resource string `json:"resource"`
	Field    string `json:"field,omitempty"`
	Code     string `json:"code"`
	Message  string `json:"message,omitempty"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	const r = "/repos/{owner}/{repo}"
	git := func(h http.HandlerFunc) http.HandlerFunc { return s.repoHandler(true, h) }
	plain := func(h http.HandlerFunc) http.HandlerFunc { return s.repoHandler(false, h) }

	mux.HandleFunc("GET "+r+"/git/ref/{ref...}", git(s.getRef))
	mux.HandleFunc("GET "+r+"/git/matching-refs/{ref...}", git(s.matchingRefs))
	mux.HandleFunc("POST "+r+"/git/refs", git(s.createRef))
	mux.HandleFunc("PATCH "+r+"/git/refs/{ref...}", git(s.updateRef))
	mux.HandleFunc("DELETE "+r+"/git/refs/{ref...}", git(s.deleteRef))
	mux.HandleFunc("POST "+r+"/git/blobs", git(s.createBlob))
	mux.HandleFunc("GET "+r+"/git/blobs/{sha}", git(s.getBlob))
	mux.HandleFunc("POST "+r+"/git/trees", git(s.createTree))
	mux.HandleFunc("GET "+r+"/git/trees/{sha}", git(s.getTree))
	mux.HandleFunc("POST "+r+"/git/commits", git(s.createCommit))
	mux.HandleFunc("GET "+r+"/git/commits/{sha}", git(s.getCommit))
	mux.HandleFunc("GET "+r+"/pulls", plain(s.listPulls))
	mux.HandleFunc("POST "+r+"/pulls", plain(s.createPull))
	mux.HandleFunc("GET "+r+"/pulls/{number}", plain(s.getPull))
	mux.HandleFunc("PUT "+r+"/contents/{path...}", plain(s.putContents))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { writeError(w, http.StatusNotFound, "Not Found") })

	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, req.Method+" "+req.URL.Path)
		hook := s.hook
		s.mu.Unlock()
		if hook != nil {
			hook(req.Method, req.URL.Path)
		}
		h := w.Header()
		h.Set("X-GitHub-Media-Type", "github.v3; format=json")
		h.Set("X-GitHub-Api-Version-Selected", "2022-11-28")
		h.Set("X-RateLimit-Limit", "5000")
		h.Set("X-RateLimit-Remaining", "4999")
		h.Set("X-RateLimit-Used", "1")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
		h.Set("X-RateLimit-Resource", "core")
		if !s.checkAuth(req) {
			writeError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		mux.ServeHTTP(w, req)
	})
}

// repoHandler checks the repository name, takes the lock and, for Git
// database routes, refuses to work on an empty repository as GitHub does.
func (s *Server) repoHandler(gitData bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.PathValue("owner"), s.owner) || !strings.EqualFold(r.PathValue("repo"), s.repo) {
			writeError(w, http.StatusNotFound, "Not Found")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if gitData && s.empty() {
			writeError(w, http.StatusConflict, "Git Repository is empty.")
			return
		}
		h(w, r)
	}
}

// --- responses ---

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Message: msg, DocumentationURL: docsURL, Status: strconv.Itoa(status)})
}

func writeValidation(w http.ResponseWriter, errs ...fieldError) {
	writeJSON(w, http.StatusUnprocessableEntity, apiError{
		Message: "Validation Failed", Errors: errs, DocumentationURL: docsURL, Status: "422",
	})
}

// notSupplied is GitHub's message for a missing required body parameter.
func notSupplied(w http.ResponseWriter, param string) {
	writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("Invalid request.\n\n%q wasn't supplied.", param))
}

// decode parses a JSON request body, answering 400 as GitHub does if it is
// not valid JSON.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return false
	}
	return true
}

func (s *Server) api(p string) string {
	return s.ts.URL + "/repos/" + s.owner + "/" + s.repo + "/" + p
}

func (s *Server) html(p string) string {
	return s.ts.URL + "/" + s.owner + "/" + s.repo + "/" + p
}

func nodeID(kind, id string) string {
	return kind + "_" + base64.RawURLEncoding.EncodeToString([]byte(id))
}

func (s *Server) refJSON(ref, sha string) map[string]any {
	return map[string]any{
		"ref":     ref,
		"node_id": nodeID("REF", ref),
		"url":     s.api("git/" + ref),
		"object": map[string]any{
			"sha":  sha,
			"type": "commit",
			"url":  s.api("git/commits/" + sha),
		},
	}
}

func sigJSON(sig signature) map[string]any {
	return map[string]any{"name": sig.name, "email": sig.email, "date": sig.when.Format(time.RFC3339)}
}

func (s *Server) commitJSON(sha string, c *commitObj) map[string]any {
	parents := make([]map[string]any, 0, len(c.parents))
	for _, p := range c.parents {
		parents = append(parents, map[string]any{
			"sha": p, "url": s.api("git/commits/" + p), "html_url": s.html("commit/" + p),
		})
	}
	return map[string]any{
		"sha":       sha,
		"node_id":   nodeID("C", sha),
		"url":       s.api("git/commits/" + sha),
		"html_url":  s.html("commit/" + sha),
		"author":    sigJSON(c.author),
		"committer": sigJSON(c.committer),
		"tree":      map[string]any{"sha": c.tree, "url": s.api("git/trees/" + c.tree)},
		"message":   c.message,
		"parents":   parents,
		"verification": map[string]any{
			"verified": false, "reason": "unsigned", "signature": nil, "payload": nil, "verified_at": nil,
		},
	}
}

func (s *Server) entryJSON(p string, e treeEntry) map[string]any {
	m := map[string]any{"path": p, "mode": e.mode, "type": e.typ, "sha": e.sha}
	switch e.typ {
	case "blob":
		m["size"] = len(s.blobs[e.sha])
		m["url"] = s.api("git/blobs/" + e.sha)
	case "tree":
		m["url"] = s.api("git/trees/" + e.sha)
	}
	return m
}

func (s *Server) treeJSON(sha string, recursive bool) map[string]any {
	entries := []map[string]any{}
	var walk func(sha, prefix string)
	walk = func(sha, prefix string) {
		for _, e := range s.trees[sha] {
			entries = append(entries, s.entryJSON(prefix+e.name, e))
			if recursive && e.typ == "tree" {
				walk(e.sha, prefix+e.name+"/")
			}
		}
	}
	walk(sha, "")
	return map[string]any{"sha": sha, "url": s.api("git/trees/" + sha), "tree": entries, "truncated": false}
}

// --- refs ---

func (s *Server) getRef(w http.ResponseWriter, r *http.Request) {
	ref := "refs/" + r.PathValue("ref")
	sha, ok := s.refs[ref]
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.refJSON(ref, sha))
}

func (s *Server) matchingRefs(w http.ResponseWriter, r *http.Request) {
	prefix := "refs/" + r.PathValue("ref")
	var names []string
	for ref := range s.refs {
		if strings.HasPrefix(ref, prefix) {
			names = append(names, ref)
		}
	}
	slices.Sort(names)
	out := []map[string]any{}
	for _, ref := range names {
		out = append(out, s.refJSON(ref, s.refs[ref]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createRef(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Ref *string `json:"ref"`
		SHA *string `json:"sha"`
	}
	if !decode(w, r, &in) {
		return
	}
	switch {
	case in.Ref == nil:
		notSupplied(w, "ref")
		return
	case in.SHA == nil:
		notSupplied(w, "sha")
		return
	case !validRefName(*in.Ref):
		writeError(w, http.StatusUnprocessableEntity, "Reference name is invalid: refs must start with 'refs/' and contain at least two slashes")
		return
	}
	if _, exists := s.refs[*in.Ref]; exists {
		writeError(w, http.StatusUnprocessableEntity, "Reference already exists")
		return
	}
	if _, ok := s.commits[*in.SHA]; !ok {
		writeError(w, http.StatusUnprocessableEntity, "Object does not exist")
		return
	}
	s.setRef(*in.Ref, *in.SHA)
	w.Header().Set("Location", s.api("git/"+*in.Ref))
	writeJSON(w, http.StatusCreated, s.refJSON(*in.Ref, *in.SHA))
}

func (s *Server) updateRef(w http.ResponseWriter, r *http.Request) {
	ref := "refs/" + r.PathValue("ref")
	var in struct {
		SHA   *string `json:"sha"`
		Force bool    `json:"force"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.SHA == nil {
		notSupplied(w, "sha")
		return
	}
	old, ok := s.refs[ref]
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "Reference does not exist")
		return
	}
	if _, ok := s.commits[*in.SHA]; !ok {
		writeError(w, http.StatusUnprocessableEntity, "Object does not exist")
		return
	}
	if !in.Force && !s.isAncestor(old, *in.SHA) {
		writeError(w, http.StatusUnprocessableEntity, "Update is not a fast forward")
		return
	}
	s.refs[ref] = *in.SHA
	writeJSON(w, http.StatusOK, s.refJSON(ref, *in.SHA))
}

func (s *Server) deleteRef(w http.ResponseWriter, r *http.Request) {
	ref := "refs/" + r.PathValue("ref")
	if _, ok := s.refs[ref]; !ok {
		writeError(w, http.StatusUnprocessableEntity, "Reference does not exist")
		return
	}
	delete(s.refs, ref)
	w.WriteHeader(http.StatusNoContent)
}

// --- blobs ---

func (s *Server) createBlob(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Content  *string `json:"content"`
		Encoding string  `json:"encoding"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Content == nil {
		notSupplied(w, "content")
		return
	}
	var content []byte
	switch strings.ToLower(in.Encoding) {
	case "", "utf-8", "utf8":
		content = []byte(*in.Content)
	case "base64":
		b, err := decodeBase64(*in.Content)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "content is not valid Base64")
			return
		}
		content = b
	default:
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("encoding %q is not supported; use \"utf-8\" or \"base64\"", in.Encoding))
		return
	}
	sha := s.putBlob(content)
	w.Header().Set("Location", s.api("git/blobs/"+sha))
	writeJSON(w, http.StatusCreated, map[string]any{"sha": sha, "url": s.api("git/blobs/" + sha)})
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	b, ok := s.blobs[sha]
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sha": sha, "node_id": nodeID("B", sha), "size": len(b), "url": s.api("git/blobs/" + sha),
		"content": base64.StdEncoding.EncodeToString(b), "encoding": "base64",
	})
}

// --- trees ---

var validModes = map[string]string{
	modeFile: "blob", modeExec: "blob", modeSymlink: "blob", modeTree: "tree", modeCommit: "commit",
}

func (s *Server) createTree(w http.ResponseWriter, r *http.Request) {
	var in struct {
		BaseTree *string           `json:"base_tree"`
		Tree     []json.RawMessage `json:"tree"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Tree == nil {
		notSupplied(w, "tree")
		return
	}
	flat := map[string]treeEntry{}
	if in.BaseTree != nil && *in.BaseTree != "" {
		if _, ok := s.trees[*in.BaseTree]; !ok {
			writeError(w, http.StatusUnprocessableEntity, "base_tree is not a valid tree oid")
			return
		}
		s.flatten(*in.BaseTree, "", flat)
	}
	for _, raw := range in.Tree {
		var fields map[string]json.RawMessage
		var e struct {
			Path    string  `json:"path"`
			Mode    string  `json:"mode"`
			Type    string  `json:"type"`
			SHA     *string `json:"sha"`
			Content *string `json:"content"`
		}
		if json.Unmarshal(raw, &fields) != nil || json.Unmarshal(raw, &e) != nil {
			writeError(w, http.StatusBadRequest, "Problems parsing JSON")
			return
		}
		_, hasSHA := fields["sha"]
		if !validPath(e.Path) {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("tree.path %q contains a malformed path component", e.Path))
			return
		}
		if e.SHA != nil && e.Content != nil {
			writeError(w, http.StatusUnprocessableEntity, "Must supply either tree.sha or tree.content, not both")
			return
		}
		if hasSHA && e.SHA == nil && e.Content == nil { // "sha": null deletes the path
			removePath(flat, e.Path)
			continue
		}
		if e.SHA == nil && e.Content == nil {
			writeError(w, http.StatusUnprocessableEntity, "Must supply either tree.sha or tree.content")
			return
		}
		typ, ok := validModes[e.Mode]
		if !ok {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("tree.mode %q is not a valid mode", e.Mode))
			return
		}
		if e.Type != "" && e.Type != typ {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("tree.type %q does not match mode %s", e.Type, e.Mode))
			return
		}
		if e.Content != nil {
			if typ != "blob" {
				writeError(w, http.StatusUnprocessableEntity, "tree.content can only be used for blobs")
				return
			}
			setPath(flat, e.Path, treeEntry{mode: e.Mode, typ: typ, sha: s.putBlob([]byte(*e.Content))})
			continue
		}
		sha := *e.SHA
		switch typ {
		case "blob":
			if _, ok := s.blobs[sha]; !ok {
				writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("tree.sha %s is not a valid blob", sha))
				return
			}
			setPath(flat, e.Path, treeEntry{mode: e.Mode, typ: typ, sha: sha})
		case "tree":
			if _, ok := s.trees[sha]; !ok {
				writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("tree.sha %s is not a valid tree", sha))
				return
			}
			clearPath(flat, e.Path)
			s.flatten(sha, e.Path+"/", flat)
		case "commit": // submodule: git does not require the commit to be present
			if len(sha) != 40 {
				writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("tree.sha %s is not a valid commit", sha))
				return
			}
			setPath(flat, e.Path, treeEntry{mode: e.Mode, typ: typ, sha: sha})
		}
	}
	sha := s.writeFlat(flat)
	w.Header().Set("Location", s.api("git/trees/"+sha))
	writeJSON(w, http.StatusCreated, s.treeJSON(sha, false))
}

func (s *Server) getTree(w http.ResponseWriter, r *http.Request) {
	sha, ok := s.resolveTree(r.PathValue("sha"))
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	_, recursive := r.URL.Query()["recursive"] // GitHub: any value enables it
	writeJSON(w, http.StatusOK, s.treeJSON(sha, recursive))
}

// --- commits ---

type sigIn struct {
	Name  *string `json:"name"`
	Email *string `json:"email"`
	Date  *string `json:"date"`
}

// setSignatures fills c's author and committer as GitHub does: the
// defaults when absent, the committer defaulting to the author. It returns
// a validation message ("" when valid).
func (s *Server) setSignatures(c *commitObj, author, committer *sigIn) string {
	c.author = s.defaultSignature()
	if author != nil {
		sig, msg := s.parseSig(author, "author")
		if msg != "" {
			return msg
		}
		c.author = sig
	}
	c.committer = c.author
	if committer != nil {
		sig, msg := s.parseSig(committer, "committer")
		if msg != "" {
			return msg
		}
		c.committer = sig
	}
	return ""
}

func (s *Server) parseSig(in *sigIn, field string) (signature, string) {
	if in.Name == nil || in.Email == nil {
		return signature{}, fmt.Sprintf("Invalid request.\n\n%s.name and %s.email are required.", field, field)
	}
	sig := signature{name: *in.Name, email: *in.Email, when: time.Now().Truncate(time.Second)}
	if in.Date != nil {
		t, err := time.Parse(time.RFC3339, *in.Date)
		if err != nil {
			return signature{}, fmt.Sprintf("Invalid request.\n\n%s.date %q is not a valid ISO 8601 timestamp.", field, *in.Date)
		}
		sig.when = t.Truncate(time.Second)
	}
	return sig, ""
}

func (s *Server) createCommit(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Message   *string  `json:"message"`
		Tree      *string  `json:"tree"`
		Parents   []string `json:"parents"`
		Author    *sigIn   `json:"author"`
		Committer *sigIn   `json:"committer"`
	}
	if !decode(w, r, &in) {
		return
	}
	switch {
	case in.Message == nil:
		notSupplied(w, "message")
		return
	case in.Tree == nil:
		notSupplied(w, "tree")
		return
	}
	if _, ok := s.trees[*in.Tree]; !ok {
		writeError(w, http.StatusUnprocessableEntity, "Tree SHA does not exist")
		return
	}
	for _, p := range in.Parents {
		if _, ok := s.commits[p]; !ok {
			writeError(w, http.StatusUnprocessableEntity, "Parent SHA does not exist or is not a commit object")
			return
		}
	}
	c := &commitObj{tree: *in.Tree, parents: append([]string(nil), in.Parents...), message: *in.Message}
	if msg := s.setSignatures(c, in.Author, in.Committer); msg != "" {
		writeError(w, http.StatusUnprocessableEntity, msg)
		return
	}
	sha := s.putCommit(c)
	w.Header().Set("Location", s.api("git/commits/"+sha))
	writeJSON(w, http.StatusCreated, s.commitJSON(sha, c))
}

func (s *Server) getCommit(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	c, ok := s.commits[sha]
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.commitJSON(sha, c))
}

// --- pull requests ---

func (s *Server) pullJSON(p *PR) map[string]any {
	headSHA, baseSHA := p.HeadSHA, p.BaseSHA
	if sha, ok := s.refs["refs/heads/"+p.Head]; ok {
		headSHA = sha
	}
	if sha, ok := s.refs["refs/heads/"+p.Base]; ok {
		baseSHA = sha
	}
	user := map[string]any{"login": s.owner, "type": "User"}
	repo := map[string]any{"name": s.repo, "full_name": s.owner + "/" + s.repo, "owner": user}
	created := s.pullCreated[p.Number].UTC().Format(time.RFC3339)
	n := strconv.Itoa(p.Number)
	return map[string]any{
		"url":        s.api("pulls/" + n),
		"id":         p.Number,
		"node_id":    nodeID("PR", n),
		"html_url":   p.HTMLURL,
		"number":     p.Number,
		"state":      p.State,
		"locked":     false,
		"title":      p.Title,
		"body":       p.Body,
		"user":       user,
		"created_at": created,
		"updated_at": created,
		"draft":      false,
		"merged":     false,
		"head":       map[string]any{"label": s.owner + ":" + p.Head, "ref": p.Head, "sha": headSHA, "user": user, "repo": repo},
		"base":       map[string]any{"label": s.owner + ":" + p.Base, "ref": p.Base, "sha": baseSHA, "user": user, "repo": repo},
	}
}

func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	if state != "open" && state != "closed" && state != "all" {
		writeValidation(w, fieldError{Resource: "PullRequest", Field: "state", Code: "invalid"})
		return
	}
	headOwner, headRef, hasHeadRef := strings.Cut(q.Get("head"), ":")
	base := q.Get("base")
	matched := []*PR{}
	for _, p := range s.sortedPulls() {
		switch {
		case state != "all" && p.State != state:
		case headOwner != "" && !strings.EqualFold(headOwner, s.owner):
		case hasHeadRef && p.Head != headRef:
		case base != "" && p.Base != base:
		default:
			matched = append(matched, p)
		}
	}
	if q.Get("direction") == "asc" {
		for i, j := 0, len(matched)-1; i < j; i, j = i+1, j-1 {
			matched[i], matched[j] = matched[j], matched[i]
		}
	}
	perPage, _ := strconv.Atoi(q.Get("per_page"))
	if perPage <= 0 {
		perPage = 30
	}
	perPage = min(perPage, 100)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	lo := min((page-1)*perPage, len(matched))
	hi := min(lo+perPage, len(matched))
	if hi < len(matched) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("page", strconv.Itoa(page+1))
		next.Set("per_page", strconv.Itoa(perPage))
		w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", s.api("pulls"), next.Encode()))
	}
	out := make([]map[string]any, 0, hi-lo)
	for _, p := range matched[lo:hi] {
		out = append(out, s.pullJSON(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getPull(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("number"))
	if err == nil {
		for _, p := range s.pulls {
			if p.Number == n {
				writeJSON(w, http.StatusOK, s.pullJSON(p))
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, "Not Found")
}

func (s *Server) createPull(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title *string `json:"title"`
		Head  *string `json:"head"`
		Base  *string `json:"base"`
		Body  *string `json:"body"`
	}
	if !decode(w, r, &in) {
		return
	}
	var missing []fieldError
	for _, f := range []struct {
		name string
		v    *string
	}{{"title", in.Title}, {"head", in.Head}, {"base", in.Base}} {
		if f.v == nil || *f.v == "" {
			missing = append(missing, fieldError{Resource: "PullRequest", Field: f.name, Code: "missing_field"})
		}
	}
	if len(missing) > 0 {
		writeValidation(w, missing...)
		return
	}
	head, base := *in.Head, *in.Base
	if owner, ref, ok := strings.Cut(head, ":"); ok {
		if !strings.EqualFold(owner, s.owner) {
			writeValidation(w, fieldError{Resource: "PullRequest", Field: "head", Code: "invalid"})
			return
		}
		head = ref
	}
	headSHA, ok := s.refs["refs/heads/"+head]
	if !ok {
		writeValidation(w, fieldError{Resource: "PullRequest", Field: "head", Code: "invalid"})
		return
	}
	baseSHA, ok := s.refs["refs/heads/"+base]
	if !ok {
		writeValidation(w, fieldError{Resource: "PullRequest", Field: "base", Code: "invalid"})
		return
	}
	for _, p := range s.pulls {
		if p.State == "open" && p.Head == head && p.Base == base {
			writeValidation(w, fieldError{Resource: "PullRequest", Code: "custom",
				Message: fmt.Sprintf("A pull request already exists for %s:%s.", s.owner, head)})
			return
		}
	}
	if s.isAncestor(headSHA, baseSHA) {
		writeValidation(w, fieldError{Resource: "PullRequest", Code: "custom",
			Message: fmt.Sprintf("No commits between %s and %s", base, head)})
		return
	}
	baseHistory := s.ancestors(baseSHA)
	related := false
	for c := range s.ancestors(headSHA) {
		if baseHistory[c] {
			related = true
			break
		}
	}
	if !related {
		writeValidation(w, fieldError{Resource: "PullRequest", Code: "custom",
			Message: fmt.Sprintf("The %s branch has no history in common with %s", base, head)})
		return
	}
	n := len(s.pulls) + 1
	p := &PR{
		Number: n, Title: *in.Title, Head: head, Base: base, HeadSHA: headSHA, BaseSHA: baseSHA,
		State: "open", HTMLURL: s.html("pull/" + strconv.Itoa(n)),
	}
	if in.Body != nil {
		p.Body = *in.Body
	}
	s.pulls = append(s.pulls, p)
	s.pullCreated[n] = time.Now()
	w.Header().Set("Location", s.api("pulls/"+strconv.Itoa(n)))
	writeJSON(w, http.StatusCreated, s.pullJSON(p))
}

// --- contents ---

func (s *Server) putContents(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("path")
	var in struct {
		Message   *string `json:"message"`
		Content   *string `json:"content"`
		SHA       *string `json:"sha"`
		Branch    *string `json:"branch"`
		Author    *sigIn  `json:"author"`
		Committer *sigIn  `json:"committer"`
	}
	if !decode(w, r, &in) {
		return
	}
	switch {
	case in.Message == nil:
		notSupplied(w, "message")
		return
	case in.Content == nil:
		notSupplied(w, "content")
		return
	case !validPath(p):
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("path %q contains a malformed path component", p))
		return
	}
	content, err := decodeBase64(*in.Content)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "content is not valid Base64")
		return
	}
	branch := s.defaultBranch
	if branch == "" {
		branch = "main"
	}
	if in.Branch != nil && *in.Branch != "" {
		branch = *in.Branch
	}
	ref := "refs/heads/" + branch
	if !validRefName(ref) {
		writeError(w, http.StatusUnprocessableEntity, "Invalid branch name")
		return
	}
	flat := map[string]treeEntry{}
	var parents []string
	status := http.StatusCreated
	if !s.empty() {
		head, ok := s.refs[ref]
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("Branch %s not found", branch))
			return
		}
		parents = []string{head}
		s.flatten(s.commits[head].tree, "", flat)
		if old, exists := flat[p]; exists {
			if in.SHA == nil {
				notSupplied(w, "sha")
				return
			}
			if *in.SHA != old.sha {
				writeError(w, http.StatusConflict, fmt.Sprintf("%s does not match %s", p, *in.SHA))
				return
			}
			status = http.StatusOK
		}
	}
	blob := s.putBlob(content)
	setPath(flat, p, treeEntry{mode: modeFile, typ: "blob", sha: blob})
	c := &commitObj{tree: s.writeFlat(flat), parents: parents, message: *in.Message}
	if msg := s.setSignatures(c, in.Author, in.Committer); msg != "" {
		writeError(w, http.StatusUnprocessableEntity, msg)
		return
	}
	sha := s.putCommit(c)
	s.setRef(ref, sha)
	writeJSON(w, status, map[string]any{
		"content": map[string]any{
			"type": "file", "name": path.Base(p), "path": p, "sha": blob, "size": len(content),
			"url":          s.api("contents/" + p + "?ref=" + url.QueryEscape(branch)),
			"html_url":     s.html("blob/" + branch + "/" + p),
			"git_url":      s.api("git/blobs/" + blob),
			"download_url": s.ts.URL + "/raw/" + s.owner + "/" + s.repo + "/" + branch + "/" + p,
		},
		"commit": s.commitJSON(sha, c),
	})
}
