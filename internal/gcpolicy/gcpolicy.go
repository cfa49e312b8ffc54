// Package gcpolicy is the Go garbage collector setting of a hyperspace
// process. Gossip latency is bounded by the collector, not by the network:
// at 100 nodes on 2 cores, Go's default GOGC=100 runs a ~200 ms mark phase
// every ~2.5 s, and the findings in flight during one (their deliveries
// slowed by mark assists and the 25 % of the CPU the collector takes) are
// the p99 (BENCHMARKS.md, "Gossip and the garbage collector"). A node's
// live heap is small next to the machine's memory, so the policy trades
// memory for fewer collections: GOGC=800 (a collection when the heap has
// grown to 9x what the last one kept) with a soft memory limit of a
// quarter of the machine's (or the cgroup's) memory, so that the few
// processes of a site (node, workers, API) together stay within it; past
// the limit the runtime collects as often as it must to stay under it.
// An explicit GOGC or GOMEMLIMIT in the environment wins.
package gcpolicy

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Percent is the GOGC the policy sets.
const Percent = 800

// Policy is what Apply did.
type Policy struct {
	Percent     int   // GOGC in effect (-1: off)
	MemoryLimit int64 // bytes; 0: none set by the policy
	FromEnv     bool  // GOGC or GOMEMLIMIT came from the environment
}

func (p Policy) String() string {
	lim := "none"
	if p.MemoryLimit > 0 {
		lim = fmt.Sprintf("%d MiB", p.MemoryLimit>>20)
	}
	src := "policy"
	if p.FromEnv {
		src = "environment"
	}
	return fmt.Sprintf("GOGC=%d, memory limit %s (%s)", p.Percent, lim, src)
}

// Apply sets the policy unless the environment (getenv) names GOGC or
// GOMEMLIMIT, in which case the runtime already honours those and Apply
// changes nothing. total is the memory the process may use (0: read it
// from the cgroup or /proc/meminfo; when unknown no limit is set).
func Apply(getenv func(string) string, total int64) Policy {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		p := debug.SetGCPercent(100) // reads the setting; put back below
		debug.SetGCPercent(p)
		return Policy{Percent: p, MemoryLimit: debug.SetMemoryLimit(-1), FromEnv: true}
	}
	if total <= 0 {
		total = MemoryAvailable()
	}
	pol := Policy{Percent: Percent}
	if total > 0 {
		pol.MemoryLimit = total / 4
		debug.SetMemoryLimit(pol.MemoryLimit)
	}
	debug.SetGCPercent(Percent)
	return pol
}

// MemoryAvailable is the cgroup v2 memory.max when it is a number, else
// MemTotal of /proc/meminfo, in bytes; 0 when neither can be read.
func MemoryAvailable() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, ok := parseCgroupMax(string(b)); ok {
			return n
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseMemTotal(bufio.NewScanner(f))
}

// parseCgroupMax reads memory.max: a byte count, or "max" (no limit).
func parseCgroupMax(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// parseMemTotal finds "MemTotal: N kB".
func parseMemTotal(sc *bufio.Scanner) int64 {
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb <= 0 || kb > 1<<50 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
