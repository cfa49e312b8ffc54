package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	dialTimeout      = 10 * time.Second
	findPeersTimeout = 10 * time.Second
	dialConcurrency  = 8
)

// dialBootstrap dials every bootstrap peer concurrently, bounded by ctx.
// Failures are logged: the peer keeper retries them.
func (n *Node) dialBootstrap(ctx context.Context) {
	n.dialAll(ctx, n.bootstrap)
}

// dialAll connects to peers that are not connected yet, a few at a time.
func (n *Node) dialAll(ctx context.Context, peers []peer.AddrInfo) int {
	sem := make(chan struct{}, dialConcurrency)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for _, ai := range peers {
		if ai.ID == n.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ok
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			if err := n.host.Connect(dctx, ai); err != nil {
				n.log.Debug("dial failed", "peer", ai.ID, "err", err)
				return
			}
			mu.Lock()
			ok++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return ok
}

// keepPeers is the peer keeper: every DiscoveryInterval it re-advertises
// the node under the rendezvous namespace in the DHT, and while the node
// has fewer than MinPeers peers it dials bootstrap peers, DHT routing-table
// peers and rendezvous providers. It also dials peers found by mDNS, and
// redials lost peers with backoff (redial.go).
func (n *Node) keepPeers() {
	t := time.NewTicker(n.cfg.DiscoveryInterval)
	defer t.Stop()
	rt := time.NewTicker(redialTick)
	defer rt.Stop()
	var advertisedUntil time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-rt.C:
			n.redialDue()
		case ai := <-n.found:
			n.dialAll(n.ctx, []peer.AddrInfo{ai})
		case <-t.C:
			now := n.cfg.Now()
			n.limiter.gc(now)
			if n.disc != nil && now.After(advertisedUntil) {
				ctx, cancel := context.WithTimeout(n.ctx, findPeersTimeout)
				ttl, err := n.disc.Advertise(ctx, n.cfg.Rendezvous)
				cancel()
				if err != nil {
					n.log.Debug("rendezvous advertise failed", "err", err)
				} else {
					advertisedUntil = now.Add(ttl / 2)
				}
			}
			n.findPeers()
		}
	}
}

func (n *Node) findPeers() {
	need := n.cfg.MinPeers - len(n.host.Network().Peers())
	if need <= 0 {
		return
	}
	got := n.dialAll(n.ctx, n.bootstrap)
	if n.dht == nil || got >= need {
		return
	}
	var cands []peer.AddrInfo
	for _, p := range n.dht.RoutingTable().ListPeers() {
		if n.host.Network().Connectedness(p) != network.Connected {
			cands = append(cands, n.host.Peerstore().PeerInfo(p))
		}
	}
	ctx, cancel := context.WithTimeout(n.ctx, findPeersTimeout)
	defer cancel()
	if ch, err := n.disc.FindPeers(ctx, n.cfg.Rendezvous); err == nil {
		for ai := range ch {
			if ai.ID != n.ID() && len(ai.Addrs) > 0 {
				cands = append(cands, ai)
			}
			if len(cands) >= 4*need {
				break
			}
		}
	}
	if len(cands) > 2*need {
		cands = cands[:2*need]
	}
	n.dialAll(n.ctx, cands)
}
