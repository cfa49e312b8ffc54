package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestFromSeedDeterministic(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	a, b := FromSeed(seed), FromSeed(seed)
	if a.ID() != b.ID() || !bytes.Equal(a.Public(), b.Public()) {
		t.Fatal("same seed, different keys")
	}
	if !regexp.MustCompile(`^hs1[a-z2-7]{32}$`).MatchString(a.ID()) {
		t.Fatalf("unexpected id format %q", a.ID())
	}
	if a.ID() != IDFromPublic(a.Public()) {
		t.Fatal("ID != IDFromPublic(Public())")
	}
	c := FromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	if c.ID() == a.ID() {
		t.Fatal("different seeds, same id")
	}
	msg := []byte("hello")
	sig := a.Sign(msg)
	if !Verify(a.Public(), msg, sig) || Verify(c.Public(), msg, sig) || Verify(a.Public(), []byte("hellO"), sig) {
		t.Fatal("signature verification wrong")
	}
	if !bytes.Equal(a.Seed(), seed) {
		t.Fatal("Seed() mismatch")
	}
}

// TestCreateExclusive: concurrent creators of one file: exactly one wins,
// the others get fs.ErrExist, and the file holds the winner's bytes, 0600.
func TestCreateExclusive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := []string{}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := strings.Repeat(string(rune('a'+i)), 64)
			err := CreateExclusive(dir, path, []byte(data))
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, data)
				mu.Unlock()
			case !errors.Is(err, fs.ErrExist):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := os.ReadFile(path)
	if len(won) != 1 || err != nil || string(got) != won[0] {
		t.Fatalf("%d winners, file %q (%v)", len(won), got, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
}
