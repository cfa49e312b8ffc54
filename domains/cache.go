package domains

import (
	"path/filepath"
	"sync"
)

// DirCache loads a data set once per data directory and shares it between
// evaluations. Failures are not cached: the data may appear later.
type DirCache[T any] struct {
	mu sync.Mutex
	m  map[string]*dirEntry[T]
}

type dirEntry[T any] struct {
	once sync.Once
	v    T
	err  error
}

// Load returns the value for dir, calling parse(absDir) at most once per
// directory while it succeeds.
func (c *DirCache[T]) Load(dir string, parse func(abs string) (T, error)) (T, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*dirEntry[T]{}
	}
	e, ok := c.m[abs]
	if !ok {
		e = &dirEntry[T]{}
		c.m[abs] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.v, e.err = parse(abs) })
	if e.err != nil {
		c.mu.Lock()
		if c.m[abs] == e {
			delete(c.m, abs)
		}
		c.mu.Unlock()
	}
	return e.v, e.err
}
