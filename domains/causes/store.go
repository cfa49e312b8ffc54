package causes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// ErrDuplicate is returned (wrapped) by Store.Add for a name already taken.
var ErrDuplicate = errors.New("cause already exists")

// Store holds causes by name, optionally persisted as one definition file
// per cause in a directory (<name>.json when written by the store; .yaml,
// .yml and .json files are read). It is safe for concurrent use.
//
// The REST handler's flow is: Parse (decodes and validates), Store.Add
// (rejects duplicates, persists), then register the cause in the
// domains.Registry (see Store.RegisterAll for start-up).
type Store struct {
	dir    string
	mu     sync.RWMutex
	byName map[string]*Cause
	files  map[string]string // cause name -> definition file (persisted stores)
}

// NewStore returns an empty in-memory store (nothing is persisted).
func NewStore() *Store { return &Store{byName: map[string]*Cause{}, files: map[string]string{}} }

// OpenStore loads every *.yaml, *.yml and *.json file in dir (creating
// dir if needed) and returns a store that persists new causes there. An
// invalid definition or a duplicate name fails with an error naming the
// file. A relative evaluator.workdir in a file is resolved against dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("causes: open store: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("causes: open store: %w", err)
	}
	s := &Store{dir: dir, byName: map[string]*Cause{}, files: map[string]string{}}
	files := s.files
	for _, e := range entries {
		if e.IsDir() || !isDefinitionFile(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("causes: open store: %w", err)
		}
		c, err := Parse(data)
		if err != nil {
			return nil, fmt.Errorf("causes: open store: %s: %w", path, err)
		}
		if prev, dup := files[c.Name()]; dup {
			return nil, fmt.Errorf("causes: open store: %s: %w: %q is also defined in %s", path, ErrDuplicate, c.Name(), prev)
		}
		c.baseDir = dir
		files[c.Name()] = path
		s.byName[c.Name()] = c
	}
	return s, nil
}

func isDefinitionFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false // editor and temp files
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Dir is the persistence directory ("" for an in-memory store).
func (s *Store) Dir() string { return s.dir }

// Add validates c and adds it, persisting it as <dir>/<name>.json when the
// store has a directory. A name already in the store (or on disk) fails
// with an error wrapping ErrDuplicate.
func (s *Store) Add(c *Cause) error {
	if c == nil {
		return errors.New("causes: add: nil cause")
	}
	if err := c.Check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.byName[c.Name()]; dup {
		return fmt.Errorf("causes: %w: %q", ErrDuplicate, c.Name())
	}
	if s.dir != "" {
		if err := s.write(c); err != nil {
			return err
		}
	}
	s.byName[c.Name()] = c
	return nil
}

// write persists c atomically (temp file + rename), refusing to replace
// an existing definition file of the same name.
func (s *Store) write(c *Cause) error {
	for _, ext := range []string{".json", ".yaml", ".yml"} {
		if _, err := os.Stat(filepath.Join(s.dir, c.Name()+ext)); err == nil {
			return fmt.Errorf("causes: %w: %q (file %s exists)", ErrDuplicate, c.Name(), c.Name()+ext)
		}
	}
	data, err := c.MarshalJSONIndent()
	if err != nil {
		return fmt.Errorf("causes: save %q: %w", c.Name(), err)
	}
	tmp, err := os.CreateTemp(s.dir, "."+c.Name()+"-*.tmp")
	if err != nil {
		return fmt.Errorf("causes: save %q: %w", c.Name(), err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("causes: save %q: %w", c.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("causes: save %q: %w", c.Name(), err)
	}
	path := filepath.Join(s.dir, c.Name()+".json")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("causes: save %q: %w", c.Name(), err)
	}
	s.files[c.Name()] = path
	return nil
}

// MarshalJSONIndent returns the definition as indented JSON, the format
// Store writes.
func (c *Cause) MarshalJSONIndent() ([]byte, error) {
	return jsonIndent(c.def)
}

// Get returns the named cause.
func (s *Store) Get(name string) (*Cause, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.byName[name]
	return c, ok
}

// List returns every cause, sorted by name.
func (s *Store) List() []*Cause {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Cause, 0, len(s.byName))
	for _, c := range s.byName {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Cause) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

// Remove deletes the named cause (and its definition file when the store
// is persisted). It reports whether the cause existed. Campaigns already
// running on it keep their *Cause.
func (s *Store) Remove(name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byName[name]; !ok {
		return false, nil
	}
	if path, ok := s.files[name]; ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return true, fmt.Errorf("causes: remove %q: %w", name, err)
		}
	}
	delete(s.byName, name)
	delete(s.files, name)
	return true, nil
}

// RegisterAll registers every cause of the store in r.
func (s *Store) RegisterAll(r *domains.Registry) {
	for _, c := range s.List() {
		r.Register(c.Domain())
	}
}
