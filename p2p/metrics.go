package p2p

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports one node's Stats to Prometheus. Register one per node
// (wrap the registerer with prometheus.WrapRegistererWith to tell several
// nodes of one process apart).
type Collector struct{ n *Node }

// NewCollector returns a collector for n.
func NewCollector(n *Node) *Collector { return &Collector{n: n} }

var (
	descPublished = prometheus.NewDesc("hyperspace_p2p_published_total",
		"Findings this node published on gossip.", nil, nil)
	descDelivered = prometheus.NewDesc("hyperspace_p2p_delivered_total",
		"Remote findings accepted from gossip and new to the replica.", nil, nil)
	descDuplicates = prometheus.NewDesc("hyperspace_p2p_duplicates_total",
		"Findings accepted from gossip that the replica already held.", nil, nil)
	descRejected = prometheus.NewDesc("hyperspace_p2p_rejected_total",
		"Gossip messages not accepted, by reason.", []string{"reason"}, nil)
	descSubscriberDrops = prometheus.NewDesc("hyperspace_p2p_subscriber_drops_total",
		"Findings a slow subscriber missed.", nil, nil)
	descPeers = prometheus.NewDesc("hyperspace_p2p_peers",
		"Connected peers.", nil, nil)
	descMesh = prometheus.NewDesc("hyperspace_p2p_mesh_peers",
		"GossipSub mesh size by topic.", []string{"topic"}, nil)
	descSyncRounds = prometheus.NewDesc("hyperspace_p2p_sync_rounds_total",
		"Completed leaderboard sync exchanges, by role.", []string{"role"}, nil)
	descSyncFailures = prometheus.NewDesc("hyperspace_p2p_sync_failures_total",
		"Failed leaderboard sync exchanges.", nil, nil)
	descSyncBytes = prometheus.NewDesc("hyperspace_p2p_sync_bytes_total",
		"Leaderboard sync bytes, by direction.", []string{"direction"}, nil)
	descSyncAdded = prometheus.NewDesc("hyperspace_p2p_sync_records_added_total",
		"Records this node added through sync.", nil, nil)
	descSyncRefused = prometheus.NewDesc("hyperspace_p2p_sync_refused_total",
		"Inbound sync streams reset because the peer or the node had too many open.", nil, nil)
	descPoWRefused = prometheus.NewDesc("hyperspace_p2p_pow_refused_total",
		"Connections refused or closed because the peer's identity failed the proof-of-work puzzle, by direction and reason.", []string{"direction", "reason"}, nil)
	descAdmitted = prometheus.NewDesc("hyperspace_admission_accepted_total",
		"Records from the network admitted, by path and kind.", []string{"path", "kind"}, nil)
	descRefused = prometheus.NewDesc("hyperspace_admission_rejected_total",
		"Records from the network rejected, by path, kind and reason.", []string{"path", "kind", "reason"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descDelivered, descDuplicates, descRejected,
		descSubscriberDrops, descPeers, descMesh, descSyncRounds, descSyncFailures, descSyncBytes, descSyncAdded,
		descSyncRefused, descPoWRefused, descAdmitted, descRefused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(descPublished, s.Published)
	counter(descDelivered, s.Delivered)
	counter(descDuplicates, s.Duplicates)
	for reason, v := range s.Rejected {
		counter(descRejected, v, reason)
	}
	counter(descSubscriberDrops, s.SubscriberDrops)
	gauge(descPeers, s.Peers)
	for topic, v := range s.Mesh {
		gauge(descMesh, v, topic)
	}
	counter(descSyncRounds, s.SyncRounds, "initiator")
	counter(descSyncRounds, s.SyncServed, "responder")
	counter(descSyncFailures, s.SyncFailures)
	counter(descSyncBytes, s.SyncBytesSent, "sent")
	counter(descSyncBytes, s.SyncBytesReceived, "received")
	counter(descSyncAdded, s.SyncAdded)
	counter(descSyncRefused, s.SyncRefused)
	for k, v := range s.PoWRefused {
		if dir, reason, ok := strings.Cut(k, "/"); ok {
			counter(descPoWRefused, v, dir, reason)
		}
	}
	for k, v := range s.Admission.Accepted {
		if path, kind, ok := strings.Cut(k, "/"); ok {
			counter(descAdmitted, v, path, kind)
		}
	}
	for k, v := range s.Admission.Rejected {
		parts := strings.SplitN(k, "/", 3)
		if len(parts) == 3 {
			counter(descRefused, v, parts[0], parts[1], parts[2])
		}
	}
}
