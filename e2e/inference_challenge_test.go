package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/fraud"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/modelserve"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// captureCache is an inference.Cache that remembers what it is given and
// never hits: it yields the exact record a node computes for a request.
type captureCache struct {
	mu   sync.Mutex
	hash string
	rec  []byte
}

func (c *captureCache) Lookup(context.Context, string) ([]byte, string, bool) { return nil, "", false }
func (c *captureCache) Put(_ context.Context, h, _ string, rec []byte) {
	c.mu.Lock()
	c.hash, c.rec = h, append([]byte(nil), rec...)
	c.mu.Unlock()
}

func smallCheckpoint(t *testing.T) []byte {
	t.Helper()
	corpus, err := ml.LoadCorpus(testenv.DataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"nLayers": 1.0, "dModel": 32.0, "nHeads": 2.0, "contextLength": 64.0, "batchSize": 4.0, "tokenBudget": 20000.0, "warmupSteps": 2.0}
	st, err := ml.NewState(cfg, corpus.VocabSize(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ml.TrainSteps(context.Background(), st, corpus.Train, 10, 10, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := ml.Checkpoint(st.Config, corpus.Vocab, st.Params, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func postV1(t *testing.T, h http.Handler, path, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

// TestChallengeInference: three nodes of one site serve the same model.
// Node 0 signs and shares a cache entry whose answer its model does not
// give; node 1, which re-computes every entry it fetches, gets the request,
// fetches node 0's entry, finds that it does not re-compute, answers with
// its own computation and starts an inference challenge on the site's
// Temporal; node 2 referees by re-computing the request and node 0 loses:
// the penalty goes to node 1. Then a challenge against an honest entry is
// lost by its challenger.
func TestChallengeInference(t *testing.T) {
	s := newStack(t, []string{workflows.TaskQueue}, 0)
	nodes := s.pulseNodes(t, 3, time.Minute)
	waitMesh(t, nodes)
	ctx := context.Background()
	ck := smallCheckpoint(t)

	var svcs []*inference.Service
	for i, n := range nodes {
		svc := &inference.Service{}
		reg := &modelserve.Registry{Load: modelserve.LoadML(nil), Service: svc}
		rate := -1.0 // no re-computation
		if i == 1 {
			rate = 1 // node 1 checks everything it fetches
		}
		if err := n.ServeInference(ctx, svc, reg, node.InferenceOptions{CacheSampleRate: rate, NoKVPrefix: true}); err != nil {
			t.Fatal(err)
		}
		tm, err := reg.Load("tiny", time.Now(), ck)
		if err != nil {
			t.Fatal(err)
		}
		svc.SetText(tm)
		reg.OnChange()
		svcs = append(svcs, svc)
	}

	// The honest record for the request, computed apart from the mesh.
	body := `{"model":"tiny","prompt":"the shock wave near the leading edge of a wedge","max_tokens":8,"temperature":0}`
	capture := &captureCache{}
	honest := &inference.Service{Cache: capture}
	tm, _ := svcs[2].Text("tiny")
	honest.SetText(tm)
	if code, out := postV1(t, honest.Handler("/v1"), "/v1/completions", body); code != 200 {
		t.Fatalf("honest completion: %d %s", code, out)
	}
	var r inference.ResultRecord
	if err := json.Unmarshal(capture.rec, &r); err != nil {
		t.Fatal(err)
	}
	honestText := r.Text
	r.Text = "a made-up answer"
	forged, _ := json.Marshal(r)

	sc0 := svcs[0].Cache.(*p2p.SharedCache)
	sc1 := svcs[1].Cache.(*p2p.SharedCache)
	// The announcements topic is joined by ServeInference, after the
	// research mesh formed: wait until node 0 knows both peers subscribe,
	// or its announcement can go nowhere.
	waitFor(t, 30*time.Second, "node 0 sees both peers on the announcements topic", func() bool { return len(sc0.Peers()) >= 2 })
	sc0.Put(ctx, capture.hash, "tiny", forged)
	waitFor(t, 15*time.Second, "node 1 hears node 0's announcement", func() bool { return sc1.Stats().AnnouncesHeard >= 1 })
	code, out := postV1(t, svcs[1].Handler("/v1"), "/v1/completions", body)
	var cr inference.CompletionResponse
	if code != 200 || json.Unmarshal([]byte(out), &cr) != nil || len(cr.Choices) != 1 {
		t.Fatalf("node 1: %d %s", code, out)
	}
	if cr.Choices[0].Text != honestText {
		t.Fatalf("node 1 answered %q, the model gives %q", cr.Choices[0].Text, honestText)
	}
	if st := sc1.Stats(); st.Mismatches != 1 {
		t.Fatalf("node 1 cache stats %+v: want one mismatch", st)
	}

	e, ok := sc0.Store().Get(capture.hash)
	if !ok {
		t.Fatal("node 0 lost its entry")
	}
	defender, challenger := nodes[0].PeerID(), nodes[1].PeerID()
	id := "inf-" + e.Proof.ProofHash[:16] + "-" + challenger[len(challenger)-8:]
	var res workflows.ChallengeResult
	waitFor(t, 30*time.Second, "the challenge workflow", func() bool {
		_, err := s.tc.DescribeWorkflowExecution(ctx, workflows.ChallengeWorkflowID(id), "")
		return err == nil
	})
	wctx, cancel := ctxTimeout(2 * time.Minute)
	defer cancel()
	if err := s.tc.GetWorkflow(wctx, workflows.ChallengeWorkflowID(id), "").Get(wctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Winner != challenger || res.Loser != defender || res.Verdict.Stage != fraud.StageFull || res.RecordID == "" {
		t.Fatalf("verdict %+v", res)
	}
	ch, err := s.st.GetChallenge(ctx, id)
	if err != nil || ch.Status != "done" || ch.Referee != nodes[2].PeerID() || ch.Domain != "inference" {
		t.Fatalf("challenge row %+v %v", ch, err)
	}
	dB, _ := s.st.BalanceOf(ctx, defender)
	cB, _ := s.st.BalanceOf(ctx, challenger)
	if dB.Points != -workflows.DefaultChallengeBond || cB.Points != workflows.DefaultChallengeBond || cB.Bonded != 0 {
		t.Fatalf("after the challenge: defender %+v, challenger %+v", dB, cB)
	}

	// An honest entry of node 2's, disputed by node 1 anyway: the referee
	// (node 0) re-computes the same bytes and the challenger loses its bond.
	cone := strings.Replace(body, "a wedge", "a cone", 1)
	if code, _ := postV1(t, svcs[2].Handler("/v1"), "/v1/completions", cone); code != 200 {
		t.Fatalf("node 2: %d", code)
	}
	if code, _ := postV1(t, honest.Handler("/v1"), "/v1/completions", cone); code != 200 {
		t.Fatal("honest completion")
	}
	ent, ok := svcs[2].Cache.(*p2p.SharedCache).Store().Get(capture.hash)
	if !ok || ent.Proof.Provider != nodes[2].PeerID() {
		t.Fatalf("node 2's own entry: %v %+v", ok, ent.Proof)
	}
	in, err := activities.PlanInferenceChallenge(ctx, s.st, activities.InferenceDispute{Entry: ent, Challenger: challenger}, 60)
	if err != nil {
		t.Fatal(err)
	}
	if in.Referee != defender || in.Kind != workflows.ChallengeKindInference {
		t.Fatalf("plan %+v", in)
	}
	b, _ := json.Marshal(ent)
	if err := s.blob.Put(ctx, in.EntryKey, b, "application/json"); err != nil {
		t.Fatal(err)
	}
	res2 := runChallenge(t, s, in)
	if res2.Winner != nodes[2].PeerID() || res2.Loser != challenger {
		t.Fatalf("honest entry: %+v", res2)
	}
	cB, _ = s.st.BalanceOf(ctx, challenger)
	if cB.Points != 0 || cB.Bonded != 0 {
		t.Fatalf("challenger after losing: %+v", cB)
	}
}
