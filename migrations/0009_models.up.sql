-- Models the site serves through its OpenAI-compatible API (issue 12): an
-- ML-domain checkpoint (a campaign's experiment or a training run's result)
-- published under a name. The checkpoint stays where the experiment keeps
-- it (an S3 key); its SHA-256 is kept so every node serving the name serves
-- the same weights, and a cache key can name them.
CREATE TABLE models (
    name            TEXT PRIMARY KEY,
    kind            TEXT        NOT NULL DEFAULT 'chat',
    experiment_id   TEXT        NOT NULL REFERENCES experiments (id),
    checkpoint_key  TEXT        NOT NULL,
    checkpoint_hash TEXT        NOT NULL,
    metric          DOUBLE PRECISION NOT NULL,
    config          JSONB       NOT NULL,
    published_by    TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
