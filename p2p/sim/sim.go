// Package sim runs the knowledge plane beyond one machine's loopback: the
// project's own p2p.Node (real GossipSub, the real validators and
// admission, the leaderboard CRDT of internal/crdt) on go-libp2p's
// in-memory network (p2p/net/mock, "mocknet"), with a one-way latency on
// every link and packet loss modelled as TCP sees it (see lossModel).
//
// What is simulated and what is real: the hosts are mocknet's (no
// transport, no Noise, no yamux; each libp2p stream is its own reliable
// pipe delivering writes Latency after they are made), and they lack the
// identity puzzle's connection gater (mocknet takes a gater only through an
// unexported option; keys are still minted at p2ptest.Difficulty). Above
// the host everything is the production code: p2p.New's pubsub options and
// peer scoring, the validators, the rate limits, the redialer, sync on
// connect and periodic anti-entropy.
//
// All nodes share this machine's CPUs: every node checks every finding's
// signatures, so at 1,000 nodes a finding costs about a second of CPU time
// in all, and measured latencies include the time a node waited for a
// core. Compare with the same run at zero latency and loss (the
// benchmarks do) to tell the network's share from the machine's.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	coreconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/crdtreplica"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// Options shape a simulated network.
type Options struct {
	Nodes int
	// Degree: node i dials Degree distinct random earlier nodes (all of
	// them while i <= Degree): a random graph of average degree about
	// 2·Degree (default 4). Links exist only along these edges.
	Degree int
	// Latency is every link's one-way delay.
	Latency time.Duration
	// Loss is the probability that a TCP segment is lost (0.01: 1%),
	// modelled as a retransmission delay of RTO (see lossModel).
	Loss float64
	// RTO is the retransmission timeout of a lost segment (default
	// 200ms + 2·Latency: Linux's minimum RTO of 200ms above a smoothed
	// RTT of 2·Latency).
	RTO time.Duration
	// Heartbeat is the GossipSub heartbeat (default 1s, production).
	Heartbeat time.Duration
	// SyncInterval is the anti-entropy period (0: none, only gossip
	// counts; p2p.DefaultSyncInterval is production).
	SyncInterval time.Duration
	// SyncOnConnect turns on sync when a connection opens (production
	// does; off by default so that propagation measures gossip only).
	SyncOnConnect bool
	Seed          uint64
	Logger        *slog.Logger // default: discard
}

// Node is one simulated node.
type Node struct {
	*p2p.Node
	Key     crypto.PrivKey
	Replica *crdt.Replica
}

// Network is a running simulation.
type Network struct {
	Nodes  []*Node
	Edges  [][2]int // the wired graph, by node index
	mn     mocknet.Mocknet
	loss   *lossModel
	cut    [][2]int // edges unlinked by Partition
	healed [][2]int // edges relinked by the last Heal
}

// New builds the network: nodes with fresh keys and empty replicas, linked
// and connected along a random graph.
func New(ctx context.Context, o Options) (_ *Network, err error) {
	if o.Nodes < 2 {
		return nil, errors.New("sim: need at least 2 nodes")
	}
	if o.Degree <= 0 {
		o.Degree = 4
	}
	if o.RTO <= 0 {
		o.RTO = 200*time.Millisecond + 2*o.Latency
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = p2p.DefaultHeartbeat
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	mn := mocknet.New()
	net := &Network{mn: mn, loss: newLossModel(o.Loss, o.RTO, o.Seed)}
	defer func() {
		if err != nil {
			net.Close()
		}
	}()
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	for i := range o.Nodes {
		n, err := net.start(ctx, i, o)
		if err != nil {
			return nil, fmt.Errorf("sim: node %d: %w", i, err)
		}
		net.Nodes = append(net.Nodes, n)
		for _, j := range rng.Perm(i)[:min(i, o.Degree)] {
			net.Edges = append(net.Edges, [2]int{i, j})
		}
	}
	// Wire the graph at zero latency, many dials at a time (a dial costs
	// a few round trips: at 50 ms, one at a time, 4,000 edges would take
	// over 10 minutes), then give every link its latency: mocknet reads a
	// link's latency at every write, so open connections get it too.
	if err := net.wire(ctx, 16); err != nil {
		return nil, err
	}
	lo := mocknet.LinkOptions{Latency: o.Latency}
	mn.SetLinkDefaults(lo)
	for _, e := range net.Edges {
		for _, l := range mn.LinksBetweenPeers(net.Nodes[e[0]].ID(), net.Nodes[e[1]].ID()) {
			l.SetOptions(lo)
		}
	}
	return net, nil
}

// wire links and connects every edge, workers dials at a time.
func (net *Network) wire(ctx context.Context, workers int) error {
	edges := make(chan [2]int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range edges {
				if err := net.link(ctx, e[0], e[1]); err != nil {
					select {
					case errs <- fmt.Errorf("sim: connect %d to %d: %w", e[0], e[1], err):
					default:
					}
				}
			}
		}()
	}
	for _, e := range net.Edges {
		edges <- e
	}
	close(edges)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (net *Network) start(ctx context.Context, i int, o Options) (*Node, error) {
	key, err := pow.MintKey(ctx, p2ptest.Difficulty)
	if err != nil {
		return nil, err
	}
	// A distinct address per node: GossipSub's IP colocation penalty
	// (loopback is exempt, 10/8 is not) must not apply.
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&255, i>>8&255, i&255))
	if err != nil {
		return nil, err
	}
	r := crdt.New(crdt.WithDomains(p2ptest.Domain))
	cfg := p2ptest.Options{Heartbeat: o.Heartbeat, NoSyncOnConn: !o.SyncOnConnect, SyncInterval: o.SyncInterval, Logger: o.Logger,
		Mutate: func(c *p2p.Config) {
			c.ScoreInspectInterval = p2p.DefaultScoreInspect
			c.NewHost = func(priv crypto.PrivKey, _ coreconnmgr.ConnectionGater) (host.Host, error) {
				h, err := net.mn.AddPeer(priv, addr)
				if err != nil {
					return nil, err
				}
				return lossyHost{h, net.loss}, nil
			}
		}}.Config(key, nil)
	// One admission check for gossip and sync, as node.Start builds it:
	// records that arrive by sync pass it before the CRDT merges them.
	cfg.Admission = admission.New(admission.Config{ClockSkew: p2p.DefaultClockSkew, MaxAge: p2p.DefaultMaxAge, Domains: cfg.Domains, Now: time.Now,
		Quotas: map[string]admission.Quota{admission.PathSync: admission.DefaultSyncQuota}})
	cfg.Replica = crdtreplica.New(r, cfg.Admission)
	n, err := p2p.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Node{Node: n, Key: key, Replica: r}, nil
}

// link creates the mocknet link between nodes i and j and has i dial j.
func (net *Network) link(ctx context.Context, i, j int) error {
	a, b := net.Nodes[i], net.Nodes[j]
	if _, err := net.mn.LinkPeers(a.ID(), b.ID()); err != nil {
		return err
	}
	return a.Connect(ctx, b.Addrs()[0].String())
}

// Close stops every node and the mocknet.
func (net *Network) Close() error {
	var errs []error
	for _, n := range net.Nodes {
		errs = append(errs, n.Close())
	}
	errs = append(errs, net.mn.Close())
	return errors.Join(errs...)
}

// WaitMesh waits until every node has at least min(want, peers) mesh peers
// on the domain topic, accepting a few settled stragglers
// (p2ptest.WaitMeshNodes).
func (net *Network) WaitMesh(ctx context.Context, want int) error {
	nodes := make([]*p2p.Node, len(net.Nodes))
	for i, n := range net.Nodes {
		nodes[i] = n.Node
	}
	if err := p2ptest.WaitMeshNodes(ctx, nodes, want); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// Partition cuts every edge between nodes on different sides (side(i)
// says which side node i is on): the links go, so nothing can be dialled
// across, and open connections close. It returns the number of edges cut.
func (net *Network) Partition(side func(i int) bool) (int, error) {
	for _, e := range net.Edges {
		if side(e[0]) == side(e[1]) {
			continue
		}
		a, b := net.Nodes[e[0]].ID(), net.Nodes[e[1]].ID()
		if err := net.mn.UnlinkPeers(a, b); err != nil {
			return 0, err
		}
		if err := net.mn.DisconnectPeers(a, b); err != nil {
			return 0, err
		}
		net.cut = append(net.cut, e)
	}
	return len(net.cut), nil
}

// Heal restores the links Partition cut. Nothing is dialled here: the
// nodes' redialers (p2p/redial.go) reconnect on their own.
func (net *Network) Heal() error {
	for _, e := range net.cut {
		if _, err := net.mn.LinkPeers(net.Nodes[e[0]].ID(), net.Nodes[e[1]].ID()); err != nil {
			return err
		}
	}
	net.healed, net.cut = net.cut, nil
	return nil
}

// Converged reports whether every replica holds the same set, and how
// many distinct sets there are.
func (net *Network) Converged() (bool, int) {
	hashes := map[string]int{}
	for _, n := range net.Nodes {
		hashes[n.Replica.StateHash(p2ptest.Domain)]++
	}
	return len(hashes) == 1, len(hashes)
}

// LossStats reports writes seen and writes delayed by the loss model.
func (net *Network) LossStats() (writes, delayed uint64) {
	return net.loss.writes.Load(), net.loss.delayed.Load()
}

// StartAntiEntropy runs periodic anti-entropy as the nodes' own sync loop
// would with Config.SyncInterval = interval (every node syncs with every
// peer once per interval), phases spread evenly over the interval, until
// the returned stop is called. A network built with SyncInterval 0 can
// so measure gossip alone first and turn sync on for what needs it.
func (net *Network) StartAntiEntropy(ctx context.Context, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		step := interval / time.Duration(len(net.Nodes))
		tick := time.NewTicker(step)
		defer tick.Stop()
		for i := 0; ; i = (i + 1) % len(net.Nodes) {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n := net.Nodes[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				sctx, c := context.WithTimeout(ctx, interval)
				defer c()
				_ = n.SyncAll(sctx) // failures are the next round's business, as in the sync loop
			}()
		}
	}()
	return func() { cancel(); wg.Wait() }
}
