-- pgvector, for the knowledge base's embeddings (DESIGN.md §1). Created here so that a server
-- without the extension fails at the first migration, not on the first search.
CREATE EXTENSION IF NOT EXISTS vector;

-- The durable job queue: a job is a row before it is a message. Times are milliseconds since
-- the Unix epoch (UTC), as on SQLite, so one SQL text serves both backends.
CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    priority     INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    run_at       BIGINT  NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    dedup_key    TEXT UNIQUE,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    finished_at  BIGINT
);

CREATE INDEX jobs_ready ON jobs (kind, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state = 'done';
CREATE INDEX jobs_state ON jobs (state);
