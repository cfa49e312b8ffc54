package p2ptest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/memreplica"
)

// ChurnOptions shape MeasureChurn.
type ChurnOptions struct {
	Nodes    int           // default 100
	Degree   int           // dials per new node (default 6)
	Kill     int           // nodes killed and restarted, each once (default Nodes/5); 0 with NoChurn
	NoChurn  bool          // the baseline: same nodes, same publications, nobody killed
	Waves    int           // the kills come in this many waves (default 4)
	Down     time.Duration // how long a killed node stays down (default 2s)
	Messages int           // findings published (default 200)
	Interval time.Duration // gap between publications (default 100ms)
	// Heartbeat is the GossipSub heartbeat (default 1s, production).
	Heartbeat time.Duration
	// SyncInterval is the anti-entropy period (default
	// p2p.DefaultSyncInterval, production); sync on connect is on.
	SyncInterval time.Duration
	// Drain bounds the wait, after the last publication, for every
	// replica to hold every finding (default 60s).
	Drain time.Duration
	// NewIdentity restarts a killed node with a fresh key (a new peer id)
	// on a new port, knowing only its bootstrap peers; by default it comes
	// back with the same key on the same address, as a process restarted
	// from its key file and config would, so its peers' redialers find it.
	NewIdentity bool
	Seed        uint64
}

// ChurnResult is what MeasureChurn reports.
type ChurnResult struct {
	Nodes, Messages, Killed int
	// Delivery is the share of (finding, node) pairs, over every node live
	// at the end (all of them: killed nodes are restarted), whose finding
	// the node's replica holds once Drain is over, by gossip or by sync.
	Delivery float64
	// Converged is the time from the last publication until every replica
	// held every finding (Drain if they never did).
	Converged time.Duration
	// StableGossip is the share of (finding, other node) pairs that gossip
	// brought to the nodes never killed (p2p.Stats Delivered, Duplicates
	// and Rejected[ReasonDuplicate]: a gossip copy of a record sync had
	// brought first counts too, it shows the mesh carried it); StableFirst the share gossip
	// brought first. P50 and P99 are the latencies of those first
	// deliveries (Publish call to the node's delivery to subscribers).
	StableGossip, StableFirst float64
	// StableMin is the smallest share gossip brought to one stable node
	// (0: a node the mesh no longer reached).
	StableMin float64
	P50, P99  time.Duration
	// RestartedFirst is StableFirst for the restarted nodes, over the
	// findings published after their restart. (The stats-based share is
	// not reported for them: gossip also brings findings published just
	// before the restart, through IHAVE/IWANT, which the counters cannot
	// tell apart.) In the baseline the victims are not killed, and this is
	// over everything they did not publish.
	RestartedFirst float64
	// MeshRecovery is, per kill or restart wave, the time until every live
	// node had at least min(3, peers) mesh peers on the domain topic again
	// (restarted nodes included); the max over waves, and how many waves
	// recovered before the next one began.
	MeshRecovery        time.Duration
	MeshRecovered, Wave int
	// Redialed sums p2p.Stats.Redialed over the nodes live at the end.
	Redialed uint64
}

// churnNode is one slot of the churning cluster: its current incarnation.
type churnNode struct {
	mu        sync.Mutex
	m         *Member
	listen    string // its TCP listen address, kept across restarts
	bootstrap []string
	pub       *Publisher
	up        bool
	upSince   time.Time
	killed    bool // restarted at least once
	stop      func()
}

// MeasureChurn starts a loopback cluster (NewCluster's random graph, sync
// on connect and every SyncInterval, the production heartbeat), publishes
// Messages findings from random live nodes Interval apart, and meanwhile
// kills Kill distinct nodes in Waves waves (Node.Close: its connections
// close, as when a process dies) and restarts each Down later with an empty
// replica (new process state). It reports delivery to every node live at
// the end, gossip delivery to the stable nodes, and how fast meshes recover.
// It returns an error if a node fails to start or to close within 10s, if
// the mesh does not form, or ctx ends.
func MeasureChurn(ctx context.Context, o ChurnOptions) (ChurnResult, error) {
	if o.Nodes <= 0 {
		o.Nodes = 100
	}
	if o.Degree <= 0 {
		o.Degree = 6
	}
	if o.Kill <= 0 {
		o.Kill = o.Nodes / 5
	}
	if o.Waves <= 0 {
		o.Waves = 4
	}
	if o.Down <= 0 {
		o.Down = 2 * time.Second
	}
	if o.Messages <= 0 {
		o.Messages = 200
	}
	if o.Interval <= 0 {
		o.Interval = 100 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = p2p.DefaultHeartbeat
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = p2p.DefaultSyncInterval
	}
	if o.Drain <= 0 {
		o.Drain = time.Minute
	}
	res := ChurnResult{Nodes: o.Nodes, Messages: o.Messages, Killed: o.Kill}
	if o.Kill > o.Nodes-1 {
		return res, errors.New("p2ptest: churn: kill fewer nodes than there are")
	}
	// Who dies: Kill distinct nodes. The baseline picks the same ones and
	// spares them, so that "stable nodes" are the same set in both runs.
	victims := rand.New(rand.NewPCG(o.Seed, 4)).Perm(o.Nodes)[:o.Kill]
	victim := make([]bool, o.Nodes)
	for _, v := range victims {
		victim[v] = true
	}
	if o.NoChurn {
		res.Killed = 0
	}
	opts := Options{Heartbeat: o.Heartbeat, SyncInterval: o.SyncInterval,
		Mutate: func(c *p2p.Config) { c.ScoreInspectInterval = p2p.DefaultScoreInspect }}
	// The cluster, as NewCluster wires it, remembering whom each node
	// dialled: that is its bootstrap list when it restarts.
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	var (
		mu        sync.Mutex
		published = map[string]time.Time{}
		from      = map[string]int{}                 // publishing slot
		order     []string                           // ids in publication order
		got       = make([]map[string]bool, o.Nodes) // by gossip, per slot
		lat       []time.Duration                    // gossip latencies at stable nodes
		wg        sync.WaitGroup
	)
	nodes := make([]*churnNode, o.Nodes)
	defer func() {
		for _, cn := range nodes {
			if cn != nil {
				cn.mu.Lock()
				if cn.up {
					cn.stop()
					cn.m.Node.Close()
				}
				cn.mu.Unlock()
			}
		}
		wg.Wait() // the subscribers end when their nodes close
	}()
	for i := range got {
		got[i] = map[string]bool{}
	}
	// listen subscribes to slot i's current incarnation.
	listen := func(i int, n *p2p.Node) func() {
		ch, stop := n.Subscribe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range ch {
				if f.Local {
					continue
				}
				mu.Lock()
				if t0, ok := published[f.Receipt.ID]; ok && !got[i][f.Receipt.ID] {
					got[i][f.Receipt.ID] = true
					if !victim[i] {
						lat = append(lat, f.ReceivedAt.Sub(t0))
					}
				}
				mu.Unlock()
			}
		}()
		return stop
	}
	for i := range o.Nodes {
		m, err := NewMember(ctx, opts)
		if err != nil {
			return res, fmt.Errorf("p2ptest: churn: node %d: %w", i, err)
		}
		cn := &churnNode{m: m, listen: m.Node.Host().Addrs()[0].String(), up: true, upSince: time.Now(),
			pub: NewPublisher(m.Node, m.Key, fmt.Sprintf("churn-%d", i))}
		nodes[i] = cn
		cn.stop = listen(i, m.Node)
		for _, j := range rng.Perm(i)[:min(i, o.Degree)] {
			addr := nodes[j].m.Node.Addrs()[0].String()
			cn.bootstrap = append(cn.bootstrap, addr)
			if err := m.Node.Connect(ctx, addr); err != nil {
				return res, fmt.Errorf("p2ptest: churn: connect %d to %d: %w", i, j, err)
			}
		}
		if i == 0 {
			cn.bootstrap = nil // dialled by everyone; restarted, it waits for redials
		}
	}
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	var c Cluster
	for _, cn := range nodes {
		c = append(c, cn.m)
	}
	err := c.WaitMesh(mctx, 3)
	cancel()
	if err != nil {
		return res, err
	}
	time.Sleep(2 * o.Heartbeat)

	// When: the waves are evenly spread over the first 80% of the
	// publication span, so that every node is back before it ends.
	span := time.Duration(o.Messages) * o.Interval
	type event struct {
		at      time.Duration
		kill    bool
		victims []int
	}
	var events []event
	for w := range o.Waves * btoi(!o.NoChurn) {
		vs := victims[w*o.Kill/o.Waves : (w+1)*o.Kill/o.Waves]
		if len(vs) == 0 {
			continue
		}
		at := span * time.Duration(2*w+1) / time.Duration(2*o.Waves) * 8 / 10
		events = append(events, event{at, true, vs}, event{at + o.Down, false, vs})
	}
	res.Wave = len(events)

	// The mesh monitor: after each event, how long until every live node
	// has min(3, peers) mesh peers again.
	topic := p2p.TopicForDomain(Domain)
	evStart := make(chan time.Time, len(events))
	monDone := make(chan struct{})
	var recoveries []time.Duration
	var monWG sync.WaitGroup
	monWG.Add(1)
	go func() {
		defer monWG.Done()
		var pending []time.Time
		for {
			select {
			case t := <-evStart:
				pending = append(pending, t)
				continue
			case <-monDone:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if len(pending) == 0 {
				continue
			}
			ok := true
			for _, cn := range nodes {
				cn.mu.Lock()
				if cn.up {
					st := cn.m.Node.Stats()
					if st.Peers == 0 || st.Mesh[topic] < min(3, st.Peers) {
						ok = false
					}
				}
				cn.mu.Unlock()
				if !ok {
					break
				}
			}
			if ok {
				now := time.Now()
				for _, t := range pending {
					mu.Lock()
					recoveries = append(recoveries, now.Sub(t))
					mu.Unlock()
				}
				pending = nil
			}
		}
	}()
	stopMonitor := func() { close(monDone); monWG.Wait() }

	kill := func(i int) error {
		cn := nodes[i]
		cn.mu.Lock()
		cn.up = false
		m := cn.m
		cn.mu.Unlock()
		cn.stop()
		done := make(chan error, 1)
		go func() { done <- m.Node.Close() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return fmt.Errorf("p2ptest: churn: node %d did not close within 10s", i)
		}
	}
	restart := func(i int) error {
		cn := nodes[i]
		key, listenAddr := cn.m.Key, cn.listen
		if o.NewIdentity {
			var err error
			if key, err = pow.MintKey(ctx, Difficulty); err != nil {
				return err
			}
			listenAddr = "/ip4/127.0.0.1/tcp/0"
		}
		m, err := startMember(ctx, opts, key, listenAddr, cn.bootstrap)
		if err != nil {
			return fmt.Errorf("p2ptest: churn: restart node %d: %w", i, err)
		}
		cn.mu.Lock()
		run := cn.pub.run
		// The same agent, vouched for by the node's (maybe new) key, its
		// run numbers continuing.
		cn.pub = NewPublisher(m.Node, m.Key, fmt.Sprintf("churn-%d", i))
		cn.pub.run = run
		cn.m, cn.up, cn.upSince, cn.killed = m, true, time.Now(), true
		cn.mu.Unlock()
		cn.stop = listen(i, m.Node)
		return nil
	}

	// Publish, with the churn events interleaved.
	start := time.Now()
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	// fire runs event ev (every victim, the first error returned).
	fire := func(ev int) error {
		e := events[ev]
		evStart <- time.Now()
		var first error
		for _, i := range e.victims {
			var err error
			if e.kill {
				err = kill(i)
			} else {
				err = restart(i)
			}
			if err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	ev := 0
	for k := range o.Messages {
		for ev < len(events) && time.Since(start) >= events[ev].at {
			ev++
			if err := fire(ev - 1); err != nil {
				stopMonitor()
				return res, err
			}
		}
		// A random live node publishes.
		var cn *churnNode
		slot := -1
		for cn == nil {
			slot = rng.IntN(o.Nodes)
			c := nodes[slot]
			c.mu.Lock()
			if c.up {
				cn = c
			} else {
				c.mu.Unlock()
			}
		}
		s, err := cn.pub.Next()
		if err == nil {
			mu.Lock()
			published[s.ID] = time.Now()
			from[s.ID] = slot
			order = append(order, s.ID)
			mu.Unlock()
			err = cn.m.Node.Publish(ctx, s, cn.pub.Cert)
		}
		cn.mu.Unlock()
		if err != nil {
			stopMonitor()
			return res, fmt.Errorf("p2ptest: churn: publish %d: %w", k, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			stopMonitor()
			return res, ctx.Err()
		}
	}
	for ; ev < len(events); ev++ { // a very short run: the rest now
		if err := fire(ev); err != nil {
			stopMonitor()
			return res, err
		}
	}
	end := time.Now()

	// Drain: until every replica holds every finding.
	holds := func() int {
		k := 0
		for _, cn := range nodes {
			cn.mu.Lock()
			for _, id := range order {
				if cn.m.Replica.Has(id) {
					k++
				}
			}
			cn.mu.Unlock()
		}
		return k
	}
	want := len(order) * o.Nodes
	held := holds()
	for held < want && time.Since(end) < o.Drain {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			stopMonitor()
			return res, ctx.Err()
		}
		held = holds()
	}
	res.Converged = time.Since(end)
	res.Delivery = float64(held) / float64(want)
	// Give the mesh monitor a last chance to see the final wave recover.
	for range 100 {
		mu.Lock()
		n := len(recoveries)
		mu.Unlock()
		if n == len(events) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopMonitor()

	mu.Lock()
	defer mu.Unlock()
	res.MeshRecovered = len(recoveries)
	for _, r := range recoveries {
		res.MeshRecovery = max(res.MeshRecovery, r)
	}
	if res.MeshRecovered < len(events) {
		res.MeshRecovery = -1
	}
	var stableWant, stableGot, stableFirst, restWant, restFirst int
	res.StableMin = 1
	for i, cn := range nodes {
		nodeWant := 0
		cn.mu.Lock()
		st := cn.m.Node.Stats()
		reached := int(st.Delivered + st.Duplicates + st.Rejected[p2p.ReasonDuplicate])
		if !victim[i] {
			stableGot += reached
		}
		for _, id := range order {
			t0 := published[id]
			switch {
			case from[id] == i && t0.After(cn.upSince):
				// its own: not received by gossip
			case !victim[i]:
				stableWant++
				nodeWant++
				if got[i][id] {
					stableFirst++
				}
			case t0.After(cn.upSince):
				restWant++
				if got[i][id] {
					restFirst++
				}
			}
		}
		if !victim[i] && nodeWant > 0 {
			res.StableMin = min(res.StableMin, float64(reached)/float64(nodeWant))
		}
		res.Redialed += st.Redialed
		cn.mu.Unlock()
	}
	if stableWant > 0 {
		res.StableGossip = float64(stableGot) / float64(stableWant)
		res.StableFirst = float64(stableFirst) / float64(stableWant)
	}
	if restWant > 0 {
		res.RestartedFirst = float64(restFirst) / float64(restWant)
	}
	res.P50, res.P99, _ = Quantiles(lat)
	return res, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// startMember starts a node with key on listen (a TCP multiaddr),
// bootstrapping from bootstrap, with an empty replica.
func startMember(ctx context.Context, o Options, key crypto.PrivKey, listen string, bootstrap []string) (*Member, error) {
	r := memreplica.New()
	cfg := o.Config(key, r, bootstrap...)
	cfg.ListenAddrs = []string{listen}
	n, err := p2p.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Member{Node: n, Key: key, Replica: r}, nil
}
