package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ProbeInferenceForTest runs the pulse validator's inference probe.
func (n *Node) ProbeInferenceForTest(ctx context.Context, p peer.ID, round int64) error {
	_, err := n.probeInference(ctx, p, round)
	return err
}
