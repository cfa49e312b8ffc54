package identity

import (
	"bytes"
	"crypto/ed25519"
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

func TestLoadOrCreatePersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys", "nested")
	k1, err := LoadOrCreate(dir, "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreate(dir, "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID() != k2.ID() {
		t.Fatalf("reload changed key: %s vs %s", k1.ID(), k2.ID())
	}
	k3, err := LoadOrCreate(dir, "agent-2")
	if err != nil {
		t.Fatal(err)
	}
	if k3.ID() == k1.ID() {
		t.Fatal("different names share a key")
	}
	st, err := os.Stat(Path(dir, "agent-1"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(dir)
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", dst.Mode().Perm())
	}
	data, _ := os.ReadFile(Path(dir, "agent-1"))
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key file is not PEM PKCS#8: %q", data)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestCorruptFileIsError(t *testing.T) {
	dir := t.TempDir()
	path := Path(dir, "bad")
	for _, content := range []string{"garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", ""} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreate(dir, "bad")
		if err == nil {
			t.Fatalf("content %q: want error", content)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name %s", err, path)
		}
		got, _ := os.ReadFile(path)
		if string(got) != content {
			t.Fatalf("corrupt file was modified")
		}
	}
}

func TestInvalidName(t *testing.T) {
	for _, name := range []string{"", "a/b", "..", "."} {
		if _, err := LoadOrCreate(t.TempDir(), name); err == nil {
			t.Errorf("name %q: want error", name)
		}
	}
}

func TestConcurrentLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			k, err := LoadOrCreate(dir, "shared")
			errs[i] = err
			if k != nil {
				ids[i] = k.ID()
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("goroutine %d got %s, goroutine 0 got %s", i, ids[i], ids[0])
		}
	}
	k, err := Load(Path(dir, "shared"))
	if err != nil || k.ID() != ids[0] {
		t.Fatalf("persisted key differs: %v", err)
	}
}
