package archive

import (
	"fmt"
	"strings"
)

// AgentPrefix starts every agent branch name.
const AgentPrefix = "agents/"

// BranchName returns the agent branch "agents/<peerId>/<domain>". Both
// parts must be safe ref components (see ValidComponent).
func BranchName(peerID, domain string) (string, error) {
	if err := ValidComponent(peerID); err != nil {
		return "", fmt.Errorf("archive: peerId: %w", err)
	}
	if err := ValidComponent(domain); err != nil {
		return "", fmt.Errorf("archive: domain: %w", err)
	}
	return AgentPrefix + peerID + "/" + domain, nil
}

// ValidComponent reports whether c is a safe component of a branch name:
// everything git check-ref-format rejects is rejected (a leading '.', a
// trailing '.' or ".lock", "..", "@{", control characters, space, any of
// ~ ^ : ? * [ \ and '/'), and so are a leading '-' (it reads as an option
// on command lines) and the single character '@'.
func ValidComponent(c string) error {
	switch {
	case c == "":
		return fmt.Errorf("empty name")
	case c == "@":
		return fmt.Errorf("%q is not allowed", c)
	case strings.HasPrefix(c, "."), strings.HasPrefix(c, "-"):
		return fmt.Errorf("%q starts with %q", c, c[:1])
	case strings.HasSuffix(c, "."), strings.HasSuffix(c, ".lock"):
		return fmt.Errorf("%q ends with '.' or \".lock\"", c)
	case strings.Contains(c, ".."), strings.Contains(c, "@{"):
		return fmt.Errorf("%q contains \"..\" or \"@{\"", c)
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if b < 0x20 || b == 0x7f || strings.IndexByte(" ~^:?*[\\/", b) >= 0 {
			return fmt.Errorf("%q contains the forbidden character %q", c, b)
		}
	}
	return nil
}

// ValidBranch reports whether name is a valid archive branch name: one or
// more slash-separated components, each valid under ValidComponent, and
// not "HEAD".
func ValidBranch(name string) error {
	if name == "HEAD" {
		return fmt.Errorf("archive: invalid branch name %q", name)
	}
	for _, c := range strings.Split(name, "/") {
		if err := ValidComponent(c); err != nil {
			return fmt.Errorf("archive: invalid branch name %q: %w", name, err)
		}
	}
	return nil
}
