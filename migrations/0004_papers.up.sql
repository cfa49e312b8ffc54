-- Research community: papers, their peer reviews, and the archive's state.
CREATE TABLE papers (
    id           TEXT PRIMARY KEY,            -- sha256 of the canonical paper
    campaign_id  TEXT        NOT NULL,
    domain       TEXT        NOT NULL,
    agent        TEXT        NOT NULL,
    number       INT         NOT NULL,
    peer_id      TEXT        NOT NULL,        -- author key id
    title        TEXT        NOT NULL,
    record       JSONB       NOT NULL,        -- the signed paper (paper.Signed)
    status       TEXT        NOT NULL DEFAULT 'reviewing', -- reviewing | reviewed | unreviewed
    score        DOUBLE PRECISION,            -- median review score
    breakthrough BOOLEAN     NOT NULL DEFAULT false,
    reviewed_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, agent, number)
);
CREATE INDEX papers_domain_idx ON papers (domain, created_at DESC);
CREATE INDEX papers_breakthrough_idx ON papers (domain, score DESC) WHERE breakthrough;

CREATE TABLE reviews (
    id          TEXT PRIMARY KEY,             -- sha256 of the canonical review
    paper_id    TEXT        NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    node        TEXT        NOT NULL,         -- reviewer node peer id
    reviewer    TEXT        NOT NULL,         -- reviewer key id
    score       INT         NOT NULL CHECK (score BETWEEN 1 AND 10),
    record      JSONB       NOT NULL,         -- the signed review (paper.SignedReview)
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (paper_id, node)
);

-- One row per archive target (the local repository, a remote, GitHub).
CREATE TABLE archive_state (
    name           TEXT PRIMARY KEY,
    location       TEXT        NOT NULL,
    last_commit_at TIMESTAMPTZ,
    last_snapshot  TIMESTAMPTZ,
    last_error     TEXT        NOT NULL DEFAULT '',
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
