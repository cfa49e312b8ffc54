// Package testenv gives tests the real services they run against: a fresh
// PostgreSQL database per test, a versitygw S3 server on a free loopback
// port, and the data directory. Nothing here is a fake: when a service is
// missing the test fails and says how to provide it (make test does).
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/datasets"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// AdminURL is the PostgreSQL URL tests create their databases through.
func AdminURL() string {
	if v := os.Getenv("HYPERSPACE_TEST_PG_ADMIN_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Database creates a fresh database, migrates it, and drops it when the test ends.
func Database(t testing.TB) (*store.Store, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("PostgreSQL not reachable at %s: %v (run `make test`, which starts one, or set HYPERSPACE_TEST_PG_ADMIN_URL)", AdminURL(), err)
	}
	name := "hs_test_" + randHex(6)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	admin.Close(ctx)
	dsn := replaceDB(AdminURL(), name)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.MigrateUp(ctx, st.Pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if admin, err := pgx.Connect(ctx, AdminURL()); err == nil {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			admin.Close(ctx)
		}
	})
	return st, dsn
}

// Token creates an API token with the given scopes in st (named after the
// test) and returns the token string to send as "Authorization: Bearer".
func Token(t testing.TB, st *store.Store, scopes ...token.Scope) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := "test " + t.Name()
	if len(name) > 90 {
		name = name[:90]
	}
	_, full, err := st.CreateToken(ctx, name, scopes, nil)
	if err != nil {
		t.Fatalf("create test token: %v", err)
	}
	return full
}

func replaceDB(url, db string) string {
	q := ""
	if i := strings.Index(url, "?"); i >= 0 {
		url, q = url[:i], url[i:]
	}
	i := strings.LastIndex(url, "/")
	if i < len("postgres://") {
		return url + "/" + db + q
	}
	return url[:i+1] + db + q
}

// VersityGW is the path of the versitygw binary.
func VersityGW() string {
	if v := os.Getenv("HYPERSPACE_VERSITYGW"); v != "" {
		return v
	}
	h, _ := os.UserHomeDir()
	return filepath.Join(h, ".cache", "hyperspace", "bin", "versitygw")
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// S3 starts a versitygw server on a free loopback port for this test and
// returns a config for it (bucket not yet created).
func S3(t testing.TB) blob.Config {
	t.Helper()
	bin := VersityGW()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("versitygw not found at %s (run `make test` or scripts/ensure-tools.sh, or set HYPERSPACE_VERSITYGW)", bin)
	}
	dir := t.TempDir()
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--port", addr, "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY=test-access", "ROOT_SECRET_KEY=test-secret-key")
	logf, _ := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not answer on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return blob.Config{Endpoint: "http://" + addr, AccessKey: "test-access", SecretKey: "test-secret-key", Bucket: "hs-test"}
}

// Blob starts an S3 server and opens the bucket.
func Blob(t testing.TB) (*blob.Store, blob.Config) {
	t.Helper()
	cfg := S3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := blob.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, cfg
}

// DataDir is the domain data root: $HYPERSPACE_DATA_DIR, else ../shared/data
// above the module root, else the dir `hyperspace data fetch` fills by
// default (datasets.DefaultDir).
func DataDir(t testing.TB) string {
	t.Helper()
	if v := os.Getenv("HYPERSPACE_DATA_DIR"); v != "" {
		return v
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	shared := filepath.Join(root, "..", "shared", "data")
	for _, dir := range []string{shared, datasets.DefaultDir()} {
		if _, err := os.Stat(filepath.Join(dir, "cranfield", "cran.all.1400")); err == nil {
			abs, _ := filepath.Abs(dir)
			return abs
		}
	}
	t.Fatalf("data not found in %s or %s: run `hyperspace data fetch` or set HYPERSPACE_DATA_DIR", shared, datasets.DefaultDir())
	return ""
}
