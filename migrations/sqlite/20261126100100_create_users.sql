-- Accounts. The identity work adds sessions, MFA and audit; this is what `careport user create`
-- needs so that scripts can make the first administrator.
CREATE TABLE users (
    id                BLOB    PRIMARY KEY,
    email             TEXT    NOT NULL UNIQUE,
    role              TEXT    NOT NULL CHECK (role IN ('patient', 'clinician', 'admin')),
    password_hash     TEXT    NOT NULL,
    full_name         TEXT,
    status            TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    email_verified_at INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
