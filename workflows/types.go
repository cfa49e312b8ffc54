// Package workflows holds Hyperspace's deterministic orchestration: a
// research campaign (CampaignWorkflow) runs a noise-floor baseline, then one
// AgentWorkflow child per agent, each looping research cycles:
//
//	Hypothesize -> RunExperiment -> RecordResult -> [Share] -> [Synthesize/Review] -> evolve
//
// Workflows do no I/O: they call activities by name (see activities/) with
// the typed inputs defined here.
package workflows

import (
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Task queues.
const (
	// TaskQueue serves workflows and the agent-side activities
	// (Hypothesize, RecordResult, campaign bookkeeping).
	TaskQueue = "hyperspace"
	// ExperimentsQueue serves RunExperiment on CPU/GPU machines.
	ExperimentsQueue = "experiments"
)

// Activity names (registered by activities.Activities).
const (
	ActHypothesize       = "Hypothesize"
	ActRunExperiment     = "RunExperiment"
	ActRecordResult      = "RecordResult"
	ActSetCampaignStatus = "SetCampaignStatus"
	ActRegisterAgent     = "RegisterAgent"
	ActShare             = "Share"
	// ActPickNode picks a live node for an agent whose node is gone;
	// ActLiveNodes lists the live nodes' queues (reviewers).
	ActPickNode  = "PickNode"
	ActLiveNodes = "LiveNodes"
)

// parentAbandon lets a child outlive its parent's run and ContinueAsNew.
const parentAbandon = enumspb.PARENT_CLOSE_POLICY_ABANDON

// PickNodeInput asks for a live node for an agent.
type PickNodeInput struct {
	Agent string `json:"agent"`
	// Exclude are node queues not to pick (the one that stopped answering).
	Exclude []string `json:"exclude,omitempty"`
}

// Signal and query names.
const (
	SignalStop    = "stop"
	QueryProgress = "progress"
)

// Limits enforced by ValidateCampaign (and by the REST API before it).
const (
	MaxAgents            = 64
	MaxExperiments       = 10_000
	MinBaselineSeeds     = 3
	MaxBaselineSeeds     = 32
	MaxBudgetSeconds     = 6 * 3600
	DefaultCyclesPerRun  = 10
	DefaultHeartbeatSecs = 20
	// DefaultBudgetSeconds caps one experiment's wall time when a campaign
	// names no budget: proposals may grow a model or its token budget, and a
	// campaign must still end. A capped run is marked truncated.
	DefaultBudgetSeconds = 120
)

// LLMConfig selects an OpenAI-compatible endpoint for Hypothesize. The API
// key never enters workflow history: workers read it from their own
// configuration (HYPERSPACE_LLM_API_KEY).
type LLMConfig struct {
	BaseURL string `json:"baseUrl"`
	Model   string `json:"model"`
}

// CampaignInput starts a campaign.
type CampaignInput struct {
	CampaignID string `json:"campaignId"`
	// ExperimentsQueue runs RunExperiment (empty: ExperimentsQueue; GPUQueue
	// for a campaign that asks for an accelerator).
	ExperimentsQueue string `json:"experimentsQueue,omitempty"`
	Domain           string `json:"domain"`
	// Direction of the domain's metric (from the domain registry).
	Direction domains.Direction `json:"direction"`
	Agents    int               `json:"agents"`
	// ExperimentsPerAgent research experiments each agent runs after the baseline.
	ExperimentsPerAgent int `json:"experimentsPerAgent"`
	// BaselineSeeds runs of the baseline config that measure the noise floor.
	BaselineSeeds int `json:"baselineSeeds"`
	// BudgetSeconds caps one experiment's wall time (0: the domain's own budget).
	BudgetSeconds float64 `json:"budgetSeconds"`
	// Baseline is the normalised baseline config (the domain's, with overrides).
	Baseline domains.Config `json:"baseline"`
	Seed     int64          `json:"seed"`
	LLM      *LLMConfig     `json:"llm,omitempty"`
	// CyclesPerRun bounds each AgentWorkflow run's history: after this many
	// cycles it continues as new.
	CyclesPerRun int `json:"cyclesPerRun"`
	// HeartbeatSeconds is RunExperiment's heartbeat timeout: a worker silent
	// this long is presumed dead and the experiment reruns elsewhere.
	HeartbeatSeconds int `json:"heartbeatSeconds"`
	// Isolated agents see only their own results (and the baseline) when
	// they hypothesize; by default (false) they see everything the site and
	// the network know.
	Isolated bool `json:"isolated,omitempty"`
	// NodeQueues are the task queues (node-<peerID>) of the P2P nodes the
	// agents are spread over, round-robin; empty: the agent-side activities
	// run on TaskQueue and nothing is shared over gossip.
	NodeQueues []string `json:"nodeQueues,omitempty"`
	// Community turns on papers, peer review, evolve and the archive
	// (nil: none of them, as in campaigns recorded before they existed).
	Community *Community `json:"community,omitempty"`
	// Judge turns on noise.Judge with confirmation runs (nil: the K*SD
	// floor alone, as in campaigns recorded before it existed).
	Judge *JudgeConfig `json:"judge,omitempty"`
}

// JudgeConfig is how a campaign judges new bests (see NoiseFloor).
type JudgeConfig struct {
	Alpha         float64 `json:"alpha"`
	Confirmations int     `json:"confirmations"`
}

// DefaultConfirmations and MaxConfirmations bound a campaign's
// confirmation runs per candidate.
const (
	DefaultConfirmations = 2
	MaxConfirmations     = 5
)

// NodeQueue is the task queue of the P2P node with this peer id.
func NodeQueue(peerID string) string { return "node-" + peerID }

// NoiseFloor is the baseline's spread and how results are judged against
// the best. With Trials 0 (campaigns started before noise.Judge) a new best
// must beat the best by more than K*SD; otherwise noise.Judge decides, at
// family-wise rate Alpha over Trials comparisons, and a passing result is
// a candidate until Confirmations fresh-seed runs pass too.
type NoiseFloor struct {
	Mean          float64 `json:"mean"`
	SD            float64 `json:"sd"`
	N             int     `json:"n"`
	K             float64 `json:"k"`
	Alpha         float64 `json:"alpha,omitempty"`
	Trials        int     `json:"trials,omitempty"`
	Confirmations int     `json:"confirmations,omitempty"`
}

// Threshold is K*SD.
func (f NoiseFloor) Threshold() float64 { return f.K * f.SD }

// Best is one best result.
type Best struct {
	ExperimentID string  `json:"experimentId"`
	Agent        string  `json:"agent"`
	Metric       float64 `json:"metric"`
	TestMetric   float64 `json:"testMetric"`
	Hypothesis   string  `json:"hypothesis,omitempty"`
}

// AgentProgress is one agent's state, sent to the campaign after each cycle.
type AgentProgress struct {
	Agent     string `json:"agent"`
	Done      int    `json:"done"`
	Failed    int    `json:"failed"`
	Total     int    `json:"total"`
	NewBests  int    `json:"newBests"`
	Best      *Best  `json:"best,omitempty"`
	Status    string `json:"status"` // pending | running | stopped | completed | failed
	LastError string `json:"lastError,omitempty"`
	Papers    int    `json:"papers,omitempty"`
	// Node is the queue of the node the agent runs on now; Moves counts
	// how often it moved because its node stopped answering.
	Node  string `json:"node,omitempty"`
	Moves int    `json:"moves,omitempty"`
	// Candidates passed their judgement; Confirmed of them were confirmed
	// by their fresh-seed runs (ConfirmationRuns, counted apart from Done).
	Candidates       int `json:"candidates,omitempty"`
	Confirmed        int `json:"confirmed,omitempty"`
	ConfirmationRuns int `json:"confirmationRuns,omitempty"`
}

// Progress is what the campaign's `progress` query returns.
type Progress struct {
	CampaignID string                    `json:"campaignId"`
	Domain     string                    `json:"domain"`
	Direction  domains.Direction         `json:"direction,omitempty"`
	Phase      string                    `json:"phase"` // baseline | research | stopping | done
	Total      int                       `json:"total"` // baseline runs + agents*experiments
	Done       int                       `json:"done"`
	Failed     int                       `json:"failed"`
	Baseline   BaselineProgress          `json:"baseline"`
	Best       *Best                     `json:"best,omitempty"`
	Agents     map[string]*AgentProgress `json:"agents"`
	Stopped    bool                      `json:"stopped"`
}

// BaselineProgress tracks the noise-floor phase.
type BaselineProgress struct {
	Done   int         `json:"done"`
	Failed int         `json:"failed,omitempty"`
	Total  int         `json:"total"`
	Floor  *NoiseFloor `json:"floor,omitempty"`
	Values []float64   `json:"values"`
}

// Summary is CampaignWorkflow's result.
type Summary struct {
	CampaignID  string `json:"campaignId"`
	Domain      string `json:"domain"`
	Status      string `json:"status"` // completed | stopped
	Experiments int    `json:"experiments"`
	Failed      int    `json:"failed"`
	NewBests    int    `json:"newBests"`
	// ConfirmationRuns are the candidates' fresh-seed re-runs (rows of
	// their own, not counted in Experiments).
	ConfirmationRuns int             `json:"confirmationRuns,omitempty"`
	Floor            NoiseFloor      `json:"noiseFloor"`
	Best             *Best           `json:"best,omitempty"`
	Agents           []AgentProgress `json:"agents"`
}

// AgentInput is one agent's state; it is carried across ContinueAsNew.
type AgentInput struct {
	// ExperimentsQueue runs RunExperiment (empty: ExperimentsQueue).
	ExperimentsQueue string            `json:"experimentsQueue,omitempty"`
	CampaignID       string            `json:"campaignId"`
	Agent            string            `json:"agent"`
	Domain           string            `json:"domain"`
	Direction        domains.Direction `json:"direction"`
	Experiments      int               `json:"experiments"` // research experiments to run in total
	NextRun          int               `json:"nextRun"`     // next run number (after its baseline runs)
	Seed             int64             `json:"seed"`
	Floor            NoiseFloor        `json:"floor"`
	Baseline         domains.Config    `json:"baseline"`
	LLM              *LLMConfig        `json:"llm,omitempty"`
	BudgetSeconds    float64           `json:"budgetSeconds"`
	CyclesPerRun     int               `json:"cyclesPerRun"`
	HeartbeatSeconds int               `json:"heartbeatSeconds"`
	Isolated         bool              `json:"isolated,omitempty"`
	// NodeQueue runs this agent's Hypothesize, RecordResult and Share on its
	// P2P node (empty: TaskQueue, no sharing).
	NodeQueue string `json:"nodeQueue,omitempty"`
	// AllNodeQueues are the node queues of the campaign at its start
	// (reviewers are drawn from the live nodes other than the author's; this
	// list is the fallback when the live ones cannot be read).
	AllNodeQueues []string   `json:"allNodeQueues,omitempty"`
	Community     *Community `json:"community,omitempty"`
	// State carried across runs.
	Progress AgentProgress `json:"progress"`
	Stopped  bool          `json:"stopped"`
	// Window holds the receipt ids recorded since the last paper.
	Window []string `json:"window,omitempty"`
	// Papers is how many papers the agent has written.
	Papers int `json:"papers,omitempty"`
}

// HypothesizeInput asks for the next experiment.
type HypothesizeInput struct {
	CampaignID string     `json:"campaignId"`
	Domain     string     `json:"domain"`
	Agent      string     `json:"agent"`
	RunNumber  int        `json:"runNumber"`
	Seed       int64      `json:"seed"`
	LLM        *LLMConfig `json:"llm,omitempty"`
	Isolated   bool       `json:"isolated,omitempty"`
	// NoEvolve keeps peer-reviewed breakthroughs out of the context.
	NoEvolve bool `json:"noEvolve,omitempty"`
}

// ShareInput publishes a recorded experiment to the network.
type ShareInput struct {
	ExperimentID string `json:"experimentId"`
	CampaignID   string `json:"campaignId"`
	Agent        string `json:"agent"`
}

// Proposal is a hypothesis and the config that tests it.
type Proposal struct {
	Config     domains.Config `json:"config"`
	Hypothesis string         `json:"hypothesis"`
	Parents    []string       `json:"parents"`
	Strategy   string         `json:"strategy"`
	Proposer   string         `json:"proposer"`
	// Code is source code to evaluate under Config (domains.CodeDomain).
	Code string `json:"code,omitempty"`
}

// ExperimentInput runs one evaluation.
type ExperimentInput struct {
	CampaignID    string         `json:"campaignId"`
	Agent         string         `json:"agent"`
	Domain        string         `json:"domain"`
	RunNumber     int            `json:"runNumber"`
	Config        domains.Config `json:"config"`
	Seed          int64          `json:"seed"`
	BudgetSeconds float64        `json:"budgetSeconds"`
	Code          string         `json:"code,omitempty"`
}

// Outcome is what an evaluation produced (artifacts are staged in S3).
type Outcome struct {
	Metric        float64            `json:"metric"`
	TestMetric    float64            `json:"testMetric"`
	Values        map[string]float64 `json:"values"`
	Curve         [][2]float64       `json:"curve,omitempty"`
	Items         *domains.Items     `json:"items,omitempty"`
	DurationSec   float64            `json:"durationSec"`
	StagingPrefix string             `json:"stagingPrefix"`
	Artifacts     map[string]string  `json:"artifacts"` // name -> sha256 hex
	Worker        string             `json:"worker"`
	Attempt       int32              `json:"attempt"`
}

// RecordInput signs and stores one experiment.
type RecordInput struct {
	CampaignID string      `json:"campaignId"`
	Agent      string      `json:"agent"`
	Domain     string      `json:"domain"`
	RunNumber  int         `json:"runNumber"`
	Seed       int64       `json:"seed"`
	Proposal   Proposal    `json:"proposal"`
	Outcome    Outcome     `json:"outcome"`
	Baseline   bool        `json:"baseline"`
	Floor      *NoiseFloor `json:"floor,omitempty"`
	// TimestampMs comes from workflow time so a retried RecordResult signs
	// the identical receipt (same id).
	TimestampMs int64 `json:"timestampMs"`
	// Confirm is set on a confirmation run of a candidate.
	Confirm *Confirm `json:"confirm,omitempty"`
}

// Confirm names a confirmation run: the Index-th of Total fresh-seed
// re-runs of candidate Of.
type Confirm struct {
	Of    string `json:"of"`
	Index int    `json:"index"`
	Total int    `json:"total"`
}

// Recorded is the stored experiment's summary.
type Recorded struct {
	ExperimentID string  `json:"experimentId"`
	Metric       float64 `json:"metric"`
	TestMetric   float64 `json:"testMetric"`
	IsNewBest    bool    `json:"isNewBest"`
	BeatsNoise   bool    `json:"beatsNoiseFloor"`
	// Candidate: it passed and waits for its confirmation runs.
	Candidate   bool    `json:"candidate,omitempty"`
	Improvement float64 `json:"improvement"`
	Inserted    bool    `json:"inserted"`
}

// StatusInput updates a campaign's row.
type StatusInput struct {
	CampaignID string   `json:"campaignId"`
	Status     string   `json:"status"`
	Summary    *Summary `json:"summary,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// RegisterAgentInput records an agent and its signing key.
type RegisterAgentInput struct {
	CampaignID string `json:"campaignId"`
	Agent      string `json:"agent"`
}

func activityTimeouts(budget float64) time.Duration {
	if budget <= 0 {
		budget = 120
	}
	return time.Duration(budget*4)*time.Second + 2*time.Minute
}
