package p2p

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/capability"
)

// The inference plane across peers. A node that serves models signs a
// capability record (package capability) listing them, keeps it for
// InferenceProtocol's "caps" op, and provides "model/<id>" in the DHT for
// each. A node asked for a model it does not serve finds providers through
// the DHT (and through the verified records of peers it already knows),
// fetches and admits their records, and forwards the request, one request
// per stream:
//
//	requester → provider: one frame, the JSON of an InferenceRequest (at
//	                      most MaxInferenceRequest bytes); the requester
//	                      keeps its side open until it has read the answer
//	                      (resetting the stream cancels the request)
//	provider → requester: one frame, the JSON header {"status","contentType"},
//	                      then body frames (one per SSE event payload, or
//	                      the whole JSON body), then EOF
//
// Frames are uvarint-length-prefixed, as on the other stream protocols.
// A provider failure after its header resets the stream, so a truncated
// answer is never mistaken for a whole one.
const (
	InferenceProtocol = protocol.ID("/hyperspace/inference/1.0.0")
	// MaxInferenceBody bounds the OpenAI body a request carries (the HTTP
	// layer's own limit).
	MaxInferenceBody = 1 << 20
	// MaxInferenceRequest bounds a request frame: a body and its envelope.
	MaxInferenceRequest = MaxInferenceBody + 64<<10
	// MaxInferenceFrame bounds one response body frame.
	MaxInferenceFrame = 4 << 20
	// MaxInferenceResponse bounds the body frames of one response.
	MaxInferenceResponse = 64 << 20
	// InferenceServeTimeout is how long a provider works on one request
	// (and a requester waits for one answer).
	InferenceServeTimeout = 5 * time.Minute
	// CapabilityTTL is how long a fetched, admitted capability record is
	// believed without fetching it again.
	CapabilityTTL = 5 * time.Minute
	// DefaultHedgeProviders is HedgeOptions.MaxProviders' default.
	DefaultHedgeProviders = 3

	maxInferenceHeader    = 4 << 10
	maxInferenceFrames    = 1 << 20
	maxInferencePerPeer   = 8
	maxInferenceAll       = 256
	maxInferenceModelName = capability.MaxNameBytes
	maxCapRecords         = 4096 // cached records of other nodes
	maxScoredPeers        = 4096
	maxSampledModels      = 1024
	latencySamples        = 64
	capsFetchParallel     = 8
	capsFetchTimeout      = 10 * time.Second
	findProvidersTimeout  = 3 * time.Second // an unknown model answers 404 within this
	provideRetryInterval  = 2 * time.Second
	provideTimeout        = 30 * time.Second
	defaultHedgeAfter     = 300 * time.Millisecond
	minHedgeAfter         = 50 * time.Millisecond
	maxHedgeAfter         = 2 * time.Second
	unknownLatency        = defaultHedgeAfter // the cost of a provider not yet measured
	failurePenalty        = time.Second       // the cost of one recent failure
	maxFailures           = 16
	latencyAlpha          = 0.3
	modelKeyPrefix        = "model/"
)

// Ops of an InferenceRequest (the chat, completions and embeddings ops are
// package inference's).
const (
	InferOpCaps        = "caps" // the provider's signed capability record
	InferOpChat        = "chat"
	InferOpCompletions = "completions"
	InferOpEmbeddings  = "embeddings"
)

// ErrNoProvider is returned by InferHedged when no reachable peer serves
// the model.
var ErrNoProvider = errors.New("p2p: no peer serves the model")

// errBadInference marks a request or header that does not decode.
var errBadInference = errors.New("p2p: malformed inference message")

// InferenceRequest is one forwarded OpenAI request.
type InferenceRequest struct {
	Op    string          `json:"op"`              // one of the InferOp* ops
	Model string          `json:"model,omitempty"` // the model asked for (empty for caps)
	Body  json.RawMessage `json:"body,omitempty"`  // the OpenAI request body, as received
	// Stream asks for an SSE answer (one frame per event payload).
	Stream bool `json:"stream,omitempty"`
}

// check validates the request's shape.
func (r InferenceRequest) check() error {
	switch r.Op {
	case InferOpCaps:
	case InferOpChat, InferOpCompletions, InferOpEmbeddings:
		if r.Model == "" {
			return fmt.Errorf("%w: op %s names no model", errBadInference, r.Op)
		}
	default:
		return fmt.Errorf("%w: op %.32q (want caps, chat, completions or embeddings)", errBadInference, r.Op)
	}
	if len(r.Model) > maxInferenceModelName || strings.IndexByte(r.Model, 0) >= 0 || !utf8.ValidString(r.Model) {
		return fmt.Errorf("%w: model name (at most %d bytes of UTF-8 without NUL)", errBadInference, maxInferenceModelName)
	}
	return nil
}

// DecodeInferenceRequest decodes and checks a request frame: one JSON
// object of at most MaxInferenceRequest bytes, no unknown fields, a known
// op, and a model name of at most 256 bytes of UTF-8 without NUL (required
// for every op but caps).
func DecodeInferenceRequest(b []byte) (InferenceRequest, error) {
	var r InferenceRequest
	if len(b) > MaxInferenceRequest {
		return r, fmt.Errorf("%w: request is %d bytes, limit %d", errBadInference, len(b), MaxInferenceRequest)
	}
	if err := decodeStrict(b, &r); err != nil {
		return InferenceRequest{}, fmt.Errorf("%w: request: %v", errBadInference, err)
	}
	if err := r.check(); err != nil {
		return InferenceRequest{}, err
	}
	return r, nil
}

// encodeInferenceRequest encodes req without escaping HTML characters
// (json.Marshal would turn each '<' of the body into six bytes).
func encodeInferenceRequest(req InferenceRequest) ([]byte, error) {
	if len(req.Body) > MaxInferenceBody {
		return nil, fmt.Errorf("p2p: inference request body is %d bytes, limit %d", len(req.Body), MaxInferenceBody)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(req); err != nil {
		return nil, fmt.Errorf("p2p: encoding inference request: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// InferenceHeader is the first frame of an answer.
type InferenceHeader struct {
	Status      int    `json:"status"`      // HTTP status, 100-599
	ContentType string `json:"contentType"` // e.g. application/json, text/event-stream
}

// DecodeInferenceHeader decodes and checks an answer's header frame.
func DecodeInferenceHeader(b []byte) (InferenceHeader, error) {
	var h InferenceHeader
	if len(b) > maxInferenceHeader {
		return h, fmt.Errorf("%w: header is %d bytes", errBadInference, len(b))
	}
	if err := decodeStrict(b, &h); err != nil {
		return InferenceHeader{}, fmt.Errorf("%w: header: %v", errBadInference, err)
	}
	if err := h.check(); err != nil {
		return InferenceHeader{}, err
	}
	return h, nil
}

func (h InferenceHeader) check() error {
	if h.Status < 100 || h.Status > 599 {
		return fmt.Errorf("%w: status %d", errBadInference, h.Status)
	}
	if len(h.ContentType) > 256 || strings.ContainsFunc(h.ContentType, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: content type", errBadInference)
	}
	return nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// InferenceWriter receives a provider's answer: one header, then body
// frames. package inference's FrameWriter has the same methods.
type InferenceWriter interface {
	WriteHeader(status int, contentType string) error
	WriteFrame(b []byte) error
}

// InferenceHandler answers one forwarded request from peer from. ctx ends
// when the requester goes away or InferenceServeTimeout passes. An error
// returned before a header was written is answered as a 500; after it,
// the stream is reset.
type InferenceHandler func(ctx context.Context, from peer.ID, req InferenceRequest, w InferenceWriter) error

// Provider is a peer that serves a model, as FindModelProviders ranks it.
type Provider struct {
	ID    peer.ID
	Model capability.ModelCap // the model's entry in the peer's admitted record
	// Latency is the EWMA of the time to the answer's header (0: never
	// measured).
	Latency time.Duration
	// Failures counts recent failed requests (halved by each success).
	Failures int
}

// HedgeOptions tune InferHedged.
type HedgeOptions struct {
	// HedgeAfter is how long to wait for a provider's header before sending
	// the request to the next one too. Default: the p90 of the header
	// latencies observed for the model, clamped to 50ms..2s; 300ms before
	// any observation.
	HedgeAfter time.Duration
	// MaxProviders is the most providers one request is sent to (default
	// DefaultHedgeProviders).
	MaxProviders int
}

// InferenceStats count the inference plane's traffic of one node.
type InferenceStats struct {
	Forwarded     uint64 // requests a provider answered (InferHedged)
	HedgesFired   uint64 // second (or later) requests sent because the first was slow
	HedgeWins     uint64 // answers that came from a hedged request
	Failures      uint64 // provider attempts that failed or answered 5xx
	Served        uint64 // requests this node answered for peers
	Refused       uint64 // inbound requests refused: too many from the peer or in all
	CachedRecords int    // admitted capability records of other nodes held
}

// cachedCaps is an admitted record of another node.
type cachedCaps struct {
	rec     capability.Signed
	expires time.Time
}

type peerScore struct {
	ewma     time.Duration
	failures int
}

// inferState is a node's inference-plane state. It lives beside the Node
// (in inferStates) so the protocol stays in this file; it is dropped when
// the node closes.
type inferState struct {
	n    *Node
	kick chan struct{}

	mu         sync.Mutex
	handler    InferenceHandler
	registered bool
	own        []byte // our signed record, encoded
	seq        uint64
	pending    map[string]bool // provide keys whose announcement failed
	records    map[peer.ID]cachedCaps
	capsFailed map[peer.ID]time.Time // peers whose record a background refresh could not admit
	scores     map[peer.ID]*peerScore
	samples    map[string][]time.Duration // recent header latencies by model (a ring)
	sampleAt   map[string]int
	serving    map[peer.ID]int
	servingAll int
	stats      InferenceStats
}

var inferStates sync.Map // *Node → *inferState

// inference returns n's inference state, made on first use.
func (n *Node) inference() *inferState {
	if v, ok := inferStates.Load(n); ok {
		return v.(*inferState)
	}
	st := &inferState{n: n, kick: make(chan struct{}, 1), pending: map[string]bool{},
		records: map[peer.ID]cachedCaps{}, capsFailed: map[peer.ID]time.Time{}, scores: map[peer.ID]*peerScore{},
		samples: map[string][]time.Duration{}, sampleAt: map[string]int{}, serving: map[peer.ID]int{}}
	v, loaded := inferStates.LoadOrStore(n, st)
	if loaded {
		return v.(*inferState)
	}
	if !n.goOwned("inference", st.run) {
		inferStates.Delete(n)
	}
	return st
}

// run retries failed provider announcements (when a peer connects, and
// every provideRetryInterval) and, once the node closes, removes the
// protocol and forgets the state.
func (st *inferState) run() {
	n := st.n
	nb := &network.NotifyBundle{ConnectedF: func(network.Network, network.Conn) {
		select {
		case st.kick <- struct{}{}:
		default:
		}
	}}
	n.host.Network().Notify(nb)
	defer func() {
		n.host.Network().StopNotify(nb)
		n.host.RemoveStreamHandler(InferenceProtocol)
		inferStates.Delete(n)
	}()
	t := time.NewTicker(provideRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-st.kick:
		case <-t.C:
		}
		st.mu.Lock()
		keys := slices.Sorted(maps.Keys(st.pending))
		st.mu.Unlock()
		for _, key := range keys {
			ctx, cancel := context.WithTimeout(n.ctx, provideTimeout)
			err := n.Provide(ctx, key)
			cancel()
			if err != nil {
				n.log.Debug("provide retry failed", "key", key, "err", err)
				break // the routing table is likely still empty
			}
			st.mu.Lock()
			delete(st.pending, key)
			st.mu.Unlock()
			n.log.Debug("provided after retry", "key", key)
		}
		st.refreshKnown()
	}
}

// refreshKnown fetches the records of connected peers that speak
// InferenceProtocol and have no fresh record here (at most
// capsFetchParallel a round; a peer whose record failed waits
// CapabilityTTL), so KnownModels lists what neighbours serve before any
// request asked for it.
func (st *inferState) refreshKnown() {
	n := st.n
	now := n.cfg.Now()
	var todo []peer.ID
	for _, p := range n.host.Network().Peers() {
		if len(todo) >= capsFetchParallel {
			break
		}
		st.mu.Lock()
		c, fresh := st.records[p]
		failedAt, failed := st.capsFailed[p]
		st.mu.Unlock()
		if fresh && now.Before(c.expires) || failed && now.Before(failedAt.Add(CapabilityTTL)) {
			continue
		}
		if protos, err := n.host.Peerstore().SupportsProtocols(p, InferenceProtocol); err != nil || len(protos) == 0 {
			continue
		}
		todo = append(todo, p)
	}
	var wg sync.WaitGroup
	for _, p := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := st.caps(n.ctx, p); err != nil && n.ctx.Err() == nil {
				n.log.Debug("refreshing a capability record", "peer", p, "err", err)
				st.mu.Lock()
				if len(st.capsFailed) >= maxCapRecords {
					clear(st.capsFailed)
				}
				st.capsFailed[p] = now
				st.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// register installs the stream handler once.
func (st *inferState) register() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.registered || st.n.ctx.Err() != nil {
		return
	}
	st.registered = true
	st.n.host.SetStreamHandler(InferenceProtocol, st.handle)
}

// ServeInference makes this node answer forwarded requests with h (and
// caps requests with the record of AdvertiseModels).
func (n *Node) ServeInference(h InferenceHandler) {
	st := n.inference()
	st.mu.Lock()
	st.handler = h
	st.mu.Unlock()
	st.register()
}

// AdvertiseModels signs and keeps this node's capability record listing
// models (its Seq one above the last), answers caps requests with it, and
// provides "model/<id>" in the DHT for each model. A DHT announcement that
// fails (as it does before the node has DHT peers) is logged and retried
// when peers connect; only an invalid record is an error.
func (n *Node) AdvertiseModels(ctx context.Context, models []capability.ModelCap) error {
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	st := n.inference()
	st.mu.Lock()
	c := capability.Capabilities{Node: n.ID().String(), Models: slices.Clone(models),
		Timestamp: n.cfg.Now().UnixMilli(), Seq: st.seq + 1}
	s, err := capability.Sign(c, n.PrivKey())
	if err != nil {
		st.mu.Unlock()
		return fmt.Errorf("p2p: advertising models: %w", err)
	}
	b, err := s.Marshal()
	if err != nil {
		st.mu.Unlock()
		return fmt.Errorf("p2p: encoding capability record: %w", err)
	}
	st.seq, st.own = c.Seq, b
	st.mu.Unlock()
	st.register()
	if n.dht == nil {
		return nil
	}
	for _, m := range models {
		key := modelKeyPrefix + m.ID
		if err := n.Provide(ctx, key); err != nil {
			n.log.Info("model announcement failed; retrying when peers connect", "model", m.ID, "err", err)
			st.mu.Lock()
			st.pending[key] = true
			st.mu.Unlock()
			continue
		}
		st.mu.Lock()
		delete(st.pending, key)
		st.mu.Unlock()
	}
	select {
	case st.kick <- struct{}{}:
	default:
	}
	return nil
}

func (st *inferState) acquire(p peer.ID) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.serving[p] >= maxInferencePerPeer || st.servingAll >= maxInferenceAll {
		st.stats.Refused++
		return false
	}
	st.serving[p]++
	st.servingAll++
	return true
}

func (st *inferState) release(p peer.ID) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.serving[p]--; st.serving[p] <= 0 {
		delete(st.serving, p)
	}
	st.servingAll--
}

// streamWriter writes an answer onto a stream: a header frame once, then
// body frames, bounded as the requester bounds them.
type streamWriter struct {
	w      *bufio.Writer
	header bool
	total  int
	frames int
}

func (sw *streamWriter) WriteHeader(status int, contentType string) error {
	if sw.header {
		return errors.New("p2p: inference header written twice")
	}
	h := InferenceHeader{Status: status, ContentType: contentType}
	if err := h.check(); err != nil {
		return err
	}
	b, _ := json.Marshal(h)
	sw.header = true
	_, err := writeFrame(sw.w, b)
	return err
}

func (sw *streamWriter) WriteFrame(b []byte) error {
	switch {
	case !sw.header:
		return errors.New("p2p: inference frame before the header")
	case len(b) > MaxInferenceFrame:
		return fmt.Errorf("p2p: inference frame of %d bytes, limit %d", len(b), MaxInferenceFrame)
	case sw.total+len(b) > MaxInferenceResponse || sw.frames >= maxInferenceFrames:
		return fmt.Errorf("p2p: inference answer exceeds %d bytes or %d frames", MaxInferenceResponse, maxInferenceFrames)
	}
	sw.total += len(b)
	sw.frames++
	_, err := writeFrame(sw.w, b)
	return err
}

// writeError answers an error in OpenAI's shape.
func (sw *streamWriter) writeError(status int, typ, msg string) error {
	if err := sw.WriteHeader(status, "application/json"); err != nil {
		return err
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
	return sw.WriteFrame(b)
}

// handle serves one inbound inference stream.
func (st *inferState) handle(s network.Stream) {
	n := st.n
	if !n.track() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	from := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(InferenceServeTimeout))
	r, sw := bufio.NewReader(s), &streamWriter{w: bufio.NewWriter(s)}
	if !st.acquire(from) {
		_ = sw.writeError(503, "service_unavailable", "this node is serving too many requests; try another provider")
		_ = s.Close()
		return
	}
	defer st.release(from)

	ctx, cancel := context.WithTimeout(n.ctx, InferenceServeTimeout)
	defer cancel()
	stopReset := context.AfterFunc(ctx, func() { _ = s.Reset() })
	b, _, err := readFrame(r, MaxInferenceRequest)
	if err != nil {
		stopReset()
		_ = s.Reset()
		return
	}
	req, err := DecodeInferenceRequest(b)
	if err != nil {
		stopReset()
		_ = sw.writeError(400, "invalid_request_error", err.Error())
		_ = s.Close()
		return
	}
	// The requester keeps its side open until it has the answer: a reset
	// (or anything but a clean close) cancels the work.
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if _, err := r.ReadByte(); err != io.EOF {
			cancel()
		}
	}()
	defer func() {
		select {
		case <-watched:
		case <-time.After(time.Second):
			_ = s.Reset()
			<-watched
		}
	}()

	st.mu.Lock()
	h, own := st.handler, st.own
	st.mu.Unlock()
	switch {
	case req.Op == InferOpCaps && own == nil:
		err = sw.writeError(404, "not_found_error", "this node advertises no models")
	case req.Op == InferOpCaps:
		if err = sw.WriteHeader(200, "application/json"); err == nil {
			err = sw.WriteFrame(own)
		}
	case h == nil:
		err = sw.writeError(503, "service_unavailable", "this node serves no models to peers")
	default:
		err = h(ctx, from, req, sw)
		if err == nil && !sw.header {
			err = errors.New("the handler wrote no answer")
		}
		if err != nil && !sw.header {
			n.log.Debug("inference handler failed", "peer", from, "op", req.Op, "model", req.Model, "err", err)
			err = sw.writeError(500, "server_error", "the provider failed: "+err.Error())
		}
		if err == nil {
			st.mu.Lock()
			st.stats.Served++
			st.mu.Unlock()
		}
	}
	if !stopReset() || err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// inferStream is an open request whose header has been read.
type inferStream struct {
	s    network.Stream
	r    *bufio.Reader
	stop func() bool
	hdr  InferenceHeader
}

// openInference sends req to p and reads the answer's header. ctx's end
// resets the stream, until the stream is closed.
func (n *Node) openInference(ctx context.Context, p peer.ID, req InferenceRequest) (*inferStream, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	b, err := encodeInferenceRequest(req)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxInferenceRequest {
		return nil, fmt.Errorf("p2p: inference request is %d bytes, limit %d", len(b), MaxInferenceRequest)
	}
	s, err := n.host.NewStream(ctx, p, InferenceProtocol)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	_ = s.SetDeadline(time.Now().Add(InferenceServeTimeout + 10*time.Second))
	fail := func(err error) (*inferStream, error) {
		stop()
		_ = s.Reset()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if _, err := writeFrame(bufio.NewWriter(s), b); err != nil {
		return fail(err)
	}
	r := bufio.NewReader(s)
	hb, _, err := readFrame(r, maxInferenceHeader)
	if err != nil {
		return fail(fmt.Errorf("reading the answer's header: %w", err))
	}
	hdr, err := DecodeInferenceHeader(hb)
	if err != nil {
		return fail(err)
	}
	return &inferStream{s: s, r: r, stop: stop, hdr: hdr}, nil
}

// relay reads body frames to the end of the answer.
func (is *inferStream) relay(onFrame func([]byte) error) error {
	total := 0
	for range maxInferenceFrames {
		if _, err := is.r.Peek(1); err == io.EOF {
			return nil // a clean end between frames
		}
		b, k, err := readFrame(is.r, MaxInferenceFrame)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("p2p: reading the answer: %w", err)
		}
		if total += k; total > MaxInferenceResponse {
			return fmt.Errorf("p2p: answer exceeds %d bytes", MaxInferenceResponse)
		}
		if onFrame != nil {
			if err := onFrame(b); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("p2p: answer exceeds %d frames", maxInferenceFrames)
}

// finish closes the stream after a whole answer, or resets it.
func (is *inferStream) finish(ok bool) {
	is.stop()
	if ok {
		_ = is.s.Close()
	} else {
		_ = is.s.Reset()
	}
}

// Infer sends req to p and relays the answer: onHeader with its status and
// content type, then onFrame with each body frame, in order. A callback's
// error ends the request (the stream is reset) and is returned. The
// header's latency and any failure feed p's score.
func (n *Node) Infer(ctx context.Context, p peer.ID, req InferenceRequest, onHeader func(status int, contentType string) error, onFrame func([]byte) error) error {
	st := n.inference()
	start := time.Now()
	is, err := n.openInference(ctx, p, req)
	if err != nil {
		if ctx.Err() == nil {
			st.failed(p)
		}
		return fmt.Errorf("p2p: inference from %s: %w", p, err)
	}
	if is.hdr.Status >= 500 {
		st.failed(p)
	} else {
		st.observed(p, req.Model, time.Since(start))
	}
	err = relayTo(is, onHeader, onFrame)
	is.finish(err == nil)
	return err
}

func relayTo(is *inferStream, onHeader func(int, string) error, onFrame func([]byte) error) error {
	if onHeader != nil {
		if err := onHeader(is.hdr.Status, is.hdr.ContentType); err != nil {
			return err
		}
	}
	return is.relay(onFrame)
}

// observed records a header latency of p (for model).
func (st *inferState) observed(p peer.ID, model string, d time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sc := st.score(p)
	if sc.ewma == 0 {
		sc.ewma = d
	} else {
		sc.ewma = time.Duration(latencyAlpha*float64(d) + (1-latencyAlpha)*float64(sc.ewma))
	}
	sc.failures /= 2
	ring, ok := st.samples[model]
	if !ok && len(st.samples) >= maxSampledModels {
		for k := range st.samples { // crude but bounded
			delete(st.samples, k)
			delete(st.sampleAt, k)
			break
		}
	}
	if len(ring) < latencySamples {
		st.samples[model] = append(ring, d)
		return
	}
	i := st.sampleAt[model]
	ring[i] = d
	st.sampleAt[model] = (i + 1) % latencySamples
}

// failed records a failure of p.
func (st *inferState) failed(p peer.ID) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stats.Failures++
	if sc := st.score(p); sc.failures < maxFailures {
		sc.failures++
	}
}

// score returns p's score entry (st.mu held).
func (st *inferState) score(p peer.ID) *peerScore {
	sc := st.scores[p]
	if sc == nil {
		if len(st.scores) >= maxScoredPeers {
			for k := range st.scores {
				delete(st.scores, k)
				break
			}
		}
		sc = &peerScore{}
		st.scores[p] = sc
	}
	return sc
}

// hedgeAfter is the default hedging delay for model.
func (st *inferState) hedgeAfter(model string) time.Duration {
	st.mu.Lock()
	ring := slices.Clone(st.samples[model])
	st.mu.Unlock()
	if len(ring) == 0 {
		return defaultHedgeAfter
	}
	slices.Sort(ring)
	p90 := ring[(9*len(ring)+9)/10-1]
	return min(max(p90, minHedgeAfter), maxHedgeAfter)
}

// cost orders providers: the latency EWMA (unknownLatency when never
// measured) plus failurePenalty per recent failure.
func (p Provider) cost() time.Duration {
	l := p.Latency
	if l == 0 {
		l = unknownLatency
	}
	return l + time.Duration(p.Failures)*failurePenalty
}

// FindModelProviders returns up to max (default 8) peers that serve model,
// best first: the DHT's providers of "model/<model>" and the connected
// peers whose cached records list it, each kept only when its capability
// record (fetched over InferenceProtocol, or cached for CapabilityTTL)
// passes admission and lists the model. Providers are ordered by header
// latency EWMA and recent failures, then by peer id. It returns an empty
// list, not an error, when none is found.
func (n *Node) FindModelProviders(ctx context.Context, model string, limit int) ([]Provider, error) {
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if limit <= 0 {
		limit = 8
	}
	st := n.inference()
	seen := map[peer.ID]bool{n.ID(): true}
	var cands []peer.ID
	add := func(p peer.ID) {
		if !seen[p] {
			seen[p] = true
			cands = append(cands, p)
		}
	}
	now := n.cfg.Now()
	st.mu.Lock()
	for p, c := range st.records {
		if _, ok := c.rec.Lists(model); ok && now.Before(c.expires) && n.host.Network().Connectedness(p) == network.Connected {
			add(p)
		}
	}
	st.mu.Unlock()
	slices.Sort(cands)
	if n.dht != nil {
		fctx, cancel := context.WithTimeout(ctx, findProvidersTimeout)
		ais, err := n.FindProviders(fctx, modelKeyPrefix+model, 4*limit)
		cancel()
		if err != nil {
			n.log.Debug("finding model providers", "model", model, "err", err)
		}
		for _, ai := range ais {
			add(ai.ID)
		}
	}

	recs := make([]*capability.Signed, len(cands))
	sem := make(chan struct{}, capsFetchParallel)
	var wg sync.WaitGroup
	for i, p := range cands {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rec, err := st.caps(ctx, p)
			if err != nil {
				n.log.Debug("capability record", "peer", p, "err", err)
				return
			}
			recs[i] = rec
		}()
	}
	wg.Wait()

	var out []Provider
	st.mu.Lock()
	for i, p := range cands {
		if recs[i] == nil {
			continue
		}
		m, ok := recs[i].Lists(model)
		if !ok {
			continue
		}
		pr := Provider{ID: p, Model: m}
		if sc := st.scores[p]; sc != nil {
			pr.Latency, pr.Failures = sc.ewma, sc.failures
		}
		out = append(out, pr)
	}
	st.mu.Unlock()
	slices.SortFunc(out, func(a, b Provider) int {
		if c := cmp.Compare(a.cost(), b.cost()); c != 0 {
			return c
		}
		return strings.Compare(string(a.ID), string(b.ID))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, ctx.Err()
}

// caps returns p's admitted capability record: the cached one while fresh,
// else one fetched from p and admitted (path inference, from p).
func (st *inferState) caps(ctx context.Context, p peer.ID) (*capability.Signed, error) {
	n := st.n
	now := n.cfg.Now()
	st.mu.Lock()
	c, ok := st.records[p]
	st.mu.Unlock()
	if ok && now.Before(c.expires) {
		return &c.rec, nil
	}
	ctx, cancel := context.WithTimeout(ctx, capsFetchTimeout)
	defer cancel()
	var body []byte
	var status int
	is, err := n.openInference(ctx, p, InferenceRequest{Op: InferOpCaps})
	if err == nil {
		status = is.hdr.Status
		err = is.relay(func(b []byte) error {
			if body != nil {
				return errors.New("more than one frame")
			}
			body = b
			return nil
		})
		is.finish(err == nil)
	}
	if err == nil && status != 200 {
		err = fmt.Errorf("status %d", status)
	}
	if err != nil {
		st.forget(p)
		return nil, fmt.Errorf("p2p: capability record of %s: %w", p, err)
	}
	src := admission.Source{Path: admission.PathInference, Peer: p}
	if len(body) > capability.MaxRecordBytes {
		st.forget(p)
		return nil, n.cfg.Admission.Reject(src, admission.KindCapability, admission.ReasonOversized,
			fmt.Errorf("%d bytes, limit %d", len(body), capability.MaxRecordBytes))
	}
	s, err := capability.Decode(body)
	if err != nil {
		st.forget(p)
		return nil, n.cfg.Admission.Reject(src, admission.KindCapability, admission.ReasonMalformed, err)
	}
	if err := n.cfg.Admission.Capabilities(src, s, len(body)); err != nil {
		st.forget(p)
		return nil, err
	}
	st.mu.Lock()
	if _, ok := st.records[p]; !ok && len(st.records) >= maxCapRecords {
		for k, v := range st.records {
			if !now.Before(v.expires) || len(st.records) >= maxCapRecords {
				delete(st.records, k)
			}
			if len(st.records) < maxCapRecords {
				break
			}
		}
	}
	st.records[p] = cachedCaps{rec: s, expires: now.Add(CapabilityTTL)}
	delete(st.capsFailed, p)
	st.mu.Unlock()
	return &s, nil
}

func (st *inferState) forget(p peer.ID) {
	st.mu.Lock()
	delete(st.records, p)
	st.mu.Unlock()
}

// KnownModels lists the models of the admitted, unexpired capability
// records this node holds (other nodes' only: those FindModelProviders
// fetched, and those of connected peers that speak InferenceProtocol,
// refreshed in the background once this node uses the inference plane),
// one entry per model id (the record of the smallest peer id wins), sorted
// by id.
func (n *Node) KnownModels() []capability.ModelCap {
	st := n.inference()
	now := n.cfg.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	byID := map[string]capability.ModelCap{}
	for _, p := range slices.Sorted(maps.Keys(st.records)) {
		c := st.records[p]
		if !now.Before(c.expires) {
			continue
		}
		for _, m := range c.rec.Models {
			if _, ok := byID[m.ID]; !ok {
				byID[m.ID] = m
			}
		}
	}
	out := slices.Collect(maps.Values(byID))
	slices.SortFunc(out, func(a, b capability.ModelCap) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// ModelServers lists the peers whose admitted, unexpired capability
// records (of those this node holds) serve model with hash, sorted.
func (n *Node) ModelServers(model, hash string) []peer.ID {
	st := n.inference()
	now := n.cfg.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []peer.ID
	for _, p := range slices.Sorted(maps.Keys(st.records)) {
		c := st.records[p]
		if !now.Before(c.expires) {
			continue
		}
		for _, m := range c.rec.Models {
			if m.ID == model && m.Hash == hash {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// InferHedged sends req (its Model set to model) to the best provider of
// model; when no header has come within HedgeAfter it sends it to the next
// provider too, and so on up to MaxProviders. The first header (below 500)
// wins: only its frames reach onHeader and onFrame, and every other stream
// is reset. A provider that fails before its header, or answers 5xx, is
// skipped and the next one tried at once. It returns the peer that served,
// ErrNoProvider when no peer serves the model, or the last failure when
// every provider tried failed.
func (n *Node) InferHedged(ctx context.Context, model string, req InferenceRequest, opts HedgeOptions, onHeader func(status int, contentType string) error, onFrame func([]byte) error) (peer.ID, error) {
	req.Model = model
	if req.Op == InferOpCaps {
		return "", fmt.Errorf("%w: InferHedged forwards chat, completions or embeddings", errBadInference)
	}
	if err := req.check(); err != nil {
		return "", err
	}
	if opts.MaxProviders <= 0 {
		opts.MaxProviders = DefaultHedgeProviders
	}
	st := n.inference()
	provs, err := n.FindModelProviders(ctx, model, opts.MaxProviders)
	if err != nil {
		return "", err
	}
	if len(provs) == 0 {
		return "", fmt.Errorf("%w: %q", ErrNoProvider, model)
	}
	after := opts.HedgeAfter
	if after <= 0 {
		after = st.hedgeAfter(model)
	}

	type result struct {
		i    int
		is   *inferStream
		err  error
		took time.Duration
	}
	results := make(chan result, len(provs))
	hctx, cancelAll := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(n.ctx, cancelAll)
	defer stopOnClose()
	cancels := make([]context.CancelFunc, len(provs))
	hedged := make([]bool, len(provs))
	var wg sync.WaitGroup
	defer func() {
		// Every attempt but a winner's (whose stream is finished by now)
		// is cancelled, which resets its stream, so they end at once.
		// results has room for all of them: none blocks sending.
		cancelAll()
		wg.Wait()
	}()
	next, inflight := 0, 0
	launch := func(hedge bool) {
		i := next
		next++
		inflight++
		hedged[i] = hedge
		actx, cancel := context.WithCancel(hctx)
		cancels[i] = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			is, err := n.openInference(actx, provs[i].ID, req)
			results <- result{i: i, is: is, err: err, took: time.Since(start)}
		}()
	}
	launch(false)
	timer := time.NewTimer(after)
	defer timer.Stop()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-n.ctx.Done():
			return "", ErrClosed
		case <-timer.C:
			if next < len(provs) {
				st.count(func(s *InferenceStats) { s.HedgesFired++ })
				launch(true)
				timer.Reset(after)
			}
		case r := <-results:
			inflight--
			p := provs[r.i].ID
			if r.err == nil && r.is.hdr.Status < 500 {
				for j, c := range cancels {
					if j != r.i && c != nil {
						c() // the losers' streams are reset
					}
				}
				st.observed(p, model, r.took)
				st.count(func(s *InferenceStats) {
					s.Forwarded++
					if hedged[r.i] {
						s.HedgeWins++
					}
				})
				err := relayTo(r.is, onHeader, onFrame)
				r.is.finish(err == nil)
				return p, err
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			st.failed(p)
			if r.err != nil {
				lastErr = fmt.Errorf("%s: %w", p, r.err)
			} else {
				lastErr = fmt.Errorf("%s answered status %d", p, r.is.hdr.Status)
				r.is.finish(false)
			}
			n.log.Debug("provider failed; trying the next", "model", model, "err", lastErr)
			if next < len(provs) {
				launch(false)
				timer.Reset(after)
			} else if inflight == 0 {
				return "", fmt.Errorf("p2p: every provider of %q tried (%d) failed; last: %w", model, next, lastErr)
			}
		}
	}
}

func (st *inferState) count(f func(*InferenceStats)) {
	st.mu.Lock()
	f(&st.stats)
	st.mu.Unlock()
}

// InferenceStats returns the node's inference-plane counters.
func (n *Node) InferenceStats() InferenceStats {
	st := n.inference()
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.stats
	s.CachedRecords = len(st.records)
	return s
}
