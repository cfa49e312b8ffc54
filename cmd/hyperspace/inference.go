package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/modelserve"
	"github.com/hyperspace-ai/hyperspace/internal/respcache"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// inferenceFlags configure the OpenAI-compatible /v1 API (api, dev, node).
type inferenceFlags struct {
	Upstream, UpstreamEmbed []string
	UpstreamKey             string
	NoStarter, Off          bool
	SyncEvery               time.Duration
	Semantic                float64
}

func (f *inferenceFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.Upstream, "upstream", nil, "upstream chat model routes NAME=BASEURL[#UPSTREAM_MODEL] to OpenAI-compatible servers "+
		"(Ollama, vLLM, llama.cpp), e.g. llama=http://127.0.0.1:11434/v1#llama3.2:1b; repeat or comma-separate")
	fl.StringSliceVar(&f.UpstreamEmbed, "upstream-embed", nil, "upstream embedding model routes, as --upstream")
	fl.StringVar(&f.UpstreamKey, "upstream-api-key", "", "bearer token sent to the upstream routes (prefer HYPERSPACE_UPSTREAM_API_KEY)")
	fl.BoolVar(&f.NoStarter, "no-starter-model", false, "do not train and serve the starter chat model ("+modelserve.StarterModelName+") on start")
	fl.BoolVar(&f.Off, "no-inference", false, "do not serve the OpenAI-compatible /v1 API")
	fl.Float64Var(&f.Semantic, "semantic-cache", 0, "answer a deterministic request whose exact cache key misses with the cached answer of a prompt at least this cosine-similar "+
		"(built-in embeddings; same model and params only), e.g. 0.92; 0: off. It serves wrong answers on some hits (BENCHMARKS.md): only on purpose")
	fl.DurationVar(&f.SyncEvery, "models-sync", 15*time.Second, "how often to pick up models published by other processes of the site")
}

// startInference builds the /v1 service: the built-in embedding model, the
// starter chat model (trained once into <state-dir>/models, in the
// background), the site's published models (followed from the database)
// and the upstream routes. It returns nil, nil when --no-inference.
// bind, when set, attaches the service to a P2P node (node.ServeInference)
// before anything is loaded.
func (c *common) startInference(ctx context.Context, f inferenceFlags, st *store.Store, b *blob.Store, log *slog.Logger, bind func(*inference.Service, *modelserve.Registry) error) (*inference.Service, *modelserve.Registry, error) {
	if f.Off {
		return nil, nil, nil
	}
	svc := &inference.Service{Logger: log}
	for _, spec := range f.Upstream {
		u, err := inference.ParseUpstream(spec, inference.KindChat, f.UpstreamKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--upstream: %w", err)
		}
		svc.SetUpstream(u)
	}
	for _, spec := range f.UpstreamEmbed {
		u, err := inference.ParseUpstream(spec, inference.KindEmbedding, f.UpstreamKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--upstream-embed: %w", err)
		}
		svc.SetUpstream(u)
	}
	if c.DataDir != "" {
		if em, err := modelserve.BuiltinEmbedding(c.DataDir); err != nil {
			log.Warn("no built-in embedding model", "err", err)
		} else {
			svc.SetEmbed(em)
			if f.Semantic > 0 {
				if f.Semantic >= 1 {
					return nil, nil, fmt.Errorf("--semantic-cache: %v is not a cosine threshold in (0, 1)", f.Semantic)
				}
				idx, err := respcache.NewSemanticIndex(respcache.SemanticConfig{Embedder: em.LSA, Threshold: f.Semantic})
				if err != nil {
					return nil, nil, err
				}
				svc.Semantic = idx
			}
		}
	}
	reg := &modelserve.Registry{Store: st, Blob: b, Service: svc, Logger: log, Load: modelserve.LoadML(nil)}
	if bind != nil {
		if err := bind(svc, reg); err != nil {
			return nil, nil, err
		}
	}
	if st != nil && b != nil {
		go reg.Run(ctx, f.SyncEvery)
	}
	if !f.NoStarter && c.DataDir != "" {
		go func() {
			ck, err := modelserve.Starter(ctx, c.DataDir, filepath.Join(c.StateDir, "models"), log)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("no starter model", "err", err)
				}
				return
			}
			m, err := reg.Load(modelserve.StarterModelName, time.Now(), ck)
			if err != nil {
				log.Warn("starter model does not load", "err", err)
				return
			}
			svc.SetText(m)
			if reg.OnChange != nil {
				reg.OnChange()
			}
			log.Info("serving the starter model", "model", modelserve.StarterModelName, "hash", m.Info().Hash[:12])
		}()
	}
	return svc, reg, nil
}
