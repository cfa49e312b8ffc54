package fraud

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

// wantVerdict checks who won and where.
func wantVerdict(t *testing.T, r result, winner Party, stage Stage, step int, op string) {
	t.Helper()
	v := r.v
	if v.Winner != winner || v.Loser != winner.Other() || v.Stage != stage || v.Step != step || v.OpName != op {
		t.Fatalf("verdict %+v; want %s wins at %s, step %d, op %q", v, winner, stage, step, op)
	}
}

// TestCorruptStepFound: a defender that flips one parameter bit after step
// c of 10,000 and trains on honestly from there is found at exactly step c,
// in at most 4 step rounds at k=10 and 14 at k=2 (ceil(log_k 10,000)), and
// the referee names the op after which the bit flipped (adamw, the last
// op of the step), having re-executed that op alone.
func TestCorruptStepFound(t *testing.T) {
	f := tiny(t)
	c := ml.Corruption{Step: 6173, Index: 100, Bit: 3}
	bad := f.corrupted(t, c)
	for _, tc := range []struct{ k, maxRounds int }{{10, 4}, {2, 14}, {4, 7}, {40, 3}} {
		r := play(t, f.pr, bad, f.honest, tc.k, nil)
		wantVerdict(t, r, Challenger, StageReferee, c.Step, "adamw")
		if r.v.StepRounds > tc.maxRounds || r.v.StepRounds == 0 {
			t.Fatalf("k=%d: %d step rounds, at most %d", tc.k, r.v.StepRounds, tc.maxRounds)
		}
		if r.machine.calls != 1 {
			t.Fatalf("k=%d: the referee ran %d ops", tc.k, r.machine.calls)
		}
		t.Logf("k=%d: step rounds %d, op rounds %d, %d bytes (referee input %d)", tc.k, r.v.StepRounds, r.v.OpRounds, r.bytes, r.refBytes)
	}
}

// TestCorruptFirstAndLastStep: corruption at step 0 and at step N-1.
func TestCorruptFirstAndLastStep(t *testing.T) {
	f := tiny(t)
	for _, step := range []int{0, tinySteps - 1} {
		c := ml.Corruption{Step: step, Index: 7, Bit: 30}
		r := play(t, f.pr, f.corrupted(t, c), f.honest, 10, nil)
		wantVerdict(t, r, Challenger, StageReferee, step, "adamw")
		if r.v.StepRounds > 4 {
			t.Fatalf("step %d: %d rounds", step, r.v.StepRounds)
		}
	}
}

// TestCorruptOpFound: corruption injected inside a step, after a chosen op
// (its output perturbed), is pinned on that op.
func TestCorruptOpFound(t *testing.T) {
	f := tiny(t)
	for _, c := range []ml.Corruption{
		{Step: 4321, Op: "l0.attn.fwd", Buffer: "l0.attn", Index: 9, Bit: 22},
		{Step: 77, Op: "l0.fc1.bwd", Buffer: "grads", Index: 2300, Bit: 28}, // an element of mlp.w1's gradient
	} {
		bad := f.corrupted(t, c)
		if bad.Final() == f.honest.Final() {
			t.Fatalf("%+v does not change the run", c)
		}
		for _, k := range []int{2, 10} {
			r := play(t, f.pr, bad, f.honest, k, nil)
			wantVerdict(t, r, Challenger, StageReferee, c.Step, c.Op)
			if r.machine.calls != 1 {
				t.Fatalf("the referee ran %d ops", r.machine.calls)
			}
		}
	}
}

// TestHonestDefenderBeatsLyingChallenger: a challenger whose own trace is
// corrupt disputes an honest defender and loses at the referee.
func TestHonestDefenderBeatsLyingChallenger(t *testing.T) {
	f := tiny(t)
	for _, c := range []ml.Corruption{{Step: 6173, Index: 100, Bit: 3}, {Step: 4321, Op: "l0.attn.fwd", Buffer: "l0.attn", Index: 9, Bit: 22}} {
		r := play(t, f.pr, f.honest, f.corrupted(t, c), 10, nil)
		op := c.Op
		if op == "" {
			op = "adamw"
		}
		wantVerdict(t, r, Defender, StageReferee, c.Step, op)
		if !strings.Contains(r.v.Reason, "the defender's result") {
			t.Fatalf("reason %q", r.v.Reason)
		}
		// The challenger may also open the agreed state itself.
		r = play(t, f.pr, f.honest, f.corrupted(t, c), 10, func(g *Game, m *Move) {
			if m.RefereeInput != nil {
				mv, err := ChallengerMove(context.Background(), f.corrupted(t, c), g)
				if err != nil {
					t.Fatal(err)
				}
				*m = mv
			}
		})
		wantVerdict(t, r, Defender, StageReferee, c.Step, op)
	}
}

// TestNoDispute: two honest executions agree; the game ends at the
// commitment without a loser being blamed for fraud.
func TestNoDispute(t *testing.T) {
	f := tiny(t)
	r := play(t, f.pr, f.honest, f.honest, 10, nil)
	if r.v.Stage != StageCommitment || r.v.Winner != Defender || !strings.Contains(r.v.Reason, "nothing to dispute") {
		t.Fatalf("%+v", r.v)
	}
}

// TestAlteredCommitmentLoses: a defender whose messages are inconsistent
// with its commitment (a changed final root, a changed revealed root, a
// reveal from another trace, an op commitment not tied to the agreed step
// state) loses at once.
func TestAlteredCommitmentLoses(t *testing.T) {
	f := tiny(t)
	bad := f.corrupted(t, ml.Corruption{Step: 6173, Index: 100, Bit: 3})
	cases := map[string]struct {
		tm    tamper
		stage Stage
	}{
		"final root swapped": {func(g *Game, m *Move) {
			if m.Commitment != nil {
				m.Commitment.Final = f.honest.Final()
			}
		}, StageCommitment},
		"genesis not agreed": {func(g *Game, m *Move) {
			if m.Commitment != nil {
				m.Commitment.Genesis[0] ^= 1
			}
		}, StageCommitment},
		"revealed root altered": {func(g *Game, m *Move) {
			if m.Reveal != nil && g.StepRounds == 1 {
				m.Reveal.Roots[2][5] ^= 0x10
			}
		}, StageStep},
		"reveal from the honest trace": {func(g *Game, m *Move) {
			if m.Reveal != nil && g.StepRounds == 2 {
				mv, _ := DefenderMove(context.Background(), f.honest, g)
				m.Reveal = mv.Reveal
			}
		}, StageStep},
		"root and proof dropped": {func(g *Game, m *Move) {
			if m.Reveal != nil {
				m.Reveal.Roots = m.Reveal.Roots[1:]
				m.Reveal.Proofs = m.Reveal.Proofs[1:]
			}
		}, StageStep},
		"proofs swapped": {func(g *Game, m *Move) {
			if m.Reveal != nil {
				m.Reveal.Proofs[0], m.Reveal.Proofs[1] = m.Reveal.Proofs[1], m.Reveal.Proofs[0]
			}
		}, StageStep},
		"op state 0 not the agreed step": {func(g *Game, m *Move) {
			if m.OpCommitment != nil {
				m.OpCommitment.Start = m.OpCommitment.End
				m.OpCommitment.StartProof = m.OpCommitment.EndProof
			}
		}, StageOpCommitment},
		"op end scratch altered": {func(g *Game, m *Move) {
			if m.OpCommitment != nil {
				m.OpCommitment.EndScratch[0] ^= 1
			}
		}, StageOpCommitment},
		"op reveal altered": {func(g *Game, m *Move) {
			if m.Reveal != nil && g.OpCommitment != nil {
				m.Reveal.Roots[0][0] ^= 1
			}
		}, StageOp},
	}
	for name, tc := range cases {
		r := play(t, f.pr, bad, f.honest, 10, tc.tm)
		if r.v.Winner != Challenger || r.v.Stage != tc.stage || r.machine.calls != 0 {
			t.Fatalf("%s: verdict %+v, referee calls %d", name, r.v, r.machine.calls)
		}
	}
	// An honest defender that alters a reveal loses too: consistency, not
	// truth, is checked at the commitment.
	r := play(t, f.pr, f.honest, bad, 10, func(g *Game, m *Move) {
		if m.Reveal != nil {
			m.Reveal.Roots[0][0] ^= 1
		}
	})
	if r.v.Winner != Challenger || r.v.Stage != StageStep {
		t.Fatalf("%+v", r.v)
	}
}

// TestBadRefereeInputLosesForItsSender: an opening of the agreed state
// that does not match it (a changed buffer, leaf, op or missing buffer)
// loses for whoever sent it, without the op being run.
func TestBadRefereeInputLosesForItsSender(t *testing.T) {
	f := tiny(t)
	bad := f.corrupted(t, ml.Corruption{Step: 4321, Op: "l0.attn.fwd", Buffer: "l0.attn", Index: 9, Bit: 22})
	cases := map[string]func(in *RefereeInput){
		"buffer byte":    func(in *RefereeInput) { in.Buffers["l0.qkv"][3] ^= 1 },
		"leaf":           func(in *RefereeInput) { in.Leaves[len(in.Leaves)-1][0] ^= 1 },
		"op":             func(in *RefereeInput) { in.Op++ },
		"missing buffer": func(in *RefereeInput) { delete(in.Buffers, "l0.qkv") },
		"extra buffer":   func(in *RefereeInput) { in.Buffers["params"] = []byte{1} },
		"short leaves":   func(in *RefereeInput) { in.Leaves = in.Leaves[1:] },
	}
	for name, change := range cases {
		for _, from := range []Party{Defender, Challenger} {
			r := play(t, f.pr, bad, f.honest, 10, func(g *Game, m *Move) {
				if m.RefereeInput != nil {
					m.RefereeInput.From = from
					change(m.RefereeInput)
				}
			})
			if r.v.Loser != from || r.v.Stage != StageReferee || r.machine.calls != 0 {
				t.Fatalf("%s from %s: %+v (referee calls %d)", name, from, r.v, r.machine.calls)
			}
		}
	}
}

// TestRefereeWork: the referee re-executes one op on a few buffers: far
// fewer bytes than the trace's states and far less time than re-running
// the 10,000 steps.
func TestRefereeWork(t *testing.T) {
	f := tiny(t)
	bad := f.corrupted(t, ml.Corruption{Step: 6173, Index: 100, Bit: 3})
	r := play(t, f.pr, bad, f.honest, 10, nil)
	var stateBytes int
	for _, b := range f.pr.Buffers()[:ml.NumPersistent] {
		stateBytes += b.Bytes
	}
	full := tinySteps * stateBytes // what a re-run moves through the persistent state alone
	if r.machine.calls != 1 || r.machine.inBytes > 2*stateBytes || r.refBytes*1000 > full {
		t.Fatalf("referee: %d ExecOp calls on %d bytes (input message %d bytes); one step state is %d bytes, the run %d",
			r.machine.calls, r.machine.inBytes, r.refBytes, stateBytes, full)
	}
	start := time.Now()
	if _, err := ml.StateAt(context.Background(), f.pr.Config(), f.pr.VocabSize(), testSeed, f.data, tinySteps, tinySteps, ml.TraceOptions{}); err != nil {
		t.Fatal(err)
	}
	rerun := time.Since(start)
	if r.refereeNS*10 > rerun {
		t.Fatalf("referee took %v, a full re-run %v", r.refereeNS, rerun)
	}
	t.Logf("referee: 1 op (%s), %d input bytes, %v; full re-run %v (%.0fx)", r.v.OpName, r.machine.inBytes, r.refereeNS, rerun, float64(rerun)/float64(r.refereeNS))
}

// TestForfeit: a party that stops answering loses; nothing moves after.
func TestForfeit(t *testing.T) {
	f := tiny(t)
	bad := f.corrupted(t, ml.Corruption{Step: 6173, Index: 100, Bit: 3})
	ctx := context.Background()
	for _, quitter := range []Party{Defender, Challenger} {
		p, _ := MLParams(f.pr, testSeed, f.honest.Final(), 10)
		g, _ := NewGame(p)
		mv, _ := DefenderMove(ctx, bad, g)
		if err := g.Apply(mv); err != nil {
			t.Fatal(err)
		}
		mv, _ = DefenderMove(ctx, bad, g)
		if err := g.Apply(mv); err != nil {
			t.Fatal(err)
		}
		v, err := g.Forfeit(quitter)
		if err != nil || v.Loser != quitter || v.Winner != quitter.Other() || v.Stage != StageForfeit || !g.Done() {
			t.Fatalf("%+v %v", v, err)
		}
		if err := g.Apply(Move{From: Challenger, Choice: &Choice{Index: 0, Claim: f.honest.Final()}}); !errors.Is(err, ErrDone) {
			t.Fatalf("a move after the verdict: %v", err)
		}
		if _, err := g.Forfeit(quitter.Other()); !errors.Is(err, ErrDone) {
			t.Fatal("second forfeit accepted")
		}
	}
}

// TestTurnsAndRanges: moves out of turn change nothing; a choice out of
// range, or one that claims the very root it disputes, or changes the
// challenger's earlier claim, loses.
func TestTurnsAndRanges(t *testing.T) {
	f := tiny(t)
	bad := f.corrupted(t, ml.Corruption{Step: 6173, Index: 100, Bit: 3})
	ctx := context.Background()
	start := func() *Game {
		p, _ := MLParams(f.pr, testSeed, f.honest.Final(), 10)
		g, err := NewGame(p)
		if err != nil {
			t.Fatal(err)
		}
		mv, _ := DefenderMove(ctx, bad, g)
		if err := g.Apply(mv); err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := start()
	if err := g.ApplyChoice(Choice{Index: 0, Claim: f.honest.Final()}); !errors.Is(err, ErrOutOfTurn) || g.Phase != PhaseStepReveal {
		t.Fatalf("choice before the reveal: %v", err)
	}
	if err := g.ApplyCommitment(bad.Commitment()); !errors.Is(err, ErrOutOfTurn) {
		t.Fatalf("second commitment: %v", err)
	}
	if err := g.Apply(Move{From: Challenger, Reveal: &Reveal{}}); !errors.Is(err, ErrOutOfTurn) {
		t.Fatalf("reveal from the challenger: %v", err)
	}
	if _, err := g.Case(); !errors.Is(err, ErrOutOfTurn) {
		t.Fatal("a referee case before the dissection ended")
	}
	mv, _ := DefenderMove(ctx, bad, g)
	if err := g.Apply(mv); err != nil {
		t.Fatal(err)
	}
	if err := g.ApplyReveal(*mv.Reveal); !errors.Is(err, ErrOutOfTurn) {
		t.Fatalf("reveal twice: %v", err)
	}
	before := *g
	for _, ch := range []Choice{{Index: 10, Claim: f.honest.Final()}, {Index: -1, Claim: f.honest.Final()}} {
		g2 := clone(t, &before)
		var inv *InvalidMoveError
		if err := g2.ApplyChoice(ch); !errors.As(err, &inv) || inv.Party != Challenger || g2.Verdict.Loser != Challenger {
			t.Fatalf("choice %d: %v", ch.Index, err)
		}
	}
	g2 := clone(t, &before)
	if err := g2.ApplyChoice(Choice{Index: 3, Claim: g2.Revealed[3]}); err == nil || g2.Verdict.Loser != Challenger {
		t.Fatal("a claim equal to the disputed root accepted")
	}
	g2 = clone(t, &before)
	if err := g2.ApplyChoice(Choice{Index: 9, Claim: bad.Roots()[0]}); err == nil || g2.Verdict.Loser != Challenger {
		t.Fatal("a changed claim at the end accepted")
	}
	for _, p := range []Params{{K: 1, Steps: 5, NumOps: 3, ChallengerFinal: Hash{1}}, {K: 65, Steps: 5, NumOps: 3, ChallengerFinal: Hash{1}}, {Steps: 0, NumOps: 3, ChallengerFinal: Hash{1}}, {Steps: 5, NumOps: 3}} {
		if _, err := NewGame(p); !errors.Is(err, ErrParams) {
			t.Fatalf("params %+v accepted", p)
		}
	}
}

func clone(t *testing.T, g *Game) *Game {
	t.Helper()
	b, err := jsonMarshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var out Game
	if err := jsonUnmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestCuts: the cut points split an interval into min(k, len) parts whose
// lengths differ by at most one, and the round count is ceil(log_k n).
func TestCuts(t *testing.T) {
	for _, k := range []int{2, 3, 4, 10, 40, 64} {
		for _, n := range []int{1, 2, 3, 9, 10, 11, 99, 100, 1000, 10000} {
			lo, hi := 5, 5+n
			cs := cuts(lo, hi, k)
			pts := append(append([]int{lo}, cs...), hi)
			mn, mx := n, 0
			for i := 1; i < len(pts); i++ {
				d := pts[i] - pts[i-1]
				mn, mx = min(mn, d), max(mx, d)
			}
			if len(pts)-1 != min(k, n) || mn < 1 || mx-mn > 1 {
				t.Fatalf("k=%d n=%d: cuts %v", k, n, cs)
			}
			rounds, l := 0, n
			for l > 1 {
				l = (l + min(k, l) - 1) / min(k, l)
				rounds++
			}
			want := 0
			for p := 1; p < n; p *= k {
				want++
			}
			if rounds != want {
				t.Fatalf("k=%d n=%d: %d rounds, want %d", k, n, rounds, want)
			}
		}
	}
}
