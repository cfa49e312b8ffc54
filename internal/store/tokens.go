package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// Token is one API token as stored: never its secret, only sha256 of it
// (which this type does not even carry).
type Token struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Scopes     []token.Scope `json:"scopes"`
	CreatedAt  time.Time     `json:"createdAt"`
	ExpiresAt  *time.Time    `json:"expiresAt,omitempty"`
	LastUsedAt *time.Time    `json:"lastUsedAt,omitempty"`
	RevokedAt  *time.Time    `json:"revokedAt,omitempty"`
}

// Why a token does not verify. Only a caller who holds the right secret
// learns that it is revoked or expired; anything else is ErrTokenInvalid.
var (
	ErrTokenInvalid = errors.New("invalid token")
	ErrTokenRevoked = errors.New("token revoked")
	ErrTokenExpired = errors.New("token expired")
)

// TouchEvery is how stale last_used_at may get before a verification
// writes it again: one write per token per minute at most, not one per
// request.
const TouchEvery = time.Minute

// MaxTokenName bounds a token's name.
const MaxTokenName = 100

// CreateToken makes a token with the given scopes (expiresAt nil: never
// expires) and returns its row and the token string, which is shown to
// the caller once and never stored.
func (s *Store) CreateToken(ctx context.Context, name string, scopes []token.Scope, expiresAt *time.Time) (Token, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > MaxTokenName {
		return Token{}, "", fmt.Errorf("token name: must be 1 to %d characters", MaxTokenName)
	}
	if len(scopes) == 0 {
		return Token{}, "", errors.New("token scopes: at least one is needed")
	}
	for _, sc := range scopes {
		if !sc.Valid() {
			return Token{}, "", fmt.Errorf("token scopes: unknown scope %q", sc)
		}
	}
	id, secret, full, err := token.New()
	if err != nil {
		return Token{}, "", err
	}
	t := Token{ID: id, Name: name, Scopes: scopes, ExpiresAt: expiresAt}
	err = s.Pool.QueryRow(ctx, `INSERT INTO api_tokens (id, name, secret_hash, scopes, expires_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
		id, name, token.Hash(secret), token.Strings(scopes), expiresAt).Scan(&t.CreatedAt)
	if err != nil {
		return Token{}, "", tokenTableErr(fmt.Errorf("create token: %w", err))
	}
	return t, full, nil
}

// tokenTableErr explains a missing api_tokens table.
func tokenTableErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return fmt.Errorf("%w (run `hyperspace migrate up` first)", err)
	}
	return err
}

const tokenColumns = `id, name, scopes, created_at, expires_at, last_used_at, revoked_at`

func scanToken(row pgx.Row, extra ...any) (Token, error) {
	var t Token
	var scopes []string
	dest := append([]any{&t.ID, &t.Name, &scopes, &t.CreatedAt, &t.ExpiresAt, &t.LastUsedAt, &t.RevokedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return t, err
	}
	for _, sc := range scopes {
		t.Scopes = append(t.Scopes, token.Scope(sc))
	}
	return t, nil
}

// ListTokens returns every token, newest first.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, tokenTableErr(fmt.Errorf("list tokens: %w", err))
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Token, error) { return scanToken(r) })
}

// GetToken loads one token by id.
func (s *Store) GetToken(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(s.Pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE id=$1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, tokenTableErr(fmt.Errorf("load token %s: %w", id, err))
	}
	return t, nil
}

// RevokeToken revokes a token at once (revoking it again keeps the first
// time); a token that does not exist is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(s.Pool.QueryRow(ctx, `UPDATE api_tokens SET revoked_at=COALESCE(revoked_at, now())
		WHERE id=$1 RETURNING `+tokenColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, tokenTableErr(fmt.Errorf("revoke token %s: %w", id, err))
	}
	return t, nil
}

// dummyHash is compared against when a token id is unknown, so that an
// unknown id and a wrong secret take the same time.
var dummyHash = token.Hash("")

// VerifyToken checks a token string: its row exists, the secret's hash
// matches (in constant time), it is not revoked and not expired. It
// refreshes last_used_at when that is older than TouchEvery. Errors are
// ErrTokenInvalid, ErrTokenRevoked, ErrTokenExpired, or a database error.
func (s *Store) VerifyToken(ctx context.Context, full string) (Token, error) {
	id, secret, err := token.Parse(full)
	if err != nil {
		return Token{}, ErrTokenInvalid
	}
	var hash []byte
	var expired, stale bool
	t, err := scanToken(s.Pool.QueryRow(ctx, `SELECT `+tokenColumns+`, secret_hash,
		expires_at IS NOT NULL AND expires_at <= now(),
		last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2)
		FROM api_tokens WHERE id=$1`, id, TouchEvery.Seconds()), &hash, &expired, &stale)
	if errors.Is(err, pgx.ErrNoRows) {
		token.Matches(secret, dummyHash)
		return Token{}, ErrTokenInvalid
	}
	if err != nil {
		return Token{}, tokenTableErr(fmt.Errorf("verify token: %w", err))
	}
	switch {
	case !token.Matches(secret, hash):
		return Token{}, ErrTokenInvalid
	case t.RevokedAt != nil:
		return t, ErrTokenRevoked
	case expired:
		return t, ErrTokenExpired
	}
	if stale {
		// At most one write per token per TouchEvery; a failure here must
		// not turn away a valid token.
		_, _ = s.Pool.Exec(ctx, `UPDATE api_tokens SET last_used_at=now() WHERE id=$1
			AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))`, id, TouchEvery.Seconds())
	}
	return t, nil
}
