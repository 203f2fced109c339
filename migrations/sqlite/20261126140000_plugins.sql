-- Plugins in the store, so that every node of a cluster serves the same set: the manifest, the
-- module, whether it is enabled, and when it last changed (nodes compare this to sync).
CREATE TABLE plugins (
    name       TEXT    PRIMARY KEY,
    version    TEXT    NOT NULL,
    manifest   TEXT    NOT NULL,
    module     BLOB   NOT NULL,
    enabled    INTEGER NOT NULL,
    updated_at INTEGER  NOT NULL
);
