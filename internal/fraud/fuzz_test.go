package fraud

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

// The synthetic run: the tiny config on generated text, 40 steps, so that
// fuzz targets and TestGameOnSyntheticText need no corpus.
const synthVocab, synthSteps = 29, 40

func synthText(n int) []uint8 {
	out := make([]uint8, n)
	x := uint32(7)
	for i := range out {
		x = x*1664525 + 1013904223
		out[i] = uint8(1 + (x>>16)%(synthVocab-1))
	}
	return out
}

var (
	synthOnce sync.Once
	synth     struct {
		pr          *ml.Program
		honest, bad *Trace
		moves       []any // every message of a played game
	}
)

// synthGame plays one game on the synthetic run (defender corrupt after
// l0.attn.fwd of step 23) and records its messages as fuzz seeds.
func synthGame(t testing.TB) {
	t.Helper()
	synthOnce.Do(func() {
		pr, err := ml.NewProgram(tinyConfig(), synthVocab, synthSteps, synthText(4000))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		synth.pr = pr
		synth.honest, _ = NewTrace(ctx, &MLRun{Program: pr, Seed: 3, CheckpointEvery: 8})
		synth.bad, _ = NewTrace(ctx, &MLRun{Program: pr, Seed: 3, CheckpointEvery: 8,
			Corrupt: &ml.Corruption{Step: 23, Op: "l0.attn.fwd", Buffer: "l0.attn", Index: 2, Bit: 22}})
		p, _ := mlParams(pr, 3, synth.honest.Final(), 3)
		g, _ := NewGame(p)
		for !g.Done() {
			who, _ := g.Expect()
			var mv Move
			if who == Defender {
				mv, err = DefenderMove(ctx, synth.bad, g)
			} else {
				mv, err = ChallengerMove(ctx, synth.honest, g)
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case mv.RefereeInput != nil:
				synth.moves = append(synth.moves, *mv.RefereeInput)
				_, err = g.Referee(*mv.RefereeInput, pr)
			case mv.Commitment != nil:
				synth.moves = append(synth.moves, *mv.Commitment)
				err = g.Apply(mv)
			case mv.Reveal != nil:
				synth.moves = append(synth.moves, *mv.Reveal)
				err = g.Apply(mv)
			case mv.Choice != nil:
				synth.moves = append(synth.moves, *mv.Choice)
				err = g.Apply(mv)
			case mv.OpCommitment != nil:
				synth.moves = append(synth.moves, *mv.OpCommitment)
				err = g.Apply(mv)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		synth.moves = append(synth.moves, *g.Verdict)
	})
	if synth.pr == nil {
		t.Fatal("synthetic game failed")
	}
}

// mlParams is MLParams with the synthetic seed's stream.
func mlParams(pr *ml.Program, seed int64, final Hash, k int) (Params, error) {
	return MLParams(pr, seed, final, k)
}

// TestGameOnSyntheticText plays the synthetic game (no corpus needed): the
// corrupt op is found.
func TestGameOnSyntheticText(t *testing.T) {
	synthGame(t)
	v := synth.moves[len(synth.moves)-1].(Verdict)
	if v.Winner != Challenger || v.Step != 23 || v.OpName != "l0.attn.fwd" || v.Stage != StageReferee {
		t.Fatalf("%+v", v)
	}
}

func seeds[T any](f *testing.F) {
	synthGame(f)
	for _, m := range synth.moves {
		if v, ok := m.(T); ok {
			b, _ := json.Marshal(v)
			f.Add(b)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
}

// roundTrip checks that an accepted message re-encodes to an equal one.
func roundTrip[T any](t *testing.T, v T, dec func([]byte) (T, error)) {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	w, err := dec(b)
	if err != nil {
		t.Fatalf("re-encoded message rejected: %v", err)
	}
	if !reflect.DeepEqual(normalise(v), normalise(w)) {
		t.Fatalf("round trip changed %+v into %+v", v, w)
	}
}

func normalise(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func FuzzDecodeCommitment(f *testing.F) {
	seeds[Commitment](f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommitment(b)
		if err != nil {
			return
		}
		if len(b) > MaxCommitmentBytes {
			t.Fatal("over the bound")
		}
		roundTrip(t, c, DecodeCommitment)
		// Applying it never panics.
		p, _ := MLParams(synth.pr, 3, synth.honest.Final(), 10)
		g, _ := NewGame(p)
		_ = g.ApplyCommitment(c)
	})
}

func FuzzDecodeReveal(f *testing.F) {
	seeds[Reveal](f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReveal(b)
		if err != nil {
			return
		}
		if len(b) > MaxRevealBytes || len(r.Roots) >= MaxK || len(r.Roots) != len(r.Proofs) {
			t.Fatalf("accepted %d roots in %d bytes", len(r.Roots), len(b))
		}
		roundTrip(t, r, DecodeReveal)
		g := synthAfterCommit()
		if err := g.ApplyReveal(r); err == nil && !reflect.DeepEqual(normalise(r), normalise(synth.moves[1])) {
			t.Fatal("a foreign reveal verified")
		}
	})
}

// synthAfterCommit is the synthetic game right after its commitment.
func synthAfterCommit() *Game {
	p, _ := mlParams(synth.pr, 3, synth.honest.Final(), 3)
	g, _ := NewGame(p)
	_ = g.ApplyCommitment(synth.moves[0].(Commitment))
	return g
}

func FuzzDecodeChoice(f *testing.F) {
	seeds[Choice](f)
	f.Add([]byte(`{"index":64,"claim":"` + Hash{}.String() + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChoice(b)
		if err != nil {
			return
		}
		if c.Index < 0 || c.Index >= MaxK || len(b) > MaxChoiceBytes {
			t.Fatalf("accepted %+v", c)
		}
		roundTrip(t, c, DecodeChoice)
		g := synthAfterCommit()
		_ = g.ApplyReveal(synth.moves[1].(Reveal))
		_ = g.ApplyChoice(c) // never panics
	})
}

func FuzzDecodeOpCommitment(f *testing.F) {
	seeds[OpCommitment](f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeOpCommitment(b)
		if err != nil {
			return
		}
		if len(b) > MaxOpCommitmentBytes || c.NumOps < 1 || c.Step < 0 {
			t.Fatalf("accepted %+v", c)
		}
		roundTrip(t, c, DecodeOpCommitment)
	})
}

// FuzzDecodeRefereeInput: any decoded input is judged without a panic
// (ids out of range, wrong lengths, NaNs), and only the true opening
// lets the op run.
func FuzzDecodeRefereeInput(f *testing.F) {
	seeds[RefereeInput](f)
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := DecodeRefereeInput(b, 1<<20)
		if err != nil {
			return
		}
		if len(b) > 1<<20 || len(in.Leaves) > MaxBuffers || !in.From.valid() {
			t.Fatalf("accepted %d leaves in %d bytes from %q", len(in.Leaves), len(b), in.From)
		}
		roundTrip(t, in, func(b []byte) (RefereeInput, error) { return DecodeRefereeInput(b, 1<<20) })
		var c RefereeCase
		for _, m := range synth.moves {
			if r, ok := m.(RefereeInput); ok {
				c = RefereeCase{Step: r.Step, Op: r.Op, Pre: mustOpRoot(t, r.Leaves)}
			}
		}
		v := Judge(c, in, synth.pr)
		if !v.Winner.valid() || v.Loser != v.Winner.Other() {
			t.Fatalf("verdict %+v", v)
		}
	})
}

func mustOpRoot(t *testing.T, leaves []Hash) Hash {
	r, err := synth.pr.OpRoot(leaves)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func FuzzDecodeVerdict(f *testing.F) {
	seeds[Verdict](f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVerdict(b)
		if err != nil {
			return
		}
		if len(b) > MaxVerdictBytes || v.Loser != v.Winner.Other() {
			t.Fatalf("accepted %+v", v)
		}
		roundTrip(t, v, DecodeVerdict)
	})
}

// TestOneStepRun: a run of one step goes straight to the op level.
func TestOneStepRun(t *testing.T) {
	ctx := context.Background()
	pr, err := ml.NewProgram(tinyConfig(), synthVocab, 1, synthText(500))
	if err != nil {
		t.Fatal(err)
	}
	honest, _ := NewTrace(ctx, &MLRun{Program: pr, Seed: 5})
	bad, _ := NewTrace(ctx, &MLRun{Program: pr, Seed: 5, Corrupt: &ml.Corruption{Step: 0, Op: "embed.fwd", Buffer: "x0", Index: 0, Bit: 21}})
	r := play(t, pr, bad, honest, 2, nil)
	if r.v.Winner != Challenger || r.v.Step != 0 || r.v.OpName != "embed.fwd" || r.v.StepRounds != 0 {
		t.Fatalf("%+v", r.v)
	}
}
