package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/modelserve"
	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

func nodeCmd() *cobra.Command {
	var c common
	var listen, bootstrap, p2pListen, wsListen, domainList, joinTraining, capabilities string
	var pulseEvery time.Duration
	var mdns, relay, holePunch bool
	var pw powFlags
	var inf inferenceFlags
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one P2P node: libp2p host, CRDT leaderboard, and its Temporal worker on node-<peerID>",
		Long: `node joins the knowledge plane: a libp2p host (TCP and QUIC, Noise, Yamux) with a
persistent Ed25519 identity in --state-dir, the Kademlia DHT, GossipSub topics
per domain, and the leaderboard CRDT replica on disk. It serves the Temporal
task queue node-<peerID>, where campaigns run their agents' Hypothesize,
RecordResult and Share activities, and registers itself in the site database
so new campaigns spread their agents over the live nodes. With --listen it
also serves the REST API, including /api/v1/peers, /api/v1/gossip and the
server-sent-events stream /api/v1/gossip/stream.

Identities cost work (S/Kademlia): the identity is minted so that
SHA-256(SHA-256(public key)) has --pow-difficulty leading zero bits, and the
node refuses connections to and from peers whose keys fall below its own
--pow-difficulty (counted in hyperspace_p2p_pow_refused_total).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := c.logger()
			opts := node.Options{
				Dir: filepath.Join(c.StateDir, "node"), ListenAddrs: splitList(p2pListen), WebSocketListenAddrs: splitList(wsListen), Bootstrap: splitList(bootstrap),
				Domains: domainsOrAll(domainList), EnableMDNS: mdns, EnableRelay: relay, EnableHolePunching: holePunch,
				Logger: log, RegisterMetrics: true, JoinTraining: splitList(joinTraining),
				Capabilities: splitList(capabilities), PulseInterval: pulseEvery,
			}
			if err := pw.apply(&opts); err != nil {
				return err
			}
			// Reviews re-run experiments and need the data; the rest does not.
			if dir, err := findDataDir(c.DataDir, log); err == nil {
				c.DataDir = dir
			} else {
				log.Warn("no complete data dir: reviews that re-run experiments will fail until `hyperspace data fetch` is run", "err", err)
			}
			svc, err := c.connect(ctx, log)
			if err != nil {
				return err
			}
			defer svc.Close()
			st, b, tc := svc.Store, svc.Blob, svc.Temporal
			acts, err := c.activities(ctx, st, b, log, true)
			if err != nil {
				return err
			}
			opts.Temporal, opts.Activities, opts.Store = tc, acts, st
			n, err := node.Start(ctx, opts)
			if err != nil {
				return err
			}
			defer n.Close()
			fmt.Printf("node %s\n", n.P2P.ID())
			for _, a := range n.P2P.Addrs() {
				fmt.Printf("  listening: %s\n", a)
			}
			fmt.Printf("  task queue: %s\n", n.TaskQueue())
			isvc, reg, err := c.startInference(ctx, inf, st, b, log, func(s *inference.Service, r *modelserve.Registry) error {
				return n.ServeInference(ctx, s, r, node.InferenceOptions{RegisterMetrics: true})
			})
			if err != nil {
				return err
			}
			if listen != "" {
				srv := &api.Server{Store: st, Blob: b, Temporal: tc, Domains: acts.Domains, Namespace: c.Namespace, Logger: log,
					Node: &api.NetworkNode{P2P: n.P2P, Replica: n.Replica}, PublicReads: c.PublicReads, LLMAllow: c.LLMAllow}
				if isvc != nil {
					srv.Inference, srv.Models = isvc, reg
				}
				url, shutdown, err := serveHTTP(ctx, listen, srv.Handler(), log)
				if err != nil {
					return err
				}
				defer shutdown()
				fmt.Printf("  API: %s/api/v1 (peers: %s/api/v1/peers)\n", url, url)
				if isvc != nil {
					fmt.Printf("  OpenAI-compatible API: %s/v1 (a read token is the API key)\n", url)
				}
			}
			<-ctx.Done()
			return nil
		},
	}
	c.addFlags(cmd, "127.0.0.1:7233")
	f := cmd.Flags()
	f.StringVar(&p2pListen, "p2p-listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1", "comma-separated libp2p listen multiaddrs")
	f.StringVar(&wsListen, "ws-listen", "", "comma-separated WebSocket listen multiaddrs for browser peers (the /mesh/ page), e.g. "+p2p.DefaultWebSocketListenAddr+" (empty: off)")
	f.StringVar(&bootstrap, "bootstrap", "", "comma-separated multiaddrs (with /p2p/<id>) of peers to join through")
	f.StringVar(&domainList, "domains", "", "comma-separated domains to gossip (default: every domain this build knows)")
	f.BoolVar(&mdns, "mdns", false, "discover peers on the LAN with mDNS")
	f.BoolVar(&relay, "relay", false, "circuit relay v2: reach and be reached through relays when behind a NAT, and relay for others (with AutoNAT)")
	f.BoolVar(&holePunch, "hole-punching", false, "DCUtR hole punching (upgrade relayed connections to direct ones) and UPnP/NAT-PMP port mapping; use with --relay")
	f.StringVar(&capabilities, "capabilities", strings.Join(node.DefaultCapabilities, ","), "capabilities this node claims in its pulse presences (of "+strings.Join(pulse.Capabilities, ", ")+"); a claim earns points only once validators verify it")
	f.DurationVar(&pulseEvery, "pulse-every", node.DefaultPulseInterval, "pulse round length (must match the site's --pulse-every)")
	f.StringVar(&joinTraining, "join-training", "", "comma-separated training run ids of other sites to contribute DiLoCo deltas to (rounds are heard on hyperspace/training/<run>/1)")
	f.StringVar(&listen, "listen", "", "also serve the REST API on this address, e.g. 127.0.0.1:8081 (empty: off)")
	pw.add(cmd)
	inf.add(cmd)
	c.addPublicReads(cmd)
	return cmd
}

func domainsOrAll(list string) []string {
	if d := splitList(list); len(d) > 0 {
		return d
	}
	return registry().Names()
}

// powFlags are the identity puzzles' difficulties (node, dev).
type powFlags struct{ Difficulty, Dynamic int }

func (p *powFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&p.Difficulty, "pow-difficulty", p2p.DefaultPoWDifficulty,
		"identity proof of work (S/Kademlia static puzzle), in leading zero bits of SHA-256(SHA-256(public key)), 0 to 32: "+
			"a new node.key is minted to it (2^d key generations; the default takes well under a second), "+
			"and the node refuses connections, both ways, to peers whose keys fall below it. "+
			"Each node enforces its own difficulty: peers of a site with a lower one are refused by this node (they may still accept it). "+
			"An existing node.key below it is an error: delete it to mint a new identity (the peer ID changes). 0: off")
	f.IntVar(&p.Dynamic, "pow-dynamic", 0,
		"dynamic identity puzzle (S/Kademlia), 0 to 32 bits: solved at start for this node's key (2^d hashes), "+
			"its proof sent to each peer on connect over "+p2p.PoWProtocol+"; peers that send no valid proof of at least this difficulty "+
			"within 5s are disconnected, so turn it on at every node of the network. 0: off")
}

// apply validates the flags and sets o's difficulties.
func (p powFlags) apply(o *node.Options) error {
	if err := pow.Validate(p.Difficulty); err != nil {
		return fmt.Errorf("--pow-difficulty: %w", err)
	}
	if err := pow.Validate(p.Dynamic); err != nil {
		return fmt.Errorf("--pow-dynamic: %w", err)
	}
	o.PoWDifficulty, o.PoWDynamic = p.Difficulty, p.Dynamic
	if p.Difficulty == 0 {
		o.PoWDifficulty = p2p.PoWOff
	}
	return nil
}
