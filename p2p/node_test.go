package p2p_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/memreplica"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stateHash(r *memreplica.Replica) string {
	sum := sha256.Sum256([]byte(strings.Join(r.IDs(), "\n")))
	return hex.EncodeToString(sum[:8])
}

// collector records the ids a node announces to subscribers.
type collector struct {
	mu   sync.Mutex
	ids  map[string]time.Time
	done chan struct{}
}

func collect(n *p2p.Node) (*collector, func()) {
	ch, stop := n.Subscribe()
	c := &collector{ids: map[string]time.Time{}, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for f := range ch {
			c.mu.Lock()
			c.ids[f.Receipt.ID] = f.ReceivedAt
			c.mu.Unlock()
		}
	}()
	return c, func() { stop(); <-c.done }
}

func (c *collector) has(ids []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if _, ok := c.ids[id]; !ok {
			return false
		}
	}
	return true
}

// TestTwentyNodes: 20 nodes bootstrap from node 0 (a star) and find each
// other through the DHT; findings published by several nodes reach every
// node by gossip, and after anti-entropy every replica holds the same set,
// including records that never went through gossip.
func TestTwentyNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o := p2ptest.Options{DHT: true, Mutate: func(c *p2p.Config) {
		c.DiscoveryInterval = 300 * time.Millisecond
		c.MinPeers = 6
	}}
	first, err := p2ptest.NewMember(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	c := p2ptest.Cluster{first}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	boot := first.Node.Addrs()[0].String()
	for range 19 {
		m, err := p2ptest.NewMember(ctx, o, boot)
		if err != nil {
			t.Fatal(err)
		}
		c = append(c, m)
	}
	mctx, mcancel := context.WithTimeout(ctx, 30*time.Second)
	err = c.WaitMesh(mctx, 3)
	mcancel()
	if err != nil {
		t.Fatal(err)
	}
	// Let DHT-driven dialling settle: a connection made after a finding is
	// published starts a sync that can deliver the finding before gossip
	// does (then gossip ignores it as a duplicate and it is not announced).
	settle := func() int {
		total := 0
		for _, m := range c {
			total += m.Node.Stats().Peers
		}
		return total
	}
	last, stableSince := settle(), time.Now()
	for time.Since(stableSince) < time.Second {
		time.Sleep(100 * time.Millisecond)
		if now := settle(); now != last {
			last, stableSince = now, time.Now()
		}
		if ctx.Err() != nil {
			t.Fatal("connections never settled")
		}
	}
	var collectors []*collector
	for _, m := range c {
		col, stop := collect(m.Node)
		defer stop()
		collectors = append(collectors, col)
	}

	var ids []string
	for _, i := range []int{0, 4, 9, 14, 19} {
		pub := p2ptest.NewPublisher(c[i].Node, c[i].Key, "agent-"+string(rune('a'+i)))
		for range 2 {
			s, err := pub.Publish(ctx)
			if err != nil {
				t.Fatalf("node %d publish: %v", i, err)
			}
			ids = append(ids, s.ID)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, col := range collectors {
		for !col.has(ids) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !col.has(ids) {
			for j, m := range c {
				t.Logf("node %d: has %d/%d; stats %+v", j, len(collectors[j].ids), len(ids), m.Node.Stats())
			}
			t.Fatalf("node %d did not receive every finding within 20s", i)
		}
	}
	peers := 0
	for _, m := range c {
		peers += m.Node.Stats().Peers
	}
	t.Logf("every node received all %d findings; average degree %.1f", len(ids), float64(peers)/float64(len(c)))

	// Records that only one replica has (as if gossip had missed them).
	for k := range 5 {
		s, err := p2ptest.Receipt(p2ptest.AgentKey("offline"), p2ptest.Domain, k+1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c[7].Replica.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	converged := func() bool {
		h := stateHash(c[0].Replica)
		for _, m := range c {
			if stateHash(m.Replica) != h {
				return false
			}
		}
		return true
	}
	passes := 0
	for passes < 4 && !converged() {
		passes++
		for _, m := range c {
			if err := m.Node.SyncAll(ctx); err != nil {
				t.Fatalf("SyncAll: %v", err)
			}
		}
	}
	if !converged() {
		t.Fatal("replicas differ after 4 sync passes")
	}
	if n := c[0].Replica.Len(); n != len(ids)+5 {
		t.Fatalf("replicas hold %d records, want %d", n, len(ids)+5)
	}
	t.Logf("replicas converged after %d SyncAll pass(es); state hash %s", passes, stateHash(c[0].Replica))
}

// TestLateJoiner: a node started after 200 findings gets all of them in
// its first sync exchange, before any new gossip.
func TestLateJoiner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := p2ptest.NewCluster(ctx, 3, 2, 7, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitMesh(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var pubs []*p2ptest.Publisher
	for i, m := range c {
		pubs = append(pubs, p2ptest.NewPublisher(m.Node, m.Key, "agent-"+string(rune('a'+i))))
	}
	for i := range 200 {
		if _, err := pubs[i%3].Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range c {
		eventually(t, 20*time.Second, "200 findings at every node", func() bool { return m.Replica.Len() == 200 })
	}
	// Let the findings leave every message cache (5 heartbeats), so that
	// only sync can bring them to the newcomer.
	time.Sleep(time.Second)

	late, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Node.Close()
	if err := late.Node.Connect(ctx, c[0].Node.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the sync on connect", func() bool { return late.Node.Stats().SyncRounds >= 1 })
	st := late.Node.Stats()
	if got := late.Replica.Len(); got != 200 {
		t.Fatalf("late joiner has %d records after its first sync, want 200", got)
	}
	if st.SyncRounds != 1 || st.SyncAdded != 200 || st.Delivered != 0 {
		t.Fatalf("stats %+v: want 1 sync round adding 200 records and no gossip deliveries", st)
	}
	if stateHash(late.Replica) != stateHash(c[0].Replica) {
		t.Fatal("late joiner's state differs")
	}
	t.Logf("late joiner: 200 records in one exchange, %d bytes received", st.SyncBytesReceived)
}

// TestRestart: a node closed and reopened with the same key file and
// replica (standing in for the on-disk CRDT) has the same identity and
// catches up on what it missed through the sync it starts on connect.
func TestRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := p2ptest.NewCluster(ctx, 2, 1, 3, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	boot := c[0].Node.Addrs()[0].String()
	keyFile := filepath.Join(t.TempDir(), "node.key")
	replica := memreplica.New()
	start := func() *p2p.Node {
		cfg := p2ptest.Options{}.Config(nil, replica, boot)
		cfg.KeyFile = keyFile
		n, err := p2p.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := start()
	id := a.ID()
	eventually(t, 10*time.Second, "a mesh peer", func() bool { return a.Stats().Mesh[p2p.TopicForDomain(p2ptest.Domain)] > 0 })
	if err := c.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	pub := p2ptest.NewPublisher(c[1].Node, c[1].Key, "agent-r")
	for range 3 {
		if _, err := pub.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "3 findings before the restart", func() bool { return replica.Len() == 3 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	var missed []string
	for range 5 {
		s, err := pub.Publish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		missed = append(missed, s.ID)
	}
	if replica.Len() != 3 {
		t.Fatal("a closed node received gossip")
	}
	// Let the peers' message caches (a few 100 ms heartbeats) forget them,
	// so that only sync can bring them back.
	time.Sleep(time.Second)

	a = start()
	defer a.Close()
	if a.ID() != id {
		t.Fatalf("restarted node has id %s, want %s", a.ID(), id)
	}
	eventually(t, 10*time.Second, "the missed findings", func() bool {
		return !slices.ContainsFunc(missed, func(id string) bool { return !replica.Has(id) })
	})
	if st := a.Stats(); st.SyncAdded != 5 {
		t.Fatalf("restarted node added %d records by sync, want 5", st.SyncAdded)
	}
}

// TestPublishRules: Publish refuses what peers would reject, is idempotent,
// and hands stale receipts to sync only.
func TestPublishRules(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Node.Close()
	pub := p2ptest.NewPublisher(m.Node, m.Key, "agent-p")
	s, err := pub.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Node.Publish(ctx, s, pub.Cert); err != nil {
		t.Fatalf("republishing: %v", err)
	}
	if st := m.Node.Stats(); st.Published != 1 {
		t.Fatalf("published %d, want 1", st.Published)
	}
	if got := m.Node.Recent(10); len(got) != 1 || got[0].Receipt.ID != s.ID || !got[0].Local {
		t.Fatalf("Recent = %+v", got)
	}

	old, _ := p2ptest.Receipt(pub.Key, p2ptest.Domain, 99, time.Now().Add(-time.Hour))
	if err := m.Node.Publish(ctx, old, pub.Cert); !errors.Is(err, p2p.ErrStale) || !m.Replica.Has(old.ID) {
		t.Fatalf("stale publish: err %v, in replica %v", err, m.Replica.Has(old.ID))
	}
	other, _ := p2ptest.Receipt(p2ptest.AgentKey("someone else"), p2ptest.Domain, 1, time.Now())
	var rej *p2p.RejectedError
	if err := m.Node.Publish(ctx, other, pub.Cert); !errors.As(err, &rej) || rej.Reason != p2p.ReasonSignerMismatch {
		t.Fatalf("publishing with another agent's cert: %v", err)
	}
	wrong, _ := p2ptest.Receipt(pub.Key, "finance", 1, time.Now())
	if err := m.Node.Publish(ctx, wrong, pub.Cert); !errors.Is(err, p2p.ErrUnknownDomain) {
		t.Fatalf("unknown domain: %v", err)
	}
}

// TestMDNSStarts checks mDNS can be enabled (discovery itself needs a LAN
// with multicast, which loopback test hosts do not have).
func TestMDNSStarts(t *testing.T) {
	cfg := p2p.DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.EnableMDNS = true
	cfg.Domains = []string{"ml"}
	cfg.DisableDHT = true
	cfg.Replica = memreplica.New()
	n, err := p2p.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("mDNS enabled: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRelayAndHolePunchingOptions: the options (hyperspace node --relay,
// --hole-punching) start the node with the circuit relay v2 client (its
// stop protocol is on the host; without the option it is not). DCUtR
// registers its protocol only once the host learns a public address, which
// a loopback host never does, so that part is only shown to start.
func TestRelayAndHolePunchingOptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	has := func(m *p2ptest.Member, proto string) bool {
		for _, p := range m.Node.Host().Mux().Protocols() {
			if string(p) == proto {
				return true
			}
		}
		return false
	}
	const stop, dcutr = "/libp2p/circuit/relay/0.2.0/stop", "/libp2p/dcutr"
	plain, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Node.Close()
	if has(plain, stop) || has(plain, dcutr) {
		t.Fatal("relay or hole punching on without the options")
	}
	nat, err := p2ptest.NewMember(ctx, p2ptest.Options{Mutate: func(c *p2p.Config) { c.EnableRelay, c.EnableHolePunching = true, true }})
	if err != nil {
		t.Fatal(err)
	}
	defer nat.Node.Close()
	if !has(nat, stop) {
		t.Fatal("EnableRelay: no circuit relay v2 client (stop protocol)")
	}
}
