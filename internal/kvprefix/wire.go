package kvprefix

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// MaxManifestBytes bounds an encoded manifest.
const MaxManifestBytes = 4 << 10

// MaxChunkBytes bounds an encoded chunk: header, a proof of MaxDepth
// hashes and MaxShardBytes of data.
const MaxChunkBytes = chunkHeader + merkle.MaxDepth*32 + MaxShardBytes

// EncodeManifest is the manifest's wire form (JSON).
func EncodeManifest(m Manifest) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("kvprefix: encode manifest: %w", err)
	}
	return b, nil
}

// DecodeManifest decodes a manifest strictly (at most MaxManifestBytes, no
// unknown fields, no trailing data) and validates its fields; the
// signature is Verify's to check.
func DecodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if len(b) > MaxManifestBytes {
		return m, fmt.Errorf("%w: manifest of %d bytes, at most %d", ErrInvalid, len(b), MaxManifestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: decode: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Manifest{}, fmt.Errorf("%w: trailing data after the manifest", ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// chunkHeader: 4 bytes index, 1 byte proof length, 4 bytes data length.
const chunkHeader = 9

// MarshalBinary is the chunk's wire form: index (uint32 big-endian), the
// number of proof hashes (one byte), the data length (uint32), the proof
// hashes (32 bytes each) and the data.
func (c Chunk) MarshalBinary() ([]byte, error) {
	if c.Index < 0 || c.Index >= MaxN || len(c.Proof) > merkle.MaxDepth || len(c.Data) > MaxShardBytes {
		return nil, fmt.Errorf("kvprefix: chunk %d with %d proof hashes and %d bytes cannot be encoded", c.Index, len(c.Proof), len(c.Data))
	}
	b := make([]byte, chunkHeader, chunkHeader+32*len(c.Proof)+len(c.Data))
	binary.BigEndian.PutUint32(b, uint32(c.Index))
	b[4] = byte(len(c.Proof))
	binary.BigEndian.PutUint32(b[5:], uint32(len(c.Data)))
	for _, h := range c.Proof {
		b = append(b, h[:]...)
	}
	return append(b, c.Data...), nil
}

// DecodeChunk decodes a chunk's wire form (MarshalBinary) of at most
// maxData data bytes (<= 0: MaxShardBytes). The data is copied out of b.
func DecodeChunk(b []byte, maxData int) (Chunk, error) {
	if maxData <= 0 || maxData > MaxShardBytes {
		maxData = MaxShardBytes
	}
	if len(b) < chunkHeader {
		return Chunk{}, fmt.Errorf("%w: chunk of %d bytes, shorter than its header", ErrBadChunk, len(b))
	}
	idx := binary.BigEndian.Uint32(b)
	np := int(b[4])
	nd := binary.BigEndian.Uint32(b[5:])
	if idx >= MaxN {
		return Chunk{}, fmt.Errorf("%w: index %d, at most %d", ErrBadChunk, idx, MaxN-1)
	}
	if np > merkle.MaxDepth {
		return Chunk{}, fmt.Errorf("%w: proof of %d hashes, at most %d", ErrBadChunk, np, merkle.MaxDepth)
	}
	if nd > uint32(maxData) {
		return Chunk{}, fmt.Errorf("%w: %d data bytes, at most %d", ErrBadChunk, nd, maxData)
	}
	if want := chunkHeader + 32*np + int(nd); len(b) != want {
		return Chunk{}, fmt.Errorf("%w: %d bytes, the header says %d", ErrBadChunk, len(b), want)
	}
	c := Chunk{Index: int(idx), Proof: make(merkle.Proof, np)}
	off := chunkHeader
	for i := range c.Proof {
		copy(c.Proof[i][:], b[off:off+32])
		off += 32
	}
	c.Data = bytes.Clone(b[off:])
	if c.Data == nil {
		c.Data = []byte{}
	}
	return c, nil
}
