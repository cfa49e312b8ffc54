package crdt

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

func TestPersistenceReopen(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(40, 41))
	recs := pool(t, rng, 4, 10, []string{"ml", "search", "Weird/Domain"}, true)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustMerge(t, r, recs[:20])
	for _, s := range recs[20:] {
		if _, err := r.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	want := r.StateHash("")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(sign(t, spec{key: testKey(9), run: 1})); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v; want ErrClosed", err)
	}

	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.StateHash("") != want || r2.Len("") != len(recs) {
		t.Fatalf("reopened replica has %d of %d records", r2.Len(""), len(recs))
	}
	for _, d := range r.Domains() {
		if r2.StateHash(d) != r.StateHash(d) {
			t.Fatalf("domain %q differs after reopen", d)
		}
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, n := range names {
		if b := filepath.Base(n); b != "ml.jsonl" && b != "search.jsonl" && b != "%57eird%2F%44omain.jsonl" {
			t.Fatalf("unexpected file %s", b)
		}
	}
	// Appends after a reopen go to the same logs.
	extra := sign(t, spec{key: testKey(9), run: 1, domain: "search"})
	if _, err := r2.Add(extra); err != nil {
		t.Fatal(err)
	}
	r2.Close()
	r3, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if !r3.Has(extra.ID) || r3.Len("") != len(recs)+1 {
		t.Fatal("record appended after reopen was lost")
	}
}

func TestPersistenceTornLastLine(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(42, 43))
	recs := pool(t, rng, 2, 5, []string{"ml"}, false)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustMerge(t, r, recs)
	want := r.StateHash("")
	r.Close()

	// A crash in mid-append leaves half a line.
	path := filepath.Join(dir, "ml.jsonl")
	before, _ := os.ReadFile(path)
	torn := sign(t, spec{key: testKey(5), run: 1})
	line, _ := torn.Receipt.MarshalJSON()
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(line[:len(line)/2])
	f.Close()

	r2, err := Open(dir)
	if err != nil {
		t.Fatalf("torn last line not tolerated: %v", err)
	}
	if r2.StateHash("") != want {
		t.Fatal("state changed by a torn line")
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Fatal("torn line was not truncated")
	}
	// The log stays appendable and loadable.
	if _, err := r2.Add(torn); err != nil {
		t.Fatal(err)
	}
	r2.Close()
	r3, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if !r3.Has(torn.ID) || r3.Len("") != len(recs)+1 {
		t.Fatal("append after truncation was lost")
	}
}

func TestPersistenceCorruptionIsAnError(t *testing.T) {
	rng := rand.New(rand.NewPCG(44, 45))
	recs := pool(t, rng, 2, 5, []string{"ml"}, false)
	setup := func(t *testing.T) (dir, path string, lines []string) {
		dir = t.TempDir()
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		mustMerge(t, r, recs)
		r.Close()
		path = filepath.Join(dir, "ml.jsonl")
		b, _ := os.ReadFile(path)
		return dir, path, strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	write := func(path string, lines []string) {
		os.WriteFile(path, []byte(strings.Join(lines, "")+"\n"), 0o644)
	}
	// A record whose metric was edited on disk.
	t.Run("tampered", func(t *testing.T) {
		dir, path, lines := setup(t)
		lines[2] = strings.Replace(lines[2], `"value":`, `"value":0.0001,"x":`, 1)
		write(path, lines)
		_, err := Open(dir)
		if err == nil || !errors.Is(err, ErrInvalid) || !errors.Is(err, receipt.ErrBadID) ||
			!strings.Contains(err.Error(), "ml.jsonl line 3") {
			t.Fatalf("Open = %v; want an ErrInvalid error naming ml.jsonl line 3", err)
		}
		t.Logf("error: %v", err)
	})
	// Garbage in the middle (not a torn last line).
	t.Run("garbage", func(t *testing.T) {
		dir, path, lines := setup(t)
		lines[1] = "{not json\n"
		write(path, lines)
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "ml.jsonl line 2") {
			t.Fatalf("Open = %v; want an error naming line 2", err)
		}
	})
	// A record in the wrong domain's file.
	t.Run("wrong file", func(t *testing.T) {
		dir, path, lines := setup(t)
		os.WriteFile(filepath.Join(dir, "search.jsonl"), []byte(lines[0]), 0o644)
		_ = path
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "search.jsonl line 1") {
			t.Fatalf("Open = %v; want an error naming search.jsonl line 1", err)
		}
	})
}

func TestEscapeDomain(t *testing.T) {
	for _, d := range []string{"ml", "ML", "a/b", ".hidden", "x.y", "naïve", "100%", "a b"} {
		name := escapeDomain(d)
		if strings.ContainsAny(name, "/\\ ") || strings.HasPrefix(name, ".") || hasUpperOutsideEscapes(name) {
			t.Errorf("escapeDomain(%q) = %q is not a safe file name", d, name)
		}
		back, ok := unescapeDomain(name)
		if !ok || back != d {
			t.Errorf("unescapeDomain(%q) = %q, %v; want %q", name, back, ok, d)
		}
	}
	if escapeDomain("ML") == escapeDomain("ml") {
		t.Error("case-insensitive collision")
	}
	for _, bad := range []string{"%4", "%zz", "%6d%6c", ""} {
		if _, ok := unescapeDomain(bad); ok {
			t.Errorf("unescapeDomain(%q) accepted", bad)
		}
	}
}

// hasUpperOutsideEscapes reports an upper-case letter that is not part of a
// %XX escape (file names must not collide on case-insensitive systems).
func hasUpperOutsideEscapes(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] == '%' {
			i += 2
			continue
		}
		if name[i] >= 'A' && name[i] <= 'Z' {
			return true
		}
	}
	return false
}
