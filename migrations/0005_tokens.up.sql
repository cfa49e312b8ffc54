-- Bearer tokens of the REST API (hs_<id>_<secret>). Only sha256(secret) is
-- kept: the secret itself is shown once, by `hyperspace token create`.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name         TEXT        NOT NULL,
    secret_hash  BYTEA       NOT NULL CHECK (octet_length(secret_hash) = 32),
    scopes       TEXT[]      NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'run', 'admin']),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
