package receipt

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzSignedReceipt: any JSON decodes into a signed receipt or fails.
// Whatever decodes canonicalises to the same bytes after a JSON round trip
// (receipts are stored as JSON in PostgreSQL, the CRDT log and git, and
// verified again when read back), and a receipt that verifies still
// verifies, with the same id, after that round trip.
func FuzzSignedReceipt(f *testing.F) {
	s, err := Sign(sample(), key(1))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(s)
	f.Add(good)
	s.Vouch = &Vouch{Node: "12D3KooWANJNnmXFutNFVy1aRWs5XVtBpNoUTNxYw23TtPSdtf37", Signature: "c2ln"}
	vouched, _ := json.Marshal(s)
	f.Add(vouched)
	f.Add(bytes.Replace(good, []byte(`"seed":42`), []byte(`"seed":9007199254740993`), 1))
	f.Add(bytes.Replace(good, []byte(`"learningRate":0.006`), []byte(`"learningRate":-0`), 1))
	f.Add(bytes.Replace(good, []byte(`"optimizer":"adamw"`), []byte(`"optimizer":"adam\ud800w\u2028"`), 1))
	for _, s := range []string{`{}`, `null`, `{"receipt":{"config":{"a":{"b":[1,2,{"c":null}]}},"parents":null}}`,
		`{"receipt":{"result":{"lossCurve":[[1e308,-1e308]],"values":{"":5e-324}}}}`, `{"receipt":{"inspiredBy":"","gpu":"H200"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Signed
		if json.Unmarshal(data, &s) != nil {
			return
		}
		canon, cerr := Canonical(s.Receipt)
		verified := s.Verify() == nil
		again, err := json.Marshal(s)
		if err != nil {
			if cerr == nil {
				t.Fatalf("a receipt that canonicalises does not marshal: %v", err)
			}
			return
		}
		var s2 Signed
		if err := json.Unmarshal(again, &s2); err != nil {
			t.Fatalf("a marshalled receipt does not decode: %v\n%s", err, again)
		}
		canon2, cerr2 := Canonical(s2.Receipt)
		if (cerr == nil) != (cerr2 == nil) || !bytes.Equal(canon, canon2) {
			t.Fatalf("canonical form changed in a JSON round trip (%v, %v):\n%s\n%s", cerr, cerr2, canon, canon2)
		}
		if verified && (s2.Verify() != nil || s2.ID != s.ID) {
			t.Fatalf("a verified receipt does not verify after a JSON round trip: %v", s2.Verify())
		}
	})
}
