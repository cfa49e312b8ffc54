-- User-defined research domains ("causes"), shared by every process of a
-- site: the API registers them, workers load them on first use.
CREATE TABLE causes (
    name       TEXT PRIMARY KEY,
    definition JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
