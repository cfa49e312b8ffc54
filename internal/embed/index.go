package embed

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Item is one entry of an Index.
type Item struct {
	// ID identifies the item; adding an item with an existing ID replaces it.
	ID string
	// Kind and Domain are free-form labels for filtering (e.g. "note",
	// "result"; "ml", "finance").
	Kind, Domain string
	// Vec is the item's embedding.
	Vec []float32
}

// Hit is a search result: the item and its cosine similarity to the query.
type Hit struct {
	Item
	Score float32
}

// Index is an exact in-memory nearest-neighbour index for cosine
// similarity. Vectors are copied and L2-normalised when added (a zero
// vector stays zero and scores 0 against everything), so a score is the
// dot product of unit vectors, in [-1, 1].
//
// Search is brute force: it scores every item, O(n·d) for n items of
// dimension d, plus O(n·log k) to keep the best k; it is exact (no
// approximation, no recall loss) and, at well under a millisecond per
// 10,000 vectors of dimension 64 on one core, fast enough for the sizes
// semantic memory needs. Add and Remove are O(d) (amortised).
//
// The zero Index is ready to use. All methods are safe for concurrent use
// (a sync.RWMutex: searches run in parallel, writes are exclusive).
type Index struct {
	mu    sync.RWMutex
	dim   int            // fixed by the first Add
	items []Item         // Vec aliases vecs
	vecs  []float32      // len(items)·dim, row i is items[i].Vec
	pos   map[string]int // ID → position in items
}

// ErrDimMismatch is returned by Add for a vector whose length differs from
// the index's dimension.
var ErrDimMismatch = errors.New("embed: vector dimension does not match the index")

// Add inserts it, or replaces the item with the same ID. The first Add
// fixes the index's dimension; a later vector of another length is
// rejected with ErrDimMismatch. Empty IDs, empty vectors and non-finite
// components are rejected too.
func (x *Index) Add(it Item) error {
	if it.ID == "" {
		return errors.New("embed: item has an empty ID")
	}
	if len(it.Vec) == 0 {
		return fmt.Errorf("embed: item %q has an empty vector", it.ID)
	}
	if !finite32(it.Vec) {
		return fmt.Errorf("embed: item %q has a non-finite vector component", it.ID)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dim == 0 {
		x.dim = len(it.Vec)
		x.pos = map[string]int{}
	}
	if len(it.Vec) != x.dim {
		return fmt.Errorf("%w: item %q has %d, index has %d", ErrDimMismatch, it.ID, len(it.Vec), x.dim)
	}
	if p, ok := x.pos[it.ID]; ok {
		v := x.items[p].Vec
		copy(v, it.Vec)
		normalize32(v)
		it.Vec = v
		x.items[p] = it
		return nil
	}
	before := cap(x.vecs)
	x.vecs = append(x.vecs, it.Vec...)
	if cap(x.vecs) != before { // reallocated: re-point the items' slices
		for i := range x.items {
			x.items[i].Vec = x.row(i)
		}
	}
	p := len(x.items)
	it.Vec = x.row(p)
	normalize32(it.Vec)
	x.items = append(x.items, it)
	x.pos[it.ID] = p
	return nil
}

func (x *Index) row(i int) []float32 { return x.vecs[i*x.dim : (i+1)*x.dim : (i+1)*x.dim] }

// Remove deletes the item with the given ID and reports whether it was
// there. The last item takes its place (positions are not stable).
func (x *Index) Remove(id string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.pos[id]
	if !ok {
		return false
	}
	last := len(x.items) - 1
	if p != last {
		copy(x.row(p), x.row(last))
		moved := x.items[last]
		moved.Vec = x.row(p)
		x.items[p] = moved
		x.pos[moved.ID] = p
	}
	x.items[last] = Item{}
	x.items = x.items[:last]
	x.vecs = x.vecs[:last*x.dim]
	delete(x.pos, id)
	return true
}

// Len is the number of items.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.items)
}

// Dim is the vector dimension, 0 until the first Add.
func (x *Index) Dim() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.dim
}

// Search returns the k items most similar to q among those for which
// filter returns true (all items when filter is nil), best first: by score
// descending, then by ID ascending, so ties are deterministic. It returns
// fewer than k hits when fewer items qualify, and nil when k ≤ 0, the
// index is empty, or q's length differs from the index's dimension (a
// query of another model cannot be compared). q need not be normalised; a
// zero q scores 0 everywhere. Hits carry copies of the stored (unit)
// vectors.
//
// filter runs under the index's read lock: it must not call Add or Remove.
func (x *Index) Search(q []float32, k int, filter func(Item) bool) []Hit {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if k <= 0 || len(x.items) == 0 || len(q) != x.dim || !finite32(q) {
		return nil
	}
	qn := append([]float32(nil), q...)
	normalize32(qn)

	// A bounded min-heap of the best k so far; its root is the worst kept.
	h := make([]Hit, 0, min(k, len(x.items)))
	for i := range x.items {
		it := &x.items[i]
		if filter != nil && !filter(*it) {
			continue
		}
		s := dot32(qn, it.Vec)
		if len(h) < k {
			h = append(h, Hit{Item: *it, Score: s})
			siftUp(h, len(h)-1)
			continue
		}
		if worse(h[0], s, it.ID) {
			h[0] = Hit{Item: *it, Score: s}
			siftDown(h, 0)
		}
	}
	sort.Slice(h, func(a, b int) bool { return better(h[a].Score, h[a].ID, h[b].Score, h[b].ID) })
	for i := range h {
		h[i].Vec = append([]float32(nil), h[i].Vec...)
	}
	return h
}

// better is the result order: higher score first, then smaller ID.
func better(s1 float32, id1 string, s2 float32, id2 string) bool {
	if s1 != s2 {
		return s1 > s2
	}
	return id1 < id2
}

// worse reports whether hit h ranks below a candidate (s, id).
func worse(h Hit, s float32, id string) bool { return better(s, id, h.Score, h.ID) }

// siftUp and siftDown maintain h as a heap whose root is the worst hit.
func siftUp(h []Hit, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !better(h[p].Score, h[p].ID, h[i].Score, h[i].ID) {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func siftDown(h []Hit, i int) {
	for {
		l, w := 2*i+1, i
		if l < len(h) && better(h[w].Score, h[w].ID, h[l].Score, h[l].ID) {
			w = l
		}
		if r := l + 1; r < len(h) && better(h[w].Score, h[w].ID, h[r].Score, h[r].ID) {
			w = r
		}
		if w == i {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// dot32 is the float32 dot product of two equal-length vectors, with four
// independent accumulators (summed in a fixed order) for speed.
func dot32(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	b = b[:len(a)]
	for len(a) >= 4 { // reslicing lets the compiler drop bounds checks
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i := range a {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
