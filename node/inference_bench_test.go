package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// BenchmarkCachedRequests measures /v1/chat/completions requests a second
// on one node (HTTP on loopback, keep-alive, 8 concurrent clients): a
// deterministic request answered from the node's L1 cache, against the
// same request computed by the model (a sampled request without a seed,
// which is never cached) as the baseline, in the same run. "cached" is the
// inference handler alone; "cached-api" is the whole API process's path
// (gin, the token as API key, verified against PostgreSQL and then trusted
// for api.DefaultAPIKeyCacheTTL); "cached-api-every" checks the key in
// PostgreSQL on every request (APIKeyCacheTTL < 0).
//
//	go test ./node -run '^$' -bench CachedRequests -benchtime 3s
func BenchmarkCachedRequests(b *testing.B) {
	ck := tinyCheckpoint(b)
	m := member(b, filepath.Join(b.TempDir(), "a"), nil, ck)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	cl := &http.Client{Transport: tr}
	st, _ := testenv.Database(b)
	_, key, err := st.CreateToken(context.Background(), "bench", []token.Scope{token.Read}, nil)
	if err != nil {
		b.Fatal(err)
	}
	apiURL := func(ttl time.Duration) string {
		srv := &api.Server{Store: st, Inference: m.svc, APIKeyCacheTTL: ttl, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		ts := httptest.NewServer(srv.Handler())
		b.Cleanup(ts.Close)
		return ts.URL
	}
	withKeyCache, everyTime := apiURL(0), apiURL(-1)
	base := m.api.URL
	do := func(body string) error {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if base != m.api.URL {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := cl.Do(req)
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
	base = withKeyCache
	b.Run("cached-api", func(b *testing.B) { rate(b, cached) })
	base = everyTime
	b.Run("cached-api-every", func(b *testing.B) { rate(b, cached) })
	base = m.api.URL
	if m.svc.Stats().CacheHitsLocal == 0 {
		b.Fatal("no cache hits")
	}
	b.Run("computed", func(b *testing.B) { rate(b, computed) })
}
