package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/diloco"
	"github.com/hyperspace-ai/hyperspace/internal/jcs"
	"github.com/hyperspace-ai/hyperspace/internal/metrics"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/internal/tensor"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TrainingAgent is the agent name a training run's result is signed under.
const TrainingAgent = workflows.TrainingAgent

// InnerTrainer continues a State for exactly n steps (ml.TrainSteps, or
// another backend with the same semantics).
type InnerTrainer func(ctx context.Context, st *ml.State, data []uint8, n, total int, progress func(done int, loss float64)) (ml.StepStats, error)

// RegisterTraining registers the DiLoCo activities that run on the
// workflow queue (init, outer step, finish, status).
func (a *Activities) RegisterTraining(w worker.Registry) {
	w.RegisterActivityWithOptions(a.TrainingInit, activity.RegisterOptions{Name: workflows.ActTrainingInit})
	w.RegisterActivityWithOptions(a.OuterStep, activity.RegisterOptions{Name: workflows.ActOuterStep})
	w.RegisterActivityWithOptions(a.TrainingFinish, activity.RegisterOptions{Name: workflows.ActTrainingFinish})
	w.RegisterActivityWithOptions(a.TrainingStatus, activity.RegisterOptions{Name: workflows.ActTrainingStatus})
}

// RegisterInnerTrain registers InnerTrain (experiments or GPU queue).
func (a *Activities) RegisterInnerTrain(w worker.Registry) {
	w.RegisterActivityWithOptions(a.InnerTrain, activity.RegisterOptions{Name: workflows.ActInnerTrain})
}

// S3 layout of a run: every file but the checkpoint is named by its
// content hash (deltas and updates by their round and base as well).
func TrainingKey(run, kind, name string) string {
	return "training/" + run + "/" + kind + "/" + name + ".hst"
}

// paramCache keeps the last global parameters this process saw, by hash,
// so a worker rebuilds the next ones from the compressed broadcast.
type paramCache struct {
	mu   sync.Mutex
	keys []string
	vals map[string][]float32
}

var globals = &paramCache{vals: map[string][]float32{}}

func (c *paramCache) get(h string) ([]float32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vals[h]
	return v, ok
}

func (c *paramCache) put(h string, v []float32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.vals[h]; ok {
		return
	}
	c.vals[h] = v
	c.keys = append(c.keys, h)
	for len(c.keys) > 8 {
		delete(c.vals, c.keys[0])
		c.keys = c.keys[1:]
	}
}

func badSpec(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), "BadSpec", err)
}

func (a *Activities) corpus() (*ml.Corpus, error) {
	c, err := ml.LoadCorpus(a.DataDir)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "NoData", err)
	}
	return c, nil
}

// GlobalParams returns a run's global parameters by content hash (cached).
func (a *Activities) GlobalParams(ctx context.Context, run, hash string) ([]float32, error) {
	p, _, err := a.loadGlobal(ctx, run, 0, hash, "", "", nil)
	return p, err
}

// GoInnerTrainer is the pure-Go inner trainer (ml.TrainSteps).
func GoInnerTrainer(ctx context.Context, st *ml.State, data []uint8, n, total int, progress func(int, float64)) (ml.StepStats, error) {
	return ml.TrainSteps(ctx, st, data, n, total, progress)
}

// loadGlobal returns the global parameters with content hash h (from the
// cache, or rebuilt from prev + the broadcast update, or downloaded whole)
// and the bytes it downloaded.
func (a *Activities) loadGlobal(ctx context.Context, run string, round int, h, prev, update string, layout []tensor.Info) ([]float32, int64, error) {
	if v, ok := globals.get(h); ok {
		return v, 0, nil
	}
	var down int64
	if pv, ok := globals.get(prev); ok && update != "" {
		b, err := a.Blob.Get(ctx, update)
		if err == nil {
			down += int64(len(b))
			if p, err := diloco.ApplyUpdate(b, run, round-1, prev, pv); err == nil {
				if pb, err := diloco.EncodeParams(run, round, layout, p); err == nil && tensor.Hash(pb) == h {
					globals.put(h, p)
					return p, down, nil
				}
			}
			a.log().Warn("broadcast did not rebuild the global parameters; downloading them whole", "run", run, "round", round)
		}
	}
	b, err := a.Blob.Get(ctx, TrainingKey(run, "params", h))
	if err != nil {
		return nil, down, fmt.Errorf("global parameters %.12s: %w", h, err)
	}
	down += int64(len(b))
	if tensor.Hash(b) != h {
		return nil, down, fmt.Errorf("global parameters %.12s: content hash mismatch", h)
	}
	f, err := tensor.Decode(b)
	if err != nil {
		return nil, down, err
	}
	p, err := f.Vec("params")
	if err != nil {
		return nil, down, err
	}
	globals.put(h, p)
	return p, down, nil
}

// putHashed stores b under its content hash and returns the hash.
func (a *Activities) putHashed(ctx context.Context, run, kind string, b []byte) (string, error) {
	h := tensor.Hash(b)
	return h, a.Blob.Put(ctx, TrainingKey(run, kind, h), b, "application/octet-stream")
}

// TrainingInit creates a run's initial global parameters.
func (a *Activities) TrainingInit(ctx context.Context, in workflows.TrainingInitInput) (workflows.TrainingInitResult, error) {
	c, err := a.corpus()
	if err != nil {
		return workflows.TrainingInitResult{}, err
	}
	st, err := ml.NewState(in.Spec.Config, c.VocabSize(), in.Spec.Seed, 0)
	if err != nil {
		return workflows.TrainingInitResult{}, badSpec(err)
	}
	if _, err := diloco.WorkerShards(in.Spec, c); err != nil {
		return workflows.TrainingInitResult{}, badSpec(err)
	}
	b, err := diloco.EncodeParams(in.RunID, 0, diloco.Layout(in.Spec.Config, c.VocabSize()), st.Params)
	if err != nil {
		return workflows.TrainingInitResult{}, err
	}
	h, err := a.putHashed(ctx, in.RunID, "params", b)
	if err != nil {
		return workflows.TrainingInitResult{}, err
	}
	globals.put(h, st.Params)
	return workflows.TrainingInitResult{Global: h, NumParams: len(st.Params)}, nil
}

// InnerTrain trains one shard for one round and stores its pseudo-gradient.
func (a *Activities) InnerTrain(ctx context.Context, in workflows.InnerTrainInput) (workflows.InnerTrainResult, error) {
	c, err := a.corpus()
	if err != nil {
		return workflows.InnerTrainResult{}, err
	}
	spec := in.Spec
	vocab := c.VocabSize()
	layout := diloco.Layout(spec.Config, vocab)
	shards, err := diloco.WorkerShards(spec, c)
	if err != nil || in.Shard < 0 || in.Shard >= len(shards) {
		return workflows.InnerTrainResult{}, badSpec(fmt.Errorf("shard %d of %d: %v", in.Shard, spec.Workers, err))
	}
	global, down, err := a.loadGlobal(ctx, in.RunID, in.Round, in.Global, in.PrevGlobal, in.Update, layout)
	if err != nil {
		return workflows.InnerTrainResult{}, err
	}
	inner := diloco.NewInner(len(global), spec.Seed, in.Shard, *spec.ErrorFeedback)
	if in.Inner != "" {
		b, err := a.Blob.Get(ctx, TrainingKey(in.RunID, fmt.Sprintf("inner/%d", in.Shard), in.Inner))
		if err != nil {
			return workflows.InnerTrainResult{}, fmt.Errorf("inner state of shard %d: %w", in.Shard, err)
		}
		if inner, err = diloco.DecodeInner(b); err != nil {
			return workflows.InnerTrainResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadState", err)
		}
	}
	// A shard that missed rounds keeps the run's schedule.
	inner.Step = in.Round * spec.InnerSteps
	trainer := a.InnerTrainer
	if trainer == nil {
		trainer = GoInnerTrainer
	}
	a.log().Info("inner training started", "run", in.RunID, "round", in.Round, "shard", in.Shard, "steps", spec.InnerSteps)
	var mu sync.Mutex
	var done int
	var lastLoss float64
	stop := heartbeatEvery(ctx, 2*time.Second, func() any {
		mu.Lock()
		defer mu.Unlock()
		return map[string]any{"round": in.Round, "shard": in.Shard, "step": done, "of": spec.InnerSteps, "loss": lastLoss}
	})
	w, err := diloco.TrainInner(spec, in.RunID, in.Round, in.Shard, in.Global, layout, vocab, global, inner, shards[in.Shard],
		func(st *ml.State, data []uint8, n, total int) (ml.StepStats, error) {
			return trainer(ctx, st, data, n, total, func(d int, l float64) {
				mu.Lock()
				done, lastLoss = d, l
				mu.Unlock()
			})
		})
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return workflows.InnerTrainResult{}, ctx.Err()
		}
		return workflows.InnerTrainResult{}, err
	}
	ib, err := diloco.EncodeInner(layout, w.Inner)
	if err != nil {
		return workflows.InnerTrainResult{}, err
	}
	ih, err := a.putHashed(ctx, in.RunID, fmt.Sprintf("inner/%d", in.Shard), ib)
	if err != nil {
		return workflows.InnerTrainResult{}, err
	}
	dh := tensor.Hash(w.Delta)
	key := TrainingKey(in.RunID, fmt.Sprintf("deltas/%d", in.Round), fmt.Sprintf("%d-%s", in.Shard, dh))
	if err := a.Blob.Put(ctx, key, w.Delta, "application/octet-stream"); err != nil {
		return workflows.InnerTrainResult{}, err
	}
	backend := a.Backend
	if backend == "" {
		backend = "go"
	}
	a.log().Info("inner training finished", "run", in.RunID, "round", in.Round, "shard", in.Shard,
		"loss", w.Stats.MeanLoss(), "seconds", w.Stats.Seconds, "bytesUp", len(w.Delta), "bytesDown", down, "backend", backend)
	metrics.TrainingBytes.WithLabelValues("up").Add(float64(len(w.Delta)))
	metrics.TrainingBytes.WithLabelValues("down").Add(float64(down))
	return workflows.InnerTrainResult{
		Shard: in.Shard, Delta: key, Inner: ih, Tokens: w.Stats.Tokens, Loss: w.Stats.MeanLoss(),
		TrainSec: w.Stats.Seconds, BytesUp: int64(len(w.Delta)), BytesDown: down, Worker: a.WorkerID, Backend: backend,
	}, nil
}

// heartbeatEvery heartbeats (with details(), when given) until stop is
// called; outside an activity it does nothing.
func heartbeatEvery(ctx context.Context, every time.Duration, details func() any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() { // owned: stop waits for it
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if details == nil {
					activity.RecordHeartbeat(ctx)
				} else {
					activity.RecordHeartbeat(ctx, details())
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// roundRecord is the canonical record of a closed round; its sha256 is the
// round's record id, and each names its predecessor, so the run's receipt
// names the whole chain through the last one.
type roundRecord struct {
	Run      string   `json:"run"`
	Round    int      `json:"round"` // 1-based
	Previous string   `json:"previous"`
	Base     string   `json:"base"`
	Global   string   `json:"global"`
	Deltas   []string `json:"deltas"` // content hashes, in averaging order
	Accepted []string `json:"accepted"`
	Rejected []string `json:"rejected"`
	ValLoss  float64  `json:"valLoss"`
}

// OuterStep closes a round: admits the deltas, averages them, applies
// Nesterov SGD, stores the new global parameters, outer state and
// broadcast, evaluates and records the round.
func (a *Activities) OuterStep(ctx context.Context, in workflows.OuterStepInput) (workflows.OuterStepResult, error) {
	defer keepAlive(ctx)()
	c, err := a.corpus()
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	spec := in.Spec
	vocab := c.VocabSize()
	layout := diloco.Layout(spec.Config, vocab)
	global, _, err := a.loadGlobal(ctx, in.RunID, in.Round, in.Global, "", "", layout)
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	var outer diloco.OuterState
	if in.Outer != "" {
		b, err := a.Blob.Get(ctx, TrainingKey(in.RunID, "outer", in.Outer))
		if err != nil {
			return workflows.OuterStepResult{}, err
		}
		if outer, err = diloco.DecodeOuter(b); err != nil {
			return workflows.OuterStepResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadState", err)
		}
	}
	type cand struct {
		ref  workflows.DeltaRef
		d    diloco.Delta
		hash string
	}
	var cands []cand
	var rejected []string
	reject := func(who, reason string) {
		rejected = append(rejected, who)
		metrics.TrainingDeltas.WithLabelValues(reason).Inc()
		a.log().Warn("delta rejected", "run", in.RunID, "round", in.Round, "contributor", who, "reason", reason)
	}
	for _, ref := range in.Deltas {
		b, err := a.Blob.Get(ctx, ref.Key)
		if err != nil {
			return workflows.OuterStepResult{}, fmt.Errorf("delta %s: %w", ref.Key, err)
		}
		d, err := diloco.DecodeDelta(b, in.RunID, in.Round, in.Global, global)
		if err != nil {
			reject(ref.Contributor, "malformed")
			continue
		}
		cands = append(cands, cand{ref: ref, d: d, hash: tensor.Hash(b)})
	}
	// Absurd norms: more than 10x the median of the round's deltas.
	var norms []float64
	for _, cd := range cands {
		norms = append(norms, cd.d.Norm)
	}
	bound := diloco.NormBound(norms, global)
	var deltas []diloco.Delta
	var accepted, hashes []string
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i].ref, cands[j].ref
		if a.Remote != b.Remote {
			return !a.Remote
		}
		if a.Shard != b.Shard {
			return a.Shard < b.Shard
		}
		return a.Contributor < b.Contributor
	})
	var tokens int64
	for _, cd := range cands {
		if len(cands) > 1 && cd.d.Norm > bound {
			reject(cd.ref.Contributor, "norm")
			continue
		}
		deltas = append(deltas, cd.d)
		accepted = append(accepted, cd.ref.Contributor)
		hashes = append(hashes, cd.hash)
		tokens += cd.d.Meta.Tokens
		metrics.TrainingDeltas.WithLabelValues("accepted").Inc()
	}
	if len(deltas) == 0 {
		return workflows.OuterStepResult{Rejected: rejected}, nil
	}
	o, err := diloco.OuterStep(spec, in.RunID, in.Round, in.Global, layout, global, outer, deltas)
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	pb, err := diloco.EncodeParams(in.RunID, in.Round+1, layout, o.Global)
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	gh, err := a.putHashed(ctx, in.RunID, "params", pb)
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	globals.put(gh, o.Global)
	ob, err := diloco.EncodeOuter(layout, o.State)
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	oh, err := a.putHashed(ctx, in.RunID, "outer", ob)
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	ukey := TrainingKey(in.RunID, "updates", fmt.Sprintf("%d-%s", in.Round, in.Global))
	if err := a.Blob.Put(ctx, ukey, o.Update, "application/octet-stream"); err != nil {
		return workflows.OuterStepResult{}, err
	}
	val, err := ml.EvalParams(ctx, spec.Config, vocab, o.Global, c.Validation)
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	prev := ""
	if in.Round > 0 { // the chain: the record of the round this one continues
		if prev, err = a.Store.TrainingRoundRecord(ctx, in.RunID, in.Round); err != nil {
			return workflows.OuterStepResult{}, fmt.Errorf("round %d's record: %w", in.Round, err)
		}
	}
	rec := roundRecord{Run: in.RunID, Round: in.Round + 1, Previous: prev, Base: in.Global, Global: gh,
		Deltas: hashes, Accepted: accepted, Rejected: append([]string{}, rejected...), ValLoss: val}
	recJSON, _ := json.Marshal(rec)
	canon, err := jcs.Canonicalize(recJSON)
	if err != nil {
		return workflows.OuterStepResult{}, err
	}
	summary := in.Summary
	summary.ValLoss = val
	summary.Accepted, summary.Rejected, summary.Contributors = len(accepted), len(rejected), accepted
	full, _ := json.Marshal(map[string]any{"record": rec, "summary": summary})
	if err := a.Store.PutTrainingRound(ctx, store.TrainingRound{
		RunID: in.RunID, Round: in.Round + 1, RecordID: tensor.Hash(canon), BaseHash: in.Global, GlobalHash: gh, ValLoss: val, Record: full,
	}); err != nil {
		return workflows.OuterStepResult{}, err
	}
	metrics.TrainingRounds.Inc()
	return workflows.OuterStepResult{Global: gh, Outer: oh, Update: ukey, ValLoss: val, Rejected: rejected, Accepted: accepted, Tokens: tokens}, nil
}

// TrainingStatus records a run's status and progress.
func (a *Activities) TrainingStatus(ctx context.Context, in workflows.TrainingStatusInput) error {
	var prog []byte
	if in.Progress != nil {
		prog, _ = json.Marshal(in.Progress)
	}
	res := ""
	if in.Progress != nil {
		res = in.Progress.Result
	}
	return a.Store.SetTrainingStatus(ctx, in.RunID, in.Status, prog, res, in.Error)
}

// TrainingFinish evaluates the final parameters, stores the checkpoint and
// signs the run's result as an ML-domain receipt of kind "training-run"
// (once: a retry returns the receipt already recorded).
func (a *Activities) TrainingFinish(ctx context.Context, in workflows.TrainingFinishInput) (workflows.TrainingFinishResult, error) {
	defer keepAlive(ctx)()
	if e, err := a.Store.GetRun(ctx, in.RunID, TrainingAgent, 1); err == nil {
		var s receipt.Signed
		if err := json.Unmarshal(e.Record, &s); err == nil && s.Receipt.Training != nil {
			return workflows.TrainingFinishResult{ReceiptID: e.ID, Checkpoint: s.Receipt.Training.Checkpoint,
				ValLoss: s.Receipt.Metric.Value, TestLoss: s.Receipt.Metric.TestValue}, nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return workflows.TrainingFinishResult{}, err
	}
	c, err := a.corpus()
	if err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	spec := in.Spec
	vocab := c.VocabSize()
	layout := diloco.Layout(spec.Config, vocab)
	global, _, err := a.loadGlobal(ctx, in.RunID, in.Progress.Round, in.Global, "", "", layout)
	if err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	val, err := ml.EvalParams(ctx, spec.Config, vocab, global, c.Validation)
	if err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	test, err := ml.EvalParams(ctx, spec.Config, vocab, global, c.Test)
	if err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	steps := in.Progress.Round * spec.InnerSteps
	ck, err := ml.Checkpoint(spec.Config, c.Vocab, global, spec.Seed, steps)
	if err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	ckKey := "training/" + in.RunID + "/checkpoint.bin"
	if err := a.Blob.Put(ctx, ckKey, ck, "application/octet-stream"); err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	rounds, err := a.Store.TrainingRounds(ctx, in.RunID)
	if err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	parents := []string{}
	for _, r := range rounds {
		parents = append(parents, r.RecordID)
	}
	if len(parents) > 100 { // the chain reaches the rest
		parents = parents[len(parents)-100:]
	}
	chain := ""
	if len(rounds) > 0 {
		chain = rounds[len(rounds)-1].RecordID
	}
	var contribs []receipt.Contributor
	for id, n := range in.Progress.Contributors {
		contribs = append(contribs, receipt.Contributor{ID: id, Deltas: n})
	}
	sort.Slice(contribs, func(i, j int) bool { return contribs[i].ID < contribs[j].ID })
	if contribs == nil {
		contribs = []receipt.Contributor{}
	}
	if _, err := a.Keys.Register(ctx, in.RunID, TrainingAgent); err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	k, err := a.AgentKey(ctx, in.RunID, TrainingAgent)
	if err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	p := in.Progress
	hyp := fmt.Sprintf("DiLoCo: %d workers x %d inner steps x %d rounds, %s pseudo-gradients, outer Nesterov lr %g momentum %g",
		spec.Workers, spec.InnerSteps, p.Round, spec.Compression, *spec.OuterLR, *spec.OuterMomentum)
	if spec.FinalStep == diloco.FinalAverage && p.Round == spec.Rounds {
		hyp += ", last round averaged"
	}
	if p.Round > 0 && p.SoloRounds == p.Round {
		hyp += " (solo: no other worker contributed; this is single-worker training)"
	}
	r := receipt.Receipt{
		Version: 1, Project: "cranfield", RunNumber: 1, Timestamp: in.TimestampMs, Hypothesis: hyp,
		Config: map[string]any(spec.Config),
		Result: receipt.Result{ValLoss: val, DurationSec: p.WallSeconds, TotalTokens: float64(p.Tokens),
			TokensPerSec: float64(p.Tokens) / max(p.WallSeconds, 1e-9),
			Values: map[string]float64{"valLoss": val, "testLoss": test, "rounds": float64(p.Round), "bytesUp": float64(p.BytesUp),
				"bytesDown": float64(p.BytesDown), "trainSeconds": p.TrainSeconds, "wallSeconds": p.WallSeconds,
				"dropped": float64(p.Dropped), "rejected": float64(p.Rejected), "remote": float64(p.Remote)}},
		Domain: "ml", Campaign: in.RunID, Agent: TrainingAgent, Seed: spec.Seed,
		Metric:   receipt.MetricValue{Name: "val_loss", Direction: "minimize", Value: val, TestValue: test},
		Parents:  parents,
		Proposer: "diloco",
		Kind:     "training-run",
		Training: &receipt.TrainingInfo{
			Run: in.RunID, Workers: spec.Workers, InnerSteps: spec.InnerSteps, Rounds: p.Round, Compression: spec.Compression,
			OuterLR: *spec.OuterLR, OuterMomentum: *spec.OuterMomentum, FinalStep: spec.FinalStep, Contributors: contribs,
			BytesUp: p.BytesUp, BytesDown: p.BytesDown, SoloRounds: p.SoloRounds, Solo: p.Round > 0 && p.SoloRounds == p.Round,
			Checkpoint: tensor.Hash(ck), RoundChain: chain,
		},
		Artifacts: map[string]string{"checkpoint.bin": ckKey},
	}
	signed, err := receipt.Sign(r, k)
	if err != nil {
		return workflows.TrainingFinishResult{}, temporal.NewNonRetryableApplicationError("sign receipt: "+err.Error(), "BadReceipt", err)
	}
	body, _ := json.Marshal(signed)
	if _, err := a.Store.InsertExperiment(ctx, store.Experiment{
		ID: signed.ID, CampaignID: in.RunID, Agent: TrainingAgent, Domain: "ml", RunNumber: 1, Metric: val, TestMetric: &test,
		Seed: spec.Seed, Status: "completed", ConfigKey: spec.Config.Key(), Record: body, Artifacts: map[string]string{"checkpoint.bin": ckKey},
	}); err != nil {
		return workflows.TrainingFinishResult{}, err
	}
	return workflows.TrainingFinishResult{ReceiptID: signed.ID, Checkpoint: tensor.Hash(ck), ValLoss: val, TestLoss: test}, nil
}
