package archive

import (
	"bytes"
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// t0 is a fixed commit time.
var t0 = time.Date(2026, 3, 11, 5, 7, 35, 490147000, time.UTC)

func key(n byte) *identity.Key { return identity.FromSeed(bytes.Repeat([]byte{n}, 32)) }

// spec describes a synthetic run.
type spec struct {
	num      int
	domain   string
	dir      string // "minimize" (default) or "maximize"
	value    float64
	test     float64
	baseline bool
	newBest  bool
	hyp      string
	gpu      string
}

func sign(t testing.TB, k *identity.Key, s spec) receipt.Signed {
	t.Helper()
	if s.dir == "" {
		s.dir = "minimize"
	}
	if s.domain == "" {
		s.domain = "ml"
	}
	if s.hyp == "" {
		s.hyp = "try something"
	}
	rc := receipt.Receipt{
		Project:     "astrophysics",
		RunNumber:   s.num,
		Timestamp:   t0.UnixMilli() + int64(s.num)*60_000,
		Hypothesis:  s.hyp,
		Config:      map[string]any{"learningRate": 0.006, "nLayers": 12, "activation": "gelu", "tie|pipe": true},
		Result:      receipt.Result{ValLoss: s.value, DurationSec: 12.5, LossCurve: [][2]float64{{1, s.value}}},
		Improvement: 0.0123,
		IsNewBest:   s.newBest,
		BeatsNoise:  s.newBest,
		Domain:      s.domain,
		Campaign:    "c1",
		Agent:       "a1",
		Seed:        int64(1000 + s.num),
		Metric:      receipt.MetricValue{Name: "val_loss", Direction: s.dir, Value: s.value, TestValue: s.test},
		Parents:     []string{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		Proposer:    "builtin",
		Baseline:    s.baseline,
		NoiseFloor:  &receipt.NoiseFloor{Mean: 1.5, SD: 0.01, N: 5, Threshold: 0.02},
	}
	if s.gpu != "" {
		g := s.gpu
		rc.GPU = &g
	}
	sg, err := receipt.Sign(rc, k)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func openRepo(t testing.TB, dir string, opts ...Option) *Repo {
	t.Helper()
	r, err := Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tempRepo(t testing.TB) *Repo {
	t.Helper()
	return openRepo(t, filepath.Join(t.TempDir(), "archive.git"))
}

func mustWrite(t testing.TB, r *Repo, branch string, files map[string][]byte, when time.Time) (string, bool) {
	t.Helper()
	c, changed, err := r.WriteBranch(context.Background(), branch, files, "test write", when)
	if err != nil {
		t.Fatal(err)
	}
	return c, changed
}

func count(t testing.TB, r *Repo, branch string) int {
	t.Helper()
	n, err := r.CommitCount(context.Background(), branch)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func files(t testing.TB, r *Repo, branch string) map[string][]byte {
	t.Helper()
	f, err := r.Files(context.Background(), branch)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sameFiles(t testing.TB, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d files %v, want %d %v", len(got), names(got), len(want), names(want))
	}
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("missing %s", p)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s = %q, want %q", p, g, w)
		}
	}
}

func names(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
