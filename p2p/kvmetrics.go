package p2p

import "github.com/prometheus/client_golang/prometheus"

// KVCollector exports a KVPrefixStore's KVStats to Prometheus (one per
// store; wrap the registerer to tell several apart).
type KVCollector struct{ s *KVPrefixStore }

// NewKVCollector returns a collector for s.
func NewKVCollector(s *KVPrefixStore) *KVCollector { return &KVCollector{s: s} }

var (
	descKVStored = prometheus.NewDesc("hyperspace_kv_chunks_stored_total",
		"KV-prefix chunks other nodes put here and admission admitted.", nil, nil)
	descKVServed = prometheus.NewDesc("hyperspace_kv_chunks_served_total",
		"KV-prefix chunk gets (fetches and probes) answered with a chunk.", nil, nil)
	descKVManifests = prometheus.NewDesc("hyperspace_kv_manifests_served_total",
		"KV-prefix manifest gets answered.", nil, nil)
	descKVRejected = prometheus.NewDesc("hyperspace_kv_rejected_chunks_total",
		"KV-prefix chunks refused by admission, put here or fetched.", nil, nil)
	descKVProbes = prometheus.NewDesc("hyperspace_kv_probes_total",
		"KV-prefix availability probes, by result.", []string{"result"}, nil)
	descKVRepairs = prometheus.NewDesc("hyperspace_kv_repairs_total",
		"KV-prefix sets repaired.", nil, nil)
	descKVRepaired = prometheus.NewDesc("hyperspace_kv_chunks_repaired_total",
		"KV-prefix chunks regenerated and re-placed.", nil, nil)
	descKVPublished = prometheus.NewDesc("hyperspace_kv_published_total",
		"KV-prefix states this node published.", nil, nil)
	descKVFetches = prometheus.NewDesc("hyperspace_kv_fetches_total",
		"KV-prefix fetches from peers, by result.", []string{"result"}, nil)
	descKVGets = prometheus.NewDesc("hyperspace_kv_gets_total",
		"Prefix-store lookups by the model server, by result (hit: local state cache).", []string{"result"}, nil)
	descKVPutsDropped = prometheus.NewDesc("hyperspace_kv_puts_dropped_total",
		"Prefix-store puts kept locally only: too many publications in flight.", nil, nil)
	descKVHeldChunks = prometheus.NewDesc("hyperspace_kv_held_chunks",
		"KV-prefix chunks held for other nodes.", nil, nil)
	descKVHeldBytes = prometheus.NewDesc("hyperspace_kv_held_bytes",
		"Bytes of KV-prefix chunks held for other nodes.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *KVCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKVStored, descKVServed, descKVManifests, descKVRejected, descKVProbes,
		descKVRepairs, descKVRepaired, descKVPublished, descKVFetches, descKVGets, descKVPutsDropped,
		descKVHeldChunks, descKVHeldBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *KVCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descKVStored, s.ChunksStored)
	counter(descKVServed, s.ChunksServed)
	counter(descKVManifests, s.ManifestsServed)
	counter(descKVRejected, s.RejectedChunks)
	counter(descKVProbes, s.ProbesOK, "ok")
	counter(descKVProbes, s.ProbesFailed, "failed")
	counter(descKVRepairs, s.Repairs)
	counter(descKVRepaired, s.ChunksRepaired)
	counter(descKVPublished, s.Published)
	counter(descKVFetches, s.Fetched, "ok")
	counter(descKVFetches, s.FetchFailures, "failed")
	counter(descKVGets, s.GetHits, "hit")
	counter(descKVGets, s.GetMisses, "miss")
	counter(descKVPutsDropped, s.PutsDropped)
	gauge(descKVHeldChunks, float64(s.HeldChunks))
	gauge(descKVHeldBytes, float64(s.HeldBytes))
}
