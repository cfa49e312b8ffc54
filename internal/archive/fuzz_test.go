package archive

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// The archive reads run files and snapshots back from git, which any
// mirror or collaborator can write to, and names branches after the peer
// ids and domains of receipts from the network.

// FuzzParseRun: any file parses as a run or fails; a parsed run encodes
// again (MarshalRun) into a file that parses to the same id, signature and
// canonical receipt, so verification does not change.
func FuzzParseRun(f *testing.F) {
	for i, sp := range []spec{{num: 1, value: 1.62}, {num: 12, value: 0.4, dir: "maximize", gpu: "H200", hyp: "a | b\nc"}} {
		b, err := MarshalRun(sign(f, key(byte(i+1)), sp))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"id":"x","signature":"y"}`, `{"id":"x","signature":"y","vouch":{}}`, `{"id":"x","signature":"y"} {}`,
		`{"id":"x","signature":"y","config":{"a":[1,{"b":null}]},"runNumber":1e3}`, `{"id":null,"signature":""}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseRun(data)
		if err != nil {
			return
		}
		b, err := MarshalRun(s)
		if err != nil {
			t.Fatalf("a parsed run does not encode: %v", err)
		}
		s2, err := ParseRun(b)
		if err != nil {
			t.Fatalf("an encoded run does not parse: %v\n%s", err, b)
		}
		if s2.ID != s.ID || s2.Signature != s.Signature {
			t.Fatalf("id or signature changed: %q/%q -> %q/%q", s.ID, s.Signature, s2.ID, s2.Signature)
		}
		c1, err1 := receipt.Canonical(s.Receipt)
		c2, err2 := receipt.Canonical(s2.Receipt)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(c1, c2) {
			t.Fatalf("canonical receipt changed in a run file round trip (%v, %v)", err1, err2)
		}
		if (s.Verify() == nil) != (s2.Verify() == nil) {
			t.Fatal("verification changed in a run file round trip")
		}
	})
}

// FuzzParseSnapshot: any file parses as a snapshot of the public format
// or fails; a parsed snapshot encodes again (JSON) into one that parses,
// and that encoding is stable.
func FuzzParseSnapshot(f *testing.F) {
	js, err := BuildSnapshot(t0, "test-node", 7, 12.5, snapshotRuns(f)).JSON()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(js)
	empty, _ := BuildSnapshot(t0, "x", 0, 0, nil).JSON()
	f.Add(empty)
	if b, err := os.ReadFile("../../../shared/reference/hyperspace-snapshot-example.json"); err == nil {
		f.Add(b)
	}
	f.Add(bytes.Replace(js, []byte(`"version": 2`), []byte(`"version": 1`), 1))
	f.Add(bytes.Replace(js, []byte(`"timestamp": "2026`), []byte(`"timestamp": "x2026`), 1))
	for _, s := range []string{`{}`, `null`, `[]`, `{"version":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSnapshot(data)
		if err != nil {
			return
		}
		b, err := s.JSON()
		if err != nil {
			t.Fatalf("a parsed snapshot does not encode: %v", err)
		}
		s2, err := ParseSnapshot(b)
		if err != nil {
			t.Fatalf("an encoded snapshot does not parse: %v\n%s", err, b)
		}
		b2, err := s2.JSON()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("snapshot encoding is not stable (%v)", err)
		}
	})
}

// FuzzBranchName: an agent branch is named from a peer id and a domain
// (both from receipts of the network) or refused; every name accepted
// passes ValidBranch, and every branch name ValidBranch accepts is one git
// accepts (git check-ref-format, one process per input: this target runs
// at git's pace), so no receipt can make the archive run git with a bad
// ref or an option.
func FuzzBranchName(f *testing.F) {
	git, gitErr := exec.LookPath("git")
	f.Add("hs1dqxk57ls362lro6u3f3nh3t352eciivn", "ml", "agents/x/ml")
	f.Add("12D3KooWANJNnmXFutNFVy1aRWs5XVtBpNoUTNxYw23TtPSdtf37", "toy-quadratic", "snapshots")
	for _, s := range []string{"", "@", ".x", "x.", "x.lock", "a..b", "a@{b", "-x", "a b", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", `a\b`, "a/b", "a\x7fb", "a\x00b", "é", "HEAD", "a//b", "/a", "a/"} {
		f.Add(s, "ml", s)
	}
	f.Fuzz(func(t *testing.T, peerID, domain, branch string) {
		check := func(name string) {
			if gitErr != nil || len(name) > 1000 {
				return
			}
			if out, err := exec.Command(git, "check-ref-format", "refs/heads/"+name).CombinedOutput(); err != nil {
				t.Fatalf("git refuses branch %q: %v %s", name, err, out)
			}
		}
		if name, err := BranchName(peerID, domain); err == nil {
			if err := ValidBranch(name); err != nil {
				t.Fatalf("BranchName gave %q, which ValidBranch refuses: %v", name, err)
			}
			if !strings.HasPrefix(name, AgentPrefix) || strings.Count(name, "/") != 2 {
				t.Fatalf("branch %q is not agents/<peer>/<domain>", name)
			}
		}
		if ValidBranch(branch) == nil {
			check(branch)
		}
	})
}
