package blob_test

import (
	"context"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
)

func TestPromoteMovesStagedArtifacts(t *testing.T) {
	b, cfg := testenv.Blob(t)
	ctx := context.Background()
	// Opening again finds the existing bucket.
	if _, err := blob.Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	prefix := blob.StagingPrefix("c1", "agent-1", 3)
	if err := b.Put(ctx, prefix+"log.txt", []byte("hello"), ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, prefix+"curve.json", []byte("[]"), "application/json"); err != nil {
		t.Fatal(err)
	}
	keys, err := b.Promote(ctx, prefix, "deadbeef")
	if err != nil || len(keys) != 2 || keys["log.txt"] != "experiments/deadbeef/log.txt" {
		t.Fatalf("promote: %v %v", keys, err)
	}
	if err := b.RemovePrefix(ctx, prefix); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "experiments/deadbeef/log.txt")
	if err != nil || string(got) != "hello" {
		t.Fatalf("get: %q %v", got, err)
	}
	// A retry after cleanup reports the promoted keys.
	keys, err = b.Promote(ctx, prefix, "deadbeef")
	if err != nil || len(keys) != 2 {
		t.Fatalf("promote retry: %v %v", keys, err)
	}
	left, _ := b.List(ctx, prefix)
	if len(left) != 0 {
		t.Fatalf("staging not empty: %v", left)
	}
}
