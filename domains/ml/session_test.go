package ml

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestSegmentedEqualsPlain: TrainSteps in segments (with a State copied
// between them, as a distributed worker hands it on) gives the same
// checkpoint and validation loss as plain training, bit for bit.
func TestSegmentedEqualsPlain(t *testing.T) {
	opts := evalOpts(t)
	ctx := context.Background()
	cfg, err := New().Validate(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	plain, err := New().Evaluate(ctx, cfg, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	corpus, err := LoadCorpus(opts.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	total := int(plain.Values["steps"])
	st, err := NewState(cfg, corpus.VocabSize(), 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, n := range []int{1, total / 3, total - 1 - total/3} {
		st = st.Clone()
		calls := 0
		stats, err := TrainSteps(ctx, st, corpus.Train, n, total, func(int, float64) { calls++ })
		if err != nil {
			t.Fatal(err)
		}
		if stats.Steps != n || calls != n || stats.Tokens != int64(n)*TokensPerStep(cfg) {
			t.Fatalf("stats %+v calls %d for %d steps", stats, calls, n)
		}
		done += n
	}
	if done != total || st.Step != total {
		t.Fatalf("trained %d steps, state at %d, want %d", done, st.Step, total)
	}
	ck, err := Checkpoint(cfg, corpus.Vocab, st.Params, 7, total)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ck, plain.Artifacts["checkpoint.bin"]) {
		t.Fatal("segmented training's parameters differ from plain training's")
	}
	val, err := EvalParams(ctx, cfg, corpus.VocabSize(), st.Params, corpus.Validation)
	if err != nil {
		t.Fatal(err)
	}
	if val != plain.Metric {
		t.Fatalf("val_loss %v vs plain %v", val, plain.Metric)
	}
	// One data-parallel worker on the whole split is plain training too.
	dp, _ := NewState(cfg, corpus.VocabSize(), 7, 0)
	samplers := [][]byte{SamplerState(7, 0)}
	if _, err := TrainDataParallel(ctx, dp, [][]uint8{corpus.Train}, samplers, total, total); err != nil {
		t.Fatal(err)
	}
	for i := range dp.Params {
		if dp.Params[i] != st.Params[i] {
			t.Fatalf("data-parallel K=1 differs from plain at %d", i)
		}
	}
	// Beyond the schedule, or with the wrong shape: errors, not panics.
	if _, err := TrainSteps(ctx, st, corpus.Train, 1, total, nil); err == nil {
		t.Fatal("stepping past the schedule accepted")
	}
	bad := st.Clone()
	bad.Params = bad.Params[:10]
	if _, err := TrainSteps(ctx, bad, corpus.Train, 1, total+1, nil); !errors.Is(err, ErrShape) {
		t.Fatalf("short params: %v", err)
	}
}

func TestShards(t *testing.T) {
	corpus, err := LoadCorpus(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{1, 2, 4, 7} {
		sh, err := corpus.Shards(k, 64)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for i, s := range sh {
			n += len(s)
			if i > 0 && sh[i-1][len(sh[i-1])-1] != corpus.newlineID() {
				t.Fatalf("k=%d: shard %d does not end at a document boundary", k, i-1)
			}
			if len(s) < len(corpus.Train)/k/2 {
				t.Fatalf("k=%d: shard %d has %d of %d chars", k, i, len(s), len(corpus.Train))
			}
		}
		if n != len(corpus.Train) {
			t.Fatalf("k=%d: shards hold %d of %d chars", k, n, len(corpus.Train))
		}
	}
	if _, err := corpus.Shards(100000, 64); err == nil {
		t.Fatal("100000 shards accepted")
	}
}

func TestInterleavedShards(t *testing.T) {
	corpus, err := LoadCorpus(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	nl := corpus.newlineID()
	docs := bytes.SplitAfter(corpus.Train, []byte{nl})
	if len(docs[len(docs)-1]) == 0 {
		docs = docs[:len(docs)-1]
	}
	for _, k := range []int{1, 2, 4, 7} {
		sh, err := corpus.InterleavedShards(k, 64)
		if err != nil {
			t.Fatal(err)
		}
		if len(sh) != k {
			t.Fatalf("k=%d: %d shards", k, len(sh))
		}
		// Shard j is documents j, j+k, j+2k, ... in order, whole.
		for j, s := range sh {
			var want []byte
			for i := j; i < len(docs); i += k {
				want = append(want, docs[i]...)
			}
			if !bytes.Equal(s, want) {
				t.Fatalf("k=%d: shard %d (%d chars) is not documents %d mod %d (%d chars)", k, j, len(s), j, k, len(want))
			}
			if len(s) < len(corpus.Train)/k/2 {
				t.Fatalf("k=%d: shard %d has %d of %d chars", k, j, len(s), len(corpus.Train))
			}
		}
		if k == 1 && !bytes.Equal(sh[0], corpus.Train) {
			t.Fatal("k=1 is not the whole split")
		}
	}
	if _, err := corpus.InterleavedShards(100000, 64); err == nil {
		t.Fatal("100000 shards accepted")
	}
	if _, err := corpus.InterleavedShards(0, 64); err == nil {
		t.Fatal("0 shards accepted")
	}
}

func TestSampleOffsetsMatchTraining(t *testing.T) {
	corpus, err := LoadCorpus(testDataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := New().Validate(tinyConfig())
	a, _ := NewState(cfg, corpus.VocabSize(), 3, 1)
	b := a.Clone()
	offs, err := SampleOffsets(a, len(corpus.Train), 4)
	if err != nil || len(offs) != 4 || len(offs[0]) != cfg.Int("batchSize") {
		t.Fatalf("%v %v", offs, err)
	}
	if _, err := TrainSteps(context.Background(), b, corpus.Train, 4, 10, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.RNG, b.RNG) {
		t.Fatal("SampleOffsets and TrainSteps leave different sampler states")
	}
}
