package crdt

import (
	"errors"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

func verified(t *testing.T, s receipt.Signed) receipt.Verified {
	t.Helper()
	v, err := s.Verified()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAddVerified: a record verified by the caller is stored without a
// second verification but with every other rule of Add (copy, size limit,
// structural checks, admission), and a record that fails verification
// never becomes a receipt.Verified, so Add and Merge stay the only way in
// for it, and they still reject it.
func TestAddVerified(t *testing.T) {
	s := sign(t, spec{key: testKey(1), run: 1, metric: 2.5})
	r := New(WithDomains("ml"))
	if added, err := r.AddVerified(verified(t, s)); !added || err != nil {
		t.Fatalf("AddVerified = %v, %v; want true, nil", added, err)
	}
	if added, err := r.AddVerified(verified(t, s)); added || err != nil {
		t.Fatalf("second AddVerified = %v, %v; want false, nil", added, err)
	}
	if added, err := r.Add(s); added || err != nil {
		t.Fatalf("Add after AddVerified = %v, %v; want false, nil", added, err)
	}
	s.Receipt.Config["activation"] = "mutated"
	if got, _ := r.Get(s.ID); got.Receipt.Config["activation"] == "mutated" {
		t.Fatal("replica shares the caller's config map")
	}

	if _, err := r.AddVerified(receipt.Verified{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("AddVerified(zero) = %v; want ErrInvalid", err)
	}
	zeroRun := sign(t, spec{key: testKey(1), run: 0, metric: 2.5}) // validly signed, structurally bad
	if _, err := r.AddVerified(verified(t, zeroRun)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("AddVerified(run 0) = %v; want ErrInvalid", err)
	}
	search := sign(t, spec{key: testKey(1), domain: "search", run: 2, metric: 0.5})
	if _, err := r.AddVerified(verified(t, search)); !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("AddVerified(search) = %v; want ErrNotAdmitted", err)
	}
	small := New(WithMaxRecordSize(100))
	if _, err := small.AddVerified(verified(t, sign(t, spec{key: testKey(1), run: 1, metric: 2.5}))); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("AddVerified(large) = %v; want a size error", err)
	}
	if r.Len("") != 1 {
		t.Fatalf("Len = %d, want 1", r.Len(""))
	}

	// Tampered records cannot be made Verified and are still refused by
	// the paths that verify.
	tampered := sign(t, spec{key: testKey(1), run: 3, metric: 2.5})
	tampered.Receipt.Metric.Value = 1.0
	if _, err := tampered.Verified(); !errors.Is(err, receipt.ErrBadID) {
		t.Fatalf("tampered.Verified() = %v; want ErrBadID", err)
	}
	if _, err := r.Add(tampered); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Add(tampered) = %v; want ErrInvalid", err)
	}
	if _, rejected, _ := r.Merge([]receipt.Signed{tampered}); rejected != 1 {
		t.Fatalf("Merge(tampered) rejected %d, want 1", rejected)
	}
}

// TestAddVerifiedPersists: a record added by AddVerified is in the log and
// is verified when the log is loaded again.
func TestAddVerifiedPersists(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := sign(t, spec{key: testKey(1), run: 1, metric: 2.5})
	if _, err := r.AddVerified(verified(t, s)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !again.Has(s.ID) {
		t.Fatal("record added by AddVerified was not persisted")
	}
}
