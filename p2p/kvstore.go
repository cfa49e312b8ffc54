package p2p

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
	"github.com/hyperspace-ai/hyperspace/internal/kvprefix"
)

// KVPrefixStore defaults.
const (
	DefaultKVChunkBudget = 256 << 20 // bytes of other nodes' chunks held here
	DefaultKVStateBudget = 64 << 20  // bytes of decoded states kept for Get
	DefaultKVGetTimeout  = 300 * time.Millisecond
	DefaultKVPutTimeout  = time.Minute
	// DefaultKVMissTTL is how long a Get that found nothing is remembered.
	DefaultKVMissTTL = 10 * time.Second
	// DefaultKVParallel bounds the chunk requests one operation has in
	// flight.
	DefaultKVParallel = 16
	// DefaultKVBackground bounds the background publications of Put.
	DefaultKVBackground = 4
	// maxKVProviders bounds the providers a fetch asks.
	maxKVProviders = 20
	maxKVMisses    = 4096
	maxKVBudgets   = 1024
	maxKVProvided  = 4096
)

// KVOption configures a KVPrefixStore.
type KVOption func(*kvOptions)

type kvOptions struct {
	k, n          int
	replicas      int
	chunkBudget   int64
	stateBudget   int64
	getTimeout    time.Duration
	putTimeout    time.Duration
	missTTL       time.Duration
	probes        int
	margin        int
	parallel      int
	background    int
	seed          uint64
	seeded        bool
	now           func() time.Time
	log           *slog.Logger
	disableServer bool
}

// WithKVCode sets the code: k data chunks of n (default 32 of 64).
func WithKVCode(k, n int) KVOption { return func(o *kvOptions) { o.k, o.n = k, n } }

// WithKVReplicas sets how many peers hold each chunk (default 1).
func WithKVReplicas(r int) KVOption { return func(o *kvOptions) { o.replicas = r } }

// WithKVChunkBudget bounds the bytes of chunks this node holds for others
// (default DefaultKVChunkBudget; least recently used chunks go first).
func WithKVChunkBudget(b int64) KVOption { return func(o *kvOptions) { o.chunkBudget = b } }

// WithKVStateBudget bounds the decoded states kept for Get (default
// DefaultKVStateBudget).
func WithKVStateBudget(b int64) KVOption { return func(o *kvOptions) { o.stateBudget = b } }

// WithKVGetTimeout bounds a Get that must fetch (default DefaultKVGetTimeout).
func WithKVGetTimeout(d time.Duration) KVOption { return func(o *kvOptions) { o.getTimeout = d } }

// WithKVPutTimeout bounds a background publication (default DefaultKVPutTimeout).
func WithKVPutTimeout(d time.Duration) KVOption { return func(o *kvOptions) { o.putTimeout = d } }

// WithKVMissTTL sets how long a missed Get is remembered (default
// DefaultKVMissTTL; negative: not at all).
func WithKVMissTTL(d time.Duration) KVOption { return func(o *kvOptions) { o.missTTL = d } }

// WithKVProbes sets the chunks one Probe reads (default kvprefix.DefaultProbes).
func WithKVProbes(n int) KVOption { return func(o *kvOptions) { o.probes = n } }

// WithKVMargin sets the repair margin above k (default kvprefix.DefaultMargin).
func WithKVMargin(n int) KVOption { return func(o *kvOptions) { o.margin = n } }

// WithKVParallel bounds the chunk requests in flight per operation
// (default DefaultKVParallel).
func WithKVParallel(n int) KVOption { return func(o *kvOptions) { o.parallel = n } }

// WithKVSeed seeds the probe plans (default: a random seed).
func WithKVSeed(seed uint64) KVOption { return func(o *kvOptions) { o.seed, o.seeded = seed, true } }

// WithKVClock sets the clock that timestamps manifests (default: the
// node's Config.Now).
func WithKVClock(now func() time.Time) KVOption { return func(o *kvOptions) { o.now = now } }

// WithKVLogger sets the logger (default: the node's).
func WithKVLogger(l *slog.Logger) KVOption { return func(o *kvOptions) { o.log = l } }

// WithKVNoServer makes the store a client only: it does not hold chunks
// for other nodes (nor announce the protocol).
func WithKVNoServer() KVOption { return func(o *kvOptions) { o.disableServer = true } }

// KVStats are a KVPrefixStore's counters since it started.
type KVStats struct {
	ChunksStored    uint64 `json:"chunksStored"`    // chunks other nodes put here and admitted
	ChunksServed    uint64 `json:"chunksServed"`    // chunk gets answered with a chunk
	ManifestsServed uint64 `json:"manifestsServed"` // manifest gets answered
	RejectedChunks  uint64 `json:"rejectedChunks"`  // chunks refused by admission (put or fetched)
	ProbesOK        uint64 `json:"probesOK"`
	ProbesFailed    uint64 `json:"probesFailed"`
	Repairs         uint64 `json:"repairs"`        // sets repaired
	ChunksRepaired  uint64 `json:"chunksRepaired"` // chunks regenerated and re-placed
	Published       uint64 `json:"published"`
	Fetched         uint64 `json:"fetched"`
	FetchFailures   uint64 `json:"fetchFailures"`
	GetHits         uint64 `json:"getHits"` // Get answered from the local state cache
	GetMisses       uint64 `json:"getMisses"`
	PutsDropped     uint64 `json:"putsDropped"` // Puts not published: too many in flight
	HeldChunks      int    `json:"heldChunks"`
	HeldBytes       int64  `json:"heldBytes"`
}

type kvCounters struct {
	chunksStored, chunksServed, manifestsServed, rejected atomic.Uint64
	probesOK, probesFailed, repairs, chunksRepaired       atomic.Uint64
	published, fetched, fetchFailures                     atomic.Uint64
	getHits, getMisses, putsDropped                       atomic.Uint64
}

// KVPrefixStore is the L2 cache of KV-prefix states across peers: Publish
// erasure-codes a state (kvprefix, RS(32, 64) by default), signs its
// manifest with the node key, places the chunks on storage peers by
// rendezvous hashing and announces the set in the DHT; Fetch finds it by
// (model, prefix hash) alone and rebuilds it from the first k verified
// chunks; Probe and Repair keep the sets this node tracks recoverable. It
// also holds other nodes' chunks (the kv-cache protocol's server), and is
// the PrefixStore the model server uses (Get, Put). Close it before the
// node.
type KVPrefixStore struct {
	n       *Node
	peers   func() []peer.ID
	o       kvOptions
	store   *kvStore
	tracker *kvprefix.Tracker
	stats   kvCounters
	inbound chan struct{}
	bg      chan struct{}

	mu       sync.Mutex
	states   *kvLRU[string, []byte]
	misses   map[string]time.Time
	budgets  map[context.Context]time.Time // Get deadlines per caller context
	inflight map[string]bool
	provided map[string]bool
	rng      *rand.Rand

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewKVPrefixStore returns the store of node n. peers lists the peers that
// may hold chunks (nil: the connected peers that support KVProtocol).
func NewKVPrefixStore(n *Node, peers func() []peer.ID, opts ...KVOption) *KVPrefixStore {
	o := kvOptions{k: kvprefix.DefaultK, n: kvprefix.DefaultN, replicas: 1, chunkBudget: DefaultKVChunkBudget,
		stateBudget: DefaultKVStateBudget, getTimeout: DefaultKVGetTimeout, putTimeout: DefaultKVPutTimeout,
		missTTL: DefaultKVMissTTL, probes: kvprefix.DefaultProbes, margin: kvprefix.DefaultMargin,
		parallel: DefaultKVParallel, background: DefaultKVBackground, now: n.cfg.Now, log: n.log}
	for _, f := range opts {
		f(&o)
	}
	if !o.seeded {
		o.seed = rand.Uint64()
	}
	o.parallel = max(o.parallel, 1)
	o.background = max(o.background, 1)
	ctx, cancel := context.WithCancel(n.ctx)
	s := &KVPrefixStore{n: n, peers: peers, o: o, store: newKVStore(o.chunkBudget),
		tracker: kvprefix.NewTracker(o.margin), inbound: make(chan struct{}, maxKVInbound),
		bg: make(chan struct{}, o.background), states: newKVLRU[string, []byte](o.stateBudget, nil),
		misses: map[string]time.Time{}, budgets: map[context.Context]time.Time{}, inflight: map[string]bool{}, provided: map[string]bool{},
		rng: rand.New(rand.NewPCG(o.seed, 0x6b76)), ctx: ctx, cancel: cancel}
	if s.peers == nil {
		s.peers = s.connectedStoragePeers
	}
	if !o.disableServer {
		n.host.SetStreamHandler(KVProtocol, s.handle)
	}
	return s
}

// Close stops serving, cancels the background publications and waits for
// them.
func (s *KVPrefixStore) Close() error {
	if !s.o.disableServer {
		s.n.host.RemoveStreamHandler(KVProtocol)
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

// Tracker is the store's view of which peers hold the sets it follows.
func (s *KVPrefixStore) Tracker() *kvprefix.Tracker { return s.tracker }

// Stats returns the counters.
func (s *KVPrefixStore) Stats() KVStats {
	c := &s.stats
	chunks, bytes := s.store.usage()
	return KVStats{ChunksStored: c.chunksStored.Load(), ChunksServed: c.chunksServed.Load(),
		ManifestsServed: c.manifestsServed.Load(), RejectedChunks: c.rejected.Load(),
		ProbesOK: c.probesOK.Load(), ProbesFailed: c.probesFailed.Load(), Repairs: c.repairs.Load(),
		ChunksRepaired: c.chunksRepaired.Load(), Published: c.published.Load(), Fetched: c.fetched.Load(),
		FetchFailures: c.fetchFailures.Load(), GetHits: c.getHits.Load(), GetMisses: c.getMisses.Load(),
		PutsDropped: c.putsDropped.Load(), HeldChunks: chunks, HeldBytes: bytes}
}

// connectedStoragePeers: connected peers whose protocols include KVProtocol.
func (s *KVPrefixStore) connectedStoragePeers() []peer.ID {
	h := s.n.host
	var out []peer.ID
	for _, p := range h.Network().Peers() {
		if ps, err := h.Peerstore().SupportsProtocols(p, KVProtocol); err == nil && len(ps) > 0 {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// goOwned runs f in a goroutine that both Close and the node's Close wait for.
func (s *KVPrefixStore) goOwned(name string, f func()) bool {
	s.wg.Add(1)
	if !s.n.goOwned(name, func() { defer s.wg.Done(); f() }) {
		s.wg.Done()
		return false
	}
	return true
}

// ---- server side ----

func (s *KVPrefixStore) handle(st network.Stream) {
	select {
	case s.inbound <- struct{}{}:
	default:
		_ = st.Reset()
		return
	}
	defer func() { <-s.inbound }()
	if !s.n.track() {
		_ = st.Reset()
		return
	}
	defer s.n.wg.Done()
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(kvStreamTimeout))
	r, w := bufio.NewReader(st), bufio.NewWriter(st)
	hb, _, err := readFrame(r, maxKVRequest)
	if err != nil {
		_ = st.Reset()
		return
	}
	req, err := parseKVRequest(hb)
	if err != nil {
		_ = st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	switch req.Op {
	case kvOpPut:
		err = s.servePut(from, r)
		s.reply(w, kvReply{OK: err == nil, Error: errString(err)})
	case kvOpChunk:
		c, ok := s.store.chunk(req.Root, req.Index)
		if !ok {
			s.reply(w, kvReply{NotFound: true})
			return
		}
		b, err := c.MarshalBinary()
		if err != nil {
			s.reply(w, kvReply{Error: err.Error()})
			return
		}
		if s.reply(w, kvReply{OK: true}) == nil {
			if _, err := writeFrame(w, b); err == nil {
				s.stats.chunksServed.Add(1)
			}
		}
	case kvOpManifest:
		m, ok := s.store.manifestByName(req.Model, req.PrefixHash)
		if !ok {
			s.reply(w, kvReply{NotFound: true})
			return
		}
		mb, err := kvprefix.EncodeManifest(m)
		if err != nil {
			s.reply(w, kvReply{Error: err.Error()})
			return
		}
		if s.reply(w, kvReply{OK: true, Holders: s.holders(m)}) == nil {
			if _, err := writeFrame(w, mb); err == nil {
				s.stats.manifestsServed.Add(1)
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *KVPrefixStore) reply(w *bufio.Writer, rep kvReply) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = writeFrame(w, b)
	return err
}

// servePut reads, admits and stores a chunk put by from.
func (s *KVPrefixStore) servePut(from peer.ID, r *bufio.Reader) error {
	mb, msize, err := readFrame(r, kvprefix.MaxManifestBytes)
	if err != nil {
		return err
	}
	cb, csize, err := readFrame(r, kvprefix.MaxChunkBytes)
	if err != nil {
		return err
	}
	src := admission.Source{Path: admission.PathKV, Peer: from}
	ad := s.n.Admission()
	m, err := kvprefix.DecodeManifest(mb)
	if err != nil {
		s.stats.rejected.Add(1)
		return ad.Reject(src, admission.KindKVChunk, admission.ReasonMalformed, err)
	}
	c, err := kvprefix.DecodeChunk(cb, m.ShardSize)
	if err != nil {
		s.stats.rejected.Add(1)
		return ad.Reject(src, admission.KindKVChunk, admission.ReasonMalformed, err)
	}
	if err := ad.KVChunk(src, m, c, msize+csize); err != nil {
		s.stats.rejected.Add(1)
		return err
	}
	added, first := s.store.put(m, c)
	if added {
		s.stats.chunksStored.Add(1)
	}
	if first {
		s.provide(m)
	}
	return nil
}

// provide announces in the background, once, that this node holds chunks
// of m's set.
func (s *KVPrefixStore) provide(m kvprefix.Manifest) {
	key := kvprefix.Key(m.Model, m.PrefixHash)
	s.mu.Lock()
	if s.provided[key] {
		s.mu.Unlock()
		return
	}
	if len(s.provided) >= maxKVProvided {
		s.provided = map[string]bool{}
	}
	s.provided[key] = true
	s.mu.Unlock()
	s.goOwned("kv-provide", func() {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		defer cancel()
		if err := s.n.Provide(ctx, key); err != nil && !errors.Is(err, ErrNoDHT) {
			s.o.log.Debug("kv-cache: provide failed", "key", key, "err", err)
		}
	})
}

// holders are the hints of a manifest reply: this node's chunks and the
// holders its tracker knows.
func (s *KVPrefixStore) holders(m kvprefix.Manifest) []KVHolder {
	by := map[peer.ID][]int{}
	if have := s.store.have(m.Root); len(have) > 0 {
		by[s.n.ID()] = have
	}
	for i := range m.N {
		for _, p := range s.tracker.Holders(m.Root, i) {
			if p != s.n.ID() {
				by[p] = append(by[p], i)
			}
		}
	}
	ids := make([]peer.ID, 0, len(by))
	for p := range by {
		ids = append(ids, p)
	}
	slices.Sort(ids)
	out := make([]KVHolder, 0, min(len(ids), maxKVHolders))
	for _, p := range ids[:min(len(ids), maxKVHolders)] {
		h := KVHolder{Peer: p, Indices: by[p]}
		addrs := s.n.host.Peerstore().Addrs(p)
		if p == s.n.ID() {
			addrs = s.n.host.Addrs()
		}
		for _, a := range addrs[:min(len(addrs), maxKVAddrs)] {
			h.Addrs = append(h.Addrs, a.String())
		}
		out = append(out, h)
	}
	return out
}

// ---- client side ----

// Publish erasure-codes state, signs the manifest, places the chunks on the
// storage peers (this node among them only when they are too few), records
// the placement in the tracker and announces the set in the DHT. It fails
// when fewer than k chunks could be placed; the chunks that could not be
// placed are left for Repair.
func (s *KVPrefixStore) Publish(ctx context.Context, model, prefixHash string, state []byte) (kvprefix.Manifest, error) {
	m, chunks, err := kvprefix.EncodeChunks(model, prefixHash, state, s.o.k, s.o.n)
	if err != nil {
		return m, err
	}
	m.CreatedAt = s.o.now().UnixMilli()
	if err := kvprefix.Sign(&m, s.n.PrivKey()); err != nil {
		return m, err
	}
	cands := s.peers()
	placement := kvprefix.Place(m, cands, s.n.ID(), s.o.replicas)
	s.tracker.Track(m, nil)
	s.store.pin(m)
	jobs := make(map[int][]peer.ID, len(placement))
	for i, ps := range placement {
		jobs[i] = ps
	}
	pool := append(slices.Clone(cands), s.n.ID())
	placed := s.place(ctx, m, chunks, jobs, pool)
	if live := s.tracker.Live(m.Root); live < m.K {
		return m, fmt.Errorf("p2p: kv publish %s/%s: only %d of %d chunks placed (%d needed)", model, prefixHash, live, m.N, m.K)
	}
	s.stats.published.Add(1)
	s.addState(kvName(model, prefixHash), state)
	key := kvprefix.Key(model, prefixHash)
	s.mu.Lock()
	s.provided[key] = true
	s.mu.Unlock()
	if err := s.n.Provide(ctx, key); err != nil && !errors.Is(err, ErrNoDHT) {
		return m, fmt.Errorf("p2p: kv publish %s/%s: %d chunks placed but not announced: %w", model, prefixHash, placed, err)
	}
	return m, nil
}

// place puts each chunk of jobs on its peers (this node: its own store),
// falling back to the next peers of pool in the chunk's rendezvous order
// when one fails; it records holders in the tracker and returns the
// number of chunks placed.
func (s *KVPrefixStore) place(ctx context.Context, m kvprefix.Manifest, chunks []kvprefix.Chunk, jobs map[int][]peer.ID, pool []peer.ID) int {
	byIndex := map[int]kvprefix.Chunk{}
	for _, c := range chunks {
		byIndex[c.Index] = c
	}
	type job struct {
		i int
		p peer.ID
	}
	var list []job
	for i, ps := range jobs {
		for _, p := range ps {
			list = append(list, job{i, p})
		}
	}
	slices.SortFunc(list, func(a, b job) int { return a.i - b.i })
	var (
		mu     sync.Mutex
		failed = map[peer.ID]bool{}
		placed = map[int]bool{}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, s.o.parallel)
	)
	put := func(i int, p peer.ID) error {
		if p == s.n.ID() {
			s.store.put(m, byIndex[i])
			return nil
		}
		return s.n.PutKVChunk(ctx, p, m, byIndex[i])
	}
	for _, j := range list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := j.p
			for attempt := 0; attempt < 3 && p != ""; attempt++ {
				err := put(j.i, p)
				if err == nil {
					s.tracker.AddHolder(m.Root, j.i, p)
					mu.Lock()
					placed[j.i] = true
					mu.Unlock()
					return
				}
				s.o.log.Debug("kv-cache: put failed", "peer", p, "chunk", j.i, "err", err)
				mu.Lock()
				failed[p] = true
				next := peer.ID("")
				for _, q := range kvprefix.Rank(m.Root, j.i, pool) {
					if !failed[q] && !slices.Contains(s.tracker.Holders(m.Root, j.i), q) && !slices.Contains(jobs[j.i], q) {
						next = q
						break
					}
				}
				mu.Unlock()
				if ctx.Err() != nil {
					return
				}
				p = next
			}
		}()
	}
	wg.Wait()
	return len(placed)
}

// Fetch returns the state of (model, prefixHash): from the local state
// cache, else from the set's holders found in the DHT (each provider is
// asked for the manifest and the holders it knows; the manifest passes
// admission), fetching chunks concurrently until k verify, then decoding.
func (s *KVPrefixStore) Fetch(ctx context.Context, model, prefixHash string) ([]byte, error) {
	if !kvprefix.ValidName(model) || !kvprefix.ValidName(prefixHash) {
		return nil, fmt.Errorf("p2p: kv fetch: %q/%q is not a valid model and prefix hash", model, prefixHash)
	}
	name := kvName(model, prefixHash)
	if st, ok := s.state(name); ok {
		return st, nil
	}
	st, err := s.fetch(ctx, model, prefixHash)
	if err != nil {
		s.stats.fetchFailures.Add(1)
		return nil, fmt.Errorf("p2p: kv fetch %s/%s: %w", model, prefixHash, err)
	}
	s.stats.fetched.Add(1)
	s.addState(name, st)
	return st, nil
}

func (s *KVPrefixStore) fetch(ctx context.Context, model, prefixHash string) ([]byte, error) {
	// A set this node holds enough of decodes without the network.
	if m, ok := s.store.manifestByName(model, prefixHash); ok {
		if local := s.store.local(m.Root); len(local) >= m.K {
			if st, err := kvprefix.Decode(m, local); err == nil {
				return st, nil
			}
		}
	}
	if s.n.dht == nil {
		return nil, ErrNoDHT
	}
	// Providers stream in from the DHT; each is asked for the manifest and
	// its holder hints as it arrives, and chunks are fetched as soon as
	// one set's hints cover k chunks (the first answer usually covers all
	// of them), while later answers keep arriving for a second attempt.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		m       kvprefix.Manifest
		holders []KVHolder
		ok      bool
	}
	answers := make(chan answer)
	var wg sync.WaitGroup
	asked := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for p := range s.n.dht.FindProvidersAsync(pctx, ContentID(kvprefix.Key(model, prefixHash)), maxKVProviders+1) {
			if p.ID == "" || p.ID == s.n.ID() || asked >= maxKVProviders {
				continue
			}
			asked++
			if len(p.Addrs) > 0 {
				s.n.host.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.RecentlyConnectedAddrTTL)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, hs, err := s.n.GetKVManifest(pctx, p.ID, model, prefixHash)
				select {
				case answers <- answer{m, hs, err == nil}:
				case <-pctx.Done():
				}
			}()
		}
	}()
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	defer func() { cancel(); <-allDone }()

	type set struct {
		m       kvprefix.Manifest
		sources map[int][]peer.ID
	}
	sets := map[merkle.Hash]*set{}
	var best *set
	merge := func(a answer) {
		if !a.ok {
			return
		}
		st := sets[a.m.Root]
		if st == nil {
			st = &set{m: a.m, sources: map[int][]peer.ID{}}
			sets[a.m.Root] = st
		}
		for _, h := range a.holders {
			for _, i := range h.Indices {
				if !slices.Contains(st.sources[i], h.Peer) {
					st.sources[i] = append(st.sources[i], h.Peer)
				}
			}
		}
		// The best covered set, then the newest.
		if best == nil || len(st.sources) > len(best.sources) ||
			(len(st.sources) == len(best.sources) && st.m.CreatedAt > best.m.CreatedAt) {
			best = st
		}
	}
	var have []kvprefix.Chunk
	var lastErr error
	finished := false
	tried := map[merkle.Hash]int{} // sources count at the last attempt
	for {
		if !finished && (best == nil || len(best.sources) < best.m.K || tried[best.m.Root] >= len(best.sources)) {
			select {
			case a := <-answers:
				merge(a)
			case <-allDone:
				finished = true
				// Drain nothing: every sender has returned.
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		if best == nil || tried[best.m.Root] >= len(best.sources) {
			if lastErr != nil {
				return nil, lastErr
			}
			if asked == 0 {
				return nil, ErrKVNotFound
			}
			return nil, fmt.Errorf("%w: none of %d providers answered with a usable manifest", ErrKVNotFound, asked)
		}
		m := best.m
		sources := make(map[int][]peer.ID, len(best.sources))
		for i, ps := range best.sources {
			sources[i] = slices.Clone(ps)
		}
		tried[m.Root] = len(sources)
		s.tracker.Track(m, sources)
		if len(have) > 0 && have[0].Index >= 0 && kvprefix.VerifyChunk(m, have[0]) != nil {
			have = nil // chunks of another set
		}
		chunks, err := s.gather(ctx, m, sources, have)
		if err == nil {
			st, err := kvprefix.Decode(m, chunks)
			if err != nil {
				return nil, err
			}
			s.store.pin(m)
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		have, lastErr = chunks, err
	}
}

// gather collects m.K verified chunks: those in have first, then from
// sources (index -> holders; data chunks first, so that decoding rarely
// reconstructs), with up to parallel requests in flight; once k verify,
// the outstanding requests are cancelled. On failure it returns the
// verified chunks it has. A holder whose chunk is missing
// or does not verify is removed from the tracker's holders of that chunk.
func (s *KVPrefixStore) gather(ctx context.Context, m kvprefix.Manifest, sources map[int][]peer.ID, have []kvprefix.Chunk) ([]kvprefix.Chunk, error) {
	out := make([]kvprefix.Chunk, 0, m.K)
	got := map[int]bool{}
	for _, c := range have {
		if len(out) < m.K && !got[c.Index] && kvprefix.VerifyChunk(m, c) == nil {
			out = append(out, c)
			got[c.Index] = true
		}
	}
	if len(out) >= m.K {
		return out, nil
	}
	var indices []int
	for i := range sources {
		if !got[i] && i >= 0 && i < m.N {
			indices = append(indices, i)
		}
	}
	slices.Sort(indices)
	if len(out)+len(indices) < m.K {
		return out, fmt.Errorf("%w: %d chunks known, %d needed", kvprefix.ErrTooFewChunks, len(out)+len(indices), m.K)
	}
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	results := make(chan kvprefix.Chunk)
	var wg sync.WaitGroup
	for range min(s.o.parallel, len(indices)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c, ok := s.fetchChunk(gctx, m, i, sources[i])
				if !ok {
					continue
				}
				select {
				case results <- c:
				case <-gctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, i := range indices {
			select {
			case jobs <- i:
			case <-gctx.Done():
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for len(out) < m.K {
		select {
		case c := <-results:
			out = append(out, c)
		case <-done:
			// Every worker finished: a worker's send completes before it
			// does, so no result is pending.
			return out, fmt.Errorf("%w: %d of %d verified", kvprefix.ErrTooFewChunks, len(out), m.K)
		case <-ctx.Done():
			cancel()
			<-done
			return nil, ctx.Err()
		}
	}
	cancel()
	<-done
	return out, nil
}

// fetchChunk gets chunk i of m from the first of holders that returns one
// that passes admission.
func (s *KVPrefixStore) fetchChunk(ctx context.Context, m kvprefix.Manifest, i int, holders []peer.ID) (kvprefix.Chunk, bool) {
	for _, p := range holders {
		if ctx.Err() != nil {
			return kvprefix.Chunk{}, false
		}
		if p == s.n.ID() {
			if c, ok := s.store.chunk(m.Root, i); ok && kvprefix.VerifyChunk(m, c) == nil {
				return c, true
			}
			continue
		}
		c, size, err := s.n.GetKVChunk(ctx, p, m.Root, i)
		if err == nil {
			err = s.n.Admission().KVChunk(admission.Source{Path: admission.PathKV, Peer: p}, m, c, size)
			if err != nil {
				s.stats.rejected.Add(1)
			}
		}
		if err == nil {
			return c, true
		}
		if ctx.Err() == nil {
			s.tracker.RemoveHolder(m.Root, i, p)
		}
	}
	return kvprefix.Chunk{}, false
}

// Probe reads a random plan of chunks (kvprefix.ProbePlan) of a tracked
// set from their holders, exactly as a fetch would. A holder that does not
// return a verified chunk fails: its reputation drops and it is removed
// from the set's providers. ok means every probed chunk was returned by a
// holder (with 7 probes of RS(32, 64), more than 99% confidence that the
// set is recoverable); an untracked set is not ok.
func (s *KVPrefixStore) Probe(ctx context.Context, root merkle.Hash) (ok bool, failed []peer.ID) {
	m, tracked := s.tracker.Manifest(root)
	if !tracked {
		return false, nil
	}
	s.mu.Lock()
	plan := kvprefix.ProbePlan(s.rng, m.N, s.o.probes)
	s.mu.Unlock()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	ok = true
	for _, i := range plan {
		wg.Add(1)
		go func() {
			defer wg.Done()
			good := false
			for _, p := range s.tracker.Holders(root, i) {
				err := s.probeOne(ctx, m, p, i)
				s.tracker.ProbeResult(root, p, i, err == nil)
				mu.Lock()
				if err == nil {
					s.stats.probesOK.Add(1)
					good = true
				} else {
					s.stats.probesFailed.Add(1)
					if !slices.Contains(failed, p) {
						failed = append(failed, p)
					}
				}
				mu.Unlock()
			}
			if !good {
				mu.Lock()
				ok = false
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(failed)
	return ok, failed
}

func (s *KVPrefixStore) probeOne(ctx context.Context, m kvprefix.Manifest, p peer.ID, i int) error {
	if p == s.n.ID() {
		c, ok := s.store.chunk(m.Root, i)
		if !ok {
			return ErrKVNotFound
		}
		return kvprefix.VerifyChunk(m, c)
	}
	c, size, err := s.n.ProbeKV(ctx, p, m.Root, i)
	if err != nil {
		return err
	}
	if err := s.n.Admission().KVChunk(admission.Source{Path: admission.PathKV, Peer: p}, m, c, size); err != nil {
		s.stats.rejected.Add(1)
		return err
	}
	return nil
}

// Repair regenerates the chunks of a tracked set that have no holder left
// (after failed probes or failed fetches) from k verified chunks and places
// them on storage peers other than the removed providers. It does nothing
// when no chunk is missing.
func (s *KVPrefixStore) Repair(ctx context.Context, root merkle.Hash) error {
	m, tracked := s.tracker.Manifest(root)
	if !tracked {
		return fmt.Errorf("p2p: kv repair: set %s is not tracked", root.Short())
	}
	missing := s.tracker.Missing(root)
	if len(missing) == 0 {
		return nil
	}
	sources := map[int][]peer.ID{}
	for i := range m.N {
		if hs := s.tracker.Holders(root, i); len(hs) > 0 {
			sources[i] = hs
		}
	}
	chunks, err := s.gather(ctx, m, sources, s.store.local(root))
	if err != nil {
		return fmt.Errorf("p2p: kv repair %s: %w", root.Short(), err)
	}
	regen, err := kvprefix.Repair(m, chunks, missing)
	if err != nil {
		return fmt.Errorf("p2p: kv repair %s: %w", root.Short(), err)
	}
	cands := s.peers()
	plan := s.tracker.RepairPlan(root, cands, s.n.ID(), s.o.replicas)
	var pool []peer.ID
	for _, p := range append(slices.Clone(cands), s.n.ID()) {
		if !slices.Contains(s.tracker.Removed(root), p) {
			pool = append(pool, p)
		}
	}
	placed := s.place(ctx, m, regen, plan, pool)
	s.stats.chunksRepaired.Add(uint64(placed))
	s.stats.repairs.Add(1)
	if left := s.tracker.Missing(root); len(left) > 0 {
		return fmt.Errorf("p2p: kv repair %s: %d of %d missing chunks could not be placed", root.Short(), len(left), len(missing))
	}
	return nil
}

// ---- PrefixStore ----

// Get returns the state of (modelHash, prefixHash) from the local state
// cache, else fetches it within the Get timeout; a miss is remembered for
// the miss TTL so a prompt's lookups do not wait on it again. Gets with
// the same context share one Get timeout: the model server looks a prompt
// up at every prefix block boundary with the request's context, and a cold
// prompt must cost it one timeout, not one per boundary. The returned
// bytes are shared: the caller must not modify them.
func (s *KVPrefixStore) Get(ctx context.Context, modelHash, prefixHash string) ([]byte, bool) {
	if !kvprefix.ValidName(modelHash) || !kvprefix.ValidName(prefixHash) {
		return nil, false
	}
	name := kvName(modelHash, prefixHash)
	if st, ok := s.state(name); ok {
		s.stats.getHits.Add(1)
		return st, true
	}
	now := time.Now()
	s.mu.Lock()
	if until, ok := s.misses[name]; ok && now.Before(until) {
		s.mu.Unlock()
		s.stats.getMisses.Add(1)
		return nil, false
	}
	deadline, ok := s.budgets[ctx]
	if !ok {
		deadline = now.Add(s.o.getTimeout)
		if len(s.budgets) >= maxKVBudgets {
			for c, d := range s.budgets {
				if !now.Before(d) {
					delete(s.budgets, c)
				}
			}
			if len(s.budgets) >= maxKVBudgets {
				s.budgets = map[context.Context]time.Time{}
			}
		}
		s.budgets[ctx] = deadline
		context.AfterFunc(ctx, func() {
			s.mu.Lock()
			delete(s.budgets, ctx)
			s.mu.Unlock()
		})
	}
	s.mu.Unlock()
	if !now.Before(deadline) {
		s.stats.getMisses.Add(1)
		return nil, false
	}
	fctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	st, err := s.Fetch(fctx, modelHash, prefixHash)
	if err != nil {
		s.stats.getMisses.Add(1)
		// Remember answers (not found, unusable), not timeouts: a set that
		// was slow to come is tried again by the next request.
		if s.o.missTTL > 0 && fctx.Err() == nil {
			s.mu.Lock()
			if len(s.misses) >= maxKVMisses {
				s.misses = map[string]time.Time{}
			}
			s.misses[name] = now.Add(s.o.missTTL)
			s.mu.Unlock()
		}
		return nil, false
	}
	return st, true
}

// Put keeps state (which the store now owns: the caller must not modify
// it) in the local state cache at once and publishes it in the background,
// bounded by the put timeout; when too many publications are in flight it
// is kept locally only. Errors are logged.
func (s *KVPrefixStore) Put(_ context.Context, modelHash, prefixHash string, state []byte) {
	if !kvprefix.ValidName(modelHash) || !kvprefix.ValidName(prefixHash) || len(state) == 0 || len(state) > kvprefix.MaxStateBytes {
		return
	}
	name := kvName(modelHash, prefixHash)
	s.mu.Lock()
	if s.states.has(name) || s.inflight[name] {
		s.mu.Unlock()
		return
	}
	s.states.add(name, state, int64(len(state)))
	delete(s.misses, name)
	s.mu.Unlock()
	select {
	case s.bg <- struct{}{}:
	default:
		s.stats.putsDropped.Add(1)
		return
	}
	s.mu.Lock()
	s.inflight[name] = true
	s.mu.Unlock()
	started := s.goOwned("kv-put", func() {
		defer func() {
			s.mu.Lock()
			delete(s.inflight, name)
			s.mu.Unlock()
			<-s.bg
		}()
		ctx, cancel := context.WithTimeout(s.ctx, s.o.putTimeout)
		defer cancel()
		if _, err := s.Publish(ctx, modelHash, prefixHash, state); err != nil {
			s.o.log.Warn("kv-cache: publishing a prefix state failed", "model", modelHash, "prefix", prefixHash, "err", err)
		}
	})
	if !started {
		s.mu.Lock()
		delete(s.inflight, name)
		s.mu.Unlock()
		<-s.bg
	}
}

func (s *KVPrefixStore) state(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states.get(name)
}

func (s *KVPrefixStore) addState(name string, st []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states.add(name, st, int64(len(st)))
	delete(s.misses, name)
}
