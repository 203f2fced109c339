-- The document vault and medical records (DESIGN §5). No key is stored unwrapped: user keys
-- are wrapped by the master key, a file's data key by its patient's key (and by a grantee's key
-- for each grant). Erasing a patient deletes their key and every wrap of their files.

-- Each user's key (a patient's account and chart share one id, so one key), wrapped by the
-- master key. `careport keys rotate-master` re-wraps these rows and touches no file.
CREATE TABLE vault_keys (
    owner_id   BLOB   PRIMARY KEY,
    wrapped    TEXT   NOT NULL,
    created_at INTEGER NOT NULL
);

-- Named keys of the system (the audit chain's key), wrapped by the master key like user keys,
-- so that rotating the master key keeps the audit trail verifiable.
CREATE TABLE system_keys (
    name       TEXT   PRIMARY KEY,
    wrapped    TEXT   NOT NULL,
    created_at INTEGER NOT NULL
);

-- A sealed file: its object (named by this id, which is also bound into every frame), its data
-- key wrapped by the patient's key, and a tag for finding duplicates within this patient only
-- (HMAC-SHA256 of the plaintext's SHA-256 under the patient's key: it says nothing across
-- patients, nor once the key is gone). Both are NULL once the patient is erased.
CREATE TABLE vault_files (
    id          BLOB    PRIMARY KEY,
    patient_id  BLOB    NOT NULL REFERENCES patients (id),
    content_tag TEXT,
    wrapped_key TEXT,
    size        INTEGER  NOT NULL,
    frame_size  INTEGER NOT NULL,
    media_type  TEXT    NOT NULL,
    backend     TEXT    NOT NULL CHECK (backend IN ('local', 's3')),
    created_at  INTEGER  NOT NULL
);
CREATE UNIQUE INDEX vault_files_duplicates ON vault_files (patient_id, content_tag);

-- A medical record: one file of a patient's chart with its type, title and clinical date.
-- `file_name` is the sanitised name the uploader gave, used only in Content-Disposition.
-- `ocr_text` is sealed with the file's data key (written by OCR, #6).
CREATE TABLE medical_records (
    id            BLOB    PRIMARY KEY,
    patient_id    BLOB    NOT NULL REFERENCES patients (id),
    record_type   TEXT    NOT NULL REFERENCES record_types (id),
    title         TEXT    NOT NULL,
    title_search  TEXT    NOT NULL,
    clinical_date TEXT,
    file_id       BLOB    NOT NULL REFERENCES vault_files (id),
    file_name     TEXT    NOT NULL,
    sensitive     INTEGER NOT NULL DEFAULT 0,
    uploaded_by   BLOB    NOT NULL,
    ocr_text      TEXT,
    created_at    INTEGER  NOT NULL,
    deleted_at    INTEGER,
    deleted_by    BLOB
);
CREATE INDEX medical_records_patient ON medical_records (patient_id, created_at, id);
CREATE INDEX medical_records_file ON medical_records (file_id);

-- A grant: the record's data key wrapped by the grantee's key, until `expires_at`. Revoking
-- deletes the row, and with it the wrap.
CREATE TABLE record_grants (
    id          BLOB   PRIMARY KEY,
    record_id   BLOB   NOT NULL REFERENCES medical_records (id),
    file_id     BLOB   NOT NULL REFERENCES vault_files (id),
    grantee_id  BLOB   NOT NULL REFERENCES users (id),
    wrapped_key TEXT   NOT NULL,
    reason      TEXT,
    expires_at  INTEGER NOT NULL,
    created_by  BLOB   NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX record_grants_record ON record_grants (record_id, grantee_id);
CREATE INDEX record_grants_file ON record_grants (file_id);
