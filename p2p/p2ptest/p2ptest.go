// Package p2ptest has helpers for tests and benchmarks of package p2p:
// signed receipts, loopback clusters, and the gossip propagation
// measurement (MeasurePropagation).
package p2ptest

import (
	"bufio"
	"context"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/memreplica"
)

// Domain is the research domain the helpers use.
const Domain = "search"

// Difficulty is the static identity puzzle's difficulty of test nodes
// (Options.Config): low enough that minting a key takes a few
// milliseconds (2^8 tries), high enough that a random key fails it
// (255 times in 256), so the connection gater is exercised by every test.
const Difficulty = 8

// NodeKey mints a node key at Difficulty.
func NodeKey() crypto.PrivKey { return pow.MustMint(Difficulty) }

// WeakKey returns an Ed25519 key that fails the static puzzle at
// difficulty d (d >= 1): a peer test nodes must refuse.
func WeakKey(d int) crypto.PrivKey {
	for {
		k, _, err := crypto.GenerateEd25519Key(cryptorand.Reader)
		if err != nil {
			panic(err)
		}
		if pow.CheckKey(k.GetPublic(), d) != nil {
			return k
		}
	}
}

// AgentKey returns a deterministic agent key for name.
func AgentKey(name string) *identity.Key {
	seed := sha256.Sum256([]byte("p2ptest agent " + name))
	return identity.FromSeed(seed[:])
}

// Receipt returns receipt number run of agent k in domain, timestamped ts.
func Receipt(k *identity.Key, domain string, run int, ts time.Time) (receipt.Signed, error) {
	return receipt.Sign(receipt.Receipt{
		Project:    "p2ptest",
		RunNumber:  run,
		Timestamp:  ts.UnixMilli(),
		Hypothesis: fmt.Sprintf("run %d of %s", run, k.ID()),
		Config:     map[string]any{"lr": 0.001 * float64(run%7+1)},
		Result:     receipt.Result{ValLoss: 1 / float64(run+1)},
		Domain:     domain,
		Campaign:   "p2ptest",
		Agent:      "agent",
		Seed:       int64(run),
		Metric:     receipt.MetricValue{Name: "ndcg", Direction: "maximize", Value: float64(run) / 1000},
	}, k)
}

// Publisher is an agent publishing through one node.
type Publisher struct {
	Node *p2p.Node
	Key  *identity.Key
	Cert p2p.AgentCert
	run  int
}

// NewPublisher returns an agent named name publishing through n, whose node
// key is nodeKey.
func NewPublisher(n *p2p.Node, nodeKey crypto.PrivKey, name string) *Publisher {
	k := AgentKey(name)
	return &Publisher{Node: n, Key: k, Cert: p2p.NewAgentCert(nodeKey, k.Public())}
}

// Next signs the agent's next receipt (timestamped now) without
// publishing it.
func (p *Publisher) Next() (receipt.Signed, error) {
	p.run++
	return Receipt(p.Key, Domain, p.run, time.Now())
}

// Publish signs and publishes the agent's next receipt.
func (p *Publisher) Publish(ctx context.Context) (receipt.Signed, error) {
	s, err := p.Next()
	if err != nil {
		return s, err
	}
	return s, p.Node.Publish(ctx, s, p.Cert)
}

// Member is one node of a Cluster.
type Member struct {
	Node    *p2p.Node
	Key     crypto.PrivKey
	Replica *memreplica.Replica
}

// Options shape a loopback node for tests.
type Options struct {
	Heartbeat    time.Duration // default 100ms: meshes form in a few hundred ms
	DHT          bool          // run the DHT (off by default: topologies are wired by hand)
	SyncInterval time.Duration // default: no periodic sync (tests call SyncAll)
	NoSyncOnConn bool
	Logger       *slog.Logger // default: discard
	Mutate       func(*p2p.Config)
}

// Config returns a loopback, TCP-only configuration for tests with the
// given replica and key (minted at Difficulty, e.g. by NodeKey; nil: the
// node mints an ephemeral one) and the identity puzzle at Difficulty.
func (o Options) Config(key crypto.PrivKey, r p2p.Replica, bootstrap ...string) p2p.Config {
	cfg := p2p.Config{
		PrivKey:              key,
		PoWDifficulty:        Difficulty,
		ListenAddrs:          []string{"/ip4/127.0.0.1/tcp/0"},
		Bootstrap:            bootstrap,
		Domains:              []string{Domain},
		Replica:              r,
		DisableDHT:           !o.DHT,
		DisableSyncOnConnect: o.NoSyncOnConn,
		SyncInterval:         -1,
		HeartbeatInterval:    100 * time.Millisecond,
		ScoreInspectInterval: 100 * time.Millisecond,
		Logger:               o.Logger,
	}
	if o.Heartbeat > 0 {
		cfg.HeartbeatInterval = o.Heartbeat
	}
	if o.SyncInterval > 0 {
		cfg.SyncInterval = o.SyncInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Mutate != nil {
		o.Mutate(&cfg)
	}
	return cfg
}

// NewMember starts a node with a fresh key (NodeKey) and an empty replica.
func NewMember(ctx context.Context, o Options, bootstrap ...string) (*Member, error) {
	key, err := pow.MintKey(ctx, Difficulty)
	if err != nil {
		return nil, err
	}
	r := memreplica.New()
	n, err := p2p.New(ctx, o.Config(key, r, bootstrap...))
	if err != nil {
		return nil, err
	}
	return &Member{Node: n, Key: key, Replica: r}, nil
}

// Cluster is a set of loopback nodes.
type Cluster []*Member

// Close closes every node.
func (c Cluster) Close() error {
	var errs []error
	for _, m := range c {
		errs = append(errs, m.Node.Close())
	}
	return errors.Join(errs...)
}

// NewCluster starts size nodes; node i dials degree distinct random earlier
// nodes (all of them while i <= degree), a random graph with average degree
// about 2·degree. seed makes the topology reproducible.
func NewCluster(ctx context.Context, size, degree int, seed uint64, o Options) (Cluster, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var c Cluster
	for i := range size {
		m, err := NewMember(ctx, o)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		c = append(c, m)
		for _, j := range rng.Perm(i)[:min(i, degree)] {
			if err := m.Node.Connect(ctx, c[j].Node.Addrs()[0].String()); err != nil {
				c.Close()
				return nil, fmt.Errorf("connect %d to %d: %w", i, j, err)
			}
		}
	}
	return c, nil
}

// WaitMesh waits until every node has at least want mesh peers on the
// domain topic (or as many as it has peers, if fewer); see WaitMeshNodes.
func (c Cluster) WaitMesh(ctx context.Context, want int) error {
	nodes := make([]*p2p.Node, len(c))
	for i, m := range c {
		nodes[i] = m.Node
	}
	return WaitMeshNodes(ctx, nodes, want)
}

// MeshSettle is how long WaitMeshNodes lets the count of nodes at their
// mesh target stand still before it accepts stragglers.
const MeshSettle = 5 * time.Second

// WaitMeshNodes waits until every node has at least min(want, peers) mesh
// peers on the domain topic. GossipSub does not promise that of every node
// at every moment: a node whose peers pruned it while their meshes were
// full may sit below its target until the prune backoff (a minute) ends,
// still receiving everything through its other mesh peers and gossip. So
// once every node has at least one mesh peer and the number at target has
// not grown for MeshSettle, it returns nil with those few below target.
func WaitMeshNodes(ctx context.Context, nodes []*p2p.Node, want int) error {
	topic := p2p.TopicForDomain(Domain)
	best, since := -1, time.Now()
	for {
		ready, meshed := 0, 0
		var lagging []string
		for i, n := range nodes {
			st := n.Stats()
			if st.Peers > 0 && st.Mesh[topic] >= 1 {
				meshed++
			}
			if st.Peers > 0 && st.Mesh[topic] >= min(want, st.Peers) {
				ready++
			} else if len(lagging) < 5 {
				lagging = append(lagging, fmt.Sprintf("node %d: %d peers, mesh %d", i, st.Peers, st.Mesh[topic]))
			}
		}
		if ready == len(nodes) {
			return nil
		}
		if ready > best {
			best, since = ready, time.Now()
		} else if meshed == len(nodes) && time.Since(since) >= MeshSettle {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mesh not formed: %d/%d nodes ready (%v): %w", ready, len(nodes), lagging, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PropagationResult is what MeasurePropagationOpts reports.
type PropagationResult struct {
	Nodes, Messages int
	P50, P99, Max   time.Duration
	Ratio           float64 // deliveries / (messages × (nodes−1))
	MeshWait        time.Duration
}

// PropagationOptions tunes MeasurePropagationOpts.
type PropagationOptions struct {
	Degree    int           // dials per new node (default 6)
	Interval  time.Duration // gap between publications (default 100ms)
	Heartbeat time.Duration // GossipSub heartbeat (default 1s, the production value)
	Drain     time.Duration // how long to wait for stragglers after the last publication (default 5s)
	Seed      uint64
}

// MeasurePropagation runs MeasurePropagationOpts with default options.
func MeasurePropagation(ctx context.Context, nodes, messages int) (p50, p99 time.Duration, ratio float64, err error) {
	r, err := MeasurePropagationOpts(ctx, nodes, messages, PropagationOptions{})
	return r.P50, r.P99, r.Ratio, err
}

// All the nodes share this machine's CPUs, so the publication rate must
// stay below what the whole simulated network can validate (every node
// checks three Ed25519 signatures per finding: the message's, the
// receipt's and, the first time it sees it, the agent cert's; the replica
// takes the admitted record without a fourth);
// at 100 nodes on 2 cores that is roughly 20–30 findings per second, and
// beyond it latency measures queueing, not propagation.
//
// MeasurePropagationOpts starts nodes loopback nodes (TCP, no DHT: the
// topology is a random graph wired by hand; no sync, so only gossip
// counts), waits for every mesh to form (each node has min(3, peers) mesh
// peers, then two more heartbeats), publishes messages findings from random
// nodes Interval apart, and measures, for every other node, the time from
// the Publish call to the node's delivery of the finding to subscribers
// (validated and in its replica). Ratio counts deliveries within Drain of
// the last publication.
func MeasurePropagationOpts(ctx context.Context, nodes, messages int, o PropagationOptions) (PropagationResult, error) {
	res := PropagationResult{Nodes: nodes, Messages: messages}
	if nodes < 2 || messages < 1 {
		return res, errors.New("p2ptest: need at least 2 nodes and 1 message")
	}
	if o.Degree <= 0 {
		o.Degree = 6
	}
	if o.Interval <= 0 {
		o.Interval = 100 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 5 * time.Second
	}
	c, err := NewCluster(ctx, nodes, o.Degree, o.Seed, Options{Heartbeat: o.Heartbeat, NoSyncOnConn: true,
		// Production score sampling: the tests' 100ms would cost the
		// simulated network several percent of the machine.
		Mutate: func(c *p2p.Config) { c.ScoreInspectInterval = p2p.DefaultScoreInspect }})
	if err != nil {
		return res, err
	}
	defer c.Close()

	start := time.Now()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = c.WaitMesh(mctx, 3)
	cancel()
	if err != nil {
		return res, err
	}
	time.Sleep(2 * o.Heartbeat)
	res.MeshWait = time.Since(start)

	// Sign everything up front so signing is not measured.
	rng := rand.New(rand.NewPCG(o.Seed, 2))
	pubs := make([]*Publisher, nodes)
	for i, m := range c {
		pubs[i] = NewPublisher(m.Node, m.Key, fmt.Sprintf("bench-%d", i))
	}
	type job struct {
		from int
		s    receipt.Signed
	}
	jobs := make([]job, messages)
	for i := range jobs {
		from := rng.IntN(nodes)
		s, err := pubs[from].Next()
		if err != nil {
			return res, err
		}
		jobs[i] = job{from, s}
	}

	var (
		mu        sync.Mutex
		published = map[string]time.Time{}
		latencies []time.Duration
		delivered int
		done      = make(chan struct{})
		want      = messages * (nodes - 1)
		wg        sync.WaitGroup
	)
	record := func(f p2p.Finding) {
		mu.Lock()
		defer mu.Unlock()
		t0, ok := published[f.Receipt.ID]
		if !ok {
			return
		}
		latencies = append(latencies, f.ReceivedAt.Sub(t0))
		delivered++
		if delivered == want {
			close(done)
		}
	}
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	for _, m := range c {
		ch, stop := m.Node.Subscribe()
		stops = append(stops, stop)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range ch {
				if !f.Local {
					record(f)
				}
			}
		}()
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for _, j := range jobs {
		mu.Lock()
		published[j.s.ID] = time.Now()
		mu.Unlock()
		if err := c[j.from].Node.Publish(ctx, j.s, pubs[j.from].Cert); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	select {
	case <-done:
	case <-time.After(o.Drain):
	case <-ctx.Done():
		return res, ctx.Err()
	}

	mu.Lock()
	defer mu.Unlock()
	res.Ratio = float64(delivered) / float64(want)
	res.P50, res.P99, res.Max = Quantiles(latencies)
	return res, nil
}

// Quantiles sorts d and returns its p50, p99 (nearest rank) and maximum;
// all zero for an empty d.
func Quantiles(d []time.Duration) (p50, p99, maxD time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	return percentile(d, 0.50), percentile(d, 0.99), d[len(d)-1]
}

// percentile returns the q-quantile (nearest rank) of sorted d.
func percentile(d []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// RawPeer is an attacker: a plain libp2p host speaking GossipSub on one
// topic with no validation of its own, so it can publish anything.
type RawPeer struct {
	Key   crypto.PrivKey
	host  host.Host
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	stop  context.CancelFunc
}

// NewRawPeer connects a raw peer to target on topic and waits until the
// target is subscribed to it there. Its key is minted at the target's
// difficulty (Node.PoWDifficulty), so the target's connection gater lets
// it in.
func NewRawPeer(ctx context.Context, target *p2p.Node, topic string) (*RawPeer, error) {
	key, err := pow.MintKey(ctx, target.PoWDifficulty())
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		return nil, err
	}
	pctx, stop := context.WithCancel(context.Background())
	r := &RawPeer{Key: key, host: h, stop: stop}
	ps, err := pubsub.NewGossipSub(pctx, h,
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerOutboundQueueSize(8192),
		pubsub.WithMaxMessageSize(4<<20))
	if err == nil {
		r.topic, err = ps.Join(topic)
	}
	if err == nil {
		r.sub, err = r.topic.Subscribe()
	}
	if err == nil {
		err = h.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Host().Addrs()})
	}
	for err == nil && !slices.Contains(r.topic.ListPeers(), target.ID()) {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("p2ptest: target never subscribed to %s: %w", topic, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// ID is the raw peer's peer id.
func (r *RawPeer) ID() peer.ID { return r.host.ID() }

// Publish sends data on the topic, unchecked.
func (r *RawPeer) Publish(ctx context.Context, data []byte) error { return r.topic.Publish(ctx, data) }

// Close disconnects the raw peer.
func (r *RawPeer) Close() {
	if r.sub != nil {
		r.sub.Cancel()
	}
	r.stop()
	r.host.Close()
}

// Vouched returns s carrying the vouch of the node owning nodeKey (as a
// replica holds what it accepted), so that sync forwards it admissibly.
func Vouched(s receipt.Signed, nodeKey crypto.PrivKey) receipt.Signed {
	pub, err := base64.StdEncoding.DecodeString(s.Receipt.PublicKey)
	if err != nil {
		panic(err)
	}
	s.Vouch = p2p.NewAgentCert(nodeKey, pub).Vouch()
	return s
}

// RawSync runs one leaderboard sync exchange with target from the raw
// peer, speaking p2p.SyncProtocol's framing directly: it sends request,
// reads the response, sends push (anything: records the target lacks,
// tampered ones, garbage) and returns the target's ack (records it added).
func (r *RawPeer) RawSync(ctx context.Context, target *p2p.Node, request, push []byte) (int, error) {
	if err := r.host.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Host().Addrs()}); err != nil {
		return 0, err
	}
	s, err := r.host.NewStream(ctx, target.ID(), p2p.SyncProtocol)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	br := bufio.NewReader(s)
	write := func(b []byte) error {
		if _, err := s.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
			return err
		}
		_, err := s.Write(b)
		return err
	}
	read := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("p2ptest: frame of %d bytes", n)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return b, err
	}
	if err := write(request); err != nil {
		return 0, err
	}
	if _, err := read(); err != nil {
		return 0, fmt.Errorf("p2ptest: sync response: %w", err)
	}
	if err := write(push); err != nil {
		return 0, err
	}
	ack, err := read()
	if err != nil {
		return 0, fmt.Errorf("p2ptest: sync ack: %w", err)
	}
	added, k := binary.Uvarint(ack)
	if k <= 0 {
		return 0, errors.New("p2ptest: malformed ack")
	}
	return int(added), nil
}

// RawFrame opens a sync stream to target and writes header and body
// as given (a frame announcing more than it carries, say), then reads
// until the target closes or resets the stream; it reports how long that
// took.
func (r *RawPeer) RawFrame(ctx context.Context, target *p2p.Node, header, body []byte) (time.Duration, error) {
	if err := r.host.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Host().Addrs()}); err != nil {
		return 0, err
	}
	s, err := r.host.NewStream(ctx, target.ID(), p2p.SyncProtocol)
	if err != nil {
		return 0, err
	}
	defer s.Reset()
	start := time.Now()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if _, err := s.Write(append(append([]byte(nil), header...), body...)); err != nil {
		return time.Since(start), nil // reset already
	}
	_, _ = io.Copy(io.Discard, s)
	return time.Since(start), nil
}
