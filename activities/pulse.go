package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// PulseValidateRequest is what a validator node judges.
type PulseValidateRequest struct {
	Round     int64
	Presences []pulse.SignedPresence
	// Addrs are known addresses per peer id (the site's nodes table).
	Addrs map[string][]string
	// Rerun re-executes a receipt with its own seed and returns the metric;
	// RerunFraction of the cheap domains' receipts are re-run (chosen by a
	// hash of round, validator and receipt).
	Rerun         func(ctx context.Context, s receipt.Signed) (float64, error)
	RerunFraction float64
	// Mismatch is told of a re-run that disagrees with its receipt.
	Mismatch func(s receipt.Signed, observed float64)
}

// PulseValidator is a node that judges pulse rounds (package node).
type PulseValidator interface {
	Validate(ctx context.Context, req PulseValidateRequest) (pulse.SignedVerdict, int64, error)
	PublishVerdict(ctx context.Context, sv pulse.SignedVerdict) (int, error)
	PublishOutcome(ctx context.Context, so pulse.SignedOutcome) (int, error)
}

// Dispute is two executions of one receipt that disagree.
type Dispute struct {
	Receipt    receipt.Signed `json:"receipt"`
	Challenger string         `json:"challenger"` // the node that re-ran it
	Observed   float64        `json:"observed"`
	Source     string         `json:"source"` // "validator", "reviewer", ...
}

// PulseOpen records the round and lists its presences and this site's
// validators: live nodes whose presence in the round claims validation.
func (a *Activities) PulseOpen(ctx context.Context, in workflows.PulseRoundInput) (workflows.PulseOpenResult, error) {
	wf := activity.GetInfo(ctx).WorkflowExecution.ID
	if err := a.Store.StartPulseRound(ctx, in.Round, in.IntervalMs, wf); err != nil {
		return workflows.PulseOpenResult{}, err
	}
	ps, err := a.Store.Presences(ctx, in.Round)
	if err != nil {
		return workflows.PulseOpenResult{}, err
	}
	live, err := a.Store.LiveNodes(ctx, NodeLiveness)
	if err != nil {
		return workflows.PulseOpenResult{}, err
	}
	claims := map[string]bool{}
	for _, sp := range ps {
		if sp.Verify(admission.BoundToNode) != nil {
			continue
		}
		for _, c := range sp.Presence.Capabilities {
			if c == pulse.CapValidation {
				claims[sp.Presence.Node] = true
			}
		}
	}
	res := workflows.PulseOpenResult{Round: in.Round, Presences: len(ps), Validators: []string{}}
	for _, n := range live {
		if claims[n.PeerID] {
			res.Validators = append(res.Validators, n.TaskQueue)
		}
	}
	return res, nil
}

// PulseValidate runs on a validator node's queue: it judges the round's
// presences, stores its signed verdict and gossips it.
func (a *Activities) PulseValidate(ctx context.Context, in workflows.PulseValidateInput) (workflows.PulseValidateResult, error) {
	if a.Pulse == nil {
		return workflows.PulseValidateResult{}, temporal.NewNonRetryableApplicationError("this worker is not a node: it validates no pulse rounds", "NoValidator", nil)
	}
	stop := keepAlive(ctx)
	defer stop()
	ps, err := a.Store.Presences(ctx, in.Round)
	if err != nil {
		return workflows.PulseValidateResult{}, err
	}
	live, err := a.Store.LiveNodes(ctx, NodeLiveness)
	if err != nil {
		return workflows.PulseValidateResult{}, err
	}
	addrs := map[string][]string{}
	for _, n := range live {
		addrs[n.PeerID] = n.Addrs
	}
	req := PulseValidateRequest{Round: in.Round, Presences: ps, Addrs: addrs, RerunFraction: in.RerunFraction,
		Rerun: func(ctx context.Context, s receipt.Signed) (float64, error) {
			return a.rerun(ctx, s, s.Receipt.Seed, 0)
		},
		Mismatch: func(s receipt.Signed, observed float64) {
			if a.Disputes == nil {
				return
			}
			if err := a.Disputes(ctx, Dispute{Receipt: s, Challenger: a.nodeID(), Observed: observed, Source: "validator"}); err != nil {
				a.log().Warn("start challenge", "receipt", s.ID, "error", err)
			}
		},
	}
	sv, bytes, err := a.Pulse.Validate(ctx, req)
	if err != nil {
		return workflows.PulseValidateResult{}, err
	}
	if err := a.Store.InsertVerdict(ctx, sv); err != nil {
		return workflows.PulseValidateResult{}, err
	}
	if b, err := a.Pulse.PublishVerdict(ctx, sv); err != nil {
		a.log().Warn("gossip verdict", "round", in.Round, "error", err)
	} else {
		bytes += int64(b)
	}
	return workflows.PulseValidateResult{VerdictID: sv.ID, Nodes: len(sv.Verdict.Nodes), Bytes: bytes}, nil
}

// PulseCredit combines the round's verdicts (pulse.Combine, validators
// weighted by their balances) and writes the outcomes and the ledger in
// one transaction: presence points and work points by the formula, a bond
// held from each work credit, and the release of bonds that have served
// their time. Every entry has a key, so a re-run credits nothing twice.
func (a *Activities) PulseCredit(ctx context.Context, in workflows.PulseCreditInput) (workflows.PulseRoundResult, error) {
	res := workflows.PulseRoundResult{Round: in.Round, Validators: in.Validated, Bytes: in.Bytes}
	ps, err := a.Store.Presences(ctx, in.Round)
	if err != nil {
		return res, err
	}
	res.Presences = len(ps)
	svs, err := a.Store.Verdicts(ctx, in.Round)
	if err != nil {
		return res, err
	}
	var verdicts []pulse.Verdict
	var validators []string
	vids := map[string]string{}
	asked := map[string]bool{}
	for _, v := range in.Validators {
		asked[v] = true
	}
	for _, sv := range svs {
		if !asked[sv.Verdict.Validator] || sv.Verify(admission.BoundToNode) != nil || sv.Verdict.Round != in.Round {
			continue
		}
		verdicts = append(verdicts, sv.Verdict)
		validators = append(validators, sv.Verdict.Validator)
		vids[sv.Verdict.Validator] = sv.ID
	}
	bal, err := a.Store.BalancesOf(ctx, validators)
	if err != nil {
		return res, err
	}
	outcomes := pulse.Combine(verdicts, func(v string) float64 { return pulse.ValidatorWeight(bal[v]) })
	peers := make([]string, 0, len(outcomes))
	for _, o := range outcomes {
		peers = append(peers, o.Node)
	}
	streak, err := a.Store.Streaks(ctx, in.Round, peers)
	if err != nil {
		return res, err
	}
	presenceID := map[string]string{}
	for _, sp := range ps {
		presenceID[sp.Presence.Node] = sp.ID
	}
	round := in.Round
	var rows []store.Outcome
	var entries []store.LedgerEntry
	for _, o := range outcomes {
		since := round
		if s, ok := streak[o.Node]; ok && o.Present {
			since = s
		}
		rows = append(rows, store.Outcome{Round: round, PeerID: o.Node, Present: o.Present, SinceRound: since,
			Verified: o.Verified, Work: o.Work, Validators: o.Validators})
		if !o.Present {
			continue
		}
		res.Present++
		hours := float64(round-since) * float64(in.IntervalMs) / 3.6e6
		ev, _ := json.Marshal(map[string]any{"presence": presenceID[o.Node], "verdicts": vids, "verified": o.Verified,
			"uptimeHours": hours, "uptimeBonus": pulse.Uptime(hours), "validators": o.Validators})
		entries = append(entries, store.LedgerEntry{Key: fmt.Sprintf("presence/%d/%s", round, o.Node), PeerID: o.Node, Round: &round,
			Amount: pulse.PresencePoints(hours, o.Verified), Reason: "presence", Evidence: ev})
		for _, w := range o.Work {
			pts := pulse.WorkPoints(w.Units, in.WorkRate, hours)
			wev, _ := json.Marshal(map[string]any{"receipt": w.Receipt, "domain": w.Domain, "units": w.Units, "rate": in.WorkRate,
				"uptimeBonus": pulse.Uptime(hours), "verdicts": vids})
			entries = append(entries, store.LedgerEntry{Key: "work/" + w.Receipt, PeerID: o.Node, Round: &round, Amount: pts, Reason: "work", Evidence: wev})
			if b := min(in.BondPoints, pts); b > 0 {
				bev, _ := json.Marshal(map[string]any{"receipt": w.Receipt, "releaseRound": round + in.BondRounds})
				entries = append(entries,
					store.LedgerEntry{Key: "bond/" + w.Receipt + "/post", PeerID: o.Node, Round: &round, Amount: -b, Reason: "bond", Evidence: bev},
					store.LedgerEntry{Key: "bond/" + w.Receipt + "/lock", PeerID: o.Node, Round: &round, Bucket: "bond", Amount: b, Reason: "bond", Evidence: bev})
			}
		}
	}
	held, err := a.Store.HeldBonds(ctx, round-in.BondRounds, 1000)
	if err != nil {
		return res, err
	}
	for _, h := range held {
		ev, _ := json.Marshal(map[string]any{"receipt": h.Receipt, "postedRound": h.Round})
		entries = append(entries,
			store.LedgerEntry{Key: "bond/" + h.Receipt + "/release", PeerID: h.PeerID, Round: &round, Bucket: "bond", Amount: -h.Amount, Reason: "bond-release", Evidence: ev},
			store.LedgerEntry{Key: "bond/" + h.Receipt + "/return", PeerID: h.PeerID, Round: &round, Amount: h.Amount, Reason: "bond-release", Evidence: ev})
	}
	n, sum, err := a.Store.CreditRound(ctx, rows, entries)
	if err != nil {
		return res, err
	}
	res.Credited, res.Points = n, sum
	status := "done"
	if len(verdicts) == 0 {
		status = "no-validators"
	}
	wall := time.Now().UnixMilli() - in.StartedMs
	if err := a.Store.FinishPulseRound(ctx, store.PulseRound{Round: round, Status: status, Presences: res.Presences, Validators: len(verdicts),
		Credited: n, Points: sum, Bytes: in.Bytes, WallMs: wall}); err != nil {
		return res, err
	}
	return res, nil
}
