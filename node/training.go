package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/diloco"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// DiLoCo across sites, the owner's side: the node named by a run's
// NodeQueue announces each round (AnnounceTrainingRound, run by the
// workflow on this node's queue), serves the round's global parameters to
// any node that asks, and admits deltas sent to it until the workflow
// collects them (CollectRemoteDeltas) or the round's deadline passes.

// openRound is a round this node has announced and not yet closed.
type openRound struct {
	round    int
	base     string
	deadline time.Time
	spec     diloco.Spec
	global   []float32
}

type trainingOwner struct {
	n    *Node
	acts *activities.Activities
	adm  *admission.Checker

	mu   sync.Mutex
	open map[string]*openRound // by run
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Params implements p2p.TrainingServer: a run's parameters by content hash.
func (o *trainingOwner) Params(ctx context.Context, run, hash string) ([]byte, error) {
	if !isHash(hash) {
		return nil, errors.New("not a content hash")
	}
	r, err := o.acts.Store.GetTrainingRun(ctx, run)
	if err != nil {
		return nil, fmt.Errorf("no training run %q here", run)
	}
	if r.Status != store.StatusRunning {
		return nil, fmt.Errorf("training run %s is %s", run, r.Status)
	}
	return o.acts.Blob.Get(ctx, activities.TrainingKey(run, "params", hash))
}

// Delta implements p2p.TrainingServer: the admission of a remote delta.
func (o *trainingOwner) Delta(ctx context.Context, from peer.ID, d p2p.SignedDelta, size int) error {
	src := admission.Source{Path: admission.PathTraining, Peer: from, Publisher: from}
	if err := o.adm.Delta(src, d.At, func() error { return d.Verify(from) }); err != nil {
		o.record(ctx, d, from, admission.ReasonOf(err), 0)
		return err
	}
	o.mu.Lock()
	r := o.open[d.Run]
	o.mu.Unlock()
	reject := func(reason string, err error) error {
		o.record(ctx, d, from, reason, size)
		return o.adm.Reject(src, admission.KindDelta, reason, err)
	}
	switch {
	case r == nil:
		return reject(admission.ReasonStale, fmt.Errorf("no open round of run %q", d.Run))
	case d.Round != r.round || d.Base != r.base:
		return reject(admission.ReasonStale, fmt.Errorf("round %d base %.12s; open is round %d base %.12s", d.Round, d.Base, r.round, r.base))
	case time.Now().After(r.deadline):
		return reject(admission.ReasonStale, errors.New("after the round's deadline"))
	case len(d.Delta) > 4*len(r.global)+(1<<20):
		return reject(admission.ReasonOversized, fmt.Errorf("%d bytes for %d parameters", len(d.Delta), len(r.global)))
	}
	dd, err := diloco.DecodeDelta(d.Delta, d.Run, d.Round, d.Base, r.global)
	if err != nil {
		return reject(admission.ReasonMalformed, err)
	}
	if dd.Meta.Steps != r.spec.InnerSteps {
		return reject(admission.ReasonInvalid, fmt.Errorf("%d inner steps, the run takes %d", dd.Meta.Steps, r.spec.InnerSteps))
	}
	if bound := diloco.NormBound(nil, r.global); dd.Norm > bound {
		return reject(admission.ReasonInvalid, fmt.Errorf("norm %.3g beyond %.3g", dd.Norm, bound))
	}
	h := tensor.Hash(d.Delta)
	key := activities.TrainingKey(d.Run, fmt.Sprintf("deltas/%d", d.Round), "remote-"+from.String()+"-"+h)
	if err := o.acts.Blob.Put(ctx, key, d.Delta, "application/octet-stream"); err != nil {
		return err
	}
	ins, err := o.acts.Store.PutTrainingDelta(ctx, store.TrainingDelta{RunID: d.Run, Round: d.Round, Contributor: from.String(),
		S3Key: key, Hash: h, Status: "accepted", Bytes: int64(size)})
	if err != nil {
		return err
	}
	if !ins {
		return o.adm.Reject(src, admission.KindDelta, admission.ReasonDuplicate, errors.New("one delta per peer and round"))
	}
	o.adm.Admit(src, admission.KindDelta)
	o.n.log.Info("remote delta admitted", "run", d.Run, "round", d.Round, "from", from, "bytes", size, "norm", dd.Norm)
	return nil
}

// record keeps a refused delta's reason (one row per peer and round).
func (o *trainingOwner) record(ctx context.Context, d p2p.SignedDelta, from peer.ID, reason string, size int) {
	if d.Run == "" || reason == "" {
		return
	}
	if _, err := o.acts.Store.GetTrainingRun(ctx, d.Run); err != nil {
		return // not a run of this site: nothing to keep
	}
	_, _ = o.acts.Store.PutTrainingDelta(ctx, store.TrainingDelta{RunID: d.Run, Round: d.Round, Contributor: from.String(),
		Status: "rejected", Reason: reason, Bytes: int64(size)})
	o.n.log.Warn("remote delta rejected", "run", d.Run, "round", d.Round, "from", from, "reason", reason)
}

// AnnounceTrainingRound opens a round to other sites.
func (o *trainingOwner) AnnounceTrainingRound(ctx context.Context, in workflows.AnnounceRoundInput) error {
	global, err := o.acts.GlobalParams(ctx, in.RunID, in.Global)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Duration(in.DeadlineSec * float64(time.Second)))
	o.mu.Lock()
	o.open[in.RunID] = &openRound{round: in.Round, base: in.Global, deadline: deadline, spec: in.Spec, global: global}
	o.mu.Unlock()
	spec, _ := json.Marshal(in.Spec)
	return o.n.P2P.AnnounceRound(ctx, p2p.RoundAnnouncement{Run: in.RunID, Round: in.Round, Global: in.Global,
		DeadlineMs: deadline.UnixMilli(), Spec: spec})
}

// CollectRemoteDeltas closes the round and returns its admitted deltas.
func (o *trainingOwner) CollectRemoteDeltas(ctx context.Context, in workflows.CollectRemoteInput) ([]workflows.DeltaRef, error) {
	o.mu.Lock()
	if r := o.open[in.RunID]; r != nil && r.round == in.Round {
		delete(o.open, in.RunID)
	}
	o.mu.Unlock()
	ds, err := o.acts.Store.TrainingDeltas(ctx, in.RunID, in.Round, "accepted")
	if err != nil {
		return nil, err
	}
	out := []workflows.DeltaRef{}
	for _, d := range ds {
		out = append(out, workflows.DeltaRef{Key: d.S3Key, Shard: -1, Contributor: d.Contributor, Remote: true})
	}
	return out, nil
}

func (o *trainingOwner) register(w worker.Registry) {
	w.RegisterActivityWithOptions(o.AnnounceTrainingRound, activity.RegisterOptions{Name: workflows.ActAnnounceRound})
	w.RegisterActivityWithOptions(o.CollectRemoteDeltas, activity.RegisterOptions{Name: workflows.ActCollectRemote})
}

// joinTraining contributes to another site's run: for every round
// announced on the run's topic it fetches the global parameters from the
// owner, trains the run's H inner steps on this node's own data (the whole
// train split, with a sampler stream of its own), and sends the signed
// delta back. Its inner optimizer state stays here, across rounds.
func (n *Node) joinTraining(ctx context.Context, run, dataDir string, train activities.InnerTrainer) error {
	ch, leave, err := n.P2P.JoinTraining(run)
	if err != nil {
		return err
	}
	defer leave()
	c, err := ml.LoadCorpus(dataDir)
	if err != nil {
		return err
	}
	h := fnv.New32a()
	h.Write([]byte(n.P2P.ID()))
	stream := 1000 + int(h.Sum32()%100000)
	var inner *diloco.InnerState
	n.log.Info("joined training run", "run", run, "topic", p2p.TopicForTraining(run))
	for {
		var a p2p.RoundAnnouncement
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case a, ok = <-ch:
			if !ok {
				return nil
			}
		}
		if err := n.contribute(ctx, a, c, stream, &inner, train); err != nil {
			n.log.Warn("training contribution failed", "run", run, "round", a.Round, "error", err)
		}
	}
}

func (n *Node) contribute(ctx context.Context, a p2p.RoundAnnouncement, c *ml.Corpus, stream int, inner **diloco.InnerState, train activities.InnerTrainer) error {
	var spec diloco.Spec
	if err := json.Unmarshal(a.Spec, &spec); err != nil {
		return err
	}
	spec, err := spec.Normalize() // the network's word is checked like an API caller's
	if err != nil {
		return fmt.Errorf("announced spec: %w", err)
	}
	deadline := time.UnixMilli(a.DeadlineMs)
	if time.Now().After(deadline) {
		return errors.New("round already past its deadline")
	}
	owner, err := peer.Decode(a.Owner)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	file, err := n.P2P.FetchParams(fctx, owner, a.Run, a.Global)
	if err != nil {
		return fmt.Errorf("fetch parameters: %w", err)
	}
	f, err := tensor.Decode(file)
	if err != nil {
		return err
	}
	global, err := f.Vec("params")
	if err != nil {
		return err
	}
	if ml.NumParams(spec.Config, c.VocabSize()) != len(global) {
		return fmt.Errorf("parameters have %d values; the spec's model has %d", len(global), ml.NumParams(spec.Config, c.VocabSize()))
	}
	if *inner == nil || len((*inner).M) != len(global) {
		s := diloco.NewInner(len(global), spec.Seed, stream, *spec.ErrorFeedback)
		*inner = &s
	}
	(*inner).Step = a.Round * spec.InnerSteps
	if train == nil {
		train = activities.GoInnerTrainer
	}
	layout := diloco.Layout(spec.Config, c.VocabSize())
	w, err := diloco.TrainInner(spec, a.Run, a.Round, -1, a.Global, layout, c.VocabSize(), global, **inner, c.Train,
		func(st *ml.State, data []uint8, k, total int) (ml.StepStats, error) {
			return train(fctx, st, data, k, total, nil)
		})
	if err != nil {
		return err
	}
	d := p2p.SignedDelta{Run: a.Run, Round: a.Round, Base: a.Global, At: time.Now().UnixMilli(), Delta: w.Delta}
	if err := p2p.SignDelta(n.key, &d); err != nil {
		return err
	}
	if err := n.P2P.SendDelta(fctx, owner, d); err != nil {
		return err
	}
	*inner = &w.Inner
	n.log.Info("training delta sent", "run", a.Run, "round", a.Round, "owner", owner, "bytes", len(w.Delta), "loss", w.Stats.MeanLoss())
	return nil
}
