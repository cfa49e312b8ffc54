package activities

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/archive"
	ghpub "github.com/hyperspace-ai/hyperspace/internal/archive/github"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/metrics"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// Archive is where the archive activities write: a local git repository,
// optionally pushed to a git remote and mirrored to GitHub.
type Archive struct {
	Repo *archive.Repo
	// Remote is a git remote (URL or path) pushed after every commit ("" none).
	Remote string
	// GitHub mirrors branches and opens breakthrough pull requests (nil none).
	GitHub *ghpub.Publisher
	// GitHubRepo names the GitHub repository ("owner/repo") for /status.
	GitHubRepo string
}

func decodeReceipt(e store.Experiment) (receipt.Signed, error) {
	var s receipt.Signed
	if err := json.Unmarshal(e.Record, &s); err != nil {
		return s, fmt.Errorf("decode experiment %s: %w", e.ID, err)
	}
	return s, nil
}

func decodePaper(p store.Paper) (paper.Signed, error) {
	var s paper.Signed
	if err := json.Unmarshal(p.Record, &s); err != nil {
		return s, fmt.Errorf("decode paper %s: %w", p.ID, err)
	}
	return s, nil
}

// nodeID is the peer id of this worker's P2P node ("site" without one).
func (a *Activities) nodeID() string {
	if a.Network == nil {
		return "site"
	}
	return a.Network.PeerID()
}

// WritePaper synthesizes an agent's paper from its window of experiments:
// the facts (results table, effects against the noise floor, lineage, the
// key claim) are computed from the receipts; the prose comes from the
// campaign's LLM when one is configured, otherwise (or when it fails) from
// the built-in writer. The signed paper is stored in PostgreSQL and S3 and
// gossiped on the papers topic. Idempotent per (campaign, agent, number).
func (a *Activities) WritePaper(ctx context.Context, in workflows.PaperInput) (workflows.PaperRef, error) {
	defer keepAlive(ctx)()
	if p, err := a.Store.GetPaperByNumber(ctx, in.CampaignID, in.Agent, in.Number); err == nil {
		return workflows.PaperRef{PaperID: p.ID, Number: p.Number, Title: p.Title}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return workflows.PaperRef{}, err
	}
	d, err := a.domain(ctx, in.Domain)
	if err != nil {
		return workflows.PaperRef{}, err
	}
	rows, _, err := a.Store.ListExperiments(ctx, store.ExperimentFilter{CampaignID: in.CampaignID})
	if err != nil {
		return workflows.PaperRef{}, err
	}
	want := map[string]bool{}
	for _, id := range in.Window {
		want[id] = true
	}
	var window, known []receipt.Signed
	for _, r := range rows {
		s, err := decodeReceipt(r)
		if err != nil {
			return workflows.PaperRef{}, err
		}
		if want[r.ID] {
			window = append(window, s)
		} else {
			known = append(known, s)
		}
	}
	if len(window) != len(in.Window) {
		return workflows.PaperRef{}, fmt.Errorf("write paper: %d of the %d window receipts are not stored yet", len(window), len(in.Window))
	}
	m := d.Metric()
	facts := paper.Facts{
		Domain: in.Domain, Project: projectOf(in.Domain), Campaign: in.CampaignID, Agent: in.Agent, Number: in.Number,
		Metric: m.Name, Direction: string(m.Direction),
		Floor:  paper.Floor{Mean: in.Floor.Mean, SD: in.Floor.SD, N: in.Floor.N, K: in.Floor.K},
		Window: window, Known: known,
	}
	draft, err := paper.Synthesize(facts, time.UnixMilli(in.TimestampMs))
	if err != nil {
		return workflows.PaperRef{}, temporal.NewNonRetryableApplicationError(err.Error(), "NothingToWrite", err)
	}
	if in.LLM != nil && in.LLM.BaseURL != "" {
		a.llmProse(ctx, in.LLM, facts, &draft)
	}
	k, err := a.AgentKey(ctx, in.CampaignID, in.Agent)
	if err != nil {
		return workflows.PaperRef{}, err
	}
	sp, err := paper.Sign(draft.Paper, k)
	if err != nil {
		return workflows.PaperRef{}, temporal.NewNonRetryableApplicationError(err.Error(), "Unsignable", err)
	}
	rec, _ := json.Marshal(sp)
	if a.Blob != nil {
		if err := a.Blob.Put(ctx, "papers/"+sp.ID+".json", rec, "application/json"); err != nil {
			return workflows.PaperRef{}, err
		}
		if err := a.Blob.Put(ctx, "papers/"+sp.ID+".md", []byte(sp.Paper.Markdown), "text/markdown; charset=utf-8"); err != nil {
			return workflows.PaperRef{}, err
		}
	}
	inserted, err := a.Store.InsertPaper(ctx, store.Paper{
		ID: sp.ID, CampaignID: in.CampaignID, Domain: in.Domain, Agent: in.Agent, Number: in.Number,
		PeerID: sp.Paper.PeerID, Title: sp.Paper.Title, Record: rec,
	})
	if err != nil {
		return workflows.PaperRef{}, err
	}
	if !inserted {
		// A concurrent attempt won; return what is stored.
		p, err := a.Store.GetPaperByNumber(ctx, in.CampaignID, in.Agent, in.Number)
		if err != nil {
			return workflows.PaperRef{}, err
		}
		return workflows.PaperRef{PaperID: p.ID, Number: p.Number, Title: p.Title}, nil
	}
	metrics.PapersWritten.WithLabelValues(in.Domain, writerKind(sp.Paper.Writer)).Inc()
	a.log().Info("paper written", "paper", sp.ID, "agent", in.Agent, "title", sp.Paper.Title, "writer", sp.Paper.Writer)
	if a.Network != nil {
		if err := a.Network.PublishPaper(ctx, sp); err != nil {
			a.log().Warn("paper gossip failed", "paper", sp.ID, "error", err)
		}
	}
	return workflows.PaperRef{PaperID: sp.ID, Number: in.Number, Title: sp.Paper.Title}, nil
}

func writerKind(w string) string {
	switch {
	case strings.HasPrefix(w, "llm:"):
		return "llm"
	case strings.Contains(w, "fallback"):
		return "fallback"
	}
	return "builtin"
}

// errBadProse: the LLM's prose broke a length rule.
var errBadProse = errors.New("llm prose out of bounds")

// llmProse asks the LLM for the title, abstract and a discussion, given the
// computed facts; the results table and every number stay computed. On any
// failure the built-in prose stays and the writer says why.
func (a *Activities) llmProse(ctx context.Context, cfg *workflows.LLMConfig, f paper.Facts, d *paper.Draft) {
	c := a.llmClient(cfg)
	facts, _ := json.MarshalIndent(map[string]any{
		"domain": f.Domain, "metric": f.Metric, "direction": f.Direction,
		"noiseFloor": map[string]any{"mean": f.Floor.Mean, "sd": f.Floor.SD, "n": f.Floor.N},
		"claim":      d.Paper.Claim, "results": d.Rows, "builtinTitle": d.Paper.Title, "builtinAbstract": d.Paper.Abstract,
	}, "", " ")
	msgs := []llm.Message{
		{Role: "system", Content: "You write the prose of a short research paper from fixed experimental facts. " +
			"Never invent numbers: use only those given. Answer with one JSON object: " +
			`{"title": "<at most 120 characters>", "abstract": "<at most 1200 characters>", "discussion": "<what the results suggest and what to try next, at most 2000 characters>"}`},
		{Role: "user", Content: "Facts:\n" + string(facts)},
	}
	out, err := c.Chat(ctx, msgs, llm.ChatOptions{Temperature: 0.3, MaxTokens: 1200})
	var prose llmPaperProse
	if err == nil {
		prose, err = parseProse(out)
	}
	if err != nil {
		// The paper is signed: it says only a short code; the details
		// (which may hold the provider's text) go to the log.
		reason := llm.ReasonCode(err)
		if errors.Is(err, errBadProse) {
			reason = "invalid_prose"
		}
		a.log().Warn("llm prose failed; using the built-in writer", "reason", reason, "endpoint", cfg.BaseURL, "model", cfg.Model,
			"campaign", f.Campaign, "agent", f.Agent, "paper", f.Number, "error", err)
		d.Paper.Writer = llm.FallbackName(reason)
		d.Paper.Markdown = paper.Render(f, *d, "")
		return
	}
	d.Paper.Title = prose.Title
	d.Paper.Abstract = prose.Abstract
	d.Paper.Writer = "llm:" + cfg.Model
	d.Paper.Markdown = paper.Render(f, *d, prose.Discussion)
}

// llmPaperProse is the prose an LLM writes for a paper.
type llmPaperProse struct{ Title, Abstract, Discussion string }

// parseProse decodes and checks an LLM's prose reply: a JSON object with a
// title (made one line), an abstract and a discussion within their
// lengths, holding no NUL (the signed paper is stored in PostgreSQL,
// which cannot hold one). Errors wrap errBadProse, or are the JSON
// decoder's.
func parseProse(reply string) (llmPaperProse, error) {
	var prose llmPaperProse
	if err := json.Unmarshal([]byte(llm.StripFences(reply)), &prose); err != nil {
		return prose, err
	}
	prose.Title, prose.Abstract = strings.TrimSpace(prose.Title), strings.TrimSpace(prose.Abstract)
	switch {
	case prose.Title == "" || len(prose.Title) > 200:
		return prose, fmt.Errorf("%w: title is empty or longer than 200 characters", errBadProse)
	case prose.Abstract == "" || len(prose.Abstract) > 3000:
		return prose, fmt.Errorf("%w: abstract is empty or longer than 3000 characters", errBadProse)
	case len(prose.Discussion) > 6000:
		return prose, fmt.Errorf("%w: discussion is longer than 6000 characters", errBadProse)
	case strings.ContainsRune(prose.Title+prose.Abstract+prose.Discussion, 0):
		return prose, fmt.Errorf("%w: the prose holds a NUL character", errBadProse)
	}
	prose.Title = strings.Join(strings.Fields(prose.Title), " ")
	return prose, nil
}

// reviewSeed is the fresh seed a reviewer node re-runs a paper's key
// receipt with: derived from the paper and the node (stable across
// retries), never the receipt's own seed, within ±2^53.
func reviewSeed(paperID, node string, receiptSeed int64) int64 {
	sum := receipt.IDOf([]byte("review-seed/" + paperID + "/" + node))
	b := []byte(sum[:16])
	seed := int64(binary.BigEndian.Uint64(b[:8]) & (1<<52 - 1))
	if seed == receiptSeed {
		seed++
	}
	return seed
}

// ReviewPaper is the built-in reviewer, run on a reviewer node's queue: it
// verifies the paper and every receipt it rests on, re-runs the key receipt
// with a fresh seed, scores the paper 1-10 with the rubric in package paper,
// and stores the signed review. Idempotent per (paper, node).
func (a *Activities) ReviewPaper(ctx context.Context, in workflows.ReviewTask) (workflows.ReviewOutcome, error) {
	node := a.nodeID()
	if r, err := a.Store.GetReviewByNode(ctx, in.PaperID, node); err == nil {
		return workflows.ReviewOutcome{ReviewID: r.ID, Node: node, Score: r.Score}, nil
	}
	row, err := a.Store.GetPaper(ctx, in.PaperID)
	if errors.Is(err, store.ErrNotFound) {
		return workflows.ReviewOutcome{}, temporal.NewNonRetryableApplicationError("paper "+in.PaperID+" not found", "PaperNotFound", err)
	}
	if err != nil {
		return workflows.ReviewOutcome{}, err
	}
	sp, err := decodePaper(row)
	if err != nil {
		return workflows.ReviewOutcome{}, err
	}
	// Fetch every receipt: the site's copy first, then the node's replica.
	got := map[string]receipt.Signed{}
	for _, id := range sp.Paper.Receipts {
		if e, err := a.Store.GetExperiment(ctx, id); err == nil {
			if s, err := decodeReceipt(e); err == nil {
				got[id] = s
				continue
			}
		}
		if a.Network != nil {
			if s, ok := a.Network.KnownGet(id); ok {
				got[id] = s
			}
		}
	}
	// Re-run the key receipt with a fresh seed.
	rep := paper.Reproduction{Receipt: sp.Paper.Claim.Receipt, Claimed: sp.Paper.Claim.Value}
	if key, ok := got[sp.Paper.Claim.Receipt]; !ok {
		rep.Error = "the key receipt is not available"
	} else if key.Verify() != nil {
		rep.Error = "the key receipt does not verify, so it was not re-run"
	} else {
		rep.Seed = reviewSeed(in.PaperID, node, key.Receipt.Seed)
		obs, err := a.rerun(ctx, key, rep.Seed, in.BudgetSeconds)
		switch {
		case ctx.Err() != nil:
			return workflows.ReviewOutcome{}, ctx.Err()
		case err != nil:
			rep.Error = err.Error()
		default:
			rep.Ran, rep.Observed = true, obs
		}
	}
	k := sp.Paper.Claim.K
	score, rubric, reasons := paper.Assess(paper.Assessment{Paper: sp, Receipts: got, Reproduction: rep, K: k})
	rep.Tolerance = paper.Tolerance(sp.Paper.Claim, k)
	if !finite(rep.Observed) {
		rep.Observed = 0
	}
	if a.Network == nil {
		return workflows.ReviewOutcome{}, temporal.NewNonRetryableApplicationError("reviews run on P2P nodes only (a review is signed with the node's key)", "NoNetwork", nil)
	}
	key := a.Network.NodeKey()
	sr, err := paper.SignReview(paper.Review{
		PaperID: in.PaperID, Node: node, Timestamp: time.Now().UnixMilli(),
		Score: score, Rubric: rubric, Reasons: reasons, Reproduction: rep,
	}, key)
	if err != nil {
		return workflows.ReviewOutcome{}, err
	}
	rec, _ := json.Marshal(sr)
	if _, err := a.Store.InsertReview(ctx, store.Review{ID: sr.ID, PaperID: in.PaperID, Node: node, Reviewer: sr.Review.Reviewer, Score: score, Record: rec}); err != nil {
		return workflows.ReviewOutcome{}, err
	}
	if r, err := a.Store.GetReviewByNode(ctx, in.PaperID, node); err == nil {
		sr.ID, score = r.ID, r.Score // a concurrent attempt may have stored first
	}
	metrics.ReviewsWritten.WithLabelValues(sp.Paper.Domain, strconv.Itoa(score)).Inc()
	a.log().Info("paper reviewed", "paper", in.PaperID, "node", node, "score", score, "reasons", reasons)
	if a.Network != nil {
		if err := a.Network.PublishReview(ctx, sr); err != nil {
			a.log().Warn("review gossip failed", "review", sr.ID, "error", err)
		}
	}
	return workflows.ReviewOutcome{ReviewID: sr.ID, Node: node, Score: score}, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// rerun evaluates a receipt's config (and code) with another seed.
func (a *Activities) rerun(ctx context.Context, s receipt.Signed, seed int64, budget float64) (float64, error) {
	d, err := a.domain(ctx, s.Receipt.Domain)
	if err != nil {
		return 0, err
	}
	cfg, err := d.Validate(domains.Config(s.Receipt.Config))
	if err != nil {
		return 0, fmt.Errorf("the receipt's config is invalid: %w", err)
	}
	res, err := a.evaluate(ctx, d, cfg, s.Receipt.Code, seed, budget)
	if err != nil {
		return 0, fmt.Errorf("re-run: %w", err)
	}
	return res.Metric, nil
}

// FinishReview records a paper's verdict.
func (a *Activities) FinishReview(ctx context.Context, in workflows.FinishInput) error {
	v := in.Verdict
	var score *float64
	status := store.PaperUnreviewed
	if v.Status == "reviewed" {
		s := v.Score
		score, status = &s, store.PaperReviewed
	}
	if err := a.Store.FinishReview(ctx, v.PaperID, status, score, v.Breakthrough); err != nil {
		return err
	}
	if v.Breakthrough {
		if p, err := a.Store.GetPaper(ctx, v.PaperID); err == nil {
			metrics.Breakthroughs.WithLabelValues(p.Domain).Inc()
		}
	}
	return nil
}

// AnnounceBreakthrough gossips a breakthrough from the author's node.
func (a *Activities) AnnounceBreakthrough(ctx context.Context, in workflows.FinishInput) error {
	if a.Network == nil {
		return temporal.NewNonRetryableApplicationError("this worker has no P2P node", "NoNetwork", nil)
	}
	row, err := a.Store.GetPaper(ctx, in.Verdict.PaperID)
	if err != nil {
		return err
	}
	sp, err := decodePaper(row)
	if err != nil {
		return err
	}
	return a.Network.AnnounceBreakthrough(ctx, sp, in.Verdict.Score)
}
