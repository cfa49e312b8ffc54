package fraud

import (
	"context"
	"fmt"

	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// Source is what a party knows of its own execution of the run.
type Source interface {
	// StepRoots are the N+1 step-state roots.
	StepRoots(ctx context.Context) ([]Hash, error)
	// OpRoots are the NumOps+1 op-state roots of step (from state step to
	// step+1) and the scratch root of its last op state.
	OpRoots(ctx context.Context, step int) (roots []Hash, endScratch Hash, err error)
	// OpState opens op state op of step: every leaf and the contents of
	// the buffers op reads.
	OpState(ctx context.Context, step, op int) (leaves []Hash, reads map[string][]byte, err error)
}

// Trace is a party's view of its Source for computing honest moves: the
// step roots and their tree, and the op roots and tree of the disputed
// step (loaded when first needed).
type Trace struct {
	src     Source
	roots   []Hash
	tree    *merkle.Tree
	opStep  int
	opRoots []Hash
	opEnd   Hash
	opTree  *merkle.Tree
}

// NewTrace loads the step roots of src.
func NewTrace(ctx context.Context, src Source) (*Trace, error) {
	roots, err := src.StepRoots(ctx)
	if err != nil {
		return nil, err
	}
	if len(roots) < 2 {
		return nil, fmt.Errorf("fraud: a trace of %d states", len(roots))
	}
	return &Trace{src: src, roots: roots, tree: merkle.New(roots), opStep: -1}, nil
}

// Roots are the trace's step-state roots (not to be changed).
func (t *Trace) Roots() []Hash { return t.roots }

// Final is the root of the last state.
func (t *Trace) Final() Hash { return t.roots[len(t.roots)-1] }

// Commitment is the defender's commitment to t.
func (t *Trace) Commitment() Commitment {
	n := len(t.roots) - 1
	p0, _ := t.tree.Prove(0)
	pn, _ := t.tree.Prove(n)
	return Commitment{Steps: n, Root: t.tree.Root(), Genesis: t.roots[0], GenesisProof: p0, Final: t.roots[n], FinalProof: pn}
}

func (t *Trace) loadOps(ctx context.Context, step int) error {
	if t.opStep == step {
		return nil
	}
	roots, end, err := t.src.OpRoots(ctx, step)
	if err != nil {
		return err
	}
	t.opStep, t.opRoots, t.opEnd, t.opTree = step, roots, end, merkle.New(roots)
	return nil
}

// opCommitment is the defender's commitment to the op states of step.
func (t *Trace) opCommitment(ctx context.Context, step int) (OpCommitment, error) {
	if err := t.loadOps(ctx, step); err != nil {
		return OpCommitment{}, err
	}
	n := len(t.opRoots) - 1
	p0, _ := t.opTree.Prove(0)
	pn, _ := t.opTree.Prove(n)
	return OpCommitment{Step: step, NumOps: n, Root: t.opTree.Root(), Start: t.opRoots[0], StartProof: p0,
		End: t.opRoots[n], EndProof: pn, EndScratch: t.opEnd}, nil
}

// levelRoots are t's roots at the game's current level.
func (t *Trace) levelRoots(ctx context.Context, g *Game) ([]Hash, *merkle.Tree, error) {
	if !g.opLevel() {
		return t.roots, t.tree, nil
	}
	if err := t.loadOps(ctx, g.Step); err != nil {
		return nil, nil, err
	}
	return t.opRoots, t.opTree, nil
}

func (t *Trace) refereeInput(ctx context.Context, g *Game, from Party) (RefereeInput, error) {
	leaves, reads, err := t.src.OpState(ctx, g.Step, g.Lo)
	if err != nil {
		return RefereeInput{}, err
	}
	return RefereeInput{From: from, Step: g.Step, Op: g.Lo, Leaves: leaves, Buffers: reads}, nil
}

// DefenderMove is the honest defender's next move from its trace t.
func DefenderMove(ctx context.Context, t *Trace, g *Game) (Move, error) {
	m := Move{From: Defender}
	switch g.Phase {
	case PhaseCommit:
		c := t.Commitment()
		m.Commitment = &c
	case PhaseStepReveal, PhaseOpReveal:
		roots, tree, err := t.levelRoots(ctx, g)
		if err != nil {
			return Move{}, err
		}
		var r Reveal
		for _, c := range g.Cuts() {
			if c >= len(roots) {
				return Move{}, fmt.Errorf("fraud: cut %d past the trace's %d roots", c, len(roots))
			}
			p, _ := tree.Prove(c)
			r.Roots = append(r.Roots, roots[c])
			r.Proofs = append(r.Proofs, p)
		}
		m.Reveal = &r
	case PhaseOpCommit:
		c, err := t.opCommitment(ctx, g.Step)
		if err != nil {
			return Move{}, err
		}
		m.OpCommitment = &c
	case PhaseReferee:
		in, err := t.refereeInput(ctx, g, Defender)
		if err != nil {
			return Move{}, err
		}
		m.RefereeInput = &in
	default:
		return Move{}, fmt.Errorf("%w: the defender has no move in phase %s", ErrOutOfTurn, g.Phase)
	}
	return m, nil
}

// ChallengerMove is the honest challenger's next move from its trace t:
// the first sub-interval whose end it disagrees with, claiming its own
// root there; in the referee phase, the opening of the agreed op state.
func ChallengerMove(ctx context.Context, t *Trace, g *Game) (Move, error) {
	m := Move{From: Challenger}
	switch g.Phase {
	case PhaseStepChoice, PhaseOpChoice:
		own, _, err := t.levelRoots(ctx, g)
		if err != nil {
			return Move{}, err
		}
		pts := append(g.Cuts(), g.Hi)
		theirs := append(append([]Hash(nil), g.Revealed...), g.HiRoot)
		for i, p := range pts {
			if p >= len(own) {
				return Move{}, fmt.Errorf("fraud: point %d past the trace's %d roots", p, len(own))
			}
			if own[p] != theirs[i] {
				m.Choice = &Choice{Index: i, Claim: own[p]}
				return m, nil
			}
		}
		return Move{}, fmt.Errorf("fraud: the challenger agrees with every revealed root up to %d", g.Hi)
	case PhaseReferee:
		in, err := t.refereeInput(ctx, g, Challenger)
		if err != nil {
			return Move{}, err
		}
		m.RefereeInput = &in
	default:
		return Move{}, fmt.Errorf("%w: the challenger has no move in phase %s", ErrOutOfTurn, g.Phase)
	}
	return m, nil
}
