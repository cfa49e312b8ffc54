package p2p

import (
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer score thresholds. A peer's score is the sum over topics of
// TopicWeight × (P1 + P2 + P4 terms), capped at TopicScoreCap, plus P5, P6
// and P7 (see ScoreParams). Honest peers sit between 0 and about +50; the
// negative thresholds are reached only through penalties:
//
//   - one invalid message costs 100 (P4 is quadratic: n invalid messages
//     cost 100·n²), which honest peers can incur only at the edge of the
//     clock-skew window, so one is tolerated;
//   - two (−400) fall below GossipThreshold: no more IHAVE/IWANT with them;
//   - three (−900) fall below PublishThreshold: our own messages are no
//     longer flood-published to them;
//   - four (−1600) fall below GraylistThreshold: every RPC they send is
//     dropped unread, so a flooder or forger stops costing us CPU.
//
// The counter decays to 1% over an hour, so a graylisted peer stays
// graylisted for tens of minutes and cannot reset by reconnecting
// (RetainScore).
const (
	GossipThreshold             = -250.0
	PublishThreshold            = -500.0
	GraylistThreshold           = -1000.0
	AcceptPXThreshold           = 100.0 // only bootstrap peers (P5 = +100) are trusted for peer exchange
	OpportunisticGraftThreshold = 3.0   // graft better peers when the median mesh score is below this

	// invalidMessageWeight is P4's weight: −100 per invalid message, squared.
	invalidMessageWeight = -100.0
	// bootstrapScore is P5 for configured bootstrap peers.
	bootstrapScore = 100.0
)

// ScoreThresholds returns the thresholds every node uses.
func ScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             GossipThreshold,
		PublishThreshold:            PublishThreshold,
		GraylistThreshold:           GraylistThreshold,
		AcceptPXThreshold:           AcceptPXThreshold,
		OpportunisticGraftThreshold: OpportunisticGraftThreshold,
	}
}

// loopback networks are exempt from the IP colocation penalty: on one
// machine (tests, a laptop running several nodes) every peer shares
// 127.0.0.1, and the penalty would graylist honest peers.
var loopbackNets = []*net.IPNet{
	{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)},
	{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
}

// ScoreParams returns the peer score parameters for the given topics.
// bootstrap peers get a positive application score (P5) so that their peer
// exchange records are accepted; whitelist extends the loopback exemption
// from P6.
func ScoreParams(topics []string, bootstrap map[peer.ID]bool, whitelist []*net.IPNet) *pubsub.PeerScoreParams {
	// decayAfter returns the per-DecayInterval factor that takes a counter
	// to DecayToZero (1%) after d.
	decayAfter := func(d time.Duration) float64 { return pubsub.ScoreParameterDecay(d) }

	p := &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{},
		// Positive topic contributions are capped so that no peer can buy
		// enough credit with good behaviour to absorb a graylisting
		// penalty.
		TopicScoreCap: 50,

		// P5: trust configured bootstrap peers (+100), nobody else.
		AppSpecificScore: func(p peer.ID) float64 {
			if bootstrap[p] {
				return bootstrapScore
			}
			return 0
		},
		AppSpecificWeight: 1,

		// P6: more than 10 peers from one IP each cost (n−10)²·35, a
		// Sybil defence for the open internet. Loopback and configured
		// LANs are exempt.
		IPColocationFactorWeight:    -35,
		IPColocationFactorThreshold: 10,
		IPColocationFactorWhitelist: append(append([]*net.IPNet(nil), loopbackNets...), whitelist...),

		// P7: router-detected misbehaviour (re-grafting during a prune
		// backoff, IHAVE promises not kept). Six strikes are tolerated
		// (a loaded honest peer may break a promise); beyond that each
		// costs 10·excess². Decays over 10 minutes.
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     decayAfter(10 * time.Minute),

		DecayInterval: pubsub.DefaultDecayInterval, // counters decay every second
		DecayToZero:   pubsub.DefaultDecayToZero,   // and count as zero below 0.01
		// Remember the score of a peer that disconnects for an hour, so a
		// graylisted peer cannot come back clean.
		RetainScore: time.Hour,
	}
	for _, t := range topics {
		p.Topics[t] = &pubsub.TopicScoreParams{
			TopicWeight: 1,

			// P1: time in mesh, +1 per 6 minutes up to +10 after an hour:
			// a small preference for stable mesh peers.
			TimeInMeshWeight:  1.0 / 360,
			TimeInMeshQuantum: time.Second,
			TimeInMeshCap:     3600,

			// P2: first deliveries, +1 per message we got first from this
			// peer, capped at 20, forgotten over 10 minutes: rewards the
			// peers that actually bring us findings.
			FirstMessageDeliveriesWeight: 1,
			FirstMessageDeliveriesDecay:  decayAfter(10 * time.Minute),
			FirstMessageDeliveriesCap:    20,

			// P3/P3b (mesh delivery rate) are off: findings are sparse
			// (minutes apart), so a quiet but honest mesh peer would look
			// like a non-forwarding one. Eclipse resistance comes from P4,
			// P6, P7, Dout and the CRDT sync instead.
			MeshMessageDeliveriesWeight: 0,
			MeshFailurePenaltyWeight:    0,

			// P4: invalid messages, −100·n², decaying over an hour (see
			// the thresholds above).
			InvalidMessageDeliveriesWeight: invalidMessageWeight,
			InvalidMessageDeliveriesDecay:  decayAfter(time.Hour),
		}
	}
	return p
}
