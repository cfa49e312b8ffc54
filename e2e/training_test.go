package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// trainConfig is a small model whose inner rounds take about a second.
var trainConfig = map[string]any{"nLayers": 1, "dModel": 32, "nHeads": 2, "contextLength": 32, "dFFMult": 2,
	"batchSize": 8, "warmupSteps": 10, "learningRate": 0.01}

func (s *site) startTraining(req map[string]any) api.TrainingRunView {
	s.t.Helper()
	code, body := s.do(http.MethodPost, "/api/v1/training-runs", req)
	if code != http.StatusCreated {
		s.t.Fatalf("start training run: %d %s", code, body)
	}
	var v api.TrainingRunView
	if err := json.Unmarshal(body, &v); err != nil {
		s.t.Fatal(err)
	}
	return v
}

func (s *site) training(id string) api.TrainingRunView {
	s.t.Helper()
	var v api.TrainingRunView
	s.getJSON("/api/v1/training-runs/"+id+"?rounds=true", &v)
	return v
}

// getJSON GETs path (expecting 200) into out.
func (s *site) getJSON(path string, out any) {
	s.t.Helper()
	code, body := s.do(http.MethodGet, path, nil)
	if code != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) waitTraining(id string, timeout time.Duration) api.TrainingRunView {
	s.t.Helper()
	var v api.TrainingRunView
	s.waitEnded("training run "+id, timeout, func() string { v = s.training(id); return v.Status })
	return v
}

// TestTrainingRun: a 4-worker DiLoCo run on real Temporal, PostgreSQL and
// S3, with the workflow worker and three inner-training workers as
// separate processes; one inner-training worker is SIGKILLed in the middle
// of a round. The run completes, every round is recorded, the killed
// worker's shard is trained by the others, and the result is a verifying
// training-run receipt with a checkpoint.
func TestTrainingRun(t *testing.T) {
	s := newSite(t)
	s.startAPI()
	orch := s.start("orchestrator", true, "worker", "--queues", "hyperspace")
	var workers []*proc
	for i := 0; i < 3; i++ {
		workers = append(workers, s.start(fmt.Sprintf("trainer%d", i), true, "worker", "--queues", "experiments"))
	}

	// Bad input: 4xx naming the field.
	for field, body := range map[string]map[string]any{
		"workers":       {"workers": 0, "innerSteps": 10, "rounds": 1},
		"innerSteps":    {"workers": 2, "innerSteps": 1000000, "rounds": 1},
		"compression":   {"workers": 2, "innerSteps": 10, "rounds": 1, "compression": "int3"},
		"config.dModel": {"workers": 2, "innerSteps": 10, "rounds": 1, "config": map[string]any{"dModel": 30, "nHeads": 4}},
		"rounds":        {"workers": 2, "innerSteps": 10},
		"bogus":         {"workers": 2, "innerSteps": 10, "rounds": 1, "bogus": true},
	} {
		code, out := s.do(http.MethodPost, "/api/v1/training-runs", body)
		var e api.ErrorBody
		_ = json.Unmarshal(out, &e)
		if code < 400 || code >= 500 || e.Error.Field != field {
			t.Errorf("%s: HTTP %d %s", field, code, out)
		}
	}

	const rounds = 12 // past one ContinueAsNew (every 10 rounds)
	v := s.startTraining(map[string]any{"id": "dl-e2e", "config": trainConfig, "workers": 4, "innerSteps": 150,
		"rounds": rounds, "compression": "int8", "seed": 5, "minDeadlineSec": 3})
	if v.Links["temporalUI"] == "" && v.WorkflowID != workflows.TrainingWorkflowID("dl-e2e") {
		t.Fatalf("view %+v", v)
	}
	// Kill trainer0 while it trains a shard of round 2 (0-based).
	started := regexp.MustCompile(`inner training started.* round=2 shard=(\d)`)
	victim := workers[0]
	victim.await(t, started, 4*time.Minute)
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	t.Log("killed trainer0 mid-round")

	// Crash the orchestrator (the workflow worker) after round 5 closed and
	// start another: the run resumes where it was and retrains no round
	// that was already accepted.
	var closed int
	for deadline := time.Now().Add(4 * time.Minute); ; {
		rs, _ := s.st.TrainingRounds(context.Background(), "dl-e2e")
		if len(rs) >= 5 {
			closed = len(rs)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("round 5 never closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	orch.kill()
	seen := map[*proc]int{}
	for _, w := range workers[1:] {
		seen[w] = len(w.matches(regexp.MustCompile(`inner training started`)))
	}
	s.start("orchestrator2", true, "worker", "--queues", "hyperspace")
	t.Logf("killed the orchestrator with %d rounds closed; started another", closed)

	v = s.waitTraining("dl-e2e", 8*time.Minute)
	if v.Status != store.StatusCompleted {
		t.Fatalf("run %s: %s", v.Status, v.Error)
	}
	if len(v.Rounds) != rounds {
		t.Fatalf("%d rounds recorded, want %d", len(v.Rounds), rounds)
	}
	for i, r := range v.Rounds {
		if r.Round != i+1 || (i > 0 && r.BaseHash != v.Rounds[i-1].GlobalHash) {
			t.Fatalf("round %d: %+v does not continue round %d", i+1, r, i)
		}
	}
	reStart := regexp.MustCompile(`inner training started.* round=(\d+) `)
	for w, n := range seen {
		for _, m := range w.matches(reStart)[n:] {
			if r, _ := strconv.Atoi(m[1]); r < closed {
				t.Fatalf("%s retrained round %d (0-based) after the restart; %d rounds were closed", w.name, r, closed)
			}
		}
	}
	var prog workflows.TrainingProgress
	if err := json.Unmarshal(v.Progress, &prog); err != nil {
		t.Fatal(err)
	}
	t.Logf("progress: rounds %d val %.4f test %.4f up %d down %d dropped %d contributors %v",
		prog.Round, prog.ValLoss, prog.TestLoss, prog.BytesUp, prog.BytesDown, prog.Dropped, prog.Contributors)
	if prog.Round != rounds || prog.Result == "" || prog.BytesUp == 0 || len(prog.Contributors) < 2 {
		t.Fatalf("progress %+v", prog)
	}
	// Every later round still averaged deltas of all 4 shards once
	// the killed worker's shard moved to a live worker.
	last := v.Rounds[len(v.Rounds)-1]
	var rec struct {
		Record struct {
			Accepted []string `json:"accepted"`
			Previous string   `json:"previous"`
		} `json:"record"`
	}
	_ = json.Unmarshal(last.Record, &rec)
	if len(rec.Record.Accepted) != 4 || rec.Record.Previous != v.Rounds[len(v.Rounds)-2].RecordID {
		t.Fatalf("last round %s", last.Record)
	}
	first := v.Rounds[0].ValLoss
	if !(prog.ValLoss < first) {
		t.Fatalf("val_loss did not fall: round 1 %.4f, final %.4f", first, prog.ValLoss)
	}
	// The result: a verifying training-run receipt on the ML leaderboard,
	// with its rounds as parents and a checkpoint in S3.
	e, err := s.st.GetExperiment(context.Background(), prog.Result)
	if err != nil {
		t.Fatal(err)
	}
	var sr receipt.Signed
	if err := json.Unmarshal(e.Record, &sr); err != nil {
		t.Fatal(err)
	}
	if err := sr.Verify(); err != nil {
		t.Fatal(err)
	}
	ag, err := s.st.GetAgent(context.Background(), "dl-e2e", "diloco")
	if err != nil || ag.PublicKey != sr.Receipt.PublicKey {
		t.Fatalf("signer %v not the registered key: %v", sr.Receipt.PeerID, err)
	}
	if sr.Receipt.Kind != "training-run" || sr.Receipt.Training == nil || len(sr.Receipt.Parents) != rounds ||
		sr.Receipt.Training.RoundChain != last.RecordID || sr.Receipt.Training.Solo {
		t.Fatalf("receipt %+v %+v", sr.Receipt, sr.Receipt.Training)
	}
	code, board := s.do(http.MethodGet, "/api/v1/domains/ml/leaderboard", nil)
	if code != http.StatusOK || !strings.Contains(string(board), prog.Result) {
		t.Fatalf("leaderboard %d %s", code, board)
	}
	code, ck := s.do(http.MethodGet, "/api/v1/experiments/"+prog.Result+"/artifacts/checkpoint.bin", nil)
	if code != http.StatusOK || !strings.HasPrefix(string(ck), "HSMLCKPT") {
		t.Fatalf("checkpoint: %d %d bytes", code, len(ck))
	}
	// Stopping an ended run is a conflict.
	if code, _ := s.do(http.MethodPost, "/api/v1/training-runs/dl-e2e/stop", nil); code != http.StatusConflict {
		t.Fatalf("stop ended run: %d", code)
	}
}

// TestTrainingAcrossSites: a node of a second site (its own database,
// S3 and Temporal) joins a run of the first site over libp2p: it hears the
// rounds on the run's gossip topic, fetches the global parameters from the
// owner's node, trains, and sends signed deltas, which the owner's rounds
// admit and average with the site's own.
func TestTrainingAcrossSites(t *testing.T) {
	a := newSite(t)
	a.startAPI()
	a.start("orchestrator", true, "worker", "--queues", "hyperspace,experiments")
	_, idA, addrA, _ := a.startNode("nodeA", "")
	a.waitNodes(1)

	b := newSite(t)
	const run = "dl-cross"
	nodeB := b.start("nodeB", true, "node", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--domains", "ml",
		"--bootstrap", addrA, "--join-training", run)
	idB := nodeB.await(t, reNodeID, 60*time.Second)[1]
	nodeB.await(t, regexp.MustCompile(`joined training run`), 30*time.Second)

	v := a.startTraining(map[string]any{"id": run, "config": trainConfig, "workers": 1, "innerSteps": 60,
		"rounds": 5, "compression": "int8", "seed": 3, "remote": true, "minDeadlineSec": 4})
	v = a.waitTraining(run, 6*time.Minute)
	if v.Status != store.StatusCompleted {
		t.Fatalf("run %s: %s", v.Status, v.Error)
	}
	var prog workflows.TrainingProgress
	_ = json.Unmarshal(v.Progress, &prog)
	t.Logf("owner %s, remote %s: remote deltas %d, contributors %v, val %.4f", idA, idB, prog.Remote, prog.Contributors, prog.ValLoss)
	if prog.Remote < 2 || prog.Contributors[idB] < 2 {
		for _, p := range append(a.procs, b.procs...) {
			t.Logf("--- %s:\n%s", p.name, p.tail(20))
		}
		t.Fatalf("the second site's node contributed %d deltas (remote %d), want >= 2", prog.Contributors[idB], prog.Remote)
	}
	if n := nodeB.count(regexp.MustCompile(`training delta sent`)); n < prog.Remote {
		t.Fatalf("node B sent %d deltas, owner counted %d", n, prog.Remote)
	}
	// A history for the replay tests (announce, collect, outer step, finish).
	saveHistory(t, history(t, a.tc, workflows.TrainingWorkflowID(run)), "training_remote.json")
	// The result names the remote contributor.
	e, err := a.st.GetExperiment(context.Background(), prog.Result)
	if err != nil {
		t.Fatal(err)
	}
	var sr receipt.Signed
	_ = json.Unmarshal(e.Record, &sr)
	found := false
	for _, c := range sr.Receipt.Training.Contributors {
		found = found || c.ID == idB
	}
	if !found {
		t.Fatalf("contributors %+v lack %s", sr.Receipt.Training.Contributors, idB)
	}
}

// TestMixedBackends: a run whose shards alternate between a Go worker
// (experiments) and a PyTorch worker (experiments-gpu) completes; both
// contribute, and parameters cross between the backends in the one tensor
// format every round.
func TestMixedBackends(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil && os.Getenv("CI") == "" {
		t.Skip("no python3")
	}
	s := newSite(t)
	s.startAPI()
	s.start("orchestrator", true, "worker", "--queues", "hyperspace,experiments")
	gpu := s.start("torch-worker", true, "worker", "--queues", "experiments-gpu", "--backend", "torch")
	if _, err := awaitEither(gpu, regexp.MustCompile(`worker running`), regexp.MustCompile(`level=ERROR|--backend torch:`), time.Minute); err != nil {
		if os.Getenv("CI") == "" && os.Getenv("HYPERSPACE_TORCH_REQUIRED") == "" {
			t.Skipf("no PyTorch here (scripts/ensure-torch.sh installs it): %v", err)
		}
		t.Fatal(err)
	}
	v := s.startTraining(map[string]any{"id": "dl-mixed", "config": trainConfig, "workers": 2, "innerSteps": 50,
		"rounds": 4, "compression": "fp16", "seed": 2, "backend": "any", "minDeadlineSec": 3})
	v = s.waitTraining(v.ID, 6*time.Minute)
	if v.Status != store.StatusCompleted {
		t.Fatalf("run %s: %s", v.Status, v.Error)
	}
	var prog workflows.TrainingProgress
	_ = json.Unmarshal(v.Progress, &prog)
	torchRounds := len(gpu.matches(regexp.MustCompile(`inner training finished.* backend=torch`)))
	t.Logf("contributors %v, torch rounds %d, val %.4f (round 1 %.4f)", prog.Contributors, torchRounds, prog.ValLoss, v.Rounds[0].ValLoss)
	if len(prog.Contributors) != 2 || torchRounds < 3 || !(prog.ValLoss < v.Rounds[0].ValLoss) {
		t.Fatalf("mixed run: contributors %v, torch rounds %d", prog.Contributors, torchRounds)
	}
}

// awaitEither waits for ok or bad in p's output; bad or a timeout is an error.
func awaitEither(p *proc, ok, bad *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := p.matches(ok); len(m) > 0 {
			return m[0][0], nil
		}
		if m := p.matches(bad); len(m) > 0 {
			return "", fmt.Errorf("%s: %s", p.name, p.tail(5))
		}
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited: %s", p.name, p.tail(5))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("%s: no %q within %s", p.name, ok, timeout)
}
