package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
	"github.com/hyperspace-ai/hyperspace/internal/kvprefix"
)

// The L2 cache's stream protocol. One request per stream: a JSON header
// frame (kvRequest), for a put followed by the manifest frame (JSON) and
// the chunk frame (kvprefix.Chunk.MarshalBinary); one JSON reply frame
// (kvReply), after a successful chunk get the chunk frame, after a
// successful manifest get the manifest frame. Frames are uvarint-length
// prefixed and bounded; every stream has a deadline.
const (
	KVProtocol = protocol.ID("/hyperspace/kv-cache/1.0.0")

	kvOpPut      = "put"
	kvOpChunk    = "chunk"
	kvOpManifest = "manifest"

	maxKVRequest = 2 << 10
	maxKVReply   = 64 << 10
	// maxKVHolders bounds the holder hints of a manifest reply.
	maxKVHolders = 128
	maxKVAddrs   = 4
	// kvStreamTimeout bounds one inbound request.
	kvStreamTimeout = 30 * time.Second
	// kvOpTimeout bounds one outbound request whose context has no
	// earlier deadline.
	kvOpTimeout = 10 * time.Second
	// maxKVInbound bounds the inbound streams served at once.
	maxKVInbound = 64
)

// ErrKVNotFound: the peer does not hold what was asked for.
var ErrKVNotFound = errors.New("p2p: kv-cache: not found")

// kvRequest is a request's header frame.
type kvRequest struct {
	Op         string      `json:"op"`
	Root       merkle.Hash `json:"root,omitzero"`  // chunk
	Index      int         `json:"index,omitzero"` // chunk
	Model      string      `json:"model,omitempty"`
	PrefixHash string      `json:"prefixHash,omitempty"`
}

// parseKVRequest decodes and checks a header frame.
func parseKVRequest(b []byte) (kvRequest, error) {
	var r kvRequest
	if len(b) > maxKVRequest {
		return r, fmt.Errorf("%w: kv request of %d bytes", errMalformed, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || dec.More() {
		return kvRequest{}, fmt.Errorf("%w: kv request: %v", errMalformed, err)
	}
	switch r.Op {
	case kvOpPut:
	case kvOpChunk:
		if r.Root.IsZero() || r.Index < 0 || r.Index >= kvprefix.MaxN {
			return kvRequest{}, fmt.Errorf("%w: kv chunk request for %s/%d", errMalformed, r.Root.Short(), r.Index)
		}
	case kvOpManifest:
		if !kvprefix.ValidName(r.Model) || !kvprefix.ValidName(r.PrefixHash) {
			return kvRequest{}, fmt.Errorf("%w: kv manifest request names %q/%q", errMalformed, r.Model, r.PrefixHash)
		}
	default:
		return kvRequest{}, fmt.Errorf("%w: kv op %q", errMalformed, r.Op)
	}
	return r, nil
}

// kvReply is the reply's JSON frame.
type kvReply struct {
	OK       bool   `json:"ok"`
	NotFound bool   `json:"notFound,omitempty"`
	Error    string `json:"error,omitempty"`
	// Holders (manifest get) are the peers the responder knows to hold
	// chunks of the set, itself included: hints, every chunk is verified.
	Holders []KVHolder `json:"holders,omitempty"`
}

// KVHolder is a hint of which chunks of a set a peer holds.
type KVHolder struct {
	Peer    peer.ID  `json:"peer"`
	Addrs   []string `json:"addrs,omitempty"`
	Indices []int    `json:"indices"`
}

// parseKVReply decodes and bounds a reply frame; n is the set's chunk
// count when known (0: MaxN).
func parseKVReply(b []byte, n int) (kvReply, error) {
	var r kvReply
	if err := json.Unmarshal(b, &r); err != nil {
		return kvReply{}, fmt.Errorf("%w: kv reply: %v", errMalformed, err)
	}
	if n <= 0 {
		n = kvprefix.MaxN
	}
	if len(r.Holders) > maxKVHolders {
		return kvReply{}, fmt.Errorf("%w: kv reply with %d holders", errMalformed, len(r.Holders))
	}
	for _, h := range r.Holders {
		if h.Peer == "" || len(h.Addrs) > maxKVAddrs || len(h.Indices) > n {
			return kvReply{}, fmt.Errorf("%w: kv reply holder %s", errMalformed, h.Peer)
		}
		for _, i := range h.Indices {
			if i < 0 || i >= n {
				return kvReply{}, fmt.Errorf("%w: kv reply index %d", errMalformed, i)
			}
		}
	}
	return r, nil
}

// kvStream opens a stream to p for one request with a deadline.
func (n *Node) kvStream(ctx context.Context, p peer.ID) (network.Stream, *bufio.Reader, *bufio.Writer, error) {
	s, err := n.host.NewStream(ctx, p, KVProtocol)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("p2p: kv-cache stream to %s: %w", p, err)
	}
	deadline := time.Now().Add(kvOpTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.SetDeadline(deadline)
	// Abandon the stream as soon as ctx is done (a fetch cancels the
	// requests it no longer needs).
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	return &stopStream{Stream: s, stop: stop}, bufio.NewReader(s), bufio.NewWriter(s), nil
}

// stopStream unregisters the context watch when closed.
type stopStream struct {
	network.Stream
	stop func() bool
}

func (s *stopStream) Close() error {
	s.stop()
	return s.Stream.Close()
}

func (n *Node) kvSend(w *bufio.Writer, req kvRequest, extra ...[]byte) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := writeFrame(w, b); err != nil {
		return err
	}
	for _, e := range extra {
		if _, err := writeFrame(w, e); err != nil {
			return err
		}
	}
	return nil
}

func readKVReply(r *bufio.Reader, n int) (kvReply, error) {
	b, _, err := readFrame(r, maxKVReply)
	if err != nil {
		return kvReply{}, fmt.Errorf("p2p: kv-cache reply: %w", err)
	}
	rep, err := parseKVReply(b, n)
	if err != nil {
		return rep, err
	}
	if rep.NotFound {
		return rep, ErrKVNotFound
	}
	if !rep.OK {
		return rep, fmt.Errorf("p2p: kv-cache: peer refused: %s", rep.Error)
	}
	return rep, nil
}

// PutKVChunk asks p to store chunk c of the set m. p admits it (signature,
// freshness, commitment) before storing it.
func (n *Node) PutKVChunk(ctx context.Context, p peer.ID, m kvprefix.Manifest, c kvprefix.Chunk) error {
	mb, err := kvprefix.EncodeManifest(m)
	if err != nil {
		return err
	}
	cb, err := c.MarshalBinary()
	if err != nil {
		return err
	}
	s, r, w, err := n.kvStream(ctx, p)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := n.kvSend(w, kvRequest{Op: kvOpPut}, mb, cb); err != nil {
		return fmt.Errorf("p2p: kv-cache put to %s: %w", p, err)
	}
	if _, err := readKVReply(r, m.N); err != nil {
		return fmt.Errorf("p2p: kv-cache put of chunk %d to %s: %w", c.Index, p, err)
	}
	return nil
}

// GetKVChunk fetches chunk index of the set root from p (ErrKVNotFound if
// p does not hold it). The chunk is not verified: its manifest is the
// caller's (see admission.Checker.KVChunk); size is its encoded size.
func (n *Node) GetKVChunk(ctx context.Context, p peer.ID, root merkle.Hash, index int) (c kvprefix.Chunk, size int, err error) {
	s, r, w, err := n.kvStream(ctx, p)
	if err != nil {
		return c, 0, err
	}
	defer s.Close()
	if err := n.kvSend(w, kvRequest{Op: kvOpChunk, Root: root, Index: index}); err != nil {
		return c, 0, fmt.Errorf("p2p: kv-cache get from %s: %w", p, err)
	}
	if _, err := readKVReply(r, 0); err != nil {
		return c, 0, fmt.Errorf("p2p: kv-cache chunk %s/%d from %s: %w", root.Short(), index, p, err)
	}
	b, size, err := readFrame(r, kvprefix.MaxChunkBytes)
	if err != nil {
		return c, 0, fmt.Errorf("p2p: kv-cache chunk %s/%d from %s: %w", root.Short(), index, p, err)
	}
	c, err = kvprefix.DecodeChunk(b, 0)
	if err != nil {
		return c, 0, err
	}
	if c.Index != index {
		return kvprefix.Chunk{}, 0, fmt.Errorf("%w: asked for chunk %d, got %d", kvprefix.ErrBadChunk, index, c.Index)
	}
	return c, size, nil
}

// ProbeKV is an availability probe of chunk index of root at p. On the
// wire it is exactly a chunk get (GetKVChunk), so a holder cannot answer
// probes while dropping real reads.
func (n *Node) ProbeKV(ctx context.Context, p peer.ID, root merkle.Hash, index int) (kvprefix.Chunk, int, error) {
	return n.GetKVChunk(ctx, p, root, index)
}

// GetKVManifest asks p for the manifest of (model, prefixHash) and the
// holders it knows. The manifest passes the node's admission check.
func (n *Node) GetKVManifest(ctx context.Context, p peer.ID, model, prefixHash string) (kvprefix.Manifest, []KVHolder, error) {
	var m kvprefix.Manifest
	s, r, w, err := n.kvStream(ctx, p)
	if err != nil {
		return m, nil, err
	}
	defer s.Close()
	if err := n.kvSend(w, kvRequest{Op: kvOpManifest, Model: model, PrefixHash: prefixHash}); err != nil {
		return m, nil, fmt.Errorf("p2p: kv-cache manifest from %s: %w", p, err)
	}
	rep, err := readKVReply(r, 0)
	if err != nil {
		return m, nil, fmt.Errorf("p2p: kv-cache manifest %s/%s from %s: %w", model, prefixHash, p, err)
	}
	b, size, err := readFrame(r, kvprefix.MaxManifestBytes)
	if err != nil {
		return m, nil, fmt.Errorf("p2p: kv-cache manifest from %s: %w", p, err)
	}
	src := admission.Source{Path: admission.PathKV, Peer: p}
	m, err = kvprefix.DecodeManifest(b)
	if err != nil {
		return m, nil, n.Admission().Reject(src, admission.KindKVManifest, admission.ReasonMalformed, err)
	}
	if err := n.Admission().KVManifest(src, m, size); err != nil {
		return kvprefix.Manifest{}, nil, err
	}
	if m.Model != model || m.PrefixHash != prefixHash {
		return kvprefix.Manifest{}, nil, n.Admission().Reject(src, admission.KindKVManifest, admission.ReasonInvalid,
			fmt.Errorf("asked for %s/%s, got %s/%s", model, prefixHash, m.Model, m.PrefixHash))
	}
	for _, h := range rep.Holders {
		if len(h.Indices) > m.N || slices.ContainsFunc(h.Indices, func(i int) bool { return i >= m.N }) {
			return kvprefix.Manifest{}, nil, fmt.Errorf("%w: holder hint of %s out of range", errMalformed, h.Peer)
		}
		if h.Peer != n.ID() {
			n.addHintAddrs(h)
		}
	}
	return m, rep.Holders, nil
}

// addHintAddrs adds a holder hint's addresses to the peerstore (briefly).
func (n *Node) addHintAddrs(h KVHolder) {
	var addrs []multiaddr.Multiaddr
	for _, a := range h.Addrs {
		if ma, err := multiaddr.NewMultiaddr(a); err == nil {
			addrs = append(addrs, ma)
		}
	}
	if len(addrs) > 0 {
		n.host.Peerstore().AddAddrs(h.Peer, addrs, peerstore.TempAddrTTL)
	}
}

// kvChunkKey names a stored chunk.
type kvChunkKey struct {
	root  merkle.Hash
	index int
}

// kvStore holds chunks other nodes put here, under a byte budget with LRU
// eviction, and the manifests of the sets they belong to (a manifest stays
// while one of its chunks does, or while pinned: the sets this node
// published or fetched). Safe for concurrent use.
type kvStore struct {
	mu        sync.Mutex
	chunks    *kvLRU[kvChunkKey, kvprefix.Chunk]
	manifests map[merkle.Hash]*kvStoredManifest
	byName    map[string]merkle.Hash // model/prefix -> root of the newest set
	pinned    []merkle.Hash          // oldest first, at most maxKVPinned
}

type kvStoredManifest struct {
	m      kvprefix.Manifest
	chunks int
	pinned bool
}

const maxKVPinned = 4096

func newKVStore(budget int64) *kvStore {
	s := &kvStore{manifests: map[merkle.Hash]*kvStoredManifest{}, byName: map[string]merkle.Hash{}}
	s.chunks = newKVLRU(budget, func(k kvChunkKey, _ kvprefix.Chunk) {
		if e := s.manifests[k.root]; e != nil {
			e.chunks--
			s.dropIfUnused(k.root)
		}
	})
	return s
}

func kvName(model, prefixHash string) string { return model + "/" + prefixHash }

// dropIfUnused forgets a manifest without chunks or pin; s.mu is held.
func (s *kvStore) dropIfUnused(root merkle.Hash) {
	e := s.manifests[root]
	if e == nil || e.chunks > 0 || e.pinned {
		return
	}
	delete(s.manifests, root)
	name := kvName(e.m.Model, e.m.PrefixHash)
	if s.byName[name] == root {
		delete(s.byName, name)
	}
}

// manifestLocked returns (adding) the entry of m; s.mu is held.
func (s *kvStore) manifestLocked(m kvprefix.Manifest) *kvStoredManifest {
	e := s.manifests[m.Root]
	if e == nil {
		e = &kvStoredManifest{m: m}
		s.manifests[m.Root] = e
	}
	name := kvName(m.Model, m.PrefixHash)
	if cur, ok := s.manifests[s.byName[name]]; !ok || cur.m.CreatedAt <= m.CreatedAt {
		s.byName[name] = m.Root
	}
	return e
}

// put stores an admitted chunk; it reports whether it is new and whether it
// is the first chunk of its set here.
func (s *kvStore) put(m kvprefix.Manifest, c kvprefix.Chunk) (added, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := kvChunkKey{m.Root, c.Index}
	if s.chunks.has(k) {
		return false, false
	}
	e := s.manifestLocked(m)
	first = e.chunks == 0
	e.chunks++
	size := int64(len(c.Data) + 32*len(c.Proof) + 64)
	if !s.chunks.add(k, c, size) {
		e.chunks--
		s.dropIfUnused(m.Root)
		return false, false
	}
	return true, first
}

// pin keeps m's manifest (this node published or fetched the set).
func (s *kvStore) pin(m kvprefix.Manifest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.manifestLocked(m)
	if e.pinned {
		return
	}
	e.pinned = true
	s.pinned = append(s.pinned, m.Root)
	for len(s.pinned) > maxKVPinned {
		old := s.pinned[0]
		s.pinned = s.pinned[1:]
		if e := s.manifests[old]; e != nil {
			e.pinned = false
			s.dropIfUnused(old)
		}
	}
}

func (s *kvStore) chunk(root merkle.Hash, index int) (kvprefix.Chunk, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chunks.get(kvChunkKey{root, index})
}

// have lists the indices of root held here.
func (s *kvStore) have(root merkle.Hash) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.manifests[root]
	if e == nil {
		return nil
	}
	var out []int
	for i := range e.m.N {
		if s.chunks.has(kvChunkKey{root, i}) {
			out = append(out, i)
		}
	}
	return out
}

// local returns the chunks of root held here.
func (s *kvStore) local(root merkle.Hash) []kvprefix.Chunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.manifests[root]
	if e == nil {
		return nil
	}
	var out []kvprefix.Chunk
	for i := range e.m.N {
		if c, ok := s.chunks.get(kvChunkKey{root, i}); ok {
			out = append(out, c)
		}
	}
	return out
}

// manifestByName is the newest held manifest of (model, prefixHash).
func (s *kvStore) manifestByName(model, prefixHash string) (kvprefix.Manifest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	root, ok := s.byName[kvName(model, prefixHash)]
	if !ok {
		return kvprefix.Manifest{}, false
	}
	return s.manifests[root].m, true
}

// usage is the chunks held and their bytes.
func (s *kvStore) usage() (chunks int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chunks.len(), s.chunks.used
}

// dropChunks forgets every chunk (a test hook: a holder that silently
// loses its data).
func (s *kvStore) dropChunks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks.clear()
}
