-- Idempotency keys of uploads (#21): a client that resends an upload whose answer it lost, with
-- the same Idempotency-Key header, gets the record the first one made instead of a second record.
-- Keys are the uploader's own (two users may use the same text) and are kept for a day; the row is
-- written in the upload's own transaction, so a committed upload always has its key.
CREATE TABLE upload_keys (
    user_id    UUID    NOT NULL,
    idem_key   TEXT    NOT NULL,
    record_id  UUID    NOT NULL REFERENCES medical_records (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX upload_keys_created ON upload_keys (created_at);
