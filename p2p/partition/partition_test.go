//go:build linux

package partition_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/p2p"
)

// The shape of the experiment.
const (
	nodesPerSide = 3
	// syncInterval is the nodes' anti-entropy period (production default:
	// 10s), short so that healing does not wait for a slow timer.
	syncInterval = time.Second
	// publishEvery is each node's campaign rate: 4 findings per second,
	// 12 per side.
	publishEvery = 250 * time.Millisecond
	// warmup is how long both sides publish while connected.
	warmup = 2 * time.Second
	// quiet is how long the cut is held after each side has converged, to
	// check that nothing crosses it.
	quiet = 3 * syncInterval
	// waitLimit bounds every wait for convergence.
	waitLimit = 60 * time.Second
	pollEvery = 50 * time.Millisecond
	// defaultCut is how long the link stays cut (HS_PARTITION_CUT).
	defaultCut = 10 * time.Second
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(runHelper(cfg, os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// TestPartition cuts a 3+3 node network in two, lets both halves keep
// publishing, heals it, and checks that every replica converges to the
// identical state; it logs the heal-to-identical-state time.
//
// Each side's nodes run in a helper process (this test binary, re-executed)
// inside its own network namespace, listening on the namespace's veth
// address; every node bootstraps to the first node of the other side and
// (but for that first node itself) to the first node of its own side; the
// DHT and GossipSub peer exchange find the rest. The cut takes both veth
// ends down.
func TestPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the partition test (about 20s) in short mode")
	}
	cutFor := defaultCut
	if s := os.Getenv("HS_PARTITION_CUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("HS_PARTITION_CUT: %v", err)
		}
		cutFor = d
	}
	l := newLink(t)
	cfgs := plan(t, l)
	sides := [2]*proc{startProc(t, l.nsA, cfgs[0]), startProc(t, l.nsB, cfgs[1])}

	// 1. Connected: both sides publish, and all six replicas agree.
	pub1 := campaign(t, sides, warmup)
	t.Logf("connected: side A published %d findings, side B %d", pub1[0], pub1[1])
	took, _ := waitFor(t, sides, "convergence while connected", func(st [2][]nodeState) (bool, string) {
		return identical(st, pub1[0]+pub1[1])
	})
	t.Logf("connected: all %d replicas identical after %v", 2*nodesPerSide, took.Round(time.Millisecond))

	// 2. Cut: both sides keep publishing; each converges on its own, and
	// nothing crosses.
	if err := l.cut(); err != nil {
		t.Fatalf("cutting the link: %v", err)
	}
	pub2 := campaign(t, sides, cutFor)
	during := [2]int{pub2[0] - pub1[0], pub2[1] - pub1[1]}
	t.Logf("cut: side A published %d findings, side B %d, over %v", during[0], during[1], cutFor)
	// While cut, side A holds all it published plus only what B had
	// published before the cut, and conversely.
	cutState := func(st [2][]nodeState) (bool, string) {
		ok, why := sideConverged(st[0], "a", pub2[0], "b", pub1[1])
		if !ok {
			return false, "side A: " + why
		}
		ok, why = sideConverged(st[1], "b", pub2[1], "a", pub1[0])
		if !ok {
			return false, "side B: " + why
		}
		return true, ""
	}
	took, _ = waitFor(t, sides, "each side converging while cut", cutState)
	t.Logf("cut: each side's replicas identical after %v", took.Round(time.Millisecond))
	time.Sleep(quiet)
	before := states(t, sides)
	if ok, why := cutState(before); !ok {
		t.Fatalf("the cut leaks, or a side diverged, %v after converging: %s", quiet, why)
	}
	if before[0][0].Hash == before[1][0].Hash {
		t.Fatalf("sides A and B hold the same state while cut")
	}
	var peers []string
	for s := range before {
		for i, n := range before[s] {
			peers = append(peers, fmt.Sprintf("%c%d %d", 'a'+s, i, n.Peers))
		}
	}
	// Some connections to the other side may survive a short cut; after
	// one longer than yamux's keepalive timeout (about 40s) none do, and
	// the heal waits for the peer keeper (every DiscoveryInterval, 30s) to
	// redial the bootstrap peers.
	t.Logf("cut: connected peers per node before the heal: %s", strings.Join(peers, ", "))

	// 3. Heal: measure until all six replicas hold the identical union (to
	// within one poll, pollEvery).
	if err := l.heal(); err != nil {
		t.Fatalf("healing the link: %v", err)
	}
	healed := time.Now()
	var firstCross, firstConn time.Duration
	took, _ = waitFor(t, sides, "convergence after the heal", func(st [2][]nodeState) (bool, string) {
		if firstCross == 0 && crossed(st, pub1) {
			firstCross = time.Since(healed)
		}
		if firstConn == 0 && reconnected(st, before) {
			firstConn = time.Since(healed)
		}
		return identical(st, pub2[0]+pub2[1])
	})
	t.Logf("heal: first connection across after %v, first record after %v", firstConn.Round(time.Millisecond), firstCross.Round(time.Millisecond))
	var redials []string
	for s, side := range states(t, sides) {
		for i, n := range side {
			redials = append(redials, fmt.Sprintf("%c%d %d (%d still lost)", 'a'+s, i, n.Redialed-before[s][i].Redialed, n.Redialing))
		}
	}
	t.Logf("heal: peers reconnected by the redialer: %s", strings.Join(redials, ", "))
	logHealPaths(t, sides, before, during)
	t.Logf("partition heal: converged in %d ms (%d records on side A, %d on side B during the cut; cut %v, %d+%d nodes, sync every %v)",
		took.Milliseconds(), during[0], during[1], cutFor, nodesPerSide, nodesPerSide, syncInterval)
}

// plan writes every node's key into its directory (so the peer IDs, and
// the bootstrap addresses, are known before the nodes start) and returns
// the two helpers' configurations. Ports are fixed: each namespace has its
// own.
func plan(t *testing.T, l *link) [2]helperConfig {
	t.Helper()
	root := t.TempDir()
	names := [2]string{"a", "b"}
	ips := [2]string{l.ipA, l.ipB}
	var cfgs [2]helperConfig
	var first [2]string // each side's first node
	for s := range cfgs {
		cfgs[s] = helperConfig{Side: names[s], SyncInterval: syncInterval, LAN: l.cidr}
		for i := range nodesPerSide {
			dir := filepath.Join(root, names[s], fmt.Sprint(i))
			key, err := p2p.LoadOrCreateKey(t.Context(), filepath.Join(dir, "node.key"), p2p.DefaultPoWDifficulty) // node.Start's default
			if err != nil {
				t.Fatal(err)
			}
			id, err := peer.IDFromPrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			listen := fmt.Sprintf("/ip4/%s/tcp/%d", ips[s], 4001+i)
			if i == 0 {
				first[s] = listen + "/p2p/" + id.String()
			}
			cfgs[s].Nodes = append(cfgs[s].Nodes, nodeConfig{Dir: dir, Listen: listen})
		}
	}
	for s := range cfgs {
		for i := range cfgs[s].Nodes {
			if i > 0 {
				cfgs[s].Nodes[i].Bootstrap = append(cfgs[s].Nodes[i].Bootstrap, first[s])
			}
			cfgs[s].Nodes[i].Bootstrap = append(cfgs[s].Nodes[i].Bootstrap, first[1-s])
		}
	}
	return cfgs
}

// reconnected reports whether some node has more peers than before the
// heal (a connection to the other side is back).
func reconnected(st, before [2][]nodeState) bool {
	for s := range st {
		for i, n := range st[s] {
			if n.Peers > before[s][i].Peers {
				return true
			}
		}
	}
	return false
}

// logHealPaths logs how the records crossed after the heal: by gossip
// (p2p.Stats.Delivered) or by sync (p2p.Stats.SyncAdded). Each record new
// to a node is counted once, by one of the two, but a sync exchange counts
// its records only when it ends, which may be after the replicas already
// agree; so this waits (a few seconds at most) for the counts to add up.
func logHealPaths(t *testing.T, sides [2]*proc, before [2][]nodeState, during [2]int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var gossip, synced int
		var per []string
		settled := true
		st := states(t, sides)
		for s := range st {
			for i, n := range st[s] {
				g := int(n.Delivered - before[s][i].Delivered)
				y := int(n.SyncAdded - before[s][i].SyncAdded)
				gossip += g
				synced += y
				settled = settled && g+y == during[1-s]
				per = append(per, fmt.Sprintf("%c%d %d/%d", 'a'+s, i, g, y))
			}
		}
		if settled || time.Now().After(deadline) {
			note := ""
			if !settled {
				note = " (counters had not settled)"
			}
			t.Logf("heal: %d records crossed by gossip, %d by sync (per node: %s)%s", gossip, synced, strings.Join(per, ", "), note)
			return
		}
		time.Sleep(pollEvery)
	}
}

// campaign has both sides publish for d and returns how many findings
// each side has published in all.
func campaign(t *testing.T, sides [2]*proc, d time.Duration) [2]int {
	t.Helper()
	for _, p := range sides {
		if _, err := p.call(fmt.Sprintf("start %d", publishEvery.Milliseconds())); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(d)
	var n [2]int
	for s, p := range sides {
		r, err := p.call("stop")
		if err != nil {
			t.Fatal(err)
		}
		if r.PublishErrors > 0 {
			t.Errorf("side %s: %d publications failed, the last with: %s", p.side, r.PublishErrors, r.LastError)
		}
		n[s] = r.Published
	}
	return n
}

// states returns every node's state, side A's first.
func states(t *testing.T, sides [2]*proc) [2][]nodeState {
	t.Helper()
	var st [2][]nodeState
	for s, p := range sides {
		r, err := p.call("state")
		if err != nil {
			t.Fatal(err)
		}
		st[s] = r.Nodes
	}
	return st
}

// waitFor polls the nodes' states until cond holds and returns how long
// that took and the last states; after waitLimit it fails the test with
// cond's explanation of the last states.
func waitFor(t *testing.T, sides [2]*proc, what string, cond func([2][]nodeState) (bool, string)) (time.Duration, [2][]nodeState) {
	t.Helper()
	start := time.Now()
	for {
		st := states(t, sides)
		ok, why := cond(st)
		if ok {
			return time.Since(start), st
		}
		if time.Since(start) > waitLimit {
			t.Fatalf("%s: not reached within %v: %s", what, waitLimit, why)
		}
		time.Sleep(pollEvery)
	}
}

// identical reports whether every node holds total records and the same
// state hash.
func identical(st [2][]nodeState, total int) (bool, string) {
	want := st[0][0].Hash
	for s := range st {
		for i, n := range st[s] {
			if n.Count != total || n.Hash != want {
				return false, fmt.Sprintf("node %c%d holds %d of %d records (peers %d); hash %.12s, node a0's %.12s",
					'a'+s, i, n.Count, total, n.Peers, n.Hash, want)
			}
		}
	}
	return true, ""
}

// sideConverged reports whether every node of one side holds the same
// state: all own records the side published and exactly other of the
// other side's.
func sideConverged(nodes []nodeState, ownName string, own int, otherName string, other int) (bool, string) {
	for i, n := range nodes {
		switch {
		case n.BySide[otherName] != other:
			return false, fmt.Sprintf("node %d holds %d records of side %s, want %d", i, n.BySide[otherName], otherName, other)
		case n.BySide[ownName] != own || n.Count != own+other:
			return false, fmt.Sprintf("node %d holds %d of its side's %d records (%d in all)", i, n.BySide[ownName], own, n.Count)
		case n.Hash != nodes[0].Hash:
			return false, fmt.Sprintf("node %d's hash %.12s differs from node 0's %.12s", i, n.Hash, nodes[0].Hash)
		}
	}
	return true, ""
}

// crossed reports whether some node holds a record that the other side
// published during the cut (pre holds what each side published before).
func crossed(st [2][]nodeState, pre [2]int) bool {
	for _, n := range st[0] {
		if n.BySide["b"] > pre[1] {
			return true
		}
	}
	for _, n := range st[1] {
		if n.BySide["a"] > pre[0] {
			return true
		}
	}
	return false
}

// proc is a helper process running one side's nodes in its namespace.
type proc struct {
	side    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies chan string // JSON lines from its stdout; closed at EOF
	log     *tailBuffer // its stderr

	mu sync.Mutex // one command at a time
}

// callTimeout bounds one command; state and stop answer in milliseconds.
const callTimeout = 15 * time.Second

// startProc starts a helper in namespace ns: this test binary, run by
// "ip netns exec", with cfg in its environment. t.Cleanup tells it to quit
// and kills it if it does not.
func startProc(t *testing.T, ns string, cfg helperConfig) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{side: strings.ToUpper(cfg.Side), replies: make(chan string, 16), log: &tailBuffer{}}
	// -test.run=^$: should the helper environment get lost, run nothing.
	p.cmd = exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^$")
	p.cmd.Env = append(os.Environ(), helperEnv+"="+string(b))
	p.cmd.Stderr = p.log
	// ip execs the test binary in place, so this is the helper's pid: it
	// dies with the test even where Cleanup does not run.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = 5 * time.Second
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting side %s: %v", p.side, err)
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(p.replies)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "{") {
				p.replies <- line
			}
		}
	}()
	t.Cleanup(func() {
		if _, err := p.call("quit"); err != nil {
			t.Logf("side %s did not quit (%v); killing it", p.side, err)
			_ = p.cmd.Process.Kill()
		}
		p.stdin.Close()
		select {
		case <-readerDone:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-readerDone
		}
		if err := p.cmd.Wait(); err != nil {
			t.Logf("side %s exited: %v", p.side, err)
		}
		if t.Failed() {
			t.Logf("side %s helper log (tail):\n%s", p.side, p.log.tail())
		}
	})
	return p
}

// call sends one command and returns the reply.
func (p *proc) call(cmd string) (reply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return reply{}, fmt.Errorf("side %s: %s: %w", p.side, cmd, err)
	}
	select {
	case line, ok := <-p.replies:
		if !ok {
			return reply{}, fmt.Errorf("side %s: %s: the helper exited; its log:\n%s", p.side, cmd, p.log.tail())
		}
		var r reply
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return reply{}, fmt.Errorf("side %s: %s: %w", p.side, cmd, err)
		}
		if !r.OK {
			return r, fmt.Errorf("side %s: %s: %s", p.side, cmd, r.Error)
		}
		return r, nil
	case <-time.After(callTimeout):
		return reply{}, fmt.Errorf("side %s: %s: no reply within %v", p.side, cmd, callTimeout)
	}
}

// tailBuffer keeps what a helper writes to stderr, for failure reports.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns the last 4 KiB written.
func (b *tailBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4096 {
		s = "…" + s[len(s)-4096:]
	}
	return s
}
