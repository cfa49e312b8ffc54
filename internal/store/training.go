package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TrainingRun is one row of training_runs.
type TrainingRun struct {
	ID         string          `json:"id"`
	Spec       json.RawMessage `json:"spec"`
	Status     string          `json:"status"`
	WorkflowID string          `json:"workflowId"`
	Progress   json.RawMessage `json:"progress,omitempty"`
	ResultID   string          `json:"resultId,omitempty"`
	Error      string          `json:"error,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
}

// CreateTrainingRun inserts the run and its campaign row (domain ml, one
// agent) in one transaction. It fails with ErrExists when the id is taken.
func (s *Store) CreateTrainingRun(ctx context.Context, r TrainingRun, c Campaign) error {
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `INSERT INTO campaigns
		(id, domain, status, agents, experiments, baseline_seeds, budget_seconds, request, workflow_id)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (id) DO NOTHING`,
		c.ID, c.Domain, StatusPending, c.Agents, c.Experiments, c.BaselineSeeds, c.BudgetSeconds, []byte(c.Request), c.WorkflowID)
	if err != nil {
		return fmt.Errorf("create training run %s: %w", r.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrExists
	}
	if _, err := tx.Exec(ctx, `INSERT INTO training_runs (id, spec, status, workflow_id) VALUES ($1,$2,$3,$4)`,
		r.ID, []byte(r.Spec), StatusPending, r.WorkflowID); err != nil {
		return fmt.Errorf("create training run %s: %w", r.ID, err)
	}
	return tx.Commit(ctx)
}

// SetTrainingStatus updates a run (and its campaign row's status).
func (s *Store) SetTrainingStatus(ctx context.Context, id, status string, progress json.RawMessage, resultID, errMsg string) error {
	var prog any
	if progress != nil {
		prog = []byte(progress)
	}
	tag, err := s.Pool.Exec(ctx, `UPDATE training_runs SET status=$2, progress=COALESCE($3::jsonb, progress),
		result_id=COALESCE(NULLIF($4,''), result_id), error=NULLIF($5,''), updated_at=now() WHERE id=$1`,
		id, status, prog, resultID, errMsg)
	if err != nil {
		return fmt.Errorf("set training status %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	_, err = s.Pool.Exec(ctx, `UPDATE campaigns SET status=$2, error=NULLIF($3,''), updated_at=now() WHERE id=$1`, id, status, errMsg)
	return err
}

const trainingCols = `id, spec, status, workflow_id, progress, COALESCE(result_id,''), COALESCE(error,''), created_at, updated_at`

func scanTraining(row pgx.Row) (TrainingRun, error) {
	var r TrainingRun
	var spec, prog []byte
	err := row.Scan(&r.ID, &spec, &r.Status, &r.WorkflowID, &prog, &r.ResultID, &r.Error, &r.CreatedAt, &r.UpdatedAt)
	r.Spec, r.Progress = spec, prog
	return r, err
}

// GetTrainingRun loads one run.
func (s *Store) GetTrainingRun(ctx context.Context, id string) (TrainingRun, error) {
	r, err := scanTraining(s.Pool.QueryRow(ctx, `SELECT `+trainingCols+` FROM training_runs WHERE id=$1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// ListTrainingRuns returns the newest runs first.
func (s *Store) ListTrainingRuns(ctx context.Context, limit int) ([]TrainingRun, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+trainingCols+` FROM training_runs ORDER BY created_at DESC, id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TrainingRun, error) { return scanTraining(r) })
}

// TrainingRound is one closed round.
type TrainingRound struct {
	RunID      string          `json:"runId"`
	Round      int             `json:"round"`
	RecordID   string          `json:"recordId"`
	BaseHash   string          `json:"baseHash"`
	GlobalHash string          `json:"globalHash"`
	ValLoss    float64         `json:"valLoss"`
	Record     json.RawMessage `json:"record"`
	CreatedAt  time.Time       `json:"createdAt"`
}

// PutTrainingRound stores a round; a retried outer step finds the row and
// leaves it (the same inputs give the same record).
func (s *Store) PutTrainingRound(ctx context.Context, r TrainingRound) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO training_rounds (run_id, round, record_id, base_hash, global_hash, val_loss, record)
		VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (run_id, round) DO NOTHING`,
		r.RunID, r.Round, r.RecordID, r.BaseHash, r.GlobalHash, r.ValLoss, []byte(r.Record))
	if err != nil {
		return fmt.Errorf("put training round %s/%d: %w", r.RunID, r.Round, err)
	}
	return nil
}

// TrainingRoundRecord is the record id of one closed round (ErrNotFound if
// it is not closed).
func (s *Store) TrainingRoundRecord(ctx context.Context, runID string, round int) (string, error) {
	var id string
	err := s.Pool.QueryRow(ctx, `SELECT record_id FROM training_rounds WHERE run_id=$1 AND round=$2`, runID, round).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	return id, err
}

// TrainingRounds lists a run's rounds in order.
func (s *Store) TrainingRounds(ctx context.Context, runID string) ([]TrainingRound, error) {
	rows, err := s.Pool.Query(ctx, `SELECT run_id, round, record_id, base_hash, global_hash, val_loss, record, created_at
		FROM training_rounds WHERE run_id=$1 ORDER BY round`, runID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (TrainingRound, error) {
		var r TrainingRound
		var rec []byte
		err := row.Scan(&r.RunID, &r.Round, &r.RecordID, &r.BaseHash, &r.GlobalHash, &r.ValLoss, &rec, &r.CreatedAt)
		r.Record = rec
		return r, err
	})
}

// TrainingDelta is a remote contributor's delta as the node admitted it.
type TrainingDelta struct {
	RunID       string    `json:"runId"`
	Round       int       `json:"round"`
	Contributor string    `json:"contributor"`
	S3Key       string    `json:"s3Key"`
	Hash        string    `json:"hash"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	Bytes       int64     `json:"bytes"`
	ReceivedAt  time.Time `json:"receivedAt"`
}

// PutTrainingDelta records a remote delta; one per contributor and round
// (a second one is ignored and reported with inserted=false).
func (s *Store) PutTrainingDelta(ctx context.Context, d TrainingDelta) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `INSERT INTO training_deltas (run_id, round, contributor, s3_key, hash, status, reason, bytes)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING`,
		d.RunID, d.Round, d.Contributor, d.S3Key, d.Hash, d.Status, d.Reason, d.Bytes)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// TrainingDeltas lists a round's remote deltas with the given status ("" = all).
func (s *Store) TrainingDeltas(ctx context.Context, runID string, round int, status string) ([]TrainingDelta, error) {
	rows, err := s.Pool.Query(ctx, `SELECT run_id, round, contributor, s3_key, hash, status, reason, bytes, received_at
		FROM training_deltas WHERE run_id=$1 AND round=$2 AND ($3='' OR status=$3) ORDER BY contributor`, runID, round, status)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (TrainingDelta, error) {
		var d TrainingDelta
		err := row.Scan(&d.RunID, &d.Round, &d.Contributor, &d.S3Key, &d.Hash, &d.Status, &d.Reason, &d.Bytes, &d.ReceivedAt)
		return d, err
	})
}
