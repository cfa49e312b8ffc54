package activities

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/hyperspace-ai/hyperspace/workflows"
)

// NodeLiveness is how recently a node must have heartbeated (every 10 s)
// to count as live.
const NodeLiveness = 30 * time.Second

// errNoLiveNode is retried by the workflow until a node comes up.
var errNoLiveNode = errors.New("no live P2P node of this site to move the agent to (nodes heartbeat into the nodes table)")

// LiveNodes returns the task queues of the site's live nodes, sorted.
func (a *Activities) LiveNodes(ctx context.Context) ([]string, error) {
	nodes, err := a.Store.LiveNodes(ctx, NodeLiveness)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.TaskQueue)
	}
	slices.Sort(out)
	return out, nil
}

// PickNode chooses a live node for an agent whose node stopped answering:
// one of the live nodes not excluded, the same for the same agent and set
// of nodes (a hash of the agent's name), so moved agents spread over the
// survivors. With none live it fails, and the workflow retries.
func (a *Activities) PickNode(ctx context.Context, in workflows.PickNodeInput) (string, error) {
	live, err := a.LiveNodes(ctx)
	if err != nil {
		return "", err
	}
	var cands []string
	for _, q := range live {
		if !slices.Contains(in.Exclude, q) {
			cands = append(cands, q)
		}
	}
	if len(cands) == 0 {
		activity.GetLogger(ctx).Warn("no live node yet for a moving agent", "agent", in.Agent, "exclude", in.Exclude)
		return "", errNoLiveNode
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(in.Agent))
	return cands[int(h.Sum32()%uint32(len(cands)))], nil
}

// keepAlive heartbeats a node-side activity until the returned stop is
// called, so that a node killed in the middle of it is noticed at the
// heartbeat timeout (see workflows.NodeFailover).
func keepAlive(ctx context.Context) (stop func()) {
	return heartbeatEvery(ctx, 3*time.Second, nil)
}
