package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// startMDNS announces the node on the LAN and feeds discoveries to the
// peer keeper.
func (n *Node) startMDNS() error {
	s := mdns.NewMdnsService(n.host, n.cfg.MDNSService, mdnsNotifee{n})
	if err := s.Start(); err != nil {
		return fmt.Errorf("p2p: starting mDNS: %w", err)
	}
	n.mdns = s
	return nil
}

type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == m.n.ID() {
		return
	}
	select {
	case m.n.found <- ai:
	default:
	}
}
