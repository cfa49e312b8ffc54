-- Campaigns: one row per research campaign (one CampaignWorkflow each).
CREATE TABLE campaigns (
    id             TEXT PRIMARY KEY,
    domain         TEXT        NOT NULL,
    status         TEXT        NOT NULL DEFAULT 'pending',
    agents         INTEGER     NOT NULL,
    experiments    INTEGER     NOT NULL, -- per agent, after the baseline runs
    baseline_seeds INTEGER     NOT NULL,
    budget_seconds DOUBLE PRECISION NOT NULL,
    request        JSONB       NOT NULL, -- the validated request as submitted
    summary        JSONB,                -- set when the campaign ends
    workflow_id    TEXT        NOT NULL,
    error          TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_created_at_idx ON campaigns (created_at DESC, id DESC);

-- Agents: one row per agent of a campaign, with the public key it signs with.
CREATE TABLE agents (
    campaign_id TEXT        NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name        TEXT        NOT NULL,
    peer_id     TEXT        NOT NULL,
    public_key  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, name)
);

-- Experiments: the full signed research receipt plus indexed columns.
-- id is the receipt id (sha256 of its canonical JSON): inserts are idempotent on it,
-- and (campaign_id, agent, run_number) is unique so a retried activity that
-- re-signs a run can never add a second row for it.
CREATE TABLE experiments (
    id          TEXT PRIMARY KEY,
    campaign_id TEXT             NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    agent       TEXT             NOT NULL,
    domain      TEXT             NOT NULL,
    run_number  INTEGER          NOT NULL,
    metric      DOUBLE PRECISION NOT NULL,
    test_metric DOUBLE PRECISION,
    seed        BIGINT           NOT NULL,
    status      TEXT             NOT NULL DEFAULT 'completed',
    baseline    BOOLEAN          NOT NULL DEFAULT false,
    is_new_best BOOLEAN          NOT NULL DEFAULT false,
    config_key  TEXT             NOT NULL,
    record      JSONB            NOT NULL,
    artifacts   JSONB            NOT NULL DEFAULT '{}'::jsonb, -- name -> S3 key
    created_at  TIMESTAMPTZ      NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, agent, run_number)
);
CREATE INDEX experiments_domain_metric_idx ON experiments (domain, metric);
CREATE INDEX experiments_campaign_idx ON experiments (campaign_id, created_at, id);
CREATE INDEX experiments_agent_idx ON experiments (agent);
CREATE INDEX experiments_seed_idx ON experiments (seed);
CREATE INDEX experiments_status_idx ON experiments (status);
CREATE INDEX experiments_created_at_idx ON experiments (created_at, id);
