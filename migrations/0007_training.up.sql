-- DiLoCo training runs (issue 10). A run's result is also an experiment of
-- the campaign with the same id (domain ml, agent "diloco"), so it appears
-- on leaderboards and in the archive; these tables hold the run itself.
CREATE TABLE training_runs (
    id          TEXT PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    spec        JSONB       NOT NULL,  -- the normalised spec
    status      TEXT        NOT NULL DEFAULT 'pending',
    workflow_id TEXT        NOT NULL,
    progress    JSONB,                 -- last TrainingProgress written by the workflow
    result_id   TEXT,                  -- receipt id of the finished run
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per closed round: the global parameters before and after (content
-- hashes of S3 objects), what was averaged and what it cost.
CREATE TABLE training_rounds (
    run_id       TEXT             NOT NULL REFERENCES training_runs (id) ON DELETE CASCADE,
    round        INTEGER          NOT NULL,  -- 1-based
    record_id    TEXT             NOT NULL,  -- sha256 of the canonical round record
    base_hash    TEXT             NOT NULL,
    global_hash  TEXT             NOT NULL,
    val_loss     DOUBLE PRECISION NOT NULL,
    record       JSONB            NOT NULL,
    created_at   TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, round)
);

-- Deltas from nodes of other sites, as the owner's node admitted (or
-- rejected) them; the round's outer step reads the accepted ones.
CREATE TABLE training_deltas (
    run_id      TEXT        NOT NULL,
    round       INTEGER     NOT NULL,    -- 0-based round the delta trains
    contributor TEXT        NOT NULL,    -- node peer id
    s3_key      TEXT        NOT NULL DEFAULT '',
    hash        TEXT        NOT NULL DEFAULT '',
    status      TEXT        NOT NULL,    -- accepted | rejected
    reason      TEXT        NOT NULL DEFAULT '',
    bytes       BIGINT      NOT NULL DEFAULT 0,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, round, contributor)
);
