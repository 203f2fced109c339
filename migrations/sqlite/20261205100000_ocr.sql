-- OCR jobs (#14): the row a client polls and cancels, beside the queue job that runs it.
-- The queue (`jobs`) owns leases, retries and dead letters; this table owns what OCR means to
-- its users: the record, the language, pages done of pages total, the document's confidence,
-- and a state with `cancelled` and `failed`. Nothing here is patient data in clear: page texts
-- are sealed with the record's file key, like the finished text in `medical_records.ocr_text`.
CREATE TABLE ocr_jobs (
    id              BLOB    PRIMARY KEY,
    record_id       BLOB    NOT NULL REFERENCES medical_records (id),
    queue_job       INTEGER  NOT NULL,
    requested_by    BLOB,
    language        TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    pages_done      INTEGER NOT NULL DEFAULT 0,
    pages_total     INTEGER,
    mean_confidence REAL,
    error_code      TEXT,
    error           TEXT,
    created_at      INTEGER  NOT NULL,
    updated_at      INTEGER  NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX ocr_jobs_record ON ocr_jobs (record_id, created_at);
CREATE INDEX ocr_jobs_state ON ocr_jobs (state);

-- Pages read so far by a job, so that a job resumed after a crash does not lose them. Deleted
-- when the job's text is committed to its record (or the job ends otherwise).
CREATE TABLE ocr_pages (
    job_id      BLOB    NOT NULL REFERENCES ocr_jobs (id) ON DELETE CASCADE,
    page        INTEGER NOT NULL,
    source      TEXT    NOT NULL CHECK (source IN ('text-layer', 'ocr')),
    confidence  REAL    NOT NULL,
    rotation    INTEGER NOT NULL,
    engine      TEXT    NOT NULL,
    chars       INTEGER NOT NULL,
    sealed_text TEXT    NOT NULL,
    created_at  INTEGER  NOT NULL,
    PRIMARY KEY (job_id, page)
);
