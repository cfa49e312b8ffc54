package activities

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/memory"
	"github.com/hyperspace-ai/hyperspace/internal/proposer"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// Memory is the site's semantic memory (see package memory).
type Memory = memory.Memory

// ExperimentText is what semantic memory embeds of a receipt.
func ExperimentText(r receipt.Receipt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s. ", r.Domain, r.Hypothesis)
	keys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v ", k, r.Config[k])
	}
	fmt.Fprintf(&b, "%s %.4g", r.Metric.Name, r.Metric.Value)
	if r.Baseline {
		b.WriteString(" baseline")
	}
	return b.String()
}

// StoreCorpus loads every experiment and paper of a store as memory documents.
func StoreCorpus(s *store.Store) memory.Source {
	return func(ctx context.Context) ([]memory.Doc, error) {
		rows, _, err := s.ListExperiments(ctx, store.ExperimentFilter{})
		if err != nil {
			return nil, err
		}
		docs := make([]memory.Doc, 0, len(rows))
		for _, r := range rows {
			sr, err := decodeReceipt(r)
			if err != nil {
				continue
			}
			docs = append(docs, memory.Doc{ID: r.ID, Kind: "experiment", Domain: r.Domain, Metric: r.Metric,
				Title: fmt.Sprintf("%s run %d: %s", r.Agent, r.RunNumber, sr.Receipt.Hypothesis), Text: ExperimentText(sr.Receipt)})
		}
		papers, err := s.ListPapers(ctx, store.PaperFilter{Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, p := range papers {
			sp, err := decodePaper(p)
			if err != nil {
				continue
			}
			docs = append(docs, memory.Doc{ID: p.ID, Kind: "paper", Domain: p.Domain, Title: p.Title, Metric: sp.Paper.Claim.Value,
				Breakthrough: p.Breakthrough, Text: p.Domain + " " + sp.Paper.Title + ". " + sp.Paper.Abstract})
		}
		return docs, nil
	}
}

// markBreakthroughs flags the key receipts of the domain's breakthrough
// papers in hist (adding them when hist lacks them) and moves them first.
func (a *Activities) markBreakthroughs(ctx context.Context, domain string, hist []proposer.Entry) ([]proposer.Entry, error) {
	papers, err := a.Store.ListPapers(ctx, store.PaperFilter{Domain: domain, Breakthrough: true, Limit: 20})
	if err != nil {
		return nil, err
	}
	if len(papers) == 0 {
		return hist, nil
	}
	keys := map[string]bool{}
	for _, p := range papers {
		sp, err := decodePaper(p)
		if err != nil {
			continue
		}
		keys[sp.Paper.Claim.Receipt] = true
	}
	var first, rest []proposer.Entry
	for _, e := range hist {
		if keys[e.ID] {
			e.Breakthrough = true
			delete(keys, e.ID)
			first = append(first, e)
		} else {
			rest = append(rest, e)
		}
	}
	var net map[string]receipt.Signed
	for id := range keys { // other campaigns of the site, or other sites (the node's replica)
		var s receipt.Signed
		if ex, err := a.Store.GetExperiment(ctx, id); err == nil {
			if s, err = decodeReceipt(ex); err != nil {
				continue
			}
		} else if a.Network != nil {
			if net == nil {
				net = map[string]receipt.Signed{}
				for _, r := range a.Network.Known(domain) {
					net[r.ID] = r
				}
			}
			var ok bool
			if s, ok = net[id]; !ok {
				continue
			}
		} else {
			continue
		}
		if s.Verify() != nil {
			continue
		}
		first = append(first, proposer.Entry{ID: id, Agent: s.Receipt.Campaign + "/" + s.Receipt.Agent, Config: domains.Config(s.Receipt.Config),
			Metric: s.Receipt.Metric.Value, CodeHash: codeHash(s.Receipt.Code), Breakthrough: true})
	}
	sort.SliceStable(first, func(i, j int) bool { return first[i].ID < first[j].ID })
	return append(first, rest...), nil
}

// relatedWork finds papers and experiments similar to the current best
// result in semantic memory, as one-line notes for the LLM.
func (a *Activities) relatedWork(ctx context.Context, domain string, hist []proposer.Entry) []string {
	var best *proposer.Entry
	d, err := a.domain(ctx, domain)
	if err != nil {
		return nil
	}
	dir := d.Metric().Direction
	for i := range hist {
		e := &hist[i]
		if finite(e.Metric) && (best == nil || dir.Better(e.Metric, best.Metric)) {
			best = e
		}
	}
	if best == nil {
		return nil
	}
	q := best.Config.Key()
	if ex, err := a.Store.GetExperiment(ctx, best.ID); err == nil {
		if s, err := decodeReceipt(ex); err == nil {
			q = ExperimentText(s.Receipt)
		}
	}
	if a.Memory == nil {
		return nil
	}
	hits, err := a.Memory.Search(ctx, q, 5, memory.Filter{Domain: domain, Exclude: map[string]bool{best.ID: true}})
	if err != nil {
		a.log().Warn("semantic memory unavailable", "error", err)
		return nil
	}
	notes := make([]string, 0, len(hits))
	for _, h := range hits {
		tag := h.Kind
		if h.Breakthrough {
			tag = "breakthrough paper"
		}
		notes = append(notes, fmt.Sprintf("[%s %s, similarity %.2f] %s (%.4g)", tag, receipt.ShortID(h.ID), h.Score, llm.OneLine(h.Title, 160), h.Metric))
	}
	return notes
}
