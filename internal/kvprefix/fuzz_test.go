package kvprefix

import (
	"bytes"
	"testing"
)

func FuzzManifest(f *testing.F) {
	m, _ := signed(f, randomState(1, 1234), 32, 64)
	good, _ := EncodeManifest(m)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"model":"m","prefixHash":"p","size":1,"k":1,"n":2,"codec":"rs-leopard-gf8","shardSize":64}`))
	f.Add(bytes.Replace(good, []byte(`"k":32`), []byte(`"k":-1`), 1))
	f.Add(bytes.Replace(good, []byte(`"size":1234`), []byte(`"size":99999999999`), 1))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		// A decoded manifest is valid, and re-encodes to one that decodes
		// the same.
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded manifest invalid: %v", err)
		}
		if ShardSizeFor(m.Codec, m.Size, m.K)*m.K < int(m.Size) || m.ShardSize > MaxShardBytes {
			t.Fatalf("shard size %d for %d/%d", m.ShardSize, m.Size, m.K)
		}
		b2, err := EncodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := DecodeManifest(b2)
		if err != nil || m2.Root != m.Root || m2.Size != m.Size || (m.Verify() == nil) != (m2.Verify() == nil) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzChunk(f *testing.F) {
	m, chunks := signed(f, randomState(2, 999), 8, 16)
	for _, c := range chunks[:3] {
		b, _ := c.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 63, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChunk(b, 0)
		if err != nil {
			return
		}
		b2, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encode differs: %v", err)
		}
		// A chunk that verifies is byte-identical to the encoded one.
		if VerifyChunk(m, c) == nil && !bytes.Equal(c.Data, chunks[c.Index].Data) {
			t.Fatalf("forged chunk %d verifies", c.Index)
		}
	})
}
