package ml

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// testDataDir is HYPERSPACE_DATA_DIR or ../../../shared/data; tests that
// need the corpus skip when it is absent.
func testDataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HYPERSPACE_DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	if _, err := os.Stat(CorpusPath(dir)); err != nil {
		t.Skipf("Cranfield corpus not found at %s; set HYPERSPACE_DATA_DIR to run this test", CorpusPath(dir))
	}
	return dir
}

func evalOpts(t testing.TB) domains.EvalOptions {
	return domains.EvalOptions{DataDir: testDataDir(t)}
}

func mustValidate(t testing.TB, cfg domains.Config) domains.Config {
	t.Helper()
	c, err := New().Validate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tinyChallengeConfig trains 10,000 steps in seconds (fraud-proof tests).
func tinyChallengeConfig() domains.Config {
	return domains.Config{
		"nLayers": 1.0, "dModel": 16.0, "nHeads": 2.0, "contextLength": 16.0, "dFFMult": 2.0,
		"batchSize": 2.0, "tokenBudget": 320000.0, "warmupSteps": 10.0, "learningRate": 1e-2,
	}
}
