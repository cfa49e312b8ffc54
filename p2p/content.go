package p2p

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	mh "github.com/multiformats/go-multihash"
)

// ErrNoDHT is returned by the content-routing calls on a node started with
// DisableDHT.
var ErrNoDHT = errors.New("p2p: the DHT is off on this node")

// ContentID is the CID (v1, raw codec, SHA2-256 multihash) under which the
// Kademlia DHT keeps provider records for key: the inference plane's cache
// entries ("cache/<request hash>"), KV-prefix chunk sets
// ("/kv-prefix/<model>/<prefix hash>") and model providers
// ("model/<name>"). Provider records hold only peer ids and addresses; what
// a provider serves is fetched, and verified, over that protocol's stream.
func ContentID(key string) cid.Cid {
	sum := sha256.Sum256([]byte(key))
	m, _ := mh.Encode(sum[:], mh.SHA2_256) // cannot fail for SHA2-256 and 32 bytes
	return cid.NewCidV1(cid.Raw, m)
}

// Provide announces in the DHT that this node provides key (and keeps
// re-announcing it while the node runs, as the DHT's provider manager does).
// On a node without connected DHT peers it returns the DHT's error; callers
// that also answer over gossip may ignore it.
func (n *Node) Provide(ctx context.Context, key string) error {
	if n.dht == nil {
		return ErrNoDHT
	}
	return n.dht.Provide(ctx, ContentID(key), true)
}

// FindProviders returns up to max peers (other than this node) the DHT knows
// to provide key, with their addresses added to the peerstore so they can
// be dialled at once. It stops at ctx's deadline with what it found.
func (n *Node) FindProviders(ctx context.Context, key string, max int) ([]peer.AddrInfo, error) {
	if n.dht == nil {
		return nil, ErrNoDHT
	}
	if max <= 0 {
		max = 20
	}
	var out []peer.AddrInfo
	for p := range n.dht.FindProvidersAsync(ctx, ContentID(key), max+1) {
		if p.ID == "" || p.ID == n.ID() {
			continue
		}
		if len(p.Addrs) > 0 {
			n.host.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.RecentlyConnectedAddrTTL)
		}
		out = append(out, p)
		if len(out) >= max {
			break
		}
	}
	return out, nil
}

// serveOneFrame serves a one-request, one-reply stream: it reads one frame
// of at most limit bytes under a deadline of timeout, and writes the frame
// handle returns (handle's false resets the stream instead). The stream is
// tracked so that Close waits for it.
func (n *Node) serveOneFrame(s network.Stream, timeout time.Duration, limit int, handle func(req []byte) ([]byte, bool)) {
	if !n.track() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(timeout))
	r, w := bufio.NewReader(s), bufio.NewWriter(s)
	b, _, err := readFrame(r, limit)
	if err != nil {
		_ = s.Reset()
		return
	}
	out, ok := handle(b)
	if !ok {
		_ = s.Reset()
		return
	}
	_, _ = writeFrame(w, out)
}
