// Package store persists campaigns, agents and experiments in PostgreSQL (pgx).
//
// Experiment writes are idempotent: the primary key is the receipt id and
// (campaign, agent, run number) is unique, so a Temporal activity retried
// after a crash can never add a second row for the same run.
package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// Store wraps a pgx pool.
type Store struct {
	Pool *pgxpool.Pool
}

// Open connects to dsn and checks the connection.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping postgres at %s: %w", redactDSN(dsn), err)
	}
	return &Store{Pool: pool}, nil
}

// Close releases the pool.
func (s *Store) Close() { s.Pool.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.Pool.Ping(ctx) }

func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "@"); i > 0 {
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			return dsn[:j+3] + "***" + dsn[i:]
		}
	}
	return dsn
}

// Campaign statuses.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusStopped   = "stopped"
	StatusFailed    = "failed"
)

// Campaign is one row of campaigns.
type Campaign struct {
	ID            string          `json:"id"`
	Domain        string          `json:"domain"`
	Status        string          `json:"status"`
	Agents        int             `json:"agents"`
	Experiments   int             `json:"experiments"`
	BaselineSeeds int             `json:"baselineSeeds"`
	BudgetSeconds float64         `json:"budgetSeconds"`
	Request       json.RawMessage `json:"request"`
	Summary       json.RawMessage `json:"summary,omitempty"`
	WorkflowID    string          `json:"workflowId"`
	Error         string          `json:"error,omitempty"`
	CreatedAt     time.Time       `json:"createdAt"`
	UpdatedAt     time.Time       `json:"updatedAt"`
}

// CreateCampaign inserts c; inserting the same id again is a no-op.
func (s *Store) CreateCampaign(ctx context.Context, c Campaign) error {
	if c.Status == "" {
		c.Status = StatusPending
	}
	_, err := s.Pool.Exec(ctx, `INSERT INTO campaigns
		(id, domain, status, agents, experiments, baseline_seeds, budget_seconds, request, workflow_id)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (id) DO NOTHING`,
		c.ID, c.Domain, c.Status, c.Agents, c.Experiments, c.BaselineSeeds, c.BudgetSeconds, []byte(c.Request), c.WorkflowID)
	if err != nil {
		return fmt.Errorf("create campaign %s: %w", c.ID, err)
	}
	return nil
}

// SetCampaignStatus updates status, and summary/error when given.
func (s *Store) SetCampaignStatus(ctx context.Context, id, status string, summary json.RawMessage, errMsg string) error {
	var sum any
	if len(summary) > 0 {
		sum = []byte(summary)
	}
	tag, err := s.Pool.Exec(ctx, `UPDATE campaigns SET status=$2, summary=COALESCE($3, summary),
		error=NULLIF($4,''), updated_at=now() WHERE id=$1`, id, status, sum, errMsg)
	if err != nil {
		return fmt.Errorf("set campaign %s status: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set campaign %s status: %w", id, ErrNotFound)
	}
	return nil
}

const campaignCols = `id, domain, status, agents, experiments, baseline_seeds, budget_seconds,
	request, summary, workflow_id, COALESCE(error,''), created_at, updated_at`

func scanCampaign(row pgx.Row) (Campaign, error) {
	var c Campaign
	var req, sum []byte
	err := row.Scan(&c.ID, &c.Domain, &c.Status, &c.Agents, &c.Experiments, &c.BaselineSeeds, &c.BudgetSeconds,
		&req, &sum, &c.WorkflowID, &c.Error, &c.CreatedAt, &c.UpdatedAt)
	c.Request, c.Summary = req, sum
	return c, err
}

// GetCampaign loads one campaign.
func (s *Store) GetCampaign(ctx context.Context, id string) (Campaign, error) {
	c, err := scanCampaign(s.Pool.QueryRow(ctx, `SELECT `+campaignCols+` FROM campaigns WHERE id=$1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("load campaign %s: %w", id, err)
	}
	return c, nil
}

// ListCampaigns returns campaigns newest first, keyset-paginated.
func (s *Store) ListCampaigns(ctx context.Context, limit int, cursor string) ([]Campaign, string, error) {
	at, id, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT ` + campaignCols + ` FROM campaigns`
	args := []any{limit + 1}
	if cursor != "" {
		q += ` WHERE (created_at, id) < ($2, $3)`
		args = append(args, at, id)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $1`
	rows, err := s.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list campaigns: %w", err)
	}
	defer rows.Close()
	var out []Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, "", fmt.Errorf("scan campaign: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	return out, next, nil
}

// Agent is one agent of a campaign.
type Agent struct {
	CampaignID string    `json:"campaignId"`
	Name       string    `json:"name"`
	PeerID     string    `json:"peerId"`
	PublicKey  string    `json:"publicKey"`
	CreatedAt  time.Time `json:"createdAt"`
}

// UpsertAgent records an agent (idempotent).
func (s *Store) UpsertAgent(ctx context.Context, a Agent) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO agents (campaign_id, name, peer_id, public_key)
		VALUES ($1,$2,$3,$4) ON CONFLICT (campaign_id, name) DO NOTHING`, a.CampaignID, a.Name, a.PeerID, a.PublicKey)
	if err != nil {
		return fmt.Errorf("record agent %s/%s: %w", a.CampaignID, a.Name, err)
	}
	return nil
}

// GetAgent returns one registered agent, or ErrNotFound.
func (s *Store) GetAgent(ctx context.Context, campaignID, name string) (Agent, error) {
	var a Agent
	err := s.Pool.QueryRow(ctx, `SELECT campaign_id, name, peer_id, public_key, created_at FROM agents WHERE campaign_id=$1 AND name=$2`,
		campaignID, name).Scan(&a.CampaignID, &a.Name, &a.PeerID, &a.PublicKey, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Agent{}, fmt.Errorf("agent %s/%s: %w", campaignID, name, ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("get agent %s/%s: %w", campaignID, name, err)
	}
	return a, nil
}

// ListAgents lists a campaign's agents.
func (s *Store) ListAgents(ctx context.Context, campaignID string) ([]Agent, error) {
	rows, err := s.Pool.Query(ctx, `SELECT campaign_id, name, peer_id, public_key, created_at FROM agents
		WHERE campaign_id=$1 ORDER BY name`, campaignID)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Agent, error) {
		var a Agent
		err := r.Scan(&a.CampaignID, &a.Name, &a.PeerID, &a.PublicKey, &a.CreatedAt)
		return a, err
	})
}

// Experiment is one row of experiments: indexed columns plus the signed record.
type Experiment struct {
	ID         string            `json:"id"`
	CampaignID string            `json:"campaignId"`
	Agent      string            `json:"agent"`
	Domain     string            `json:"domain"`
	RunNumber  int               `json:"runNumber"`
	Metric     float64           `json:"metric"`
	TestMetric *float64          `json:"testMetric,omitempty"`
	Seed       int64             `json:"seed"`
	Status     string            `json:"status"`
	Baseline   bool              `json:"baseline"`
	IsNewBest  bool              `json:"isNewBest"`
	ConfigKey  string            `json:"-"`
	Record     json.RawMessage   `json:"record"`
	Artifacts  map[string]string `json:"artifacts"`
	CreatedAt  time.Time         `json:"createdAt"`
}

// InsertExperiment stores e. It returns inserted=false (and no error) when the
// same id, or another record for the same (campaign, agent, run), exists.
func (s *Store) InsertExperiment(ctx context.Context, e Experiment) (bool, error) {
	if e.Status == "" {
		e.Status = "completed"
	}
	arts, _ := json.Marshal(e.Artifacts)
	if e.Artifacts == nil {
		arts = []byte("{}")
	}
	tag, err := s.Pool.Exec(ctx, `INSERT INTO experiments
		(id, campaign_id, agent, domain, run_number, metric, test_metric, seed, status, baseline, is_new_best, config_key, record, artifacts)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) ON CONFLICT DO NOTHING`,
		e.ID, e.CampaignID, e.Agent, e.Domain, e.RunNumber, e.Metric, e.TestMetric, e.Seed, e.Status,
		e.Baseline, e.IsNewBest, e.ConfigKey, []byte(e.Record), arts)
	if err != nil {
		return false, fmt.Errorf("insert experiment %s: %w", e.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

const experimentCols = `id, campaign_id, agent, domain, run_number, metric, test_metric, seed, status,
	baseline, is_new_best, config_key, record, artifacts, created_at`

func scanExperiment(row pgx.Row) (Experiment, error) {
	var e Experiment
	var rec, arts []byte
	err := row.Scan(&e.ID, &e.CampaignID, &e.Agent, &e.Domain, &e.RunNumber, &e.Metric, &e.TestMetric, &e.Seed,
		&e.Status, &e.Baseline, &e.IsNewBest, &e.ConfigKey, &rec, &arts, &e.CreatedAt)
	if err != nil {
		return e, err
	}
	e.Record = rec
	if len(arts) > 0 {
		_ = json.Unmarshal(arts, &e.Artifacts)
	}
	return e, nil
}

// GetExperiment loads one experiment by receipt id.
func (s *Store) GetExperiment(ctx context.Context, id string) (Experiment, error) {
	e, err := scanExperiment(s.Pool.QueryRow(ctx, `SELECT `+experimentCols+` FROM experiments WHERE id=$1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("experiment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("load experiment %s: %w", id, err)
	}
	return e, nil
}

// GetRun loads the experiment recorded for (campaign, agent, run).
func (s *Store) GetRun(ctx context.Context, campaignID, agent string, run int) (Experiment, error) {
	e, err := scanExperiment(s.Pool.QueryRow(ctx, `SELECT `+experimentCols+` FROM experiments
		WHERE campaign_id=$1 AND agent=$2 AND run_number=$3`, campaignID, agent, run))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("run %s/%s/%d: %w", campaignID, agent, run, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("load run %s/%s/%d: %w", campaignID, agent, run, err)
	}
	return e, nil
}

// ExperimentFilter selects experiments.
type ExperimentFilter struct {
	CampaignID string
	Agent      string
	Domain     string
	Limit      int
	Cursor     string
}

// ListExperiments returns experiments oldest first, keyset-paginated.
func (s *Store) ListExperiments(ctx context.Context, f ExperimentFilter) ([]Experiment, string, error) {
	at, id, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	if f.Limit <= 0 {
		f.Limit = 1_000_000
	}
	var where []string
	args := []any{f.Limit + 1}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.CampaignID != "" {
		add("campaign_id = ?", f.CampaignID)
	}
	if f.Agent != "" {
		add("agent = ?", f.Agent)
	}
	if f.Domain != "" {
		add("domain = ?", f.Domain)
	}
	if f.Cursor != "" {
		args = append(args, at, id)
		where = append(where, fmt.Sprintf("(created_at, id) > ($%d, $%d)", len(args)-1, len(args)))
	}
	q := `SELECT ` + experimentCols + ` FROM experiments`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at, id LIMIT $1"
	rows, err := s.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list experiments: %w", err)
	}
	defer rows.Close()
	var out []Experiment
	for rows.Next() {
		e, err := scanExperiment(rows)
		if err != nil {
			return nil, "", fmt.Errorf("scan experiment: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		last := out[len(out)-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	return out, next, nil
}

// CountExperiments counts a campaign's experiment rows ("" = all).
func (s *Store) CountExperiments(ctx context.Context, campaignID string) (int, error) {
	var n int
	err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM experiments WHERE $1 = '' OR campaign_id=$1`, campaignID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count experiments of %s: %w", campaignID, err)
	}
	return n, nil
}

// Leaderboard returns each (campaign, agent)'s best experiment in a domain,
// best first. minimize selects the direction.
func (s *Store) Leaderboard(ctx context.Context, domain string, minimize bool, limit int) ([]Experiment, error) {
	order := "metric ASC"
	if !minimize {
		order = "metric DESC"
	}
	q := `SELECT ` + experimentCols + ` FROM (
		SELECT DISTINCT ON (campaign_id, agent) * FROM experiments WHERE domain=$1
		ORDER BY campaign_id, agent, ` + order + `, created_at
	) best ORDER BY ` + order + `, created_at LIMIT $2`
	rows, err := s.Pool.Query(ctx, q, domain, limit)
	if err != nil {
		return nil, fmt.Errorf("leaderboard %s: %w", domain, err)
	}
	defer rows.Close()
	var out []Experiment
	for rows.Next() {
		e, err := scanExperiment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ErrBadCursor is returned for a cursor this server did not issue.
var ErrBadCursor = errors.New("invalid cursor")

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + ":" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	if c == "" {
		return time.Time{}, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), ":")
	if !ok {
		return time.Time{}, "", ErrBadCursor
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	return time.UnixMicro(us), id, nil
}

// BestInCampaign returns the best experiment recorded so far in a campaign
// (ok=false when there is none).
func (s *Store) BestInCampaign(ctx context.Context, campaignID string, minimize bool) (Experiment, bool, error) {
	order := "metric ASC"
	if !minimize {
		order = "metric DESC"
	}
	e, err := scanExperiment(s.Pool.QueryRow(ctx, `SELECT `+experimentCols+` FROM experiments
		WHERE campaign_id=$1 ORDER BY `+order+`, created_at LIMIT 1`, campaignID))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("best of campaign %s: %w", campaignID, err)
	}
	return e, true, nil
}

// Node is one P2P node of this site.
type Node struct {
	PeerID    string    `json:"peerId"`
	TaskQueue string    `json:"taskQueue"`
	Addrs     []string  `json:"addrs"`
	APIURL    string    `json:"apiUrl,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	LastSeen  time.Time `json:"lastSeen"`
}

// TouchNode registers a node or refreshes its heartbeat.
func (s *Store) TouchNode(ctx context.Context, n Node) error {
	addrs, _ := json.Marshal(n.Addrs)
	_, err := s.Pool.Exec(ctx, `INSERT INTO nodes (peer_id, task_queue, addrs, api_url) VALUES ($1,$2,$3,$4)
		ON CONFLICT (peer_id) DO UPDATE SET task_queue=EXCLUDED.task_queue, addrs=EXCLUDED.addrs,
		api_url=EXCLUDED.api_url, last_seen=now()`, n.PeerID, n.TaskQueue, addrs, n.APIURL)
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.PeerID, err)
	}
	return nil
}

// RemoveNode forgets a node (on clean shutdown).
func (s *Store) RemoveNode(ctx context.Context, peerID string) error {
	_, err := s.Pool.Exec(ctx, `DELETE FROM nodes WHERE peer_id=$1`, peerID)
	return err
}

// LiveNodes lists nodes seen within maxAge, oldest first (a stable order).
func (s *Store) LiveNodes(ctx context.Context, maxAge time.Duration) ([]Node, error) {
	rows, err := s.Pool.Query(ctx, `SELECT peer_id, task_queue, addrs, api_url, started_at, last_seen FROM nodes
		WHERE last_seen > now() - make_interval(secs => $1) ORDER BY started_at, peer_id`, maxAge.Seconds())
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) {
		var n Node
		var addrs []byte
		err := r.Scan(&n.PeerID, &n.TaskQueue, &addrs, &n.APIURL, &n.StartedAt, &n.LastSeen)
		_ = json.Unmarshal(addrs, &n.Addrs)
		return n, err
	})
}

// ErrExists is returned when a row with the same key exists.
var ErrExists = errors.New("already exists")

// InsertCause stores a cause definition (JSON); a name taken is ErrExists.
func (s *Store) InsertCause(ctx context.Context, name string, definition json.RawMessage) error {
	tag, err := s.Pool.Exec(ctx, `INSERT INTO causes (name, definition) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, []byte(definition))
	if err != nil {
		return fmt.Errorf("insert cause %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("cause %s: %w", name, ErrExists)
	}
	return nil
}

// GetCause loads one cause definition.
func (s *Store) GetCause(ctx context.Context, name string) (json.RawMessage, error) {
	var def []byte
	err := s.Pool.QueryRow(ctx, `SELECT definition FROM causes WHERE name=$1`, name).Scan(&def)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("cause %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load cause %s: %w", name, err)
	}
	return def, nil
}

// ListCauses returns every cause definition by name.
func (s *Store) ListCauses(ctx context.Context) (map[string]json.RawMessage, error) {
	rows, err := s.Pool.Query(ctx, `SELECT name, definition FROM causes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list causes: %w", err)
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var name string
		var def []byte
		if err := rows.Scan(&name, &def); err != nil {
			return nil, err
		}
		out[name] = def
	}
	return out, rows.Err()
}
