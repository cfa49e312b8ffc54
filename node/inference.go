package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/internal/capability"
	"github.com/hyperspace-ai/hyperspace/internal/inference"
	"github.com/hyperspace-ai/hyperspace/internal/modelserve"
	"github.com/hyperspace-ai/hyperspace/internal/respcache"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// InferenceOptions tune ServeInference.
type InferenceOptions struct {
	// CacheSampleRate is the fraction of cache entries fetched from peers
	// that this node re-computes to check them (default 0.05; <0: none).
	CacheSampleRate float64
	// NoPeerCache keeps the response cache local (no sharing).
	NoPeerCache bool
	// NoKVPrefix turns the erasure-coded KV-prefix cache off.
	NoKVPrefix bool
	// RegisterMetrics exports the inference, cache and KV metrics.
	RegisterMetrics bool
	// KVMaintainEvery is how often the KV-prefix sets this node tracks are
	// probed and, when live chunks fall to k + margin, repaired (default
	// 5 minutes).
	KVMaintainEvery time.Duration
	// KVOptions tune the KV-prefix store (tests).
	KVOptions []p2p.KVOption
}

// KVPrefix is the node's erasure-coded KV-prefix store (nil before
// ServeInference, or with NoKVPrefix).
func (n *Node) KVPrefix() *p2p.KVPrefixStore { return n.kv.Load() }

// maintainKV probes every tracked KV-prefix set with ordinary-looking reads
// (a failed probe lowers the holder's reputation and drops it) and repairs
// the sets whose live chunks fell near k, until ctx ends.
func (n *Node) maintainKV(ctx context.Context, kv *p2p.KVPrefixStore, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, root := range kv.Tracker().Roots() {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if ok, failed := kv.Probe(pctx, root); !ok || len(failed) > 0 {
				n.log.Info("KV-prefix probe failed", "set", root.String()[:12], "failedHolders", len(failed))
			}
			if kv.Tracker().NeedsRepair(root) {
				if err := kv.Repair(pctx, root); err != nil {
					n.log.Warn("KV-prefix repair failed", "set", root.String()[:12], "err", err)
				}
			}
			cancel()
		}
	}
}

// ServeInference makes svc this node's inference service on the mesh:
//
//   - the L1 response cache is shared with peers (p2p.SharedCache: signed
//     entries, announcements, DHT providers, sampled re-computation through
//     svc.Recompute, a mismatching provider dropped);
//   - the models reg serves use the erasure-coded KV-prefix cache
//     (p2p.KVPrefixStore) and are advertised to peers in signed capability
//     records (DHT provider records model/<name>), re-advertised whenever
//     the set changes;
//   - requests for models this node does not serve are forwarded to a peer
//     that does (hedged), and peers' requests are served here.
func (n *Node) ServeInference(ctx context.Context, svc *inference.Service, reg *modelserve.Registry, o InferenceOptions) error {
	svc.Fingerprint = "hs-" + n.P2P.ID().String()
	n.infer.Store(svc)
	if !o.NoPeerCache {
		rate := o.CacheSampleRate
		if rate == 0 {
			rate = 0.05
		}
		sc, err := p2p.NewSharedCache(n.P2P, p2p.SharedCacheConfig{
			CheckContent: func(h string, b []byte) error { _, err := inference.CheckRecord(h, b); return err },
			Recompute:    svc.Recompute,
			SampleRate:   rate,
			// A miss (most requests) must not wait long on the network.
			LookupTimeout: 400 * time.Millisecond,
			FetchTimeout:  300 * time.Millisecond,
			OnMismatch: func(p peer.ID, e respcache.Entry) {
				n.log.Warn("a peer served a cached answer that does not re-compute: not served, peer skipped", "peer", p, "request", e.RequestHash)
				n.challengeEntry(ctx, e)
			},
		})
		if err != nil {
			return err
		}
		svc.Cache = sc
		if o.RegisterMetrics {
			_ = prometheus.Register(p2p.NewCacheCollector(sc))
		}
	}
	if !o.NoKVPrefix && reg != nil {
		kv := p2p.NewKVPrefixStore(n.P2P, nil, o.KVOptions...)
		n.kv.Store(kv)
		reg.Load = modelserve.LoadML(kv)
		go n.maintainKV(ctx, kv, o.KVMaintainEvery)
		if o.RegisterMetrics {
			_ = prometheus.Register(p2p.NewKVCollector(kv))
		}
	}
	svc.Peers = &meshPeers{n: n.P2P}
	n.P2P.ServeInference(func(ctx context.Context, from peer.ID, r p2p.InferenceRequest, w p2p.InferenceWriter) error {
		fw := &frameWriter{w: w}
		err := svc.Serve(ctx, r.Op, r.Body, fw, false)
		if err != nil && !fw.started {
			var e *inference.Error
			if !errors.As(err, &e) {
				n.log.Warn("serving a peer's inference request", "peer", from, "err", err)
				e = inference.NewError(http.StatusInternalServerError, inference.TypeServer, "internal_error", "internal error on the serving peer")
			}
			b, _ := json.Marshal(inference.ErrorBody{Error: e})
			if werr := w.WriteHeader(e.Status, "application/json"); werr != nil {
				return werr
			}
			return w.WriteFrame(b)
		}
		return err
	})
	if o.RegisterMetrics {
		_ = prometheus.Register(p2p.NewInferenceCollector(n.P2P))
	}
	advertise := func() {
		var caps []capability.ModelCap
		for _, m := range svc.Local() {
			if m.Route != inference.RouteLocal {
				continue // upstream routes are the operator's, not offered to the mesh
			}
			caps = append(caps, capability.ModelCap{ID: m.ID, Kind: m.Kind, Hash: m.Hash, OwnedBy: m.OwnedBy})
		}
		if err := n.P2P.AdvertiseModels(ctx, caps); err != nil {
			n.log.Debug("advertising models", "err", err)
		}
	}
	if reg != nil {
		prev := reg.OnChange
		reg.OnChange = func() {
			if prev != nil {
				prev()
			}
			go advertise()
		}
	}
	go advertise()
	return nil
}

// challengeEntry starts an inference challenge against the signer of e, a
// cache entry that did not re-compute here (in the background: the
// request being served does not wait). Without Temporal and the site
// database there is nobody to settle it: the mismatch stays logged and the
// provider skipped.
func (n *Node) challengeEntry(ctx context.Context, e respcache.Entry) {
	if n.disputeInference == nil {
		return
	}
	d := activities.InferenceDispute{Entry: e, Challenger: n.P2P.ID().String()}
	if r, err := inference.CheckRecord(e.RequestHash, e.Response); err == nil {
		for _, p := range n.P2P.ModelServers(r.Model, r.ModelHash) {
			d.Referees = append(d.Referees, p.String())
		}
	}
	n.wg.Add(1)
	go func() { // owned by the node
		defer n.wg.Done()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := n.disputeInference(cctx, d); err != nil {
			n.log.Warn("could not start an inference challenge", "provider", e.Proof.Provider, "request", e.RequestHash, "err", err)
			return
		}
		n.log.Info("inference challenge started", "provider", e.Proof.Provider, "request", e.RequestHash)
	}()
}

// frameWriter adapts p2p's writer and records whether a header went out.
type frameWriter struct {
	w       p2p.InferenceWriter
	started bool
}

func (f *frameWriter) WriteHeader(status int, ct string) error {
	f.started = true
	return f.w.WriteHeader(status, ct)
}

func (f *frameWriter) WriteFrame(b []byte) error {
	if !f.started {
		if err := f.WriteHeader(http.StatusOK, "application/json"); err != nil {
			return err
		}
	}
	return f.w.WriteFrame(b)
}

// meshPeers is inference.Peers over the node's libp2p routing.
type meshPeers struct{ n *p2p.Node }

func (m *meshPeers) Models(ctx context.Context) []inference.ModelInfo {
	var out []inference.ModelInfo
	for _, c := range m.n.KnownModels() {
		kind := c.Kind
		if kind == capability.KindCompletion {
			kind = inference.KindChat
		}
		out = append(out, inference.ModelInfo{ID: c.ID, Kind: kind, OwnedBy: c.OwnedBy, Hash: c.Hash})
	}
	return out
}

func (m *meshPeers) Forward(ctx context.Context, op, model string, body []byte, stream bool, w inference.FrameWriter) error {
	_, err := m.n.InferHedged(ctx, model, p2p.InferenceRequest{Op: op, Model: model, Body: body, Stream: stream}, p2p.HedgeOptions{}, w.WriteHeader, w.WriteFrame)
	if errors.Is(err, p2p.ErrNoProvider) {
		return inference.ErrNoProvider
	}
	return err
}

// probeInference checks an inference claim as a pulse validator: the peer
// must answer a deterministic completion (temperature 0, a prompt fresh for
// the round) of a chat model this validator serves too, and, since our
// models are deterministic, with exactly the text the validator computes
// (a peer serving other weights under the name fails). A validator that
// serves no chat model cannot verify the claim.
func (n *Node) probeInference(ctx context.Context, pid peer.ID, round int64) (int, error) {
	svc := n.infer.Load()
	if svc == nil {
		return 0, errors.New("this validator serves no inference, so it cannot check the claim")
	}
	var model inference.TextModel
	for _, m := range svc.Local() {
		if m.Route != inference.RouteLocal || m.Kind != inference.KindChat {
			continue
		}
		if tm, ok := svc.Text(m.ID); ok && (model == nil || m.ID == modelserve.StarterModelName) {
			model = tm
		}
	}
	if model == nil {
		return 0, errors.New("this validator serves no chat model to ask for")
	}
	prompt := fmt.Sprintf("the flow at mach %d over a wedge of %d degrees", round%9+1, round%45+1)
	p := inference.GenParams{MaxTokens: 8, Temperature: 0, TopP: 1}
	want, err := model.Generate(ctx, prompt, p, func(string) error { return nil })
	if err != nil {
		return 0, fmt.Errorf("computing the expected answer: %w", err)
	}
	body, _ := json.Marshal(map[string]any{"model": model.Info().ID, "prompt": prompt, "max_tokens": p.MaxTokens, "temperature": 0})
	var status, size int
	var got []byte
	err = n.P2P.Infer(ctx, pid, p2p.InferenceRequest{Op: inference.OpCompletions, Model: model.Info().ID, Body: body},
		func(s int, _ string) error { status = s; return nil },
		func(b []byte) error { size += len(b); got = append(got, b...); return nil })
	if err != nil {
		return size, err
	}
	var r inference.CompletionResponse
	if status != http.StatusOK || json.Unmarshal(got, &r) != nil || len(r.Choices) != 1 {
		return size, fmt.Errorf("no completion from %s (status %d)", model.Info().ID, status)
	}
	if r.Choices[0].Text != want.Text {
		return size, fmt.Errorf("answered %q where %s (%s) computes %q", r.Choices[0].Text, model.Info().ID, model.Info().Hash[:12], want.Text)
	}
	return size, nil
}
