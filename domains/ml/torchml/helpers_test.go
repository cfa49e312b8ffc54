package torchml

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

var (
	shared     *Backend
	sharedErr  error
	sharedOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	os.Exit(code)
}

// torchRequired: under CI (or when scripts/test.sh has installed torch)
// a missing torch fails the tests instead of skipping them.
func torchRequired() bool {
	return os.Getenv("CI") != "" || os.Getenv("HYPERSPACE_TORCH_REQUIRED") == "1"
}

// backend returns the package's shared Backend (one worker process for all
// tests), skipping the test when torch is genuinely unavailable outside CI.
func backend(t testing.TB) *Backend {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Find() })
	if sharedErr != nil {
		if errors.Is(sharedErr, ErrNoTorch) && !torchRequired() {
			t.Skipf("PyTorch backend unavailable (run scripts/ensure-torch.sh; CI fails instead of skipping): %v", sharedErr)
		}
		t.Fatal(sharedErr)
	}
	return shared
}

// freshBackend is a Backend with its own worker process.
func freshBackend(t testing.TB) *Backend {
	t.Helper()
	b := backend(t)
	nb := &Backend{Python: b.Python, Script: b.Script, Device: b.Device}
	t.Cleanup(func() { nb.Close() })
	return nb
}

func testDataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HYPERSPACE_DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "shared", "data")
	}
	if _, err := os.Stat(ml.CorpusPath(dir)); err != nil {
		if torchRequired() && os.Getenv("HYPERSPACE_DATA_DIR") != "" {
			t.Fatalf("Cranfield corpus not found at %s", ml.CorpusPath(dir))
		}
		t.Skipf("Cranfield corpus not found at %s; set HYPERSPACE_DATA_DIR to run this test", ml.CorpusPath(dir))
	}
	return dir
}

func corpus(t testing.TB) *ml.Corpus {
	t.Helper()
	c, err := ml.LoadCorpus(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tinyConfig(t testing.TB) domains.Config {
	t.Helper()
	cfg, err := ml.New().Validate(domains.Config{
		"nLayers": 1.0, "dModel": 32.0, "nHeads": 2.0, "contextLength": 32.0, "dFFMult": 2.0,
		"batchSize": 8.0, "tokenBudget": 8192.0, "warmupSteps": 4.0, "learningRate": 1e-2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func withCfg(t testing.TB, base domains.Config, kv ...any) domains.Config {
	t.Helper()
	c := base.Clone()
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	out, err := ml.New().Validate(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
