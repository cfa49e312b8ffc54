// Package fraud is the pure core of fraud-proof challenges: when two
// executions of a deterministic computation disagree, a k-ary dissection
// game narrows the disagreement down to one step of the trace, then to one
// operation within that step, and a referee re-executes only that
// operation.
//
// The game is a state machine over serialisable messages (see
// messages.go); every move is a pure function of the game and the
// message. The caller (a ChallengeWorkflow) carries the messages, signs
// them, and turns silence into Forfeit. Nothing here does I/O, reads a
// clock or draws randomness.
//
// The flow:
//
//	defender   Commitment                      (root over its N+1 step-state roots)
//	repeat:    defender Reveal, challenger Choice   (step level, until one step is left)
//	defender   OpCommitment                    (root over that step's op-state roots)
//	repeat:    defender Reveal, challenger Choice   (op level, until one op is left)
//	either     RefereeInput -> Judge -> Verdict
//
// Invariant of a level: the challenger agrees with the defender's root at
// Lo and disagrees with it at Hi. A message that is inconsistent with what
// its sender said before (a proof that does not verify against its
// commitment, a choice out of range, a claim equal to the root it disputes)
// ends the game: its sender loses.
package fraud

import (
	"errors"
	"fmt"

	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// DefaultK is the default dissection arity.
const DefaultK = 10

// Phase is what the game waits for.
type Phase string

const (
	PhaseCommit     Phase = "commit"      // the defender's Commitment
	PhaseStepReveal Phase = "step-reveal" // the defender's Reveal at the step level
	PhaseStepChoice Phase = "step-choice" // the challenger's Choice at the step level
	PhaseOpCommit   Phase = "op-commit"   // the defender's OpCommitment
	PhaseOpReveal   Phase = "op-reveal"   // the defender's Reveal at the op level
	PhaseOpChoice   Phase = "op-choice"   // the challenger's Choice at the op level
	PhaseReferee    Phase = "referee"     // a RefereeInput, judged into a Verdict
	PhaseDone       Phase = "done"
)

// Params fix a game. Both parties and the referee derive them from the
// receipt under challenge (config, seed, steps) and the challenge itself.
type Params struct {
	// K is the arity: each reveal cuts the interval into K parts
	// (2..MaxK; 0 means DefaultK).
	K int `json:"k"`
	// Steps is N, the number of steps of the trace (N+1 states).
	Steps int `json:"steps"`
	// NumOps is the number of ops in a step (NumOps+1 op states).
	NumOps int `json:"numOps"`
	// Genesis is the agreed root of state 0 (from config and seed).
	Genesis Hash `json:"genesis"`
	// ScratchStart is the scratch half of every step's op state 0
	// (ml.Program.ScratchStart).
	ScratchStart Hash `json:"scratchStart"`
	// ChallengerFinal is the challenger's root of state N.
	ChallengerFinal Hash `json:"challengerFinal"`
}

// Game is the state of one challenge. Its fields are exported so that a
// workflow can keep and serialise it; change it only through its methods.
type Game struct {
	Params Params `json:"params"`
	Phase  Phase  `json:"phase"`

	Commitment   *Commitment   `json:"commitment,omitempty"`
	OpCommitment *OpCommitment `json:"opCommitment,omitempty"`

	// The interval in play at the current level: the defender's roots at
	// Lo (agreed) and Hi (disputed), and the challenger's claim at Hi
	// (zero when it has not stated one).
	Lo           int  `json:"lo"`
	Hi           int  `json:"hi"`
	LoRoot       Hash `json:"loRoot"`
	HiRoot       Hash `json:"hiRoot"`
	ChallengerHi Hash `json:"challengerHi"`
	// Revealed holds the defender's roots at Cuts() after a Reveal.
	Revealed []Hash `json:"revealed,omitempty"`

	// The step level's outcome: the disputed step and its roots.
	Step             int  `json:"step"`
	StepLoRoot       Hash `json:"stepLoRoot"`
	StepHiRoot       Hash `json:"stepHiRoot"`
	ChallengerStepHi Hash `json:"challengerStepHi"`

	StepRounds int      `json:"stepRounds"`
	OpRounds   int      `json:"opRounds"`
	Verdict    *Verdict `json:"verdict,omitempty"`
}

// Errors of moves that change nothing (the move may be retried or
// ignored); a move that is wrong in content ends the game instead (see
// InvalidMoveError).
var (
	ErrOutOfTurn = errors.New("fraud: move out of turn")
	ErrDone      = errors.New("fraud: the game is over")
	ErrParams    = errors.New("fraud: invalid game parameters")
)

// InvalidMoveError reports a move that ended the game: its sender lost.
type InvalidMoveError struct {
	Party  Party
	Reason string
}

func (e *InvalidMoveError) Error() string {
	return fmt.Sprintf("fraud: invalid move by the %s: %s", e.Party, e.Reason)
}

// NewGame validates p and starts a game waiting for the defender's
// Commitment.
func NewGame(p Params) (*Game, error) {
	if p.K == 0 {
		p.K = DefaultK
	}
	switch {
	case p.K < 2 || p.K > MaxK:
		return nil, fmt.Errorf("%w: k=%d outside 2..%d", ErrParams, p.K, MaxK)
	case p.Steps < 1 || p.Steps > 1<<40:
		return nil, fmt.Errorf("%w: %d steps", ErrParams, p.Steps)
	case p.NumOps < 1 || p.NumOps > 1<<20:
		return nil, fmt.Errorf("%w: %d ops per step", ErrParams, p.NumOps)
	case p.ChallengerFinal.IsZero():
		return nil, fmt.Errorf("%w: no challenger final root", ErrParams)
	}
	return &Game{Params: p, Phase: PhaseCommit, Step: -1}, nil
}

// Done reports whether the game has a verdict.
func (g *Game) Done() bool { return g.Phase == PhaseDone }

// Expect is who must move next and what the game waits for. In the
// referee phase either party may send the RefereeInput; Expect names the
// defender, whose state it opens.
func (g *Game) Expect() (Party, Phase) {
	switch g.Phase {
	case PhaseStepChoice, PhaseOpChoice:
		return Challenger, g.Phase
	case PhaseDone:
		return "", g.Phase
	}
	return Defender, g.Phase
}

// opLevel reports whether the op-level dissection is (or was) in play.
func (g *Game) opLevel() bool { return g.OpCommitment != nil }

// leaves is the size and root of the current level's commitment.
func (g *Game) level() (n int, root Hash) {
	if g.opLevel() {
		return g.Params.NumOps + 1, g.OpCommitment.Root
	}
	return g.Params.Steps + 1, g.Commitment.Root
}

// Cuts are the indices the next Reveal must open: the interior points
// that cut [Lo, Hi] into min(K, Hi-Lo) parts of as equal length as can be.
func (g *Game) Cuts() []int { return cuts(g.Lo, g.Hi, g.Params.K) }

func cuts(lo, hi, k int) []int {
	parts := min(k, hi-lo)
	out := make([]int, 0, max(parts-1, 0))
	for i := 1; i < parts; i++ {
		out = append(out, lo+(hi-lo)*i/parts)
	}
	return out
}

// end finishes the game with v (Winner, Stage, Step, Op and Reason set).
func (g *Game) end(v Verdict) *Verdict {
	v.Loser = v.Winner.Other()
	v.StepRounds, v.OpRounds = g.StepRounds, g.OpRounds
	g.Verdict = &v
	g.Phase = PhaseDone
	g.Revealed = nil
	return g.Verdict
}

// lose ends the game against p and returns the InvalidMoveError.
func (g *Game) lose(p Party, stage Stage, format string, a ...any) error {
	reason := fmt.Sprintf(format, a...)
	g.end(Verdict{Winner: p.Other(), Stage: stage, Step: g.Step, Op: -1, Reason: reason})
	return &InvalidMoveError{Party: p, Reason: reason}
}

func (g *Game) turn(p Party, phases ...Phase) error {
	if g.Phase == PhaseDone {
		return ErrDone
	}
	want, _ := g.Expect()
	for _, ph := range phases {
		if g.Phase == ph && p == want {
			return nil
		}
	}
	return fmt.Errorf("%w: the %s sent a move in phase %s (waiting for the %s)", ErrOutOfTurn, p, g.Phase, want)
}

// ApplyCommitment applies the defender's Commitment.
func (g *Game) ApplyCommitment(c Commitment) error {
	if err := g.turn(Defender, PhaseCommit); err != nil {
		return err
	}
	p := g.Params
	n := p.Steps + 1
	switch {
	case c.Steps != p.Steps:
		return g.lose(Defender, StageCommitment, "commitment to %d steps, the run has %d", c.Steps, p.Steps)
	case merkle.Verify(c.Root, 0, n, c.Genesis, c.GenesisProof) != nil:
		return g.lose(Defender, StageCommitment, "state 0 does not verify against the commitment")
	case merkle.Verify(c.Root, p.Steps, n, c.Final, c.FinalProof) != nil:
		return g.lose(Defender, StageCommitment, "state %d does not verify against the commitment", p.Steps)
	case c.Genesis != p.Genesis:
		return g.lose(Defender, StageCommitment, "the trace starts at %s, not at the agreed state 0 %s", c.Genesis.Short(), p.Genesis.Short())
	}
	g.Commitment = &c
	if c.Final == p.ChallengerFinal {
		g.end(Verdict{Winner: Defender, Stage: StageCommitment, Step: -1, Op: -1,
			Reason: "the defender's final state is the challenger's: there is nothing to dispute"})
		return nil
	}
	g.Lo, g.Hi, g.LoRoot, g.HiRoot, g.ChallengerHi = 0, p.Steps, c.Genesis, c.Final, p.ChallengerFinal
	g.nextRound()
	return nil
}

// nextRound moves to the next reveal, or to the next level when one
// step (or op) is left.
func (g *Game) nextRound() {
	if g.Hi-g.Lo > 1 {
		if g.opLevel() {
			g.Phase = PhaseOpReveal
		} else {
			g.Phase = PhaseStepReveal
		}
		return
	}
	if !g.opLevel() {
		g.Step, g.StepLoRoot, g.StepHiRoot, g.ChallengerStepHi = g.Lo, g.LoRoot, g.HiRoot, g.ChallengerHi
		g.Phase = PhaseOpCommit
		return
	}
	g.Phase = PhaseReferee
}

func (g *Game) stage() Stage {
	if g.opLevel() {
		return StageOp
	}
	return StageStep
}

// ApplyReveal applies the defender's Reveal of the roots at Cuts().
func (g *Game) ApplyReveal(r Reveal) error {
	if err := g.turn(Defender, PhaseStepReveal, PhaseOpReveal); err != nil {
		return err
	}
	cs := g.Cuts()
	if len(r.Roots) != len(cs) || len(r.Proofs) != len(cs) {
		return g.lose(Defender, g.stage(), "reveal of %d roots and %d proofs for %d cut points", len(r.Roots), len(r.Proofs), len(cs))
	}
	n, root := g.level()
	for i, c := range cs {
		if err := merkle.Verify(root, c, n, r.Roots[i], r.Proofs[i]); err != nil {
			return g.lose(Defender, g.stage(), "revealed root at %d does not verify against the commitment", c)
		}
	}
	g.Revealed = append([]Hash(nil), r.Roots...)
	if g.opLevel() {
		g.Phase = PhaseOpChoice
	} else {
		g.Phase = PhaseStepChoice
	}
	return nil
}

// ApplyChoice applies the challenger's Choice of a sub-interval.
func (g *Game) ApplyChoice(c Choice) error {
	if err := g.turn(Challenger, PhaseStepChoice, PhaseOpChoice); err != nil {
		return err
	}
	cs := g.Cuts()
	if c.Index < 0 || c.Index > len(cs) {
		return g.lose(Challenger, g.stage(), "choice of sub-interval %d of %d", c.Index, len(cs)+1)
	}
	pts := append(append([]int{g.Lo}, cs...), g.Hi)
	roots := append(append([]Hash{g.LoRoot}, g.Revealed...), g.HiRoot)
	lo, hi := pts[c.Index], pts[c.Index+1]
	loRoot, hiRoot := roots[c.Index], roots[c.Index+1]
	switch {
	case c.Claim == hiRoot:
		return g.lose(Challenger, g.stage(), "the challenger claims the defender's own root at %d, which it disputes", hi)
	case hi == g.Hi && !g.ChallengerHi.IsZero() && c.Claim != g.ChallengerHi:
		return g.lose(Challenger, g.stage(), "the challenger's root at %d changed from %s to %s", hi, g.ChallengerHi.Short(), c.Claim.Short())
	}
	g.Lo, g.Hi, g.LoRoot, g.HiRoot, g.ChallengerHi = lo, hi, loRoot, hiRoot, c.Claim
	g.Revealed = nil
	if g.opLevel() {
		g.OpRounds++
	} else {
		g.StepRounds++
	}
	g.nextRound()
	return nil
}

// ApplyOpCommitment applies the defender's commitment to the op states of
// the disputed step.
func (g *Game) ApplyOpCommitment(c OpCommitment) error {
	if err := g.turn(Defender, PhaseOpCommit); err != nil {
		return err
	}
	p := g.Params
	n := p.NumOps + 1
	switch {
	case c.Step != g.Step:
		return g.lose(Defender, StageOpCommitment, "op commitment to step %d, the disputed step is %d", c.Step, g.Step)
	case c.NumOps != p.NumOps:
		return g.lose(Defender, StageOpCommitment, "op commitment to %d ops, a step has %d", c.NumOps, p.NumOps)
	case merkle.Verify(c.Root, 0, n, c.Start, c.StartProof) != nil:
		return g.lose(Defender, StageOpCommitment, "op state 0 does not verify against the op commitment")
	case merkle.Verify(c.Root, p.NumOps, n, c.End, c.EndProof) != nil:
		return g.lose(Defender, StageOpCommitment, "op state %d does not verify against the op commitment", p.NumOps)
	case c.Start != merkle.Node(g.StepLoRoot, p.ScratchStart):
		return g.lose(Defender, StageOpCommitment, "op state 0 is not step state %d with empty scratch", g.Step)
	case c.End != merkle.Node(g.StepHiRoot, c.EndScratch):
		return g.lose(Defender, StageOpCommitment, "the last op state is not the defender's step state %d", g.Step+1)
	}
	g.OpCommitment = &c
	g.Lo, g.Hi, g.LoRoot, g.HiRoot, g.ChallengerHi = 0, p.NumOps, c.Start, c.End, Hash{}
	g.nextRound()
	return nil
}

// RefereeCase is what the referee rules on: re-execute op Op of step Step
// from the agreed op state Pre and compare with the defender's DefenderPost
// (and the challenger's ChallengerPost, zero when it stated none).
type RefereeCase struct {
	Step           int  `json:"step"`
	Op             int  `json:"op"`
	Pre            Hash `json:"pre"`
	DefenderPost   Hash `json:"defenderPost"`
	ChallengerPost Hash `json:"challengerPost"`
	StepRounds     int  `json:"stepRounds"`
	OpRounds       int  `json:"opRounds"`
}

// Case is the referee's case once the dissection is down to one op.
func (g *Game) Case() (RefereeCase, error) {
	if g.Phase != PhaseReferee {
		return RefereeCase{}, fmt.Errorf("%w: no referee case in phase %s", ErrOutOfTurn, g.Phase)
	}
	return RefereeCase{Step: g.Step, Op: g.Lo, Pre: g.LoRoot, DefenderPost: g.HiRoot, ChallengerPost: g.ChallengerHi,
		StepRounds: g.StepRounds, OpRounds: g.OpRounds}, nil
}

// ApplyVerdict ends the game with the referee's verdict on Case().
func (g *Game) ApplyVerdict(v Verdict) error {
	c, err := g.Case()
	if err != nil {
		return err
	}
	if v.Stage != StageReferee || v.Step != c.Step || v.Op != c.Op || !v.Winner.valid() {
		return fmt.Errorf("fraud: verdict on step %d op %d (%s), the case is step %d op %d", v.Step, v.Op, v.Stage, c.Step, c.Op)
	}
	g.end(v)
	return nil
}

// Referee judges in with m and ends the game with the verdict.
func (g *Game) Referee(in RefereeInput, m Machine) (Verdict, error) {
	c, err := g.Case()
	if err != nil {
		return Verdict{}, err
	}
	v := Judge(c, in, m)
	if err := g.ApplyVerdict(v); err != nil {
		return Verdict{}, err
	}
	return *g.Verdict, nil
}

// Forfeit ends the game against p (it stopped answering; the workflow
// decides when).
func (g *Game) Forfeit(p Party) (Verdict, error) {
	if g.Phase == PhaseDone {
		return Verdict{}, ErrDone
	}
	if !p.valid() {
		return Verdict{}, fmt.Errorf("fraud: forfeit by %q", p)
	}
	v := g.end(Verdict{Winner: p.Other(), Stage: StageForfeit, Step: g.Step, Op: -1,
		Reason: fmt.Sprintf("the %s stopped answering in phase %s", p, g.Phase)})
	return *v, nil
}

// Move is one message of either party, for callers that route moves
// generically: exactly one field besides From is set.
type Move struct {
	From         Party         `json:"from"`
	Commitment   *Commitment   `json:"commitment,omitempty"`
	Reveal       *Reveal       `json:"reveal,omitempty"`
	Choice       *Choice       `json:"choice,omitempty"`
	OpCommitment *OpCommitment `json:"opCommitment,omitempty"`
	RefereeInput *RefereeInput `json:"refereeInput,omitempty"`
}

// Apply applies a Commitment, Reveal, Choice or OpCommitment move (a
// RefereeInput goes to Referee or, judged elsewhere, ApplyVerdict).
func (g *Game) Apply(m Move) error {
	if g.Phase == PhaseDone {
		return ErrDone
	}
	if want, _ := g.Expect(); m.From != want {
		return fmt.Errorf("%w: a move from the %s in phase %s", ErrOutOfTurn, m.From, g.Phase)
	}
	switch {
	case m.Commitment != nil:
		return g.ApplyCommitment(*m.Commitment)
	case m.Reveal != nil:
		return g.ApplyReveal(*m.Reveal)
	case m.Choice != nil:
		return g.ApplyChoice(*m.Choice)
	case m.OpCommitment != nil:
		return g.ApplyOpCommitment(*m.OpCommitment)
	}
	return fmt.Errorf("fraud: empty move from the %s", m.From)
}
