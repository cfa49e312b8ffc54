package llm

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// AllowList is the operator's list of LLM endpoints campaigns may use
// (flag --llm-allow, env HYPERSPACE_LLM_ALLOW). Each entry is a URL prefix:
// a URL is allowed when its scheme, host and port equal an entry's (after
// normalisation: lower case, default ports made explicit, a trailing dot
// dropped) and its path starts with the entry's path at a segment boundary
// ("/v1" allows "/v1" and "/v1/...", not "/v10"). The zero value allows
// nothing.
type AllowList struct {
	entries []endpoint
}

type endpoint struct {
	scheme, host, port, path string
}

func (e endpoint) String() string {
	return e.scheme + "://" + joinHostPort(e.host, e.port) + e.path
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// ErrEndpointNotAllowed means a campaign named an LLM endpoint that is not
// on the operator's allow-list; nothing was sent to it.
var ErrEndpointNotAllowed = errors.New("llm: endpoint not on the operator's allow-list (--llm-allow)")

// ParseAllowList reads a comma-separated list of URL prefixes, such as
// "http://127.0.0.1:8000/v1,https://api.openai.com/v1". An empty string
// gives an empty list (nothing allowed).
func ParseAllowList(list string) (*AllowList, error) {
	a := &AllowList{}
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		e, err := normalise(raw)
		if err != nil {
			return nil, fmt.Errorf("llm allow-list entry %q: %w", raw, err)
		}
		a.entries = append(a.entries, e)
	}
	return a, nil
}

// MustAllowList is ParseAllowList for lists known to be valid (tests).
func MustAllowList(list string) *AllowList {
	a, err := ParseAllowList(list)
	if err != nil {
		panic(err)
	}
	return a
}

// Empty reports whether the list allows nothing.
func (a *AllowList) Empty() bool { return a == nil || len(a.entries) == 0 }

// String lists the normalised entries, comma-separated.
func (a *AllowList) String() string {
	if a == nil {
		return ""
	}
	parts := make([]string, len(a.entries))
	for i, e := range a.entries {
		parts[i] = e.String()
	}
	return strings.Join(parts, ",")
}

// Allows reports whether rawURL is on the list. A URL that does not parse,
// carries user info, a query or a fragment, or has dot segments in its
// path is never allowed. A nil list allows nothing.
func (a *AllowList) Allows(rawURL string) bool {
	if a == nil {
		return false
	}
	u, err := normalise(rawURL)
	if err != nil {
		return false
	}
	for _, e := range a.entries {
		if e.scheme == u.scheme && e.host == u.host && e.port == u.port && pathUnder(u.path, e.path) {
			return true
		}
	}
	return false
}

// pathUnder reports whether p is prefix or below it (segment-wise); both
// have no trailing slash ("" is the root).
func pathUnder(p, prefix string) bool {
	return prefix == "" || p == prefix || strings.HasPrefix(p, prefix+"/")
}

// normalise parses an http(s) URL into its comparable parts.
func normalise(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return endpoint{}, errors.New("scheme must be http or https")
	}
	if u.Opaque != "" || u.Host == "" {
		return endpoint{}, errors.New("needs a host, as in http://host:port/v1")
	}
	if u.User != nil {
		return endpoint{}, errors.New("must not carry user info")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return endpoint{}, errors.New("must not carry a query or fragment")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return endpoint{}, errors.New("needs a host")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	p := strings.TrimRight(u.Path, "/")
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return endpoint{}, errors.New("path must not have . or .. segments")
		}
	}
	if strings.Contains(p, "//") {
		return endpoint{}, errors.New("path must not have empty segments")
	}
	return endpoint{scheme: scheme, host: host, port: port, path: p}, nil
}

// SameOrigin reports whether two URLs have the same scheme, host and port.
func SameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}
