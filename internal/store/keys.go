package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// InsertAgentKey registers an agent with its public key and sealed key
// (package keystore) unless it is registered already: the first
// registration's key is the agent's for good.
func (s *Store) InsertAgentKey(ctx context.Context, campaign, agent, peerID, publicKey string, sealed []byte) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO agents (campaign_id, name, peer_id, public_key, sealed_key)
		VALUES ($1,$2,$3,$4,$5) ON CONFLICT (campaign_id, name) DO NOTHING`, campaign, agent, peerID, publicKey, sealed)
	if err != nil {
		return fmt.Errorf("register agent %s/%s: %w", campaign, agent, err)
	}
	return nil
}

// AgentKey returns an agent's sealed key and public key.
func (s *Store) AgentKey(ctx context.Context, campaign, agent string) ([]byte, string, bool, error) {
	var sealed []byte
	var pub string
	err := s.Pool.QueryRow(ctx, `SELECT sealed_key, public_key FROM agents WHERE campaign_id=$1 AND name=$2`, campaign, agent).Scan(&sealed, &pub)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("agent key %s/%s: %w", campaign, agent, err)
	}
	return sealed, pub, true, nil
}

// SiteSetting returns a site setting.
func (s *Store) SiteSetting(ctx context.Context, name string) ([]byte, bool, error) {
	var v []byte
	err := s.Pool.QueryRow(ctx, `SELECT value FROM site_settings WHERE name=$1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("site setting %s: %w", name, err)
	}
	return v, true, nil
}

// InsertSiteSetting sets a site setting unless it is set.
func (s *Store) InsertSiteSetting(ctx context.Context, name string, value []byte) error {
	if _, err := s.Pool.Exec(ctx, `INSERT INTO site_settings (name, value) VALUES ($1,$2) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return fmt.Errorf("site setting %s: %w", name, err)
	}
	return nil
}
