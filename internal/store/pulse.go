package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hyperspace-ai/hyperspace/internal/pulse"
)

// InsertPresence stores a node's presence for its round (the first one per
// node and round wins). origin is "site" or "network".
func (s *Store) InsertPresence(ctx context.Context, sp pulse.SignedPresence, origin string) (bool, error) {
	rec, err := json.Marshal(sp)
	if err != nil {
		return false, err
	}
	tag, err := s.Pool.Exec(ctx, `INSERT INTO pulse_presences (id, round, peer_id, record, origin) VALUES ($1,$2,$3,$4,$5)
		ON CONFLICT DO NOTHING`, sp.ID, sp.Presence.Round, sp.Presence.Node, rec, origin)
	if err != nil {
		return false, fmt.Errorf("store presence: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Presences returns a round's presences, by node id.
func (s *Store) Presences(ctx context.Context, round int64) ([]pulse.SignedPresence, error) {
	rows, err := s.Pool.Query(ctx, `SELECT record FROM pulse_presences WHERE round=$1 ORDER BY peer_id`, round)
	if err != nil {
		return nil, fmt.Errorf("list presences: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pulse.SignedPresence, error) {
		var b []byte
		var sp pulse.SignedPresence
		if err := r.Scan(&b); err != nil {
			return sp, err
		}
		return sp, json.Unmarshal(b, &sp)
	})
}

// PulseRound is one row of pulse_rounds.
type PulseRound struct {
	Round      int64      `json:"round"`
	IntervalMs int64      `json:"intervalMs"`
	WorkflowID string     `json:"workflowId"`
	Status     string     `json:"status"`
	Presences  int        `json:"presences"`
	Validators int        `json:"validators"`
	Credited   int        `json:"credited"`
	Points     float64    `json:"points"`
	Bytes      int64      `json:"bytes"`
	WallMs     int64      `json:"wallMs"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// StartPulseRound records that a round's workflow runs (idempotent: a
// retried or re-run round keeps its first row).
func (s *Store) StartPulseRound(ctx context.Context, round, intervalMs int64, workflowID string) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO pulse_rounds (round, interval_ms, workflow_id) VALUES ($1,$2,$3)
		ON CONFLICT (round) DO NOTHING`, round, intervalMs, workflowID)
	if err != nil {
		return fmt.Errorf("start pulse round %d: %w", round, err)
	}
	return nil
}

// FinishPulseRound stores a round's totals; credited and points add up
// over re-runs (a re-run credits only what the first run did not).
func (s *Store) FinishPulseRound(ctx context.Context, r PulseRound) error {
	tag, err := s.Pool.Exec(ctx, `UPDATE pulse_rounds SET status=$2, presences=$3, validators=$4, credited=credited+$5, points=points+$6,
		bytes=$7, wall_ms=$8, finished_at=now() WHERE round=$1`,
		r.Round, r.Status, r.Presences, r.Validators, r.Credited, r.Points, r.Bytes, r.WallMs)
	if err != nil {
		return fmt.Errorf("finish pulse round %d: %w", r.Round, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish pulse round %d: %w", r.Round, ErrNotFound)
	}
	return nil
}

// ListPulseRounds returns rounds newest first, before round `before` when
// it is > 0.
func (s *Store) ListPulseRounds(ctx context.Context, limit int, before int64) ([]PulseRound, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := s.Pool.Query(ctx, `SELECT round, interval_ms, workflow_id, status, presences, validators, credited, points,
		bytes, wall_ms, started_at, finished_at FROM pulse_rounds WHERE round < $1 ORDER BY round DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list pulse rounds: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PulseRound, error) {
		var p PulseRound
		err := r.Scan(&p.Round, &p.IntervalMs, &p.WorkflowID, &p.Status, &p.Presences, &p.Validators, &p.Credited, &p.Points,
			&p.Bytes, &p.WallMs, &p.StartedAt, &p.FinishedAt)
		return p, err
	})
}

// InsertVerdict stores a validator's verdict (one per validator and round;
// a retried validation keeps the first).
func (s *Store) InsertVerdict(ctx context.Context, sv pulse.SignedVerdict) error {
	rec, err := json.Marshal(sv)
	if err != nil {
		return err
	}
	_, err = s.Pool.Exec(ctx, `INSERT INTO pulse_verdicts (id, round, validator, record) VALUES ($1,$2,$3,$4)
		ON CONFLICT DO NOTHING`, sv.ID, sv.Verdict.Round, sv.Verdict.Validator, rec)
	if err != nil {
		return fmt.Errorf("store verdict: %w", err)
	}
	return nil
}

// Verdicts returns a round's verdicts by validator.
func (s *Store) Verdicts(ctx context.Context, round int64) ([]pulse.SignedVerdict, error) {
	rows, err := s.Pool.Query(ctx, `SELECT record FROM pulse_verdicts WHERE round=$1 ORDER BY validator`, round)
	if err != nil {
		return nil, fmt.Errorf("list verdicts: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pulse.SignedVerdict, error) {
		var b []byte
		var sv pulse.SignedVerdict
		if err := r.Scan(&b); err != nil {
			return sv, err
		}
		return sv, json.Unmarshal(b, &sv)
	})
}

// Streaks returns, for each of peers, the since_round of its outcome in
// round-1 when it was present then (its run of continuous presence goes
// on), and nothing otherwise.
func (s *Store) Streaks(ctx context.Context, round int64, peers []string) (map[string]int64, error) {
	rows, err := s.Pool.Query(ctx, `SELECT peer_id, since_round FROM pulse_outcomes
		WHERE round=$1 AND present AND peer_id = ANY($2)`, round-1, peers)
	if err != nil {
		return nil, fmt.Errorf("streaks: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var p string
		var since int64
		if err := rows.Scan(&p, &since); err != nil {
			return nil, err
		}
		out[p] = since
	}
	return out, rows.Err()
}

// Outcome is one row of pulse_outcomes.
type Outcome struct {
	Round      int64              `json:"round"`
	PeerID     string             `json:"peerId"`
	Present    bool               `json:"present"`
	SinceRound int64              `json:"sinceRound"`
	Verified   []string           `json:"verified"`
	Work       []pulse.WorkCredit `json:"work"`
	Validators int                `json:"validators"`
}

// LedgerEntry is one ledger line. Key makes it idempotent.
type LedgerEntry struct {
	ID        int64           `json:"id"`
	Key       string          `json:"key"`
	PeerID    string          `json:"peerId"`
	Round     *int64          `json:"round,omitempty"`
	Bucket    string          `json:"bucket"` // free or bond
	Amount    float64         `json:"amount"`
	Reason    string          `json:"reason"`
	Evidence  json.RawMessage `json:"evidence"`
	CreatedAt time.Time       `json:"createdAt"`
}

// CreditRound writes a round's outcomes and ledger entries in one
// transaction. Entries whose key exists are skipped (a re-run round never
// credits twice); it returns how many entries were new and their sum.
func (s *Store) CreditRound(ctx context.Context, outcomes []Outcome, entries []LedgerEntry) (int, float64, error) {
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(ctx)
	for _, o := range outcomes {
		ver, _ := json.Marshal(nonNil(o.Verified))
		work, _ := json.Marshal(o.Work)
		if o.Work == nil {
			work = []byte("[]")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pulse_outcomes (round, peer_id, present, since_round, verified, work, validators)
			VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING`, o.Round, o.PeerID, o.Present, o.SinceRound, ver, work, o.Validators); err != nil {
			return 0, 0, fmt.Errorf("store outcome: %w", err)
		}
	}
	n, sum, err := appendEntries(ctx, tx, entries)
	if err != nil {
		return 0, 0, err
	}
	return n, sum, tx.Commit(ctx)
}

// AppendLedger appends entries (idempotent by key) in one transaction.
func (s *Store) AppendLedger(ctx context.Context, entries []LedgerEntry) (int, float64, error) {
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(ctx)
	n, sum, err := appendEntries(ctx, tx, entries)
	if err != nil {
		return 0, 0, err
	}
	return n, sum, tx.Commit(ctx)
}

func appendEntries(ctx context.Context, tx pgx.Tx, entries []LedgerEntry) (int, float64, error) {
	n, sum := 0, 0.0
	for _, e := range entries {
		if e.Bucket == "" {
			e.Bucket = "free"
		}
		ev := []byte(e.Evidence)
		if len(ev) == 0 {
			ev = []byte("{}")
		}
		tag, err := tx.Exec(ctx, `INSERT INTO points_ledger (key, peer_id, round, bucket, amount, reason, evidence)
			VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (key) DO NOTHING`, e.Key, e.PeerID, e.Round, e.Bucket, e.Amount, e.Reason, ev)
		if err != nil {
			return 0, 0, fmt.Errorf("ledger %s: %w", e.Key, err)
		}
		if tag.RowsAffected() == 1 {
			n++
			sum += e.Amount
		}
	}
	return n, sum, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Balance is a peer's derived balance.
type Balance struct {
	PeerID    string  `json:"peerId"`
	Points    float64 `json:"points"` // free balance
	Bonded    float64 `json:"bonded"` // held as bonds
	Entries   int     `json:"entries"`
	LastRound *int64  `json:"lastRound,omitempty"`
}

// Balances derives every peer's balance from the ledger, highest first.
func (s *Store) Balances(ctx context.Context, limit int) ([]Balance, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.Pool.Query(ctx, `SELECT peer_id, COALESCE(SUM(amount) FILTER (WHERE bucket='free'),0),
		COALESCE(SUM(amount) FILTER (WHERE bucket='bond'),0), COUNT(*), MAX(round)
		FROM points_ledger GROUP BY peer_id ORDER BY 2 DESC, peer_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("balances: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Balance, error) {
		var b Balance
		err := r.Scan(&b.PeerID, &b.Points, &b.Bonded, &b.Entries, &b.LastRound)
		return b, err
	})
}

// BalanceOf derives one peer's balance (zero when it has no entries).
func (s *Store) BalanceOf(ctx context.Context, peer string) (Balance, error) {
	b := Balance{PeerID: peer}
	err := s.Pool.QueryRow(ctx, `SELECT COALESCE(SUM(amount) FILTER (WHERE bucket='free'),0),
		COALESCE(SUM(amount) FILTER (WHERE bucket='bond'),0), COUNT(*), MAX(round) FROM points_ledger WHERE peer_id=$1`, peer).
		Scan(&b.Points, &b.Bonded, &b.Entries, &b.LastRound)
	if err != nil {
		return b, fmt.Errorf("balance %s: %w", peer, err)
	}
	return b, nil
}

// BalancesOf derives the free balances of peers (absent ones are 0).
func (s *Store) BalancesOf(ctx context.Context, peers []string) (map[string]float64, error) {
	rows, err := s.Pool.Query(ctx, `SELECT peer_id, SUM(amount) FROM points_ledger WHERE bucket='free' AND peer_id = ANY($1)
		GROUP BY peer_id`, peers)
	if err != nil {
		return nil, fmt.Errorf("balances: %w", err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var p string
		var v float64
		if err := rows.Scan(&p, &v); err != nil {
			return nil, err
		}
		out[p] = v
	}
	return out, rows.Err()
}

// History lists a peer's ledger entries newest first, before entry id
// `before` when > 0.
func (s *Store) History(ctx context.Context, peer string, limit int, before int64) ([]LedgerEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, key, peer_id, round, bucket, amount, reason, evidence, created_at
		FROM points_ledger WHERE peer_id=$1 AND id < $2 ORDER BY id DESC LIMIT $3`, peer, before, limit)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", peer, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (LedgerEntry, error) {
		var e LedgerEntry
		var ev []byte
		err := r.Scan(&e.ID, &e.Key, &e.PeerID, &e.Round, &e.Bucket, &e.Amount, &e.Reason, &ev, &e.CreatedAt)
		e.Evidence = ev
		return e, err
	})
}

// HeldBond is a bond posted for a receipt and neither released nor slashed.
type HeldBond struct {
	Receipt string  `json:"receipt"`
	PeerID  string  `json:"peerId"`
	Round   int64   `json:"round"`
	Amount  float64 `json:"amount"`
}

// HeldBonds lists bonds posted in rounds <= upTo that are still held and
// whose receipt has no running challenge.
func (s *Store) HeldBonds(ctx context.Context, upTo int64, limit int) ([]HeldBond, error) {
	rows, err := s.Pool.Query(ctx, `SELECT substr(l.key, 6, 64), l.peer_id, l.round, l.amount FROM points_ledger l
		WHERE l.key LIKE 'bond/%/lock' AND l.round <= $1
		AND NOT EXISTS (SELECT 1 FROM points_ledger r WHERE r.key IN (
			'bond/' || substr(l.key, 6, 64) || '/release', 'bond/' || substr(l.key, 6, 64) || '/slash'))
		AND NOT EXISTS (SELECT 1 FROM challenges c WHERE c.receipt_id = substr(l.key, 6, 64) AND c.status='running')
		ORDER BY l.id LIMIT $2`, upTo, limit)
	if err != nil {
		return nil, fmt.Errorf("held bonds: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (HeldBond, error) {
		var b HeldBond
		err := r.Scan(&b.Receipt, &b.PeerID, &b.Round, &b.Amount)
		return b, err
	})
}

// BondOf returns the bond held for a receipt (ErrNotFound when none is).
func (s *Store) BondOf(ctx context.Context, receiptID string) (HeldBond, error) {
	var b HeldBond
	err := s.Pool.QueryRow(ctx, `SELECT l.peer_id, l.round, l.amount FROM points_ledger l WHERE l.key = 'bond/' || $1 || '/lock'
		AND NOT EXISTS (SELECT 1 FROM points_ledger r WHERE r.key IN ('bond/' || $1 || '/release', 'bond/' || $1 || '/slash'))`,
		receiptID).Scan(&b.PeerID, &b.Round, &b.Amount)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, ErrNotFound
	}
	b.Receipt = receiptID
	return b, err
}

// Challenge is one row of challenges.
type Challenge struct {
	ID         string          `json:"id"`
	ReceiptID  string          `json:"receiptId"`
	Domain     string          `json:"domain"`
	Challenger string          `json:"challenger"`
	Defender   string          `json:"defender"`
	Referee    string          `json:"referee"`
	Status     string          `json:"status"`
	Winner     string          `json:"winner,omitempty"`
	Loser      string          `json:"loser,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Record     json.RawMessage `json:"record,omitempty"`
	Rounds     int             `json:"rounds"`
	Bytes      int64           `json:"bytes"`
	CreatedAt  time.Time       `json:"createdAt"`
	FinishedAt *time.Time      `json:"finishedAt,omitempty"`
}

// CreateChallenge inserts a challenge (ErrExists when the id is taken).
func (s *Store) CreateChallenge(ctx context.Context, c Challenge) error {
	tag, err := s.Pool.Exec(ctx, `INSERT INTO challenges (id, receipt_id, domain, challenger, defender, referee)
		VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING`, c.ID, c.ReceiptID, c.Domain, c.Challenger, c.Defender, c.Referee)
	if err != nil {
		return fmt.Errorf("create challenge: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrExists
	}
	return nil
}

// FinishChallenge stores a challenge's outcome.
func (s *Store) FinishChallenge(ctx context.Context, c Challenge) error {
	rec := []byte(c.Record)
	if len(rec) == 0 {
		rec = nil
	}
	_, err := s.Pool.Exec(ctx, `UPDATE challenges SET status=$2, winner=$3, loser=$4, reason=$5, record=$6, rounds=$7, bytes=$8,
		referee=COALESCE(NULLIF($9,''), referee), finished_at=now() WHERE id=$1`,
		c.ID, c.Status, c.Winner, c.Loser, c.Reason, rec, c.Rounds, c.Bytes, c.Referee)
	if err != nil {
		return fmt.Errorf("finish challenge %s: %w", c.ID, err)
	}
	return nil
}

// GetChallenge reads one challenge.
func (s *Store) GetChallenge(ctx context.Context, id string) (Challenge, error) {
	rows, err := s.Pool.Query(ctx, challengeSelect+` WHERE id=$1`, id)
	if err != nil {
		return Challenge{}, err
	}
	cs, err := pgx.CollectRows(rows, scanChallenge)
	if err != nil {
		return Challenge{}, err
	}
	if len(cs) == 0 {
		return Challenge{}, ErrNotFound
	}
	return cs[0], nil
}

// ListChallenges lists challenges newest first.
func (s *Store) ListChallenges(ctx context.Context, limit int) ([]Challenge, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	rows, err := s.Pool.Query(ctx, challengeSelect+` ORDER BY created_at DESC, id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanChallenge)
}

const challengeSelect = `SELECT id, receipt_id, domain, challenger, defender, referee, status, winner, loser, reason, record,
	rounds, bytes, created_at, finished_at FROM challenges`

func scanChallenge(r pgx.CollectableRow) (Challenge, error) {
	var c Challenge
	var rec []byte
	err := r.Scan(&c.ID, &c.ReceiptID, &c.Domain, &c.Challenger, &c.Defender, &c.Referee, &c.Status, &c.Winner, &c.Loser,
		&c.Reason, &rec, &c.Rounds, &c.Bytes, &c.CreatedAt, &c.FinishedAt)
	c.Record = rec
	return c, err
}

// WorkCredit is the work credit a receipt earned (ErrNotFound when none).
func (s *Store) WorkCredit(ctx context.Context, receiptID string) (LedgerEntry, error) {
	var e LedgerEntry
	err := s.Pool.QueryRow(ctx, `SELECT id, key, peer_id, amount FROM points_ledger WHERE key = 'work/' || $1`, receiptID).
		Scan(&e.ID, &e.Key, &e.PeerID, &e.Amount)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ErrNotFound
	}
	return e, err
}
