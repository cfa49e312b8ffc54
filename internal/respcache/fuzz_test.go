package respcache

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzEntry decodes and verifies arbitrary bytes as an entry: it never
// panics, every error is one of the typed ones, and an entry that verifies
// re-encodes to an entry that verifies too.
func FuzzEntry(f *testing.F) {
	k := testKey(f, "fuzz")
	e := signed(f, k, "q", []byte(`{"text":"ok"}`), time.Hour)
	good, _ := json.Marshal(e)
	f.Add(good, e.RequestHash)
	e.Response = []byte("tampered")
	bad, _ := json.Marshal(e)
	f.Add(bad, e.RequestHash)
	f.Add([]byte(`{}`), "")
	f.Add([]byte(`{"requestHash":1}`), "x")
	f.Add([]byte(`null`), reqHash("q"))
	typed := []error{ErrMalformed, ErrWrongRequest, ErrResponseMismatch, ErrExpired, ErrSignerNotProvider, ErrBadSignature}
	f.Fuzz(func(t *testing.T, b []byte, want string) {
		d, err := UnmarshalEntry(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error not ErrMalformed: %v", err)
			}
			return
		}
		err = Verify(d, want, t0)
		if err == nil {
			again, _ := json.Marshal(d)
			d2, err := UnmarshalEntry(again)
			if err != nil || Verify(d2, want, t0) != nil {
				t.Fatalf("verified entry does not survive a round trip: %v", err)
			}
			return
		}
		for _, te := range typed {
			if errors.Is(err, te) {
				return
			}
		}
		t.Fatalf("untyped error %v", err)
	})
}

// FuzzAnnouncement decodes and verifies arbitrary bytes as an announcement.
func FuzzAnnouncement(f *testing.F) {
	k := testKey(f, "fuzz")
	a := Announcement{RequestHash: reqHash("q"), Model: "m", ComputedAt: t0.UnixMilli()}
	if err := SignAnnouncement(&a, k); err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(a)
	f.Add(good)
	a.Model = "n"
	bad, _ := json.Marshal(a)
	f.Add(bad)
	f.Add([]byte(`{"requestHash":"","signature":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := UnmarshalAnnouncement(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error not ErrMalformed: %v", err)
			}
			return
		}
		if err := d.Verify(); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("untyped error %v", err)
		}
	})
}
