package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// apiClient is a small REST client for the campaign subcommands.
type apiClient struct {
	base string
	http *http.Client
	// token is sent as "Authorization: Bearer"; tokenFrom says where it
	// came from (for error messages).
	token, tokenFrom string
	// resolve, when set, fills base and token from the flags before the
	// first request (flags and env vars are only final when a command runs).
	resolve func()
}

// authHelp explains how to give the campaign commands a token.
const authHelp = "pass --token or set HYPERSPACE_TOKEN (an operator creates one with `hyperspace token create --name NAME --scopes run`); " +
	"`hyperspace dev` keeps an admin token in <state-dir>/admin.token, which these commands read when neither is given"

// authError turns a 401/403 answer into a message that says what to do.
func (a *apiClient) authError(status int, e api.ErrorDetail) error {
	e.Message, _, _ = strings.Cut(e.Message, "; send Authorization") // the server's own help, said better below
	if status == http.StatusForbidden {
		return fmt.Errorf("the API refused: %s (HTTP 403)\n  the token (%s) lacks the scope this needs: use a token with that scope; create one with `hyperspace token create --name NAME --scopes run` (or admin)", e.Message, a.tokenFrom)
	}
	if a.token == "" {
		return fmt.Errorf("the API needs a token (HTTP 401): %s\n  %s", e.Message, authHelp)
	}
	return fmt.Errorf("the API did not accept the token from %s (HTTP 401): %s\n  it may be revoked, expired or from another database; %s", a.tokenFrom, e.Message, authHelp)
}

func (a *apiClient) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	if a.resolve != nil {
		a.resolve()
		a.resolve = nil
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.base, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is the API running? see --api-url)", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e api.ErrorBody
		decoded := json.Unmarshal(data, &e) == nil && e.Error.Message != ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			if !decoded {
				e.Error.Message = strings.TrimSpace(string(data))
			}
			return a.authError(resp.StatusCode, e.Error)
		}
		if decoded {
			return fmt.Errorf("%s (%s, HTTP %d)", e.Error.Message, e.Error.Code, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func campaignCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "campaign",
		Short: "Start, inspect, follow and stop research campaigns (a REST client)",
		Long: `campaign talks to a hyperspace API. It sends the token of --token (or
HYPERSPACE_TOKEN); without one, and only for an API on loopback, it reads
<state-dir>/admin.token, which hyperspace dev writes (and
./.hyperspace/admin.token, where make up keeps it). Listing and watching
need scope read, start and stop need run.`,
	}
	cl, apiURL := addAPIFlags(cmd)

	var req api.CampaignRequest
	var agents, experiments, seeds, paperEvery, reviewers int
	var noEvolve bool
	var budget float64
	var seed int64
	var baseline, llmURL, llmModel string
	var watch bool
	start := &cobra.Command{
		Use:   "start",
		Short: "Start a campaign",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if f.Changed("agents") {
				req.Agents = &agents
			}
			if f.Changed("experiments") {
				req.Experiments = &experiments
			}
			if f.Changed("budget") {
				req.Budget = &budget
			}
			if f.Changed("baseline-seeds") {
				req.BaselineSeeds = &seeds
			}
			if f.Changed("seed") {
				req.Seed = &seed
			}
			if f.Changed("paper-every") {
				req.PaperEvery = &paperEvery
			}
			if f.Changed("reviewers") {
				req.Reviewers = &reviewers
			}
			if noEvolve {
				evolve := false
				req.Evolve = &evolve
			}
			if baseline != "" {
				if err := json.Unmarshal([]byte(baseline), &req.Baseline); err != nil {
					return fmt.Errorf("--baseline must be a JSON object: %w", err)
				}
			}
			if llmURL != "" {
				req.LLM = &workflows.LLMConfig{BaseURL: llmURL, Model: llmModel}
			}
			var out api.CampaignView
			if err := cl.do(cmd.Context(), http.MethodPost, "/api/v1/campaigns", req, &out); err != nil {
				return err
			}
			fmt.Printf("started campaign %s (%s, %d agents x %d experiments, %d baseline seeds)\n",
				out.ID, out.Domain, out.Agents, out.Experiments, out.BaselineSeeds)
			if u := out.Links["temporalUI"]; u != "" {
				fmt.Println("  Temporal UI:", u)
			}
			if watch {
				return watchCampaign(cmd.Context(), cl, out.ID, os.Stdout)
			}
			fmt.Printf("  follow it:   hyperspace campaign watch %s --api-url %s\n", out.ID, *apiURL)
			return nil
		},
	}
	sf := start.Flags()
	sf.StringVar(&req.Domain, "domain", "ml", "research domain (see GET /api/v1/domains)")
	sf.StringVar(&req.ID, "id", "", "campaign id (default: generated)")
	sf.IntVar(&agents, "agents", 2, "number of agents")
	sf.IntVar(&experiments, "experiments", 5, "experiments per agent after the baseline")
	sf.Float64Var(&budget, "budget", 120, "wall-clock cap of one experiment in seconds (a capped run is marked truncated)")
	sf.IntVar(&seeds, "baseline-seeds", 3, "baseline seeds that measure the noise floor")
	sf.Int64Var(&seed, "seed", 0, "campaign seed (default: random)")
	sf.StringVar(&baseline, "baseline", "", `JSON object overriding baseline parameters, e.g. '{"tokenBudget":200000}'`)
	sf.StringVar(&llmURL, "llm-base-url", "", "OpenAI-compatible endpoint for hypotheses, e.g. http://127.0.0.1:8000/v1 (default: built-in proposer)")
	sf.StringVar(&llmModel, "llm-model", "", "model name at --llm-base-url")
	sf.BoolVar(&watch, "watch", false, "follow the campaign after starting it")
	sf.IntVar(&paperEvery, "paper-every", 5, "each agent writes a paper every N experiments (default: the server's; 0: no papers)")
	sf.IntVar(&reviewers, "reviewers", 3, "peer reviewers per paper, on nodes other than the author's")
	sf.BoolVar(&noEvolve, "no-evolve", false, "keep peer-reviewed breakthroughs out of the hypothesis context")

	status := &cobra.Command{
		Use:   "status ID",
		Short: "Show a campaign's status and progress as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return printJSON(cmd.Context(), cl, "/api/v1/campaigns/"+args[0])
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List campaigns, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct{ Campaigns []api.CampaignView }
			if err := cl.do(cmd.Context(), http.MethodGet, "/api/v1/campaigns", nil, &out); err != nil {
				return err
			}
			fmt.Printf("%-28s %-8s %-10s %6s %6s  %s\n", "ID", "DOMAIN", "STATUS", "AGENTS", "EXP", "CREATED")
			for _, c := range out.Campaigns {
				fmt.Printf("%-28s %-8s %-10s %6d %6d  %s\n", c.ID, c.Domain, c.Status, c.Agents, c.Experiments, c.CreatedAt.Local().Format(time.DateTime))
			}
			return nil
		},
	}
	watchC := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a campaign: a progress bar and the best metric so far",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return watchCampaign(cmd.Context(), cl, args[0], os.Stdout)
		},
	}
	stop := stopCmd(cl, "campaign", "/api/v1/campaigns/", "Ask a campaign's agents to finish their current experiment and stop")
	cmd.AddCommand(start, status, list, watchC, stop)
	return cmd
}

// stopCmd is "stop ID": POST base+ID+"/stop" and print the server's message.
func stopCmd(cl *apiClient, noun, base, short string) *cobra.Command {
	return &cobra.Command{
		Use:   "stop ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := cl.do(cmd.Context(), http.MethodPost, base+args[0]+"/stop", nil, &out); err != nil {
				return err
			}
			fmt.Printf("%s %s: %v\n", noun, args[0], out["message"])
			return nil
		},
	}
}

// printJSON prints the indented JSON answer of GET path.
func printJSON(ctx context.Context, cl *apiClient, path string) error {
	var out json.RawMessage
	if err := cl.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	var buf bytes.Buffer
	_ = json.Indent(&buf, out, "", "  ")
	fmt.Println(buf.String())
	return nil
}

// addAPIFlags gives a REST-client command its --api-url, --token and
// --state-dir flags and returns the client they configure.
func addAPIFlags(cmd *cobra.Command) (*apiClient, *string) {
	var apiURL, tokenFlag, stateDir string
	cl := &apiClient{http: &http.Client{Timeout: 30 * time.Second}}
	pf := cmd.PersistentFlags()
	pf.StringVar(&apiURL, "api-url", "http://127.0.0.1:8080", "base URL of a hyperspace API")
	pf.StringVar(&tokenFlag, "token", "", "API token (hs_...); default, for an API on loopback: the admin token hyperspace dev keeps in <state-dir>/admin.token")
	pf.StringVar(&stateDir, "state-dir", defaultStateDir(), "where hyperspace dev keeps admin.token (read when no --token is given)")
	cl.resolve = func() {
		cl.base = apiURL
		cl.token, cl.tokenFrom = resolveToken(tokenFlag, stateDir, cmd.PersistentFlags().Changed("state-dir") || os.Getenv("HYPERSPACE_STATE_DIR") != "", isLoopbackURL(apiURL))
	}
	return cl, &apiURL
}

// resolveToken picks the token the campaign commands send: --token (or
// HYPERSPACE_TOKEN), else <state-dir>/admin.token, else (unless a state
// dir was named) ./.hyperspace/admin.token, where make up keeps it. The
// files hold the local dev server's admin token, so they are read only
// for an API on loopback: it is never sent to another machine unasked.
func resolveToken(flag, stateDir string, stateDirGiven, loopback bool) (tok, from string) {
	if t := strings.TrimSpace(flag); t != "" {
		return t, "--token/HYPERSPACE_TOKEN"
	}
	if !loopback {
		return "", ""
	}
	files := []string{adminTokenFile(stateDir)}
	if !stateDirGiven {
		files = append(files, adminTokenFile(".hyperspace"))
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			if t := strings.TrimSpace(string(b)); t != "" {
				return t, f
			}
		}
	}
	return "", ""
}

// isLoopbackURL reports whether u names a host on loopback.
func isLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := p.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// watchCampaign polls the campaign and draws a progress bar until it ends.
func watchCampaign(ctx context.Context, cl *apiClient, id string, w *os.File) error {
	tty := isTerminal(w)
	last := ""
	for {
		var v api.CampaignView
		if err := cl.do(ctx, http.MethodGet, "/api/v1/campaigns/"+id, nil, &v); err != nil {
			return err
		}
		line := renderProgress(v)
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else if line != last {
			fmt.Fprintln(w, line)
		}
		last = line
		switch v.Status {
		case "completed", "stopped", "failed":
			if tty {
				fmt.Fprintln(w)
			}
			if v.Error != "" {
				fmt.Fprintln(w, "error:", v.Error)
			}
			if len(v.Summary) > 0 {
				var s workflows.Summary
				if json.Unmarshal(v.Summary, &s) == nil && s.Best != nil {
					fmt.Fprintf(w, "best: %.4f by %s (experiment %s; test %.4f); noise floor %.4f ± %.4f (n=%d)\n",
						s.Best.Metric, s.Best.Agent, short(s.Best.ExperimentID), s.Best.TestMetric, s.Floor.Mean, s.Floor.SD, s.Floor.N)
				}
			}
			var papers struct{ Papers []api.PaperSummary }
			if err := cl.do(ctx, http.MethodGet, "/api/v1/papers?campaign="+url.QueryEscape(id), nil, &papers); err == nil && len(papers.Papers) > 0 {
				fmt.Fprintf(w, "papers: %d (peer review continues after the campaign; GET /api/v1/papers?campaign=%s)\n", len(papers.Papers), id)
				for _, p := range papers.Papers {
					verdict := p.Status
					if p.Score != nil {
						verdict = fmt.Sprintf("median %.1f", *p.Score)
					}
					if p.Breakthrough {
						verdict += ", breakthrough"
					}
					fmt.Fprintf(w, "  %s  %s  [%s]\n", short(p.ID), p.Title, verdict)
				}
			}
			if v.Status == "failed" {
				return fmt.Errorf("campaign %s failed", id)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func renderProgress(v api.CampaignView) string {
	p := v.Progress
	if p == nil {
		return fmt.Sprintf("%s  %s", v.ID, v.Status)
	}
	const width = 30
	frac := 0.0
	if p.Total > 0 {
		frac = float64(p.Done+p.Failed) / float64(p.Total)
	}
	n := int(frac * width)
	bar := strings.Repeat("█", n) + strings.Repeat("░", width-n)
	best := "-"
	if p.Best != nil {
		best = fmt.Sprintf("%.4f (%s)", p.Best.Metric, p.Best.Agent)
	}
	floor := ""
	if p.Baseline.Floor != nil {
		floor = fmt.Sprintf("  floor %.4f±%.4f", p.Baseline.Floor.Mean, p.Baseline.Floor.SD)
	}
	failed := ""
	if p.Failed > 0 {
		failed = fmt.Sprintf(" (%d failed)", p.Failed)
	}
	return fmt.Sprintf("%s %3.0f%% %d/%d%s  %-8s best %s%s", bar, frac*100, p.Done+p.Failed, p.Total, failed, p.Phase, best, floor)
}
