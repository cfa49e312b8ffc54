package fraud

import (
	"context"
	"fmt"
	"math"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// Machine is the step program whose ops a referee re-executes;
// *ml.Program is one.
type Machine interface {
	Ops() []ml.OpInfo
	Buffers() []ml.BufferInfo
	// OpRoot is the op-state root of a full list of buffer leaves.
	OpRoot(leaves []Hash) (Hash, error)
	// ExecOp runs one op from exactly its read buffers and returns its
	// written buffers.
	ExecOp(op int, inputs map[string][]byte) (map[string][]byte, error)
}

// Judge is the referee: it checks in against the agreed op state c.Pre
// (every leaf, and every read buffer against its leaf), re-executes the
// one op with m, and compares the resulting op-state root with the
// defender's (and the challenger's) post-op root. An input that does not
// check out loses for its sender; an agreed state the op cannot run on
// loses for the defender, who committed to it. Pure, given m.
func Judge(c RefereeCase, in RefereeInput, m Machine) Verdict {
	v := Verdict{Stage: StageReferee, Step: c.Step, Op: c.Op, StepRounds: c.StepRounds, OpRounds: c.OpRounds}
	from := in.From
	if !from.valid() {
		from = Defender
	}
	lose := func(p Party, format string, a ...any) Verdict {
		v.Winner, v.Loser, v.Reason = p.Other(), p, fmt.Sprintf(format, a...)
		return v
	}
	ops, bufs := m.Ops(), m.Buffers()
	if c.Op < 0 || c.Op >= len(ops) {
		return lose(Defender, "the disputed op %d does not exist (%d ops)", c.Op, len(ops))
	}
	op := ops[c.Op]
	v.OpName = op.Name
	if in.Step != c.Step || in.Op != c.Op {
		return lose(from, "the input opens step %d op %d, the case is step %d op %d", in.Step, in.Op, c.Step, c.Op)
	}
	if len(in.Leaves) != len(bufs) {
		return lose(from, "the input has %d leaves, the program %d buffers", len(in.Leaves), len(bufs))
	}
	if root, err := m.OpRoot(in.Leaves); err != nil || root != c.Pre {
		return lose(from, "the leaves do not hash to the agreed op state %s", c.Pre.Short())
	}
	index := make(map[string]int, len(bufs))
	for i, b := range bufs {
		index[b.Name] = i
	}
	if len(in.Buffers) != len(op.Reads) {
		return lose(from, "the input holds %d buffers, op %s reads %d", len(in.Buffers), op.Name, len(op.Reads))
	}
	for _, name := range op.Reads {
		i := index[name]
		if in.Leaves[i] == ml.Undefined {
			return lose(Defender, "the agreed op state leaves %s, which op %s reads, undefined", name, op.Name)
		}
		b, ok := in.Buffers[name]
		if !ok {
			return lose(from, "the input lacks buffer %s, which op %s reads", name, op.Name)
		}
		if merkle.Sum(b) != in.Leaves[i] {
			return lose(from, "buffer %s does not match its leaf", name)
		}
	}
	out, err := m.ExecOp(c.Op, in.Buffers)
	if err != nil {
		return lose(Defender, "op %s cannot run on the agreed state: %v", op.Name, err)
	}
	post := append([]Hash(nil), in.Leaves...)
	for _, name := range op.Writes {
		post[index[name]] = merkle.Sum(out[name])
	}
	got, err := m.OpRoot(post)
	if err != nil {
		return lose(Defender, "op state after %s: %v", op.Name, err)
	}
	v.Computed = &got
	if got == c.DefenderPost {
		v.Winner, v.Loser = Defender, Challenger
		v.Reason = fmt.Sprintf("op %s of step %d re-executed: the defender's result %s is right, the challenger disputed a correct op", op.Name, c.Step, got.Short())
		return v
	}
	v.Winner, v.Loser = Challenger, Defender
	v.Reason = fmt.Sprintf("op %s of step %d re-executed: %s, the defender claimed %s", op.Name, c.Step, got.Short(), c.DefenderPost.Short())
	switch {
	case c.ChallengerPost == got:
		v.Reason += " (the challenger's claim matches)"
	case !c.ChallengerPost.IsZero():
		v.Reason += fmt.Sprintf(" (the challenger's claim %s is wrong too)", c.ChallengerPost.Short())
	}
	return v
}

// RefereeFull is the referee of a cheap domain (search, finance, skills,
// causes): it re-runs the whole evaluation of cfg and seed and rules for
// the party whose claimed metric the re-run reproduces bit for bit (the
// domains contract: Evaluate is deterministic for a config, seed and
// data). The defender wins only on an exact match.
func RefereeFull(ctx context.Context, d domains.Domain, cfg domains.Config, seed int64, defenderClaim, challengerClaim float64, opts domains.EvalOptions) (Verdict, error) {
	ncfg, err := d.Validate(cfg)
	if err != nil {
		return Verdict{}, fmt.Errorf("fraud: referee %s: %w", d.Name(), err)
	}
	res, err := d.Evaluate(ctx, ncfg, seed, opts)
	if err != nil {
		return Verdict{}, fmt.Errorf("fraud: referee %s re-run: %w", d.Name(), err)
	}
	got := res.Metric
	var bits Hash
	for i, b := 0, math.Float64bits(got); i < 8; i++ {
		bits[i] = byte(b >> (8 * i))
	}
	v := Verdict{Stage: StageFull, Step: -1, Op: -1, Computed: &bits}
	same := func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
	if same(got, defenderClaim) {
		v.Winner, v.Loser = Defender, Challenger
		v.Reason = fmt.Sprintf("%s re-run gives %s %v, the defender's claim; the challenger claimed %v", d.Name(), d.Metric().Name, got, challengerClaim)
		return v, nil
	}
	v.Winner, v.Loser = Challenger, Defender
	v.Reason = fmt.Sprintf("%s re-run gives %s %v, the defender claimed %v", d.Name(), d.Metric().Name, got, defenderClaim)
	if !same(got, challengerClaim) {
		v.Reason += fmt.Sprintf(" (the challenger's %v is wrong too)", challengerClaim)
	}
	return v, nil
}
