package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

func agentBranch(t *testing.T) AgentBranch {
	k := key(1)
	return AgentBranch{
		PeerID: k.ID(),
		Domain: "ml",
		Runs: []receipt.Signed{
			sign(t, k, spec{num: 3, value: 1.2, test: 1.25, newBest: true, hyp: "wider | deeper\nmodel", gpu: "NVIDIA H100"}),
			sign(t, k, spec{num: 1, value: 1.5, test: 1.52, baseline: true, hyp: "baseline"}),
			sign(t, k, spec{num: 2, value: 1.4, test: 1.41, hyp: "lower lr"}),
			sign(t, k, spec{num: 4, value: 1.3, test: 1.31, hyp: "dropout"}),
		},
		Papers: []Paper{
			{ID: "paper-2", Slug: "zeta-notes", Markdown: "no heading\n"},
			{ID: "paper-1", Slug: "alpha", Markdown: "# Alpha findings\n\nText.\n"},
		},
	}
}

func TestAgentFilesLayout(t *testing.T) {
	t.Parallel()
	b := agentBranch(t)
	f, err := AgentFiles(b)
	if err != nil {
		t.Fatal(err)
	}
	want := "JOURNAL.md best.json papers/alpha.md papers/zeta-notes.md run-0001.json run-0001.md run-0002.json run-0002.md run-0003.json run-0003.md run-0004.json run-0004.md"
	if got := strings.Join(names(f), " "); got != want {
		t.Errorf("files:\n%s\nwant\n%s", got, want)
	}
	if string(f["papers/alpha.md"]) != b.Papers[1].Markdown {
		t.Errorf("paper not written as given: %q", f["papers/alpha.md"])
	}
	// best.json is run 3 (minimize), byte-identical to its run file.
	if !bytes.Equal(f["best.json"], f["run-0003.json"]) {
		t.Errorf("best.json is not run 3:\n%s", f["best.json"])
	}

	j := string(f["JOURNAL.md"])
	for _, line := range []string{
		"# Journal: " + b.PeerID + " / ml\n",
		"Best: run 3, val_loss 1.2 (minimize; held-out test 1.25), see [best.json](best.json).",
		"- [Run 1](run-0001.md) 2026-03-11T05:08:35Z: val_loss = 1.5 (test 1.52); baseline; baseline\n",
		"- [Run 2](run-0002.md) 2026-03-11T05:09:35Z: val_loss = 1.4 (test 1.41); lower lr\n",
		"- [Run 3](run-0003.md) 2026-03-11T05:10:35Z: val_loss = 1.2 (test 1.25); **new best**; wider | deeper model\n",
		"- [Alpha findings](papers/alpha.md) (paper `paper-1`)\n",
		"- [zeta-notes](papers/zeta-notes.md) (paper `paper-2`)\n",
	} {
		if !strings.Contains(j, line) {
			t.Errorf("JOURNAL.md lacks %q:\n%s", line, j)
		}
	}
	if strings.Index(j, "[Run 2]") > strings.Index(j, "[Run 3]") || strings.Index(j, "[Run 3]") > strings.Index(j, "[Run 4]") {
		t.Error("journal is not chronological")
	}

	md := string(f["run-0003.md"])
	for _, s := range []string{
		"# Run 3: wider | deeper model\n",
		"| val_loss | minimize | 1.2 | 1.25 |",
		"- Improvement: +1.2300%",
		"- New best: yes; beats noise floor: yes",
		"- Noise floor: mean 1.5, sd 0.01 over 5 runs, threshold 0.02",
		"- Seed: 1003",
		"| activation | gelu |\n| learningRate | 0.006 |\n| nLayers | 12 |\n| tie\\|pipe | true |\n",
		"- Parents: 01234567\n",
		"- Proposer: builtin",
		"- Duration: 12.5 s",
		"- GPU: NVIDIA H100",
		"- Receipt id: `" + b.Runs[0].ID + "`",
		"- Signer: `" + b.PeerID + "`",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("run-0003.md lacks %q:\n%s", s, md)
		}
	}
	if !strings.Contains(string(f["run-0001.md"]), "Baseline run") {
		t.Error("baseline run not marked")
	}

	// Input order does not matter; a repeated run (same id) counts once.
	rev := b
	rev.Runs = append([]receipt.Signed{b.Runs[2]}, b.Runs...)
	for i, j := 0, len(rev.Runs)-1; i < j; i, j = i+1, j-1 {
		rev.Runs[i], rev.Runs[j] = rev.Runs[j], rev.Runs[i]
	}
	rev.Papers = []Paper{b.Papers[1], b.Papers[0]}
	g, err := AgentFiles(rev)
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, g, f)
}

func TestAgentFilesBestMaximize(t *testing.T) {
	t.Parallel()
	k := key(2)
	b := AgentBranch{PeerID: k.ID(), Domain: "search", Runs: []receipt.Signed{
		sign(t, k, spec{num: 1, domain: "search", dir: "maximize", value: 0.40, baseline: true}),
		sign(t, k, spec{num: 2, domain: "search", dir: "maximize", value: 0.55}),
		sign(t, k, spec{num: 3, domain: "search", dir: "maximize", value: 0.55}), // tie: earlier run wins
		sign(t, k, spec{num: 4, domain: "search", dir: "maximize", value: 0.30}),
	}}
	f, err := AgentFiles(b)
	if err != nil {
		t.Fatal(err)
	}
	best, err := ParseRun(f["best.json"])
	if err != nil {
		t.Fatal(err)
	}
	if best.Receipt.RunNumber != 2 {
		t.Errorf("best is run %d, want 2", best.Receipt.RunNumber)
	}
	// The baseline can be best.
	b.Runs = b.Runs[:1]
	f, _ = AgentFiles(b)
	if !bytes.Equal(f["best.json"], f["run-0001.json"]) {
		t.Error("a lone baseline run is not best")
	}
	// No runs: no best.json, still a journal.
	b.Runs = nil
	f, err = AgentFiles(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(f), " "); got != "JOURNAL.md" {
		t.Errorf("files without runs: %s", got)
	}
}

func TestAgentFilesErrors(t *testing.T) {
	t.Parallel()
	k := key(3)
	ok := AgentBranch{PeerID: k.ID(), Domain: "ml", Runs: []receipt.Signed{sign(t, k, spec{num: 1, value: 1})}}
	if _, err := AgentFiles(ok); err != nil {
		t.Fatal(err)
	}
	bad := func(name string, mod func(b *AgentBranch)) {
		b := ok
		b.Runs = append([]receipt.Signed(nil), ok.Runs...)
		mod(&b)
		if _, err := AgentFiles(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	bad("duplicate run number", func(b *AgentBranch) { b.Runs = append(b.Runs, sign(t, k, spec{num: 1, value: 2})) })
	bad("run number 0", func(b *AgentBranch) { b.Runs = append(b.Runs, sign(t, k, spec{num: 0, value: 2})) })
	bad("other peer", func(b *AgentBranch) { b.Runs = append(b.Runs, sign(t, key(4), spec{num: 2, value: 2})) })
	bad("other domain", func(b *AgentBranch) { b.Runs = append(b.Runs, sign(t, k, spec{num: 2, domain: "search"})) })
	bad("tampered", func(b *AgentBranch) { b.Runs[0].Receipt.Metric.Value = 0.1 })
	bad("bad peer id", func(b *AgentBranch) { b.PeerID = "a/b"; b.Runs = nil })
	bad("bad domain", func(b *AgentBranch) { b.Domain = "..x"; b.Runs = nil })
	for _, slug := range []string{"", "../x", "a/b", ".hidden", "-x", "a..b", "x.", "sp ace", strings.Repeat("a", 101)} {
		bad("slug "+slug, func(b *AgentBranch) { b.Papers = []Paper{{Slug: slug}} })
	}
	bad("duplicate slug", func(b *AgentBranch) { b.Papers = []Paper{{Slug: "a"}, {Slug: "a", Markdown: "x"}} })
}

func TestRunFileRoundTrip(t *testing.T) {
	t.Parallel()
	k := key(5)
	s := sign(t, k, spec{num: 12345, value: 3.707748949121936, test: 3.8, hyp: "a <b> & \"c\"", gpu: "NVIDIA H100 80GB HBM3"})
	b, err := MarshalRun(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("{\n  \"id\": \""+s.ID+"\",\n  \"version\": 1,\n  \"project\": ")) || !bytes.HasSuffix(b, []byte("\"\n}\n")) {
		t.Errorf("layout:\n%s", b)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "signature", "peerId", "runNumber", "timestamp", "hypothesis", "config", "result", "improvement", "isNewBest", "inspiredBy", "gpu", "metric", "domain"} {
		if _, ok := top[k]; !ok {
			t.Errorf("run file lacks %q", k)
		}
	}
	got, err := ParseRun(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("round trip does not verify: %v", err)
	}
	if got.ID != s.ID || got.Signature != s.Signature {
		t.Error("id or signature changed")
	}
	again, _ := MarshalRun(got)
	if !bytes.Equal(again, b) {
		t.Errorf("re-marshalling changed the file:\n%s\n%s", b, again)
	}

	// Editing the metric in the file breaks verification.
	edited := bytes.Replace(b, []byte(`"value": 3.707748949121936`), []byte(`"value": 3.5`), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("metric not found in the file")
	}
	tampered, err := ParseRun(edited)
	if err != nil {
		t.Fatal(err)
	}
	if err := tampered.Verify(); !errors.Is(err, receipt.ErrBadID) {
		t.Errorf("tampered run: Verify = %v, want ErrBadID", err)
	}

	for name, in := range map[string]string{
		"unknown field": strings.Replace(string(b), `"version": 1,`, `"version": 1, "extra": 1,`, 1),
		"no signature":  strings.Replace(string(b), `"signature"`, `"sig"`, 1),
		"trailing data": string(b) + "{}",
		"not json":      "nope",
	} {
		if _, err := ParseRun([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	f, err := AgentFiles(AgentBranch{PeerID: k.ID(), Domain: "ml", Runs: []receipt.Signed{s}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f["run-12345.json"]; !ok {
		t.Errorf("five-digit run file missing: %v", names(f))
	}
}

// TestRunFileHasPublicFields checks the run file carries every field of
// the public run example.
func TestRunFileHasPublicFields(t *testing.T) {
	t.Parallel()
	ex, err := os.ReadFile("../../../shared/reference/hyperspace-run-example.json")
	if err != nil {
		t.Skipf("reference example not available: %v", err)
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(ex, &want); err != nil {
		t.Fatal(err)
	}
	b, err := MarshalRun(sign(t, key(6), spec{num: 1, value: 1}))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("run file lacks public field %q", k)
		}
	}
}

func TestWriteAgentIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := tempRepo(t)
	b := agentBranch(t)
	c1, changed, err := r.WriteAgent(ctx, b, t0)
	if err != nil || !changed {
		t.Fatalf("WriteAgent: %v %v", changed, err)
	}
	branch, _ := BranchName(b.PeerID, b.Domain)
	want, _ := AgentFiles(b)
	sameFiles(t, files(t, r, branch), want)
	// Same runs in another order, later: no new commit.
	b.Runs = []receipt.Signed{b.Runs[3], b.Runs[1], b.Runs[0], b.Runs[2]}
	c2, changed, err := r.WriteAgent(ctx, b, t0.Add(time.Hour))
	if err != nil || changed || c2 != c1 {
		t.Errorf("rewrite: %s %v %v, want %s unchanged", c2, changed, err, c1)
	}
	// A new run makes one commit whose files parse and verify.
	b.Runs = append(b.Runs, sign(t, key(1), spec{num: 5, value: 1.1, newBest: true}))
	if _, changed, err := r.WriteAgent(ctx, b, t0.Add(2*time.Hour)); err != nil || !changed {
		t.Fatalf("new run: %v %v", changed, err)
	}
	if n := count(t, r, branch); n != 2 {
		t.Errorf("CommitCount = %d, want 2", n)
	}
	got := files(t, r, branch)
	best, err := ParseRun(got["best.json"])
	if err != nil || best.Verify() != nil || best.Receipt.RunNumber != 5 {
		t.Errorf("best after new run: run %d, %v", best.Receipt.RunNumber, err)
	}
}
