-- The knowledge base (#15): curated documents, the chunks they are cut into, the embedding jobs
-- that index them, and the vector spaces the chunks are embedded in. A chunk's vector lives in
-- `embeddings` (source_kind 'knowledge', source_id the chunk id), one row per model, so a model
-- change builds the new space beside the old one and searches keep the old until it is whole.
--
-- A document is either curated (its text in `body`: guides and protocols, not patient data) or
-- a patient's own record opted in (`record_id`): then `body` is NULL and its chunks keep no text
-- either, only offsets into the record's OCR text, which stays sealed with the record's key.
CREATE TABLE knowledge_documents (
    id          UUID    PRIMARY KEY,
    title       TEXT    NOT NULL,
    media_type  TEXT    NOT NULL,
    cancer_type TEXT    REFERENCES cancer_types (id),
    department  TEXT    REFERENCES departments (id),
    audience    TEXT    NOT NULL CHECK (audience IN ('patient', 'clinician', 'all')),
    sensitivity TEXT    NOT NULL CHECK (sensitivity IN ('normal', 'restricted')),
    language    TEXT    NOT NULL REFERENCES languages (code),
    record_id   UUID    UNIQUE REFERENCES medical_records (id),
    patient_id  UUID    REFERENCES patients (id),
    body        TEXT,
    chars       BIGINT  NOT NULL,
    sha256      TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('indexing', 'ready', 'failed')),
    created_by  UUID,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX knowledge_documents_created ON knowledge_documents (created_at, id);
CREATE INDEX knowledge_documents_patient ON knowledge_documents (patient_id);

-- Chunks: a window of a document's text that fits the embedding model, with the headings above
-- it and its character offsets (for citations). `text` is NULL for a record's chunks.
CREATE TABLE knowledge_chunks (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id UUID    NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    heading     TEXT    NOT NULL,
    start_char  BIGINT  NOT NULL,
    end_char    BIGINT  NOT NULL,
    tokens      BIGINT  NOT NULL,
    text        TEXT,
    UNIQUE (document_id, position)
);

-- Full text of the chunks (the text arm of hybrid search): a generated tsvector with the
-- `simple` configuration (no stemming: the corpus is in six languages), GIN-indexed. SQLite has
-- an FTS5 table instead.
ALTER TABLE knowledge_chunks ADD COLUMN tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', COALESCE(text, ''))) STORED;
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);

-- Embedding jobs: what a client polls (chunks done of chunks total) beside the queue's job.
-- `index` embeds one document; `reindex` embeds every chunk into the configured model's space.
CREATE TABLE knowledge_jobs (
    id           UUID    PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('index', 'reindex')),
    document_id  UUID    REFERENCES knowledge_documents (id) ON DELETE SET NULL,
    queue_job    BIGINT  NOT NULL,
    model        TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    chunks_done  INTEGER NOT NULL DEFAULT 0,
    chunks_total INTEGER,
    error_code   TEXT,
    error        TEXT,
    requested_by UUID,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX knowledge_jobs_document ON knowledge_jobs (document_id, created_at);
CREATE INDEX knowledge_jobs_state ON knowledge_jobs (state);

-- The vector spaces of the knowledge base: searches use the `active` one; a model change builds
-- its space (`building`) and makes it active only once every chunk has its vector there.
CREATE TABLE knowledge_spaces (
    model        TEXT    PRIMARY KEY,
    dim          INTEGER NOT NULL CHECK (dim > 0),
    state        TEXT    NOT NULL CHECK (state IN ('active', 'building', 'retired')),
    created_at   BIGINT  NOT NULL,
    activated_at BIGINT
);
