package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

func tokenCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "token create|list|revoke",
		Short: "Create, list and revoke the API's bearer tokens (talks to PostgreSQL directly)",
		Long: `token manages the bearer tokens of the REST API. Scopes: read (every GET),
run (start and stop campaigns; implies read), admin (register causes and
anything administrative; implies run). A token reads hs_<id>_<secret>; it is
printed once by create, and only sha256 of its secret is stored. Revoking a
token takes effect on its next request.`,
	}
	c.addDBFlagsTo(cmd.PersistentFlags()) // shared by the subcommands

	var name, scopes string
	var expires time.Duration
	create := &cobra.Command{
		Use:   "create --name NAME --scopes read,run [--expires 720h]",
		Short: "Create a token and print it (once: it cannot be shown again)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := token.ParseScopes(scopes)
			if err != nil {
				return fmt.Errorf("--scopes: %w", err)
			}
			if strings.TrimSpace(name) == "" {
				return errors.New("--name is required (say who or what the token is for)")
			}
			if expires < 0 {
				return errors.New("--expires must be positive (or 0: never)")
			}
			return withStore(cmd, &c, func(ctx context.Context, st *store.Store) error {
				var exp *time.Time
				if expires > 0 {
					t := time.Now().Add(expires).UTC()
					exp = &t
				}
				t, full, err := st.CreateToken(ctx, name, sc, exp)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "created token %s (%s; scopes %s; expires %s)\nstore it now: it is not shown again, and only its hash is kept\n",
					t.ID, t.Name, scopeNames(t.Scopes), fmtTime(t.ExpiresAt, "never"))
				fmt.Fprintln(cmd.OutOrStdout(), full)
				return nil
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for (shown by list)")
	create.Flags().StringVar(&scopes, "scopes", "read", "comma-separated scopes: read, run, admin")
	create.Flags().DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h (0: never expires)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (ids, names, scopes, use; never secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, &c, func(ctx context.Context, st *store.Store) error {
				ts, err := st.ListTokens(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%-16s  %-24s  %-14s  %-8s  %-20s  %-20s  %s\n", "ID", "NAME", "SCOPES", "STATUS", "CREATED", "EXPIRES", "LAST USED")
				now := time.Now()
				for _, t := range ts {
					status := "active"
					switch {
					case t.RevokedAt != nil:
						status = "revoked"
					case t.ExpiresAt != nil && !t.ExpiresAt.After(now):
						status = "expired"
					}
					fmt.Fprintf(w, "%-16s  %-24s  %-14s  %-8s  %-20s  %-20s  %s\n", t.ID, clip(t.Name, 24), scopeNames(t.Scopes), status,
						fmtTime(&t.CreatedAt, "-"), fmtTime(t.ExpiresAt, "never"), fmtTime(t.LastUsedAt, "never"))
				}
				return nil
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token (by id, or the token itself); it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := strings.TrimSpace(args[0])
			if tid, _, err := token.Parse(id); err == nil {
				id = tid
			}
			if !token.ValidID(id) {
				return fmt.Errorf("%q is not a token id (16 hex digits; see hyperspace token list)", args[0])
			}
			return withStore(cmd, &c, func(ctx context.Context, st *store.Store) error {
				t, err := st.RevokeToken(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no token %s (see hyperspace token list)", id)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked token %s (%s) at %s\n", t.ID, t.Name, fmtTime(t.RevokedAt, "-"))
				return nil
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func withStore(cmd *cobra.Command, c *common, fn func(context.Context, *store.Store) error) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	c.logger()
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(ctx, st)
}

func scopeNames(s []token.Scope) string { return strings.Join(token.Strings(s), ",") }

func fmtTime(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.Local().Format(time.DateTime)
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// adminTokenFile is where `hyperspace dev` keeps its admin token.
func adminTokenFile(stateDir string) string { return filepath.Join(stateDir, "admin.token") }

// ensureAdminToken returns the admin token of <state-dir>/admin.token when
// it still verifies against the database with scope admin; otherwise it
// creates a new one and writes it there (mode 0600).
func ensureAdminToken(ctx context.Context, st *store.Store, stateDir string) (tok string, created bool, err error) {
	path := adminTokenFile(stateDir)
	if b, err := os.ReadFile(path); err == nil {
		old := strings.TrimSpace(string(b))
		if t, err := st.VerifyToken(ctx, old); err == nil && token.Allows(t.Scopes, token.Admin) {
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				_ = os.Chmod(path, 0o600)
			}
			return old, false, nil
		}
	}
	_, full, err := st.CreateToken(ctx, "hyperspace dev admin", []token.Scope{token.Admin}, nil)
	if err != nil {
		return "", false, err
	}
	if err := writeSecretFile(path, full+"\n"); err != nil {
		return "", false, fmt.Errorf("save the admin token: %w", err)
	}
	return full, true, nil
}

// writeSecretFile writes data to path with mode 0600, atomically.
func writeSecretFile(path, data string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".admin.token-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
