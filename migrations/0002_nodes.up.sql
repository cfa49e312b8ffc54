-- P2P nodes of this site: each serves the task queue node-<peer_id> and
-- heartbeats last_seen; campaigns spread their agents over the live ones.
CREATE TABLE nodes (
    peer_id    TEXT PRIMARY KEY,
    task_queue TEXT        NOT NULL,
    addrs      JSONB       NOT NULL DEFAULT '[]'::jsonb,
    api_url    TEXT        NOT NULL DEFAULT '',
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX nodes_last_seen_idx ON nodes (last_seen);
