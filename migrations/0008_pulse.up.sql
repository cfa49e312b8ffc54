-- The trust economy (issue 11): pulse rounds, the presences nodes publish,
-- validators' verdicts, the combined outcome per node and round, and the
-- append-only points ledger from which every balance is derived.

-- A node's signed presence for a round (gossip hyperspace/pulse/1 or its
-- own publication). The first one per node and round is kept.
CREATE TABLE pulse_presences (
    id          TEXT PRIMARY KEY,
    round       BIGINT      NOT NULL,
    peer_id     TEXT        NOT NULL,
    record      JSONB       NOT NULL,
    origin      TEXT        NOT NULL DEFAULT 'site' CHECK (origin IN ('site', 'network')),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (round, peer_id)
);

-- One row per round the PulseRoundWorkflow ran.
CREATE TABLE pulse_rounds (
    round        BIGINT PRIMARY KEY,
    interval_ms  BIGINT      NOT NULL,
    workflow_id  TEXT        NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'running',
    presences    INT         NOT NULL DEFAULT 0,
    validators   INT         NOT NULL DEFAULT 0,
    credited     INT         NOT NULL DEFAULT 0,
    points       DOUBLE PRECISION NOT NULL DEFAULT 0,
    bytes        BIGINT      NOT NULL DEFAULT 0,
    wall_ms      BIGINT      NOT NULL DEFAULT 0,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);

-- A validator's signed verdict on a round (one per validator and round).
CREATE TABLE pulse_verdicts (
    id        TEXT PRIMARY KEY,
    round     BIGINT NOT NULL,
    validator TEXT   NOT NULL,
    record    JSONB  NOT NULL,
    UNIQUE (round, validator)
);

-- The combined judgement of a node in a round. since_round is the first
-- round of its current run of continuous presence (uptime).
CREATE TABLE pulse_outcomes (
    round       BIGINT  NOT NULL,
    peer_id     TEXT    NOT NULL,
    present     BOOLEAN NOT NULL,
    since_round BIGINT  NOT NULL,
    verified    JSONB   NOT NULL DEFAULT '[]'::jsonb,
    work        JSONB   NOT NULL DEFAULT '[]'::jsonb,
    validators  INT     NOT NULL DEFAULT 0,
    PRIMARY KEY (round, peer_id)
);
CREATE INDEX pulse_outcomes_peer_idx ON pulse_outcomes (peer_id, round DESC);

-- The ledger. key makes every credit idempotent: presence/<round>/<peer>,
-- work/<receipt> (a receipt earns once, ever), bond/<receipt>/..., and
-- slash/<challenge>/... Entries are never updated or deleted.
CREATE TABLE points_ledger (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    peer_id    TEXT NOT NULL,
    round      BIGINT,
    bucket     TEXT NOT NULL DEFAULT 'free' CHECK (bucket IN ('free', 'bond')),
    amount     DOUBLE PRECISION NOT NULL CHECK (amount = amount AND amount > -1e15 AND amount < 1e15),
    reason     TEXT NOT NULL,
    evidence   JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX points_ledger_peer_idx ON points_ledger (peer_id, id);

CREATE FUNCTION points_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'points_ledger is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER points_ledger_append_only BEFORE UPDATE OR DELETE ON points_ledger
    FOR EACH ROW EXECUTE FUNCTION points_ledger_append_only();

-- Fraud-proof challenges: one row per ChallengeWorkflow.
CREATE TABLE challenges (
    id          TEXT PRIMARY KEY,
    receipt_id  TEXT        NOT NULL,
    domain      TEXT        NOT NULL,
    challenger  TEXT        NOT NULL,
    defender    TEXT        NOT NULL,
    referee     TEXT        NOT NULL DEFAULT '',
    status      TEXT        NOT NULL DEFAULT 'running',
    winner      TEXT        NOT NULL DEFAULT '',
    loser       TEXT        NOT NULL DEFAULT '',
    reason      TEXT        NOT NULL DEFAULT '',
    record      JSONB,
    rounds      INT         NOT NULL DEFAULT 0,
    bytes       BIGINT      NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
CREATE INDEX challenges_receipt_idx ON challenges (receipt_id);
