package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	"github.com/multiformats/go-multiaddr"

	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Replica is the node's leaderboard replica (internal/crdt adapts to it).
// Implementations must be safe for concurrent use.
type Replica interface {
	Add(s receipt.Signed) (added bool, err error) // verified, idempotent
	Has(id string) bool
	// Anti-entropy, as opaque byte messages (one round trip). Every call
	// names the other side of the exchange: the replica remembers what it
	// exchanged with each peer (so a later summary is a delta), and every
	// record that arrives passes admission (signature, vouching cert, the
	// sending peer's quota) first.
	SyncRequest(to peer.ID, domains []string) ([]byte, error)                              // initiator: my summary (or a delta against one remembered)
	HandleSyncRequest(from peer.ID, req []byte) (resp []byte, err error)                   // responder: records the initiator lacks + my summary
	HandleSyncResponse(from peer.ID, req, resp []byte) (push []byte, added int, err error) // initiator: merge (req is what it sent); what the responder lacks
	HandleSyncPush(from peer.ID, push []byte) (added int, err error)                       // responder: merge
}

// VerifiedAdder is implemented by replicas that can take a record this
// node's admission check has already verified (a receipt.Verified, which
// only verification makes) without verifying it again. The node hands
// every gossiped and published receipt to AddVerified when the replica has
// it, so each message is verified once; records from sync still reach the
// replica as bytes and are verified there.
type VerifiedAdder interface {
	AddVerified(v receipt.Verified) (added bool, err error)
}

// addAdmitted adds a receipt that passed admission as rec.
func (n *Node) addAdmitted(rec receipt.Verified) (bool, error) {
	if va, ok := n.replica.(VerifiedAdder); ok {
		return va.AddVerified(rec)
	}
	return n.replica.Add(rec.Signed())
}

// Finding is a research receipt this node learnt by gossip or published
// itself. Records learnt through sync are not announced as findings.
type Finding struct {
	Receipt    receipt.Signed
	From       peer.ID // publishing node
	ReceivedAt time.Time
	Local      bool // published by this node
}

// RawMessage is an admitted message of the papers topic.
type RawMessage struct {
	Topic      string
	Data       []byte
	From       peer.ID
	ReceivedAt time.Time
	// Message is the decoded message (it passed admission).
	Message *PaperMessage
}

// PeerInfo describes a connected peer.
type PeerInfo struct {
	ID      peer.ID
	Addrs   []multiaddr.Multiaddr
	Score   float64       // GossipSub score, as last sampled
	Scored  bool          // Score has been sampled
	Topics  []string      // topics the peer is subscribed to (of ours)
	Mesh    []string      // topics where the peer is in our mesh
	Latency time.Duration // EWMA of ping/identify round trips; 0 if unknown
}

// Errors returned by Publish.
var (
	// ErrUnknownDomain: the receipt's domain is not one of Config.Domains.
	ErrUnknownDomain = errors.New("p2p: unknown domain")
	// ErrStale: the receipt is older than MaxAge. It was added to the
	// replica and will reach peers through sync, but it is not gossiped.
	ErrStale = errors.New("p2p: receipt too old to gossip; added to the replica for sync")
	// ErrTooLarge: the message exceeds MaxMessageBytes.
	ErrTooLarge = errors.New("p2p: message too large")
	// ErrClosed: the node is closed.
	ErrClosed = errors.New("p2p: node closed")
)

// RejectedError is returned by Publish when the message would be rejected
// by peers; Reason is one of the Reason* constants.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string { return "p2p: message rejected: " + e.Reason }

// Node is one member of the knowledge plane: a libp2p host with the DHT,
// GossipSub topics for findings, and the leaderboard sync protocol.
type Node struct {
	cfg       Config
	log       *slog.Logger
	host      host.Host
	dht       *dht.IpfsDHT // nil when DisableDHT
	disc      *drouting.RoutingDiscovery
	mdns      interface{ Close() error }
	ps        *pubsub.PubSub
	val       *validator
	stats     *counters
	mesh      *meshTracer
	replica   Replica
	limiter   *rateLimiter
	bootstrap []peer.AddrInfo
	research  map[string]*pubsub.Topic // by domain
	raw       map[string]*pubsub.Topic // by topic name
	train     training                 // DiLoCo across sites (training.go)
	pulse     *pulseState              // pulse rounds and probes (pulse.go)
	topics    []string                 // every topic name
	notifiee  *network.NotifyBundle
	gater     *powGater   // the static identity puzzle (pow.go)
	dyn       *dynamicPoW // the dynamic one; nil when off

	scores atomic.Pointer[map[peer.ID]*pubsub.PeerScoreSnapshot]

	feedMu sync.Mutex
	feed   []Finding // ring buffer
	feedN  int       // findings ever pushed

	subMu   sync.Mutex
	nextSub uint64
	subs    map[uint64]chan Finding
	rawSubs map[uint64]chan RawMessage

	kick   chan peer.ID       // connection events for sync-on-connect
	redial redialer           // lost peers, redialled with backoff (redial.go)
	found  chan peer.AddrInfo // mDNS discoveries

	syncMu     sync.Mutex
	inflight   map[peer.ID]bool
	serving    map[peer.ID]int // inbound sync streams being served, per peer
	servingAll int
	syncingAll atomic.Bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	lifeMu sync.Mutex
	closed bool
	wg     sync.WaitGroup // every goroutine the node started
}

// New starts a node: the host listens, topics are joined, bootstrap peers
// are dialled (bounded by ctx; failures are logged and retried by the peer
// keeper), and the background loops start. ctx bounds startup only; the
// node runs until Close.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg.fillDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	priv, err := nodeKey(ctx, cfg)
	if err != nil {
		return nil, err
	}
	stats := newCounters()
	gater := &powGater{difficulty: cfg.StaticPoW(), stats: stats, log: cfg.Logger}
	bootstrap, err := parseAddrInfos(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("p2p: bootstrap peers: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(append(slices.Clone(cfg.ListenAddrs), cfg.WebSocketListenAddrs...)...),
		libp2p.Transport(tcp.NewTCPTransport, tcp.WithConnectionTimeout(tcpConnectTimeout)),
		libp2p.Transport(quic.NewTransport),
		// Browser peers (the /mesh/ page) dial WebSockets.
		libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Ping(true),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gater),
		libp2p.UserAgent("hyperspace"),
		// Our Collector exports what operators need; libp2p's own metrics
		// would register per-process collectors shared by every node.
		libp2p.DisableMetrics(),
	}
	if cfg.EnableRelay {
		opts = append(opts, libp2p.EnableRelay(), libp2p.EnableRelayService(), libp2p.EnableNATService())
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if cfg.EnableHolePunching {
		opts = append(opts, libp2p.EnableHolePunching(), libp2p.NATPortMap())
	}
	var h host.Host
	if cfg.NewHost != nil {
		h, err = cfg.NewHost(priv, gater)
	} else {
		h, err = libp2p.New(opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: starting host: %w", err)
	}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()

	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n := &Node{
		cfg:       cfg,
		log:       cfg.Logger.With("node", h.ID().String()),
		host:      h,
		stats:     stats,
		gater:     gater,
		replica:   cfg.Replica,
		limiter:   newRateLimiter(cfg.RateLimit),
		bootstrap: bootstrap,
		research:  map[string]*pubsub.Topic{},
		raw:       map[string]*pubsub.Topic{},
		train:     training{topics: map[string]*pubsub.Topic{}},
		pulse:     &pulseState{},
		feed:      make([]Finding, cfg.FeedSize),
		subs:      map[uint64]chan Finding{},
		rawSubs:   map[uint64]chan RawMessage{},
		kick:      make(chan peer.ID, 256),
		found:     make(chan peer.AddrInfo, 32),
		inflight:  map[peer.ID]bool{},
		serving:   map[peer.ID]int{},
		ctx:       nctx,
		cancel:    cancel,
	}
	n.mesh = newMeshTracer(n.stats)
	defer func() {
		if err != nil {
			n.shutdown()
		}
	}()
	n.val = &validator{self: h.ID(), cfg: &n.cfg, replica: n.replica, limiter: n.limiter, stats: n.stats,
		admission: newRateLimiter(RateLimit{Rate: admissionFactor * cfg.RateLimit.Rate, Burst: admissionFactor * cfg.RateLimit.Burst}),
		publish:   newRateLimiter(cfg.RateLimit),
		adm:       cfg.Admission,
	}

	if !cfg.DisableDHT {
		n.dht, err = dht.New(h,
			dht.Mode(dht.ModeServer),
			dht.ProtocolPrefix(protocol.ID(cfg.ProtocolPrefix)),
			dht.BootstrapPeers(bootstrap...),
			dht.DisableValues(),
		)
		if err != nil {
			return nil, fmt.Errorf("p2p: starting DHT: %w", err)
		}
		n.disc = drouting.NewRoutingDiscovery(n.dht)
	}

	if err := n.startPubSub(); err != nil {
		return nil, err
	}

	if cfg.PoWDynamic > 0 {
		if err := n.startDynamicPoW(ctx); err != nil {
			return nil, err
		}
	}
	for _, b := range bootstrap {
		if err := pow.CheckPeer(b.ID, gater.difficulty); err != nil {
			n.log.Warn("bootstrap peer fails this node's identity puzzle: it will be refused", "peer", b.ID, "difficulty", gater.difficulty, "err", err)
		}
	}
	h.SetStreamHandler(SyncProtocol, n.handleSync)
	n.notifiee = &network.NotifyBundle{ConnectedF: n.connected, DisconnectedF: n.powDisconnected}
	h.Network().Notify(n.notifiee)
	for _, c := range h.Network().Conns() { // connected before Notify
		n.powConnected(c)
	}

	n.goOwned("sync", n.syncLoop)
	n.goOwned("peers", n.keepPeers)
	if cfg.EnableMDNS {
		if err := n.startMDNS(); err != nil {
			return nil, err
		}
	}
	n.dialBootstrap(ctx)
	if n.dht != nil {
		if err := n.dht.Bootstrap(ctx); err != nil {
			n.log.Debug("dht bootstrap", "err", err)
		}
	}
	n.log.Info("p2p node started", "addrs", n.Addrs(), "domains", cfg.Domains)
	return n, nil
}

// nodeKey is the node's identity at the configured static difficulty:
// PrivKey (which must meet it), KeyFile (minted at it when created), or an
// ephemeral key minted at it.
func nodeKey(ctx context.Context, cfg Config) (crypto.PrivKey, error) {
	d := cfg.StaticPoW()
	switch {
	case cfg.PrivKey != nil:
		if err := pow.CheckKey(cfg.PrivKey.GetPublic(), d); err != nil {
			return nil, fmt.Errorf("p2p: config: PrivKey: %w (mint one with pow.MintKey, or lower PoWDifficulty)", err)
		}
		return cfg.PrivKey, nil
	case cfg.KeyFile != "":
		return LoadOrCreateKey(ctx, cfg.KeyFile, d)
	default:
		k, err := pow.MintKey(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("p2p: minting an ephemeral key at difficulty %d: %w", d, err)
		}
		return k, nil
	}
}

func parseAddrInfos(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

func (n *Node) startPubSub() error {
	for _, d := range n.cfg.Domains {
		n.topics = append(n.topics, TopicForDomain(d))
	}
	n.topics = append(n.topics, TopicPapers)

	boot := map[peer.ID]bool{}
	for _, b := range n.bootstrap {
		boot[b.ID] = true
	}
	params := pubsub.DefaultGossipSubParams()
	params.HeartbeatInterval = n.cfg.HeartbeatInterval
	opts := []pubsub.Option{
		pubsub.WithGossipSubParams(params),
		pubsub.WithMessageIdFn(hashMsgID),
		// From is authenticated by the message signature: the cert check
		// relies on it.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithPeerScore(ScoreParams(n.topics, boot, n.cfg.IPColocationWhitelist), ScoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.ExtendedPeerScoreInspectFn(n.storeScores), n.cfg.ScoreInspectInterval),
		// v0.19 sends our own messages to mesh peers only; flooding them
		// to every topic peer above PublishThreshold cuts first-hop latency
		// and covers the time before the first heartbeat builds a mesh.
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(!n.cfg.DisablePeerExchange),
		// Every fresh receipt stays in the seen-cache for its whole
		// freshness window, so re-deliveries of gossiped messages never
		// reach the validator (see ReasonDuplicate).
		pubsub.WithSeenMessagesTTL(n.cfg.MaxAge + 2*n.cfg.ClockSkew),
		// The RPC limit must exceed MaxMessageBytes so oversized messages
		// reach the validator and are counted (and penalised) there.
		pubsub.WithMaxMessageSize(max(pubsub.DefaultMaxMessageSize, 4*n.cfg.MaxMessageBytes)),
		pubsub.WithValidateQueueSize(1024),
		pubsub.WithAppSpecificRpcInspector(n.val.inspectRPC),
		pubsub.WithPeerOutboundQueueSize(256),
		pubsub.WithRawTracer(n.mesh),
		pubsub.WithLogger(n.log.With("system", "pubsub")),
	}
	ps, err := pubsub.NewGossipSub(n.ctx, n.host, opts...)
	if err != nil {
		return fmt.Errorf("p2p: starting gossipsub: %w", err)
	}
	n.ps = ps

	for _, d := range n.cfg.Domains {
		name := TopicForDomain(d)
		if err := ps.RegisterTopicValidator(name, n.val.research(d), pubsub.WithValidatorInline(true)); err != nil {
			return fmt.Errorf("p2p: validator for %s: %w", name, err)
		}
		t, err := ps.Join(name, pubsub.WithTopicMessageIdFn(receiptMsgID))
		if err != nil {
			return fmt.Errorf("p2p: joining %s: %w", name, err)
		}
		sub, err := t.Subscribe(pubsub.WithBufferSize(1024))
		if err != nil {
			return fmt.Errorf("p2p: subscribing %s: %w", name, err)
		}
		n.research[d] = t
		n.goOwned("gossip "+name, func() { n.readResearch(sub) })
	}
	for _, name := range []string{TopicPapers} {
		if err := ps.RegisterTopicValidator(name, n.val.papers(), pubsub.WithValidatorInline(true)); err != nil {
			return fmt.Errorf("p2p: validator for %s: %w", name, err)
		}
		t, err := ps.Join(name)
		if err != nil {
			return fmt.Errorf("p2p: joining %s: %w", name, err)
		}
		sub, err := t.Subscribe(pubsub.WithBufferSize(256))
		if err != nil {
			return fmt.Errorf("p2p: subscribing %s: %w", name, err)
		}
		n.raw[name] = t
		n.goOwned("gossip "+name, func() { n.readRaw(sub) })
	}
	return nil
}

func (n *Node) storeScores(m map[peer.ID]*pubsub.PeerScoreSnapshot) { n.scores.Store(&m) }

// goOwned runs f in a goroutine that Close waits for; it reports false
// (and does not run f) once the node is closing.
func (n *Node) goOwned(name string, f func()) bool {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				n.log.Error("p2p goroutine panicked", "goroutine", name, "panic", r)
				panic(r)
			}
		}()
		f()
	}()
	return true
}

// track registers a goroutine that libp2p started on our behalf (a stream
// handler) so that Close waits for it; it reports false once closing.
func (n *Node) track() bool {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

// Close stops every goroutine the node started, closes subscriber
// channels, and shuts down the DHT, mDNS and the host. It is idempotent.
func (n *Node) Close() error {
	n.lifeMu.Lock()
	if n.closed {
		n.lifeMu.Unlock()
		return nil
	}
	n.lifeMu.Unlock()
	return n.shutdown()
}

func (n *Node) shutdown() error {
	n.lifeMu.Lock()
	n.closed = true
	n.lifeMu.Unlock()
	n.cancel() // stops our loops, pubsub, and in-flight syncs
	if n.notifiee != nil {
		n.host.Network().StopNotify(n.notifiee)
	}
	n.host.RemoveStreamHandler(SyncProtocol)
	n.host.RemoveStreamHandler(PoWProtocol)
	n.host.RemoveStreamHandler(TrainingParamsProtocol)
	n.host.RemoveStreamHandler(TrainingDeltaProtocol)
	n.wg.Wait()

	n.subMu.Lock()
	for id, ch := range n.subs {
		close(ch)
		delete(n.subs, id)
	}
	for id, ch := range n.rawSubs {
		close(ch)
		delete(n.rawSubs, id)
	}
	n.subMu.Unlock()

	var errs []error
	if n.mdns != nil {
		errs = append(errs, n.mdns.Close())
	}
	if n.dht != nil {
		errs = append(errs, n.dht.Close())
	}
	errs = append(errs, n.host.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("p2p: closing node: %w", err)
	}
	n.log.Info("p2p node closed")
	return nil
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host returns the libp2p host (for protocols of later issues).
func (n *Node) Host() host.Host { return n.host }

// Addrs returns the node's listen addresses with /p2p/<id>, ready to be
// given to another node's Connect or Bootstrap.
func (n *Node) Addrs() []multiaddr.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// WebSocketAddrs returns the node's WebSocket listen addresses with
// /p2p/<id>: what a browser peer dials (empty unless
// Config.WebSocketListenAddrs is set).
func (n *Node) WebSocketAddrs() []multiaddr.Multiaddr {
	var out []multiaddr.Multiaddr
	for _, a := range n.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_WS); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Domains returns the research domains this node gossips about (its
// topics are TopicForDomain of each).
func (n *Node) Domains() []string { return slices.Clone(n.cfg.Domains) }

// Connect dials a peer given a multiaddr with /p2p/<id>.
func (n *Node) Connect(ctx context.Context, addr string) error {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return fmt.Errorf("p2p: connect %q: %w", addr, err)
	}
	if n.host.Network().Connectedness(ai.ID) != network.Connected {
		// The gater would refuse it too; this says why.
		if err := n.gater.check(ai.ID, PoWOutbound); err != nil {
			return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
		}
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
	}
	return nil
}

// Publish checks a finding as peers will, adds it to the replica, and
// gossips it on its domain's topic. Beyond RateLimit it returns a
// *RejectedError with ReasonRateLimited (peers would penalise the excess). Publishing a receipt the replica
// already holds does nothing and returns nil, so retries are safe. A
// receipt older than MaxAge is added to the replica and ErrStale is
// returned: sync carries it, gossip does not. Other rule violations return
// a *RejectedError.
func (n *Node) Publish(ctx context.Context, s receipt.Signed, cert AgentCert) error {
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	domain := s.Receipt.Domain
	topic, ok := n.research[domain]
	if !ok {
		return fmt.Errorf("%w %q (node gossips %v)", ErrUnknownDomain, domain, n.cfg.Domains)
	}
	s.Vouch = nil // the envelope carries the cert
	env := Envelope{Receipt: s, Cert: cert}
	data, err := env.Marshal()
	if err != nil {
		return fmt.Errorf("p2p: encoding envelope: %w", err)
	}
	if len(data) > n.cfg.MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), n.cfg.MaxMessageBytes)
	}
	rec, reason, _ := n.val.checkEnvelope(domain, env, n.ID(), n.ID(), len(data), true)
	s.Vouch = cert.Vouch() // the replica keeps it, so sync can forward it vouched
	rec = rec.WithVouch(s.Vouch)
	switch reason {
	case "":
	case ReasonStale:
		if _, err := n.replica.Add(s); err != nil {
			return fmt.Errorf("p2p: adding stale receipt %s: %w", receipt.ShortID(s.ID), err)
		}
		return fmt.Errorf("%w: receipt %s", ErrStale, receipt.ShortID(s.ID))
	default:
		return &RejectedError{Reason: reason}
	}
	if n.replica.Has(s.ID) {
		return nil
	}
	// Peers would reject (and penalise us for) more than RateLimit.
	if !n.val.publish.allow(n.ID(), n.cfg.Now()) {
		return &RejectedError{Reason: ReasonRateLimited}
	}
	added, err := n.addAdmitted(rec)
	if err != nil {
		return fmt.Errorf("p2p: adding receipt %s to the replica: %w", receipt.ShortID(s.ID), err)
	}
	if !added {
		return nil
	}
	if err := topic.Publish(ctx, data, pubsub.WithValidatorData(&validated{env: env, local: true})); err != nil {
		return fmt.Errorf("p2p: publishing receipt %s (it is in the replica; sync will spread it): %w", receipt.ShortID(s.ID), err)
	}
	n.stats.published.Add(1)
	n.announce(Finding{Receipt: s, From: n.ID(), ReceivedAt: n.cfg.Now(), Local: true})
	return nil
}

// readResearch consumes a research subscription: accepted remote findings
// go into the replica, then to the feed and subscribers.
func (n *Node) readResearch(sub *pubsub.Subscription) {
	defer sub.Cancel()
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == n.ID() {
			continue // our own Publish announced it already
		}
		d, ok := msg.ValidatorData.(*validated)
		if !ok {
			continue
		}
		d.env.Receipt.Vouch = d.env.Cert.Vouch()
		added, err := n.addAdmitted(d.rec.WithVouch(d.env.Receipt.Vouch))
		if err != nil {
			n.stats.reject(ReasonReplicaError)
			n.log.Warn("replica refused a validated receipt", "receipt", receipt.ShortID(d.env.Receipt.ID), "err", err)
			continue
		}
		if !added {
			n.stats.duplicates.Add(1)
			continue
		}
		n.stats.delivered.Add(1)
		n.announce(Finding{Receipt: d.env.Receipt, From: msg.GetFrom(), ReceivedAt: n.cfg.Now()})
	}
}

func (n *Node) readRaw(sub *pubsub.Subscription) {
	defer sub.Cancel()
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == n.ID() {
			continue
		}
		pm, ok := msg.ValidatorData.(*PaperMessage)
		if !ok {
			continue
		}
		m := RawMessage{Topic: sub.Topic(), Data: msg.GetData(), From: msg.GetFrom(), ReceivedAt: n.cfg.Now(), Message: pm}
		n.subMu.Lock()
		for _, ch := range n.rawSubs {
			select {
			case ch <- m:
			default:
				n.stats.subscriberDrops.Add(1)
			}
		}
		n.subMu.Unlock()
	}
}

// announce appends f to the feed and hands it to every subscriber that has
// room; slow subscribers lose it (counted in Stats.SubscriberDrops).
func (n *Node) announce(f Finding) {
	n.feedMu.Lock()
	n.feed[n.feedN%len(n.feed)] = f
	n.feedN++
	n.feedMu.Unlock()

	n.subMu.Lock()
	defer n.subMu.Unlock()
	for _, ch := range n.subs {
		select {
		case ch <- f:
		default:
			n.stats.subscriberDrops.Add(1)
		}
	}
}

// Subscribe returns a channel of findings (remote ones once they are in the
// replica, and this node's own) and a cancel function. The channel is
// closed by cancel or Close. It is buffered (SubscriberBuffer); a
// subscriber that falls behind loses findings rather than slowing gossip.
func (n *Node) Subscribe() (<-chan Finding, func()) {
	ch := make(chan Finding, n.cfg.SubscriberBuffer)
	n.subMu.Lock()
	defer n.subMu.Unlock()
	if n.ctx.Err() != nil {
		close(ch)
		return ch, func() {}
	}
	id := n.nextSub
	n.nextSub++
	n.subs[id] = ch
	return ch, func() {
		n.subMu.Lock()
		defer n.subMu.Unlock()
		if c, ok := n.subs[id]; ok {
			delete(n.subs, id)
			close(c)
		}
	}
}

// SubscribeRaw is Subscribe for the papers topic: admitted messages only.
func (n *Node) SubscribeRaw() (<-chan RawMessage, func()) {
	ch := make(chan RawMessage, n.cfg.SubscriberBuffer)
	n.subMu.Lock()
	defer n.subMu.Unlock()
	if n.ctx.Err() != nil {
		close(ch)
		return ch, func() {}
	}
	id := n.nextSub
	n.nextSub++
	n.rawSubs[id] = ch
	return ch, func() {
		n.subMu.Lock()
		defer n.subMu.Unlock()
		if c, ok := n.rawSubs[id]; ok {
			delete(n.rawSubs, id)
			close(c)
		}
	}
}

// Recent returns up to limit of the latest findings, newest first (limit
// <= 0 means all that are kept).
func (n *Node) Recent(limit int) []Finding {
	n.feedMu.Lock()
	defer n.feedMu.Unlock()
	have := min(n.feedN, len(n.feed))
	if limit <= 0 || limit > have {
		limit = have
	}
	out := make([]Finding, 0, limit)
	for i := 1; i <= limit; i++ {
		out = append(out, n.feed[(n.feedN-i)%len(n.feed)])
	}
	return out
}

// PeerScore returns p's GossipSub score as last sampled (every
// ScoreInspectInterval), and whether it has been sampled.
func (n *Node) PeerScore(p peer.ID) (float64, bool) {
	m := n.scores.Load()
	if m == nil {
		return 0, false
	}
	s, ok := (*m)[p]
	if !ok {
		return 0, false
	}
	return s.Score, true
}

// Peers describes the connected peers, sorted by ID.
func (n *Node) Peers() []PeerInfo {
	inTopic := map[peer.ID][]string{}
	inMesh := map[peer.ID][]string{}
	for _, t := range n.topics {
		for _, p := range n.ps.ListPeers(t) {
			inTopic[p] = append(inTopic[p], t)
		}
		for p := range n.mesh.peers(t) {
			inMesh[p] = append(inMesh[p], t)
		}
	}
	var out []PeerInfo
	for _, p := range n.host.Network().Peers() {
		info := PeerInfo{
			ID:      p,
			Addrs:   n.host.Peerstore().Addrs(p),
			Topics:  inTopic[p],
			Mesh:    inMesh[p],
			Latency: n.host.Peerstore().LatencyEWMA(p),
		}
		info.Score, info.Scored = n.PeerScore(p)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Stats returns a snapshot of the node's counters and gauges.
func (n *Node) Stats() Stats {
	s := n.stats.snapshot()
	s.Peers = len(n.host.Network().Peers())
	s.Mesh = n.mesh.sizes()
	s.Admission = n.cfg.Admission.Stats()
	return s
}

// Admission is the node's admission check (shared with its replica's sync
// handling).
func (n *Node) Admission() *admission.Checker { return n.cfg.Admission }
