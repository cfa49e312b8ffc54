package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
)

func TestLedgerIdempotentAndAppendOnly(t *testing.T) {
	st, _ := testenv.Database(t)
	ctx := context.Background()
	r := int64(7)
	rc := strings.Repeat("a", 64)
	entries := []store.LedgerEntry{
		{Key: "presence/7/p1", PeerID: "p1", Round: &r, Amount: 11.6, Reason: "presence"},
		{Key: "work/" + rc, PeerID: "p1", Round: &r, Amount: 30, Reason: "work"},
		{Key: "bond/" + rc + "/lock", PeerID: "p1", Round: &r, Bucket: "bond", Amount: 20, Reason: "bond"},
		{Key: "bond/" + rc + "/post", PeerID: "p1", Round: &r, Amount: -20, Reason: "bond"},
	}
	outs := []store.Outcome{{Round: 7, PeerID: "p1", Present: true, SinceRound: 7, Verified: []string{"research"}}}
	n, sum, err := st.CreditRound(ctx, outs, entries)
	if err != nil || n != 4 || sum != 41.6 {
		t.Fatalf("first credit: %d %v %v", n, sum, err)
	}
	// The same round again (a retried or re-run workflow) credits nothing.
	n, sum, err = st.CreditRound(ctx, outs, entries)
	if err != nil || n != 0 || sum != 0 {
		t.Fatalf("re-credit: %d %v %v", n, sum, err)
	}
	b, err := st.BalanceOf(ctx, "p1")
	if err != nil || b.Points != 21.6 || b.Bonded != 20 || b.Entries != 4 {
		t.Fatalf("balance %+v %v", b, err)
	}
	held, err := st.HeldBonds(ctx, 7, 10)
	if err != nil || len(held) != 1 || held[0].Receipt != rc || held[0].Amount != 20 {
		t.Fatalf("held bonds %+v %v", held, err)
	}
	if _, err := st.Pool.Exec(ctx, `UPDATE points_ledger SET amount = 1e6`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("update allowed: %v", err)
	}
	if _, err := st.Pool.Exec(ctx, `DELETE FROM points_ledger`); err == nil {
		t.Fatal("delete allowed")
	}
	// Release: held no more.
	if _, _, err := st.AppendLedger(ctx, []store.LedgerEntry{
		{Key: "bond/" + rc + "/release", PeerID: "p1", Round: &r, Bucket: "bond", Amount: -20, Reason: "bond-release"},
		{Key: "bond/" + rc + "/return", PeerID: "p1", Round: &r, Amount: 20, Reason: "bond-release"},
	}); err != nil {
		t.Fatal(err)
	}
	if held, _ := st.HeldBonds(ctx, 100, 10); len(held) != 0 {
		t.Fatalf("released bond still held: %+v", held)
	}
	if _, err := st.BondOf(ctx, rc); err != store.ErrNotFound {
		t.Fatalf("BondOf released: %v", err)
	}
	streak, err := st.Streaks(ctx, 8, []string{"p1", "p2"})
	if err != nil || len(streak) != 1 || streak["p1"] != 7 {
		t.Fatalf("streaks %v %v", streak, err)
	}
	bs, err := st.Balances(ctx, 10)
	if err != nil || len(bs) != 1 || bs[0].Points != 41.6 {
		t.Fatalf("balances %+v %v", bs, err)
	}
	h, err := st.History(ctx, "p1", 2, 0)
	if err != nil || len(h) != 2 || h[0].Reason != "bond-release" {
		t.Fatalf("history %+v %v", h, err)
	}
}
