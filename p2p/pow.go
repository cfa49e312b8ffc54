package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/hyperspace-ai/hyperspace/internal/pow"
)

// Node identities cost work (package pow, S/Kademlia's puzzles): a node
// refuses to connect to a peer whose peer ID fails the static puzzle at
// this node's difficulty (Config.PoWDifficulty), in both directions, and,
// when Config.PoWDynamic is set, disconnects a peer that does not send a
// valid dynamic proof over PoWProtocol within PoWTimeout of connecting.

// PoWProtocol carries one pow.Proof (its wire form) from a node to a peer
// it just connected to; the stream is closed after it.
const PoWProtocol = "/hyperspace/pow/1.0.0"

// Directions and reasons of refused connections, the keys of
// Stats.PoWRefused ("<direction>/<reason>").
const (
	PoWInbound  = "inbound"  // the peer connected to us
	PoWOutbound = "outbound" // we were dialling the peer

	// PoWBelowDifficulty: the peer's key fails the static puzzle.
	PoWBelowDifficulty = "below_difficulty"
	// PoWNoPublicKey: the peer ID does not inline a key to check.
	PoWNoPublicKey = "no_public_key"
	// PoWDynamicInvalid: the dynamic proof did not decode, was not signed
	// by the peer, or does not reach PoWDynamic.
	PoWDynamicInvalid = "dynamic_invalid"
	// PoWDynamicTimeout: no valid dynamic proof within PoWTimeout.
	PoWDynamicTimeout = "dynamic_timeout"
)

// powGater is the host's connection gater: it checks the static puzzle
// when libp2p is about to dial a peer and once an inbound or outbound
// connection has been secured (the peer ID is authenticated then).
type powGater struct {
	difficulty int
	stats      *counters
	log        *slog.Logger
}

var _ connmgr.ConnectionGater = (*powGater)(nil)

// check reports whether p passes the static puzzle, counting a refusal.
func (g *powGater) check(p peer.ID, direction string) error {
	err := pow.CheckPeer(p, g.difficulty)
	if err == nil {
		return nil
	}
	reason := PoWBelowDifficulty
	if errors.Is(err, pow.ErrNoPublicKey) {
		reason = PoWNoPublicKey
	}
	g.stats.powRefuse(direction, reason)
	g.log.Debug("connection refused: identity puzzle", "peer", p, "direction", direction, "reason", reason, "err", err)
	return fmt.Errorf("peer's identity fails this node's proof-of-work difficulty %d: %w", g.difficulty, err)
}

func (g *powGater) InterceptPeerDial(p peer.ID) bool {
	return g.check(p, PoWOutbound) == nil
}

func (g *powGater) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool { return true }
func (g *powGater) InterceptAccept(network.ConnMultiaddrs) bool         { return true }

func (g *powGater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	d := PoWInbound
	if dir == network.DirOutbound {
		d = PoWOutbound
	}
	return g.check(p, d) == nil
}

func (g *powGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// PoWDifficulty is the static puzzle difficulty this node enforces (0:
// off): a peer's key must reach it to connect.
func (n *Node) PoWDifficulty() int { return n.gater.difficulty }

// dynamicPoW is the node's side of the dynamic puzzle: its own proof, and
// which peers have proved theirs.
type dynamicPoW struct {
	difficulty int
	timeout    time.Duration
	proof      []byte // our pow.Proof, encoded

	mu    sync.Mutex
	peers map[peer.ID]chan struct{} // closed once the peer's proof verified
}

func (d *dynamicPoW) proved(p peer.ID) chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.peers[p]
	if !ok {
		ch = make(chan struct{})
		d.peers[p] = ch
	}
	return ch
}

func (d *dynamicPoW) markProved(p peer.ID) {
	ch := d.proved(p)
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (d *dynamicPoW) forget(p peer.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.peers, p)
}

// startDynamicPoW solves the dynamic puzzle for the node's key (2^d2
// hashes) and serves PoWProtocol.
func (n *Node) startDynamicPoW(ctx context.Context) error {
	priv := n.host.Peerstore().PrivKey(n.ID())
	x, err := pow.SolveDynamic(ctx, priv.GetPublic(), n.cfg.PoWDynamic)
	if err != nil {
		return fmt.Errorf("p2p: solving the dynamic identity puzzle at difficulty %d: %w", n.cfg.PoWDynamic, err)
	}
	proof, err := pow.NewProof(priv, x)
	if err != nil {
		return err
	}
	data, err := proof.MarshalBinary()
	if err != nil {
		return err
	}
	n.dyn = &dynamicPoW{difficulty: n.cfg.PoWDynamic, timeout: n.cfg.PoWTimeout, proof: data, peers: map[peer.ID]chan struct{}{}}
	n.host.SetStreamHandler(PoWProtocol, n.handlePoW)
	return nil
}

// powConnected runs the dynamic puzzle's exchange on a new connection: we
// send our proof, and wait for the peer's.
func (n *Node) powConnected(c network.Conn) {
	if n.dyn == nil {
		return
	}
	p := c.RemotePeer()
	n.goOwned("pow send", func() {
		ctx, cancel := context.WithTimeout(n.ctx, n.dyn.timeout)
		defer cancel()
		if err := n.sendProof(ctx, p); err != nil {
			n.log.Debug("sending identity proof", "peer", p, "err", err)
		}
	})
	n.goOwned("pow wait", func() {
		t := time.NewTimer(n.dyn.timeout)
		defer t.Stop()
		select {
		case <-n.dyn.proved(p):
		case <-n.ctx.Done():
		case <-t.C:
			select {
			case <-n.dyn.proved(p): // proved on a newer connection
				return
			default:
			}
			if n.host.Network().Connectedness(p) != network.Connected {
				return
			}
			n.refuseDynamic(p, direction(c), PoWDynamicTimeout, errors.New("no proof in time"))
		}
	})
}

func (n *Node) powDisconnected(_ network.Network, c network.Conn) {
	if n.host.Network().Connectedness(c.RemotePeer()) == network.Connected {
		return
	}
	if n.dyn != nil {
		n.dyn.forget(c.RemotePeer())
	}
	n.peerLost(c.RemotePeer())
}

func (n *Node) sendProof(ctx context.Context, p peer.ID) error {
	s, err := n.host.NewStream(network.WithAllowLimitedConn(ctx, "pow"), p, PoWProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if _, err := s.Write(n.dyn.proof); err != nil {
		s.Reset()
		return err
	}
	return s.CloseWrite()
}

// handlePoW reads a peer's proof and checks it against the key its peer ID
// inlines; a bad proof closes every connection to the peer.
func (n *Node) handlePoW(s network.Stream) {
	if !n.track() {
		s.Reset()
		return
	}
	defer n.wg.Done()
	defer s.Close()
	p := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(n.dyn.timeout))
	data, err := io.ReadAll(io.LimitReader(s, pow.MaxProofSize+1))
	if err != nil {
		s.Reset()
		if n.ctx.Err() == nil {
			n.log.Debug("reading identity proof", "peer", p, "err", err) // the waiter times out
		}
		return
	}
	if err := n.verifyProof(p, data); err != nil {
		n.refuseDynamic(p, direction(s.Conn()), PoWDynamicInvalid, err)
		return
	}
	n.dyn.markProved(p)
}

func (n *Node) verifyProof(p peer.ID, data []byte) error {
	proof, err := pow.ParseProof(data)
	if err != nil {
		return err
	}
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: %v", pow.ErrNoPublicKey, err)
	}
	return proof.Verify(pub, n.dyn.difficulty)
}

func direction(c network.Conn) string {
	if c.Stat().Direction == network.DirOutbound {
		return PoWOutbound
	}
	return PoWInbound
}

func (n *Node) refuseDynamic(p peer.ID, dir, reason string, err error) {
	n.stats.powRefuse(dir, reason)
	n.log.Debug("peer disconnected: dynamic identity puzzle", "peer", p, "reason", reason, "err", err)
	n.noRedial(p)
	_ = n.host.Network().ClosePeer(p)
}
