-- Trust (issue 9): agent keys belong to the site, papers and reviews know
-- whether this site made them.

-- The agent's Ed25519 key, sealed with the site secret (package keystore):
-- created once when the agent is registered, opened by every process of
-- the site that signs for it. Never stored in plaintext anywhere.
ALTER TABLE agents ADD COLUMN sealed_key BYTEA;

-- Site-wide settings (the site secret's check value).
CREATE TABLE site_settings (
    name       TEXT PRIMARY KEY,
    value      BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- origin: 'site' for what this site's agents and reviewers made, 'network'
-- for what was heard from other sites. Records from another site never
-- take the place of this site's own: (campaign, agent, number) is unique
-- among the site's papers only, and a paper's reviews have its origin.
ALTER TABLE papers ADD COLUMN origin TEXT NOT NULL DEFAULT 'site' CHECK (origin IN ('site', 'network'));
ALTER TABLE papers DROP CONSTRAINT papers_campaign_id_agent_number_key;
CREATE UNIQUE INDEX papers_site_number_idx ON papers (campaign_id, agent, number) WHERE origin = 'site';
ALTER TABLE reviews ADD COLUMN origin TEXT NOT NULL DEFAULT 'site' CHECK (origin IN ('site', 'network'));

-- Hypothesize checks a proposal against everything the campaign has run.
CREATE INDEX experiments_campaign_config_idx ON experiments (campaign_id, config_key);
CREATE INDEX experiments_campaign_metric_idx ON experiments (campaign_id, metric);
CREATE INDEX experiments_campaign_baseline_idx ON experiments (campaign_id) WHERE baseline;
