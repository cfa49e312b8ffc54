package modelserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains/ml"
)

// StarterModelName is the chat model every node serves from its first
// start, before anyone has published one: the ML domain's baseline config
// trained with seed 1 on the Cranfield train split (700k characters, about
// ten seconds with the SIMD kernels on two cores). The trainer is
// deterministic, so every node that trains it gets the same checkpoint,
// byte for byte, and so the same model hash: cache entries and KV prefixes
// of the starter are shared across the network.
const StarterModelName = "hyperspace-starter"

// StarterSeed is the seed the starter model is trained with.
const StarterSeed = 1

// Starter returns the starter model's checkpoint: read from cacheDir when
// a previous start trained it, trained (and written there atomically)
// otherwise. progress, when set, is told every 10% of the training.
func Starter(ctx context.Context, dataDir, cacheDir string, log *slog.Logger) ([]byte, error) {
	corpus, err := ml.LoadCorpus(dataDir)
	if err != nil {
		return nil, err
	}
	st, err := ml.NewState(ml.New().Baseline(), corpus.VocabSize(), StarterSeed, 0)
	if err != nil {
		return nil, err
	}
	cfg := st.Config
	steps := int(cfg.Int("tokenBudget")) / int(ml.TokensPerStep(cfg))
	key := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d|%s", cfg.Key(), StarterSeed, steps, corpus.Vocab)))
	path := filepath.Join(cacheDir, "starter-"+hex.EncodeToString(key[:8])+".ckpt")
	if b, err := os.ReadFile(path); err == nil {
		if _, err := ml.LoadLM(b); err == nil {
			return b, nil
		}
		log.Warn("starter model cache does not load; training it again", "file", path)
	}
	log.Info("training the starter model (once; cached)", "model", StarterModelName, "steps", steps, "file", path)
	start := time.Now()
	tenth := max(steps/10, 1)
	if _, err := ml.TrainSteps(ctx, st, corpus.Train, steps, steps, func(done int, loss float64) {
		if done%tenth == 0 {
			log.Info("training the starter model", "step", done, "of", steps, "loss", fmt.Sprintf("%.3f", loss))
		}
	}); err != nil {
		return nil, err
	}
	ck, err := ml.Checkpoint(cfg, corpus.Vocab, st.Params, StarterSeed, steps)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir, 0o700); err == nil {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, ck, 0o600); err == nil {
			_ = os.Rename(tmp, path)
		}
	}
	log.Info("starter model trained", "seconds", time.Since(start).Round(time.Second).Seconds())
	return ck, nil
}
