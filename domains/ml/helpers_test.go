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
