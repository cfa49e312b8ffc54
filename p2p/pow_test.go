package p2p_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/memreplica"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

func connected(a, b *p2p.Node) bool {
	return a.Host().Network().Connectedness(b.ID()) == network.Connected ||
		b.Host().Network().Connectedness(a.ID()) == network.Connected
}

// TestPoWStaticGater: a node with a key below the difficulty is refused at
// connect in both directions (it dials us: refused once the handshake
// names it; we dial it: refused before dialling), and each refusal is
// counted and exported; a node with a minted key connects and gossips.
func TestPoWStaticGater(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Node.Close()
	// The weak node checks nothing itself, so any refusal is a's.
	weakKey := p2ptest.WeakKey(p2ptest.Difficulty)
	weak, err := p2p.New(ctx, p2ptest.Options{Mutate: func(c *p2p.Config) { c.PoWDifficulty = p2p.PoWOff }}.Config(weakKey, memreplica.New()))
	if err != nil {
		t.Fatal(err)
	}
	defer weak.Close()

	// It dials us.
	_ = weak.Connect(ctx, a.Node.Addrs()[0].String()) // may report success before a closes it
	eventually(t, 5*time.Second, "a's inbound refusal", func() bool {
		return a.Node.Stats().PoWRefused[p2p.PoWInbound+"/"+p2p.PoWBelowDifficulty] >= 1
	})
	eventually(t, 5*time.Second, "the weak node disconnected", func() bool { return !connected(a.Node, weak) })

	// We dial it.
	err = a.Node.Connect(ctx, weak.Addrs()[0].String())
	if !errors.Is(err, pow.ErrBelowDifficulty) {
		t.Fatalf("dialling the weak node: %v, want ErrBelowDifficulty", err)
	}
	// libp2p's own dials (bootstrap, DHT, PX) go through the gater too.
	if err := a.Node.Host().Connect(ctx, peer.AddrInfo{ID: weak.ID(), Addrs: weak.Host().Addrs()}); err == nil {
		t.Fatal("the host dialled the weak node")
	}
	st := a.Node.Stats()
	if got := st.PoWRefused[p2p.PoWOutbound+"/"+p2p.PoWBelowDifficulty]; got != 2 {
		t.Fatalf("outbound refusals %d, want 2 (stats %v)", got, st.PoWRefused)
	}
	for _, c := range weak.Host().Network().ConnsToPeer(a.Node.ID()) {
		if c.Stat().Direction == network.DirInbound {
			t.Fatal("a's dial reached the weak node")
		}
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(p2p.NewCollector(a.Node)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "hyperspace_p2p_pow_refused_total" {
			for _, m := range mf.GetMetric() {
				exported += m.GetCounter().GetValue()
			}
		}
	}
	if want := float64(st.PoWRefused[p2p.PoWInbound+"/"+p2p.PoWBelowDifficulty] + 2); exported != want {
		t.Fatalf("hyperspace_p2p_pow_refused_total = %v, want %v", exported, want)
	}

	// A minted node connects and gossips as before.
	b, err := p2ptest.NewMember(ctx, p2ptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Node.Close()
	if err := b.Node.Connect(ctx, a.Node.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	if err := (p2ptest.Cluster{a, b}).WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	got, stop := collect(a.Node)
	defer stop()
	s, err := p2ptest.NewPublisher(b.Node, b.Key, "b").Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b's finding at a", func() bool { return got.has([]string{s.ID}) })
	if n := len(a.Node.Stats().PoWRefused); n != 2 {
		t.Fatalf("refusals %v after a valid peer joined", a.Node.Stats().PoWRefused)
	}
}

// TestPoWConfig: a node refuses to start with a key below its own
// difficulty, or with a difficulty out of range.
func TestPoWConfig(t *testing.T) {
	ctx := t.Context()
	_, err := p2p.New(ctx, p2ptest.Options{}.Config(p2ptest.WeakKey(p2ptest.Difficulty), memreplica.New()))
	if !errors.Is(err, pow.ErrBelowDifficulty) {
		t.Fatalf("weak PrivKey: %v, want ErrBelowDifficulty", err)
	}
	for _, mut := range []func(*p2p.Config){
		func(c *p2p.Config) { c.PoWDifficulty = pow.MaxDifficulty + 1 },
		func(c *p2p.Config) { c.PoWDifficulty = -2 },
		func(c *p2p.Config) { c.PoWDynamic = -1 },
		func(c *p2p.Config) { c.PoWDynamic = pow.MaxDifficulty + 1 },
	} {
		if _, err := p2p.New(ctx, p2ptest.Options{Mutate: mut}.Config(nil, memreplica.New())); !errors.Is(err, pow.ErrDifficulty) {
			t.Errorf("out-of-range difficulty: %v, want ErrDifficulty", err)
		}
	}
	// An ephemeral key is minted at the difficulty.
	n, err := p2p.New(ctx, p2ptest.Options{Mutate: func(c *p2p.Config) { c.PoWDifficulty = 10 }}.Config(nil, memreplica.New()))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := pow.CheckPeer(n.ID(), 10); err != nil {
		t.Fatalf("ephemeral key: %v", err)
	}
	if c := p2p.DefaultConfig(); c.StaticPoW() != p2p.DefaultPoWDifficulty {
		t.Fatalf("default difficulty %d", c.StaticPoW())
	}
}

// rawHost is a bare libp2p host (no gater, no protocols) with key.
func rawHost(t *testing.T, key crypto.PrivKey) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestPoWDynamic: with the dynamic puzzle on, two nodes that both solved it
// stay connected; a peer whose key passes the static puzzle but that sends
// a wrong X (correctly signed), a proof signed by another key, garbage, or
// nothing at all is disconnected, and each is counted.
func TestPoWDynamic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const d2 = 10
	timeout := time.Second
	dyn := p2ptest.Options{Mutate: func(c *p2p.Config) { c.PoWDynamic, c.PoWTimeout = d2, timeout }}
	a, err := p2ptest.NewMember(ctx, dyn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Node.Close()
	b, err := p2ptest.NewMember(ctx, dyn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Node.Close()
	if err := b.Node.Connect(ctx, a.Node.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(timeout + 500*time.Millisecond)
	if !connected(a.Node, b.Node) {
		t.Fatalf("two nodes with valid proofs were disconnected: a %v, b %v", a.Node.Stats().PoWRefused, b.Node.Stats().PoWRefused)
	}
	if len(a.Node.Stats().PoWRefused)+len(b.Node.Stats().PoWRefused) != 0 {
		t.Fatalf("refusals between valid nodes: %v %v", a.Node.Stats().PoWRefused, b.Node.Stats().PoWRefused)
	}

	aInfo := peer.AddrInfo{ID: a.Node.ID(), Addrs: a.Node.Host().Addrs()}
	send := func(h host.Host, msg []byte) {
		t.Helper()
		if err := h.Connect(ctx, aInfo); err != nil {
			t.Fatal(err)
		}
		if msg == nil {
			return
		}
		s, err := h.NewStream(ctx, a.Node.ID(), p2p.PoWProtocol)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseWrite()
	}
	gone := func(h host.Host, what string) {
		t.Helper()
		eventually(t, 3*timeout, what+" disconnected", func() bool {
			return a.Node.Host().Network().Connectedness(h.ID()) != network.Connected
		})
	}

	// A wrong X, signed by the peer's own key.
	wrongKey := p2ptest.NodeKey()
	wrong := rawHost(t, wrongKey)
	pk, _ := pow.KeyBytes(wrongKey.GetPublic())
	var x [32]byte
	for {
		_, _ = rand.Read(x[:])
		if pow.DynamicBits(pk, x) < d2 {
			break
		}
	}
	proof, _ := pow.NewProof(wrongKey, x)
	msg, _ := proof.MarshalBinary()
	start := time.Now()
	send(wrong, msg)
	gone(wrong, "the peer with a wrong X")
	if el := time.Since(start); el >= timeout {
		t.Errorf("wrong X dropped after %v: by the timeout, not the check", el)
	}
	invalid := p2p.PoWInbound + "/" + p2p.PoWDynamicInvalid
	if got := a.Node.Stats().PoWRefused[invalid]; got != 1 {
		t.Fatalf("%s = %d, want 1", invalid, got)
	}

	// A valid X of another key: the signature does not match the peer.
	thiefKey := p2ptest.NodeKey()
	thief := rawHost(t, thiefKey)
	other := p2ptest.NodeKey()
	ox, _ := pow.SolveDynamic(ctx, other.GetPublic(), d2)
	stolen, _ := pow.NewProof(other, ox)
	msg, _ = stolen.MarshalBinary()
	send(thief, msg)
	gone(thief, "the peer with another key's proof")

	// Garbage.
	junk := rawHost(t, p2ptest.NodeKey())
	send(junk, []byte("not a proof"))
	gone(junk, "the peer sending garbage")
	eventually(t, time.Second, "three invalid proofs counted", func() bool { return a.Node.Stats().PoWRefused[invalid] == 3 })

	// Nothing: the timeout.
	silent := rawHost(t, p2ptest.NodeKey())
	send(silent, nil)
	gone(silent, "the silent peer")
	if got := a.Node.Stats().PoWRefused[p2p.PoWInbound+"/"+p2p.PoWDynamicTimeout]; got != 1 {
		t.Fatalf("timeouts %d, want 1 (%v)", got, a.Node.Stats().PoWRefused)
	}
	if !connected(a.Node, b.Node) {
		t.Fatal("the valid peer was dropped along the way")
	}
}
