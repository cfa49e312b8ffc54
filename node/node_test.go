package node_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

func start(t testing.TB, dir string, bootstrap []string) *node.Node {
	t.Helper()
	n, err := node.Start(context.Background(), node.Options{
		Dir: dir, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, Domains: []string{p2ptest.Domain},
		P2P: func(c *p2p.Config) { c.SyncInterval = time.Second },
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func addrs(n *node.Node) []string {
	var out []string
	for _, a := range n.P2P.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// TestRestartKeepsReplicaAndCatchesUp: a node killed and restarted has its
// replica from disk (no network needed) and catches up what it missed.
func TestRestartKeepsReplicaAndCatchesUp(t *testing.T) {
	base := t.TempDir()
	a := start(t, filepath.Join(base, "a"), nil)
	defer a.Close()
	cDir := filepath.Join(base, "c")
	c := start(t, cDir, addrs(a))
	k := p2ptest.AgentKey("writer")
	nodeKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)

	for run := 1; run <= 5; run++ {
		s, err := p2ptest.Receipt(k, p2ptest.Domain, run, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Replica.Add(p2ptest.Vouched(s, nodeKey)); err != nil {
			t.Fatal(err)
		}
	}
	waitEqual(t, a, c)
	id := c.P2P.ID()
	c.Close()

	// On disk, without any network.
	r, err := crdt.Open(filepath.Join(cDir, "replica"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Len("") != 5 {
		t.Fatalf("replica on disk has %d records, want 5", r.Len(""))
	}
	r.Close()

	// Missed while down.
	for run := 6; run <= 9; run++ {
		s, _ := p2ptest.Receipt(k, p2ptest.Domain, run, time.Now())
		if _, err := a.Replica.Add(p2ptest.Vouched(s, nodeKey)); err != nil {
			t.Fatal(err)
		}
	}
	c = start(t, cDir, addrs(a))
	defer c.Close()
	if c.P2P.ID() != id {
		t.Fatalf("identity changed across restart: %s -> %s", id, c.P2P.ID())
	}
	if c.Replica.Len("") < 5 {
		t.Fatalf("restarted node lost its replica: %d records", c.Replica.Len(""))
	}
	waitEqual(t, a, c)

}

// TestSyncSendsDeltas: over real libp2p streams, once two nodes have
// exchanged, an exchange sends only what changed: an idle one costs a few
// hundred bytes whatever the number of origins, and one new record about
// its own size (at most 1.5 times, plus framing).
func TestSyncSendsDeltas(t *testing.T) {
	base := t.TempDir()
	a := start(t, filepath.Join(base, "a"), nil)
	defer a.Close()
	c := start(t, filepath.Join(base, "c"), addrs(a))
	defer c.Close()
	nodeKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	const origins = 60
	for i := range origins {
		s, err := p2ptest.Receipt(p2ptest.AgentKey(fmt.Sprint("agent", i)), p2ptest.Domain, 1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Replica.Add(p2ptest.Vouched(s, nodeKey)); err != nil {
			t.Fatal(err)
		}
	}
	waitEqual(t, a, c)
	ctx := context.Background()
	var idle p2p.SyncStats
	for range 2 { // the second is against what the first exchanged, at the latest
		st, err := syncRetry(ctx, c, a)
		if err != nil {
			t.Fatal(err)
		}
		idle = st
	}
	full := a.Replica.Summary()
	fullBytes, _ := json.Marshal(full)
	t.Logf("idle exchange: %d bytes (sent %d, received %d); a full summary of %d origins is %d bytes",
		idle.BytesSent+idle.BytesReceived, idle.BytesSent, idle.BytesReceived, len(full.Origins), len(fullBytes))
	if n := idle.BytesSent + idle.BytesReceived; n > 400 {
		t.Fatalf("idle exchange between nodes that met cost %d bytes", n)
	}

	s, err := p2ptest.Receipt(p2ptest.AgentKey("agent7"), p2ptest.Domain, 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s = p2ptest.Vouched(s, nodeKey)
	if _, err := a.Replica.Add(s); err != nil {
		t.Fatal(err)
	}
	size, _ := json.Marshal(s)
	st, err := syncRetry(ctx, c, a)
	if err != nil {
		t.Fatal(err)
	}
	n := st.BytesSent + st.BytesReceived
	t.Logf("one new record (%d bytes): %d bytes (sent %d, received %d, added %d)", len(size), n, st.BytesSent, st.BytesReceived, st.Added)
	if 2*n > 3*len(size)+2*16 { // 1.5x, plus 4 frame headers and the ack
		t.Fatalf("one new record of %d bytes cost %d bytes", len(size), n)
	}
	if !c.Replica.Has(s.ID) {
		t.Fatal("the new record did not arrive")
	}
}

func waitEqual(t *testing.T, a, b *node.Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for a.Replica.StateHash("") != b.Replica.StateHash("") {
		if time.Now().After(deadline) {
			t.Fatalf("replicas differ: %d vs %d records", a.Replica.Len(""), b.Replica.Len(""))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSyncAdmission: records that arrive by leaderboard sync pass the same
// admission as gossip. A receipt with no vouching cert, or with a cert its
// named node did not sign, is rejected and counted, and stays out of the
// replica; vouched receipts land; a peer over its sync quota has the rest
// of its records refused (counted) and delivered by later exchanges.
func TestSyncAdmission(t *testing.T) {
	base := t.TempDir()
	a := start(t, filepath.Join(base, "a"), nil)
	defer a.Close()
	nodeKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	k := p2ptest.AgentKey("synced")
	cert := p2p.NewAgentCert(nodeKey, k.Public())
	add := func(run int, vouch *receipt.Vouch) receipt.Signed {
		t.Helper()
		s, err := p2ptest.Receipt(k, p2ptest.Domain, run, time.Now().Add(-time.Hour)) // old: sync's job
		if err != nil {
			t.Fatal(err)
		}
		s.Vouch = vouch
		if _, err := a.Replica.Add(s); err != nil { // straight into A's replica: no admission there
			t.Fatal(err)
		}
		return s
	}
	unvouched := add(1, nil)
	otherKey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	forged := add(2, &receipt.Vouch{Node: cert.Node, Signature: p2p.NewAgentCert(otherKey, k.Public()).Signature})
	var good []receipt.Signed
	for run := 3; run <= 12; run++ {
		good = append(good, add(run, cert.Vouch()))
	}

	var quota *admission.Checker
	b, err := node.Start(context.Background(), node.Options{
		Dir: filepath.Join(base, "b"), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: addrs(a), Domains: []string{p2ptest.Domain},
		P2P: func(c *p2p.Config) {
			c.SyncInterval = 200 * time.Millisecond
			quota = admission.New(admission.Config{Domains: []string{p2ptest.Domain}, Quotas: map[string]admission.Quota{admission.PathSync: {Rate: 10, Burst: 4}}})
			c.Admission = quota
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	deadline := time.Now().Add(20 * time.Second)
	for b.Replica.Len("") < len(good) {
		if time.Now().After(deadline) {
			t.Fatalf("B holds %d of the %d vouched receipts", b.Replica.Len(""), len(good))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range good {
		if !b.Replica.Has(s.ID) {
			t.Fatalf("vouched receipt %s missing", s.ID[:8])
		}
	}
	if b.Replica.Has(unvouched.ID) || b.Replica.Has(forged.ID) {
		t.Fatal("an unvouched or falsely vouched receipt reached B's replica")
	}
	st := b.P2P.Stats().Admission
	if st.Rejected["sync/receipt/"+admission.ReasonUnvouched] == 0 || st.Rejected["sync/receipt/"+admission.ReasonSignerMismatch] == 0 {
		t.Fatalf("rejections not counted: %v", st.Rejected)
	}
	if st.Rejected["sync/receipt/"+admission.ReasonQuota] == 0 {
		t.Fatalf("the sync quota (burst 4) never refused any of 12 records: %v", st.Rejected)
	}
	if st.Accepted["sync/receipt"] != uint64(len(good)) {
		t.Fatalf("accepted %d by sync, want %d", st.Accepted["sync/receipt"], len(good))
	}
	t.Logf("sync admission: %+v", st)
}

// syncRetry is c.P2P.SyncWith(a), tried up to three times: the nodes'
// own anti-entropy exchange may hold the pair's sync stream at the same
// moment, and the remote then resets the second one (seen once in CI).
func syncRetry(ctx context.Context, c, a *node.Node) (p2p.SyncStats, error) {
	var err error
	for i := range 3 {
		var st p2p.SyncStats
		if st, err = c.P2P.SyncWith(ctx, a.P2P.ID()); err == nil {
			return st, nil
		}
		time.Sleep(time.Duration(100*(i+1)) * time.Millisecond)
	}
	return p2p.SyncStats{}, err
}
