package p2p

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/respcache"
)

// The L1 response cache across peers. A node that computes a deterministic
// response signs it (respcache.Sign), stores it, provides
// "cache/<request hash>" in the DHT and announces it on
// TopicCacheAnnouncements; a node that misses locally asks the announcers
// it heard of, then the DHT's providers, over CacheProtocol, admits what it
// gets (admission.CacheEntry, then the caller's content check and a sampled
// re-computation), stores it and provides it in turn, so popular entries
// spread to the nodes that ask for them.
const (
	// CacheProtocol: the request is one frame holding a request hash; the
	// reply is one frame holding the entry's JSON, or an empty frame for
	// "not held".
	CacheProtocol = protocol.ID("/hyperspace/cache/1.0.0")
	// TopicCacheAnnouncements carries signed respcache.Announcements.
	TopicCacheAnnouncements = "hyperspace/cache/announcements"
	// MaxCacheFrame bounds a cache reply (an entry's JSON).
	MaxCacheFrame = respcache.MaxEntryJSON
	// maxCacheRequest bounds a cache request frame.
	maxCacheRequest = 128
	// cacheStreamTimeout bounds one served or fetched exchange.
	cacheStreamTimeout = 10 * time.Second
	// maxInboundCache bounds the cache streams a node serves at once.
	maxInboundCache = 64
)

// CacheKey is the DHT content key of a request hash's entry.
func CacheKey(requestHash string) string { return "cache/" + requestHash }

// Errors of FetchCache.
var (
	// ErrCacheNotFound: the peer does not hold the entry.
	ErrCacheNotFound = errors.New("p2p: cache entry not held by the peer")
)

// ParseCacheRequest decodes a cache request frame: a request hash.
func ParseCacheRequest(b []byte) (string, error) {
	if len(b) > maxCacheRequest || !respcache.IsRequestHash(string(b)) {
		return "", fmt.Errorf("%w: cache request is not a request hash", errMalformed)
	}
	return string(b), nil
}

// UnmarshalCacheReply decodes a cache reply frame: found is false for an
// empty frame; otherwise the entry (unverified: admission's to check).
func UnmarshalCacheReply(b []byte) (e respcache.Entry, found bool, err error) {
	if len(b) == 0 {
		return respcache.Entry{}, false, nil
	}
	e, err = respcache.UnmarshalEntry(b)
	if err != nil {
		return respcache.Entry{}, false, err
	}
	return e, true, nil
}

// ServeCache makes this node answer CacheProtocol requests with lookup
// (which must be fast and safe for concurrent use: e.g. a respcache.Store's
// Get). At most 64 requests are served at once; more are reset.
func (n *Node) ServeCache(lookup func(requestHash string) (respcache.Entry, bool)) {
	sem := make(chan struct{}, maxInboundCache)
	n.host.SetStreamHandler(CacheProtocol, func(s network.Stream) {
		select {
		case sem <- struct{}{}:
		default:
			_ = s.Reset()
			return
		}
		defer func() { <-sem }()
		n.serveOneFrame(s, cacheStreamTimeout, maxCacheRequest, func(b []byte) ([]byte, bool) {
			h, err := ParseCacheRequest(b)
			if err != nil {
				return nil, false
			}
			var out []byte
			if e, ok := lookup(h); ok {
				if out, err = json.Marshal(e); err != nil || len(out) > MaxCacheFrame {
					out = nil
				}
			}
			return out, true
		})
	})
}

// FetchCache asks p for requestHash's entry and admits it
// (admission.CacheEntry on PathCache: a proof by its provider for this
// request, unexpired). It returns ErrCacheNotFound when p does not hold it,
// and admission's *Rejection when the entry is refused.
func (n *Node) FetchCache(ctx context.Context, p peer.ID, requestHash string) (respcache.Entry, error) {
	if !respcache.IsRequestHash(requestHash) {
		return respcache.Entry{}, fmt.Errorf("p2p: fetch cache: %q is not a request hash", requestHash)
	}
	ctx, cancel := context.WithTimeout(ctx, cacheStreamTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, CacheProtocol)
	if err != nil {
		return respcache.Entry{}, fmt.Errorf("p2p: fetch cache from %s: %w", p, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	r, w := bufio.NewReader(s), bufio.NewWriter(s)
	if _, err := writeFrame(w, []byte(requestHash)); err != nil {
		_ = s.Reset()
		return respcache.Entry{}, fmt.Errorf("p2p: fetch cache from %s: %w", p, err)
	}
	b, _, err := readFrame(r, MaxCacheFrame)
	if err != nil {
		_ = s.Reset()
		return respcache.Entry{}, fmt.Errorf("p2p: fetch cache from %s: %w", p, err)
	}
	src := admission.Source{Path: admission.PathCache, Peer: p}
	e, found, err := UnmarshalCacheReply(b)
	if err != nil {
		return respcache.Entry{}, n.cfg.Admission.Reject(src, admission.KindCacheEntry, admission.ReasonMalformed, err)
	}
	if !found {
		return respcache.Entry{}, ErrCacheNotFound
	}
	if err := n.cfg.Admission.CacheEntry(src, e, requestHash, len(b)); err != nil {
		return respcache.Entry{}, err
	}
	return e, nil
}

// Defaults of SharedCacheConfig.
const (
	DefaultCacheSampleRate    = 0.05
	DefaultCacheLookupTimeout = 1500 * time.Millisecond
	DefaultCacheFetchTimeout  = 500 * time.Millisecond
	DefaultCacheProviders     = 3
	DefaultCacheDirectory     = 65536
	cacheProvideTimeout       = 30 * time.Second
	maxCacheProvides          = 16 // DHT provides in flight
	maxBadProviders           = 4096
	announcersPerEntry        = 4
)

// DefaultCacheAnnounceLimit bounds the announcements a node publishes, and
// accepts from one publisher: a busy node computes many answers, and an
// announcement is only a shortcut (the DHT is the record), so excess is
// skipped by the sender and ignored, unpenalised, by receivers.
var DefaultCacheAnnounceLimit = RateLimit{Rate: 50, Burst: 500}

// SharedCacheConfig configures a SharedCache; zero fields take defaults.
type SharedCacheConfig struct {
	// Store holds this node's entries (default: a respcache.NewStore with
	// its defaults).
	Store *respcache.Store
	// CheckContent checks that a fetched response answers its request hash
	// (inference.CheckRecord); an error refuses the entry. Nil: no check.
	CheckContent func(requestHash string, response []byte) error
	// Recompute re-runs a fetched request here and returns the response
	// bytes this node computes ((*inference.Service).Recompute). Nil: no
	// sampled re-computation.
	Recompute func(ctx context.Context, requestHash string, response []byte) ([]byte, error)
	// SampleRate is the fraction of fetched entries re-computed (default
	// 0.05; negative: none; 1: all).
	SampleRate float64
	// OnMismatch is called (on the Lookup's goroutine) when a re-computed
	// entry differs from what provider signed; the entry is not served and
	// the provider is skipped from then on.
	OnMismatch func(provider peer.ID, e respcache.Entry)
	// TTL of the proofs this node signs (default respcache.DefaultTTL).
	TTL time.Duration
	// LookupTimeout bounds the network part of a Lookup (default 1.5 s):
	// a miss costs at most this.
	LookupTimeout time.Duration
	// FetchTimeout bounds one fetch from one peer (default 500 ms).
	FetchTimeout time.Duration
	// MaxProviders is how many DHT providers a Lookup asks for (default 3).
	MaxProviders int
	// DirectoryEntries bounds the announced "who computed what" map
	// (default 65,536 request hashes, up to 4 providers each).
	DirectoryEntries int
	// AnnounceLimit bounds announcements (default DefaultCacheAnnounceLimit).
	AnnounceLimit RateLimit
	// NoReprovide keeps fetched entries out of the DHT (a leaf node that
	// should not serve them; benchmarks).
	NoReprovide bool
	// Rand returns a uniform number in [0, 1) for sampling (default
	// math/rand/v2.Float64).
	Rand func() float64
}

// SharedCacheStats are a SharedCache's counters.
type SharedCacheStats struct {
	HitsLocal uint64 `json:"hitsLocal"`
	HitsPeer  uint64 `json:"hitsPeer"`
	Misses    uint64 `json:"misses"`
	// Rejected fetched entries by reason: admission's reasons, "content"
	// (CheckContent refused it), "mismatch" (re-computation differed),
	// "bad_provider" (signed by a provider caught before).
	Rejected   map[string]uint64 `json:"rejected"`
	Recomputed uint64            `json:"recomputed"`
	Mismatches uint64            `json:"mismatches"`
	// RecomputeErrors: sampled entries that could not be re-computed here
	// (served unchecked).
	RecomputeErrors uint64               `json:"recomputeErrors"`
	Puts            uint64               `json:"puts"`
	Provided        uint64               `json:"provided"`      // DHT provides that succeeded
	ProvideFailed   uint64               `json:"provideFailed"` // failed, or skipped for too many in flight
	Announced       uint64               `json:"announced"`
	AnnouncesHeard  uint64               `json:"announcesHeard"`
	Store           respcache.StoreStats `json:"store"`
}

// SharedCache is the L1 response cache of one node, shared with its peers.
// It implements the inference plane's Cache interface (Lookup, Put). Build
// one per node: it serves CacheProtocol and joins TopicCacheAnnouncements.
type SharedCache struct {
	n     *Node
	cfg   SharedCacheConfig
	store *respcache.Store
	topic *pubsub.Topic
	sub   *pubsub.Subscription

	announce *rateLimiter // ours (key: our id) and publishers'
	provides chan struct{}

	dirMu  sync.Mutex
	dir    map[string]*list.Element // request hash → *dirEntry
	dirLRU *list.List

	badMu sync.Mutex
	bad   map[peer.ID]bool

	hitsLocal, hitsPeer, misses, recomputed, mismatches, recomputeErrors atomic.Uint64
	puts, provided, provideFailed, announced, heard                      atomic.Uint64
	rejMu                                                                sync.Mutex
	rejected                                                             map[string]uint64
}

type dirEntry struct {
	hash      string
	providers []peer.ID
}

// NewSharedCache starts n's shared cache: it serves cfg.Store over
// CacheProtocol and listens to announcements.
func NewSharedCache(n *Node, cfg SharedCacheConfig) (*SharedCache, error) {
	if cfg.Store == nil {
		cfg.Store = respcache.NewStore(respcache.StoreConfig{})
	}
	if cfg.SampleRate == 0 {
		cfg.SampleRate = DefaultCacheSampleRate
	}
	if cfg.TTL <= 0 {
		cfg.TTL = respcache.DefaultTTL
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultCacheLookupTimeout
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultCacheFetchTimeout
	}
	if cfg.MaxProviders <= 0 {
		cfg.MaxProviders = DefaultCacheProviders
	}
	if cfg.DirectoryEntries <= 0 {
		cfg.DirectoryEntries = DefaultCacheDirectory
	}
	if cfg.AnnounceLimit.Rate <= 0 || cfg.AnnounceLimit.Burst <= 0 {
		cfg.AnnounceLimit = DefaultCacheAnnounceLimit
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	c := &SharedCache{n: n, cfg: cfg, store: cfg.Store,
		announce: newRateLimiter(cfg.AnnounceLimit),
		provides: make(chan struct{}, maxCacheProvides),
		dir:      map[string]*list.Element{}, dirLRU: list.New(),
		bad: map[peer.ID]bool{}, rejected: map[string]uint64{},
	}
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if err := c.join(); err != nil {
		return nil, err
	}
	n.ServeCache(c.store.Get)
	return c, nil
}

// Store is the cache's local store.
func (c *SharedCache) Store() *respcache.Store { return c.store }

func (c *SharedCache) join() error {
	n := c.n
	kind := admission.KindCacheAnnouncement
	err := n.ps.RegisterTopicValidator(TopicCacheAnnouncements, func(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if src == n.ID() {
			if _, ok := msg.ValidatorData.(*respcache.Announcement); ok {
				return pubsub.ValidationAccept
			}
		}
		if len(msg.GetData()) > respcache.MaxAnnouncementBytes {
			return n.val.reject(src, kind, ReasonOversized, pubsub.ValidationReject)
		}
		if !c.announce.allow(msg.GetFrom(), n.cfg.Now()) {
			return n.val.reject(src, kind, ReasonRateLimited, pubsub.ValidationIgnore)
		}
		a, err := respcache.UnmarshalAnnouncement(msg.GetData())
		if err != nil {
			return n.val.reject(src, kind, ReasonMalformed, pubsub.ValidationReject)
		}
		src2 := admission.Source{Path: admission.PathGossip, Peer: src, Publisher: msg.GetFrom()}
		if _, r := n.val.admitted(n.cfg.Admission.CacheAnnouncement(src2, a, len(msg.GetData()))); r != pubsub.ValidationAccept {
			return r
		}
		msg.ValidatorData = &a
		return pubsub.ValidationAccept
	}, pubsub.WithValidatorInline(true))
	if err != nil {
		return fmt.Errorf("p2p: validator for %s: %w", TopicCacheAnnouncements, err)
	}
	t, err := n.ps.Join(TopicCacheAnnouncements)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(TopicCacheAnnouncements)
		return fmt.Errorf("p2p: joining %s: %w", TopicCacheAnnouncements, err)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(1024))
	if err != nil {
		_ = t.Close()
		_ = n.ps.UnregisterTopicValidator(TopicCacheAnnouncements)
		return fmt.Errorf("p2p: subscribing %s: %w", TopicCacheAnnouncements, err)
	}
	c.topic, c.sub = t, sub
	if !n.goOwned("gossip "+TopicCacheAnnouncements, func() {
		defer sub.Cancel()
		for {
			msg, err := sub.Next(n.ctx)
			if err != nil {
				return
			}
			if msg.ReceivedFrom == n.ID() {
				continue
			}
			a, ok := msg.ValidatorData.(*respcache.Announcement)
			if !ok {
				continue
			}
			c.heard.Add(1)
			c.remember(a.RequestHash, msg.GetFrom())
		}
	}) {
		sub.Cancel()
		return ErrClosed
	}
	return nil
}

// Close stops serving and listening; the store is kept. The node's Close
// does the same.
func (c *SharedCache) Close() {
	c.n.host.RemoveStreamHandler(CacheProtocol)
	c.sub.Cancel()
	_ = c.n.ps.UnregisterTopicValidator(TopicCacheAnnouncements)
}

// remember adds p as an announced provider of h (bounded LRU).
func (c *SharedCache) remember(h string, p peer.ID) {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	if el, ok := c.dir[h]; ok {
		d := el.Value.(*dirEntry)
		c.dirLRU.MoveToFront(el)
		for _, q := range d.providers {
			if q == p {
				return
			}
		}
		if len(d.providers) >= announcersPerEntry {
			d.providers = d.providers[1:]
		}
		d.providers = append(d.providers, p)
		return
	}
	c.dir[h] = c.dirLRU.PushFront(&dirEntry{hash: h, providers: []peer.ID{p}})
	for c.dirLRU.Len() > c.cfg.DirectoryEntries {
		old := c.dirLRU.Back()
		c.dirLRU.Remove(old)
		delete(c.dir, old.Value.(*dirEntry).hash)
	}
}

func (c *SharedCache) announcers(h string) []peer.ID {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	if el, ok := c.dir[h]; ok {
		return append([]peer.ID(nil), el.Value.(*dirEntry).providers...)
	}
	return nil
}

func (c *SharedCache) isBad(p peer.ID) bool {
	c.badMu.Lock()
	defer c.badMu.Unlock()
	return c.bad[p]
}

func (c *SharedCache) markBad(p peer.ID) {
	c.badMu.Lock()
	defer c.badMu.Unlock()
	if len(c.bad) >= maxBadProviders {
		for q := range c.bad { // bounded: forget an arbitrary one
			delete(c.bad, q)
			break
		}
	}
	c.bad[p] = true
}

func (c *SharedCache) reject(reason string) {
	c.rejMu.Lock()
	c.rejected[reason]++
	c.rejMu.Unlock()
}

// Lookup returns requestHash's response from the local store, or else
// from a peer (announcers first, then DHT providers) within LookupTimeout.
// A fetched entry is admitted, content-checked, sometimes re-computed,
// stored, and provided by this node in turn.
func (c *SharedCache) Lookup(ctx context.Context, requestHash string) ([]byte, string, bool) {
	if e, ok := c.store.Get(requestHash); ok {
		c.hitsLocal.Add(1)
		return e.Response, "local", true
	}
	if !respcache.IsRequestHash(requestHash) || c.n.ctx.Err() != nil {
		c.misses.Add(1)
		return nil, "", false
	}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.LookupTimeout)
	defer cancel()
	tried := map[peer.ID]bool{c.n.ID(): true}
	var resp []byte
	var found, stop bool
	try := func(p peer.ID) bool {
		if tried[p] || c.isBad(p) {
			return false
		}
		tried[p] = true
		resp, found, stop = c.fetch(ctx, lctx, p, requestHash)
		return found || stop
	}
	for _, p := range c.announcers(requestHash) {
		if try(p) {
			break
		}
	}
	if !found && !stop && c.n.dht != nil && lctx.Err() == nil {
		provs, err := c.n.FindProviders(lctx, CacheKey(requestHash), c.cfg.MaxProviders+1)
		if len(provs) == 0 {
			c.n.log.Debug("cache: no DHT provider", "request", requestHash, "err", err, "remaining", context.Cause(lctx))
		}
		for _, ai := range provs {
			if try(ai.ID) {
				break
			}
		}
	}
	if !found {
		c.misses.Add(1)
		return nil, "", false
	}
	c.hitsPeer.Add(1)
	return resp, "peer", true
}

// fetch tries one peer: found when an entry was admitted and stored; stop
// when the lookup should give up (a sampled re-computation disagreed: the
// caller computes the answer itself).
func (c *SharedCache) fetch(ctx, lctx context.Context, p peer.ID, h string) (resp []byte, found, stop bool) {
	fctx, cancel := context.WithTimeout(lctx, c.cfg.FetchTimeout)
	e, err := c.n.FetchCache(fctx, p, h)
	cancel()
	if err != nil {
		c.n.log.Debug("cache fetch", "peer", p, "request", h, "err", err)
		if reason := admission.ReasonOf(err); reason != "" {
			c.reject(reason)
			if reason != admission.ReasonInvalid { // forged or tampered: not an honest relay
				c.markBad(p)
			}
		}
		return nil, false, false
	}
	provider, err := peer.Decode(e.Proof.Provider)
	if err != nil { // admitted entries have a valid provider
		return nil, false, false
	}
	if c.isBad(provider) {
		c.reject("bad_provider")
		return nil, false, false
	}
	if c.cfg.CheckContent != nil {
		if err := c.cfg.CheckContent(h, e.Response); err != nil {
			c.reject("content")
			c.markBad(provider)
			c.n.log.Warn("cache entry does not answer its request", "provider", provider, "peer", p, "request", h, "err", err)
			return nil, false, false
		}
	}
	if c.cfg.Recompute != nil && c.cfg.SampleRate > 0 && c.cfg.Rand() < c.cfg.SampleRate {
		c.recomputed.Add(1)
		got, err := c.cfg.Recompute(ctx, h, e.Response)
		switch {
		case err != nil:
			c.recomputeErrors.Add(1)
			c.n.log.Debug("cache entry not re-computable here", "request", h, "err", err)
		case !bytes.Equal(got, e.Response):
			c.mismatches.Add(1)
			c.reject("mismatch")
			c.markBad(provider)
			c.n.log.Warn("cache entry differs from its re-computation", "provider", provider, "peer", p, "request", h)
			if c.cfg.OnMismatch != nil {
				c.cfg.OnMismatch(provider, e)
			}
			return nil, false, true
		}
	}
	if !c.store.Put(e) {
		return e.Response, true, false // too large for the store, or just expired: serve once
	}
	if !c.cfg.NoReprovide {
		c.provide(h)
	}
	return e.Response, true, false
}

// provide announces h in the DHT in the background (bounded in number and
// time).
func (c *SharedCache) provide(h string) {
	if c.n.dht == nil {
		return
	}
	select {
	case c.provides <- struct{}{}:
	default:
		c.provideFailed.Add(1)
		return
	}
	if !c.n.goOwned("cache provide", func() {
		defer func() { <-c.provides }()
		ctx, cancel := context.WithTimeout(c.n.ctx, cacheProvideTimeout)
		defer cancel()
		if err := c.n.Provide(ctx, CacheKey(h)); err != nil {
			c.provideFailed.Add(1)
			c.n.log.Debug("cache provide", "request", h, "err", err)
			return
		}
		c.provided.Add(1)
	}) {
		<-c.provides
	}
}

// Peers are the peers known to subscribe to the announcements topic: the
// nodes a Put's announcement reaches directly.
func (c *SharedCache) Peers() []peer.ID { return c.topic.ListPeers() }

// Put signs response as computed by this node for requestHash and model,
// stores it, provides it in the DHT and announces it. Failures are logged:
// the serving path does not wait for the network.
func (c *SharedCache) Put(ctx context.Context, requestHash, model string, response []byte) {
	now := c.n.cfg.Now()
	e := respcache.Entry{RequestHash: requestHash, Model: model, Response: response, Proof: respcache.Proof{ComputedAt: now.UnixMilli()}}
	if err := respcache.Sign(&e, c.n.PrivKey(), c.cfg.TTL); err != nil {
		c.n.log.Warn("cache: signing an entry", "request", requestHash, "err", err)
		return
	}
	if err := respcache.Verify(e, requestHash, now); err != nil {
		c.n.log.Warn("cache: refusing to share an entry peers would reject", "request", requestHash, "err", err)
		return
	}
	c.puts.Add(1)
	if !c.store.Put(e) {
		return
	}
	c.provide(requestHash)
	if !c.announce.allow(c.n.ID(), now) {
		return
	}
	a := respcache.Announcement{RequestHash: requestHash, Model: model, ComputedAt: now.UnixMilli()}
	if err := respcache.SignAnnouncement(&a, c.n.PrivKey()); err != nil {
		return
	}
	data, err := json.Marshal(a)
	if err != nil {
		return
	}
	if err := c.topic.Publish(ctx, data, pubsub.WithValidatorData(&a)); err != nil {
		c.n.log.Debug("cache: announcing", "request", requestHash, "err", err)
		return
	}
	c.announced.Add(1)
}

// Stats returns a snapshot of the counters.
func (c *SharedCache) Stats() SharedCacheStats {
	c.rejMu.Lock()
	rej := make(map[string]uint64, len(c.rejected))
	for k, v := range c.rejected {
		rej[k] = v
	}
	c.rejMu.Unlock()
	return SharedCacheStats{
		HitsLocal: c.hitsLocal.Load(), HitsPeer: c.hitsPeer.Load(), Misses: c.misses.Load(),
		Rejected: rej, Recomputed: c.recomputed.Load(), Mismatches: c.mismatches.Load(),
		RecomputeErrors: c.recomputeErrors.Load(), Puts: c.puts.Load(), Provided: c.provided.Load(),
		ProvideFailed: c.provideFailed.Load(), Announced: c.announced.Load(), AnnouncesHeard: c.heard.Load(),
		Store: c.store.Stats(),
	}
}
