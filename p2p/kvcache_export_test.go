package p2p

import "github.com/libp2p/go-libp2p/core/peer"

// DropChunksForTest makes the store forget every chunk it holds, silently:
// a holder that lost (or threw away) its data but keeps its provider
// records.
func (s *KVPrefixStore) DropChunksForTest() { s.store.dropChunks() }

// DropConnsForTest closes every connection to p, as a link that failed
// would (both sides see the disconnect).
func (n *Node) DropConnsForTest(p peer.ID) error { return n.host.Network().ClosePeer(p) }
