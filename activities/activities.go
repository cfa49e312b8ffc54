// Package activities adapts the pure cores (domains, proposer, receipts,
// noise floor) and the stores (PostgreSQL, S3) to Temporal activities.
// Each method is one activity; the workflows call them by the names in
// workflows/types.go.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/causes"
	"github.com/hyperspace-ai/hyperspace/internal/blob"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/keystore"
	"github.com/hyperspace-ai/hyperspace/internal/llm"
	"github.com/hyperspace-ai/hyperspace/internal/metrics"
	"github.com/hyperspace-ai/hyperspace/internal/noise"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/proposer"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// Activities holds what the activities need. Fields are injected by workers/.
type Activities struct {
	Store   *store.Store
	Blob    *blob.Store
	Domains *domains.Registry
	// Keys holds the site's agent keys (sealed in PostgreSQL): every
	// process that signs for an agent signs with the one key registered
	// for it.
	Keys *keystore.Keystore
	// DataDir is the root of the domain data sets.
	DataDir string
	// LLMAPIKey authenticates to the campaign's LLM endpoint, if any. It is
	// sent only to endpoints on LLMAllow.
	LLMAPIKey string
	// LLMAllow is the operator's allow-list of LLM endpoints (--llm-allow).
	// A campaign naming any other endpoint gets the built-in proposer and
	// writer, "builtin (llm fallback: endpoint_not_allowed)", and the
	// endpoint gets no request. nil allows nothing.
	LLMAllow *llm.AllowList
	// LLMTimeout bounds one LLM call (default 60s).
	LLMTimeout time.Duration
	// WorkerID names this process in outcomes and logs.
	WorkerID string
	// HeartbeatEvery is how often RunExperiment heartbeats (default 2s).
	HeartbeatEvery time.Duration
	Logger         *slog.Logger
	// Network is the P2P node this worker belongs to (nil: no knowledge plane).
	Network Network
	// Archive is the git archive (nil: this worker serves no archive queue).
	Archive *Archive
	// Memory is the semantic memory LLM hypotheses consult (nil: none).
	Memory *Memory
	// InnerTrainer trains DiLoCo shards (nil: the pure-Go trainer) and
	// Backend names it ("go" or "torch").
	InnerTrainer InnerTrainer
	Backend      string
	// Pulse is the node this worker belongs to, as a pulse-round validator
	// (nil: this worker validates no rounds).
	Pulse PulseValidator
	// Disputes, when set, is told of a re-run that disagrees with its
	// receipt (a validator's spot check): it starts a fraud-proof challenge.
	Disputes func(ctx context.Context, d Dispute) error
	// Cheat makes this worker's node a cheating defender (tests only).
	Cheat Cheat
	// Recompute re-runs a cached inference request on this worker's node
	// and returns the record bytes it computes ((*inference.Service).
	// Recompute), for refereeing inference challenges (nil: this worker
	// cannot referee them).
	Recompute func(ctx context.Context, requestHash string, record []byte) ([]byte, error)
}

// Network is what the activities need from a P2P node: publish a receipt
// (gossip + the node's CRDT replica) and read what the network knows.
type Network interface {
	// Share publishes s, signed by the agent key k, and merges it locally.
	Share(ctx context.Context, s receipt.Signed, k *identity.Key) error
	// Known returns the receipts the node's replica holds for a domain.
	Known(domain string) []receipt.Signed
	// KnownBest returns the replica's n best receipts of a domain.
	KnownBest(domain string, dir domains.Direction, n int) []receipt.Signed
	// KnownGet returns one receipt of the replica.
	KnownGet(id string) (receipt.Signed, bool)
	// PublishPaper gossips a signed paper (the node vouches for its author).
	PublishPaper(ctx context.Context, sp paper.Signed) error
	// PublishReview gossips a review signed with NodeKey.
	PublishReview(ctx context.Context, sr paper.SignedReview) error
	// AnnounceBreakthrough gossips that a paper was judged a breakthrough.
	AnnounceBreakthrough(ctx context.Context, sp paper.Signed, score float64) error
	// NodeKey is the node's own key: reviews are signed with it, which
	// binds a review to the node that wrote it.
	NodeKey() *identity.Key
	// PeerID is the node's libp2p peer id.
	PeerID() string
}

func (a *Activities) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// domain resolves a built-in domain or a cause registered through any
// process of the site (loaded from the database on first use).
func (a *Activities) domain(ctx context.Context, name string) (domains.Domain, error) {
	var l causes.Loader
	if a.Store != nil {
		l = a.Store
	}
	d, ok, err := causes.Resolve(ctx, a.Domains, l, name, func(err error) bool { return errors.Is(err, store.ErrNotFound) })
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError("unknown domain "+name, "UnknownDomain", nil)
	}
	return d, nil
}

// AgentKey is the site's signing key of a campaign's agent, registered by
// RegisterAgent. A process without the site secret, or with another
// site's, cannot sign (non-retryable: retrying will not give it one).
func (a *Activities) AgentKey(ctx context.Context, campaign, agent string) (*identity.Key, error) {
	if a.Keys == nil {
		return nil, temporal.NewNonRetryableApplicationError(keystore.ErrNoSecret.Error(), "NoSiteSecret", keystore.ErrNoSecret)
	}
	k, err := a.Keys.Load(ctx, campaign, agent)
	switch {
	case errors.Is(err, keystore.ErrUnknownAgent):
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "UnknownAgent", err)
	case errors.Is(err, keystore.ErrWrongSecret):
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "WrongSiteSecret", err)
	case err != nil:
		return nil, fmt.Errorf("agent key %s/%s: %w", campaign, agent, err)
	}
	return k, nil
}

// RegisterAgent creates the agent's key, once for the site (a retry or a
// second registration gets the same key), and records the agent with it.
func (a *Activities) RegisterAgent(ctx context.Context, in workflows.RegisterAgentInput) error {
	if a.Keys == nil {
		return temporal.NewNonRetryableApplicationError(keystore.ErrNoSecret.Error(), "NoSiteSecret", keystore.ErrNoSecret)
	}
	if _, err := a.Keys.Register(ctx, in.CampaignID, in.Agent); err != nil {
		return fmt.Errorf("register agent %s/%s: %w", in.CampaignID, in.Agent, err)
	}
	return nil
}

// SetCampaignStatus updates a campaign's row.
func (a *Activities) SetCampaignStatus(ctx context.Context, in workflows.StatusInput) error {
	var sum json.RawMessage
	if in.Summary != nil {
		b, err := json.Marshal(in.Summary)
		if err != nil {
			return err
		}
		sum = b
	}
	metrics.CampaignStatus.WithLabelValues(in.Status).Inc()
	return a.Store.SetCampaignStatus(ctx, in.CampaignID, in.Status, sum, in.Error)
}

// History bounds: an agent hypothesizes from its campaign's baseline, its
// best and its most recent runs, and the network's best of the domain, so
// one Hypothesize costs the same at the campaign's 10th experiment and at
// its 100,000th. (That a proposal is new is checked against the whole
// campaign: see Hypothesize.)
const (
	historyTop     = 100
	historyRecent  = 50
	historyNetwork = 50
)

// History returns what an agent knows when it hypothesizes, as proposer
// entries: the bounded view of its campaign from the site database
// (Store.CampaignHistory), plus (unless isolated) the best receipts of the
// domain the node's replica holds from the network. An isolated agent sees
// only its own runs and the baseline.
func (a *Activities) History(ctx context.Context, d domains.Domain, campaign, agent string, isolated bool) ([]proposer.Entry, error) {
	only := ""
	if isolated {
		only = agent
	}
	minimize := d.Metric().Direction == domains.Minimize
	rows, err := a.Store.CampaignHistory(ctx, campaign, only, minimize, historyTop, historyRecent)
	if err != nil {
		return nil, err
	}
	out := make([]proposer.Entry, 0, len(rows))
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.ID] = true
		out = append(out, proposer.Entry{ID: r.ID, Agent: r.Agent, Config: domains.Config(r.Config), Metric: r.Metric, Baseline: r.Baseline, CodeHash: r.CodeHash})
	}
	if a.Network != nil && !isolated {
		for _, s := range a.Network.KnownBest(d.Name(), d.Metric().Direction, historyNetwork) {
			if seen[s.ID] {
				continue
			}
			rc := s.Receipt
			// Another campaign's baseline is not ours: rank it as a plain result.
			out = append(out, proposer.Entry{ID: s.ID, Agent: rc.Campaign + "/" + rc.Agent, Config: domains.Config(rc.Config), Metric: rc.Metric.Value, CodeHash: codeHash(rc.Code)})
		}
	}
	return out, nil
}

// Share publishes a recorded experiment to the network through the node:
// gossip to every peer and a merge into the node's CRDT replica.
func (a *Activities) Share(ctx context.Context, in workflows.ShareInput) error {
	if a.Network == nil {
		return temporal.NewNonRetryableApplicationError("this worker has no P2P node", "NoNetwork", nil)
	}
	e, err := a.Store.GetExperiment(ctx, in.ExperimentID)
	if err != nil {
		return err
	}
	var s receipt.Signed
	if err := json.Unmarshal(e.Record, &s); err != nil {
		return fmt.Errorf("decode experiment %s: %w", e.ID, err)
	}
	k, err := a.AgentKey(ctx, in.CampaignID, in.Agent)
	if err != nil {
		return err
	}
	return a.Network.Share(ctx, s, k)
}

// Hypothesize proposes the next experiment: through the campaign's LLM when
// one is configured (falling back to the built-in proposer on any failure,
// and saying so), otherwise with the built-in proposer.
func (a *Activities) Hypothesize(ctx context.Context, in workflows.HypothesizeInput) (workflows.Proposal, error) {
	defer keepAlive(ctx)()
	d, err := a.domain(ctx, in.Domain)
	if err != nil {
		return workflows.Proposal{}, err
	}
	hist, err := a.History(ctx, d, in.CampaignID, in.Agent, in.Isolated)
	if err != nil {
		return workflows.Proposal{}, err
	}
	var client *llm.Client
	if in.LLM != nil && in.LLM.BaseURL != "" {
		client = a.llmClient(in.LLM)
	}
	var notes []string
	if !in.NoEvolve {
		// Evolve: peer-reviewed breakthroughs enter the context first.
		if hist, err = a.markBreakthroughs(ctx, in.Domain, hist); err != nil {
			return workflows.Proposal{}, err
		}
	}
	if client != nil && client.Allow.Allows(client.BaseURL) {
		notes = a.relatedWork(ctx, in.Domain, hist)
	}
	// The history is bounded, so a proposal may repeat a config the
	// campaign ran long ago: check it against the whole campaign, and on a
	// repeat propose again knowing that config.
	only := ""
	if in.Isolated {
		only = in.Agent
	}
	var p proposer.Proposal
	var who string
	for attempt := 0; ; attempt++ {
		p, who, err = llm.Hypothesize(ctx, client, d, hist, in.Seed, notes...)
		if err != nil {
			if errors.Is(err, proposer.ErrExhausted) {
				return workflows.Proposal{}, temporal.NewNonRetryableApplicationError(err.Error(), "SearchExhausted", err)
			}
			return workflows.Proposal{}, fmt.Errorf("hypothesize: %w", err)
		}
		if p.Code != "" {
			break // source code is new by its hash (see proposer)
		}
		tried, err := a.Store.ConfigTried(ctx, in.CampaignID, only, p.Config.Key())
		if err != nil {
			return workflows.Proposal{}, err
		}
		if !tried {
			break
		}
		if attempt >= maxRepeatRetries {
			return workflows.Proposal{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%d proposals in a row repeat configs the campaign has run", attempt+1), "SearchExhausted", nil)
		}
		hist = append(hist, proposer.Entry{Key: p.Config.Key()})
		client = nil // the LLM repeated itself: the built-in proposer continues
	}
	if p.Config, err = pinFixed(d, p.Config, hist); err != nil {
		return workflows.Proposal{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidConfig", err)
	}
	metrics.Proposals.WithLabelValues(in.Domain, proposerKind(who)).Inc()
	parents := p.Parents
	if parents == nil {
		parents = []string{}
	}
	return workflows.Proposal{Config: p.Config, Hypothesis: p.Hypothesis, Parents: parents, Strategy: p.Strategy, Proposer: who, Code: p.Code}, nil
}

// maxRepeatRetries bounds the re-proposals after a repeated config.
const maxRepeatRetries = 32

// llmClient is the client for a campaign's LLM endpoint. The worker's
// allow-list is checked again here (the API checked it when the campaign
// was created, but a workflow can be started without the API): an
// unlisted endpoint gets no request and never the key, and redirects to
// another origin or off the list are not followed.
func (a *Activities) llmClient(cfg *workflows.LLMConfig) *llm.Client {
	timeout := a.LLMTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	allow := a.LLMAllow
	if allow == nil {
		allow = &llm.AllowList{}
	}
	c := &llm.Client{BaseURL: cfg.BaseURL, Model: cfg.Model, HTTP: llm.HTTPClient(timeout, allow), Allow: allow, Logger: a.log()}
	if allow.Allows(cfg.BaseURL) {
		c.APIKey = a.LLMAPIKey
	}
	return c
}

// codeHash is the hex sha256 of a candidate's source ("" for none).
func codeHash(code string) string {
	if code == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// pinFixed sets the domain's Fixed parameters (evaluation assumptions such
// as transaction costs) to the campaign baseline's values, whatever the
// proposer or the LLM chose, so agents cannot game them.
func pinFixed(d domains.Domain, cfg domains.Config, hist []proposer.Entry) (domains.Config, error) {
	var base domains.Config
	for _, e := range hist {
		if e.Baseline {
			base = e.Config
			break
		}
	}
	if base == nil {
		return cfg, nil
	}
	out := cfg.Clone()
	changed := false
	for _, p := range d.Space() {
		if v, ok := base[p.Name]; p.Fixed && ok && fmt.Sprint(out[p.Name]) != fmt.Sprint(v) {
			out[p.Name] = v
			changed = true
		}
	}
	if !changed {
		return cfg, nil
	}
	return d.Validate(out)
}

func proposerKind(who string) string {
	switch {
	case len(who) >= 4 && who[:4] == "llm:":
		return "llm"
	case who == "builtin":
		return "builtin"
	default:
		return "fallback"
	}
}

// RunExperiment evaluates one config on the experiments queue. It heartbeats
// progress; when its worker dies, Temporal retries it on another worker, and
// because evaluations are deterministic the rerun gives the same result.
// Artifacts are staged in S3 until RecordResult knows the receipt id.
func (a *Activities) RunExperiment(ctx context.Context, in workflows.ExperimentInput) (workflows.Outcome, error) {
	d, err := a.domain(ctx, in.Domain)
	if err != nil {
		return workflows.Outcome{}, err
	}
	cfg, err := d.Validate(in.Config)
	if err != nil {
		return workflows.Outcome{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidConfig", err)
	}
	info := activity.GetInfo(ctx)
	log := a.log().With("campaign", in.CampaignID, "agent", in.Agent, "run", in.RunNumber, "attempt", info.Attempt)
	log.Info("experiment started", "domain", in.Domain, "seed", in.Seed)

	start := time.Now()
	res, err := a.evaluate(ctx, d, cfg, in.Code, in.Seed, in.BudgetSeconds)
	dur := time.Since(start).Seconds()
	metrics.ExperimentSeconds.WithLabelValues(in.Domain).Observe(dur)
	if err != nil {
		metrics.ExperimentsFailed.WithLabelValues(in.Domain).Inc()
		if ctx.Err() != nil {
			return workflows.Outcome{}, ctx.Err()
		}
		return workflows.Outcome{}, fmt.Errorf("evaluate %s run %d: %w", in.Domain, in.RunNumber, err)
	}
	if math.IsNaN(res.Metric) || math.IsInf(res.Metric, 0) {
		// A diverged run is a result, but not a number we can rank: fail it for good.
		return workflows.Outcome{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("evaluation diverged: %s = %v", d.Metric().Name, res.Metric), "Diverged", nil)
	}

	prefix := blob.StagingPrefix(in.CampaignID, in.Agent, in.RunNumber)
	digests := map[string]string{}
	arts := res.Artifacts
	if arts == nil {
		arts = map[string][]byte{}
	}
	if _, ok := arts["result.json"]; !ok {
		b, _ := json.MarshalIndent(map[string]any{"metric": res.Metric, "testMetric": res.TestMetric, "values": res.Values, "curve": res.Curve, "config": cfg, "seed": in.Seed}, "", "  ")
		arts["result.json"] = b
	}
	names := make([]string, 0, len(arts))
	for n := range arts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sum := sha256.Sum256(arts[n])
		digests[n] = "sha256:" + hex.EncodeToString(sum[:])
		if err := a.Blob.Put(ctx, prefix+n, arts[n], contentType(n)); err != nil {
			return workflows.Outcome{}, err
		}
	}
	metrics.ExperimentsCompleted.WithLabelValues(in.Domain).Inc()
	log.Info("experiment finished", "metric", res.Metric, "seconds", dur)
	host, _ := os.Hostname()
	return workflows.Outcome{
		Metric: res.Metric, TestMetric: res.TestMetric, Values: finiteValues(res.Values), Curve: res.Curve,
		Items:       finiteItems(res.Items),
		DurationSec: dur, StagingPrefix: prefix, Artifacts: digests,
		Worker: a.WorkerID + "@" + host, Attempt: info.Attempt,
	}, nil
}

// evaluate runs one evaluation of cfg (or of code, for a CodeDomain) with
// seed, heartbeating the domain's progress until it returns.
func (a *Activities) evaluate(ctx context.Context, d domains.Domain, cfg domains.Config, code string, seed int64, budget float64) (domains.Result, error) {
	var mu sync.Mutex
	var last domains.Progress
	hbEvery := a.HeartbeatEvery
	if hbEvery <= 0 {
		hbEvery = 2 * time.Second
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // heartbeat owner: stops when the evaluation returns
		defer wg.Done()
		t := time.NewTicker(hbEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				p := last
				mu.Unlock()
				activity.RecordHeartbeat(ctx, p)
			}
		}
	}()
	activity.RecordHeartbeat(ctx, domains.Progress{Message: "starting"})
	metrics.ExperimentsRunning.Inc()
	defer metrics.ExperimentsRunning.Dec()
	defer func() { close(stop); wg.Wait() }()
	eopts := domains.EvalOptions{
		DataDir:       a.DataDir,
		BudgetSeconds: budget,
		Progress: func(p domains.Progress) {
			mu.Lock()
			last = p
			mu.Unlock()
		},
	}
	if code == "" {
		return d.Evaluate(ctx, cfg, seed, eopts)
	}
	cd, ok := d.(domains.CodeDomain)
	if !ok {
		return domains.Result{}, temporal.NewNonRetryableApplicationError("domain "+d.Name()+" does not evaluate source code", "InvalidConfig", nil)
	}
	res, err := cd.EvaluateCode(ctx, cfg, []byte(code), seed, eopts)
	if err != nil && ctx.Err() == nil {
		// Source that does not build or run fails the same way every time.
		return res, temporal.NewNonRetryableApplicationError("candidate code: "+err.Error(), "CodeFailed", err)
	}
	return res, err
}

func finiteValues(v map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(v))
	for k, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out[k] = x
		}
	}
	return out
}

// finiteItems drops items with a non-finite value (they cannot be signed);
// such a result is then judged by the seed term alone.
func finiteItems(it *domains.Items) *domains.Items {
	if it == nil {
		return nil
	}
	for _, v := range it.Values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
	}
	if math.IsNaN(it.Scale) || math.IsInf(it.Scale, 0) {
		return nil
	}
	return it
}

func contentType(name string) string {
	switch {
	case len(name) > 5 && name[len(name)-5:] == ".json":
		return "application/json"
	case len(name) > 4 && name[len(name)-4:] == ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// selection discounts a result for the configs the campaign has tried
// (this one included) where the domain has such a statistic (finance's deflated
// Sharpe ratio); nil elsewhere.
// The campaign's other configs are read (tried) only for such a domain.
func selection(d domains.Domain, out workflows.Outcome, tried func() (store.Trials, error)) (*receipt.Selection, error) {
	sd, ok := d.(domains.SelectionDomain)
	if !ok {
		return nil, nil
	}
	others, err := tried()
	if err != nil {
		return nil, err
	}
	t := others.With(out.Metric)
	method, em, dsr, ok := sd.Deflate(out.Values, t.N, t.Var)
	if !ok {
		return nil, nil
	}
	return &receipt.Selection{Method: method, Trials: t.N, TrialVar: t.Var, ExpectedMax: em, Deflated: dsr}, nil
}

// RecordResult signs the research receipt, judges it against the noise floor
// and the campaign's best, stores it, and promotes its artifacts. The
// judgement and the insert are one transaction under the campaign's lock
// (Store.RecordExperiment): two agents recording at once are judged one
// after the other, each against the best the other left. It is idempotent:
// a retry (on this node or on another the agent moved to) for a run that
// is stored returns that row and signs nothing.
func (a *Activities) RecordResult(ctx context.Context, in workflows.RecordInput) (workflows.Recorded, error) {
	d, err := a.domain(ctx, in.Domain)
	if err != nil {
		return workflows.Recorded{}, err
	}
	m := d.Metric()
	k, err := a.AgentKey(ctx, in.CampaignID, in.Agent)
	if err != nil {
		return workflows.Recorded{}, err
	}
	var improvement float64
	var beats, newBest, candidate bool
	judge := func(best *store.Experiment, tried func() (store.Trials, error)) (store.Experiment, error) {
		var floor *receipt.NoiseFloor
		var judgement *noise.Judgement
		improvement, beats, newBest, candidate = 0, false, false, false
		if f := in.Floor; f != nil && f.Trials > 0 {
			// The paired, multiple-testing-corrected judgement (noise.Judge)
			// against the incumbent, with confirmation runs.
			floor = &receipt.NoiseFloor{Mean: f.Mean, SD: f.SD, N: f.N}
			if !in.Baseline {
				ji := noise.JudgeInput{Candidate: in.Outcome.Metric, Best: math.NaN(), Dir: m.Direction,
					CandItems: in.Outcome.Items, SeedSD: f.SD, SeedN: f.N, Alpha: f.Alpha, Trials: f.Trials,
					Confirmations: f.Confirmations, Seed: noise.BootstrapSeed(in.CampaignID, in.Agent, in.RunNumber)}
				if best != nil {
					ji.Best, ji.BestItems = best.Metric, itemsOf(best)
				}
				j := noise.Judge(ji)
				judgement = &j
				floor.Threshold = j.Threshold
				beats = j.Pass
				switch {
				case in.Confirm != nil:
					// The workflow confirms in order and stops at the first
					// failure, so passing the last one completes the set.
					newBest = beats && in.Confirm.Index >= in.Confirm.Total
				case f.Confirmations > 0:
					candidate = beats
				default:
					newBest = beats
				}
			}
		} else if in.Floor != nil {
			f := noise.Floor{Mean: in.Floor.Mean, SD: in.Floor.SD, N: in.Floor.N, K: in.Floor.K}
			floor = &receipt.NoiseFloor{Mean: f.Mean, SD: f.SD, N: f.N, Threshold: f.Threshold()}
			if best != nil {
				beats = f.Beats(in.Outcome.Metric, best.Metric, m.Direction)
			}
			newBest = !in.Baseline && beats
		}
		if best != nil {
			improvement = noise.Improvement(in.Outcome.Metric, best.Metric, m.Direction)
		}
		var inspired *string
		if len(in.Proposal.Parents) > 0 {
			p := in.Proposal.Parents[0]
			inspired = &p
		}
		v := in.Outcome.Values
		r := receipt.Receipt{
			Version:    1,
			Project:    projectOf(in.Domain),
			RunNumber:  in.RunNumber,
			Timestamp:  in.TimestampMs,
			Hypothesis: in.Proposal.Hypothesis,
			Config:     map[string]any(in.Proposal.Config),
			Result: receipt.Result{
				ValLoss: v["valLoss"], TrainLoss: v["trainLoss"], LossCurve: in.Outcome.Curve,
				DurationSec: in.Outcome.DurationSec, TokensPerSec: v["tokensPerSec"], TotalTokens: v["totalTokens"],
				Values: v, Items: in.Outcome.Items,
			},
			Improvement: improvement,
			IsNewBest:   newBest,
			InspiredBy:  inspired,
			Domain:      in.Domain,
			Campaign:    in.CampaignID,
			Agent:       in.Agent,
			Seed:        in.Seed,
			Metric:      receipt.MetricValue{Name: m.Name, Direction: string(m.Direction), Value: in.Outcome.Metric, TestValue: in.Outcome.TestMetric},
			Parents:     in.Proposal.Parents,
			Proposer:    in.Proposal.Proposer,
			Baseline:    in.Baseline,
			NoiseFloor:  floor,
			BeatsNoise:  beats,
			Artifacts:   in.Outcome.Artifacts,
			Code:        in.Proposal.Code,
			Judgement:   judgement,
			Candidate:   candidate,
		}
		if in.Confirm != nil {
			r.ConfirmationOf = in.Confirm.Of
		}
		sel, err := selection(d, in.Outcome, tried)
		if err != nil {
			return store.Experiment{}, err
		}
		r.Selection = sel
		signed, err := receipt.Sign(r, k)
		if err != nil {
			return store.Experiment{}, temporal.NewNonRetryableApplicationError("sign receipt: "+err.Error(), "BadReceipt", err)
		}
		body, err := json.Marshal(signed)
		if err != nil {
			return store.Experiment{}, err
		}
		keys := map[string]string{}
		for name := range in.Outcome.Artifacts {
			keys[name] = blob.ExperimentKey(signed.ID, name)
		}
		test := in.Outcome.TestMetric
		return store.Experiment{
			ID: signed.ID, CampaignID: in.CampaignID, Agent: in.Agent, Domain: in.Domain, RunNumber: in.RunNumber,
			Metric: in.Outcome.Metric, TestMetric: &test, Seed: in.Seed, Status: "completed",
			Baseline: in.Baseline, IsNewBest: newBest, ConfigKey: in.Proposal.Config.Key(),
			Record: body, Artifacts: keys,
		}, nil
	}
	incumbent := in.Floor != nil && in.Floor.Trials > 0
	e, inserted, err := a.Store.RecordExperiment(ctx, in.CampaignID, in.Agent, in.RunNumber, in.Proposal.Config.Key(), m.Direction == domains.Minimize, incumbent, judge)
	if err != nil {
		return workflows.Recorded{}, err
	}
	// Artifacts move from staging to the receipt's id after the row is
	// committed (a retry after a crash here finishes the move).
	if _, err := a.Blob.Promote(ctx, in.Outcome.StagingPrefix, e.ID); err != nil {
		return workflows.Recorded{}, err
	}
	if err := a.Blob.RemovePrefix(ctx, in.Outcome.StagingPrefix); err != nil {
		a.log().Warn("staging cleanup failed", "prefix", in.Outcome.StagingPrefix, "error", err)
	}
	if !inserted {
		return recordedFrom(e, false)
	}
	metrics.ExperimentsRecorded.WithLabelValues(in.Domain).Inc()
	if newBest {
		metrics.NewBests.WithLabelValues(in.Domain).Inc()
	}
	return workflows.Recorded{ExperimentID: e.ID, Metric: e.Metric, TestMetric: in.Outcome.TestMetric,
		IsNewBest: newBest, BeatsNoise: beats, Candidate: candidate, Improvement: improvement, Inserted: true}, nil
}

func recordedFrom(e store.Experiment, inserted bool) (workflows.Recorded, error) {
	var s receipt.Signed
	if err := json.Unmarshal(e.Record, &s); err != nil {
		return workflows.Recorded{}, fmt.Errorf("decode stored experiment %s: %w", e.ID, err)
	}
	test := 0.0
	if e.TestMetric != nil {
		test = *e.TestMetric
	}
	return workflows.Recorded{ExperimentID: e.ID, Metric: e.Metric, TestMetric: test, IsNewBest: e.IsNewBest,
		BeatsNoise: s.Receipt.BeatsNoise, Candidate: s.Receipt.Candidate, Improvement: s.Receipt.Improvement, Inserted: inserted}, nil
}

// itemsOf is the per-item scores on a stored experiment's receipt (nil
// when it has none or cannot be read: the comparison then has no item
// term).
func itemsOf(e *store.Experiment) *domains.Items {
	var s struct {
		Receipt struct {
			Result struct {
				Items *domains.Items `json:"items"`
			} `json:"result"`
		} `json:"receipt"`
	}
	if json.Unmarshal(e.Record, &s) != nil {
		return nil
	}
	return s.Receipt.Result.Items
}

// projectOf names the data set a domain's records belong to (the public
// format's "project").
func projectOf(domain string) string {
	switch domain {
	case "ml", "search":
		return "cranfield"
	}
	return domain
}
