package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// The snapshots branch.
const (
	SnapshotVersion = 2
	SnapshotBranch  = "snapshots"
	SnapshotPath    = "snapshots/latest.json"
)

// snapshotTimeLayout is RFC 3339 with microseconds and a "+00:00" offset,
// as in the public snapshots.
const snapshotTimeLayout = "2006-01-02T15:04:05.000000+00:00"

// maxHypothesis bounds the hypothesis of a leaderboard entry, in runes.
const maxHypothesis = 120

// Snapshot is a network-wide leaderboard in the public Hyperspace snapshot
// format, version 2. Our additions to the public format:
//   - entries carry the full peerId and hypothesis (at most 120
//     characters, "..." marking a cut) instead of abbreviations;
//   - globalBest is a full entry (the public one shows peerId, metric and
//     hypothesis only);
//   - the skills board's metric key is "passRate"; causes entries carry
//     "metric" (the cause's metric name) and "value";
//   - experimentCounts has skillsTotalRuns, skillsBestPassRate and
//     causesTotalRuns.
type Snapshot struct {
	Version          int              `json:"version"`
	Timestamp        string           `json:"timestamp"` // RFC 3339, UTC, fractional seconds
	GeneratedBy      string           `json:"generatedBy"`
	Summary          string           `json:"summary"`
	Network          Network          `json:"network"`
	Leaderboards     Leaderboards     `json:"leaderboards"`
	ExperimentCounts ExperimentCounts `json:"experimentCounts"`
	Disclaimer       string           `json:"disclaimer"`
}

// Network describes the network at snapshot time.
type Network struct {
	ConnectedPeers int     `json:"connectedPeers"`
	UptimeHours    float64 `json:"uptimeHours"`
}

// Leaderboards holds one board per domain family. Receipt domains map as
// "ml" -> machineLearning, "search" -> searchEngine, "finance", "skills",
// and any other domain is a cause.
type Leaderboards struct {
	MachineLearning Board       `json:"machineLearning"` // metric key valLoss
	SearchEngine    Board       `json:"searchEngine"`    // metric key ndcg10
	Finance         Board       `json:"finance"`         // metric key sharpe
	Skills          Board       `json:"skills"`          // metric key passRate
	Causes          CausesBoard `json:"causes"`
}

// Board is one domain's leaderboard: one entry per peer (its best run),
// best first.
type Board struct {
	PeerCount  int     `json:"peerCount"`  // distinct peers with runs
	EntryCount int     `json:"entryCount"` // distinct peers with a best run
	GlobalBest *Entry  `json:"globalBest"` // null when there are no runs
	Top10      []Entry `json:"top10"`
}

// CausesBoard gathers the user-defined domains (causes), each ranked on
// its own metric.
type CausesBoard struct {
	PeerCount    int                   `json:"peerCount"`    // distinct peers with runs in any cause
	EntryCount   int                   `json:"entryCount"`   // (peer, cause) best runs, summed over causes
	ActiveCauses []string              `json:"activeCauses"` // sorted
	PerCause     map[string]CauseBoard `json:"perCause"`
}

// CauseBoard is the leaderboard of one cause.
type CauseBoard struct {
	GlobalBest *Entry  `json:"globalBest"`
	Top5       []Entry `json:"top5"`
}

// Entry is a leaderboard row. Exactly one metric field is set, the one of
// its board.
type Entry struct {
	PeerID     string   `json:"peerId"`
	ValLoss    *float64 `json:"valLoss,omitempty"`  // machineLearning
	Ndcg10     *float64 `json:"ndcg10,omitempty"`   // searchEngine
	Sharpe     *float64 `json:"sharpe,omitempty"`   // finance
	PassRate   *float64 `json:"passRate,omitempty"` // skills
	Metric     string   `json:"metric,omitempty"`   // causes: the metric's name
	Value      *float64 `json:"value,omitempty"`    // causes
	Hypothesis string   `json:"hypothesis"`
	Dataset    string   `json:"dataset"` // the receipt's project
	RunNumber  int      `json:"runNumber"`
	GPU        *string  `json:"gpu"`
}

// Score returns the entry's metric key and value; false when no metric
// field is set.
func (e Entry) Score() (key string, value float64, ok bool) {
	for _, f := range []struct {
		key string
		v   *float64
	}{{"valLoss", e.ValLoss}, {"ndcg10", e.Ndcg10}, {"sharpe", e.Sharpe}, {"passRate", e.PassRate}, {"value", e.Value}} {
		if f.v != nil {
			return f.key, *f.v, true
		}
	}
	return "", 0, false
}

// ExperimentCounts are run totals and bests (0 when a domain has no runs).
// Baseline runs count in the totals.
type ExperimentCounts struct {
	MLTotalRuns       int     `json:"mlTotalRuns"`
	MLBestValLoss     float64 `json:"mlBestValLoss"`
	SearchTotalRuns   int     `json:"searchTotalRuns"`
	SearchBestNdcg10  float64 `json:"searchBestNdcg10"`
	FinanceTotalRuns  int     `json:"financeTotalRuns"`
	FinanceBestSharpe float64 `json:"financeBestSharpe"`
	// Ours.
	SkillsTotalRuns    int     `json:"skillsTotalRuns"`
	SkillsBestPassRate float64 `json:"skillsBestPassRate"`
	CausesTotalRuns    int     `json:"causesTotalRuns"`
}

// Disclaimer is the snapshot's disclaimer.
const Disclaimer = "Improvements are judged against a measured noise floor: a run is a new best only if it beats " +
	"the previous best by more than 2 standard deviations (2 sigma) of repeated baseline runs. Leaderboards rank by " +
	"the validation metric; held-out test values are in the per-agent branches (agents/<peerId>/<domain>), where " +
	"every run is an Ed25519-signed receipt that anyone can verify."

// metricKey maps a receipt domain to its board's metric key ("" for a
// cause).
func metricKey(domain string) string {
	switch domain {
	case "ml":
		return "valLoss"
	case "search":
		return "ndcg10"
	case "finance":
		return "sharpe"
	case "skills":
		return "passRate"
	}
	return ""
}

// ranked is one domain's runs ranked: the best run per peer, best first.
type ranked struct {
	runs  int
	peers int
	best  []receipt.Signed
}

func rank(runs []receipt.Signed) ranked {
	maxi := maximizes(runs)
	best := map[string]receipt.Signed{}
	for _, s := range runs {
		if cur, ok := best[s.Receipt.PeerID]; !ok || better(s, cur, maxi) {
			best[s.Receipt.PeerID] = s
		}
	}
	out := ranked{runs: len(runs), peers: len(best)}
	for _, s := range best {
		out.best = append(out.best, s)
	}
	sort.Slice(out.best, func(i, j int) bool {
		a, b := out.best[i], out.best[j]
		if a.Receipt.Metric.Value != b.Receipt.Metric.Value {
			return better(a, b, maxi)
		}
		if a.Receipt.PeerID != b.Receipt.PeerID {
			return a.Receipt.PeerID < b.Receipt.PeerID
		}
		return a.ID < b.ID
	})
	return out
}

func (r ranked) entries(key string, n int) []Entry {
	out := []Entry{}
	for i, s := range r.best {
		if i == n {
			break
		}
		out = append(out, entryOf(s, key))
	}
	return out
}

func (r ranked) board(key string) Board {
	b := Board{PeerCount: r.peers, EntryCount: len(r.best), Top10: r.entries(key, 10)}
	if len(b.Top10) > 0 {
		g := b.Top10[0]
		b.GlobalBest = &g
	}
	return b
}

func (r ranked) bestValue() float64 {
	if len(r.best) == 0 {
		return 0
	}
	return r.best[0].Receipt.Metric.Value
}

func entryOf(s receipt.Signed, key string) Entry {
	rc := s.Receipt
	v := rc.Metric.Value
	e := Entry{PeerID: rc.PeerID, Hypothesis: truncate(oneLine(rc.Hypothesis), maxHypothesis), Dataset: rc.Project, RunNumber: rc.RunNumber}
	if rc.GPU != nil {
		g := *rc.GPU
		e.GPU = &g
	}
	switch key {
	case "valLoss":
		e.ValLoss = &v
	case "ndcg10":
		e.Ndcg10 = &v
	case "sharpe":
		e.Sharpe = &v
	case "passRate":
		e.PassRate = &v
	default:
		e.Metric, e.Value = rc.Metric.Name, &v
	}
	return e
}

// truncate cuts s to at most n runes, ending a cut with "...".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

// BuildSnapshot builds the snapshot at time at from runs (in any order;
// repeated ids count once). Each board ranks by the metric direction its
// runs declare (receipt.Metric.Direction, the majority when they differ),
// one entry per peer: its best run, baseline runs included; ties go to the
// earlier run, then the smaller peerId and id. Runs with an empty domain
// count only in the summary. Callers pass verified receipts: BuildSnapshot
// does not check signatures.
func BuildSnapshot(at time.Time, generatedBy string, connectedPeers int, uptimeHours float64, runs []receipt.Signed) Snapshot {
	seen := map[string]bool{}
	byDomain := map[string][]receipt.Signed{}
	peers := map[string]bool{}
	total := 0
	for _, s := range runs {
		if seen[s.ID] {
			continue
		}
		seen[s.ID] = true
		total++
		peers[s.Receipt.PeerID] = true
		if d := s.Receipt.Domain; d != "" {
			byDomain[d] = append(byDomain[d], s)
		}
	}
	ml, search := rank(byDomain["ml"]), rank(byDomain["search"])
	finance, skills := rank(byDomain["finance"]), rank(byDomain["skills"])

	causes := CausesBoard{ActiveCauses: []string{}, PerCause: map[string]CauseBoard{}}
	causePeers := map[string]bool{}
	causeRuns := 0
	for d, rs := range byDomain {
		if metricKey(d) != "" {
			continue
		}
		r := rank(rs)
		causes.ActiveCauses = append(causes.ActiveCauses, d)
		cb := CauseBoard{Top5: r.entries("", 5)}
		if len(cb.Top5) > 0 {
			g := cb.Top5[0]
			cb.GlobalBest = &g
		}
		causes.PerCause[d] = cb
		causes.EntryCount += len(r.best)
		causeRuns += r.runs
		for _, s := range rs {
			causePeers[s.Receipt.PeerID] = true
		}
	}
	sort.Strings(causes.ActiveCauses)
	causes.PeerCount = len(causePeers)

	return Snapshot{
		Version:     SnapshotVersion,
		Timestamp:   at.UTC().Format(snapshotTimeLayout),
		GeneratedBy: generatedBy,
		Summary: fmt.Sprintf("%d unique agents, %d total runs, %d agents with published ML results, %d domains active",
			len(peers), total, len(ml.best), len(byDomain)),
		Network: Network{ConnectedPeers: connectedPeers, UptimeHours: uptimeHours},
		Leaderboards: Leaderboards{
			MachineLearning: ml.board("valLoss"),
			SearchEngine:    search.board("ndcg10"),
			Finance:         finance.board("sharpe"),
			Skills:          skills.board("passRate"),
			Causes:          causes,
		},
		ExperimentCounts: ExperimentCounts{
			MLTotalRuns: ml.runs, MLBestValLoss: ml.bestValue(),
			SearchTotalRuns: search.runs, SearchBestNdcg10: search.bestValue(),
			FinanceTotalRuns: finance.runs, FinanceBestSharpe: finance.bestValue(),
			SkillsTotalRuns: skills.runs, SkillsBestPassRate: skills.bestValue(),
			CausesTotalRuns: causeRuns,
		},
		Disclaimer: Disclaimer,
	}
}

// JSON returns the snapshot indented by two spaces with a trailing
// newline; empty lists and maps are written as [] and {}, never null.
func (s Snapshot) JSON() ([]byte, error) {
	fix := func(b *Board) {
		if b.Top10 == nil {
			b.Top10 = []Entry{}
		}
	}
	lb := &s.Leaderboards
	fix(&lb.MachineLearning)
	fix(&lb.SearchEngine)
	fix(&lb.Finance)
	fix(&lb.Skills)
	if lb.Causes.ActiveCauses == nil {
		lb.Causes.ActiveCauses = []string{}
	}
	per := make(map[string]CauseBoard, len(lb.Causes.PerCause))
	for k, v := range lb.Causes.PerCause {
		if v.Top5 == nil {
			v.Top5 = []Entry{}
		}
		per[k] = v
	}
	lb.Causes.PerCause = per
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("archive: encoding snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseSnapshot decodes a snapshot, checking that it is version 2, that
// its timestamp is RFC 3339 and that every key of the public format is
// present (our additions are optional; unknown keys are allowed).
func ParseSnapshot(b []byte) (Snapshot, error) {
	if err := checkSnapshot(b); err != nil {
		return Snapshot{}, fmt.Errorf("archive: snapshot: %w", err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return Snapshot{}, fmt.Errorf("archive: snapshot: %w", err)
	}
	return s, nil
}

func checkSnapshot(b []byte) error {
	top, err := jsonObject(b, "snapshot", "version", "timestamp", "generatedBy", "summary", "network",
		"leaderboards", "experimentCounts", "disclaimer")
	if err != nil {
		return err
	}
	var version int
	if err := json.Unmarshal(top["version"], &version); err != nil || version != SnapshotVersion {
		return fmt.Errorf("version is %s, want %d", top["version"], SnapshotVersion)
	}
	var ts string
	if err := json.Unmarshal(top["timestamp"], &ts); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		return fmt.Errorf("timestamp %q is not RFC 3339", ts)
	}
	if _, err := jsonObject(top["network"], "network", "connectedPeers", "uptimeHours"); err != nil {
		return err
	}
	if _, err := jsonObject(top["experimentCounts"], "experimentCounts", "mlTotalRuns", "mlBestValLoss",
		"searchTotalRuns", "searchBestNdcg10", "financeTotalRuns", "financeBestSharpe"); err != nil {
		return err
	}
	lb, err := jsonObject(top["leaderboards"], "leaderboards", "machineLearning", "searchEngine", "finance", "skills", "causes")
	if err != nil {
		return err
	}
	for _, name := range []string{"machineLearning", "searchEngine", "finance", "skills"} {
		board, err := jsonObject(lb[name], name, "peerCount", "entryCount", "globalBest", "top10")
		if err != nil {
			return err
		}
		if err := entries(board, name, "globalBest", "top10", boardKey[name]); err != nil {
			return err
		}
	}
	causes, err := jsonObject(lb["causes"], "causes", "peerCount", "entryCount", "activeCauses", "perCause")
	if err != nil {
		return err
	}
	var active []string
	if err := json.Unmarshal(causes["activeCauses"], &active); err != nil || active == nil {
		return fmt.Errorf("causes.activeCauses must be a list of names")
	}
	var per map[string]json.RawMessage
	if err := json.Unmarshal(causes["perCause"], &per); err != nil || per == nil {
		return fmt.Errorf("causes.perCause must be an object")
	}
	for name, raw := range per {
		cb, err := jsonObject(raw, "causes.perCause."+name, "globalBest", "top5")
		if err != nil {
			return err
		}
		if err := entries(cb, "causes.perCause."+name, "globalBest", "top5", ""); err != nil {
			return err
		}
	}
	return nil
}

var boardKey = map[string]string{"machineLearning": "valLoss", "searchEngine": "ndcg10", "finance": "sharpe", "skills": "passRate"}

// jsonObject decodes raw as a JSON object that has every key in keys.
func jsonObject(raw json.RawMessage, where string, keys ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%s must be an object", where)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("%s: missing key %q", where, k)
		}
	}
	return m, nil
}

// entries checks a board's best (object or null) and list of entries:
// each has peerId, hypothesis and, when metric is not "", that key.
func entries(board map[string]json.RawMessage, where, bestKey, listKey, metric string) error {
	keys := []string{"peerId", "hypothesis"}
	if metric != "" {
		keys = append(keys, metric)
	}
	if raw := bytes.TrimSpace(board[bestKey]); !bytes.Equal(raw, []byte("null")) {
		if _, err := jsonObject(raw, where+"."+bestKey, keys...); err != nil {
			return err
		}
	}
	var list []json.RawMessage
	if err := json.Unmarshal(board[listKey], &list); err != nil || list == nil {
		return fmt.Errorf("%s.%s must be a list", where, listKey)
	}
	for i, raw := range list {
		if _, err := jsonObject(raw, fmt.Sprintf("%s.%s[%d]", where, listKey, i), keys...); err != nil {
			return err
		}
	}
	return nil
}

// WriteSnapshot writes s as SnapshotPath, the only file of SnapshotBranch.
func (r *Repo) WriteSnapshot(ctx context.Context, s Snapshot, when time.Time) (commit string, changed bool, err error) {
	if s.Version != SnapshotVersion {
		return "", false, errors.New("archive: snapshot version must be 2")
	}
	js, err := s.JSON()
	if err != nil {
		return "", false, err
	}
	return r.WriteBranch(ctx, SnapshotBranch, map[string][]byte{SnapshotPath: js},
		"Snapshot "+s.Timestamp+": "+s.Summary, when)
}
