package p2p

import (
	"encoding/json"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/kvprefix"
)

func FuzzKVRequest(f *testing.F) {
	f.Add([]byte(`{"op":"put"}`))
	f.Add([]byte(`{"op":"chunk","root":"` + "0101010101010101010101010101010101010101010101010101010101010101" + `","index":3}`))
	f.Add([]byte(`{"op":"manifest","model":"m","prefixHash":"p"}`))
	f.Add([]byte(`{"op":"chunk","root":"00","index":-1}`))
	f.Add([]byte(`{"op":"manifest","model":"a/b","prefixHash":"p"}`))
	f.Add([]byte(`{"op":"put"} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseKVRequest(b)
		if err != nil {
			return
		}
		switch r.Op {
		case kvOpChunk:
			if r.Root.IsZero() || r.Index < 0 || r.Index >= kvprefix.MaxN {
				t.Fatalf("accepted chunk request %+v", r)
			}
		case kvOpManifest:
			if !kvprefix.ValidName(r.Model) || !kvprefix.ValidName(r.PrefixHash) {
				t.Fatalf("accepted manifest request %+v", r)
			}
		case kvOpPut:
		default:
			t.Fatalf("accepted op %q", r.Op)
		}
		// What it accepts re-encodes to a request it accepts the same.
		b2, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := parseKVRequest(b2)
		if err != nil || r2 != r {
			t.Fatalf("re-parse: %+v vs %+v: %v", r2, r, err)
		}
	})
}

func FuzzKVReply(f *testing.F) {
	f.Add([]byte(`{"ok":true}`), 64)
	f.Add([]byte(`{"notFound":true}`), 0)
	f.Add([]byte(`{"ok":true,"holders":[{"peer":"12D3KooWA","addrs":["/ip4/127.0.0.1/tcp/1"],"indices":[0,1,63]}]}`), 64)
	f.Add([]byte(`{"ok":true,"holders":[{"peer":"x","indices":[64]}]}`), 64)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		r, err := parseKVReply(b, n)
		if err != nil {
			return
		}
		limit := n
		if limit <= 0 {
			limit = kvprefix.MaxN
		}
		if len(r.Holders) > maxKVHolders {
			t.Fatalf("%d holders", len(r.Holders))
		}
		for _, h := range r.Holders {
			if len(h.Addrs) > maxKVAddrs || len(h.Indices) > limit {
				t.Fatalf("holder %+v", h)
			}
			for _, i := range h.Indices {
				if i < 0 || i >= limit {
					t.Fatalf("index %d of %d", i, limit)
				}
			}
		}
	})
}
