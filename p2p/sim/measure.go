package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// PropagationResult is what Propagation reports.
type PropagationResult struct {
	Nodes, Messages int
	P50, P99, Max   time.Duration
	// Delivery is the share of (finding, other node) pairs whose finding is
	// in the node's replica within Drain of the last publication, by
	// gossip or sync. GossipDelivery is the share gossip brought (p2p.Stats
	// Delivered, Duplicates and Rejected[ReasonDuplicate]: a gossip copy of
	// a record that sync had brought first counts too, although the node
	// then does not forward it); GossipFirst the share gossip brought
	// first. Latencies are of the first deliveries by gossip.
	Delivery, GossipDelivery, GossipFirst float64
	// MinNodeGossip is the smallest share of the findings gossip brought
	// to one node (0: a node the mesh did not reach at all).
	MinNodeGossip float64
}

// PropagationOptions tune Propagation.
type PropagationOptions struct {
	Messages int           // findings to publish (default 20)
	Interval time.Duration // gap between publications (default 1s)
	Drain    time.Duration // wait for stragglers after the last one (default 10s)
	Seed     uint64
}

// Propagation publishes findings from random nodes Interval apart and
// measures, at every other node, the time from the Publish call to the
// node's delivery of the finding to subscribers (validated and in its
// replica), as p2ptest.MeasurePropagationOpts does on loopback.
func (net *Network) Propagation(ctx context.Context, o PropagationOptions) (PropagationResult, error) {
	if o.Messages <= 0 {
		o.Messages = 20
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	nodes := len(net.Nodes)
	res := PropagationResult{Nodes: nodes, Messages: o.Messages}
	rng := rand.New(rand.NewPCG(o.Seed, 2))
	type job struct {
		from int
		pub  *p2ptest.Publisher
		s    receipt.Signed
	}
	jobs := make([]job, o.Messages)
	pubs := map[int]*p2ptest.Publisher{}
	for i := range jobs {
		from := rng.IntN(nodes)
		if pubs[from] == nil {
			pubs[from] = p2ptest.NewPublisher(net.Nodes[from].Node, net.Nodes[from].Key, fmt.Sprintf("sim-%d-%d", o.Seed, from))
		}
		s, err := pubs[from].Next()
		if err != nil {
			return res, err
		}
		jobs[i] = job{from, pubs[from], s}
	}
	var (
		mu        sync.Mutex
		published = map[string]time.Time{}
		latencies []time.Duration
		done      = make(chan struct{})
		want      = o.Messages * (nodes - 1)
		wg        sync.WaitGroup
		stops     []func()
	)
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	for _, n := range net.Nodes {
		ch, stop := n.Subscribe()
		stops = append(stops, stop)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range ch {
				if f.Local {
					continue
				}
				mu.Lock()
				if t0, ok := published[f.Receipt.ID]; ok {
					latencies = append(latencies, f.ReceivedAt.Sub(t0))
					if len(latencies) == want {
						close(done)
					}
				}
				mu.Unlock()
			}
		}()
	}
	perNode := func() []uint64 {
		k := make([]uint64, nodes)
		for i, n := range net.Nodes {
			st := n.Stats()
			k[i] = st.Delivered + st.Duplicates + st.Rejected[p2p.ReasonDuplicate]
		}
		return k
	}
	base := perNode()
	gossiped := func() (k uint64) {
		for i, v := range perNode() {
			k += v - base[i]
		}
		return k
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for _, j := range jobs {
		mu.Lock()
		published[j.s.ID] = time.Now()
		mu.Unlock()
		if err := net.Nodes[j.from].Publish(ctx, j.s, j.pub.Cert); err != nil {
			return res, fmt.Errorf("sim: publish: %w", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	deadline := time.After(o.Drain)
wait:
	for {
		select {
		case <-done:
			break wait
		case <-deadline:
			break wait
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(200 * time.Millisecond):
			// Done when gossip has brought every finding everywhere
			// (first or after sync).
			if gossiped() >= uint64(want) {
				break wait
			}
		}
	}
	held := net.holdAll(ids(jobs, func(j job) string { return j.s.ID }))
	mu.Lock()
	defer mu.Unlock()
	res.GossipFirst = float64(len(latencies)) / float64(want)
	res.GossipDelivery = float64(gossiped()) / float64(want)
	own := make([]int, nodes)
	for _, j := range jobs {
		own[j.from]++
	}
	res.MinNodeGossip = 1
	for i, v := range perNode() {
		if w := o.Messages - own[i]; w > 0 {
			res.MinNodeGossip = min(res.MinNodeGossip, float64(v-base[i])/float64(w))
		}
	}
	res.Delivery = float64(held) / float64(want)
	res.P50, res.P99, res.Max = p2ptest.Quantiles(latencies)
	return res, nil
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

// holdAll counts (id, node) pairs held, less each id's publisher (one
// holder per id is the publisher).
func (net *Network) holdAll(ids []string) int {
	k := 0
	for _, id := range ids {
		for _, n := range net.Nodes {
			if n.Replica.Has(id) {
				k++
			}
		}
		k--
	}
	return k
}

// ConvergenceResult is what PartitionConvergence reports.
type ConvergenceResult struct {
	Cut       int           // edges cut
	PerSide   int           // findings published on each side
	Reconnect time.Duration // heal to every cut edge connected again
	Converge  time.Duration // heal to every replica identical
	Records   int           // records every replica holds at the end
	// Split is the number of distinct replica states just before the
	// heal (at least 2 if the partition held).
	Split int
}

// PartitionConvergence splits the network in two (even and odd indices,
// so both halves stay connected with high probability in a random graph),
// publishes perSide findings on each side spaced by interval, waits settle
// for gossip inside each side, heals, and measures the time until every
// replica is identical (gossip does not replay old messages, so the records
// cross by sync: on connect and every SyncInterval). The network must run
// sync (Options.SyncOnConnect or SyncInterval).
func (net *Network) PartitionConvergence(ctx context.Context, perSide int, interval, settle time.Duration) (ConvergenceResult, error) {
	var res ConvergenceResult
	side := func(i int) bool { return i%2 == 0 }
	cut, err := net.Partition(side)
	if err != nil {
		return res, err
	}
	res.Cut, res.PerSide = cut, perSide
	// Publishers: a few nodes on each side.
	var pubs []*p2ptest.Publisher
	for i := range min(len(net.Nodes), 8) {
		n := net.Nodes[i]
		pubs = append(pubs, p2ptest.NewPublisher(n.Node, n.Key, fmt.Sprintf("partition-%d", i)))
	}
	for k := range perSide {
		for s := range 2 {
			// pubs[i] sits on side i%2: alternate the sides.
			p := pubs[(2*k+s)%len(pubs)]
			if _, err := p.Publish(ctx); err != nil {
				return res, fmt.Errorf("sim: publish: %w", err)
			}
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	_, res.Split = net.Converged()
	start := time.Now()
	if err := net.Heal(); err != nil {
		return res, err
	}
	reconnected := false
	for {
		if !reconnected && net.cutConnected() {
			reconnected = true
			res.Reconnect = time.Since(start)
		}
		if ok, _ := net.Converged(); ok && reconnected {
			res.Converge = time.Since(start)
			res.Records = net.Nodes[0].Replica.Len(p2ptest.Domain)
			return res, nil
		}
		select {
		case <-ctx.Done():
			_, k := net.Converged()
			return res, fmt.Errorf("sim: not converged after %v (%d distinct replica states, reconnected %v): %w", time.Since(start).Round(time.Millisecond), k, reconnected, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cutConnected reports whether every edge Partition cut (and Heal
// relinked) is connected again.
func (net *Network) cutConnected() bool {
	for _, e := range net.healed {
		if net.Nodes[e[0]].Host().Network().Connectedness(net.Nodes[e[1]].ID()) != network.Connected {
			return false
		}
	}
	return true
}
