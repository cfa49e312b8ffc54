package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/workflows"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// hyperspaceBinary builds cmd/hyperspace once per test run.
func hyperspaceBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hyperspace-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "hyperspace")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/hyperspace").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// workerProc is a `hyperspace worker` child process serving the experiments queue.
type workerProc struct {
	cmd     *exec.Cmd
	started chan string // "experiment started" log lines
}

func (s *stack) startWorkerProcess(t *testing.T, name string) *workerProc {
	t.Helper()
	bin := hyperspaceBinary(t)
	cmd := exec.Command(bin, "worker", "--queues", workflows.ExperimentsQueue)
	cmd.Env = append(os.Environ(),
		"HYPERSPACE_TEMPORAL_ADDRESS="+s.ts.GetFrontendHostPort(),
		"HYPERSPACE_NAMESPACE="+s.ts.GetDefaultNamespace(),
		"HYPERSPACE_DATABASE_URL="+s.dsn,
		"HYPERSPACE_S3_ENDPOINT="+s.blobCfg.Endpoint,
		"HYPERSPACE_S3_ACCESS_KEY="+s.blobCfg.AccessKey,
		"HYPERSPACE_S3_SECRET_KEY="+s.blobCfg.SecretKey,
		"HYPERSPACE_S3_BUCKET="+s.blobCfg.Bucket,
		"HYPERSPACE_DATA_DIR="+s.dataDir,
		"HYPERSPACE_STATE_DIR="+s.stateDir,
		"HYPERSPACE_SITE_SECRET="+testSiteSecret,
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &workerProc{cmd: cmd, started: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if testing.Verbose() {
				t.Logf("[%s] %s", name, line)
			}
			if strings.Contains(line, "experiment started") {
				select {
				case w.started <- line:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return w
}

// TestWorkerKilledMidExperiment kills the only experiments worker (SIGKILL)
// while it trains; a second worker picks the experiment up after the
// heartbeat timeout, the campaign completes, and no experiment is lost or
// duplicated.
func TestWorkerKilledMidExperiment(t *testing.T) {
	// The in-process worker serves workflows and agent activities only:
	// every experiment runs in a child process.
	s := newStack(t, []string{workflows.TaskQueue}, 3)
	a := s.startWorkerProcess(t, "worker-a")
	// Experiments of well under a second (quiet machine) to a few seconds
	// (loaded): the kill follows the "experiment started" line at once, so
	// it lands mid-run either way.
	slow := map[string]any{}
	for k, v := range tinyML {
		slow[k] = v
	}
	slow["tokenBudget"] = 150000
	v := s.startCampaign(map[string]any{"domain": "ml", "agents": 1, "experiments": 2, "seed": 11, "budget": 20, "baseline": slow})

	select {
	case line := <-a.started:
		t.Logf("worker A started an experiment: %s", line)
	case <-time.After(90 * time.Second):
		t.Fatal("worker A never started an experiment")
	}
	time.Sleep(50 * time.Millisecond) // into loading and training; 700 ms outlasted a whole run on a quiet machine
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
	t.Log("worker A killed")
	b := s.startWorkerProcess(t, "worker-b")
	_ = b

	v = s.waitCampaign(v.ID, 5*time.Minute)
	if v.Status != "completed" {
		t.Fatalf("campaign ended %s: %s", v.Status, v.Error)
	}
	sum := s.summary(v)
	rows := s.allExperiments(v.ID)
	if len(rows) != sum.Experiments || sum.Experiments != 3+2 || sum.Failed != 0 {
		t.Fatalf("rows %d, completed %d (failed %d), want 5 each", len(rows), sum.Experiments, sum.Failed)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		k := fmt.Sprintf("%s/%d", r.Agent, r.RunNumber)
		if seen[k] {
			t.Fatalf("duplicate row for %s", k)
		}
		seen[k] = true
	}
	// The killed experiment was retried: some RunExperiment reached attempt 2.
	_, att := completedActivities(history(t, s.tc, v.WorkflowID))
	ah := history(t, s.tc, v.WorkflowID[len("campaign-"):]+"/"+workflows.AgentName(0))
	_, att2 := completedActivities(ah)
	if att[workflows.ActRunExperiment] < 2 && att2[workflows.ActRunExperiment] < 2 {
		t.Fatalf("no RunExperiment was retried (max attempts %v / %v): the kill did not hit a running experiment", att, att2)
	}
}
