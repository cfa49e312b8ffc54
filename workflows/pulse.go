package workflows

import (
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Pulse rounds (the trust economy): a Temporal Schedule starts
// PulseRoundWorkflow every interval; it judges the round that just ended:
// the presences nodes published (their own and other sites' nodes, over
// gossip), one verdict per validator node of this site, and one
// combination of those verdicts that credits the ledger.

// Pulse activity names.
const (
	ActPulseOpen     = "PulseOpen"
	ActPulseValidate = "PulseValidate"
	ActPulseCredit   = "PulseCredit"
)

// Pulse defaults.
const (
	PulseScheduleID   = "hyperspace-pulse"
	DefaultPulseEvery = 90 * time.Second
	// DefaultRerunFraction of the cheap domains' work receipts a validator
	// re-runs.
	DefaultRerunFraction = 0.25
	// DefaultBondPoints is held from a work receipt's credit as its bond,
	// for DefaultBondRounds rounds (an hour at 90 s), then returned unless a
	// challenge against the receipt is running or was lost.
	DefaultBondPoints = 20.0
	DefaultBondRounds = 40
)

// PulseRoundInput configures a round. Zero fields take the defaults.
type PulseRoundInput struct {
	IntervalMs int64 `json:"intervalMs"`
	// Round to judge; 0: the one that ended before the workflow started.
	Round         int64   `json:"round,omitempty"`
	RerunFraction float64 `json:"rerunFraction,omitempty"`
	WorkRate      float64 `json:"workRate,omitempty"`
	BondPoints    float64 `json:"bondPoints,omitempty"`
	BondRounds    int64   `json:"bondRounds,omitempty"`
}

// PulseOpenResult is a round's presences and validators.
type PulseOpenResult struct {
	Round     int64 `json:"round"`
	Presences int   `json:"presences"`
	// Validators are the task queues of this site's live nodes that
	// claimed validation in the round.
	Validators []string `json:"validators"`
}

// PulseValidateInput asks one validator node for its verdict.
type PulseValidateInput struct {
	Round         int64   `json:"round"`
	RerunFraction float64 `json:"rerunFraction"`
}

// PulseValidateResult is one validator's contribution.
type PulseValidateResult struct {
	VerdictID string `json:"verdictId"`
	Nodes     int    `json:"nodes"`
	Bytes     int64  `json:"bytes"`
}

// PulseCreditInput credits a round from its verdicts.
type PulseCreditInput struct {
	PulseRoundInput
	Validated int `json:"validated"` // verdicts the workflow got
	// Validators are the peer ids of the validators whose verdicts count:
	// the ones this round asked that answered (a verdict in the database
	// from anyone else is ignored).
	Validators []string `json:"validators"`
	Bytes      int64    `json:"bytes"` // probe and verdict bytes
	StartedMs  int64    `json:"startedMs"`
}

// PulseRoundResult sums a round up.
type PulseRoundResult struct {
	Round      int64   `json:"round"`
	Presences  int     `json:"presences"`
	Validators int     `json:"validators"`
	Present    int     `json:"present"`
	Credited   int     `json:"credited"` // new ledger entries
	Points     float64 `json:"points"`   // their sum
	Bytes      int64   `json:"bytes"`
}

func (in PulseRoundInput) withDefaults() PulseRoundInput {
	if in.IntervalMs <= 0 {
		in.IntervalMs = DefaultPulseEvery.Milliseconds()
	}
	if in.RerunFraction <= 0 {
		in.RerunFraction = DefaultRerunFraction
	}
	if in.WorkRate <= 0 {
		in.WorkRate = 1
	}
	if in.BondPoints <= 0 {
		in.BondPoints = DefaultBondPoints
	}
	if in.BondRounds <= 0 {
		in.BondRounds = DefaultBondRounds
	}
	return in
}

// PulseRoundWorkflow judges one pulse round: PulseOpen lists the round's
// presences and this site's validators, PulseValidate runs on every
// validator's node queue at once (a validator that does not start within
// half a round or fails twice is left out), and PulseCredit combines the
// verdicts and writes the ledger. Every step is idempotent, so a retried
// or re-run round never credits twice.
func PulseRoundWorkflow(ctx workflow.Context, in PulseRoundInput) (*PulseRoundResult, error) {
	in = in.withDefaults()
	start := workflow.Now(ctx)
	if in.Round == 0 {
		in.Round = start.UnixMilli()/in.IntervalMs - 1
	}
	iv := time.Duration(in.IntervalMs) * time.Millisecond
	local := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           TaskQueue,
		StartToCloseTimeout: iv,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	var open PulseOpenResult
	if err := workflow.ExecuteActivity(local, ActPulseOpen, in).Get(ctx, &open); err != nil {
		return nil, err
	}
	futures := make([]workflow.Future, 0, len(open.Validators))
	for _, q := range open.Validators {
		vctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              q,
			ScheduleToStartTimeout: iv / 2,
			StartToCloseTimeout:    iv,
			HeartbeatTimeout:       iv / 2,
			RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 2},
		})
		futures = append(futures, workflow.ExecuteActivity(vctx, ActPulseValidate, PulseValidateInput{Round: open.Round, RerunFraction: in.RerunFraction}))
	}
	ci := PulseCreditInput{PulseRoundInput: in, StartedMs: start.UnixMilli()}
	ci.Round = open.Round
	for i, f := range futures {
		var r PulseValidateResult
		if err := f.Get(ctx, &r); err != nil {
			workflow.GetLogger(ctx).Warn("validator left out", "queue", open.Validators[i], "error", err)
			continue
		}
		ci.Validated++
		ci.Bytes += r.Bytes
		ci.Validators = append(ci.Validators, strings.TrimPrefix(open.Validators[i], "node-"))
	}
	var res PulseRoundResult
	if err := workflow.ExecuteActivity(local, ActPulseCredit, ci).Get(ctx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
