package fraud

import (
	"context"
	"fmt"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// MLParams are the game parameters of a challenge to an ML training run
// of program pr from seed (sampler stream 0), given the challenger's final
// root and the arity k (0: DefaultK).
func MLParams(pr *ml.Program, seed int64, challengerFinal Hash, k int) (Params, error) {
	st, err := ml.NewState(pr.Config(), pr.VocabSize(), seed, 0)
	if err != nil {
		return Params{}, err
	}
	genesis, err := ml.StateRoot(st)
	if err != nil {
		return Params{}, err
	}
	return Params{K: k, Steps: pr.TotalSteps(), NumOps: pr.NumOps(), Genesis: genesis,
		ScratchStart: pr.ScratchStart(), ChallengerFinal: challengerFinal}, nil
}

// MLRun is one party's execution of an ML training run as a Source: the
// run of Program from Seed, honest unless Corrupt is set. It keeps a
// state every CheckpointEvery steps (default 1000) while computing the
// step roots, so that opening a step replays at most that many steps.
type MLRun struct {
	Program         *ml.Program
	Seed            int64
	Corrupt         *ml.Corruption
	CheckpointEvery int

	checkpoints map[int]*ml.State
	at          *ml.State // the state last opened
}

func (r *MLRun) every() int {
	if r.CheckpointEvery > 0 {
		return r.CheckpointEvery
	}
	return 1000
}

func (r *MLRun) genesis() (*ml.State, error) {
	return ml.NewState(r.Program.Config(), r.Program.VocabSize(), r.Seed, 0)
}

// StepRoots implements Source.
func (r *MLRun) StepRoots(ctx context.Context) ([]Hash, error) {
	st, err := r.genesis()
	if err != nil {
		return nil, err
	}
	r0, err := ml.StateRoot(st)
	if err != nil {
		return nil, err
	}
	n := r.Program.TotalSteps()
	roots := append(make([]Hash, 0, n+1), r0)
	r.checkpoints = map[int]*ml.State{}
	for s := 0; s < n; s += r.every() {
		r.checkpoints[s] = st.Clone()
		if err := r.Program.Run(ctx, st, min(s+r.every(), n), r.Corrupt, func(_ int, h merkle.Hash) { roots = append(roots, h) }); err != nil {
			return nil, err
		}
	}
	return roots, nil
}

// stateAt is the state before step s, replayed from the nearest checkpoint.
func (r *MLRun) stateAt(ctx context.Context, s int) (*ml.State, error) {
	if s < 0 || s >= r.Program.TotalSteps() {
		return nil, fmt.Errorf("fraud: step %d of %d", s, r.Program.TotalSteps())
	}
	if r.at != nil && r.at.Step == s {
		return r.at, nil
	}
	from := s / r.every() * r.every()
	st, ok := r.checkpoints[from]
	if ok {
		st = st.Clone()
	} else {
		var err error
		if st, err = r.genesis(); err != nil {
			return nil, err
		}
	}
	if err := r.Program.Run(ctx, st, s, r.Corrupt, nil); err != nil {
		return nil, err
	}
	r.at = st
	return st, nil
}

// OpRoots implements Source.
func (r *MLRun) OpRoots(ctx context.Context, step int) ([]Hash, Hash, error) {
	st, err := r.stateAt(ctx, step)
	if err != nil {
		return nil, Hash{}, err
	}
	x, err := r.Program.NewStepper(st)
	if err != nil {
		return nil, Hash{}, err
	}
	roots := []Hash{x.Root()}
	for x.Next() < r.Program.NumOps() {
		if err := x.RunTo(x.Next()+1, r.Corrupt); err != nil {
			return nil, Hash{}, err
		}
		roots = append(roots, x.Root())
	}
	return roots, merkle.Root(x.Leaves()[ml.NumPersistent:]), nil
}

// OpState implements Source.
func (r *MLRun) OpState(ctx context.Context, step, op int) ([]Hash, map[string][]byte, error) {
	ops := r.Program.Ops()
	if op < 0 || op >= len(ops) {
		return nil, nil, fmt.Errorf("fraud: op %d of %d", op, len(ops))
	}
	st, err := r.stateAt(ctx, step)
	if err != nil {
		return nil, nil, err
	}
	x, err := r.Program.NewStepper(st)
	if err != nil {
		return nil, nil, err
	}
	if err := x.RunTo(op, r.Corrupt); err != nil {
		return nil, nil, err
	}
	reads := make(map[string][]byte, len(ops[op].Reads))
	for _, name := range ops[op].Reads {
		if reads[name], err = x.Buffer(name); err != nil {
			return nil, nil, err
		}
	}
	return x.Leaves(), reads, nil
}
