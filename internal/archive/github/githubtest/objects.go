package githubtest

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Git object ids are computed exactly as git computes them (SHA-1 over
// "<type> <size>\x00<payload>"), so a blob, tree or commit with the same
// content gets the same id here as in a real repository on GitHub.

const (
	modeFile    = "100644"
	modeExec    = "100755"
	modeSymlink = "120000"
	modeTree    = "040000"
	modeCommit  = "160000"

	// EmptyTreeSHA is git's id for the tree with no entries.
	EmptyTreeSHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
)

// treeEntry is one entry of a stored tree, as in `git ls-tree`.
type treeEntry struct {
	name string
	mode string // API spelling: 100644, 100755, 120000, 040000, 160000
	typ  string // blob, tree, commit
	sha  string
}

// signature is a commit's author or committer line.
type signature struct {
	name  string
	email string
	when  time.Time
}

// commitObj is a stored commit.
type commitObj struct {
	tree      string
	parents   []string
	author    signature
	committer signature
	message   string
}

// hashObject returns git's object id for a payload of the given type.
func hashObject(typ string, payload []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", typ, len(payload))
	h.Write(payload)
	return hex.EncodeToString(h.Sum(nil))
}

// BlobSHA returns the git object id of a blob with this content, the same
// value `git hash-object` prints.
func BlobSHA(content []byte) string { return hashObject("blob", content) }

// gitLess orders tree entries as git does: byte-wise on the name, where a
// subtree's name compares as if it ended in "/".
func gitLess(a, b treeEntry) bool {
	an, bn := a.name, b.name
	if a.typ == "tree" {
		an += "/"
	}
	if b.typ == "tree" {
		bn += "/"
	}
	return an < bn
}

// sortEntries sorts entries into git's canonical tree order.
func sortEntries(entries []treeEntry) {
	sort.Slice(entries, func(i, j int) bool { return gitLess(entries[i], entries[j]) })
}

// encodeTree renders sorted entries in git's binary tree format.
func encodeTree(entries []treeEntry) ([]byte, error) {
	var buf bytes.Buffer
	for _, e := range entries {
		raw, err := hex.DecodeString(e.sha)
		if err != nil || len(raw) != sha1.Size {
			return nil, fmt.Errorf("bad object id %q", e.sha)
		}
		// Git writes tree modes without the leading zero ("40000").
		buf.WriteString(strings.TrimLeft(e.mode, "0"))
		buf.WriteByte(' ')
		buf.WriteString(e.name)
		buf.WriteByte(0)
		buf.Write(raw)
	}
	return buf.Bytes(), nil
}

// formatSignature renders "Name <email> <unix seconds> <+hhmm>".
func formatSignature(s signature) string {
	_, off := s.when.Zone()
	sign := '+'
	if off < 0 {
		sign = '-'
		off = -off
	}
	return fmt.Sprintf("%s <%s> %d %c%02d%02d", s.name, s.email, s.when.Unix(), sign, off/3600, (off%3600)/60)
}

// encodeCommit renders a commit in git's text format.
func encodeCommit(c *commitObj) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "tree %s\n", c.tree)
	for _, p := range c.parents {
		fmt.Fprintf(&buf, "parent %s\n", p)
	}
	fmt.Fprintf(&buf, "author %s\n", formatSignature(c.author))
	fmt.Fprintf(&buf, "committer %s\n", formatSignature(c.committer))
	buf.WriteByte('\n')
	buf.WriteString(c.message)
	return buf.Bytes()
}

// validPath reports whether p is a path GitHub accepts in a tree entry.
func validPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.EqualFold(seg, ".git") || strings.ContainsRune(seg, 0) {
			return false
		}
	}
	return true
}

// validRefName applies the parts of `git check-ref-format` that matter here.
func validRefName(ref string) bool {
	if !strings.HasPrefix(ref, "refs/") || strings.Count(ref, "/") < 2 {
		return false
	}
	if strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") || strings.HasSuffix(ref, ".lock") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.Contains(ref, "@{") {
		return false
	}
	for _, r := range ref {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	for _, seg := range strings.Split(ref, "/") {
		if strings.HasPrefix(seg, ".") {
			return false
		}
	}
	return true
}
