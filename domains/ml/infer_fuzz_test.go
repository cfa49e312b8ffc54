package ml

import (
	"bytes"
	"testing"
)

// fuzzConfig is the smallest config the domain accepts, so fuzz seeds are
// a few kilobytes.
func fuzzConfig() map[string]any {
	return map[string]any{
		"nLayers": 1.0, "dModel": 16.0, "nHeads": 2.0, "contextLength": 16.0, "dFFMult": 1.0,
		"batchSize": 1.0, "tokenBudget": 1000.0, "warmupSteps": 0.0,
	}
}

// FuzzLoadLM feeds LoadLM arbitrary bytes, seeded with a real checkpoint
// and a few corruptions of it: it must never panic, and what it accepts
// must be usable.
func FuzzLoadLM(f *testing.F) {
	good := testCheckpoint(f, fuzzConfig(), "\n abcdefghijklmnopqrstuvwxyz.", 1)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:100])
	f.Add([]byte("HSMLCKPT"))
	bad := bytes.Clone(good)
	bad[20] ^= 0x40
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		lm, err := LoadLM(b)
		if err != nil {
			return
		}
		info := lm.Info()
		if info.NumParams != NumParams(info.Config, info.VocabSize) || len(lm.Hash()) != 64 {
			t.Fatalf("accepted a checkpoint with info %+v", info)
		}
		st := lm.NewState()
		if _, err := lm.Prefill(st, lm.Encode("abc")); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzUnmarshalState feeds UnmarshalState arbitrary bytes, seeded with
// real states: it must never panic, and a state it accepts re-encodes to
// the same bytes and can be continued.
func FuzzUnmarshalState(f *testing.F) {
	lm, err := LoadLM(testCheckpoint(f, fuzzConfig(), "\n abcdefghijklmnopqrstuvwxyz.", 1))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "a", "the wing", "supersonic flow."} {
		st := lm.NewState()
		if _, err := lm.Prefill(st, lm.Encode(s)); err != nil {
			f.Fatal(err)
		}
		b, err := st.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := lm.UnmarshalState(b)
		if err != nil {
			return
		}
		again, err := st.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted state does not re-encode to its bytes (%v)", err)
		}
		if _, err := lm.Step(st, 1); err != nil {
			t.Fatal(err)
		}
	})
}
