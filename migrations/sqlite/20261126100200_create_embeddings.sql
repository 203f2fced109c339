-- Stored embeddings, from any feature (knowledge base chunks, suggestion templates, …). Every
-- vector carries the id of the model that made it and its dimension: vectors of two models
-- live in different spaces and are never compared. SQLite has no vector type: the vector is a
-- BLOB of little-endian f32 values.
CREATE TABLE embeddings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_kind TEXT    NOT NULL,
    source_id   TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    dim         INTEGER NOT NULL CHECK (dim > 0),
    vector      BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (source_kind, source_id, model)
);

CREATE INDEX embeddings_model ON embeddings (model, dim);
