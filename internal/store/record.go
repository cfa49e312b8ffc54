package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RecordExperiment stores one run atomically with the judgement it rests
// on. In one transaction that holds the campaign's row lock (so recorders
// of one campaign take turns): if (campaign, agent, run) is stored already,
// that row is returned (inserted=false) and judge is not called; otherwise
// judge gets the campaign's best so far (nil: none) and a function that
// reads a summary of the other configs it has tried (Trials, one per config
// key other than configKey: how many tries the result was selected from),
// returns the row to store (typically signing a receipt that says whether
// it beats that best), and the row is inserted. Two runs recorded at once can therefore never
// both be judged against the same old best, and a retried recording never
// signs a second, different receipt for a run that is stored.
func (s *Store) RecordExperiment(ctx context.Context, campaignID, agent string, run int, configKey string, minimize, incumbent bool,
	judge func(best *Experiment, tried func() (Trials, error)) (Experiment, error)) (Experiment, bool, error) {
	var out Experiment
	inserted := false
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM campaigns WHERE id=$1 FOR UPDATE`, campaignID).Scan(&one); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("campaign %s: %w", campaignID, ErrNotFound)
			}
			return fmt.Errorf("lock campaign %s: %w", campaignID, err)
		}
		prev, err := scanExperiment(tx.QueryRow(ctx, `SELECT `+experimentCols+` FROM experiments
			WHERE campaign_id=$1 AND agent=$2 AND run_number=$3`, campaignID, agent, run))
		if err == nil {
			out = prev
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("load run %s/%s/%d: %w", campaignID, agent, run, err)
		}
		order := "metric ASC"
		if !minimize {
			order = "metric DESC"
		}
		var best *Experiment
		// The reference: the best run of the campaign, or (incumbent) the
		// best of its baselines and confirmed new bests, so an unconfirmed
		// lucky run does not raise the bar.
		where := "campaign_id=$1"
		if incumbent {
			where += " AND (baseline OR is_new_best)"
		}
		b, err := scanExperiment(tx.QueryRow(ctx, `SELECT `+experimentCols+` FROM experiments
			WHERE `+where+` ORDER BY `+order+`, created_at LIMIT 1`, campaignID))
		switch {
		case err == nil:
			best = &b
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("best of campaign %s: %w", campaignID, err)
		}
		// One trial per config (its runs' mean): repeated seeds and
		// confirmation runs of a config are not further tries; the config
		// being recorded is left out for the caller to add (Trials.With).
		// Read only when judge asks, in this transaction.
		tried := func() (Trials, error) {
			var t Trials
			var mean, variance *float64
			if err := tx.QueryRow(ctx, `SELECT count(*), avg(m), var_samp(m) FROM (SELECT avg(metric) AS m FROM experiments
				WHERE campaign_id=$1 AND status='completed' AND config_key <> $2 GROUP BY config_key) AS configs`,
				campaignID, configKey).Scan(&t.N, &mean, &variance); err != nil {
				return Trials{}, fmt.Errorf("trials of campaign %s: %w", campaignID, err)
			}
			if mean != nil {
				t.Mean = *mean
			}
			if variance != nil {
				t.Var = *variance
			}
			return t, nil
		}
		e, err := judge(best, tried)
		if err != nil {
			return err
		}
		if e.Status == "" {
			e.Status = "completed"
		}
		arts, _ := json.Marshal(e.Artifacts)
		if e.Artifacts == nil {
			arts = []byte("{}")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO experiments
			(id, campaign_id, agent, domain, run_number, metric, test_metric, seed, status, baseline, is_new_best, config_key, record, artifacts)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)`,
			e.ID, e.CampaignID, e.Agent, e.Domain, e.RunNumber, e.Metric, e.TestMetric, e.Seed, e.Status,
			e.Baseline, e.IsNewBest, e.ConfigKey, []byte(e.Record), arts); err != nil {
			return fmt.Errorf("insert experiment %s: %w", e.ID, err)
		}
		out, inserted = e, true
		return nil
	})
	if err != nil {
		return Experiment{}, false, err
	}
	return out, inserted, nil
}

// Trials summarises the configs a campaign has tried: how many, the mean
// and the sample variance (0 below two) of their metrics.
type Trials struct {
	N         int
	Mean, Var float64
}

// With returns t with one more experiment of metric x (Welford's update).
func (t Trials) With(x float64) Trials {
	n := float64(t.N)
	m2 := t.Var * max(n-1, 0)
	d := x - t.Mean
	mean := t.Mean + d/(n+1)
	m2 += d * (x - mean)
	out := Trials{N: t.N + 1, Mean: mean}
	if out.N > 1 {
		out.Var = m2 / float64(out.N-1)
	}
	return out
}

// ConfigTried reports whether a campaign (one agent's runs when agent is
// not empty) has run a config with this key.
func (s *Store) ConfigTried(ctx context.Context, campaignID, agent, key string) (bool, error) {
	var ok bool
	err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM experiments WHERE campaign_id=$1 AND config_key=$2 AND ($3 = '' OR agent = $3 OR baseline))`,
		campaignID, key, agent).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("config tried in %s: %w", campaignID, err)
	}
	return ok, nil
}

// HistoryRun is what an agent hypothesizes from about one run: its config
// and code, not the whole receipt.
type HistoryRun struct {
	ID       string
	Agent    string
	Metric   float64
	Baseline bool
	Config   map[string]any
	// CodeHash is the hex sha256 of the run's candidate source ("" none).
	CodeHash string
}

// CampaignHistory is the bounded view of a campaign an agent hypothesizes
// from: its baseline runs, the best top runs by metric and the most recent
// recent runs (one agent's when agent is not empty), each once, oldest
// first. Its size does not grow with the campaign, and it reads only the
// configs out of the receipts.
func (s *Store) CampaignHistory(ctx context.Context, campaignID, agent string, minimize bool, top, recent int) ([]HistoryRun, error) {
	order := "metric ASC"
	if !minimize {
		order = "metric DESC"
	}
	// Three index scans (campaign_id + metric, campaign_id + created_at)
	// that stop at their limits: the cost does not grow with the campaign.
	rows, err := s.Pool.Query(ctx, `
		WITH ids AS (
			(SELECT id FROM experiments WHERE campaign_id=$1 AND baseline)
			UNION (SELECT id FROM experiments WHERE campaign_id=$1 AND ($2 = '' OR agent = $2 OR baseline)
				ORDER BY `+order+` LIMIT $3)
			UNION (SELECT id FROM experiments WHERE campaign_id=$1 AND ($2 = '' OR agent = $2 OR baseline)
				ORDER BY created_at DESC, id DESC LIMIT $4))
		SELECT e.id, e.agent, e.metric, e.baseline, e.record->'receipt'->'config',
			COALESCE(encode(sha256(convert_to(NULLIF(e.record->'receipt'->>'code', ''), 'UTF8')), 'hex'), '')
		FROM ids JOIN experiments e ON e.id = ids.id ORDER BY e.created_at, e.id`,
		campaignID, agent, top, recent)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", campaignID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryRun, error) {
		var h HistoryRun
		var cfg []byte
		if err := r.Scan(&h.ID, &h.Agent, &h.Metric, &h.Baseline, &cfg, &h.CodeHash); err != nil {
			return h, err
		}
		if err := json.Unmarshal(cfg, &h.Config); err != nil {
			return h, fmt.Errorf("config of %s: %w", h.ID, err)
		}
		return h, nil
	})
}
