// Package modelserve keeps a node's inference.Service serving the site's
// published models: it loads each model's checkpoint from S3 (checking its
// SHA-256 against the record), runs it with the pure-Go transformer, and
// follows publishes, re-publishes and deletions made by any process of the
// site. It also builds the built-in embedding model.
package modelserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// Loader turns a checkpoint into a servable model named name.
type Loader func(name string, created time.Time, ckpt []byte) (inference.TextModel, error)

// Registry syncs published models into Service.
type Registry struct {
	Store   *store.Store
	Blob    *blob.Store
	Service *inference.Service
	Load    Loader
	Logger  *slog.Logger
	// OnChange, when set, is called after the set of served models changed
	// (to re-advertise them to peers).
	OnChange func()

	mu     sync.Mutex
	served map[string]string // name -> checkpoint hash
}

func (r *Registry) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Check parses a checkpoint without serving it.
func (r *Registry) Check(ckpt []byte) error {
	_, err := r.Load("check", time.Now(), ckpt)
	return err
}

// Serve starts serving m from ckpt (whose hash must be m's).
func (r *Registry) Serve(ctx context.Context, m store.Model, ckpt []byte) error {
	sum := sha256.Sum256(ckpt)
	if h := hex.EncodeToString(sum[:]); h != m.CheckpointHash {
		return fmt.Errorf("modelserve: checkpoint of %s hashes to %s, the record says %s", m.Name, h, m.CheckpointHash)
	}
	tm, err := r.Load(m.Name, m.CreatedAt, ckpt)
	if err != nil {
		return fmt.Errorf("modelserve: load %s: %w", m.Name, err)
	}
	r.Service.SetText(tm)
	r.mu.Lock()
	if r.served == nil {
		r.served = map[string]string{}
	}
	r.served[m.Name] = m.CheckpointHash
	r.mu.Unlock()
	r.log().Info("serving model", "model", m.Name, "experiment", m.ExperimentID, "checkpoint", m.CheckpointHash[:12])
	if r.OnChange != nil {
		r.OnChange()
	}
	return nil
}

// Unserve stops serving name.
func (r *Registry) Unserve(name string) {
	r.mu.Lock()
	_, ok := r.served[name]
	delete(r.served, name)
	r.mu.Unlock()
	if ok {
		r.Service.Remove(name)
		if r.OnChange != nil {
			r.OnChange()
		}
	}
}

// Sync serves every published model not yet served at its current
// checkpoint and stops serving names no longer published.
func (r *Registry) Sync(ctx context.Context) error {
	ms, err := r.Store.ListModels(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	var firstErr error
	for _, m := range ms {
		want[m.Name] = true
		r.mu.Lock()
		cur := r.served[m.Name]
		r.mu.Unlock()
		if cur == m.CheckpointHash {
			continue
		}
		ckpt, err := r.Blob.Get(ctx, m.CheckpointKey)
		if err == nil {
			err = r.Serve(ctx, m, ckpt)
		}
		if err != nil {
			r.log().Warn("cannot serve published model", "model", m.Name, "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	r.mu.Lock()
	var gone []string
	for name := range r.served {
		if !want[name] {
			gone = append(gone, name)
		}
	}
	r.mu.Unlock()
	for _, name := range gone {
		r.Unserve(name)
	}
	return firstErr
}

// Run syncs now and then every interval until ctx ends.
func (r *Registry) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 15 * time.Second
	}
	_ = r.Sync(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.Sync(ctx)
		}
	}
}
