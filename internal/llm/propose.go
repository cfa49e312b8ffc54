package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"unicode"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/proposer"
)

// StrategyLLM is the Proposal.Strategy of LLM proposals.
const StrategyLLM = "llm"

// PromptHistory is how many of the best history entries the prompt shows.
const PromptHistory = 10

// Kinds of invalid LLM proposals; a *ProposalError matches one of them
// with errors.Is.
var (
	ErrInvalidJSON    = errors.New("reply is not a JSON object")
	ErrMissingField   = errors.New("missing or mistyped field")
	ErrInvalidConfig  = errors.New("invalid config")
	ErrRepeatedConfig = errors.New("config already in history")
)

// ProposalError says exactly what was wrong with an LLM reply.
type ProposalError struct {
	Kind   error  // one of ErrInvalidJSON, ErrMissingField, ErrInvalidConfig, ErrRepeatedConfig
	Detail string // what exactly
	Err    error  // underlying error (e.g. *domains.FieldError), may be nil
}

func (e *ProposalError) Error() string {
	msg := "llm proposal: " + e.Kind.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes both the kind and the underlying error to errors.Is/As.
func (e *ProposalError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

const systemPrompt = `You are an autonomous research agent running experiments in a search space.
Each turn you propose exactly one new experiment: a complete config that has not been tried yet.
Reply with a single JSON object and nothing else:
{"hypothesis": "<one line: what you change and why you expect it to improve the metric>",
 "config": {<every parameter name>: <value>},
 "parents": ["<id of the history entry your idea builds on>", ...]}
Values must respect each parameter's kind and range: numbers for int/float (integers for int), one of the listed strings for choice, true/false for bool.`

type promptEntry struct {
	ID           string         `json:"id"`
	Metric       float64        `json:"metric"`
	Baseline     bool           `json:"baseline,omitempty"`
	Breakthrough bool           `json:"breakthrough,omitempty"`
	Config       domains.Config `json:"config"`
}

// Prompt builds the messages sent to the LLM for a proposal. Peer-reviewed
// breakthroughs in history (Entry.Breakthrough) come first, in their own
// section (evolve); notes (e.g. related work from semantic memory) follow
// the history.
func Prompt(d domains.Domain, history []proposer.Entry, notes ...string) ([]Message, error) {
	m := d.Metric()
	space, err := json.Marshal(d.Space())
	if err != nil {
		return nil, fmt.Errorf("llm: encoding space: %w", err)
	}
	base, err := json.Marshal(d.Baseline())
	if err != nil {
		return nil, fmt.Errorf("llm: encoding baseline: %w", err)
	}
	top := topEntries(history, m.Direction, PromptHistory)
	hist, err := json.MarshalIndent(top, "", " ")
	if err != nil {
		return nil, fmt.Errorf("llm: encoding history: %w", err)
	}
	better := "lower"
	if m.Direction == domains.Maximize {
		better = "higher"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Domain: %s\n%s\n\n", d.Name(), strings.TrimSpace(d.Describe()))
	fmt.Fprintf(&b, "Metric: %s (%s is better).\n\n", m.Name, better)
	fmt.Fprintf(&b, "Search space (JSON):\n%s\n\nBaseline config (JSON):\n%s\n\n", space, base)
	var breaks []proposer.Entry
	for _, e := range history {
		if e.Breakthrough {
			breaks = append(breaks, e)
		}
	}
	if len(breaks) > 0 {
		bt, err := json.MarshalIndent(topEntries(breaks, m.Direction, PromptHistory), "", " ")
		if err != nil {
			return nil, fmt.Errorf("llm: encoding breakthroughs: %w", err)
		}
		fmt.Fprintf(&b, "Peer-reviewed breakthroughs (reproduced by other agents beyond the noise floor; build on these first), best first (JSON):\n%s\n\n", bt)
	}
	fmt.Fprintf(&b, "%d experiments have been run. The best %d, best first (JSON):\n%s\n\n", len(history), len(top), hist)
	if len(notes) > 0 {
		b.WriteString("Related work from the network's memory:\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	if cd, ok := d.(domains.CodeDomain); ok {
		fmt.Fprintf(&b, "This domain also accepts source code: you may add a \"code\" key holding a complete program that replaces the generated candidate for the given config. %s\n\n", cd.CodeSpec(d.Baseline()))
	}
	b.WriteString("Propose the next experiment as a JSON object with keys hypothesis, config and parents. Do not repeat a config that was already run.")
	return []Message{{Role: "system", Content: systemPrompt}, {Role: "user", Content: b.String()}}, nil
}

// topEntries returns the best n entries with a finite metric.
func topEntries(history []proposer.Entry, dir domains.Direction, n int) []promptEntry {
	var ok []proposer.Entry
	for _, e := range history {
		if !math.IsNaN(e.Metric) && !math.IsInf(e.Metric, 0) {
			ok = append(ok, e)
		}
	}
	sort.SliceStable(ok, func(i, j int) bool { return dir.Better(ok[i].Metric, ok[j].Metric) })
	out := []promptEntry{}
	for _, e := range ok[:min(n, len(ok))] {
		out = append(out, promptEntry{ID: e.ID, Metric: e.Metric, Baseline: e.Baseline, Breakthrough: e.Breakthrough, Config: e.Config})
	}
	return out
}

// Propose asks the LLM for the next experiment and checks its answer: the
// config must pass d.Validate and must not repeat a config in history;
// parents that are not history ids (or unique id prefixes of at least 8
// characters) are dropped. Unknown top-level keys are ignored. Problems
// with the reply are *ProposalError; transport problems are returned as is
// (*APIError, context errors).
func (c *Client) Propose(ctx context.Context, d domains.Domain, history []proposer.Entry, notes ...string) (proposer.Proposal, error) {
	msgs, err := Prompt(d, history, notes...)
	if err != nil {
		return proposer.Proposal{}, err
	}
	content, err := c.Chat(ctx, msgs, ChatOptions{Temperature: 0.7})
	if err != nil {
		return proposer.Proposal{}, err
	}
	return ParseProposal(content, d, history)
}

// ParseProposal validates an LLM reply (see Client.Propose).
func ParseProposal(content string, d domains.Domain, history []proposer.Entry) (proposer.Proposal, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(StripFences(content)), &top); err != nil || top == nil {
		detail := fmt.Sprintf("got %q", Truncate(strings.TrimSpace(content), 80))
		return proposer.Proposal{}, &ProposalError{Kind: ErrInvalidJSON, Detail: detail, Err: err}
	}
	var hyp string
	if raw, ok := top["hypothesis"]; !ok || json.Unmarshal(raw, &hyp) != nil || strings.TrimSpace(hyp) == "" {
		return proposer.Proposal{}, &ProposalError{Kind: ErrMissingField, Detail: `"hypothesis" must be a non-empty string`}
	}
	var cfg map[string]any
	if raw, ok := top["config"]; !ok || json.Unmarshal(raw, &cfg) != nil || cfg == nil {
		return proposer.Proposal{}, &ProposalError{Kind: ErrMissingField, Detail: `"config" must be a JSON object`}
	}
	var parents []string
	if raw, ok := top["parents"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &parents); err != nil {
			return proposer.Proposal{}, &ProposalError{Kind: ErrMissingField, Detail: `"parents" must be an array of strings`}
		}
	}
	var code string
	if raw, ok := top["code"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &code); err != nil {
			return proposer.Proposal{}, &ProposalError{Kind: ErrMissingField, Detail: `"code" must be a string holding the whole source file`}
		}
		if _, ok := d.(domains.CodeDomain); !ok && code != "" {
			return proposer.Proposal{}, &ProposalError{Kind: ErrInvalidConfig, Detail: "domain " + d.Name() + " does not take source code"}
		}
		if len(code) > MaxCodeBytes {
			return proposer.Proposal{}, &ProposalError{Kind: ErrInvalidConfig, Detail: fmt.Sprintf("code is %d bytes; the limit is %d", len(code), MaxCodeBytes)}
		}
		if strings.IndexByte(code, 0) >= 0 {
			// Source code holds no NUL, and the receipt that carries it
			// could not be stored (PostgreSQL JSONB).
			return proposer.Proposal{}, &ProposalError{Kind: ErrInvalidConfig, Detail: "code holds a NUL character"}
		}
	}
	v, err := d.Validate(domains.Config(cfg))
	if err != nil {
		return proposer.Proposal{}, &ProposalError{Kind: ErrInvalidConfig, Err: err}
	}
	key := v.Key()
	hash := ""
	if code != "" {
		sum := sha256.Sum256([]byte(code))
		hash = hex.EncodeToString(sum[:])
	}
	for _, e := range history {
		if e.Config == nil || e.CodeHash != hash {
			continue
		}
		same := e.Config.Key() == key
		if !same {
			if hv, err := d.Validate(e.Config); err == nil && hv.Key() == key {
				same = true
			}
		}
		if same {
			return proposer.Proposal{}, &ProposalError{Kind: ErrRepeatedConfig, Detail: "same as " + short(e.ID)}
		}
	}
	return proposer.Proposal{
		Config:     v,
		Hypothesis: OneLine(hyp, 500),
		Parents:    resolveParents(parents, history),
		Strategy:   StrategyLLM,
		Code:       code,
	}, nil
}

// MaxCodeBytes bounds LLM-written source code.
const MaxCodeBytes = 128 << 10

// resolveParents keeps the parents that name history ids (exactly or as a
// unique prefix of at least 8 characters), deduplicated, in order.
func resolveParents(parents []string, history []proposer.Entry) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, p := range parents {
		p = strings.TrimSpace(p)
		id := ""
		matches := 0
		for _, e := range history {
			if e.ID == p {
				id, matches = e.ID, 1
				break
			}
			if len(p) >= 8 && strings.HasPrefix(e.ID, p) && e.ID != id {
				id = e.ID
				matches++
			}
		}
		if matches == 1 && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// stripFences removes a Markdown code fence around a reply, which some
// models add even in JSON mode.
func StripFences(s string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "```") {
		return s
	}
	s = strings.TrimPrefix(s, "```")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:] // drop the language tag line
	}
	s = strings.TrimSpace(s)
	return strings.TrimSpace(strings.TrimSuffix(s, "```"))
}

// OneLine collapses whitespace and control characters (which include
// NUL, which PostgreSQL cannot store) into single spaces and truncates to
// n bytes (plus "…").
func OneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return Truncate(strings.Join(strings.Fields(s), " "), n)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// Hypothesize proposes the next experiment. With c == nil it uses the
// built-in proposer (name "builtin"). Otherwise it asks the LLM (name
// "llm:<model>") and, on any error or unusable reply, falls back to the
// built-in proposer with name "builtin (llm fallback: <code>)", where code
// is a short fixed word (see ReasonCode): the name goes into signed
// receipts, so no provider text does; the details go to c.Logger.
// It fails only if the built-in proposer fails too.
func Hypothesize(ctx context.Context, c *Client, d domains.Domain, history []proposer.Entry, seed int64, notes ...string) (proposer.Proposal, string, error) {
	if c == nil {
		p, err := proposer.Propose(d, history, seed)
		return p, "builtin", err
	}
	p, err := c.Propose(ctx, d, history, notes...)
	if err == nil {
		return p, "llm:" + c.Model, nil
	}
	reason := ReasonCode(err)
	c.log().Warn("llm proposal failed; using the built-in proposer", "reason", reason, "endpoint", c.BaseURL, "model", c.Model, "error", err)
	p, berr := proposer.Propose(d, history, seed)
	if berr != nil {
		return proposer.Proposal{}, "", fmt.Errorf("llm failed (%s), then the builtin proposer failed: %w", reason, berr)
	}
	return p, FallbackName(reason), nil
}

// FallbackName is the proposer or writer name of a built-in fallback.
func FallbackName(reason string) string { return "builtin (llm fallback: " + reason + ")" }

// Reason codes of LLM failures: short, fixed words for signed records.
const (
	ReasonEndpointNotAllowed = "endpoint_not_allowed"
	ReasonRedirect           = "redirect_not_allowed"
	ReasonTimeout            = "timeout"
	ReasonCanceled           = "canceled"
	ReasonBadJSON            = "bad_json"
	ReasonMissingField       = "missing_field"
	ReasonInvalidConfig      = "invalid_config"
	ReasonRepeat             = "repeat"
	ReasonEmpty              = "empty_response"
	ReasonBadResponse        = "bad_response"
	ReasonClientConfig       = "client_config"
	ReasonNetwork            = "network"
	ReasonOther              = "error"
)

// ReasonCode reduces an LLM failure to a short fixed code for receipts
// and papers: http_<status> for a non-2xx answer, or one of the Reason*
// constants. It never contains text from the provider.
func ReasonCode(err error) string {
	var apiErr *APIError
	var pe *ProposalError
	var netErr net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrEndpointNotAllowed):
		return ReasonEndpointNotAllowed
	case errors.Is(err, ErrRedirectNotAllowed):
		return ReasonRedirect
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.As(err, &apiErr):
		if apiErr.StatusCode >= 100 && apiErr.StatusCode <= 599 {
			return fmt.Sprintf("http_%d", apiErr.StatusCode)
		}
		return "http_error"
	case errors.As(err, &pe):
		switch {
		case errors.Is(pe.Kind, ErrInvalidJSON):
			return ReasonBadJSON
		case errors.Is(pe.Kind, ErrMissingField):
			return ReasonMissingField
		case errors.Is(pe.Kind, ErrInvalidConfig):
			return ReasonInvalidConfig
		case errors.Is(pe.Kind, ErrRepeatedConfig):
			return ReasonRepeat
		}
	case errors.Is(err, ErrEmptyResponse):
		return ReasonEmpty
	case errors.Is(err, ErrBadResponse):
		return ReasonBadResponse
	case errors.Is(err, ErrClientConfig):
		return ReasonClientConfig
	case errors.As(err, &netErr):
		return ReasonNetwork
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) {
		return ReasonBadJSON
	}
	return ReasonOther
}
