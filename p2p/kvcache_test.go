package p2p_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyperspace-ai/hyperspace/internal/kvprefix"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// kvNet is a loopback network with the DHT on: node 0 publishes, nodes
// 1..holders store chunks, the rest fetch.
type kvNet struct {
	c       p2ptest.Cluster
	stores  []*p2p.KVPrefixStore
	holders []peer.ID
}

func newKVNet(t *testing.T, holders, fetchers int, seed uint64) *kvNet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := p2ptest.NewCluster(ctx, 1+holders+fetchers, 3, seed, p2ptest.Options{DHT: true, NoSyncOnConn: true})
	if err != nil {
		t.Fatal(err)
	}
	net := &kvNet{c: c}
	for _, m := range c[1 : 1+holders] {
		net.holders = append(net.holders, m.Node.ID())
	}
	for i, m := range c {
		var peers func() []peer.ID
		if i == 0 {
			peers = func() []peer.ID { return net.holders }
		}
		net.stores = append(net.stores, p2p.NewKVPrefixStore(m.Node, peers, p2p.WithKVSeed(uint64(i)+seed),
			p2p.WithKVGetTimeout(10*time.Second)))
	}
	t.Cleanup(func() {
		for _, s := range net.stores {
			s.Close()
		}
		c.Close()
	})
	// Let identify and the DHT's routing tables settle.
	time.Sleep(500 * time.Millisecond)
	return net
}

func kvState(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fetchEventually retries a fetch while the DHT's provider records spread.
func fetchEventually(t *testing.T, s *p2p.KVPrefixStore, model, prefix string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		st, err := s.Fetch(ctx, model, prefix)
		if err == nil {
			return st
		}
		if ctx.Err() != nil {
			t.Fatalf("fetch %s/%s: %v", model, prefix, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestKVPublishFetchSurvivesLoss(t *testing.T) {
	net := newKVNet(t, 8, 2, 11)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	state := kvState(1<<20, 1)
	m, err := net.stores[0].Publish(ctx, "model-x", "prefix-y", state)
	if err != nil {
		t.Fatal(err)
	}
	if m.K != 32 || m.N != 64 || net.stores[0].Tracker().Live(m.Root) != 64 {
		t.Fatalf("manifest k=%d n=%d live %d", m.K, m.N, net.stores[0].Tracker().Live(m.Root))
	}
	for i := 1; i <= 8; i++ {
		if st := net.stores[i].Stats(); st.HeldChunks != 8 || st.ChunksStored != 8 {
			t.Fatalf("holder %d holds %d chunks (stored %d), want 8", i, st.HeldChunks, st.ChunksStored)
		}
	}
	if st := net.stores[0].Stats(); st.HeldChunks != 0 {
		t.Fatalf("publisher holds %d chunks", st.HeldChunks)
	}

	// B knows nothing but (model, prefix hash): providers come from the DHT.
	b := net.stores[9]
	got := fetchEventually(t, b, "model-x", "prefix-y")
	if !bytes.Equal(got, state) {
		t.Fatal("fetched state differs")
	}
	// Get is served from B's state cache now.
	if st, ok := b.Get(ctx, "model-x", "prefix-y"); !ok || !bytes.Equal(st, state) {
		t.Fatal("Get after Fetch")
	}

	// A tampered chunk is refused by the holder's admission check.
	chunk, size, err := net.c[9].Node.GetKVChunk(ctx, net.holders[0], m.Root, firstHeld(t, net, 0, m))
	if err != nil || size == 0 {
		t.Fatal(err)
	}
	chunk.Data[0] ^= 1
	if err := net.c[9].Node.PutKVChunk(ctx, net.holders[1], m, chunk); err == nil {
		t.Fatal("tampered chunk stored")
	}
	if net.stores[2].Stats().RejectedChunks != 1 {
		t.Fatalf("rejected %d", net.stores[2].Stats().RejectedChunks)
	}
	if _, _, err := net.c[9].Node.GetKVChunk(ctx, net.holders[0], m.Root, 64); err == nil {
		t.Fatal("chunk 64 of 64 served")
	}

	// Close 3 of the 8 holders (24 of 64 chunks lost): C still fetches.
	for i := 1; i <= 3; i++ {
		net.stores[i].Close()
		net.c[i].Node.Close()
	}
	c := net.stores[10]
	got = fetchEventually(t, c, "model-x", "prefix-y")
	if !bytes.Equal(got, state) {
		t.Fatal("state fetched after losing 3 holders differs")
	}
	// Unknown sets are a clear miss.
	short, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if _, err := c.Fetch(short, "model-x", "no-such-prefix"); !errors.Is(err, p2p.ErrKVNotFound) {
		t.Fatalf("unknown prefix: %v", err)
	}
}

// firstHeld is the lowest chunk index that holder i (0-based) holds.
func firstHeld(t *testing.T, net *kvNet, i int, m kvprefix.Manifest) int {
	t.Helper()
	for idx := range m.N {
		if slices.Contains(net.stores[0].Tracker().Holders(m.Root, idx), net.holders[i]) {
			return idx
		}
	}
	t.Fatal("holder holds nothing")
	return -1
}

func TestKVProbeRepair(t *testing.T) {
	net := newKVNet(t, 8, 1, 22)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := net.stores[0]
	state := kvState(200_000, 2)
	m, err := a.Publish(ctx, "model-x", "prefix-z", state)
	if err != nil {
		t.Fatal(err)
	}
	if ok, failed := a.Probe(ctx, m.Root); !ok || len(failed) != 0 {
		t.Fatalf("probe of a healthy set: ok %v failed %v", ok, failed)
	}
	// Holder 1 silently drops its chunks.
	bad := net.holders[0]
	net.stores[1].DropChunksForTest()
	caught := false
	for range 40 {
		ok, failed := a.Probe(ctx, m.Root)
		if slices.Contains(failed, bad) {
			caught = true
			break
		}
		if !ok {
			t.Fatal("probe not ok without a failed provider")
		}
		if len(failed) != 0 {
			t.Fatalf("an honest holder failed: %v", failed)
		}
	}
	if !caught {
		t.Fatal("40 probe rounds missed the dropping holder")
	}
	tr := a.Tracker()
	if tr.Reputation(bad) >= kvprefix.ReputationStart {
		t.Fatalf("reputation %v not lowered", tr.Reputation(bad))
	}
	if slices.Contains(tr.Providers(m.Root), bad) || tr.Live(m.Root) != 56 {
		t.Fatalf("dropping holder still a provider, live %d", tr.Live(m.Root))
	}
	if err := a.Repair(ctx, m.Root); err != nil {
		t.Fatal(err)
	}
	if tr.Live(m.Root) != 64 || len(tr.Missing(m.Root)) != 0 {
		t.Fatalf("live after repair %d", tr.Live(m.Root))
	}
	if slices.Contains(tr.Providers(m.Root), bad) {
		t.Fatal("repair re-placed on the dropping holder")
	}
	if st := a.Stats(); st.Repairs != 1 || st.ChunksRepaired != 8 || st.ProbesFailed == 0 {
		t.Fatalf("stats %+v", st)
	}
	// Every probe succeeds again and a fresh node fetches the set.
	for range 5 {
		if ok, failed := a.Probe(ctx, m.Root); !ok || len(failed) != 0 {
			t.Fatalf("probe after repair: ok %v failed %v", ok, failed)
		}
	}
	if got := fetchEventually(t, net.stores[9], "model-x", "prefix-z"); !bytes.Equal(got, state) {
		t.Fatal("state after repair differs")
	}
}

// Put publishes in the background; Get on another node finds it.
func TestKVPutGet(t *testing.T) {
	net := newKVNet(t, 4, 1, 33)
	a, b := net.stores[0], net.stores[5]
	ctx := context.Background()
	state := kvState(50_000, 3)
	a.Put(ctx, "model-x", "prefix-p", state)
	if st, ok := a.Get(ctx, "model-x", "prefix-p"); !ok || !bytes.Equal(st, state) {
		t.Fatal("local Get after Put")
	}
	deadline := time.Now().Add(30 * time.Second)
	for a.Stats().Published == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Put never published")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := fetchEventually(t, b, "model-x", "prefix-p"); !bytes.Equal(got, state) {
		t.Fatal("fetched state differs")
	}
	if _, ok := b.Get(ctx, "model-x", "bad/name"); ok {
		t.Fatal("invalid name found")
	}
	// A miss is remembered: the second Get does not wait on the network.
	if _, ok := b.Get(ctx, "model-x", "prefix-none"); ok {
		t.Fatal("unknown prefix found")
	}
	start := time.Now()
	if _, ok := b.Get(ctx, "model-x", "prefix-none"); ok || time.Since(start) > time.Second {
		t.Fatal("remembered miss")
	}

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(p2p.NewKVCollector(a)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			if c := mt.GetCounter(); c != nil {
				got[mf.GetName()] += c.GetValue()
			}
		}
	}
	if got["hyperspace_kv_published_total"] != 1 || got["hyperspace_kv_gets_total"] != 1 {
		t.Fatalf("metrics %v", got)
	}
}

// BenchmarkKVFetch: go test ./p2p -run XXX -bench KVFetch -benchtime 20x
// Fetch of a 1 MiB state from 8 loopback holders (DHT lookup, manifests,
// 32 chunks, decode) against a Get served by the local state cache, and
// the parts of a fetch: the DHT lookup, one manifest get, one chunk get,
// and the 32 data chunks from known holders with 1, 4 and 16 requests in
// flight.
func BenchmarkKVFetch(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := p2ptest.NewCluster(ctx, 10, 3, 44, p2ptest.Options{DHT: true, NoSyncOnConn: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var holders []peer.ID
	for _, m := range c[1:9] {
		holders = append(holders, m.Node.ID())
	}
	var stores []*p2p.KVPrefixStore
	for i, m := range c {
		var opts []p2p.KVOption
		if i == 9 {
			opts = append(opts, p2p.WithKVStateBudget(1)) // no state cache: every Fetch goes to the network
		}
		var peers func() []peer.ID
		if i == 0 {
			peers = func() []peer.ID { return holders }
		}
		stores = append(stores, p2p.NewKVPrefixStore(m.Node, peers, opts...))
	}
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	time.Sleep(500 * time.Millisecond)
	state := kvState(1<<20, 9)
	m, err := stores[0].Publish(ctx, "model-x", "prefix-bench", state)
	if err != nil {
		b.Fatal(err)
	}
	fetcher := stores[9]
	for {
		if _, err := fetcher.Fetch(ctx, "model-x", "prefix-bench"); err == nil {
			break
		} else if ctx.Err() != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Run("network-8-peers", func(b *testing.B) {
		b.SetBytes(int64(len(state)))
		for b.Loop() {
			got, err := fetcher.Fetch(ctx, "model-x", "prefix-bench")
			if err != nil || len(got) != len(state) {
				b.Fatal(err)
			}
		}
	})
	b.Run("dht-lookup-only", func(b *testing.B) {
		for b.Loop() {
			if ps, err := c[9].Node.FindProviders(ctx, kvprefix.Key("model-x", "prefix-bench"), 20); err != nil || len(ps) == 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("manifest-one-holder", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := c[9].Node.GetKVManifest(ctx, holders[0], "model-x", "prefix-bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-chunk", func(b *testing.B) {
		h := stores[0].Tracker().Holders(m.Root, 0)
		b.SetBytes(int64(m.ShardSize))
		for b.Loop() {
			if _, _, err := c[9].Node.GetKVChunk(ctx, h[0], m.Root, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, par := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("32-chunks-known-holders-%d-in-flight", par), func(b *testing.B) {
			b.SetBytes(int64(len(state)))
			for b.Loop() {
				var wg sync.WaitGroup
				sem := make(chan struct{}, par)
				errs := make(chan error, m.K)
				for i := range m.K {
					wg.Add(1)
					sem <- struct{}{}
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						h := stores[0].Tracker().Holders(m.Root, i)
						if _, _, err := c[9].Node.GetKVChunk(ctx, h[0], m.Root, i); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("local-copy", func(b *testing.B) {
		b.SetBytes(int64(len(state)))
		for b.Loop() {
			if got, ok := stores[0].Get(ctx, "model-x", "prefix-bench"); !ok || len(got) != len(state) {
				b.Fatal("local Get missed")
			}
		}
	})
}
