package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hyperspace-ai/hyperspace/internal/fraud"
)

// Fraud-proof challenges: ChallengeWorkflow (id challenge-<id>) settles a
// dispute over one receipt between the node that vouched for it (the
// defender) and a node whose execution disagrees (the challenger), with a
// third node of the site as referee. For an ML receipt the parties bisect
// the training trace to one step and then to one op of it, and the referee
// re-executes that op alone (package fraud); for the cheap domains the
// referee re-runs the whole evaluation. Every move is an activity on the
// mover's node queue with a deadline: a party that does not answer in
// time loses (a chess clock).
//
// An inference challenge (Kind ChallengeKindInference) disputes a signed
// response-cache entry instead of a receipt: a node that fetched the entry
// re-computed it and got other bytes. Our models are deterministic, so the
// referee settles it by re-computing the request itself: the entry's signer
// (the defender) loses when the referee's bytes differ from what it signed.

// Challenge activity names.
const (
	ActChallengeOpen   = "ChallengeOpen"
	ActChallengeStart  = "ChallengeStart"
	ActChallengeMove   = "ChallengeMove"
	ActChallengeJudge  = "ChallengeJudge"
	ActChallengeFinish = "ChallengeFinish"
)

// Challenge defaults.
const (
	DefaultMoveTimeout = 5 * time.Minute
	// DefaultChallengeBond is what a challenger posts and loses when the
	// defender was right.
	DefaultChallengeBond = 50.0
)

// ChallengeKindInference marks a challenge over a response-cache entry
// (ChallengeInput.Kind; empty: a receipt).
const ChallengeKindInference = "inference"

// StageVoid is the stage of a challenge nobody could judge (the referee
// could not re-compute it): bonds are returned, nobody wins.
const StageVoid fraud.Stage = "void"

// ChallengeWorkflowID is the workflow id of challenge id.
func ChallengeWorkflowID(id string) string { return "challenge-" + id }

// ChallengeInput starts a challenge.
type ChallengeInput struct {
	ID        string `json:"id"`
	ReceiptID string `json:"receiptId"`
	Domain    string `json:"domain"`
	// Peer ids of the parties and the referee (nodes of this site).
	Defender   string `json:"defender"`
	Challenger string `json:"challenger"`
	Referee    string `json:"referee"`
	// K is the dissection arity (0: fraud.DefaultK).
	K int `json:"k,omitempty"`
	// MoveTimeoutSec bounds each move (0: DefaultMoveTimeout).
	MoveTimeoutSec int     `json:"moveTimeoutSec,omitempty"`
	Bond           float64 `json:"bond,omitempty"`
	Source         string  `json:"source,omitempty"` // who raised it: validator, api, ...
	// Kind is "" for a receipt and ChallengeKindInference for a cache
	// entry; then ReceiptID is the entry's proof hash and EntryKey the S3
	// key of the disputed entry (JSON, as fetched).
	Kind     string `json:"kind,omitempty"`
	EntryKey string `json:"entryKey,omitempty"`
}

// ChallengeStartResult is the challenger's opening: for ML the game's
// parameters (with its final root), for the cheap domains its re-run.
type ChallengeStartResult struct {
	Params  *fraud.Params `json:"params,omitempty"`
	Claimed float64       `json:"claimed"` // the receipt's metric (the defender's claim)
	Metric  float64       `json:"metric"`  // the challenger's own value
}

// ChallengeMoveInput asks a party for its next move in game.
type ChallengeMoveInput struct {
	ID        string      `json:"id"`
	ReceiptID string      `json:"receiptId"`
	Party     fraud.Party `json:"party"`
	Game      fraud.Game  `json:"game"`
}

// ChallengeMoveResult is a move; a referee input (large) is stored in S3
// under InputKey instead of travelling in the workflow history.
type ChallengeMoveResult struct {
	Move     fraud.Move `json:"move"`
	InputKey string     `json:"inputKey,omitempty"`
	Bytes    int        `json:"bytes"`
}

// ChallengeJudgeInput asks the referee to rule.
type ChallengeJudgeInput struct {
	ID        string            `json:"id"`
	ReceiptID string            `json:"receiptId"`
	Case      fraud.RefereeCase `json:"case"`
	InputKey  string            `json:"inputKey,omitempty"`
	// Full: re-run the whole evaluation (cheap domains) and rule between
	// the two claims.
	Full            bool    `json:"full,omitempty"`
	DefenderClaim   float64 `json:"defenderClaim,omitempty"`
	ChallengerClaim float64 `json:"challengerClaim,omitempty"`
	// Inference: re-compute the cache entry stored under EntryKey and rule
	// on it (ChallengeKindInference).
	Inference bool   `json:"inference,omitempty"`
	EntryKey  string `json:"entryKey,omitempty"`
}

// ChallengeFinishInput records the outcome and settles the ledger.
type ChallengeFinishInput struct {
	ChallengeInput
	Verdict fraud.Verdict `json:"verdict"`
	Bytes   int64         `json:"bytes"`
}

// ChallengeResult is the workflow's result.
type ChallengeResult struct {
	Winner   string        `json:"winner"` // peer id
	Loser    string        `json:"loser"`
	Verdict  fraud.Verdict `json:"verdict"`
	Bytes    int64         `json:"bytes"`
	RecordID string        `json:"recordId"`
}

// ChallengeWorkflow runs one challenge to its verdict.
func ChallengeWorkflow(ctx workflow.Context, in ChallengeInput) (*ChallengeResult, error) {
	mt := DefaultMoveTimeout
	if in.MoveTimeoutSec > 0 {
		mt = time.Duration(in.MoveTimeoutSec) * time.Second
	}
	if in.Bond <= 0 {
		in.Bond = DefaultChallengeBond
	}
	local := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: TaskQueue, StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	// Each party's and the referee's moves run on its own node; the clock
	// covers waiting to be picked up and the work itself.
	on := func(peer string) workflow.Context {
		return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue: NodeQueue(peer), ScheduleToCloseTimeout: mt, StartToCloseTimeout: mt, HeartbeatTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 2,
				NonRetryableErrorTypes: []string{"BadChallenge"}},
		})
	}
	if err := workflow.ExecuteActivity(local, ActChallengeOpen, in).Get(ctx, nil); err != nil {
		return nil, err
	}
	var bytes int64
	// The referee's node signs the outcome; if it is gone, the site
	// records it unsigned.
	referee := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: NodeQueue(in.Referee), ScheduleToCloseTimeout: 2 * time.Minute, StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	finish := func(v fraud.Verdict) (*ChallengeResult, error) {
		var res ChallengeResult
		fin := ChallengeFinishInput{ChallengeInput: in, Verdict: v, Bytes: bytes}
		if err := workflow.ExecuteActivity(referee, ActChallengeFinish, fin).Get(ctx, &res); err == nil {
			return &res, nil
		}
		if err := workflow.ExecuteActivity(local, ActChallengeFinish, fin).Get(ctx, &res); err != nil {
			return nil, err
		}
		return &res, nil
	}
	if in.Kind == ChallengeKindInference {
		// The challenger's claim is its re-computation, which the referee
		// repeats: there is nothing to bisect.
		var v fraud.Verdict
		err := workflow.ExecuteActivity(on(in.Referee), ActChallengeJudge, ChallengeJudgeInput{ID: in.ID, ReceiptID: in.ReceiptID,
			Inference: true, EntryKey: in.EntryKey}).Get(ctx, &v)
		if err != nil {
			return finish(fraud.Verdict{Stage: StageVoid, Step: -1, Op: -1, Reason: "the referee could not re-compute the entry: " + short(err.Error())})
		}
		return finish(v)
	}
	var start ChallengeStartResult
	if err := workflow.ExecuteActivity(on(in.Challenger), ActChallengeStart, ChallengeMoveInput{ID: in.ID, ReceiptID: in.ReceiptID, Party: fraud.Challenger}).Get(ctx, &start); err != nil {
		if isBadChallenge(err) {
			return finish(fraud.Verdict{Winner: fraud.Defender, Loser: fraud.Challenger, Stage: fraud.StageForfeit, Step: -1, Op: -1,
				Reason: "the challenge cannot be played: " + err.Error()})
		}
		return finish(forfeit(fraud.Challenger, "start", err))
	}
	if start.Params == nil {
		// A cheap domain: the referee re-runs the evaluation.
		var v fraud.Verdict
		err := workflow.ExecuteActivity(on(in.Referee), ActChallengeJudge, ChallengeJudgeInput{ID: in.ID, ReceiptID: in.ReceiptID, Full: true,
			DefenderClaim: start.Claimed, ChallengerClaim: start.Metric}).Get(ctx, &v)
		if err != nil {
			return nil, fmt.Errorf("referee: %w", err)
		}
		return finish(v)
	}
	p := *start.Params
	p.K = in.K
	if p.K == 0 {
		p.K = start.Params.K
	}
	g, err := fraud.NewGame(p)
	if err != nil {
		return finish(fraud.Verdict{Winner: fraud.Defender, Loser: fraud.Challenger, Stage: fraud.StageForfeit, Step: -1, Op: -1,
			Reason: "the challenger's parameters are invalid: " + err.Error()})
	}
	for moves := 0; !g.Done(); moves++ {
		if moves > 4*64+16 { // far beyond any dissection's length
			return nil, errors.New("challenge: the game does not end")
		}
		party, phase := g.Expect()
		if phase == fraud.PhaseReferee {
			break
		}
		var mr ChallengeMoveResult
		err := workflow.ExecuteActivity(on(partyPeer(in, party)), ActChallengeMove,
			ChallengeMoveInput{ID: in.ID, ReceiptID: in.ReceiptID, Party: party, Game: *g}).Get(ctx, &mr)
		if err != nil {
			v, _ := g.Forfeit(party)
			v.Reason += " (" + short(err.Error()) + ")"
			return finish(v)
		}
		bytes += int64(mr.Bytes)
		mr.Move.From = party
		if err := g.Apply(mr.Move); err != nil {
			var inv *fraud.InvalidMoveError
			if errors.As(err, &inv) && g.Verdict != nil {
				return finish(*g.Verdict)
			}
			v, _ := g.Forfeit(party)
			v.Reason += " (an unusable move: " + short(err.Error()) + ")"
			return finish(v)
		}
	}
	if g.Done() {
		return finish(*g.Verdict)
	}
	// The referee phase: the defender opens the agreed op state (it
	// committed to it); the referee re-executes the one op.
	c, err := g.Case()
	if err != nil {
		return nil, err
	}
	var mr ChallengeMoveResult
	if err := workflow.ExecuteActivity(on(in.Defender), ActChallengeMove,
		ChallengeMoveInput{ID: in.ID, ReceiptID: in.ReceiptID, Party: fraud.Defender, Game: *g}).Get(ctx, &mr); err != nil {
		v, _ := g.Forfeit(fraud.Defender)
		v.Reason += " (" + short(err.Error()) + ")"
		return finish(v)
	}
	bytes += int64(mr.Bytes)
	var v fraud.Verdict
	if err := workflow.ExecuteActivity(on(in.Referee), ActChallengeJudge, ChallengeJudgeInput{ID: in.ID, ReceiptID: in.ReceiptID, Case: c, InputKey: mr.InputKey}).Get(ctx, &v); err != nil {
		return nil, fmt.Errorf("referee: %w", err)
	}
	if err := g.ApplyVerdict(v); err != nil {
		return nil, err
	}
	return finish(*g.Verdict)
}

func partyPeer(in ChallengeInput, p fraud.Party) string {
	if p == fraud.Defender {
		return in.Defender
	}
	return in.Challenger
}

func forfeit(p fraud.Party, what string, err error) fraud.Verdict {
	return fraud.Verdict{Winner: p.Other(), Loser: p, Stage: fraud.StageForfeit, Step: -1, Op: -1,
		Reason: fmt.Sprintf("the %s did not %s in time (%s)", p, what, short(err.Error()))}
}

func isBadChallenge(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.Type() == "BadChallenge"
}

func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
