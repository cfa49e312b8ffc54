package fraud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

// testDataDir is HYPERSPACE_DATA_DIR or ../../../shared/data; tests that
// need the corpus skip when it is absent (as domains/ml's tests do).
func testDataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HYPERSPACE_DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	if _, err := os.Stat(ml.CorpusPath(dir)); err != nil {
		t.Skipf("Cranfield corpus not found at %s; set HYPERSPACE_DATA_DIR to run this test", ml.CorpusPath(dir))
	}
	return dir
}

// tinyConfig trains 10,000 steps (batch 2 × context 16) in about a second.
func tinyConfig() domains.Config {
	return domains.Config{
		"nLayers": 1.0, "dModel": 16.0, "nHeads": 2.0, "contextLength": 16.0, "dFFMult": 2.0,
		"batchSize": 2.0, "tokenBudget": 320000.0, "warmupSteps": 10.0, "learningRate": 1e-2,
	}
}

const (
	tinySteps = 10000
	testSeed  = 11
)

// fixture is a run and the traces of its parties, shared by the tests.
type fixture struct {
	pr     *ml.Program
	data   []uint8 // the training split
	honest *Trace
	// corrupt traces by corruption (computed on first use)
	mu      sync.Mutex
	corrupt map[ml.Corruption]*Trace
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func programFor(t testing.TB, cfg domains.Config) (*ml.Program, []uint8) {
	t.Helper()
	c, err := ml.LoadCorpus(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	ncfg, err := ml.New().Validate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	steps := int(max(1, int64(ncfg.Float("tokenBudget"))/ml.TokensPerStep(ncfg)))
	pr, err := ml.NewProgram(ncfg, c.VocabSize(), steps, c.Train)
	if err != nil {
		t.Fatal(err)
	}
	return pr, c.Train
}

func tiny(t testing.TB) *fixture {
	t.Helper()
	pr, data := programFor(t, tinyConfig())
	fixOnce.Do(func() {
		if pr.TotalSteps() != tinySteps {
			fixErr = fmt.Errorf("tiny config has %d steps", pr.TotalSteps())
			return
		}
		tr, err := NewTrace(context.Background(), &MLRun{Program: pr, Seed: testSeed})
		fix, fixErr = &fixture{pr: pr, data: data, honest: tr, corrupt: map[ml.Corruption]*Trace{}}, err
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

// corrupted is the trace of the run with c applied.
func (f *fixture) corrupted(t testing.TB, c ml.Corruption) *Trace {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if tr, ok := f.corrupt[c]; ok {
		return tr
	}
	tr, err := NewTrace(context.Background(), &MLRun{Program: f.pr, Seed: testSeed, Corrupt: &c})
	if err != nil {
		t.Fatal(err)
	}
	f.corrupt[c] = tr
	return tr
}

// countingMachine counts the referee's work.
type countingMachine struct {
	Machine
	calls   int
	inBytes int
}

func (m *countingMachine) ExecOp(op int, in map[string][]byte) (map[string][]byte, error) {
	m.calls++
	for _, b := range in {
		m.inBytes += len(b)
	}
	return m.Machine.ExecOp(op, in)
}

// result is a played game.
type result struct {
	v         Verdict
	bytes     int // JSON bytes of every message, verdict included
	refBytes  int // of the referee input
	refereeNS time.Duration
	machine   *countingMachine
}

// wire encodes v, decodes it with its decoder, and returns the decoded
// message and its size: every message of a test game crosses the wire.
func wire[T any](t testing.TB, v T, dec func([]byte) (T, error)) (T, int) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := dec(b)
	if err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	return out, len(b)
}

// tamper, when set, may change a move before it is sent.
type tamper func(g *Game, m *Move)

// play runs a game between traces def and chal at arity k to its verdict.
func play(t testing.TB, pr *ml.Program, def, chal *Trace, k int, tm tamper) result {
	t.Helper()
	ctx := context.Background()
	p, err := MLParams(pr, seedOf(def), chal.Final(), k)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGame(p)
	if err != nil {
		t.Fatal(err)
	}
	res := result{machine: &countingMachine{Machine: pr}}
	for !g.Done() {
		who, phase := g.Expect()
		var mv Move
		if who == Defender {
			mv, err = DefenderMove(ctx, def, g)
		} else {
			mv, err = ChallengerMove(ctx, chal, g)
		}
		if err != nil {
			t.Fatalf("%s move in %s: %v", who, phase, err)
		}
		if tm != nil {
			tm(g, &mv)
		}
		var n int
		switch {
		case mv.Commitment != nil:
			c, sz := wire(t, *mv.Commitment, DecodeCommitment)
			n, err = sz, g.ApplyCommitment(c)
		case mv.Reveal != nil:
			r, sz := wire(t, *mv.Reveal, DecodeReveal)
			n, err = sz, g.ApplyReveal(r)
		case mv.Choice != nil:
			c, sz := wire(t, *mv.Choice, DecodeChoice)
			n, err = sz, g.ApplyChoice(c)
		case mv.OpCommitment != nil:
			c, sz := wire(t, *mv.OpCommitment, DecodeOpCommitment)
			n, err = sz, g.ApplyOpCommitment(c)
		case mv.RefereeInput != nil:
			in, sz := wire(t, *mv.RefereeInput, func(b []byte) (RefereeInput, error) { return DecodeRefereeInput(b, 0) })
			n, res.refBytes = sz, sz
			start := time.Now()
			_, err = g.Referee(in, res.machine)
			res.refereeNS = time.Since(start)
		}
		res.bytes += n
		var inv *InvalidMoveError
		if err != nil && !errors.As(err, &inv) {
			t.Fatalf("%s move in %s: %v", who, phase, err)
		}
	}
	v, n := wire(t, *g.Verdict, DecodeVerdict)
	res.v, res.bytes = v, res.bytes+n
	return res
}

func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// seedOf is the seed of an ML trace (the agreed genesis comes from it).
func seedOf(t *Trace) int64 { return t.src.(*MLRun).Seed }
