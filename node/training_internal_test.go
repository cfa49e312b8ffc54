package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/diloco"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TestRemoteDeltaAdmission: the owner admits a remote delta only when the
// sending peer signed it, for the open round and base, before the
// deadline, with the model's shape and a sane norm, once per peer; every
// refusal is counted by reason and kept in training_deltas.
func TestRemoteDeltaAdmission(t *testing.T) {
	st, _ := testenv.Database(t)
	b, _ := testenv.Blob(t)
	dataDir := testenv.DataDir(t)
	c, err := ml.LoadCorpus(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spec, err := diloco.Spec{Config: domains.Config{"nLayers": 1.0, "dModel": 16.0, "nHeads": 2.0, "contextLength": 16.0, "batchSize": 4.0},
		Workers: 1, InnerSteps: 5, Rounds: 3, Compression: "int8"}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	const run = "remote-adm"
	specJSON, _ := json.Marshal(spec)
	if err := st.CreateTrainingRun(ctx, store.TrainingRun{ID: run, Spec: specJSON, WorkflowID: "w"},
		store.Campaign{ID: run, Domain: "ml", Agents: 1, Experiments: 1, Request: specJSON, WorkflowID: "w"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetTrainingStatus(ctx, run, store.StatusRunning, nil, "", ""); err != nil {
		t.Fatal(err)
	}
	s0, _ := ml.NewState(spec.Config, c.VocabSize(), 1, 0)
	layout := diloco.Layout(spec.Config, c.VocabSize())
	pb, _ := diloco.EncodeParams(run, 0, layout, s0.Params)
	base := tensor.Hash(pb)
	if err := b.Put(ctx, activities.TrainingKey(run, "params", base), pb, ""); err != nil {
		t.Fatal(err)
	}
	adm := admission.New(admission.Config{Quotas: map[string]admission.Quota{admission.PathTraining: {Rate: 100, Burst: 100}}})
	o := &trainingOwner{n: &Node{log: testLogger()}, acts: &activities.Activities{Store: st, Blob: b, DataDir: dataDir}, adm: adm,
		open: map[string]*openRound{run: {round: 0, base: base, deadline: time.Now().Add(time.Minute), spec: spec, global: s0.Params}}}

	if got, err := o.Params(ctx, run, base); err != nil || string(got) != string(pb) {
		t.Fatalf("params: %v", err)
	}
	if _, err := o.Params(ctx, run, "../../etc"); err == nil {
		t.Fatal("non-hash accepted")
	}

	delta := func(sp diloco.Spec, g []float32, scale float32) []byte {
		t.Helper()
		w, err := diloco.TrainInner(sp, run, 0, -1, base, diloco.Layout(sp.Config, c.VocabSize()), c.VocabSize(), g,
			diloco.NewInner(len(g), 1, 7, false), c.Train, diloco.GoTrainer(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if scale == 1 {
			return w.Delta
		}
		f, _ := tensor.Decode(w.Delta)
		var m diloco.DeltaMeta
		_ = f.Meta(&m)
		v := f.Vecs["delta"]
		for i := range v {
			v[i] *= scale
		}
		out, _ := tensor.EncodeCompact("delta", diloco.Layout(sp.Config, c.VocabSize()), m, tensor.Vec{Name: "delta", Codec: tensor.FP16, Data: v})
		return out
	}
	newPeer := func() (crypto.PrivKey, peer.ID) {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		return k, id
	}
	send := func(k crypto.PrivKey, from peer.ID, round int, b []byte) error {
		d := p2p.SignedDelta{Run: run, Round: round, Base: base, At: time.Now().UnixMilli(), Delta: b}
		if err := p2p.SignDelta(k, &d); err != nil {
			t.Fatal(err)
		}
		return o.Delta(ctx, from, d, len(b))
	}
	good := delta(spec, s0.Params, 1)
	k1, p1 := newPeer()
	if err := send(k1, p1, 0, good); err != nil {
		t.Fatalf("good delta refused: %v", err)
	}
	cases := map[string]func() error{
		admission.ReasonDuplicate: func() error { return send(k1, p1, 0, good) },
		admission.ReasonBadSignature: func() error { // signed by another key than the sender's
			k, _ := newPeer()
			_, from := newPeer()
			return send(k, from, 0, good)
		},
		admission.ReasonStale: func() error { k, id := newPeer(); return send(k, id, 1, good) },
		admission.ReasonMalformed: func() error { // another model's shape
			other, _ := diloco.Spec{Config: domains.Config{"nLayers": 1.0, "dModel": 32.0, "nHeads": 2.0, "contextLength": 16.0, "batchSize": 4.0},
				Workers: 1, InnerSteps: 5, Rounds: 3, Compression: "int8"}.Normalize()
			s1, _ := ml.NewState(other.Config, c.VocabSize(), 1, 0)
			k, id := newPeer()
			return send(k, id, 0, delta(other, s1.Params, 1))
		},
		admission.ReasonInvalid: func() error { k, id := newPeer(); return send(k, id, 0, delta(spec, s0.Params, 1e4)) },
	}
	for reason, f := range cases {
		err := f()
		if admission.ReasonOf(err) != reason {
			t.Errorf("%s: got %v", reason, err)
		}
	}
	stats := adm.Stats()
	if stats.Accepted["training/delta"] != 1 {
		t.Errorf("accepted %v", stats.Accepted)
	}
	for reason := range cases {
		if stats.Rejected["training/delta/"+reason] != 1 {
			t.Errorf("rejected[%s] = %d (%v)", reason, stats.Rejected["training/delta/"+reason], stats.Rejected)
		}
	}
	refs, err := o.CollectRemoteDeltas(ctx, workflows.CollectRemoteInput{RunID: run, Round: 0, Global: base})
	if err != nil || len(refs) != 1 || refs[0].Contributor != p1.String() || !refs[0].Remote {
		t.Fatalf("collect: %+v %v", refs, err)
	}
	// Once collected, the round is closed.
	k, id := newPeer()
	if err := send(k, id, 0, good); admission.ReasonOf(err) != admission.ReasonStale {
		t.Fatalf("after close: %v", err)
	}
	rejected, _ := st.TrainingDeltas(ctx, run, 0, "rejected")
	if len(rejected) < 3 || !strings.Contains(rejected[0].Reason+rejected[1].Reason+rejected[2].Reason, "") {
		t.Fatalf("rejected rows %+v", rejected)
	}
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
