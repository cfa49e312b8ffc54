package p2p

import "github.com/prometheus/client_golang/prometheus"

// InferenceCollector exports one node's InferenceStats to Prometheus
// (register it beside the node's Collector).
type InferenceCollector struct{ n *Node }

// NewInferenceCollector returns a collector of n's inference-plane counters.
func NewInferenceCollector(n *Node) *InferenceCollector { return &InferenceCollector{n: n} }

var (
	descInferForwarded = prometheus.NewDesc("hyperspace_p2p_inference_forwarded_total",
		"Requests forwarded to a peer that answered them.", nil, nil)
	descInferHedges = prometheus.NewDesc("hyperspace_p2p_inference_hedges_fired_total",
		"Hedged requests sent because the first provider was slow to answer.", nil, nil)
	descInferHedgeWins = prometheus.NewDesc("hyperspace_p2p_inference_hedge_wins_total",
		"Forwarded requests answered by a hedged request.", nil, nil)
	descInferFailures = prometheus.NewDesc("hyperspace_p2p_inference_failures_total",
		"Provider attempts that failed before their header or answered 5xx.", nil, nil)
	descInferServed = prometheus.NewDesc("hyperspace_p2p_inference_served_total",
		"Requests this node answered for peers.", nil, nil)
	descInferRefused = prometheus.NewDesc("hyperspace_p2p_inference_refused_total",
		"Inbound inference requests refused for the per-peer or total concurrency limit.", nil, nil)
	descInferRecords = prometheus.NewDesc("hyperspace_p2p_inference_capability_records",
		"Admitted capability records of other nodes held.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *InferenceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInferForwarded, descInferHedges, descInferHedgeWins,
		descInferFailures, descInferServed, descInferRefused, descInferRecords} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *InferenceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.InferenceStats()
	for d, v := range map[*prometheus.Desc]uint64{descInferForwarded: s.Forwarded, descInferHedges: s.HedgesFired,
		descInferHedgeWins: s.HedgeWins, descInferFailures: s.Failures, descInferServed: s.Served, descInferRefused: s.Refused} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(descInferRecords, prometheus.GaugeValue, float64(s.CachedRecords))
}
