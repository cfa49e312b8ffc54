package p2p

import "github.com/prometheus/client_golang/prometheus"

// CacheCollector exports a SharedCache's counters to Prometheus (register
// one per node, wrapped like Collector to tell nodes apart).
type CacheCollector struct{ c *SharedCache }

// NewCacheCollector returns a collector for c.
func NewCacheCollector(c *SharedCache) *CacheCollector { return &CacheCollector{c: c} }

var (
	descCacheHits = prometheus.NewDesc("hyperspace_cache_hits_total",
		"L1 response cache hits, by source (local, peer).", []string{"source"}, nil)
	descCacheMisses = prometheus.NewDesc("hyperspace_cache_misses_total",
		"L1 response cache lookups that found nothing usable.", nil, nil)
	descCacheRejected = prometheus.NewDesc("hyperspace_cache_rejected_total",
		"Fetched cache entries refused, by reason.", []string{"reason"}, nil)
	descCacheRecomputed = prometheus.NewDesc("hyperspace_cache_recomputed_total",
		"Fetched cache entries re-computed to check them.", nil, nil)
	descCacheMismatches = prometheus.NewDesc("hyperspace_cache_mismatches_total",
		"Re-computed cache entries that differed from what their provider signed.", nil, nil)
	descCachePuts = prometheus.NewDesc("hyperspace_cache_puts_total",
		"Responses this node computed, signed and shared.", nil, nil)
	descCacheProvides = prometheus.NewDesc("hyperspace_cache_provides_total",
		"DHT provider announcements of cache entries, by result.", []string{"result"}, nil)
	descCacheAnnounces = prometheus.NewDesc("hyperspace_cache_announcements_total",
		"Cache announcements on gossip, by direction.", []string{"direction"}, nil)
	descCacheEntries = prometheus.NewDesc("hyperspace_cache_entries",
		"Entries held by the local store.", nil, nil)
	descCacheBytes = prometheus.NewDesc("hyperspace_cache_bytes",
		"Bytes held by the local store.", nil, nil)
	descCacheEvictions = prometheus.NewDesc("hyperspace_cache_evictions_total",
		"Entries the local store dropped, by cause (space, expired).", []string{"cause"}, nil)
)

// Describe implements prometheus.Collector.
func (m *CacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheHits, descCacheMisses, descCacheRejected, descCacheRecomputed,
		descCacheMismatches, descCachePuts, descCacheProvides, descCacheAnnounces, descCacheEntries, descCacheBytes,
		descCacheEvictions} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *CacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := m.c.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descCacheHits, s.HitsLocal, "local")
	counter(descCacheHits, s.HitsPeer, "peer")
	counter(descCacheMisses, s.Misses)
	for reason, v := range s.Rejected {
		counter(descCacheRejected, v, reason)
	}
	counter(descCacheRecomputed, s.Recomputed)
	counter(descCacheMismatches, s.Mismatches)
	counter(descCachePuts, s.Puts)
	counter(descCacheProvides, s.Provided, "ok")
	counter(descCacheProvides, s.ProvideFailed, "failed")
	counter(descCacheAnnounces, s.Announced, "sent")
	counter(descCacheAnnounces, s.AnnouncesHeard, "received")
	gauge(descCacheEntries, float64(s.Store.Entries))
	gauge(descCacheBytes, float64(s.Store.Bytes))
	counter(descCacheEvictions, s.Store.Evictions, "space")
	counter(descCacheEvictions, s.Store.Expired, "expired")
}
