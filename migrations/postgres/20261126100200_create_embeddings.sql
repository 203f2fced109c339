-- Stored embeddings, from any feature (knowledge base chunks, suggestion templates, …). Every
-- vector carries the id of the model that made it and its dimension: vectors of two models
-- live in different spaces and are never compared. `vector` without a fixed dimension holds
-- any model's vectors; similarity indexes are made per model (partial HNSW indexes).
CREATE TABLE embeddings (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_kind TEXT    NOT NULL,
    source_id   TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    dim         INTEGER NOT NULL CHECK (dim > 0),
    vector      vector  NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (source_kind, source_id, model)
);

CREATE INDEX embeddings_model ON embeddings (model, dim);
