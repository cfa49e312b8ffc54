package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/internal/token"
)

// site is one site run as the docker-compose layout runs it, without
// Docker: every service its own `hyperspace` process with its own state
// dir, sharing only PostgreSQL, S3, Temporal (a real server, in this test
// process) and the site secret.
type site struct {
	t       testing.TB
	bin     string
	ts      *temporaltest.TestServer
	tc      client.Client
	st      *store.Store
	dsn     string
	blobCfg blob.Config
	dataDir string
	root    string
	token   string
	apiURL  string
	procs   []*proc
}

func newSite(t testing.TB) *site {
	t.Helper()
	s := &site{t: t, bin: hyperspaceBinary(t), root: t.TempDir(), dataDir: testenv.DataDir(t)}
	if tt, ok := t.(*testing.T); ok {
		s.ts = temporaltest.NewServer(temporaltest.WithT(tt))
	} else {
		s.ts = temporaltest.NewServer()
		t.Cleanup(s.ts.Stop)
	}
	s.tc = s.ts.GetDefaultClient()
	s.st, s.dsn = testenv.Database(t)
	s.blobCfg = testenv.S3(t)
	s.token = testenv.Token(t, s.st, token.Admin)
	return s
}

// env is the environment of every process of the site; secret adds the
// site secret (processes that sign for agents need it, the API and the
// archive do not).
func (s *site) env(stateDir string, secret bool) []string {
	env := append(os.Environ(),
		"HYPERSPACE_TEMPORAL_ADDRESS="+s.ts.GetFrontendHostPort(),
		"HYPERSPACE_NAMESPACE="+s.ts.GetDefaultNamespace(),
		"HYPERSPACE_DATABASE_URL="+s.dsn,
		"HYPERSPACE_S3_ENDPOINT="+s.blobCfg.Endpoint,
		"HYPERSPACE_S3_ACCESS_KEY="+s.blobCfg.AccessKey,
		"HYPERSPACE_S3_SECRET_KEY="+s.blobCfg.SecretKey,
		"HYPERSPACE_S3_BUCKET="+s.blobCfg.Bucket,
		"HYPERSPACE_DATA_DIR="+s.dataDir,
		"HYPERSPACE_STATE_DIR="+stateDir,
		"HYPERSPACE_SITE_SECRET=",
	)
	if secret {
		env = append(env, "HYPERSPACE_SITE_SECRET="+testSiteSecret)
	}
	return env
}

// proc is one child process with its output kept and scanned.
type proc struct {
	name  string
	cmd   *exec.Cmd
	state string
	args  []string
	env   []string

	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

// start runs `hyperspace args...` as service name with its own state dir.
func (s *site) start(name string, secret bool, args ...string) *proc {
	s.t.Helper()
	state := filepath.Join(s.root, name)
	if err := os.MkdirAll(state, 0o700); err != nil {
		s.t.Fatal(err)
	}
	p := &proc{name: name, state: state, args: args, env: s.env(state, secret)}
	p.run(s.t, s.bin)
	s.procs = append(s.procs, p)
	s.t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) run(t testing.TB, bin string) {
	t.Helper()
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Env = p.env
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if testing.Verbose() {
				t.Logf("[%s] %s", p.name, line)
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
	}()
}

// await waits for an output line matching re and returns its submatches.
func (p *proc) await(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	seen := 0
	for {
		p.mu.Lock()
		lines := p.lines[seen:]
		p.mu.Unlock()
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		}
		seen += len(lines)
		select {
		case <-p.done:
			t.Fatalf("%s exited before printing %s:\n%s", p.name, re, p.tail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %s within %s:\n%s", p.name, re, timeout, p.tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// count is how many output lines match re.
func (p *proc) count(re *regexp.Regexp) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

// matches returns the submatches of every output line matching re.
func (p *proc) matches(re *regexp.Regexp) [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]string
	for _, l := range p.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m)
		}
	}
	return out
}

func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	from := max(0, len(p.lines)-n)
	return strings.Join(p.lines[from:], "\n")
}

// kill sends SIGKILL (no clean shutdown, no deregistration) and waits.
func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.name, p.tail(20))
	}
}

var (
	reNodeID   = regexp.MustCompile(`^node (12D3\S+)`)
	reNodeAddr = regexp.MustCompile(`listening: (/ip4/127\.0\.0\.1/tcp/\d+/p2p/\S+)`)
	reNodeTQ   = regexp.MustCompile(`task queue: (node-\S+)`)
	reAPIURL   = regexp.MustCompile(`api listening.* url=(http://\S+)`)
)

// startNode starts a `hyperspace node` and returns it with its peer id,
// a TCP address and its task queue.
func (s *site) startNode(name string, bootstrap string) (*proc, string, string, string) {
	s.t.Helper()
	args := []string{"node", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--domains", "search,ml"}
	if bootstrap != "" {
		args = append(args, "--bootstrap", bootstrap)
	}
	p := s.start(name, true, args...)
	id := p.await(s.t, reNodeID, 60*time.Second)[1]
	addr := p.await(s.t, reNodeAddr, 10*time.Second)[1]
	tq := p.await(s.t, reNodeTQ, 10*time.Second)[1]
	return p, id, addr, tq
}

// startAPI starts `hyperspace api` on a free port.
func (s *site) startAPI(extra ...string) *proc {
	s.t.Helper()
	port := testenv.FreePort(s.t)
	args := append([]string{"api", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, extra...)
	p := s.start("api", false, args...)
	s.apiURL = p.await(s.t, reAPIURL, 60*time.Second)[1]
	return p
}

// do calls the site's API with its admin token.
func (s *site) do(method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.apiURL+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// waitNodes waits until n nodes are live in the site database.
func (s *site) waitNodes(n int) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		live, err := s.st.LiveNodes(context.Background(), 30*time.Second)
		if err == nil && len(live) >= n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d live nodes, want %d", len(live), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *site) startCampaign(req map[string]any) api.CampaignView {
	s.t.Helper()
	noConfirmations(req)
	code, body := s.do(http.MethodPost, "/api/v1/campaigns", req)
	if code != http.StatusCreated {
		s.t.Fatalf("start campaign: %d %s", code, body)
	}
	var v api.CampaignView
	if err := json.Unmarshal(body, &v); err != nil {
		s.t.Fatal(err)
	}
	return v
}

func (s *site) campaign(id string) api.CampaignView {
	s.t.Helper()
	code, body := s.do(http.MethodGet, "/api/v1/campaigns/"+id, nil)
	if code != http.StatusOK {
		s.t.Fatalf("get campaign: %d %s", code, body)
	}
	var v api.CampaignView
	if err := json.Unmarshal(body, &v); err != nil {
		s.t.Fatal(err)
	}
	return v
}

func (s *site) waitCampaign(id string, timeout time.Duration) api.CampaignView {
	s.t.Helper()
	var v api.CampaignView
	s.waitEnded("campaign "+id, timeout, func() string { v = s.campaign(id); return v.Status })
	return v
}

// waitEnded polls status until it is completed, stopped or failed; past
// timeout it logs every process's tail and fails.
func (s *site) waitEnded(what string, timeout time.Duration, status func() string) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := status()
		switch st {
		case store.StatusCompleted, store.StatusStopped, store.StatusFailed:
			return
		}
		if time.Now().After(deadline) {
			for _, p := range s.procs {
				s.t.Logf("--- %s:\n%s", p.name, p.tail(15))
			}
			s.t.Fatalf("%s still %s after %s", what, st, timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitWorkflow waits until workflow id (following ContinueAsNew) closes.
func (s *site) waitWorkflow(id string, timeout time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.tc.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		s.t.Fatalf("workflow %s: %v", id, err)
	}
}
