package node

import (
	"context"

	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/modelserve"
)

// ServeInference makes svc this node's inference service on the mesh: its
// responses carry the node's id as their system fingerprint.
func (n *Node) ServeInference(ctx context.Context, svc *inference.Service, reg *modelserve.Registry) {
	svc.Fingerprint = "hs-" + n.P2P.ID().String()
}
