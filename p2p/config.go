package p2p

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	coreconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/pow"
)

// Default values used by DefaultConfig and filled in by New for zero fields.
const (
	DefaultSyncInterval      = 10 * time.Second
	DefaultSyncTimeout       = 30 * time.Second
	DefaultSyncDebounce      = 250 * time.Millisecond
	DefaultMaxMessageBytes   = 256 << 10
	DefaultMaxSyncBytes      = 64 << 20
	DefaultClockSkew         = 2 * time.Minute
	DefaultMaxAge            = 10 * time.Minute
	DefaultHeartbeat         = time.Second
	DefaultMinPeers          = 8
	DefaultConnLow           = 64
	DefaultConnHigh          = 128
	DefaultDiscoveryInterval = 30 * time.Second
	DefaultFeedSize          = 256
	DefaultSubscriberBuffer  = 256
	DefaultScoreInspect      = time.Second
	DefaultProtocolPrefix    = "/hyperspace"
	DefaultRendezvous        = "hyperspace/knowledge/1"
	DefaultMDNSService       = "hyperspace-knowledge"
	DefaultPoWTimeout        = 5 * time.Second
)

// DefaultPoWDifficulty is the static identity puzzle's default difficulty
// (leading zero bits of SHA-256(SHA-256(public key)); see package pow): a
// new identity costs 2^12 = 4,096 Ed25519 key generations, about 40-90 ms
// on 2 cores (BENCHMARKS.md, "identity proof of work"), so a node starts at once, while an
// attacker pays the same for every one of its identities. Checking a peer
// is two SHA-256 calls.
const DefaultPoWDifficulty = 12

// PoWOff as Config.PoWDifficulty turns the static puzzle off (the zero
// value means DefaultPoWDifficulty).
const PoWOff = -1

// DefaultListenAddrs are loopback-only: a node is private unless told
// otherwise.
var DefaultListenAddrs = []string{
	"/ip4/127.0.0.1/tcp/0",
	"/ip4/127.0.0.1/udp/0/quic-v1",
}

// DefaultWebSocketListenAddr is the WebSocket listen address that
// `hyperspace dev` gives its first node so a browser tab on the same machine
// can join (see Config.WebSocketListenAddrs): loopback, a random port.
const DefaultWebSocketListenAddr = "/ip4/127.0.0.1/tcp/0/ws"

// RateLimit is a per-publisher token bucket: Rate messages per second on
// average with bursts of up to Burst messages.
type RateLimit struct {
	Rate  float64 // tokens added per second
	Burst int     // bucket capacity
}

// DefaultRateLimit allows a node 20 findings per second with bursts of 200:
// orders of magnitude above what research agents produce (a few per minute
// per agent), low enough that a flood is cut off after a fraction of a
// second.
var DefaultRateLimit = RateLimit{Rate: 20, Burst: 200}

// Config configures a Node. The zero value of every field means "use the
// default" (see DefaultConfig), except Replica, which is required, and the
// Enable*/Disable* switches, whose zero value is the documented default.
type Config struct {
	// KeyFile holds the node's libp2p Ed25519 key (see LoadOrCreateKey).
	// When empty and PrivKey is nil the node gets an ephemeral key.
	KeyFile string
	// PrivKey, if set, is used instead of KeyFile (tests, benchmarks). It
	// must meet PoWDifficulty (mint one with pow.MintKey).
	PrivKey crypto.PrivKey

	// PoWDifficulty is the static identity puzzle (package pow): this
	// node's own key must have at least this many leading zero bits in
	// SHA-256(SHA-256(P)), keys it creates are minted to it (KeyFile,
	// ephemeral keys), and it refuses to connect to peers whose keys fall
	// below it, in both directions (counted in Stats.PoWRefused). Each node
	// applies its own difficulty: peers with a lower one are refused by us
	// and may still accept us. 0 means DefaultPoWDifficulty, PoWOff turns
	// the puzzle off; at most pow.MaxDifficulty.
	PoWDifficulty int
	// PoWDynamic, when above 0, turns the dynamic puzzle on: the node
	// solves it for its key at this difficulty at start, sends the proof
	// to every peer over PoWProtocol on connect, and disconnects peers that
	// do not send a valid proof of at least this difficulty within
	// PoWTimeout (so it keeps only peers that run the dynamic puzzle too).
	// Default 0: off.
	PoWDynamic int
	// PoWTimeout is how long a peer has to send its dynamic proof (default
	// 5s).
	PoWTimeout time.Duration

	// ListenAddrs are multiaddrs to listen on (default: TCP and QUIC on
	// 127.0.0.1, random ports).
	ListenAddrs []string
	// WebSocketListenAddrs are extra listen multiaddrs of the WebSocket
	// transport, the one browsers can dial (e.g. /ip4/127.0.0.1/tcp/0/ws;
	// see DefaultWebSocketListenAddr and the /mesh/ page). Empty (the
	// default): the node does not listen for browser peers. The transport
	// is always registered, so a node can dial peers' /ws addresses.
	WebSocketListenAddrs []string
	// Bootstrap peers: full multiaddrs ending in /p2p/<id>. They are
	// dialled at start, re-dialled whenever the node has fewer than
	// MinPeers peers, seed the DHT, and are trusted for peer exchange.
	Bootstrap []string

	// Domains this node gossips about: one topic per domain,
	// TopicForDomain(d). At least one is required.
	Domains []string
	// Replica is the node's leaderboard replica. Required.
	Replica Replica

	// EnableMDNS announces and discovers peers on the local network.
	EnableMDNS bool
	// EnableRelay turns on circuit relay v2 (client and service) for
	// nodes behind NATs; EnableHolePunching adds DCUtR hole punching.
	EnableRelay, EnableHolePunching bool
	// DisableDHT turns the Kademlia DHT off (tests and benchmarks that
	// wire the topology by hand).
	DisableDHT bool
	// DisablePeerExchange turns off GossipSub PX on prune.
	DisablePeerExchange bool
	// DisableSyncOnConnect turns off the anti-entropy exchange that a node
	// starts when it dials a peer.
	DisableSyncOnConnect bool

	// SyncInterval is the period of anti-entropy with every connected peer
	// (default 10s; negative disables periodic sync).
	SyncInterval time.Duration
	// SyncTimeout bounds one sync exchange (default 30s).
	SyncTimeout time.Duration
	// SyncDebounce collects connection events for this long before syncing
	// with the new peers (default 250ms).
	SyncDebounce time.Duration
	// MaxSyncBytes bounds one sync frame (default 64 MiB).
	MaxSyncBytes int

	// MaxMessageBytes bounds a gossip message (default 256 KiB). All nodes
	// of a network must agree on it: a node with a larger limit would
	// forward messages its peers reject, and be penalised for it.
	MaxMessageBytes int
	// ClockSkew is the tolerated difference between a receipt's timestamp
	// and this node's clock (default 2m).
	ClockSkew time.Duration
	// MaxAge is how old a receipt may be and still be gossiped (default
	// 10m). Older receipts travel by sync only: Publish adds them to the
	// replica and returns ErrStale; received ones are rejected as stale
	// (or as replays when already known).
	MaxAge time.Duration
	// RateLimit bounds what one publisher may send (default
	// DefaultRateLimit).
	RateLimit RateLimit

	// HeartbeatInterval is the GossipSub heartbeat (default 1s). Tests may
	// shorten it to form meshes faster.
	HeartbeatInterval time.Duration
	// MinPeers: below this many connected peers the node looks for more
	// (bootstrap, DHT, rendezvous). Default 8, above GossipSub's D=6.
	MinPeers int
	// ConnLow and ConnHigh are the connection manager's water marks
	// (default 64/128).
	ConnLow, ConnHigh int
	// DiscoveryInterval is the period of the peer keeper (default 30s).
	DiscoveryInterval time.Duration
	// ProtocolPrefix is the DHT protocol prefix (default "/hyperspace").
	ProtocolPrefix string
	// Rendezvous is the DHT namespace nodes advertise under.
	Rendezvous string
	// MDNSService is the mDNS service name.
	MDNSService string
	// IPColocationWhitelist lists networks exempt from the IP colocation
	// score penalty (loopback is always exempt), e.g. a lab's LAN.
	IPColocationWhitelist []*net.IPNet

	// FeedSize is the number of recent findings kept for Recent (default
	// 256); SubscriberBuffer is the channel size of Subscribe (default 256;
	// a subscriber that falls behind loses findings, counted in Stats).
	FeedSize, SubscriberBuffer int
	// ScoreInspectInterval is how often peer scores are sampled for Peers
	// and metrics (default 1s).
	ScoreInspectInterval time.Duration

	// Admission is the node's admission check, shared with every other
	// path records arrive by (default: one built from MaxMessageBytes,
	// ClockSkew, MaxAge, Domains and Now).
	Admission *admission.Checker

	// NewHost, when set, builds the node's libp2p host in place of a real
	// one (a simulated network: go-libp2p's mocknet, see package p2p/sim).
	// It is given the node's key and the identity puzzle's connection
	// gater, which it should install if its network can; listen
	// addresses, transports, security, muxer, relay and the connection
	// manager are then the factory's business. Default nil: a real host
	// (TCP, QUIC, WebSocket; Noise; yamux).
	NewHost func(priv crypto.PrivKey, gater coreconnmgr.ConnectionGater) (host.Host, error)

	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock used for timestamp checks and rate limiting
	// (default time.Now).
	Now func() time.Time
}

// DefaultConfig returns a Config with every default filled in; callers set
// Domains and Replica (and usually KeyFile, ListenAddrs, Bootstrap).
func DefaultConfig() Config {
	var c Config
	c.fillDefaults()
	return c
}

func (c *Config) fillDefaults() {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = append([]string(nil), DefaultListenAddrs...)
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = DefaultSyncTimeout
	}
	if c.SyncDebounce <= 0 {
		c.SyncDebounce = DefaultSyncDebounce
	}
	if c.MaxSyncBytes <= 0 {
		c.MaxSyncBytes = DefaultMaxSyncBytes
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.RateLimit.Rate <= 0 || c.RateLimit.Burst <= 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeat
	}
	if c.MinPeers <= 0 {
		c.MinPeers = DefaultMinPeers
	}
	if c.ConnLow <= 0 {
		c.ConnLow = DefaultConnLow
	}
	if c.ConnHigh <= c.ConnLow {
		c.ConnHigh = max(DefaultConnHigh, 2*c.ConnLow)
	}
	if c.DiscoveryInterval <= 0 {
		c.DiscoveryInterval = DefaultDiscoveryInterval
	}
	if c.ProtocolPrefix == "" {
		c.ProtocolPrefix = DefaultProtocolPrefix
	}
	if c.Rendezvous == "" {
		c.Rendezvous = DefaultRendezvous
	}
	if c.MDNSService == "" {
		c.MDNSService = DefaultMDNSService
	}
	if c.FeedSize <= 0 {
		c.FeedSize = DefaultFeedSize
	}
	if c.SubscriberBuffer <= 0 {
		c.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if c.ScoreInspectInterval <= 0 {
		c.ScoreInspectInterval = DefaultScoreInspect
	}
	if c.PoWDifficulty == 0 {
		c.PoWDifficulty = DefaultPoWDifficulty
	}
	if c.PoWTimeout <= 0 {
		c.PoWTimeout = DefaultPoWTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Admission == nil {
		c.Admission = admission.New(admission.Config{ClockSkew: c.ClockSkew, MaxAge: c.MaxAge, Domains: c.Domains, Now: c.Now,
			Quotas: map[string]admission.Quota{admission.PathSync: admission.DefaultSyncQuota}})
	}
}

func (c *Config) validate() error {
	if c.Replica == nil {
		return fmt.Errorf("p2p: config: Replica is required")
	}
	if len(c.Domains) == 0 {
		return fmt.Errorf("p2p: config: at least one domain is required")
	}
	if c.PoWDifficulty != PoWOff {
		if err := pow.Validate(c.PoWDifficulty); err != nil {
			return fmt.Errorf("p2p: config: PoWDifficulty: %w (or PoWOff)", err)
		}
	}
	if err := pow.Validate(c.PoWDynamic); err != nil {
		return fmt.Errorf("p2p: config: PoWDynamic: %w", err)
	}
	seen := map[string]bool{}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "/ \t\n") {
			return fmt.Errorf("p2p: config: invalid domain %q", d)
		}
		if seen[d] {
			return fmt.Errorf("p2p: config: duplicate domain %q", d)
		}
		seen[d] = true
	}
	return nil
}

// StaticPoW is the static puzzle difficulty the config asks for, with
// defaults applied: 0 when off (PoWOff), DefaultPoWDifficulty when unset.
func (c Config) StaticPoW() int {
	switch {
	case c.PoWDifficulty == 0:
		return DefaultPoWDifficulty
	case c.PoWDifficulty < 0:
		return 0
	}
	return c.PoWDifficulty
}

// Topic names.
const (
	// TopicPapers carries papers, reviews and breakthrough announcements
	// (PaperMessage).
	TopicPapers = "hyperspace/papers/1"
)

// TopicForDomain returns the gossip topic of a research domain.
func TopicForDomain(domain string) string { return "hyperspace/research/" + domain + "/1" }
