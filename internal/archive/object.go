package archive

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"
	"strings"
)

// Git object ids are computed here as well as by git: the ids let
// WriteBranch compare the new tree with the head's before writing anything
// (so an unchanged export writes no objects), and every object git writes
// is checked against them.

// object is a blob or tree to store.
type object struct {
	kind   string // "blob" or "tree"
	id     string // hex
	data   []byte // blob content
	mktree []byte // tree: the input of git mktree -z
}

// dirNode is one directory of the tree being built.
type dirNode struct {
	files map[string][]byte
	dirs  map[string]*dirNode
	id    string
}

func newDir() *dirNode {
	return &dirNode{files: map[string][]byte{}, dirs: map[string]*dirNode{}}
}

// ValidPath reports whether p can be a file path in an archive tree:
// slash-separated non-empty components, none of them ".", ".." or ".git"
// (in any case), no NUL, no leading or trailing slash.
func ValidPath(p string) error {
	if p == "" {
		return fmt.Errorf("archive: empty file path")
	}
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "":
			return fmt.Errorf("archive: file path %q has an empty component", p)
		case c == "." || c == "..":
			return fmt.Errorf("archive: file path %q has a %q component", p, c)
		case strings.EqualFold(c, ".git"):
			return fmt.Errorf("archive: file path %q has a .git component", p)
		case strings.ContainsRune(c, 0):
			return fmt.Errorf("archive: file path %q contains NUL", p)
		}
	}
	return nil
}

// buildTree arranges files into directories.
func buildTree(files map[string][]byte) (*dirNode, error) {
	root := newDir()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := ValidPath(p); err != nil {
			return nil, err
		}
		parts := strings.Split(p, "/")
		d := root
		for i, c := range parts[:len(parts)-1] {
			if _, clash := d.files[c]; clash {
				return nil, fmt.Errorf("archive: %q is both a file and a directory", strings.Join(parts[:i+1], "/"))
			}
			sub := d.dirs[c]
			if sub == nil {
				sub = newDir()
				d.dirs[c] = sub
			}
			d = sub
		}
		name := parts[len(parts)-1]
		if _, clash := d.dirs[name]; clash {
			return nil, fmt.Errorf("archive: %q is both a file and a directory", p)
		}
		d.files[name] = files[p]
	}
	return root, nil
}

// hasher computes git object ids in one object format.
type hasher struct {
	new  func() hash.Hash
	size int // bytes
}

func newHasher(format string) hasher {
	if format == "sha256" {
		return hasher{sha256.New, sha256.Size}
	}
	return hasher{sha1.New, sha1.Size}
}

func (h hasher) sum(kind string, data []byte) (string, []byte) {
	d := h.new()
	fmt.Fprintf(d, "%s %d\x00", kind, len(data))
	d.Write(data)
	raw := d.Sum(nil)
	return hex.EncodeToString(raw), raw
}

// hashTree sets the ids of root and its subdirectories and returns every
// distinct object, each tree after its children.
func (h hasher) hashTree(root *dirNode) []object {
	var objs []object
	seen := map[string]bool{}
	add := func(o object) {
		if !seen[o.id] {
			seen[o.id] = true
			objs = append(objs, o)
		}
	}
	var walk func(d *dirNode) []byte
	walk = func(d *dirNode) []byte {
		type entry struct {
			name, mode, kind, key string
			hexID                 string
			raw                   []byte
		}
		var es []entry
		for name, data := range d.files {
			id, raw := h.sum("blob", data)
			add(object{kind: "blob", id: id, data: data})
			es = append(es, entry{name: name, mode: "100644", kind: "blob", key: name, hexID: id, raw: raw})
		}
		for name, sub := range d.dirs {
			raw := walk(sub)
			es = append(es, entry{name: name, mode: "40000", kind: "tree", key: name + "/", hexID: sub.id, raw: raw})
		}
		// git orders tree entries by name, directories as if named "name/".
		sort.Slice(es, func(i, j int) bool { return es[i].key < es[j].key })
		var content, mk bytes.Buffer
		for _, e := range es {
			fmt.Fprintf(&content, "%s %s\x00", e.mode, e.name)
			content.Write(e.raw)
			fmt.Fprintf(&mk, "%s %s %s\t%s\x00", e.mode, e.kind, e.hexID, e.name) // mktree reads the mode as octal
		}
		id, raw := h.sum("tree", content.Bytes())
		d.id = id
		add(object{kind: "tree", id: id, mktree: mk.Bytes()})
		return raw
	}
	walk(root)
	return objs
}
