//go:build linux

package partition_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// nsPrefix starts the name of every namespace this test creates; the rest
// is "a-<pid>" or "b-<pid>" (the pid of the test process).
const nsPrefix = "hs-part-"

// Interface names of the veth pair, one end in each namespace (so they
// cannot clash with interfaces of the host or of other runs).
const (
	vethA = "hs-veth-a"
	vethB = "hs-veth-b"
)

// link is the two namespaces and the veth pair between them.
type link struct {
	nsA, nsB string // namespace names
	ipA, ipB string // the veth addresses, in one private /24
	cidr     string // that /24
}

// ip runs the ip command with args and returns its error with its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newLink creates two namespaces joined by a veth pair with addresses from
// a random 10.231.x.0/24, brings lo and both veth ends up, and deletes
// both namespaces in t.Cleanup. It skips the test, saying why, where
// namespaces or veth pairs cannot be created (no root, no iproute2, no veth
// driver).
func newLink(t *testing.T) *link {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("skipping: network namespaces need iproute2's ip command: %v", err)
	}
	removeStaleNamespaces(t)
	pid := os.Getpid()
	octet := rand.IntN(254) + 1
	l := &link{
		nsA:  fmt.Sprintf("%sa-%d", nsPrefix, pid),
		nsB:  fmt.Sprintf("%sb-%d", nsPrefix, pid),
		ipA:  fmt.Sprintf("10.231.%d.1", octet),
		ipB:  fmt.Sprintf("10.231.%d.2", octet),
		cidr: fmt.Sprintf("10.231.%d.0/24", octet),
	}
	if err := ip("netns", "add", l.nsA); err != nil {
		t.Skipf("skipping: cannot create a network namespace (needs root/CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { deleteNamespace(t, l.nsA) })
	if err := ip("netns", "add", l.nsB); err != nil {
		t.Fatalf("created namespace %s but not the second one: %v", l.nsA, err)
	}
	t.Cleanup(func() { deleteNamespace(t, l.nsB) })
	if err := ip("-n", l.nsA, "link", "add", vethA, "type", "veth", "peer", "name", vethB, "netns", l.nsB); err != nil {
		t.Skipf("skipping: cannot create a veth pair between namespaces: %v", err)
	}
	for _, c := range [][]string{
		{"-n", l.nsA, "addr", "add", l.ipA + "/24", "dev", vethA},
		{"-n", l.nsB, "addr", "add", l.ipB + "/24", "dev", vethB},
		{"-n", l.nsA, "link", "set", "lo", "up"},
		{"-n", l.nsB, "link", "set", "lo", "up"},
		{"-n", l.nsA, "link", "set", vethA, "up"},
		{"-n", l.nsB, "link", "set", vethB, "up"},
	} {
		if err := ip(c...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// cut takes both veth ends down. Each namespace keeps its own address (and
// its local route), so nodes on one side still reach each other, while
// packets to the other side fail with "network unreachable".
func (l *link) cut() error {
	return errors.Join(ip("-n", l.nsA, "link", "set", vethA, "down"), ip("-n", l.nsB, "link", "set", vethB, "down"))
}

// heal brings both veth ends up again.
func (l *link) heal() error {
	return errors.Join(ip("-n", l.nsA, "link", "set", vethA, "up"), ip("-n", l.nsB, "link", "set", vethB, "up"))
}

func deleteNamespace(t *testing.T, name string) {
	if err := ip("netns", "delete", name); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// removeStaleNamespaces deletes namespaces left by earlier runs of this
// test that died before their cleanup: those named nsPrefix + "<side>-<pid>"
// whose pid is no longer running (or is ours, which no live run can use).
func removeStaleNamespaces(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return // newLink reports what is wrong with namespaces
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '-')
		pid, err := strconv.Atoi(rest[i+1:])
		if i < 0 || err != nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil && pid != os.Getpid() {
			continue // another run of this test, still alive
		}
		if err := ip("netns", "delete", name); err != nil {
			t.Logf("removing stale namespace: %v", err)
		} else {
			t.Logf("removed namespace %s left by an earlier run", name)
		}
	}
}
