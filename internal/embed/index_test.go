package embed

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

func randVec(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// naiveSearch scores every item and sorts them all: the specification
// Index.Search must match.
func naiveSearch(items []Item, q []float32, k int, filter func(Item) bool) []Hit {
	qn := append([]float32(nil), q...)
	normalize32(qn)
	var all []Hit
	for _, it := range items {
		if filter != nil && !filter(it) {
			continue
		}
		v := append([]float32(nil), it.Vec...)
		normalize32(v)
		all = append(all, Hit{Item: Item{ID: it.ID, Kind: it.Kind, Domain: it.Domain, Vec: v}, Score: dot32(qn, v)})
	}
	sort.Slice(all, func(a, b int) bool {
		if all[a].Score != all[b].Score {
			return all[a].Score > all[b].Score
		}
		return all[a].ID < all[b].ID
	})
	if len(all) > k {
		all = all[:k]
	}
	return all
}

func TestIndexMatchesNaiveSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	domains := []string{"ml", "finance", "search"}
	for trial := 0; trial < 60; trial++ {
		dim := 1 + rng.IntN(24)
		n := rng.IntN(300)
		var ix Index
		items := map[string]Item{}
		for i := 0; i < n; i++ {
			// Few distinct IDs, so some adds replace; some vectors are
			// duplicated to create exact score ties.
			id := fmt.Sprintf("id%03d", rng.IntN(n+1))
			v := randVec(rng, dim)
			if rng.IntN(5) == 0 && len(items) > 0 {
				for _, other := range items {
					v = append([]float32(nil), other.Vec...)
					break
				}
			}
			it := Item{ID: id, Kind: "k", Domain: domains[rng.IntN(3)], Vec: v}
			if err := ix.Add(it); err != nil {
				t.Fatal(err)
			}
			items[id] = it
		}
		if ix.Len() != len(items) {
			t.Fatalf("Len %d, want %d", ix.Len(), len(items))
		}
		all := make([]Item, 0, len(items))
		for _, it := range items {
			all = append(all, it)
		}
		var filter func(Item) bool
		if trial%2 == 1 {
			d := domains[trial%3]
			filter = func(it Item) bool { return it.Domain == d }
		}
		q := randVec(rng, dim)
		k := 1 + rng.IntN(n+10) // sometimes more than Len
		got := ix.Search(q, k, filter)
		want := naiveSearch(all, q, k, filter)
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d hits, want %d", trial, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.ID != w.ID || g.Score != w.Score || g.Domain != w.Domain || len(g.Vec) != dim {
				t.Fatalf("trial %d hit %d: got %s %v, want %s %v", trial, i, g.ID, g.Score, w.ID, w.Score)
			}
			if filter != nil && !filter(g.Item) {
				t.Fatalf("trial %d: filter ignored", trial)
			}
			// The score is the cosine similarity, up to float32 rounding.
			if c := Cosine(q, items[g.ID].Vec); math.Abs(c-float64(g.Score)) > 1e-5 {
				t.Fatalf("trial %d: score %v, cosine %v", trial, g.Score, c)
			}
		}
	}
}

func TestIndexBasics(t *testing.T) {
	var ix Index
	if ix.Search([]float32{1, 0}, 3, nil) != nil || ix.Len() != 0 || ix.Dim() != 0 {
		t.Fatal("empty index")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ix.Add(Item{ID: "b", Domain: "ml", Vec: []float32{3, 4}}))
	must(ix.Add(Item{ID: "a", Domain: "ml", Vec: []float32{0.6, 0.8}})) // same direction as b: a tie
	must(ix.Add(Item{ID: "c", Domain: "fin", Vec: []float32{-1, 0}}))
	must(ix.Add(Item{ID: "z", Domain: "fin", Vec: []float32{0, 0}})) // zero vector scores 0

	hits := ix.Search([]float32{6, 8}, 10, nil)
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.ID)
	}
	if fmt.Sprint(ids) != "[a b z c]" || hits[0].Score != hits[1].Score || math.Abs(float64(hits[0].Score)-1) > 1e-6 || hits[2].Score != 0 {
		t.Fatalf("hits %v %+v", ids, hits)
	}
	if n := norm(hits[1].Vec); math.Abs(n-1) > 1e-6 {
		t.Fatalf("stored vector not normalised: %v", hits[1].Vec)
	}
	hits[0].Vec[0] = 42 // hits carry copies
	if h := ix.Search([]float32{1, 0}, 1, func(it Item) bool { return it.ID == "a" }); h[0].Vec[0] == 42 {
		t.Fatal("search exposed internal storage")
	}
	if h := ix.Search([]float32{1, 0}, 1, func(it Item) bool { return it.Domain == "fin" }); len(h) != 1 || h[0].ID != "z" {
		t.Fatalf("filtered top-1: %+v", h)
	}

	// Replace on the same ID.
	must(ix.Add(Item{ID: "c", Domain: "fin", Vec: []float32{0.6, 0.8}}))
	if ix.Len() != 4 {
		t.Fatalf("replace grew the index to %d", ix.Len())
	}
	if h := ix.Search([]float32{0.6, 0.8}, 3, nil); h[2].ID != "c" || h[2].Score != h[0].Score {
		t.Fatalf("replaced item: %+v", h)
	}

	// Dimension mismatch: Add errors, Search returns nil.
	if err := ix.Add(Item{ID: "d", Vec: []float32{1, 2, 3}}); !errors.Is(err, ErrDimMismatch) {
		t.Fatalf("dim mismatch: %v", err)
	}
	if ix.Search([]float32{1, 2, 3}, 1, nil) != nil || ix.Search([]float32{1, 0}, 0, nil) != nil {
		t.Fatal("bad query answered")
	}
	for _, bad := range []Item{{ID: "", Vec: []float32{1, 0}}, {ID: "e"}, {ID: "f", Vec: []float32{float32(math.NaN()), 0}}} {
		if ix.Add(bad) == nil {
			t.Fatalf("accepted %+v", bad)
		}
	}

	// Remove moves the last item into the hole.
	if !ix.Remove("a") || ix.Remove("a") || ix.Len() != 3 {
		t.Fatal("remove")
	}
	if h := ix.Search([]float32{1, 0}, 10, nil); len(h) != 3 || h[0].ID != "b" && h[0].ID != "c" {
		t.Fatalf("after remove: %+v", h)
	}
	for _, id := range []string{"b", "c", "z"} {
		if h := ix.Search([]float32{1, 1}, 1, func(it Item) bool { return it.ID == id }); len(h) != 1 || h[0].ID != id {
			t.Fatalf("lost %s after remove", id)
		}
	}
}

func TestIndexConcurrent(t *testing.T) {
	var ix Index
	rng := rand.New(rand.NewPCG(3, 4))
	vecs := make([][]float32, 400)
	for i := range vecs {
		vecs[i] = randVec(rng, 16)
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(2)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(vecs); i += 4 {
				if err := ix.Add(Item{ID: fmt.Sprint(i), Vec: vecs[i]}); err != nil {
					t.Error(err)
				}
			}
		}(w)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				h := ix.Search(vecs[(w*50+i)%len(vecs)], 5, nil)
				for j := 1; j < len(h); j++ {
					if h[j].Score > h[j-1].Score {
						t.Error("unsorted hits")
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if ix.Len() != len(vecs) {
		t.Fatalf("Len %d", ix.Len())
	}
	for i := 0; i < len(vecs); i += 37 {
		if h := ix.Search(vecs[i], 1, nil); h[0].ID != fmt.Sprint(i) {
			t.Fatalf("vector %d: nearest is %s", i, h[0].ID)
		}
	}
}
