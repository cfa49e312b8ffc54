package p2p

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hyperspace-ai/hyperspace/internal/respcache"
)

// FuzzCacheRequestStream parses arbitrary bytes as an inbound cache
// stream (a length-prefixed frame, then a request hash), as ServeCache
// does: it never panics, never reads past its bound, and accepts only
// request hashes.
func FuzzCacheRequestStream(f *testing.F) {
	h := sha256.Sum256([]byte("q"))
	var good bytes.Buffer
	w := bufio.NewWriter(&good)
	_, _ = writeFrame(w, []byte(hex.EncodeToString(h[:])))
	f.Add(good.Bytes())
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(append([]byte{64}, bytes.Repeat([]byte("g"), 64)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, _, err := readFrame(bufio.NewReader(bytes.NewReader(b)), maxCacheRequest)
		if err != nil {
			return
		}
		if len(frame) > maxCacheRequest {
			t.Fatalf("frame of %d bytes past the bound", len(frame))
		}
		got, err := ParseCacheRequest(frame)
		if err == nil && !respcache.IsRequestHash(got) {
			t.Fatalf("accepted %q", got)
		}
	})
}

// FuzzCacheReply decodes arbitrary bytes as a cache reply frame and
// verifies what decodes: no panic, only typed errors.
func FuzzCacheReply(f *testing.F) {
	k, _, _ := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	h := sha256.Sum256([]byte("q"))
	hs := hex.EncodeToString(h[:])
	e := respcache.Entry{RequestHash: hs, Model: "m", Response: []byte(`{"text":"x"}`), Proof: respcache.Proof{ComputedAt: 1_750_000_000_000}}
	if err := respcache.Sign(&e, k, time.Hour); err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(e)
	f.Add(good, hs)
	f.Add([]byte{}, hs)
	f.Add([]byte(`{"proof":{}}`), hs)
	f.Fuzz(func(t *testing.T, b []byte, want string) {
		d, found, err := UnmarshalCacheReply(b)
		if err != nil {
			if !errors.Is(err, respcache.ErrMalformed) {
				t.Fatalf("untyped decode error %v", err)
			}
			return
		}
		if !found {
			if len(b) != 0 {
				t.Fatal("a non-empty reply decoded as not found")
			}
			return
		}
		_ = respcache.Verify(d, want, time.UnixMilli(1_750_000_000_000))
	})
}
