package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/fraud"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/respcache"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// Cheat, for tests and demonstrations only, makes a node an adversary: its
// training trace for a receipt is corrupted as given (nil: honest).
type Cheat func(node, receiptID string) *ml.Corruption

// traces caches each party's trace of a challenge on this process (a trace
// costs about one training run; the moves of a game reuse it). Keyed by
// node, challenge and party; the oldest is dropped beyond maxTraces.
var traces = struct {
	sync.Mutex
	m     map[string]*challengeTrace
	order []string
}{m: map[string]*challengeTrace{}}

const maxTraces = 8

type challengeTrace struct {
	mu sync.Mutex // one move at a time on a trace
	t  *fraud.Trace
}

func badChallenge(format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	return temporal.NewNonRetryableApplicationError(msg, "BadChallenge", errors.New(msg))
}

// challengedReceipt loads the receipt under challenge: the site's copy,
// else the node's replica.
func (a *Activities) challengedReceipt(ctx context.Context, id string) (receipt.Signed, error) {
	if a.Store != nil {
		if e, err := a.Store.GetExperiment(ctx, id); err == nil {
			var s receipt.Signed
			if err := json.Unmarshal(e.Record, &s); err == nil && s.ID == id {
				return s, nil
			}
		}
	}
	if a.Network != nil {
		if s, ok := a.Network.KnownGet(id); ok {
			return s, nil
		}
	}
	return receipt.Signed{}, badChallenge("receipt %s is neither in the site database nor in this node's replica", id)
}

// mlProgram is the step program of an ML receipt's training run.
func (a *Activities) mlProgram(s receipt.Signed) (*ml.Program, error) {
	r := s.Receipt
	if r.Domain != "ml" {
		return nil, badChallenge("receipt %s is not an ML receipt", s.ID)
	}
	if r.Result.Values["truncated"] != 0 {
		return nil, badChallenge("receipt %s was cut short by a wall-clock budget: its step count is not reproducible", s.ID)
	}
	steps := int(r.Result.Values["steps"])
	if steps < 1 {
		return nil, badChallenge("receipt %s names no training steps", s.ID)
	}
	c, err := a.corpus()
	if err != nil {
		return nil, err
	}
	pr, err := ml.NewProgram(domains.Config(r.Config), c.VocabSize(), steps, c.Train)
	if err != nil {
		return nil, badChallenge("receipt %s: %v", s.ID, err)
	}
	return pr, nil
}

// trace returns (building once) this node's trace of the receipt as party.
func (a *Activities) trace(ctx context.Context, id string, party fraud.Party, s receipt.Signed) (*challengeTrace, *ml.Program, error) {
	pr, err := a.mlProgram(s)
	if err != nil {
		return nil, nil, err
	}
	key := a.nodeID() + "/" + id + "/" + string(party)
	traces.Lock()
	ct, ok := traces.m[key]
	if !ok {
		ct = &challengeTrace{}
		traces.m[key] = ct
		traces.order = append(traces.order, key)
		if len(traces.order) > maxTraces {
			delete(traces.m, traces.order[0])
			traces.order = traces.order[1:]
		}
	}
	traces.Unlock()
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.t == nil {
		run := &fraud.MLRun{Program: pr, Seed: s.Receipt.Seed}
		if party == fraud.Defender && a.Cheat != nil {
			run.Corrupt = a.Cheat(a.nodeID(), s.ID)
		}
		stop := keepAlive(ctx)
		t, err := fraud.NewTrace(ctx, run)
		stop()
		if err != nil {
			return nil, nil, err
		}
		ct.t = t
	}
	return ct, pr, nil
}

// ChallengeOpen records the challenge and has the challenger post its bond.
func (a *Activities) ChallengeOpen(ctx context.Context, in workflows.ChallengeInput) error {
	err := a.Store.CreateChallenge(ctx, store.Challenge{ID: in.ID, ReceiptID: in.ReceiptID, Domain: in.Domain,
		Challenger: in.Challenger, Defender: in.Defender, Referee: in.Referee})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	ev, _ := json.Marshal(map[string]any{"challenge": in.ID, "receipt": in.ReceiptID})
	_, _, err = a.Store.AppendLedger(ctx, []store.LedgerEntry{
		{Key: "challenge/" + in.ID + "/bond/post", PeerID: in.Challenger, Amount: -in.Bond, Reason: "challenge-bond", Evidence: ev},
		{Key: "challenge/" + in.ID + "/bond/lock", PeerID: in.Challenger, Bucket: "bond", Amount: in.Bond, Reason: "challenge-bond", Evidence: ev},
	})
	return err
}

// ChallengeStart is the challenger's opening, on its node: for an ML
// receipt its own trace of the training and the game's parameters; for a
// cheap domain its own re-run of the evaluation.
func (a *Activities) ChallengeStart(ctx context.Context, in workflows.ChallengeMoveInput) (workflows.ChallengeStartResult, error) {
	s, err := a.challengedReceipt(ctx, in.ReceiptID)
	if err != nil {
		return workflows.ChallengeStartResult{}, err
	}
	res := workflows.ChallengeStartResult{Claimed: s.Receipt.Metric.Value}
	if s.Receipt.Domain != "ml" {
		stop := keepAlive(ctx)
		defer stop()
		m, err := a.rerun(ctx, s, s.Receipt.Seed, 0)
		if err != nil {
			return res, badChallenge("re-run: %v", err)
		}
		res.Metric = m
		return res, nil
	}
	ct, pr, err := a.trace(ctx, in.ID, fraud.Challenger, s)
	if err != nil {
		return res, err
	}
	p, err := fraud.MLParams(pr, s.Receipt.Seed, ct.t.Final(), 0)
	if err != nil {
		return res, err
	}
	res.Params = &p
	return res, nil
}

// ChallengeMove computes this node's next move as party in the game.
func (a *Activities) ChallengeMove(ctx context.Context, in workflows.ChallengeMoveInput) (workflows.ChallengeMoveResult, error) {
	s, err := a.challengedReceipt(ctx, in.ReceiptID)
	if err != nil {
		return workflows.ChallengeMoveResult{}, err
	}
	ct, _, err := a.trace(ctx, in.ID, in.Party, s)
	if err != nil {
		return workflows.ChallengeMoveResult{}, err
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	g := in.Game
	stop := keepAlive(ctx)
	var m fraud.Move
	if in.Party == fraud.Defender {
		m, err = fraud.DefenderMove(ctx, ct.t, &g)
	} else {
		m, err = fraud.ChallengerMove(ctx, ct.t, &g)
	}
	stop()
	if err != nil {
		return workflows.ChallengeMoveResult{}, err
	}
	res := workflows.ChallengeMoveResult{Bytes: fraud.Size(m)}
	if m.RefereeInput != nil {
		b, err := json.Marshal(m.RefereeInput)
		if err != nil {
			return res, err
		}
		res.InputKey = fmt.Sprintf("challenges/%s/referee-input-%s.json", in.ID, in.Party)
		if err := a.Blob.Put(ctx, res.InputKey, b, "application/json"); err != nil {
			return res, err
		}
		m.RefereeInput = nil
		res.Bytes = len(b)
	}
	res.Move = m
	return res, nil
}

// ChallengeJudge is the referee, on its node: it re-executes the one
// disputed op from the opened inputs (ML), or re-runs the whole evaluation
// (the cheap domains).
func (a *Activities) ChallengeJudge(ctx context.Context, in workflows.ChallengeJudgeInput) (fraud.Verdict, error) {
	if in.Inference {
		return a.judgeInference(ctx, in)
	}
	s, err := a.challengedReceipt(ctx, in.ReceiptID)
	if err != nil {
		return fraud.Verdict{}, err
	}
	stop := keepAlive(ctx)
	defer stop()
	if in.Full {
		d, err := a.domain(ctx, s.Receipt.Domain)
		if err != nil {
			return fraud.Verdict{}, err
		}
		return fraud.RefereeFull(ctx, d, domains.Config(s.Receipt.Config), s.Receipt.Seed, in.DefenderClaim, in.ChallengerClaim,
			domains.EvalOptions{DataDir: a.DataDir})
	}
	pr, err := a.mlProgram(s)
	if err != nil {
		return fraud.Verdict{}, err
	}
	b, err := a.Blob.Get(ctx, in.InputKey)
	if err != nil {
		return fraud.Verdict{}, err
	}
	ri, err := fraud.DecodeRefereeInput(b, max(fraud.MaxRefereeInputBytes, 2*len(b)))
	if err != nil {
		// An input that does not decode loses for the defender, who sent it.
		return fraud.Verdict{Winner: fraud.Challenger, Loser: fraud.Defender, Stage: fraud.StageReferee, Step: in.Case.Step, Op: in.Case.Op,
			Reason: "the defender's opening does not decode: " + err.Error(), StepRounds: in.Case.StepRounds, OpRounds: in.Case.OpRounds}, nil
	}
	return fraud.Judge(in.Case, ri, pr), nil
}

// ChallengeFinish records the outcome, signed by the referee node when
// this worker is one (else by nobody: the row still holds the verdict),
// and settles the ledger: the loser's bond goes to the winner, and a
// defender that lost has its work credit for the receipt reversed.
func (a *Activities) ChallengeFinish(ctx context.Context, in workflows.ChallengeFinishInput) (workflows.ChallengeResult, error) {
	v := in.Verdict
	peerOf := func(p fraud.Party) string {
		if p == fraud.Defender {
			return in.Defender
		}
		return in.Challenger
	}
	if v.Loser == "" && v.Winner != "" {
		v.Loser = v.Winner.Other()
	}
	var winner, loser string
	if v.Winner != "" {
		winner, loser = peerOf(v.Winner), peerOf(v.Loser)
	}
	res := workflows.ChallengeResult{Winner: winner, Loser: loser, Verdict: v, Bytes: in.Bytes}
	ev, _ := json.Marshal(map[string]any{"challenge": in.ID, "receipt": in.ReceiptID, "kind": in.Kind, "stage": v.Stage, "step": v.Step, "op": v.OpName, "reason": v.Reason})
	key := "challenge/" + in.ID
	var entries []store.LedgerEntry
	switch {
	case v.Winner == "":
		// Nobody could judge it: the challenger's bond comes back.
		entries = append(entries,
			store.LedgerEntry{Key: key + "/bond/release", PeerID: in.Challenger, Bucket: "bond", Amount: -in.Bond, Reason: "challenge-bond", Evidence: ev},
			store.LedgerEntry{Key: key + "/bond/return", PeerID: in.Challenger, Amount: in.Bond, Reason: "challenge-bond", Evidence: ev})
	case in.Kind == workflows.ChallengeKindInference && v.Winner == fraud.Challenger:
		// A signed answer that does not re-compute: the signer pays the
		// challenger as much as the challenger risked.
		entries = append(entries,
			store.LedgerEntry{Key: key + "/bond/release", PeerID: in.Challenger, Bucket: "bond", Amount: -in.Bond, Reason: "challenge-bond", Evidence: ev},
			store.LedgerEntry{Key: key + "/bond/return", PeerID: in.Challenger, Amount: in.Bond, Reason: "challenge-bond", Evidence: ev},
			store.LedgerEntry{Key: key + "/penalty", PeerID: in.Defender, Amount: -in.Bond, Reason: "inference-fraud", Evidence: ev},
			store.LedgerEntry{Key: key + "/compensation", PeerID: in.Challenger, Amount: in.Bond, Reason: "compensation", Evidence: ev})
	case v.Winner == fraud.Defender:
		// The challenger was wrong: its bond goes to the defender.
		entries = append(entries,
			store.LedgerEntry{Key: key + "/bond/slash", PeerID: in.Challenger, Bucket: "bond", Amount: -in.Bond, Reason: "slash", Evidence: ev},
			store.LedgerEntry{Key: key + "/compensation", PeerID: in.Defender, Amount: in.Bond, Reason: "compensation", Evidence: ev})
	default:
		entries = append(entries,
			store.LedgerEntry{Key: key + "/bond/release", PeerID: in.Challenger, Bucket: "bond", Amount: -in.Bond, Reason: "challenge-bond", Evidence: ev},
			store.LedgerEntry{Key: key + "/bond/return", PeerID: in.Challenger, Amount: in.Bond, Reason: "challenge-bond", Evidence: ev})
		if b, err := a.Store.BondOf(ctx, in.ReceiptID); err == nil {
			entries = append(entries,
				store.LedgerEntry{Key: "bond/" + in.ReceiptID + "/slash", PeerID: b.PeerID, Bucket: "bond", Amount: -b.Amount, Reason: "slash", Evidence: ev},
				store.LedgerEntry{Key: key + "/compensation", PeerID: in.Challenger, Amount: b.Amount, Reason: "compensation", Evidence: ev})
		} else if !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
		if w, err := a.Store.WorkCredit(ctx, in.ReceiptID); err == nil && w.Amount > 0 {
			entries = append(entries, store.LedgerEntry{Key: "work/" + in.ReceiptID + "/reversed", PeerID: w.PeerID, Amount: -w.Amount, Reason: "work-reversed", Evidence: ev})
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
	}
	if _, _, err := a.Store.AppendLedger(ctx, entries); err != nil {
		return res, err
	}
	o := pulse.ChallengeOutcome{Challenge: in.ID, Receipt: in.ReceiptID, Domain: in.Domain, Defender: in.Defender, Challenger: in.Challenger,
		Referee: in.Referee, Winner: winner, Loser: loser, Stage: string(v.Stage), Step: v.Step, Op: v.Op, OpName: v.OpName, Reason: v.Reason,
		StepRounds: v.StepRounds, OpRounds: v.OpRounds, Bytes: in.Bytes, Timestamp: activity.GetInfo(ctx).StartedTime.UnixMilli()}
	var rec []byte
	if a.Network != nil && a.Network.PeerID() == in.Referee && winner != "" {
		so, err := pulse.SignOutcome(o, a.Network.NodeKey())
		if err != nil {
			return res, err
		}
		res.RecordID = so.ID
		rec, _ = json.Marshal(so)
		if a.Pulse != nil {
			if _, err := a.Pulse.PublishOutcome(ctx, so); err != nil {
				a.log().Warn("gossip challenge outcome", "challenge", in.ID, "error", err)
			}
		}
	} else {
		rec, _ = json.Marshal(map[string]any{"outcome": o})
	}
	status := "done"
	if winner == "" {
		status = "void"
	}
	err := a.Store.FinishChallenge(ctx, store.Challenge{ID: in.ID, Status: status, Winner: winner, Loser: loser, Reason: v.Reason,
		Record: rec, Rounds: v.StepRounds + v.OpRounds, Bytes: in.Bytes})
	return res, err
}

// ErrNoReferee: a challenge needs a third live node of the site.
var ErrNoReferee = errors.New("no live node of this site other than the two parties to referee the challenge")

// PlanChallenge turns a dispute into a challenge's input: the defender is
// the node that vouched for the receipt, the challenger the node that
// disagrees, the referee a third live node of the site (chosen by a hash
// of the receipt, so retries agree). Both parties must be live nodes of
// this site: their moves run on their node queues.
func PlanChallenge(ctx context.Context, st *store.Store, d Dispute, k, moveTimeoutSec int) (workflows.ChallengeInput, error) {
	s := d.Receipt
	if s.Vouch == nil || s.Vouch.Node == "" {
		return workflows.ChallengeInput{}, fmt.Errorf("receipt %s carries no node vouch: there is no defender to challenge", s.ID)
	}
	live, err := st.LiveNodes(ctx, NodeLiveness)
	if err != nil {
		return workflows.ChallengeInput{}, err
	}
	var others []string
	have := map[string]bool{}
	for _, n := range live {
		have[n.PeerID] = true
		if n.PeerID != s.Vouch.Node && n.PeerID != d.Challenger {
			others = append(others, n.PeerID)
		}
	}
	switch {
	case !have[s.Vouch.Node]:
		return workflows.ChallengeInput{}, fmt.Errorf("the defender %s is not a live node of this site", s.Vouch.Node)
	case !have[d.Challenger]:
		return workflows.ChallengeInput{}, fmt.Errorf("the challenger %s is not a live node of this site", d.Challenger)
	case d.Challenger == s.Vouch.Node:
		return workflows.ChallengeInput{}, errors.New("a node cannot challenge its own receipt")
	case len(others) == 0:
		return workflows.ChallengeInput{}, ErrNoReferee
	}
	id := s.ID[:16] + "-" + d.Challenger[len(d.Challenger)-8:]
	ref := others[int(s.ID[0])%len(others)]
	return workflows.ChallengeInput{ID: id, ReceiptID: s.ID, Domain: s.Receipt.Domain, Defender: s.Vouch.Node, Challenger: d.Challenger,
		Referee: ref, K: k, MoveTimeoutSec: moveTimeoutSec, Source: d.Source}, nil
}

// judgeInference is the referee of an inference challenge: the disputed
// entry must be the defender's signed answer to its request (else the
// challenge had no ground: the defender wins), and the referee re-computes
// the request with the same model (by hash); the defender loses when the
// bytes it signed differ from the referee's.
func (a *Activities) judgeInference(ctx context.Context, in workflows.ChallengeJudgeInput) (fraud.Verdict, error) {
	v := fraud.Verdict{Stage: fraud.StageFull, Step: -1, Op: -1}
	if a.Recompute == nil {
		return v, errors.New("this node serves no inference: it cannot referee an inference challenge")
	}
	b, err := a.Blob.Get(ctx, in.EntryKey)
	if err != nil {
		return v, err
	}
	e, err := respcache.UnmarshalEntry(b)
	if err == nil {
		// Expiry is not the question: was it valid when it was served?
		err = respcache.Verify(e, e.RequestHash, time.UnixMilli(e.Proof.ComputedAt))
	}
	ch, _ := a.Store.GetChallenge(ctx, in.ID)
	switch {
	case err != nil:
		v.Winner, v.Loser = fraud.Defender, fraud.Challenger
		v.Reason = "the disputed entry is not a valid signed cache entry: " + err.Error()
		return v, nil
	case e.Proof.ProofHash != in.ReceiptID:
		v.Winner, v.Loser = fraud.Defender, fraud.Challenger
		v.Reason = fmt.Sprintf("the stored entry has proof %s, the challenge names %s", e.Proof.ProofHash, in.ReceiptID)
		return v, nil
	case ch.Defender != "" && e.Proof.Provider != ch.Defender:
		v.Winner, v.Loser = fraud.Defender, fraud.Challenger
		v.Reason = fmt.Sprintf("the entry was signed by %s, not by the defender %s", e.Proof.Provider, ch.Defender)
		return v, nil
	}
	stop := keepAlive(ctx)
	got, err := a.Recompute(ctx, e.RequestHash, e.Response)
	stop()
	if err != nil {
		return v, fmt.Errorf("re-computing request %s: %w", e.RequestHash, err)
	}
	sum := sha256.Sum256(got)
	h := fraud.Hash(sum)
	v.Computed = &h
	if bytes.Equal(got, e.Response) {
		v.Winner, v.Loser = fraud.Defender, fraud.Challenger
		v.Reason = fmt.Sprintf("the referee's re-computation of request %s matches the signed response %s", e.RequestHash[:12], e.Proof.ResponseHash[:12])
		return v, nil
	}
	v.Winner, v.Loser = fraud.Challenger, fraud.Defender
	v.Reason = fmt.Sprintf("the referee's re-computation of request %s hashes to %s, the defender signed %s", e.RequestHash[:12],
		respcache.HashResponse(got)[:12], e.Proof.ResponseHash[:12])
	return v, nil
}

// InferenceDispute is a cache entry a node fetched from a peer and
// re-computed with other bytes.
type InferenceDispute struct {
	Entry      respcache.Entry
	Challenger string // the node that re-computed it
	// Referees are peers known to serve the entry's model (by hash),
	// preferred as referee; when none of them is a live node of the site,
	// any third live node is chosen.
	Referees []string
}

// PlanInferenceChallenge turns an inference dispute into a challenge's
// input, like PlanChallenge: the defender is the entry's signer, the
// challenger the node that re-computed it, both live nodes of this site,
// and the referee a third (one serving the model when possible, chosen by
// the proof hash). The entry itself goes to S3 under the returned EntryKey
// (the caller stores it).
func PlanInferenceChallenge(ctx context.Context, st *store.Store, d InferenceDispute, moveTimeoutSec int) (workflows.ChallengeInput, error) {
	p := d.Entry.Proof
	if !respcache.IsRequestHash(p.ProofHash) || p.Provider == "" {
		return workflows.ChallengeInput{}, errors.New("the entry has no proof to dispute")
	}
	live, err := st.LiveNodes(ctx, NodeLiveness)
	if err != nil {
		return workflows.ChallengeInput{}, err
	}
	serves := map[string]bool{}
	for _, r := range d.Referees {
		serves[r] = true
	}
	have := map[string]bool{}
	var others, serving []string
	for _, n := range live {
		have[n.PeerID] = true
		if n.PeerID != p.Provider && n.PeerID != d.Challenger {
			others = append(others, n.PeerID)
			if serves[n.PeerID] {
				serving = append(serving, n.PeerID)
			}
		}
	}
	switch {
	case !have[p.Provider]:
		return workflows.ChallengeInput{}, fmt.Errorf("the entry's signer %s is not a live node of this site", p.Provider)
	case !have[d.Challenger]:
		return workflows.ChallengeInput{}, fmt.Errorf("the challenger %s is not a live node of this site", d.Challenger)
	case d.Challenger == p.Provider:
		return workflows.ChallengeInput{}, errors.New("a node cannot challenge its own cache entry")
	case len(others) == 0:
		return workflows.ChallengeInput{}, ErrNoReferee
	}
	if len(serving) > 0 {
		others = serving
	}
	id := "inf-" + p.ProofHash[:16] + "-" + d.Challenger[len(d.Challenger)-8:]
	return workflows.ChallengeInput{ID: id, ReceiptID: p.ProofHash, Domain: "inference", Defender: p.Provider, Challenger: d.Challenger,
		Referee: others[int(p.ProofHash[0])%len(others)], MoveTimeoutSec: moveTimeoutSec, Source: "cache-recompute",
		Kind: workflows.ChallengeKindInference, EntryKey: "challenges/" + id + "/entry.json"}, nil
}
