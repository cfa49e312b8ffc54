// Package p2p is the knowledge plane: a libp2p node per site that shares
// research findings with every other node in about a second and converges
// the leaderboards.
//
//   - Host: TCP and QUIC (127.0.0.1 unless configured), Noise, Yamux,
//     identify, ping; circuit relay and hole punching by option. The node
//     key is a persistent Ed25519 libp2p key (LoadOrCreateKey).
//   - Identity cost: keys are minted to pass the static S/Kademlia puzzle
//     at Config.PoWDifficulty (package pow), and a connection gater
//     refuses peers below it in both directions; Config.PoWDynamic adds
//     the dynamic puzzle, a signed proof sent over PoWProtocol on connect
//     (pow.go). Refusals are counted in Stats.PoWRefused.
//   - Discovery: a Kademlia DHT in server mode under our own protocol
//     prefix, bootstrap peers, a rendezvous namespace, optional mDNS. A peer
//     keeper tops the node up to MinPeers connections.
//   - Gossip: GossipSub with one topic per research domain
//     (TopicForDomain), plus TopicPapers (PaperMessage: papers, reviews,
//     breakthrough announcements). A research message is an Envelope
//     (signed receipt + AgentCert); its message id is the receipt id. Topic
//     validators run every message through the node's admission check
//     (package admission) and count what they reject (see the Reason*
//     constants), and peer scoring (ScoreParams) graylists peers that flood
//     or send invalid messages.
//   - Sync: GossipSub only guarantees best effort (v0.19 publishes to mesh
//     peers only, so a message published before the first heartbeat can be
//     lost), so the leaderboard Replica runs anti-entropy over SyncProtocol
//     when a node dials a peer and every SyncInterval. Frames are read as
//     their bytes arrive (never allocated at their announced length), and a
//     peer may hold one inbound sync stream at a time.
//   - Visibility: Recent (a feed), Subscribe (for server-sent events),
//     Peers, Stats and a Prometheus Collector.
//
// Lifecycle: New starts everything; Close stops every goroutine the node
// started and waits for them.
package p2p
