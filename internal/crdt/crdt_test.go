package crdt

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

func TestAddVerifiesAndIsIdempotent(t *testing.T) {
	r := New()
	s := sign(t, spec{key: testKey(1), run: 1, metric: 2.5})
	if added, err := r.Add(s); !added || err != nil {
		t.Fatalf("Add = %v, %v; want true, nil", added, err)
	}
	if added, err := r.Add(s); added || err != nil {
		t.Fatalf("second Add = %v, %v; want false, nil", added, err)
	}
	if r.Len("ml") != 1 || r.Len("") != 1 || !r.Has(s.ID) {
		t.Fatalf("Len = %d", r.Len("ml"))
	}
	got, ok := r.Get(s.ID)
	if !ok || got.ID != s.ID || got.Receipt.Metric.Value != 2.5 {
		t.Fatalf("Get = %+v, %v", got, ok)
	}
	// The stored record shares nothing with the caller's.
	s.Receipt.Config["activation"] = "mutated"
	if got, _ := r.Get(s.ID); got.Receipt.Config["activation"] == "mutated" {
		t.Fatal("replica shares the caller's config map")
	}
}

func TestInvalidRecordsRejected(t *testing.T) {
	good := sign(t, spec{key: testKey(1), run: 1, metric: 2.5})

	tampered := sign(t, spec{key: testKey(1), run: 2, metric: 2.5})
	tampered.Receipt.Metric.Value = 1.0 // claims a better metric than was signed

	tamperedID := sign(t, spec{key: testKey(1), run: 3, metric: 2.5})
	tamperedID.Receipt.Metric.Value = 1.0
	canon, err := receipt.Canonical(tamperedID.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	tamperedID.ID = receipt.IDOf(canon) // id fixed up, signature now wrong

	badSig := sign(t, spec{key: testKey(1), run: 4, metric: 2.5})
	sig := []byte(badSig.Signature)
	sig[5] ^= 1
	badSig.Signature = string(sig)

	impostor := sign(t, spec{key: testKey(2), run: 5, metric: 2.5})
	impostor.Receipt.PeerID = testKey(1).ID() // re-hashed and re-signed by key 2
	canon, err = receipt.Canonical(impostor.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	impostor.ID = receipt.IDOf(canon)
	impostor.Signature = base64.StdEncoding.EncodeToString(testKey(2).Sign(canon))

	zeroRun := sign(t, spec{key: testKey(1), run: 0, metric: 2.5})
	noDomain := sign(t, spec{key: testKey(1), run: 6, metric: 2.5})
	noDomain.Receipt.Domain = ""
	noDomain = resign(t, noDomain, 1)

	cases := []struct {
		name string
		s    receipt.Signed
		is   error
	}{
		{"tampered metric", tampered, receipt.ErrBadID},
		{"tampered metric, id recomputed", tamperedID, receipt.ErrBadSignature},
		{"bad signature", badSig, receipt.ErrBadSignature},
		{"peer id of another key", impostor, receipt.ErrPeerMismatch},
		{"run number 0", zeroRun, ErrInvalid},
		{"no domain", noDomain, ErrInvalid},
	}
	for _, c := range cases {
		r := New()
		added, err := r.Add(c.s)
		if added || !errors.Is(err, ErrInvalid) || !errors.Is(err, c.is) {
			t.Errorf("%s: Add = %v, %v; want an error wrapping ErrInvalid and %v", c.name, added, err, c.is)
		}
		if r.Len("") != 0 {
			t.Errorf("%s: record was stored", c.name)
		}
	}

	r := New()
	batch := []receipt.Signed{good, tampered, tamperedID, badSig, good, impostor, zeroRun, noDomain}
	added, rejected, err := r.Merge(batch)
	if err != nil || added != 1 || rejected != 6 {
		t.Fatalf("Merge = added %d rejected %d err %v; want 1, 6, nil", added, rejected, err)
	}
	if r.StateHash("") != hashOf(t, []receipt.Signed{good}) {
		t.Fatal("invalid records changed the state")
	}

	// A responder that sends a forged record: the initiator drops and counts it.
	a := New()
	req := a.Request("b", nil)
	_, rejected, err = func() (int, int, error) {
		_, added, rejected, err := a.HandleResponse("b", req, SyncResponse{Records: []receipt.Signed{tampered, good}})
		return added, rejected, err
	}()
	if err != nil || rejected != 1 || a.Len("") != 1 {
		t.Fatalf("HandleResponse: rejected %d, len %d, err %v", rejected, a.Len(""), err)
	}
}

// resign signs s.Receipt again with key i.
func resign(t *testing.T, s receipt.Signed, i int) receipt.Signed {
	t.Helper()
	out, err := receipt.Sign(s.Receipt, testKey(i))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAdmission(t *testing.T) {
	ml := sign(t, spec{key: testKey(1), run: 1, metric: 2.5})
	search := sign(t, spec{key: testKey(1), domain: "search", run: 2, metric: 0.5})
	r := New(WithDomains("ml"))
	if _, err := r.Add(ml); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(search); !errors.Is(err, ErrNotAdmitted) || !strings.Contains(err.Error(), "unknown domain") {
		t.Fatalf("Add(search) = %v; want ErrNotAdmitted", err)
	}
	small := New(WithMaxRecordSize(100))
	if _, err := small.Add(ml); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("Add(large) = %v; want a size error", err)
	}
	custom := New(WithAdmission(func(s receipt.Signed) error {
		if s.Receipt.Agent == "" {
			return errors.New("no agent")
		}
		return nil
	}))
	if _, _, err := custom.Merge([]receipt.Signed{ml}); err != nil || custom.Len("") != 1 {
		t.Fatalf("custom admission: %v", err)
	}
}

func TestStateHashDomainsRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := pool(t, rng, 4, 10, []string{"ml", "search", "finance"}, true)
	a := replicaOf(t, recs)
	shuffled := slices.Clone(recs)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b := New()
	for _, s := range shuffled {
		if _, err := b.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"", "ml", "search", "finance", "absent"} {
		if a.StateHash(d) != b.StateHash(d) {
			t.Fatalf("StateHash(%q) depends on insertion order", d)
		}
	}
	if a.StateHash("ml") == a.StateHash("search") || a.StateHash("") == a.StateHash("ml") {
		t.Fatal("state hashes of different sets collide")
	}
	if got := a.Domains(); !slices.Equal(got, []string{"finance", "ml", "search"}) {
		t.Fatalf("Domains = %v", got)
	}
	total := 0
	for _, d := range a.Domains() {
		rs := a.Records(d)
		total += len(rs)
		if len(rs) != a.Len(d) {
			t.Fatalf("Records(%q) has %d, Len %d", d, len(rs), a.Len(d))
		}
		if !slices.IsSortedFunc(rs, func(x, y receipt.Signed) int {
			return strings.Compare(fmt.Sprintf("%s/%020d/%s", x.Receipt.PeerID, x.Receipt.RunNumber, x.ID),
				fmt.Sprintf("%s/%020d/%s", y.Receipt.PeerID, y.Receipt.RunNumber, y.ID))
		}) {
			t.Fatalf("Records(%q) not sorted by origin, run, id", d)
		}
	}
	if total != len(recs) || len(a.Records("")) != len(recs) || !slices.Equal(ids(a.Records("")), ids(recs)) {
		t.Fatalf("records: %d of %d", total, len(recs))
	}
}

func TestConcurrentUse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := pool(t, rng, 4, 10, []string{"ml", "search"}, true)
	a, b := New(), New()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(recs); i += 4 {
				target := a
				if i%3 == 0 {
					target = b
				}
				if _, err := target.Add(recs[i]); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					if _, _, err := syncOf(a, b); err != nil {
						t.Error(err)
						return
					}
				}
				_ = a.Top("ml", "", 3)
				_ = b.Summary()
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 2; i++ {
		mustSync(t, a, b)
	}
	if a.StateHash("") != hashOf(t, recs) || b.StateHash("") != a.StateHash("") {
		t.Fatal("replicas did not converge after concurrent adds and syncs")
	}
}

func TestRunsEncoding(t *testing.T) {
	cases := []struct {
		seqs []int
		want string
	}{
		{nil, ""},
		{[]int{1}, "1"},
		{[]int{1, 2, 3}, "1-3"},
		{[]int{1, 2, 3, 5, 7, 8, 100}, "1-3,5,7-8,100"},
	}
	for _, c := range cases {
		got := formatRuns(c.seqs)
		if got != c.want {
			t.Errorf("formatRuns(%v) = %q, want %q", c.seqs, got, c.want)
		}
		l, err := parseRuns(got)
		if err != nil {
			t.Fatal(err)
		}
		if l.count() != uint64(len(c.seqs)) {
			t.Errorf("count(%q) = %d", got, l.count())
		}
		for s := 0; s <= 101; s++ {
			if l.contains(s) != slices.Contains(c.seqs, s) {
				t.Errorf("contains(%q, %d) wrong", got, s)
			}
		}
	}
	for _, bad := range []string{"0", "3-1", "1-1", "2,1", "1-3,3", "a", "1-", "-2", "01", "+1", ",", "1,,2", "9007199254740993"} {
		if _, err := parseRuns(bad); err == nil {
			t.Errorf("parseRuns(%q) accepted", bad)
		}
	}
}

func TestSummaryValidate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	r := replicaOf(t, pool(t, rng, 3, 6, []string{"ml"}, true))
	s := r.Summary()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	origin := sortedKeys(s.Origins)[0]
	bad := []func(e *OriginSummary){
		func(e *OriginSummary) { e.Runs = "2-1" },
		func(e *OriginSummary) { e.Digest = "short" },
		func(e *OriginSummary) { e.Dups = map[int][]string{999: {"a", "b"}} },
		func(e *OriginSummary) { e.Dups = map[int][]string{1: {"b", "a"}} },
	}
	for i, f := range bad {
		e := s.Origins[origin]
		f(&e)
		broken := Summary{Origins: map[string]OriginSummary{origin: e}}
		if err := broken.Validate(); err == nil {
			t.Errorf("case %d: Validate accepted %+v", i, e)
		}
		if _, err := r.Respond("a", SyncRequest{Summary: broken}); err == nil {
			t.Errorf("case %d: Respond accepted a malformed summary", i)
		}
	}
}

// TestBestMatchesSort: Best(n) is the first n of the full ranking.
func TestBestMatchesSort(t *testing.T) {
	r := New()
	k := testKey(42)
	for run := 1; run <= 300; run++ {
		s := sign(t, spec{key: k, run: run, metric: float64((run*7919)%1000) / 1000})
		if _, err := r.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	all := r.Records("ml")
	rk := ranker(domains.Minimize)
	sort.Slice(all, func(i, j int) bool { return rk.better(all[i], all[j]) })
	for _, n := range []int{1, 5, 64, 300, 500} {
		got := r.Best("ml", domains.Minimize, n)
		want := all[:min(n, len(all))]
		if len(got) != len(want) {
			t.Fatalf("n=%d: %d records", n, len(got))
		}
		for i := range got {
			if got[i].ID != want[i].ID {
				t.Fatalf("n=%d: rank %d is %s, want %s", n, i, got[i].ID[:8], want[i].ID[:8])
			}
		}
	}
}
