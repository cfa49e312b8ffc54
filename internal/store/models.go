package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Model is a published model: a name for an ML-domain checkpoint that the
// site's nodes serve through /v1.
type Model struct {
	Name           string          `json:"name"`
	Kind           string          `json:"kind"`
	ExperimentID   string          `json:"experimentId"`
	CheckpointKey  string          `json:"checkpointKey"`
	CheckpointHash string          `json:"checkpointHash"`
	Metric         float64         `json:"metric"`
	Config         json.RawMessage `json:"config"`
	PublishedBy    string          `json:"publishedBy,omitempty"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
}

// PublishModel inserts m, or points an existing name at a new checkpoint
// (a re-publish: the name now serves the new weights). created reports
// whether the name is new.
func (s *Store) PublishModel(ctx context.Context, m Model) (created bool, err error) {
	if m.Kind == "" {
		m.Kind = "chat"
	}
	err = s.Pool.QueryRow(ctx, `INSERT INTO models (name, kind, experiment_id, checkpoint_key, checkpoint_hash, metric, config, published_by)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
		ON CONFLICT (name) DO UPDATE SET kind=EXCLUDED.kind, experiment_id=EXCLUDED.experiment_id,
			checkpoint_key=EXCLUDED.checkpoint_key, checkpoint_hash=EXCLUDED.checkpoint_hash, metric=EXCLUDED.metric,
			config=EXCLUDED.config, published_by=EXCLUDED.published_by, updated_at=now()
		RETURNING (xmax = 0)`,
		m.Name, m.Kind, m.ExperimentID, m.CheckpointKey, m.CheckpointHash, m.Metric, []byte(m.Config), m.PublishedBy).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("publish model %s: %w", m.Name, err)
	}
	return created, nil
}

const modelCols = `name, kind, experiment_id, checkpoint_key, checkpoint_hash, metric, config, published_by, created_at, updated_at`

func scanModel(r pgx.Row) (Model, error) {
	var m Model
	var cfg []byte
	err := r.Scan(&m.Name, &m.Kind, &m.ExperimentID, &m.CheckpointKey, &m.CheckpointHash, &m.Metric, &cfg, &m.PublishedBy, &m.CreatedAt, &m.UpdatedAt)
	m.Config = cfg
	return m, err
}

// GetModel returns the published model name (ErrNotFound when none).
func (s *Store) GetModel(ctx context.Context, name string) (Model, error) {
	m, err := scanModel(s.Pool.QueryRow(ctx, `SELECT `+modelCols+` FROM models WHERE name=$1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Model{}, fmt.Errorf("model %q: %w", name, ErrNotFound)
	}
	return m, err
}

// ListModels returns every published model, by name.
func (s *Store) ListModels(ctx context.Context) ([]Model, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+modelCols+` FROM models ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Model
	for rows.Next() {
		m, err := scanModel(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// DeleteModel unpublishes name (ErrNotFound when it was not published).
func (s *Store) DeleteModel(ctx context.Context, name string) error {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM models WHERE name=$1`, name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("model %q: %w", name, ErrNotFound)
	}
	return nil
}
