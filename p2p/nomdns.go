//go:build !mdns

package p2p

import "errors"

// startMDNS fails: this binary was built without -tags mdns (go-libp2p's
// mDNS needs github.com/libp2p/zeroconf/v2, which go.mod does not require
// yet).
func (n *Node) startMDNS() error {
	return errors.New("p2p: mDNS support not built in (build with -tags mdns)")
}
