package ml

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// programShapes cover every activation and normalisation, one and two
// layers, clipping on and off, and widths that are not multiples of 8.
func programShapes() []domains.Config {
	return []domains.Config{
		tinyChallengeConfig(),
		{"nLayers": 2.0, "dModel": 24.0, "nHeads": 3.0, "contextLength": 17.0, "dFFMult": 3.0, "batchSize": 3.0,
			"activation": actReLU, "normalization": normRMS, "gradientClipNorm": 0.0, "warmupSteps": 2.0},
		{"nLayers": 2.0, "dModel": 20.0, "nHeads": 2.0, "contextLength": 16.0, "dFFMult": 2.0, "batchSize": 2.0,
			"activation": actSwiGLU, "normalization": normLayer, "gradientClipNorm": 0.05, "warmupSteps": 2.0, "initType": "kaiming"},
	}
}

// synthText is a deterministic stand-in for a training split (ids 1..vocab-1).
func synthText(n, vocab int) []uint8 {
	out := make([]uint8, n)
	x := uint32(12345)
	for i := range out {
		x = x*1664525 + 1013904223
		out[i] = uint8(1 + (x>>16)%uint32(vocab-1))
	}
	return out
}

const synthVocab = 29

// trainedState returns the state of cfg after k honest steps of a run of
// total steps on data.
func trainedState(t *testing.T, cfg domains.Config, data []uint8, k, total int) *State {
	t.Helper()
	st, err := NewState(cfg, synthVocab, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TrainSteps(context.Background(), st, data, k, total, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestProgramKeepsTrainingBits pins plain training of tinyConfig (seed 1)
// to the checkpoint the trainer produced before it was an op program.
func TestProgramKeepsTrainingBits(t *testing.T) {
	r, err := New().Evaluate(context.Background(), tinyConfig(), 1, evalOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(r.Artifacts["checkpoint.bin"])
	if got := hex.EncodeToString(sum[:]); got != "c8732e86030c7af392f54a14917d6a3f273ede87b73b8d8a72d6aaf28dd5e574" {
		t.Fatalf("checkpoint sha256 %s (val_loss %v): training is no longer bit-identical", got, r.Metric)
	}
}

// TestProgramReadsOnlyWhatItWrote: statically, no op of any shape reads a
// scratch buffer before an earlier op of the step wrote it; and the check
// catches a program that does.
func TestProgramReadsOnlyWhatItWrote(t *testing.T) {
	for _, cfg := range programShapes() {
		c := mustValidate(t, cfg)
		p := programFor(newModel(hyperFrom(c, synthVocab)), c.Int("batchSize"))
		if err := p.check(); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, o := range p.ops {
			if seen[o.name] {
				t.Fatalf("op name %s repeats", o.name)
			}
			seen[o.name] = true
		}
		// Drop what embed.fwd writes: the first layer's norm then reads x0
		// before it is written.
		broken := *p
		broken.ops = slices.Clone(p.ops)
		broken.ops[1].writes = nil
		if err := broken.check(); err == nil {
			t.Fatal("check accepted an op that reads an unwritten buffer")
		}
	}
	pr, err := NewProgram(tinyChallengeConfig(), synthVocab, 100, synthText(1000, synthVocab))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range pr.Ops() {
		names = append(names, o.Name)
	}
	t.Logf("%d ops: %v", len(names), names)
	for _, want := range []string{"sample", "embed.fwd", "l0.norm1.fwd", "l0.qkv.fwd", "l0.attn.fwd", "l0.proj.fwd", "loss", "head.bwd", "embed.bwd", "clip", "adamw"} {
		if !slices.Contains(names, want) {
			t.Fatalf("no op %s", want)
		}
	}
}

// TestStepIgnoresStaleScratch: a step run op by op with every scratch
// buffer poisoned (NaN) first gives bit-identical state to TrainSteps, and
// the same op-state roots as an unpoisoned run: a step depends only on the
// step-start state and the public text.
func TestStepIgnoresStaleScratch(t *testing.T) {
	data := synthText(3000, synthVocab)
	for _, cfg := range programShapes() {
		c := mustValidate(t, cfg)
		const total = 12
		st := trainedState(t, c, data, 5, total)
		pr, err := NewProgram(c, synthVocab, total, data)
		if err != nil {
			t.Fatal(err)
		}
		clean, err := pr.StepOpRoots(st, nil)
		if err != nil {
			t.Fatal(err)
		}
		x, err := pr.NewStepper(st)
		if err != nil {
			t.Fatal(err)
		}
		x.poison()
		var poisoned []merkle.Hash
		poisoned = append(poisoned, x.Root())
		for x.Next() < pr.NumOps() {
			if err := x.RunOp(); err != nil {
				t.Fatal(err)
			}
			poisoned = append(poisoned, x.Root())
		}
		if !slices.Equal(clean, poisoned) {
			t.Fatalf("%v: poisoned scratch changed the op-state roots", cfg)
		}
		want := st.Clone()
		if _, err := TrainSteps(context.Background(), want, data, 1, total, nil); err != nil {
			t.Fatal(err)
		}
		got := x.State()
		if !slices.Equal(f32bits(got.Params), f32bits(want.Params)) || !slices.Equal(f32bits(got.M), f32bits(want.M)) ||
			!slices.Equal(f32bits(got.V), f32bits(want.V)) || got.Step != want.Step || !bytes.Equal(got.RNG, want.RNG) {
			t.Fatalf("%v: op-by-op step with poisoned scratch differs from TrainSteps", cfg)
		}
		r1, _ := StateRoot(want)
		if OpStateRoot(x.Leaves()) != merkle.Node(r1, merkle.Root(x.Leaves()[NumPersistent:])) || clean[0] != merkle.Node(mustRoot(t, st), pr.ScratchStart()) {
			t.Fatalf("%v: op-state roots are not tied to the step-state roots", cfg)
		}
	}
}

func mustRoot(t *testing.T, s *State) merkle.Hash {
	t.Helper()
	r, err := StateRoot(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func f32bits(x []float32) []uint32 {
	out := make([]uint32, len(x))
	for i, v := range x {
		out[i] = math.Float32bits(v)
	}
	return out
}

// TestExecOpMatchesStep: for every op of a step, ExecOp given only the
// op's declared read buffers reproduces the buffers it writes bit for bit
// (the in-step run has NaN in every stale scratch buffer, ExecOp zeros,
// so an undeclared read or a partial write shows), and the op changes no
// buffer it does not declare as written.
func TestExecOpMatchesStep(t *testing.T) {
	data := synthText(3000, synthVocab)
	for _, cfg := range programShapes() {
		c := mustValidate(t, cfg)
		const total = 12
		st := trainedState(t, c, data, 4, total)
		pr, err := NewProgram(c, synthVocab, total, data)
		if err != nil {
			t.Fatal(err)
		}
		x, err := pr.NewStepper(st)
		if err != nil {
			t.Fatal(err)
		}
		x.poison()
		for j, o := range pr.Ops() {
			in := map[string][]byte{}
			for _, r := range o.Reads {
				b, err := x.Buffer(r)
				if err != nil {
					t.Fatal(err)
				}
				in[r] = b
			}
			before := x.Leaves()
			out, err := pr.ExecOp(j, in)
			if err != nil {
				t.Fatalf("%s: %v", o.Name, err)
			}
			if err := x.RunOp(); err != nil {
				t.Fatal(err)
			}
			after := x.Leaves()
			for i, b := range pr.Buffers() {
				if slices.Contains(o.Writes, b.Name) {
					got, _ := x.Buffer(b.Name)
					if !bytes.Equal(out[b.Name], got) {
						t.Fatalf("%v: op %s: ExecOp's %s differs from the step's", c.String("activation"), o.Name, b.Name)
					}
				} else if before[i] != after[i] {
					t.Fatalf("op %s changed %s, which it does not declare", o.Name, b.Name)
				}
			}
			if len(out) != len(o.Writes) {
				t.Fatalf("op %s: %d outputs for %d writes", o.Name, len(out), len(o.Writes))
			}
		}
	}
}

func TestExecOpRejectsBadInputs(t *testing.T) {
	data := synthText(2000, synthVocab)
	c := mustValidate(t, tinyChallengeConfig())
	st := trainedState(t, c, data, 1, 10)
	pr, _ := NewProgram(c, synthVocab, 10, data)
	x, _ := pr.NewStepper(st)
	if err := x.RunTo(2, nil); err != nil { // sample, embed.fwd
		t.Fatal(err)
	}
	embed, _ := pr.OpIndex("embed.fwd")
	tok, _ := x.Buffer("tokens")
	params, _ := x.Buffer("params")
	if _, err := pr.ExecOp(embed, map[string][]byte{"tokens": tok, "params": params}); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(tok)
	bad[0] = synthVocab // out of the vocabulary
	cases := []map[string][]byte{
		{"tokens": tok}, // missing
		{"tokens": tok, "params": params, "x0": tok},          // extra
		{"tokens": tok[:4], "params": params},                 // short
		{"tokens": bad, "params": params},                     // id out of range
		{"tokens": tok, "params": append(params, 0, 0, 0, 0)}, // long
	}
	for i, in := range cases {
		if _, err := pr.ExecOp(embed, in); err == nil {
			t.Fatalf("case %d accepted", i)
		}
	}
	if _, err := pr.ExecOp(pr.NumOps(), nil); err == nil {
		t.Fatal("op past the end accepted")
	}
}

// TestTraceMatchesTraining: Trace's roots are the roots of TrainSteps'
// states step by step; a corruption changes exactly the roots from its
// step on; StateAt and StepOpRoots agree with Trace, corrupt or not.
func TestTraceMatchesTraining(t *testing.T) {
	data := synthText(3000, synthVocab)
	c := mustValidate(t, tinyChallengeConfig())
	const total = 20
	ctx := context.Background()
	roots, err := Trace(ctx, c, synthVocab, 3, data, total, TraceOptions{})
	if err != nil || len(roots) != total+1 {
		t.Fatalf("%d roots, %v", len(roots), err)
	}
	st, _ := NewState(c, synthVocab, 3, 0)
	for s := 0; s <= total; s++ {
		if r := mustRoot(t, st); r != roots[s] {
			t.Fatalf("root %d differs from TrainSteps' state", s)
		}
		if s < total {
			if _, err := TrainSteps(ctx, st, data, 1, total, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	pr, _ := NewProgram(c, synthVocab, total, data)
	for _, cor := range []*Corruption{{Step: 7, Index: 3, Bit: 20}, {Step: 7, Op: "l0.attn.fwd", Buffer: "l0.attn", Index: 5, Bit: 22}} {
		bad, err := Trace(ctx, c, synthVocab, 3, data, total, TraceOptions{Corrupt: cor})
		if err != nil {
			t.Fatal(err)
		}
		for s := range roots {
			if (bad[s] == roots[s]) != (s <= cor.Step) {
				t.Fatalf("%+v: root %d equal=%v", cor, s, bad[s] == roots[s])
			}
		}
		at, err := StateAt(ctx, c, synthVocab, 3, data, total, cor.Step, TraceOptions{Corrupt: cor})
		if err != nil || mustRoot(t, at) != bad[cor.Step] {
			t.Fatalf("StateAt %d: %v", cor.Step, err)
		}
		ops, err := pr.StepOpRoots(at, cor)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := pr.NewStepper(at)
		if err := x.RunTo(pr.NumOps(), cor); err != nil {
			t.Fatal(err)
		}
		if ops[len(ops)-1] != x.Root() || merkle.Root(x.Leaves()[:NumPersistent]) != bad[cor.Step+1] {
			t.Fatalf("%+v: the op trace does not end at the corrupt step root", cor)
		}
		after, _ := StateAt(ctx, c, synthVocab, 3, data, total, total, TraceOptions{Corrupt: cor})
		if mustRoot(t, after) != bad[total] {
			t.Fatal("StateAt(total) is not Trace's last root")
		}
	}
	if _, err := Trace(ctx, c, synthVocab, 3, data, total, TraceOptions{Corrupt: &Corruption{Step: 1, Op: "nope"}}); err == nil {
		t.Fatal("unknown op accepted")
	}
}
