package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Paper statuses.
const (
	PaperReviewing  = "reviewing"
	PaperReviewed   = "reviewed"
	PaperUnreviewed = "unreviewed" // no reviewer could be reached
)

// Origins of papers and reviews.
const (
	OriginSite    = "site"    // written or reviewed by this site's agents and nodes
	OriginNetwork = "network" // heard from another site over gossip
)

// Paper is one row of papers.
type Paper struct {
	ID           string          `json:"id"`
	CampaignID   string          `json:"campaignId"`
	Domain       string          `json:"domain"`
	Agent        string          `json:"agent"`
	Number       int             `json:"number"`
	PeerID       string          `json:"peerId"`
	Title        string          `json:"title"`
	Record       json.RawMessage `json:"record"`
	Status       string          `json:"status"`
	Score        *float64        `json:"score"`
	Breakthrough bool            `json:"breakthrough"`
	ReviewedAt   *time.Time      `json:"reviewedAt"`
	CreatedAt    time.Time       `json:"createdAt"`
	// Origin is OriginSite or OriginNetwork ("" on insert: site).
	Origin string `json:"origin"`
}

// Review is one row of reviews.
type Review struct {
	ID        string          `json:"id"`
	PaperID   string          `json:"paperId"`
	Node      string          `json:"node"`
	Reviewer  string          `json:"reviewer"`
	Score     int             `json:"score"`
	Record    json.RawMessage `json:"record"`
	CreatedAt time.Time       `json:"createdAt"`
	Origin    string          `json:"origin"`
}

func origin(o string) string {
	if o == "" {
		return OriginSite
	}
	return o
}

// InsertPaper stores p; the same id, or (for a site paper) another site
// paper for the same (campaign, agent, number), is a no-op
// (inserted=false). A network paper never takes a site paper's place:
// (campaign, agent, number) is unique among site papers only, and a paper
// whose id the site already holds keeps its origin.
func (s *Store) InsertPaper(ctx context.Context, p Paper) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `INSERT INTO papers (id, campaign_id, domain, agent, number, peer_id, title, record, origin)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING`,
		p.ID, p.CampaignID, p.Domain, p.Agent, p.Number, p.PeerID, p.Title, []byte(p.Record), origin(p.Origin))
	if err != nil {
		return false, fmt.Errorf("insert paper %s: %w", p.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

const paperCols = `id, campaign_id, domain, agent, number, peer_id, title, record, status, score, breakthrough, reviewed_at, created_at, origin`

func scanPaper(row pgx.Row) (Paper, error) {
	var p Paper
	err := row.Scan(&p.ID, &p.CampaignID, &p.Domain, &p.Agent, &p.Number, &p.PeerID, &p.Title, &p.Record,
		&p.Status, &p.Score, &p.Breakthrough, &p.ReviewedAt, &p.CreatedAt, &p.Origin)
	return p, err
}

// GetPaper returns one paper, or ErrNotFound.
func (s *Store) GetPaper(ctx context.Context, id string) (Paper, error) {
	p, err := scanPaper(s.Pool.QueryRow(ctx, `SELECT `+paperCols+` FROM papers WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Paper{}, ErrNotFound
	}
	if err != nil {
		return Paper{}, fmt.Errorf("get paper %s: %w", id, err)
	}
	return p, nil
}

// GetPaperByNumber returns the site paper an agent of this site wrote as
// its number-th, or ErrNotFound (papers heard from other sites never match).
func (s *Store) GetPaperByNumber(ctx context.Context, campaignID, agent string, number int) (Paper, error) {
	p, err := scanPaper(s.Pool.QueryRow(ctx, `SELECT `+paperCols+` FROM papers WHERE campaign_id = $1 AND agent = $2 AND number = $3 AND origin = 'site'`, campaignID, agent, number))
	if errors.Is(err, pgx.ErrNoRows) {
		return Paper{}, ErrNotFound
	}
	if err != nil {
		return Paper{}, fmt.Errorf("get paper %s/%s/%d: %w", campaignID, agent, number, err)
	}
	return p, nil
}

// PaperFilter selects papers; zero fields match everything.
type PaperFilter struct {
	Domain, CampaignID, PeerID string
	Breakthrough               bool
	Limit                      int // default 50, max 500
}

// ListPapers returns papers, newest first (breakthroughs: best score first).
func (s *Store) ListPapers(ctx context.Context, f PaperFilter) ([]Paper, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Limit > 500 {
		f.Limit = 500
	}
	order := `created_at DESC, id`
	if f.Breakthrough {
		order = `score DESC, created_at DESC, id`
	}
	rows, err := s.Pool.Query(ctx, `SELECT `+paperCols+` FROM papers
		WHERE ($1 = '' OR domain = $1) AND ($2 = '' OR campaign_id = $2) AND ($3 = '' OR peer_id = $3) AND (NOT $4 OR breakthrough)
		ORDER BY `+order+` LIMIT $5`, f.Domain, f.CampaignID, f.PeerID, f.Breakthrough, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list papers: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Paper, error) { return scanPaper(r) })
}

// FinishReview records a paper's aggregated verdict.
func (s *Store) FinishReview(ctx context.Context, id, status string, score *float64, breakthrough bool) error {
	tag, err := s.Pool.Exec(ctx, `UPDATE papers SET status = $2, score = $3, breakthrough = $4, reviewed_at = now() WHERE id = $1`,
		id, status, score, breakthrough)
	if err != nil {
		return fmt.Errorf("finish review of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish review of %s: %w", id, ErrNotFound)
	}
	return nil
}

// InsertReview stores r; a second review of the same paper from the same
// node is a no-op (inserted=false), and so is a review whose origin is not
// its paper's (a site's papers are judged by its own reviewers only; the
// reviews it hears from other sites are kept for other sites' papers), and
// so is a review of a paper the site does not hold.
func (s *Store) InsertReview(ctx context.Context, r Review) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `INSERT INTO reviews (id, paper_id, node, reviewer, score, record, origin)
		SELECT $1,$2,$3,$4,$5,$6,$7 FROM papers WHERE id = $2 AND origin = $7
		ON CONFLICT DO NOTHING`, r.ID, r.PaperID, r.Node, r.Reviewer, r.Score, []byte(r.Record), origin(r.Origin))
	if err != nil {
		return false, fmt.Errorf("insert review %s: %w", r.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// GetReviewByNode returns the review a node wrote of a paper, or ErrNotFound.
func (s *Store) GetReviewByNode(ctx context.Context, paperID, node string) (Review, error) {
	var r Review
	err := s.Pool.QueryRow(ctx, `SELECT id, paper_id, node, reviewer, score, record, created_at, origin FROM reviews WHERE paper_id = $1 AND node = $2`,
		paperID, node).Scan(&r.ID, &r.PaperID, &r.Node, &r.Reviewer, &r.Score, &r.Record, &r.CreatedAt, &r.Origin)
	if errors.Is(err, pgx.ErrNoRows) {
		return Review{}, ErrNotFound
	}
	if err != nil {
		return Review{}, fmt.Errorf("get review of %s by %s: %w", paperID, node, err)
	}
	return r, nil
}

// ListReviews returns a paper's reviews, oldest first.
func (s *Store) ListReviews(ctx context.Context, paperID string) ([]Review, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, paper_id, node, reviewer, score, record, created_at, origin FROM reviews WHERE paper_id = $1 ORDER BY created_at, id`, paperID)
	if err != nil {
		return nil, fmt.Errorf("list reviews of %s: %w", paperID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Review, error) {
		var v Review
		err := r.Scan(&v.ID, &v.PaperID, &v.Node, &v.Reviewer, &v.Score, &v.Record, &v.CreatedAt, &v.Origin)
		return v, err
	})
}

// CountPapers counts papers and reviews of a campaign ("" = all).
func (s *Store) CountPapers(ctx context.Context, campaignID string) (papers, reviews, breakthroughs int, err error) {
	err = s.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM papers WHERE $1 = '' OR campaign_id = $1),
		(SELECT count(*) FROM reviews r JOIN papers p ON p.id = r.paper_id WHERE $1 = '' OR p.campaign_id = $1),
		(SELECT count(*) FROM papers WHERE ($1 = '' OR campaign_id = $1) AND breakthrough)`, campaignID).Scan(&papers, &reviews, &breakthroughs)
	if err != nil {
		err = fmt.Errorf("count papers: %w", err)
	}
	return
}

// ArchiveState is one archive target's state.
type ArchiveState struct {
	Name         string     `json:"name"`
	Location     string     `json:"location"`
	LastCommitAt *time.Time `json:"lastCommitAt"`
	LastSnapshot *time.Time `json:"lastSnapshot"`
	LastError    string     `json:"lastError,omitempty"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

// TouchArchive records an archive event: commit and snapshot times when
// non-nil, and the last error ("" clears it).
func (s *Store) TouchArchive(ctx context.Context, name, location string, commitAt, snapshotAt *time.Time, lastErr string) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO archive_state (name, location, last_commit_at, last_snapshot, last_error)
		VALUES ($1,$2,$3,$4,$5)
		ON CONFLICT (name) DO UPDATE SET location = EXCLUDED.location,
			last_commit_at = COALESCE(EXCLUDED.last_commit_at, archive_state.last_commit_at),
			last_snapshot = COALESCE(EXCLUDED.last_snapshot, archive_state.last_snapshot),
			last_error = EXCLUDED.last_error, updated_at = now()`, name, location, commitAt, snapshotAt, lastErr)
	if err != nil {
		return fmt.Errorf("touch archive %s: %w", name, err)
	}
	return nil
}

// ArchiveStates returns every archive target's state.
func (s *Store) ArchiveStates(ctx context.Context) ([]ArchiveState, error) {
	rows, err := s.Pool.Query(ctx, `SELECT name, location, last_commit_at, last_snapshot, last_error, updated_at FROM archive_state ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("archive state: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ArchiveState, error) {
		var a ArchiveState
		err := r.Scan(&a.Name, &a.Location, &a.LastCommitAt, &a.LastSnapshot, &a.LastError, &a.UpdatedAt)
		return a, err
	})
}
