// Package node assembles one Hyperspace P2P node process: a libp2p host
// (p2p.Node) with its persistent identity, the node's CRDT leaderboard
// replica on disk, one admission check (package admission) shared by gossip
// and sync, and a Temporal worker on the task queue node-<peerID> that runs
// its agents' Hypothesize, RecordResult, Share and WritePaper activities and
// the reviews it is asked for (signed with the node's own key). It
// registers itself in the site's database and heartbeats, so campaigns
// spread their agents over the live nodes and agents of a dead node move.
// It is a composition root, beside workers/ (see DESIGN.md).
package node

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/crdtreplica"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// Options configure a node.
type Options struct {
	// Dir holds node.key (the libp2p identity) and replica/ (the CRDT log).
	Dir         string
	ListenAddrs []string
	// WebSocketListenAddrs: p2p.Config's (listen for browser peers; empty:
	// off).
	WebSocketListenAddrs []string
	Bootstrap            []string
	Domains              []string
	EnableMDNS           bool
	// EnableRelay turns on circuit relay v2 (client and service, for peers
	// behind NATs); EnableHolePunching adds DCUtR hole punching and UPnP
	// port mapping.
	EnableRelay, EnableHolePunching bool
	// PoWDifficulty and PoWDynamic are the identity puzzles'
	// difficulties, as p2p.Config's (0: p2p.DefaultPoWDifficulty and off;
	// p2p.PoWOff turns the static one off). node.key is minted at
	// PoWDifficulty when created; an existing one below it is an error.
	PoWDifficulty, PoWDynamic int
	// P2P lets callers adjust the p2p configuration (tests, benchmarks).
	P2P func(*p2p.Config)
	// Temporal, when set, runs a worker on node-<peerID> with Activities.
	Temporal   client.Client
	Activities *activities.Activities
	// Store, when set, registers the node and heartbeats it.
	Store  *store.Store
	APIURL string
	Logger *slog.Logger
	// RegisterMetrics exports this node's hyperspace_p2p_* metrics on the
	// default Prometheus registry (one node per process may do so).
	RegisterMetrics bool
	// JoinTraining are training runs of other sites this node contributes
	// deltas to (it needs Activities for its data dir and trainer).
	JoinTraining []string
	// Capabilities this node claims in its pulse presences (default
	// DefaultCapabilities); PulseInterval is the round length (default
	// DefaultPulseInterval; it must match the site's PulseRoundWorkflow
	// schedule). NoPulse: publish no presences (probes are still answered).
	Capabilities  []string
	PulseInterval time.Duration
	NoPulse       bool
}

// Node is a running node.
type Node struct {
	P2P     *p2p.Node
	Replica *crdt.Replica
	key     crypto.PrivKey
	self    *identity.Key // the node key as a signing identity (reviews)
	worker  worker.Worker
	store   *store.Store
	log     *slog.Logger

	pulse pulseNode
	infer atomic.Pointer[inference.Service] // set by ServeInference (probes)
	kv    atomic.Pointer[p2p.KVPrefixStore] // set by ServeInference
	// disputeInference starts an inference challenge (set when the node
	// has Temporal, the site database and S3).
	disputeInference func(ctx context.Context, d activities.InferenceDispute) error

	certMu sync.Mutex
	certs  map[string]p2p.AgentCert

	stop       context.CancelFunc
	leavePulse func()
	wg         sync.WaitGroup
}

// Start opens the replica, starts the host, and (when configured) the worker
// and the registration heartbeat.
func Start(ctx context.Context, o Options) (*Node, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := p2p.DefaultConfig()
	if o.PoWDifficulty != 0 {
		cfg.PoWDifficulty = o.PoWDifficulty
	}
	cfg.PoWDynamic = o.PoWDynamic
	if len(o.ListenAddrs) > 0 {
		cfg.ListenAddrs = o.ListenAddrs
	}
	cfg.WebSocketListenAddrs = o.WebSocketListenAddrs
	cfg.Bootstrap = o.Bootstrap
	cfg.Domains = o.Domains
	cfg.EnableMDNS = o.EnableMDNS
	cfg.EnableRelay, cfg.EnableHolePunching = o.EnableRelay, o.EnableHolePunching
	cfg.Logger = log
	if o.P2P != nil {
		o.P2P(&cfg)
	}
	key := cfg.PrivKey
	if key == nil {
		var err error
		if key, err = p2p.LoadOrCreateKey(ctx, filepath.Join(o.Dir, "node.key"), cfg.StaticPoW()); err != nil {
			return nil, err
		}
		cfg.PrivKey = key
	}
	rep, err := crdt.Open(filepath.Join(o.Dir, "replica"), crdt.WithDomains(o.Domains...))
	if err != nil {
		return nil, fmt.Errorf("open replica: %w", err)
	}
	// One admission check for gossip and sync alike.
	if cfg.Admission == nil {
		cfg.Admission = admission.New(admission.Config{ClockSkew: cfg.ClockSkew, MaxAge: cfg.MaxAge, Domains: cfg.Domains, Now: cfg.Now,
			Quotas: map[string]admission.Quota{admission.PathSync: admission.DefaultSyncQuota, admission.PathTraining: admission.DefaultTrainingQuota}})
	}
	cfg.Replica = crdtreplica.New(rep, cfg.Admission)
	self, err := admission.NodeIdentity(key)
	if err != nil {
		rep.Close()
		return nil, err
	}
	pn, err := p2p.New(ctx, cfg)
	if err != nil {
		rep.Close()
		return nil, err
	}
	if o.RegisterMetrics {
		if err := prometheus.Register(p2p.NewCollector(pn)); err != nil {
			log.Warn("p2p metrics not registered", "error", err)
		}
	}
	n := &Node{P2P: pn, Replica: rep, key: key, self: self, store: o.Store, log: log.With("node", pn.ID().String()), certs: map[string]p2p.AgentCert{}}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stop = cancel
	caps := o.Capabilities
	if caps == nil {
		caps = DefaultCapabilities
	}
	if n.pulse.caps, err = pulse.NormalizeCapabilities(caps); err != nil {
		n.Close()
		return nil, err
	}
	n.pulse.interval = o.PulseInterval
	if n.pulse.interval <= 0 {
		n.pulse.interval = DefaultPulseInterval
	}
	if n.pulse.interval < time.Second {
		n.Close()
		return nil, fmt.Errorf("pulse interval %s is shorter than 1s", o.PulseInterval)
	}
	pn.ServeProbes(n.answerProbe)
	leave, err := pn.JoinPulse(func(m p2p.PulseMessage, from peer.ID) { n.absorbPulse(rctx, m, from) })
	if err != nil {
		n.Close()
		return nil, err
	}
	n.leavePulse = leave
	if !o.NoPulse {
		n.wg.Add(1)
		go func() { // owned by the node
			defer n.wg.Done()
			n.pulseLoop(rctx)
		}()
	}
	if o.Temporal != nil && o.Activities != nil {
		acts := *o.Activities
		acts.Network = n
		acts.Pulse = n
		if o.Store != nil && acts.Disputes == nil {
			tc, st := o.Temporal, o.Store
			acts.Disputes = func(ctx context.Context, d activities.Dispute) error {
				in, err := activities.PlanChallenge(ctx, st, d, 0, 0)
				if err != nil {
					return err
				}
				_, err = tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ChallengeWorkflowID(in.ID), TaskQueue: workflows.TaskQueue},
					workflows.ChallengeWorkflow, in)
				return err
			}
		}
		if acts.Recompute == nil {
			acts.Recompute = func(ctx context.Context, h string, rec []byte) ([]byte, error) {
				svc := n.infer.Load()
				if svc == nil {
					return nil, errors.New("this node serves no inference")
				}
				return svc.Recompute(ctx, h, rec)
			}
		}
		if o.Store != nil && acts.Blob != nil {
			tc, st, bs := o.Temporal, o.Store, acts.Blob
			n.disputeInference = func(ctx context.Context, d activities.InferenceDispute) error {
				in, err := activities.PlanInferenceChallenge(ctx, st, d, 0)
				if err != nil {
					return err
				}
				b, err := json.Marshal(d.Entry)
				if err != nil {
					return err
				}
				if err := bs.Put(ctx, in.EntryKey, b, "application/json"); err != nil {
					return err
				}
				_, err = tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.ChallengeWorkflowID(in.ID), TaskQueue: workflows.TaskQueue},
					workflows.ChallengeWorkflow, in)
				return err
			}
		}
		w := worker.New(o.Temporal, n.TaskQueue(), worker.Options{Identity: "node-" + pn.ID().String()})
		acts.RegisterAgentSide(w)
		if o.Store != nil && acts.Blob != nil {
			owner := &trainingOwner{n: n, acts: &acts, adm: cfg.Admission, open: map[string]*openRound{}}
			owner.register(w)
			pn.ServeTraining(owner)
		}
		if err := w.Start(); err != nil {
			n.Close()
			return nil, fmt.Errorf("start node worker: %w", err)
		}
		n.worker = w
	}
	if o.Store != nil {
		if err := n.register(ctx, o.APIURL); err != nil {
			n.Close()
			return nil, err
		}
		n.wg.Add(1)
		go func() { // papers and reviews heard over gossip, owned by the node
			defer n.wg.Done()
			n.absorbPapers(rctx)
		}()
		n.wg.Add(1)
		go func() { // registration heartbeat, owned by the node
			defer n.wg.Done()
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
					if err := n.register(rctx, o.APIURL); err != nil {
						n.log.Warn("node heartbeat", "error", err)
					}
				}
			}
		}()
	}
	for _, run := range o.JoinTraining {
		if o.Activities == nil {
			n.Close()
			return nil, errors.New("joining a training run needs the node's data dir (activities)")
		}
		n.wg.Add(1)
		go func() { // owned by the node
			defer n.wg.Done()
			if err := n.joinTraining(rctx, run, o.Activities.DataDir, o.Activities.InnerTrainer); err != nil {
				n.log.Error("join training run", "run", run, "error", err)
			}
		}()
	}
	n.log.Info("node started", "addrs", pn.Addrs(), "queue", n.TaskQueue(), "records", rep.Len(""))
	return n, nil
}

func (n *Node) register(ctx context.Context, apiURL string) error {
	var addrs []string
	for _, a := range n.P2P.Addrs() {
		addrs = append(addrs, a.String())
	}
	return n.store.TouchNode(ctx, store.Node{PeerID: n.P2P.ID().String(), TaskQueue: n.TaskQueue(), Addrs: addrs, APIURL: apiURL})
}

// TaskQueue is node-<peerID>.
func (n *Node) TaskQueue() string { return workflows.NodeQueue(n.P2P.ID().String()) }

// cert returns (and caches) the node's certificate for an agent key.
func (n *Node) cert(pub ed25519.PublicKey) p2p.AgentCert {
	n.certMu.Lock()
	defer n.certMu.Unlock()
	k := string(pub)
	c, ok := n.certs[k]
	if !ok {
		c = p2p.NewAgentCert(n.key, pub)
		n.certs[k] = c
	}
	return c
}

// Share implements activities.Network: gossip the receipt and merge it locally.
func (n *Node) Share(ctx context.Context, s receipt.Signed, k *identity.Key) error {
	if err := n.P2P.Publish(ctx, s, n.cert(k.Public())); err != nil {
		return err
	}
	n.noteShared(s.ID)
	return nil
}

// PublishPaper implements activities.Network: gossip a paper on the papers
// topic, vouching for its author's key.
func (n *Node) PublishPaper(ctx context.Context, sp paper.Signed) error {
	cert, err := n.certFor(sp.Paper.PublicKey)
	if err != nil {
		return err
	}
	return n.P2P.PublishPaper(ctx, p2p.PaperMessage{Type: p2p.PaperTypePaper, Paper: &sp, Cert: &cert})
}

// PublishReview implements activities.Network: gossip a review this node
// signed.
func (n *Node) PublishReview(ctx context.Context, sr paper.SignedReview) error {
	return n.P2P.PublishPaper(ctx, p2p.PaperMessage{Type: p2p.PaperTypeReview, Review: &sr})
}

// AnnounceBreakthrough implements activities.Network.
func (n *Node) AnnounceBreakthrough(ctx context.Context, sp paper.Signed, score float64) error {
	cert, err := n.certFor(sp.Paper.PublicKey)
	if err != nil {
		return err
	}
	return n.P2P.PublishPaper(ctx, p2p.PaperMessage{Type: p2p.PaperTypeBreakthrough, Paper: &sp, Cert: &cert,
		Score: score, At: time.Now().UnixMilli()})
}

// NodeKey implements activities.Network: the node's own key, which signs
// its reviews (a review is admitted only under the key of the node it names).
func (n *Node) NodeKey() *identity.Key { return n.self }

func (n *Node) certFor(pubB64 string) (p2p.AgentCert, error) {
	pub, err := base64.StdEncoding.DecodeString(pubB64)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return p2p.AgentCert{}, fmt.Errorf("node: %q is not a base64 Ed25519 public key", pubB64)
	}
	return n.cert(pub), nil
}

// PeerID implements activities.Network.
func (n *Node) PeerID() string { return n.P2P.ID().String() }

// Known implements activities.Network.
func (n *Node) Known(domain string) []receipt.Signed { return n.Replica.Records(domain) }

// KnownBest implements activities.Network.
func (n *Node) KnownBest(domain string, dir domains.Direction, k int) []receipt.Signed {
	return n.Replica.Best(domain, dir, k)
}

// KnownGet implements activities.Network.
func (n *Node) KnownGet(id string) (receipt.Signed, bool) { return n.Replica.Get(id) }

// Close stops the worker, the heartbeat, the host and the replica; it
// deregisters the node.
func (n *Node) Close() {
	if n.worker != nil {
		n.worker.Stop()
	}
	if n.leavePulse != nil {
		n.leavePulse()
	}
	if n.stop != nil {
		n.stop()
	}
	n.wg.Wait()
	if n.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.store.RemoveNode(ctx, n.P2P.ID().String())
		cancel()
	}
	_ = n.P2P.Close()
	_ = n.Replica.Close()
}
