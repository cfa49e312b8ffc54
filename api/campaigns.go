package api

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/noise"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// CampaignRequest is the body of POST /api/v1/campaigns.
type CampaignRequest struct {
	// ID is optional; a new one is generated when empty.
	ID     string `json:"id,omitempty"`
	Domain string `json:"domain"`
	// Agents is the number of agents (default 2).
	Agents *int `json:"agents,omitempty"`
	// Experiments per agent after the baseline (default 5).
	Experiments *int `json:"experiments,omitempty"`
	// Budget caps one experiment's wall time in seconds (default 120).
	Budget *float64 `json:"budget,omitempty"`
	// BaselineSeeds is how many seeds measure the noise floor (default 3).
	BaselineSeeds *int `json:"baselineSeeds,omitempty"`
	// Seed makes the campaign reproducible (default: random).
	Seed *int64 `json:"seed,omitempty"`
	// Baseline overrides parameters of the domain's baseline config.
	Baseline map[string]any `json:"baseline,omitempty"`
	// LLM selects an OpenAI-compatible endpoint for hypotheses (default: the built-in proposer).
	LLM *workflows.LLMConfig `json:"llm,omitempty"`
	// Isolated agents see only their own results when they hypothesize
	// (for measuring what sharing is worth); default false.
	Isolated bool `json:"isolated,omitempty"`
	// Nodes are the peer ids of this site's P2P nodes to spread agents over
	// (default: every live node; none live: no gossip).
	Nodes []string `json:"nodes,omitempty"`
	// PaperEvery: each agent writes a paper after every PaperEvery
	// experiments, peer-reviewed on other nodes (default: the server's,
	// 5 under hyperspace dev; 0 turns papers off).
	PaperEvery *int `json:"paperEvery,omitempty"`
	// Reviewers per paper (default 3; fewer when fewer other nodes exist).
	Reviewers *int `json:"reviewers,omitempty"`
	// Backend asks for a worker kind for the experiments: "go" (default,
	// the experiments queue) or "torch" (experiments-gpu: workers that
	// declare an accelerator and train ML with PyTorch).
	Backend string `json:"backend,omitempty"`
	// Evolve puts peer-reviewed breakthroughs first in the hypothesis
	// context (default true; false for measuring what evolve does).
	Evolve *bool `json:"evolve,omitempty"`
	// Confirmations are the fresh-seed re-runs a candidate must also pass
	// before it is signed as a new best (default 2, 0 to 5).
	Confirmations *int `json:"confirmations,omitempty"`
	// Alpha is the campaign-wide family-wise error rate of new bests
	// (default 0.05, in (0, 0.5]).
	Alpha *float64 `json:"alpha,omitempty"`
}

var campaignIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,47}$`)

// WorkflowID is the Temporal workflow id of a campaign.
func WorkflowID(campaignID string) string { return "campaign-" + campaignID }

func newCampaignID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "c" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func randomSeed() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) & workflows.MaxSeed)
}

// decodeJSON reads a strict JSON body: the right Content-Type, no unknown
// fields, exactly one value.
func decodeJSON(c *gin.Context, v any) error {
	ct := c.GetHeader("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return newErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			fmt.Sprintf("Content-Type must be application/json, got %q", ct))
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newErr(http.StatusBadRequest, CodeInvalidJSON, "body must hold exactly one JSON object")
	}
	return nil
}

func jsonErr(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return newErr(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit))
	case errors.As(err, &syn):
		return newErr(http.StatusBadRequest, CodeInvalidJSON, fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err))
	case errors.As(err, &typ) && typ.Field == "":
		return &apiError{Status: http.StatusUnprocessableEntity, ErrorDetail: ErrorDetail{Code: CodeInvalidField,
			Message: "the body must be a JSON object, got JSON " + typ.Value}}
	case errors.As(err, &typ):
		return fieldErr(typ.Field, fmt.Sprintf("must be %s, got JSON %s", jsonType(typ.Type), typ.Value))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return newErr(http.StatusBadRequest, CodeInvalidJSON, "empty or truncated JSON body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fieldErr(f, "unknown field")
	}
	return newErr(http.StatusBadRequest, CodeInvalidJSON, err.Error())
}

// jsonType names the JSON value a Go type decodes from.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "a JSON value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "a JSON value"
}

// buildCampaign validates a request into a workflow input.
func (s *Server) buildCampaign(req CampaignRequest, resolve func(string) (domains.Domain, bool, error)) (workflows.CampaignInput, error) {
	in := workflows.CampaignInput{
		CampaignID: req.ID, Agents: 2, ExperimentsPerAgent: 5, BaselineSeeds: 3, BudgetSeconds: workflows.DefaultBudgetSeconds,
		CyclesPerRun: workflows.DefaultCyclesPerRun, HeartbeatSeconds: workflows.DefaultHeartbeatSecs,
	}
	if s.DefaultBaselineSeeds > 0 {
		in.BaselineSeeds = s.DefaultBaselineSeeds
	}
	if s.DefaultHeartbeatSeconds > 0 {
		in.HeartbeatSeconds = s.DefaultHeartbeatSeconds
	}
	if in.CampaignID == "" {
		in.CampaignID = newCampaignID()
	} else if !campaignIDPattern.MatchString(in.CampaignID) {
		return in, fieldErr("id", "must match "+campaignIDPattern.String())
	}
	if req.Domain == "" {
		return in, fieldErr("domain", "required; one of "+strings.Join(s.Domains.Names(), ", "))
	}
	d, ok, err := resolve(req.Domain)
	if err != nil {
		return in, err
	}
	if !ok {
		return in, fieldErr("domain", fmt.Sprintf("unknown domain %q; known: %s", req.Domain, strings.Join(s.Domains.Names(), ", ")))
	}
	in.Domain, in.Direction = d.Name(), d.Metric().Direction
	if req.Agents != nil {
		if *req.Agents < 1 || *req.Agents > workflows.MaxAgents {
			return in, fieldErr("agents", fmt.Sprintf("must be between 1 and %d, got %d", workflows.MaxAgents, *req.Agents))
		}
		in.Agents = *req.Agents
	}
	if req.Experiments != nil {
		if *req.Experiments < 1 || *req.Experiments > workflows.MaxExperiments {
			return in, fieldErr("experiments", fmt.Sprintf("must be between 1 and %d per agent, got %d", workflows.MaxExperiments, *req.Experiments))
		}
		in.ExperimentsPerAgent = *req.Experiments
	}
	in.Judge = &workflows.JudgeConfig{Alpha: noise.DefaultAlpha, Confirmations: workflows.DefaultConfirmations}
	if req.Confirmations != nil {
		if c := *req.Confirmations; c < 0 || c > workflows.MaxConfirmations {
			return in, fieldErr("confirmations", fmt.Sprintf("must be between 0 and %d, got %d", workflows.MaxConfirmations, c))
		}
		in.Judge.Confirmations = *req.Confirmations
	}
	if req.Alpha != nil {
		if a := *req.Alpha; math.IsNaN(a) || a <= 0 || a > 0.5 {
			return in, fieldErr("alpha", fmt.Sprintf("must be > 0 and <= 0.5, got %v", a))
		}
		in.Judge.Alpha = *req.Alpha
	}
	if req.Budget != nil {
		b := *req.Budget
		if math.IsNaN(b) || b <= 0 || b > workflows.MaxBudgetSeconds {
			return in, fieldErr("budget", fmt.Sprintf("seconds per experiment must be > 0 and <= %d, got %v", workflows.MaxBudgetSeconds, b))
		}
		in.BudgetSeconds = b
	}
	if req.BaselineSeeds != nil {
		n := *req.BaselineSeeds
		if n < workflows.MinBaselineSeeds || n > workflows.MaxBaselineSeeds {
			return in, fieldErr("baselineSeeds", fmt.Sprintf("must be between %d and %d (the noise floor needs repeats), got %d", workflows.MinBaselineSeeds, workflows.MaxBaselineSeeds, n))
		}
		in.BaselineSeeds = n
	}
	if req.Seed != nil {
		if *req.Seed < 0 || *req.Seed > workflows.MaxSeed {
			return in, fieldErr("seed", fmt.Sprintf("must be between 0 and %d", int64(workflows.MaxSeed)))
		}
		in.Seed = *req.Seed
	} else {
		in.Seed = randomSeed()
	}
	base := d.Baseline().Clone()
	for k, v := range req.Baseline {
		base[k] = v
	}
	cfg, err := d.Validate(base)
	if err != nil {
		var fe *domains.FieldError
		if errors.As(err, &fe) {
			return in, fieldErr("baseline."+fe.Field, fe.Message)
		}
		return in, fieldErr("baseline", err.Error())
	}
	in.Baseline = cfg
	if req.LLM != nil {
		u, err := url.Parse(req.LLM.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return in, fieldErr("llm.baseUrl", "must be an http(s) URL such as http://127.0.0.1:8080/v1")
		}
		if req.LLM.Model == "" {
			return in, fieldErr("llm.model", "required when llm is set")
		}
		if strings.IndexFunc(req.LLM.Model, unicode.IsControl) >= 0 {
			// It is stored (JSONB, and "llm:<model>" in every signed
			// receipt), and PostgreSQL cannot store NUL.
			return in, fieldErr("llm.model", "must not contain control characters")
		}
		if s.LLMAllow.Empty() {
			return in, fieldErr("llm.baseUrl", "this server allows no LLM endpoints; an operator allows one by starting the api and the workers with --llm-allow "+
				"<url prefix> (or HYPERSPACE_LLM_ALLOW), e.g. --llm-allow http://127.0.0.1:8000/v1; omit llm to use the built-in proposer")
		}
		if !s.LLMAllow.Allows(req.LLM.BaseURL) {
			return in, fieldErr("llm.baseUrl", fmt.Sprintf("%q is not on this server's LLM allow-list; an operator adds it with --llm-allow "+
				"(or HYPERSPACE_LLM_ALLOW) on the api and the workers; omit llm to use the built-in proposer", req.LLM.BaseURL))
		}
		in.LLM = req.LLM
	}
	in.Isolated = req.Isolated
	comm := workflows.Community{PaperEvery: s.DefaultPaperEvery, Reviewers: workflows.DefaultReviewers, Archive: s.Archive != nil}
	if req.PaperEvery != nil {
		if *req.PaperEvery < 0 || *req.PaperEvery > workflows.MaxExperiments {
			return in, fieldErr("paperEvery", fmt.Sprintf("must be between 0 (no papers) and %d, got %d", workflows.MaxExperiments, *req.PaperEvery))
		}
		comm.PaperEvery = *req.PaperEvery
	}
	if req.Reviewers != nil {
		if *req.Reviewers < 1 || *req.Reviewers > 16 {
			return in, fieldErr("reviewers", fmt.Sprintf("must be between 1 and 16, got %d", *req.Reviewers))
		}
		comm.Reviewers = *req.Reviewers
	}
	if req.Evolve != nil {
		comm.NoEvolve = !*req.Evolve
	}
	if comm.PaperEvery > 0 || comm.Archive || comm.NoEvolve {
		in.Community = &comm
	}
	switch req.Backend {
	case "", "go":
	case "torch":
		in.ExperimentsQueue = workflows.GPUQueue
	default:
		return in, fieldErr("backend", fmt.Sprintf("%q is not go or torch", req.Backend))
	}
	if err := workflows.ValidateCampaign(in); err != nil {
		return in, fieldErr("campaign", err.Error())
	}
	return in, nil
}

// nodeLiveness is how recently a node must have heartbeated to get agents.
const nodeLiveness = 30 * time.Second

// assignNodes picks the task queues of the P2P nodes the agents run on.
func (s *Server) assignNodes(c *gin.Context, req CampaignRequest, in *workflows.CampaignInput) error {
	live, err := s.Store.LiveNodes(c.Request.Context(), nodeLiveness)
	if err != nil {
		return err
	}
	byID := map[string]string{}
	for _, n := range live {
		byID[n.PeerID] = n.TaskQueue
	}
	if len(req.Nodes) == 0 {
		for _, n := range live {
			in.NodeQueues = append(in.NodeQueues, n.TaskQueue)
		}
		return nil
	}
	for i, id := range req.Nodes {
		q, ok := byID[id]
		if !ok {
			return fieldErr(fmt.Sprintf("nodes[%d]", i), fmt.Sprintf("no live node %q (see GET /api/v1/nodes)", id))
		}
		in.NodeQueues = append(in.NodeQueues, q)
	}
	return nil
}

// CampaignView is a campaign as the API returns it.
type CampaignView struct {
	store.Campaign
	Progress *workflows.Progress `json:"progress,omitempty"`
	Links    map[string]string   `json:"links"`
}

func (s *Server) view(c store.Campaign) CampaignView {
	v := CampaignView{Campaign: c, Links: map[string]string{
		"self":        "/api/v1/campaigns/" + c.ID,
		"experiments": "/api/v1/experiments?campaign=" + url.QueryEscape(c.ID),
		"leaderboard": "/api/v1/domains/" + c.Domain + "/leaderboard",
	}}
	if s.TemporalUIURL != "" {
		ns := s.Namespace
		if ns == "" {
			ns = "default"
		}
		v.Links["temporalUI"] = fmt.Sprintf("%s/namespaces/%s/workflows/%s", s.TemporalUIURL, url.PathEscape(ns), url.PathEscape(c.WorkflowID))
	}
	return v
}

func (s *Server) createCampaign(c *gin.Context) {
	var req CampaignRequest
	if err := decodeJSON(c, &req); err != nil {
		s.writeErr(c, err)
		return
	}
	in, err := s.buildCampaign(req, func(name string) (domains.Domain, bool, error) { return s.resolveDomain(c, name) })
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if err := s.assignNodes(c, req, &in); err != nil {
		s.writeErr(c, err)
		return
	}
	ctx := c.Request.Context()
	if _, err := s.Store.GetCampaign(ctx, in.CampaignID); err == nil {
		s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "campaign "+in.CampaignID+" already exists"))
		return
	}
	reqJSON, _ := json.Marshal(in)
	row := store.Campaign{
		ID: in.CampaignID, Domain: in.Domain, Status: store.StatusPending, Agents: in.Agents,
		Experiments: in.ExperimentsPerAgent, BaselineSeeds: in.BaselineSeeds, BudgetSeconds: in.BudgetSeconds,
		Request: reqJSON, WorkflowID: WorkflowID(in.CampaignID),
	}
	if err := s.Store.CreateCampaign(ctx, row); err != nil {
		s.writeErr(c, err)
		return
	}
	_, err = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: row.WorkflowID, TaskQueue: workflows.TaskQueue,
	}, workflows.CampaignWorkflow, in)
	if err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "campaign "+in.CampaignID+" is already running"))
			return
		}
		_ = s.Store.SetCampaignStatus(ctx, in.CampaignID, store.StatusFailed, nil, "start workflow: "+err.Error())
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "could not start the campaign workflow (is Temporal up?): "+err.Error()))
		return
	}
	row, err = s.Store.GetCampaign(ctx, in.CampaignID)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, s.view(row))
}

func (s *Server) listCampaigns(c *gin.Context) {
	limit, cursor, err := pageParams(c, 50, 500)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	rows, next, err := s.Store.ListCampaigns(c.Request.Context(), limit, cursor)
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	out := make([]CampaignView, 0, len(rows))
	for _, r := range rows {
		out = append(out, s.view(r))
	}
	c.JSON(http.StatusOK, gin.H{"campaigns": out, "nextCursor": next})
}

func (s *Server) getCampaign(c *gin.Context) {
	ctx := c.Request.Context()
	row, err := s.Store.GetCampaign(ctx, c.Param("id"))
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	v := s.view(row)
	if s.Temporal != nil {
		if p, err := s.queryProgress(c, row.WorkflowID); err == nil {
			v.Progress = p
		} else {
			s.log().Debug("progress query failed", "campaign", row.ID, "error", err)
		}
	}
	c.JSON(http.StatusOK, v)
}

// queryProgress asks the campaign workflow for its progress, then each
// running agent's workflow for its own (the campaign does not hear from its
// agents while they run: its history stays bounded), and merges them.
func (s *Server) queryProgress(c *gin.Context, wfID string) (*workflows.Progress, error) {
	ctx, cancel := contextWithTimeout(c, 5*time.Second)
	defer cancel()
	val, err := s.Temporal.QueryWorkflow(ctx, wfID, "", workflows.QueryProgress)
	if err != nil {
		return nil, err
	}
	var p workflows.Progress
	if err := val.Get(&p); err != nil {
		return nil, err
	}
	var running []string
	for name, a := range p.Agents {
		if a.Status == "running" {
			running = append(running, name)
		}
	}
	type result struct {
		a  workflows.AgentProgress
		ok bool
	}
	results := make([]result, len(running))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, name := range running {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			v, err := s.Temporal.QueryWorkflow(ctx, workflows.AgentWorkflowID(p.CampaignID, name), "", workflows.QueryProgress)
			if err != nil {
				return
			}
			var a workflows.AgentProgress
			if v.Get(&a) == nil && a.Agent == name {
				results[i] = result{a, true}
			}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.ok {
			p.MergeAgent(r.a)
		}
	}
	return &p, nil
}

func (s *Server) stopCampaign(c *gin.Context) {
	ctx := c.Request.Context()
	row, err := s.Store.GetCampaign(ctx, c.Param("id"))
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	switch row.Status {
	case store.StatusCompleted, store.StatusStopped, store.StatusFailed:
		s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "campaign "+row.ID+" has already ended ("+row.Status+")"))
		return
	}
	if err := s.Temporal.SignalWorkflow(ctx, row.WorkflowID, "", workflows.SignalStop, nil); err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "campaign "+row.ID+" is not running"))
			return
		}
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "signal stop: "+err.Error()))
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"id": row.ID, "status": "stopping",
		"message": "agents finish their current experiment, then the campaign ends with status stopped"})
}
