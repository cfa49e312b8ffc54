package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/cli"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// run executes a fresh command tree with args and returns stdout, stderr.
func run(t *testing.T, cmd *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	cli.BindEnv(cmd)
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestTokenCommands(t *testing.T) {
	st, dsn := testenv.Database(t)
	ctx := context.Background()

	out, info, err := run(t, tokenCmd(), "create", "--name", "ci bot", "--scopes", "read,run", "--expires", "720h", "--database-url", dsn, "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	full := strings.TrimSpace(out)
	id, secret, err := token.Parse(full)
	if err != nil {
		t.Fatalf("create printed %q: %v", out, err)
	}
	if !strings.Contains(info, "created token "+id) || !strings.Contains(info, "not shown again") || strings.Contains(info, secret) {
		t.Fatalf("create's notice: %q", info)
	}
	tk, err := st.VerifyToken(ctx, full)
	if err != nil || tk.Name != "ci bot" || !token.Allows(tk.Scopes, token.Run) || token.Allows(tk.Scopes, token.Admin) || tk.ExpiresAt == nil {
		t.Fatalf("created token %+v: %v", tk, err)
	}

	// list never shows a secret.
	out, _, err = run(t, tokenCmd(), "list", "--database-url", dsn, "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, id) || !strings.Contains(out, "ci bot") || !strings.Contains(out, "read,run") || !strings.Contains(out, "active") {
		t.Fatalf("list: %s", out)
	}
	if strings.Contains(out, secret) {
		t.Fatalf("list shows the secret: %s", out)
	}

	// revoke, by id; it stops working at once.
	out, _, err = run(t, tokenCmd(), "revoke", id, "--database-url", dsn, "--log-level", "error")
	if err != nil || !strings.Contains(out, "revoked token "+id) {
		t.Fatalf("revoke: %q %v", out, err)
	}
	if _, err := st.VerifyToken(ctx, full); err != store.ErrTokenRevoked {
		t.Fatalf("after revoke: %v", err)
	}
	out, _, _ = run(t, tokenCmd(), "list", "--database-url", dsn, "--log-level", "error")
	if !strings.Contains(out, "revoked") {
		t.Fatalf("list after revoke: %s", out)
	}

	// The database URL comes from the environment too.
	t.Setenv("HYPERSPACE_DATABASE_URL", dsn)
	out, _, err = run(t, tokenCmd(), "create", "--name", "env", "--scopes", "admin", "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.VerifyToken(ctx, strings.TrimSpace(out)); err != nil {
		t.Fatal(err)
	}

	// Mistakes.
	for _, args := range [][]string{
		{"create", "--name", "x", "--scopes", "write"},
		{"create", "--scopes", "read"},
		{"create", "--name", "x", "--scopes", ""},
		{"revoke", "nope"},
		{"revoke", "0123456789abcdef"},
	} {
		if _, _, err := run(t, tokenCmd(), append(args, "--log-level", "error")...); err == nil {
			t.Errorf("token %v: want an error", args)
		}
	}
}

func TestDevAdminToken(t *testing.T) {
	st, _ := testenv.Database(t)
	ctx := context.Background()
	dir := t.TempDir()
	tok, created, err := ensureAdminToken(ctx, st, dir)
	if err != nil || !created {
		t.Fatalf("first start: %v %v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "admin.token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v", fi.Mode(), err)
	}
	tk, err := st.VerifyToken(ctx, tok)
	if err != nil || !token.Allows(tk.Scopes, token.Admin) {
		t.Fatalf("admin token: %+v %v", tk, err)
	}
	// Reused while it verifies.
	again, created, err := ensureAdminToken(ctx, st, dir)
	if err != nil || created || again != tok {
		t.Fatalf("second start: %v %v (same %v)", created, err, again == tok)
	}
	// Revoked (or from another database): a new one replaces it.
	if _, err := st.RevokeToken(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	fresh, created, err := ensureAdminToken(ctx, st, dir)
	if err != nil || !created || fresh == tok {
		t.Fatalf("after revoke: %v %v", created, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "admin.token")); strings.TrimSpace(string(b)) != fresh {
		t.Fatal("admin.token not rewritten")
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, created, err := ensureAdminToken(ctx, st, dir); err != nil || !created {
		t.Fatalf("garbage file: %v %v", created, err)
	}
}

// The campaign commands send --token, HYPERSPACE_TOKEN or the state dir's
// admin.token, and explain a 401 or 403.
func TestCampaignCommandsAuth(t *testing.T) {
	st, _ := testenv.Database(t)
	srv := &api.Server{Store: st, Domains: domains.NewRegistry(ml.New()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	read := testenv.Token(t, st, token.Read)
	admin := testenv.Token(t, st, token.Admin)
	empty := t.TempDir()
	t.Chdir(empty) // no ./.hyperspace/admin.token either

	_, _, err := run(t, campaignCmd(), "list", "--api-url", ts.URL, "--state-dir", empty)
	if err == nil || !strings.Contains(err.Error(), "needs a token") || !strings.Contains(err.Error(), "HYPERSPACE_TOKEN") || !strings.Contains(err.Error(), "token create") {
		t.Fatalf("no token: %v", err)
	}
	t.Logf("without a token: %v", err)
	_, _, err = run(t, campaignCmd(), "list", "--api-url", ts.URL, "--state-dir", empty, "--token", "hs_bogus")
	if err == nil || !strings.Contains(err.Error(), "did not accept the token") || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("bad token: %v", err)
	}
	if _, _, err := run(t, campaignCmd(), "list", "--api-url", ts.URL, "--state-dir", empty, "--token", read); err != nil {
		t.Fatalf("read token lists: %v", err)
	}
	_, _, err = run(t, campaignCmd(), "stop", "nope", "--api-url", ts.URL, "--state-dir", empty, "--token", read)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "scope run") || !strings.Contains(err.Error(), "--scopes run") {
		t.Fatalf("read token stops: %v", err)
	}
	t.Logf("read token on stop: %v", err)
	// HYPERSPACE_TOKEN.
	t.Setenv("HYPERSPACE_TOKEN", admin)
	_, _, err = run(t, campaignCmd(), "stop", "nope", "--api-url", ts.URL, "--state-dir", empty)
	if err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("env token passes auth: %v", err)
	}
	os.Unsetenv("HYPERSPACE_TOKEN")
	// <state-dir>/admin.token.
	dir := t.TempDir()
	if err := writeSecretFile(adminTokenFile(dir), admin+"\n"); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, campaignCmd(), "stop", "nope", "--api-url", ts.URL, "--state-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("state-dir token passes auth: %v", err)
	}
	// The admin token of the state dir goes only to an API on loopback.
	if tok, _ := resolveToken("", dir, true, false); tok != "" {
		t.Fatal("the local admin token would be sent to a remote API")
	}
	for u, want := range map[string]bool{"http://127.0.0.1:8080": true, "http://localhost:1": true, "http://[::1]:8080": true,
		"http://10.0.0.5:8080": false, "https://api.example.com": false, "http://127.0.0.1.example.com": false} {
		if isLoopbackURL(u) != want {
			t.Errorf("isLoopbackURL(%s) != %v", u, want)
		}
	}
	// HYPERSPACE_API_URL is honoured (it used to be read too late).
	t.Setenv("HYPERSPACE_API_URL", ts.URL)
	if _, _, err := run(t, campaignCmd(), "list", "--state-dir", dir); err != nil {
		t.Fatalf("HYPERSPACE_API_URL: %v", err)
	}
}
