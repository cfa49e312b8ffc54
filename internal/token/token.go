// Package token defines the API's bearer tokens: their format, their
// scopes, and how a secret is hashed and checked. It does no I/O; the
// tokens themselves live in PostgreSQL (see store.CreateToken).
//
// A token reads hs_<id>_<secret>: "hs_" makes it recognisable (secret
// scanners, logs), <id> (16 hex digits) finds its row, and <secret> (64
// hex digits, 256 random bits) proves possession. Only sha256(secret) is
// stored, and it is compared in constant time.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Prefix starts every token.
const Prefix = "hs_"

const (
	idBytes     = 8
	secretBytes = 32
)

// Scope is a permission a token carries.
type Scope string

// The scopes, each implying the ones before it: admin > run > read.
const (
	// Read: every GET endpoint.
	Read Scope = "read"
	// Run: start and stop campaigns (and read).
	Run Scope = "run"
	// Admin: register causes and anything administrative (and run, read).
	Admin Scope = "admin"
)

// All lists the scopes, weakest first.
var All = []Scope{Read, Run, Admin}

func rank(s Scope) int { return slices.Index(All, s) }

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return rank(s) >= 0 }

// Allows reports whether a token with the scopes have may do what needs
// the scope need (a stronger scope implies the weaker ones).
func Allows(have []Scope, need Scope) bool {
	r := rank(need)
	if r < 0 {
		return false
	}
	for _, h := range have {
		if hr := rank(h); hr >= r {
			return true
		}
	}
	return false
}

// ParseScopes reads a comma-separated list such as "read,run"; it needs at
// least one scope, rejects unknown ones and drops duplicates.
func ParseScopes(list string) ([]Scope, error) {
	var out []Scope
	for _, p := range strings.Split(list, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		s := Scope(p)
		if !s.Valid() {
			return nil, fmt.Errorf("unknown scope %q (known: read, run, admin)", p)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("at least one scope is needed (read, run or admin)")
	}
	slices.SortFunc(out, func(a, b Scope) int { return rank(a) - rank(b) })
	return out, nil
}

// Strings returns scopes as strings (for storage).
func Strings(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}

// ErrMalformed means a string is not a token of this format.
var ErrMalformed = errors.New("malformed token: want hs_<id>_<secret>")

// New returns a fresh token: its id, its secret, and the string to hand out.
func New() (id, secret, full string, err error) {
	var b [idBytes + secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", "", fmt.Errorf("token: random: %w", err)
	}
	id = hex.EncodeToString(b[:idBytes])
	secret = hex.EncodeToString(b[idBytes:])
	return id, secret, Prefix + id + "_" + secret, nil
}

// Parse splits a token into its id and secret.
func Parse(full string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(full, Prefix)
	if !ok {
		return "", "", ErrMalformed
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || !isHex(id, 2*idBytes) || !isHex(secret, 2*secretBytes) {
		return "", "", ErrMalformed
	}
	return id, secret, nil
}

// ValidID reports whether id looks like a token id.
func ValidID(id string) bool { return isHex(id, 2*idBytes) }

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Hash is what is stored of a secret: sha256 of it.
func Hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Matches compares secret with a stored hash in constant time.
func Matches(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(secret), hash) == 1
}
