package gcpolicy

import (
	"bufio"
	"runtime/debug"
	"strings"
	"testing"
)

func restore(t *testing.T) {
	p := debug.SetGCPercent(100)
	l := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(p)
		debug.SetMemoryLimit(l)
	})
}

func TestApply(t *testing.T) {
	restore(t)
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	p := Apply(get, 8<<30)
	if p.Percent != Percent || p.MemoryLimit != 2<<30 || p.FromEnv {
		t.Fatalf("policy %+v", p)
	}
	if got := debug.SetGCPercent(Percent); got != Percent {
		t.Fatalf("runtime GOGC %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 2<<30 {
		t.Fatalf("runtime limit %d", got)
	}
	// An explicit setting wins and is left alone.
	debug.SetGCPercent(150)
	env["GOGC"] = "150"
	p = Apply(get, 8<<30)
	if !p.FromEnv || p.Percent != 150 {
		t.Fatalf("with GOGC set: %+v", p)
	}
	if got := debug.SetGCPercent(150); got != 150 {
		t.Fatalf("runtime GOGC changed to %d", got)
	}
	if !strings.Contains(p.String(), "environment") {
		t.Fatal(p.String())
	}
}

func TestParse(t *testing.T) {
	if n, ok := parseCgroupMax("max\n"); ok || n != 0 {
		t.Fatal("max is no limit")
	}
	if n, ok := parseCgroupMax("1073741824\n"); !ok || n != 1<<30 {
		t.Fatal(n, ok)
	}
	for in, want := range map[string]int64{
		"MemTotal:       24576000 kB\nMemFree: 1 kB\n": 24576000 << 10,
		"MemFree: 1 kB\n":   0,
		"MemTotal: x kB\n":  0,
		"MemTotal: -5 kB\n": 0,
	} {
		if got := parseMemTotal(bufio.NewScanner(strings.NewReader(in))); got != want {
			t.Errorf("%q: %d, want %d", in, got, want)
		}
	}
	if MemoryAvailable() <= 0 {
		t.Log("memory size unknown here")
	}
}
