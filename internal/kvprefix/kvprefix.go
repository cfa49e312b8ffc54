// Package kvprefix is the pure logic of the inference plane's L2 cache: the
// attention KV state of a prompt prefix (an opaque byte string per model
// hash and prefix hash) erasure-coded with Reed-Solomon into N chunks of
// which any K rebuild it (default RS(32, 64)), committed to by a Merkle root
// over the chunk hashes and described by a Manifest that the exporting node
// signs with its libp2p key.
//
// The code is Reed-Solomon over GF(2^8) in the FFT-based "Leopard" form
// (klauspost/reedsolomon's WithLeopardGF, CodecLeopardGF8) wherever (K, N)
// allows it, which includes the default: with 32 parity shards its
// O(N log N) encoder is several times faster than the classic
// matrix-multiplying one (O(K·(N-K)) per byte), whose output differs. Other
// shapes use the classic code (CodecClassicGF8). The manifest names its
// codec and signs it, so a decoder never guesses.
//
// It also holds what a node needs to keep such a set alive across peers
// without doing any I/O: availability probes that look like ordinary reads
// (ProbePlan, ProbeMissProbability), deterministic placement by rendezvous
// hashing (Place), the bookkeeping of which peer holds which chunk and how
// reliable each provider has been (Tracker), and the regeneration of lost
// chunks (Repair). The network side lives in package p2p (kvcache.go).
package kvprefix

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"

	"github.com/klauspost/reedsolomon"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// Code parameters and bounds.
const (
	// DefaultK is the number of data chunks: any DefaultK of the
	// DefaultN chunks rebuild the state.
	DefaultK = 32
	// DefaultN is the number of chunks (DefaultK data + DefaultN-DefaultK
	// parity): up to half of them may be lost.
	DefaultN = 64
	// MaxN bounds N (the classic Reed-Solomon codec over GF(2^8) takes up
	// to 256 shards).
	MaxN = 256
	// MaxStateBytes bounds a state (exported states are 10 KB–10 MB).
	MaxStateBytes = 64 << 20
	// MaxShardBytes bounds one chunk's data: a state of MaxStateBytes in
	// K=32 chunks.
	MaxShardBytes = MaxStateBytes / DefaultK
	// MaxNameLen bounds a model or prefix hash.
	MaxNameLen = 128
)

// Codecs: how the N chunks are computed from the K data chunks.
const (
	// CodecLeopardGF8 is klauspost/reedsolomon with WithLeopardGF(true):
	// chunk sizes are multiples of 64 bytes. Used when LeopardFits(K, N).
	CodecLeopardGF8 = "rs-leopard-gf8"
	// CodecClassicGF8 is klauspost/reedsolomon's default systematic
	// Vandermonde-derived code, for shapes Leopard cannot take.
	CodecClassicGF8 = "rs-gf8"
)

// LeopardFits reports whether Leopard GF(2^8) takes k data chunks of n
// (klauspost/reedsolomon's own rule: with m the parity count rounded up to
// a power of two, the data rounded up to a multiple of m, plus m, must fit
// in the field's 256 elements).
func LeopardFits(k, n int) bool {
	p := n - k
	if k < 1 || p < 1 || k > 256 || p > 256 {
		return false
	}
	m := 1
	for m < p {
		m <<= 1
	}
	blocks := (k + m - 1) / m
	return blocks*m <= 256-m
}

// CodecFor is the codec Encode uses for k data chunks of n.
func CodecFor(k, n int) string {
	if LeopardFits(k, n) {
		return CodecLeopardGF8
	}
	return CodecClassicGF8
}

// namePattern is what a model hash or prefix hash may look like: no
// slashes (they name DHT keys "/kv-prefix/<model>/<prefix>"), no spaces,
// no newlines (they are joined by newlines in the signed bytes).
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Manifest describes one erasure-coded state. It is signed by Publisher,
// the exporting node, over every other field (signingBytes).
type Manifest struct {
	Model      string `json:"model"`      // model hash
	PrefixHash string `json:"prefixHash"` // hash of the prompt prefix
	Size       int64  `json:"size"`       // bytes of the state
	K          int    `json:"k"`          // data chunks
	N          int    `json:"n"`          // all chunks (K data, N-K parity)
	// Codec is CodecFor(K, N): how the parity chunks were computed.
	Codec string `json:"codec"`
	// ShardSize is the bytes of every chunk: ShardSizeFor(Codec, Size, K).
	ShardSize int `json:"shardSize"`
	// StateHash is SHA-256 of the state.
	StateHash merkle.Hash `json:"stateHash"`
	// Root is the Merkle root (RFC 6962 shape) over the N leaves
	// LeafOf(i, chunk i).
	Root merkle.Hash `json:"root"`
	// CreatedAt is when the publisher encoded it, unix milliseconds.
	CreatedAt int64 `json:"createdAt"`
	// Publisher is the peer id of the signing node.
	Publisher string `json:"publisher"`
	// Signature is by the publisher's libp2p key over signingBytes.
	Signature []byte `json:"signature"`
}

// Chunk is one coded shard with its inclusion proof under Manifest.Root.
type Chunk struct {
	Index int          `json:"index"`
	Data  []byte       `json:"data"`
	Proof merkle.Proof `json:"proof"`
}

// Errors a caller may test for.
var (
	// ErrInvalid: a manifest's fields are out of range or inconsistent.
	ErrInvalid = errors.New("kvprefix: invalid manifest")
	// ErrBadSignature: a manifest not signed by the publisher it names.
	ErrBadSignature = errors.New("kvprefix: manifest signature does not verify for its publisher")
	// ErrBadChunk: a chunk that does not match the manifest's commitment.
	ErrBadChunk = errors.New("kvprefix: chunk does not match the manifest's commitment")
	// ErrTooFewChunks: fewer than K verified chunks.
	ErrTooFewChunks = errors.New("kvprefix: too few verified chunks to rebuild the state")
	// ErrStateHash: the rebuilt state does not hash to StateHash (the
	// publisher committed to inconsistent parity).
	ErrStateHash = errors.New("kvprefix: rebuilt state does not match the manifest's state hash")
)

// ValidName reports whether s may be a model hash or prefix hash.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// ShardSizeFor is the chunk size of a state of size bytes in k data chunks
// under codec: ceil(size/k), rounded up to a multiple of 64 for Leopard (0
// for an unknown codec or a size or k below 1).
func ShardSizeFor(codec string, size int64, k int) int {
	if k <= 0 || size <= 0 || size > MaxStateBytes {
		return 0
	}
	ss := int((size + int64(k) - 1) / int64(k))
	switch codec {
	case CodecLeopardGF8:
		return (ss + 63) &^ 63
	case CodecClassicGF8:
		return ss
	}
	return 0
}

// checkCode validates k and n.
func checkCode(k, n int) error {
	if k < 1 || n <= k || n > MaxN {
		return fmt.Errorf("%w: k=%d n=%d (want 1 <= k < n <= %d)", ErrInvalid, k, n, MaxN)
	}
	return nil
}

// Validate checks the manifest's fields strictly (not the signature).
func (m Manifest) Validate() error {
	if !ValidName(m.Model) || !ValidName(m.PrefixHash) {
		return fmt.Errorf("%w: model %q or prefix hash %q is not a valid name", ErrInvalid, m.Model, m.PrefixHash)
	}
	if err := checkCode(m.K, m.N); err != nil {
		return err
	}
	if m.Size < 1 || m.Size > MaxStateBytes {
		return fmt.Errorf("%w: size %d (want 1..%d)", ErrInvalid, m.Size, MaxStateBytes)
	}
	if want := CodecFor(m.K, m.N); m.Codec != want {
		return fmt.Errorf("%w: codec %q, want %q for k=%d n=%d", ErrInvalid, m.Codec, want, m.K, m.N)
	}
	if want := ShardSizeFor(m.Codec, m.Size, m.K); m.ShardSize != want || m.ShardSize > MaxShardBytes {
		return fmt.Errorf("%w: shard size %d, want %d for %d bytes in %d chunks (%s; at most %d)", ErrInvalid, m.ShardSize, want, m.Size, m.K, m.Codec, MaxShardBytes)
	}
	if m.StateHash.IsZero() || m.Root.IsZero() {
		return fmt.Errorf("%w: zero state hash or root", ErrInvalid)
	}
	if m.CreatedAt <= 0 {
		return fmt.Errorf("%w: createdAt %d", ErrInvalid, m.CreatedAt)
	}
	if _, err := peer.Decode(m.Publisher); err != nil {
		return fmt.Errorf("%w: publisher %q: %v", ErrInvalid, m.Publisher, err)
	}
	if len(m.Signature) == 0 || len(m.Signature) > 1024 {
		return fmt.Errorf("%w: signature of %d bytes", ErrInvalid, len(m.Signature))
	}
	return nil
}

// manifestDomain is v2 since the codec is signed (v1 had none).
const manifestDomain = "hyperspace-kv-manifest/v2\n"

// SigningBytes is what the publisher signs: a domain line, then every
// field but the signature, one per line (names cannot hold newlines).
func (m Manifest) SigningBytes() []byte { return m.signingBytes() }

func (m Manifest) signingBytes() []byte {
	b := make([]byte, 0, 512)
	b = append(b, manifestDomain...)
	for _, f := range []string{m.Model, m.PrefixHash, strconv.FormatInt(m.Size, 10), strconv.Itoa(m.K),
		strconv.Itoa(m.N), m.Codec, strconv.Itoa(m.ShardSize), m.StateHash.String(), m.Root.String(),
		strconv.FormatInt(m.CreatedAt, 10), m.Publisher} {
		b = append(b, f...)
		b = append(b, '\n')
	}
	return b
}

// Sign fills m.Publisher with priv's peer id and m.Signature. m.CreatedAt
// must be set first (the clock is the caller's).
func Sign(m *Manifest, priv crypto.PrivKey) error {
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("kvprefix: peer id of the signing key: %w", err)
	}
	m.Publisher = id.String()
	sig, err := priv.Sign(m.signingBytes())
	if err != nil {
		return fmt.Errorf("kvprefix: signing manifest: %w", err)
	}
	m.Signature = sig
	return m.Validate()
}

// Verify validates m and checks its signature with the public key inside
// the publisher's peer id (an Ed25519 or other inlined key).
func (m Manifest) Verify() error {
	if err := m.Validate(); err != nil {
		return err
	}
	id, _ := peer.Decode(m.Publisher) // Validate decoded it
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: no public key in publisher id %s: %v", ErrBadSignature, m.Publisher, err)
	}
	ok, err := pub.Verify(m.signingBytes(), m.Signature)
	if err != nil || !ok {
		return fmt.Errorf("%w: publisher %s", ErrBadSignature, m.Publisher)
	}
	return nil
}

// Key is the DHT provider key of the set: "/kv-prefix/<model>/<prefix hash>".
func Key(model, prefixHash string) string { return "/kv-prefix/" + model + "/" + prefixHash }

const leafDomain = "hyperspace-kv-chunk/v1"

// LeafOf is the Merkle leaf of chunk index i: SHA-256 of a domain string,
// the index (big-endian uint32) and the data, so a chunk's position is
// bound by its leaf as well as by its proof.
func LeafOf(i int, data []byte) merkle.Hash {
	h := sha256.New()
	var hdr [len(leafDomain) + 4]byte
	copy(hdr[:], leafDomain)
	binary.BigEndian.PutUint32(hdr[len(leafDomain):], uint32(i))
	h.Write(hdr[:])
	h.Write(data)
	var out merkle.Hash
	h.Sum(out[:0])
	return out
}

// encoders caches one Reed-Solomon encoder per (k, n) (the codec follows
// from them): building one builds its matrices or tables; using one is
// safe for concurrent calls. Their inversion caches are off: they keep one
// entry per loss pattern met, without a bound, and a long-lived node meets
// many (recomputing one costs microseconds beside a shard's bytes).
var encoders sync.Map // [2]int -> reedsolomon.Encoder

func encoder(k, n int) (reedsolomon.Encoder, error) {
	key := [2]int{k, n}
	if e, ok := encoders.Load(key); ok {
		return e.(reedsolomon.Encoder), nil
	}
	opts := []reedsolomon.Option{reedsolomon.WithInversionCache(false)}
	if CodecFor(k, n) == CodecLeopardGF8 {
		opts = append(opts, reedsolomon.WithLeopardGF(true))
	}
	e, err := reedsolomon.New(k, n-k, opts...)
	if err != nil {
		return nil, fmt.Errorf("kvprefix: reed-solomon(%d, %d): %w", k, n, err)
	}
	actual, _ := encoders.LoadOrStore(key, e)
	return actual.(reedsolomon.Encoder), nil
}

// Encode pads state to k·ShardSize bytes, splits it into k data shards and
// computes n-k parity shards (k, n of 0 take DefaultK, DefaultN) with
// CodecFor(k, n). The
// manifest it returns is unsigned: the caller sets CreatedAt and calls
// Sign. The shards share one backing array.
func Encode(model, prefixHash string, state []byte, k, n int) (Manifest, [][]byte, error) {
	m, shards, _, err := encode(model, prefixHash, state, k, n)
	return m, shards, err
}

// EncodeChunks is Encode with each shard's inclusion proof (one Merkle
// tree for both the root and the proofs).
func EncodeChunks(model, prefixHash string, state []byte, k, n int) (Manifest, []Chunk, error) {
	m, shards, tree, err := encode(model, prefixHash, state, k, n)
	if err != nil {
		return m, nil, err
	}
	chunks, err := chunksOf(tree, shards)
	return m, chunks, err
}

func chunksOf(tree *merkle.Tree, shards [][]byte) ([]Chunk, error) {
	out := make([]Chunk, len(shards))
	for i, s := range shards {
		p, err := tree.Prove(i)
		if err != nil {
			return nil, err
		}
		out[i] = Chunk{Index: i, Data: s, Proof: p}
	}
	return out, nil
}

func encode(model, prefixHash string, state []byte, k, n int) (Manifest, [][]byte, *merkle.Tree, error) {
	if k == 0 && n == 0 {
		k, n = DefaultK, DefaultN
	}
	if err := checkCode(k, n); err != nil {
		return Manifest{}, nil, nil, err
	}
	if !ValidName(model) || !ValidName(prefixHash) {
		return Manifest{}, nil, nil, fmt.Errorf("%w: model %q or prefix hash %q is not a valid name", ErrInvalid, model, prefixHash)
	}
	if len(state) == 0 || len(state) > MaxStateBytes {
		return Manifest{}, nil, nil, fmt.Errorf("%w: state of %d bytes (want 1..%d)", ErrInvalid, len(state), MaxStateBytes)
	}
	codec := CodecFor(k, n)
	ss := ShardSizeFor(codec, int64(len(state)), k)
	if ss > MaxShardBytes {
		return Manifest{}, nil, nil, fmt.Errorf("%w: %d bytes in %d chunks make chunks of %d bytes, at most %d", ErrInvalid, len(state), k, ss, MaxShardBytes)
	}
	enc, err := encoder(k, n)
	if err != nil {
		return Manifest{}, nil, nil, err
	}
	// The state hash runs beside the coding and the commitment.
	var stateHash merkle.Hash
	hashed := make(chan struct{})
	go func() {
		stateHash = sha256.Sum256(state)
		close(hashed)
	}()
	buf := make([]byte, n*ss)
	copy(buf, state)
	shards := make([][]byte, n)
	for i := range shards {
		shards[i] = buf[i*ss : (i+1)*ss : (i+1)*ss]
	}
	if err := encodeParallel(enc, shards); err != nil {
		<-hashed
		return Manifest{}, nil, nil, fmt.Errorf("kvprefix: encode: %w", err)
	}
	tree := commit(shards)
	<-hashed
	m := Manifest{Model: model, PrefixHash: prefixHash, Size: int64(len(state)), K: k, N: n, Codec: codec, ShardSize: ss,
		StateHash: stateHash, Root: tree.Root()}
	return m, shards, tree, nil
}

// commit builds the Merkle tree over the shards' leaves, hashing shards on
// up to 4 goroutines (the hashing, not the tree, is the cost).
func commit(shards [][]byte) *merkle.Tree {
	leaves := make([]merkle.Hash, len(shards))
	const workers = 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(shards); i += workers {
				leaves[i] = LeafOf(i, shards[i])
			}
		}()
	}
	wg.Wait()
	return merkle.New(leaves)
}

// VerifyChunk checks that c is chunk c.Index of the set m commits to: its
// index is in range, its size is ShardSize, and its leaf and proof lead to
// m.Root in a tree of m.N leaves. m must have been verified.
func VerifyChunk(m Manifest, c Chunk) error {
	if c.Index < 0 || c.Index >= m.N {
		return fmt.Errorf("%w: index %d of %d", ErrBadChunk, c.Index, m.N)
	}
	if len(c.Data) != m.ShardSize {
		return fmt.Errorf("%w: chunk %d has %d bytes, want %d", ErrBadChunk, c.Index, len(c.Data), m.ShardSize)
	}
	if err := merkle.Verify(m.Root, c.Index, m.N, LeafOf(c.Index, c.Data), c.Proof); err != nil {
		return fmt.Errorf("%w: chunk %d: %v", ErrBadChunk, c.Index, err)
	}
	return nil
}

// verified returns the shards of the chunks that verify (the first of
// each index), the number of them, and the first error met.
func verified(m Manifest, chunks []Chunk) ([][]byte, int, error) {
	shards := make([][]byte, m.N)
	good := 0
	var firstErr error
	for _, c := range chunks {
		if err := VerifyChunk(m, c); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if shards[c.Index] == nil {
			shards[c.Index] = c.Data
			good++
		}
	}
	return shards, good, firstErr
}

// Decode rebuilds the state of m from chunks: every chunk is verified
// against the commitment (corrupt ones are skipped), any m.K distinct
// verified chunks suffice, only missing data shards are reconstructed, and
// the result must hash to m.StateHash. The input chunks are not modified.
// m must have been verified.
func Decode(m Manifest, chunks []Chunk) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	shards, good, firstErr := verified(m, chunks)
	if good < m.K {
		if firstErr != nil {
			return nil, fmt.Errorf("%w: %d of %d needed (first rejected: %v)", ErrTooFewChunks, good, m.K, firstErr)
		}
		return nil, fmt.Errorf("%w: %d of %d needed", ErrTooFewChunks, good, m.K)
	}
	missingData := false
	for i := range m.K {
		if shards[i] == nil {
			missingData = true
			break
		}
	}
	if missingData {
		// Keep only K shards as input (fewer to read), preferring data.
		in := make([][]byte, m.N)
		used := 0
		for i := range m.N {
			if shards[i] != nil && used < m.K {
				in[i] = shards[i]
				used++
			}
		}
		enc, err := encoder(m.K, m.N)
		if err != nil {
			return nil, err
		}
		if err := reconstructParallel(enc, in, m.K, true); err != nil {
			return nil, fmt.Errorf("kvprefix: reconstruct: %w", err)
		}
		shards = in
	}
	out := make([]byte, 0, m.K*m.ShardSize)
	for i := range m.K {
		out = append(out, shards[i]...)
	}
	out = out[:m.Size]
	if sha256.Sum256(out) != m.StateHash {
		return nil, ErrStateHash
	}
	return out, nil
}

// Repair regenerates the chunks of m listed in missing from at least m.K
// verified chunks: it rebuilds every shard, checks that they hash to m.Root
// (so the regenerated chunks are the ones the publisher committed to) and
// returns the missing ones with their proofs.
func Repair(m Manifest, chunks []Chunk, missing []int) ([]Chunk, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	for _, i := range missing {
		if i < 0 || i >= m.N {
			return nil, fmt.Errorf("kvprefix: repair: index %d of %d", i, m.N)
		}
	}
	shards, good, firstErr := verified(m, chunks)
	if good < m.K {
		return nil, fmt.Errorf("kvprefix: repair: %w: %d of %d needed (first rejected: %v)", ErrTooFewChunks, good, m.K, firstErr)
	}
	in := make([][]byte, m.N)
	copy(in, shards)
	enc, err := encoder(m.K, m.N)
	if err != nil {
		return nil, err
	}
	if err := reconstructParallel(enc, in, m.K, false); err != nil {
		return nil, fmt.Errorf("kvprefix: repair: reconstruct: %w", err)
	}
	tree := commit(in)
	if tree.Root() != m.Root {
		return nil, fmt.Errorf("kvprefix: repair: regenerated chunks commit to %s, the manifest to %s: %w", tree.Root().Short(), m.Root.Short(), ErrStateHash)
	}
	out := make([]Chunk, 0, len(missing))
	for _, i := range missing {
		p, err := tree.Prove(i)
		if err != nil {
			return nil, err
		}
		out = append(out, Chunk{Index: i, Data: in[i], Proof: p})
	}
	return out, nil
}
