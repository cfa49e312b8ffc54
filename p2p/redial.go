package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// Redialling lost peers. A partition (or a flaky link) closes connections
// once yamux keepalives time out; the peer keeper only dials every
// DiscoveryInterval and only below MinPeers, so without this a healed link
// stays unused for up to that long. A peer whose last connection closed is
// redialled with exponential backoff: from redialBase, doubling up to
// redialMax for redialFastFor, then every redialSlow until redialGiveUp.
// A peer this node disconnected on purpose (a failed identity puzzle) is
// not redialled, nor is any while the node holds ConnLow or more peers
// (the connection manager trims above ConnHigh; redialling would fight it).
const (
	redialBase    = 250 * time.Millisecond
	redialMax     = time.Second
	redialFastFor = 5 * time.Minute
	redialSlow    = 30 * time.Second
	redialGiveUp  = 30 * time.Minute
	redialTimeout = 2 * time.Second
	// tcpConnectTimeout bounds one TCP connect (libp2p's default is 5s).
	// A connect started while the link is down sends its SYN into the void
	// and retransmits it after 1s and 3s (Linux's initial RTO, doubling);
	// the swarm joins every later dial to the same address to that attempt,
	// so with 5s a link that comes back just after the 3s retransmission
	// stays unused until the attempt times out and the next one starts (the
	// 120s partition healed in 6.7-7.6s instead of 2-2.4s). At 3s the
	// attempt ends when its next SYN would have gone, and the redialer's
	// next dial (at most redialMax later) sends a fresh one. Three seconds
	// still allow one lost SYN on a long link (RTT + the 1s retransmit).
	tcpConnectTimeout = 3 * time.Second
	// maxLostPeers bounds the set of peers being redialled.
	maxLostPeers = 64
	redialTick   = 100 * time.Millisecond
)

type lostPeer struct {
	since, next time.Time
	wait        time.Duration
	dialing     bool
	// addrs are the peer's addresses when it was lost: the peerstore
	// forgets addresses of peers it is not connected to after a while
	// (2 minutes for some), and the redialer outlives that.
	addrs []ma.Multiaddr
}

type redialer struct {
	mu     sync.Mutex
	lost   map[peer.ID]*lostPeer
	banned map[peer.ID]time.Time // disconnected on purpose: not before
}

// peerLost records that p's last connection closed.
func (n *Node) peerLost(p peer.ID) {
	if n.ctx.Err() != nil || p == n.ID() || n.host.Network().Connectedness(p) == network.Connected {
		return
	}
	addrs := n.host.Peerstore().Addrs(p)
	if len(addrs) == 0 {
		return // nowhere to dial
	}
	now := n.cfg.Now()
	r := &n.redial
	r.mu.Lock()
	defer r.mu.Unlock()
	if until, ok := r.banned[p]; ok && now.Before(until) {
		return
	}
	if r.lost == nil {
		r.lost = map[peer.ID]*lostPeer{}
	}
	if _, ok := r.lost[p]; ok || len(r.lost) >= maxLostPeers {
		return
	}
	r.lost[p] = &lostPeer{since: now, next: now.Add(redialBase), wait: redialBase, addrs: addrs}
}

// peerBack forgets p as lost (it is connected again).
func (n *Node) peerBack(p peer.ID) {
	r := &n.redial
	r.mu.Lock()
	delete(r.lost, p)
	r.mu.Unlock()
}

// noRedial keeps p from being redialled for redialGiveUp (this node
// disconnected it on purpose).
func (n *Node) noRedial(p peer.ID) {
	r := &n.redial
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.lost, p)
	if r.banned == nil || len(r.banned) >= 4*maxLostPeers {
		r.banned = map[peer.ID]time.Time{}
	}
	r.banned[p] = n.cfg.Now().Add(redialGiveUp)
}

// redialDue dials the lost peers whose time has come, each in its own
// goroutine, bounded by redialTimeout.
func (n *Node) redialDue() {
	if len(n.host.Network().Peers()) >= n.cfg.ConnLow {
		return
	}
	now := n.cfg.Now()
	r := &n.redial
	var due []peer.AddrInfo
	r.mu.Lock()
	for p, l := range r.lost {
		switch {
		case now.Sub(l.since) > redialGiveUp:
			delete(r.lost, p)
		case !l.dialing && !now.Before(l.next):
			l.dialing = true
			due = append(due, peer.AddrInfo{ID: p, Addrs: l.addrs})
		}
	}
	r.mu.Unlock()
	for _, ai := range due {
		p := ai.ID
		n.goOwned("redial", func() {
			if sw, ok := n.host.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(p) // our own backoff paces these dials
			}
			ctx, cancel := context.WithTimeout(n.ctx, redialTimeout)
			err := n.host.Connect(ctx, ai)
			cancel()
			if err == nil {
				n.stats.redialed.Add(1)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			l, ok := r.lost[p]
			switch {
			case !ok: // connected meanwhile (peerBack)
				return
			case err == nil:
				delete(r.lost, p)
				return
			}
			l.dialing = false
			after := n.cfg.Now()
			if after.Sub(l.since) > redialFastFor {
				l.wait = redialSlow
			} else {
				l.wait = min(2*l.wait, redialMax)
			}
			l.next = after.Add(l.wait)
		})
	}
}

// Redialing reports how many lost peers are being redialled.
func (n *Node) Redialing() int {
	r := &n.redial
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lost)
}
