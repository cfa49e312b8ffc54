package admission

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/respcache"
)

func cacheKey(t *testing.T, name string) (crypto.PrivKey, peer.ID) {
	t.Helper()
	seed := sha256.Sum256([]byte("admission cache " + name))
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(append(seed[:], seed[:]...)))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return k, id
}

func cacheHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestCacheEntryReasons(t *testing.T) {
	now := time.UnixMilli(1_750_000_000_000)
	c := New(Config{Now: func() time.Time { return now }})
	k, _ := cacheKey(t, "provider")
	evil, _ := cacheKey(t, "evil")
	fresh := func(q string, at time.Time, ttl time.Duration) respcache.Entry {
		e := respcache.Entry{RequestHash: cacheHash(q), Model: "m", Response: []byte("answer " + q), Proof: respcache.Proof{ComputedAt: at.UnixMilli()}}
		if err := respcache.Sign(&e, k, ttl); err != nil {
			t.Fatal(err)
		}
		return e
	}
	src := Source{Path: PathCache, Peer: "server"}
	good := fresh("q", now.Add(-time.Minute), time.Hour)
	if err := c.CacheEntry(src, good, good.RequestHash, 0); err != nil {
		t.Fatal(err)
	}

	badSig := fresh("q", now, time.Hour)
	sig, _ := base64.StdEncoding.DecodeString(badSig.Proof.Signature)
	sig[0] ^= 1
	badSig.Proof.Signature = base64.StdEncoding.EncodeToString(sig)

	tampered := fresh("q", now, time.Hour)
	tampered.Response = []byte("a lie")

	expired := fresh("q", now.Add(-2*time.Hour), time.Hour)
	future := fresh("q", now.Add(time.Hour), time.Hour)

	forged := fresh("q", now, time.Hour)
	pub, _ := evil.GetPublic().Raw()
	forged.Proof.PublicKey = base64.StdEncoding.EncodeToString(pub)
	raw, _ := hex.DecodeString(forged.Proof.ProofHash)
	sig, _ = evil.Sign(raw)
	forged.Proof.Signature = base64.StdEncoding.EncodeToString(sig)

	for _, tc := range []struct {
		name   string
		e      respcache.Entry
		want   string
		reason string
		size   int
	}{
		{"bad signature", badSig, good.RequestHash, ReasonBadSignature, 0},
		{"response mismatch", tampered, good.RequestHash, ReasonBadID, 0},
		{"wrong request", good, cacheHash("other"), ReasonInvalid, 0},
		{"expired", expired, good.RequestHash, ReasonInvalid, 0},
		{"signer not provider", forged, good.RequestHash, ReasonSignerMismatch, 0},
		{"from the future", future, good.RequestHash, ReasonClockSkew, 0},
		{"oversized", good, good.RequestHash, ReasonOversized, DefaultMaxRecordBytes + 1},
	} {
		err := c.CacheEntry(src, tc.e, tc.want, tc.size)
		if got := ReasonOf(err); got != tc.reason {
			t.Errorf("%s: reason %q (%v), want %q", tc.name, got, err, tc.reason)
		}
	}
	st := c.Stats()
	if st.Accepted[PathCache+"/"+KindCacheEntry] != 1 || st.Rejected[PathCache+"/"+KindCacheEntry+"/"+ReasonInvalid] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCacheAnnouncement(t *testing.T) {
	now := time.UnixMilli(1_750_000_000_000)
	c := New(Config{Now: func() time.Time { return now }})
	k, id := cacheKey(t, "provider")
	_, other := cacheKey(t, "other")
	ann := func(at time.Time) respcache.Announcement {
		a := respcache.Announcement{RequestHash: cacheHash("q"), Model: "m", ComputedAt: at.UnixMilli()}
		if err := respcache.SignAnnouncement(&a, k); err != nil {
			t.Fatal(err)
		}
		return a
	}
	gossip := Source{Path: PathGossip, Peer: other, Publisher: id}
	if err := c.CacheAnnouncement(gossip, ann(now), 0); err != nil {
		t.Fatal(err)
	}
	if r := ReasonOf(c.CacheAnnouncement(Source{Path: PathGossip, Peer: other, Publisher: other}, ann(now), 0)); r != ReasonSignerMismatch {
		t.Errorf("published in another's name: %q", r)
	}
	if r := ReasonOf(c.CacheAnnouncement(gossip, ann(now.Add(-time.Hour)), 0)); r != ReasonStale {
		t.Errorf("stale announcement: %q", r)
	}
	moved := ann(now)
	moved.Model = "n"
	if r := ReasonOf(c.CacheAnnouncement(gossip, moved, 0)); r != ReasonBadSignature {
		t.Errorf("tampered announcement: %q", r)
	}
	bad := ann(now)
	bad.RequestHash = "x"
	if r := ReasonOf(c.CacheAnnouncement(gossip, bad, 0)); r != ReasonInvalid {
		t.Errorf("malformed announcement: %q", r)
	}
}
