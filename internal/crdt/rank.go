package crdt

import (
	"encoding/json"
	"maps"
	"sort"
	"strconv"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Entry is one row of a derived leaderboard.
type Entry struct {
	ID         string         `json:"id"`
	PeerID     string         `json:"peerId"`
	Campaign   string         `json:"campaign"`
	Agent      string         `json:"agent"`
	RunNumber  int            `json:"runNumber"`
	Timestamp  int64          `json:"timestamp"`
	MetricName string         `json:"metricName"`
	Metric     float64        `json:"metric"`     // validation split: ranks
	TestMetric float64        `json:"testMetric"` // held-out split: reported only
	Hypothesis string         `json:"hypothesis"`
	Config     map[string]any `json:"config"` // a copy; safe to modify
	Baseline   bool           `json:"baseline"`
}

func entryOf(s receipt.Signed) Entry {
	rc := s.Receipt
	return Entry{
		ID: s.ID, PeerID: rc.PeerID, Campaign: rc.Campaign, Agent: rc.Agent,
		RunNumber: rc.RunNumber, Timestamp: rc.Timestamp,
		MetricName: rc.Metric.Name, Metric: rc.Metric.Value, TestMetric: rc.Metric.TestValue,
		Hypothesis: rc.Hypothesis, Config: maps.Clone(rc.Config), Baseline: rc.Baseline,
	}
}

// ranker orders records best first under one direction, ties by id.
type ranker domains.Direction

func (d ranker) better(a, b receipt.Signed) bool {
	av, bv := a.Receipt.Metric.Value, b.Receipt.Metric.Value
	if av != bv {
		return domains.Direction(d).Better(av, bv)
	}
	return a.ID < b.ID
}

// direction returns dir, or when dir is "" the direction most of the
// domain's records declare (Minimize on a tie or for an empty domain).
func direction(dir domains.Direction, recs []receipt.Signed) domains.Direction {
	if dir != "" {
		return dir
	}
	maxi := 0
	for _, s := range recs {
		if domains.Direction(s.Receipt.Metric.Direction) == domains.Maximize {
			maxi++
		}
	}
	if 2*maxi > len(recs) {
		return domains.Maximize
	}
	return domains.Minimize
}

// BestPerAgent returns, for each (peerId, campaign, agent) of domain, its
// best record under dir, best first; ties break by the smaller id. An
// empty dir uses the direction the domain's receipts declare in
// Metric.Direction. Baseline runs take part (Entry.Baseline marks them).
func (r *Replica) BestPerAgent(domain string, dir domains.Direction) []Entry {
	recs := r.Records(domain)
	rk := ranker(direction(dir, recs))
	type agentKey struct{ peer, campaign, agent string }
	best := map[agentKey]receipt.Signed{}
	for _, s := range recs {
		k := agentKey{s.Receipt.PeerID, s.Receipt.Campaign, s.Receipt.Agent}
		if cur, ok := best[k]; !ok || rk.better(s, cur) {
			best[k] = s
		}
	}
	top := make([]receipt.Signed, 0, len(best))
	for _, s := range best {
		top = append(top, s)
	}
	sort.Slice(top, func(i, j int) bool { return rk.better(top[i], top[j]) })
	out := make([]Entry, len(top))
	for i, s := range top {
		out[i] = entryOf(s)
	}
	return out
}

// Top returns the first n rows of BestPerAgent (all when n <= 0): the
// leaderboard, one row per agent.
func (r *Replica) Top(domain string, dir domains.Direction, n int) []Entry {
	rows := r.BestPerAgent(domain, dir)
	if n > 0 && len(rows) > n {
		rows = rows[:n]
	}
	return rows
}

// ByTechnique returns the best record of domain for each value of the
// config parameter param (e.g. "activation" -> "gelu", "relu"), keyed by
// the value's text: strings as they are, numbers in Go's shortest 'g'
// form, booleans as "true"/"false", anything else as its JSON. Records
// without the parameter are skipped. Ties break by the smaller id.
func (r *Replica) ByTechnique(domain string, dir domains.Direction, param string) map[string]Entry {
	recs := r.Records(domain)
	rk := ranker(direction(dir, recs))
	best := map[string]receipt.Signed{}
	for _, s := range recs {
		v, ok := s.Receipt.Config[param]
		if !ok {
			continue
		}
		k := valueKey(v)
		if cur, ok := best[k]; !ok || rk.better(s, cur) {
			best[k] = s
		}
	}
	out := make(map[string]Entry, len(best))
	for k, s := range best {
		out[k] = entryOf(s)
	}
	return out
}

func valueKey(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}

// Best returns the n best records of domain under dir (best first, ties by
// id), in O(records · log n) time and O(n) space, however large the
// domain. An empty dir uses the direction the records declare. The records
// are shared: treat them as read-only.
func (r *Replica) Best(domain string, dir domains.Direction, n int) []receipt.Signed {
	if n <= 0 {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	d := r.domains[domain]
	if dir == "" {
		recs := make([]receipt.Signed, 0, min(len(d), 64))
		for _, rec := range d {
			if len(recs) == 64 {
				break
			}
			recs = append(recs, rec.s)
		}
		dir = direction("", recs)
	}
	rk := ranker(dir)
	// h is a heap with the worst kept record at its root.
	h := make([]receipt.Signed, 0, n)
	worse := func(i, j int) bool { return rk.better(h[j], h[i]) }
	down := func(i int) {
		for {
			l, m := 2*i+1, i
			if l < len(h) && worse(l, m) {
				m = l
			}
			if l+1 < len(h) && worse(l+1, m) {
				m = l + 1
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for _, rec := range d {
		s := rec.s
		if len(h) < n {
			h = append(h, s)
			for i := len(h) - 1; i > 0 && worse(i, (i-1)/2); i = (i - 1) / 2 {
				h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
			}
			continue
		}
		if rk.better(s, h[0]) {
			h[0] = s
			down(0)
		}
	}
	sort.Slice(h, func(i, j int) bool { return rk.better(h[i], h[j]) })
	return h
}
