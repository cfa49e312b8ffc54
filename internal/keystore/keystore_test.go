package keystore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/keystore"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
)

var secret = []byte("correct horse battery staple 0123")

func TestSealOpen(t *testing.T) {
	s, err := keystore.NewSealer(secret)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := identity.Generate()
	sealed, err := s.Seal(k, keystore.Label("c1", "agent-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, k.Seed()) {
		t.Fatal("the sealed form holds the seed in plaintext")
	}
	got, err := s.Open(sealed, keystore.Label("c1", "agent-1"))
	if err != nil || got.ID() != k.ID() {
		t.Fatalf("open: %v, %v", got, err)
	}
	// Another agent's row, another secret, a flipped bit: all refused.
	if _, err := s.Open(sealed, keystore.Label("c1", "agent-2")); !errors.Is(err, keystore.ErrWrongSecret) {
		t.Fatalf("opened under another agent's label: %v", err)
	}
	other, _ := keystore.NewSealer([]byte("another site's secret, long enough"))
	if _, err := other.Open(sealed, keystore.Label("c1", "agent-1")); !errors.Is(err, keystore.ErrWrongSecret) {
		t.Fatalf("opened with another secret: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed, keystore.Label("c1", "agent-1")); err == nil {
		t.Fatal("opened a tampered seal")
	}
	if _, err := keystore.NewSealer([]byte("short")); err == nil {
		t.Fatal("accepted a 5-byte secret")
	}
	if _, err := keystore.NewSealer(nil); !errors.Is(err, keystore.ErrNoSecret) {
		t.Fatalf("no secret: %v", err)
	}
}

func TestSecretFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "site.secret")
	a, err := keystore.CreateSecretFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keystore.CreateSecretFile(p)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("a second create changed the secret: %v", err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v", st.Mode())
	}
	if got, err := keystore.LoadSecret("", p); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("load: %v", err)
	}
	if got, _ := keystore.LoadSecret("from-env-value-0123456789", p); string(got) != "from-env-value-0123456789" {
		t.Fatal("the value does not take precedence over the file")
	}
}

// TestOneKeyPerAgent: the site's processes (separate Keystores over one
// database) registering and loading an agent concurrently all get the
// same key; the database holds it only sealed; a process with another
// secret is refused at Open.
func TestOneKeyPerAgent(t *testing.T) {
	st, _ := testenv.Database(t)
	ctx := context.Background()
	if err := st.CreateCampaign(ctx, store.Campaign{ID: "c1", Domain: "ml", Status: store.StatusPending, Agents: 1, Experiments: 1,
		BaselineSeeds: 3, BudgetSeconds: 1, Request: []byte(`{}`), WorkflowID: "campaign-c1"}); err != nil {
		t.Fatal(err)
	}
	const procs = 8
	keys := make([]*identity.Key, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ks, err := keystore.Open(ctx, st, secret)
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				keys[i], err = ks.Register(ctx, "c1", "agent-1")
			} else {
				for keys[i] == nil {
					if keys[i], err = ks.Register(ctx, "c1", "agent-1"); err != nil {
						break
					}
				}
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, k := range keys {
		if k == nil || k.ID() != keys[0].ID() {
			t.Fatalf("process %d got key %v, process 0 %v", i, k, keys[0])
		}
	}
	a, err := st.GetAgent(ctx, "c1", "agent-1")
	if err != nil || a.PeerID != keys[0].ID() || a.PublicKey != base64.StdEncoding.EncodeToString(keys[0].Public()) {
		t.Fatalf("registered agent %+v, %v", a, err)
	}
	// Nothing in the database holds the seed in plaintext.
	var dump []byte
	if err := st.Pool.QueryRow(ctx, `SELECT convert_to(string_agg(t::text, ' '), 'UTF8') FROM agents t`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	seed := keys[0].Seed()
	for _, form := range [][]byte{seed, []byte(base64.StdEncoding.EncodeToString(seed))} {
		if bytes.Contains(dump, form) {
			t.Fatal("the agents table holds the private key in plaintext")
		}
	}
	// Later, another process loads it.
	ks, err := keystore.Open(ctx, st, secret)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := ks.Load(ctx, "c1", "agent-1"); err != nil || k.ID() != keys[0].ID() {
		t.Fatalf("load: %v %v", k, err)
	}
	if _, err := ks.Load(ctx, "c1", "agent-9"); !errors.Is(err, keystore.ErrUnknownAgent) {
		t.Fatalf("unknown agent: %v", err)
	}
	if _, err := keystore.Open(ctx, st, []byte("the wrong secret for this site")); !errors.Is(err, keystore.ErrWrongSecret) {
		t.Fatalf("open with the wrong secret: %v", err)
	}
}
