package node_test

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCachedRequests measures /v1/chat/completions requests a second
// on one node (HTTP on loopback, keep-alive, 8 concurrent clients): a
// deterministic request answered from the node's L1 cache, against the
// same request computed by the model (a sampled request without a seed,
// which is never cached) as the baseline, in the same run.
//
//	go test ./node -run '^$' -bench CachedRequests -benchtime 3s
func BenchmarkCachedRequests(b *testing.B) {
	ck := tinyCheckpoint(b)
	m := member(b, filepath.Join(b.TempDir(), "a"), nil, ck)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	cl := &http.Client{Transport: tr}
	do := func(body string) error {
		resp, err := cl.Post(m.api.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	const cached = `{"model":"tiny","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"the boundary layer"}]}`
	const computed = `{"model":"tiny","temperature":0.7,"max_tokens":16,"messages":[{"role":"user","content":"the boundary layer"}]}`
	if err := do(cached); err != nil { // computed once; from then on a hit
		b.Fatal(err)
	}
	rate := func(b *testing.B, body string) {
		var n, failed atomic.Int64
		b.SetParallelism(4) // 4 x GOMAXPROCS clients
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if do(body) != nil {
					failed.Add(1)
				}
				n.Add(1)
			}
		})
		if failed.Load() > 0 {
			b.Fatalf("%d requests failed", failed.Load())
		}
		b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "req/s")
	}
	b.Run("cached", func(b *testing.B) { rate(b, cached) })
	if m.svc.Stats().CacheHitsLocal == 0 {
		b.Fatal("no cache hits")
	}
	b.Run("computed", func(b *testing.B) { rate(b, computed) })
}
