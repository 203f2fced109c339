-- Identity and access: profiles for authorization, sessions with rotating refresh tokens,
-- single-use e-mail tokens, invitations, MFA, care-team assignments and the audit trail.
-- Times are milliseconds since the Unix epoch, as everywhere in careport.

ALTER TABLE users ADD COLUMN staff_role TEXT CHECK (staff_role IN ('doctor', 'nurse'));
ALTER TABLE users ADD COLUMN department TEXT;
ALTER TABLE users ADD COLUMN preferred_language TEXT NOT NULL DEFAULT 'en';
-- The TOTP secret, sealed with the master key (Fernet); NULL when MFA is not enrolled.
ALTER TABLE users ADD COLUMN mfa_secret TEXT;
-- Set once enrolment is confirmed with a first code.
ALTER TABLE users ADD COLUMN mfa_enabled_at INTEGER;
-- The last TOTP time step accepted: a code cannot be replayed within its window.
ALTER TABLE users ADD COLUMN mfa_last_step INTEGER;
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;

-- One row per login: the session family that every rotated refresh token belongs to.
CREATE TABLE sessions (
    id             BLOB   PRIMARY KEY,
    user_id        BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT,
    ip             TEXT,
    user_agent     TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Every refresh token ever issued, by SHA-256 only. `used_at` set = rotated away: presenting
-- it again is reuse, and revokes the family.
CREATE TABLE refresh_tokens (
    token_hash TEXT   PRIMARY KEY,
    session_id BLOB   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Single-use links sent by e-mail (verify, reset), by SHA-256 only.
CREATE TABLE email_tokens (
    token_hash TEXT   PRIMARY KEY,
    user_id    BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT   NOT NULL CHECK (purpose IN ('verify', 'reset')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- Invitations for clinicians and administrators.
CREATE TABLE invitations (
    token_hash  TEXT   PRIMARY KEY,
    email       TEXT   NOT NULL,
    role        TEXT   NOT NULL CHECK (role IN ('clinician', 'admin')),
    staff_role  TEXT   CHECK (staff_role IN ('doctor', 'nurse')),
    department  TEXT,
    invited_by  BLOB   NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER
);

CREATE TABLE mfa_recovery_codes (
    user_id   BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT   NOT NULL,
    used_at   INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Roles whose members must use MFA (set by an administrator).
CREATE TABLE mfa_required_roles (
    role   TEXT   PRIMARY KEY CHECK (role IN ('patient', 'clinician', 'admin')),
    set_at INTEGER NOT NULL,
    set_by BLOB   NOT NULL
);

-- Which clinician treats which patient: the fact `assigned(clinician, patient)` of the policies.
CREATE TABLE care_assignments (
    clinician_id BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    patient_id   BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (clinician_id, patient_id)
);
CREATE INDEX care_assignments_patient ON care_assignments (patient_id);

-- The audit trail: append-only and hash-chained. `hash` = HMAC-SHA256 (key derived from the
-- master key) over `prev_hash` and the event's fields; `audit_head` holds the last link and a
-- MAC over it, so deleting the newest rows shows too.
CREATE TABLE audit_events (
    seq           INTEGER PRIMARY KEY,
    id            BLOB   NOT NULL UNIQUE,
    at            INTEGER NOT NULL,
    actor_id      BLOB,
    actor_role    TEXT,
    action        TEXT   NOT NULL,
    resource_kind TEXT,
    resource_id   TEXT,
    patient_id    BLOB,
    outcome       TEXT   NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    request_id    TEXT,
    detail        TEXT,
    prev_hash     TEXT   NOT NULL,
    hash          TEXT   NOT NULL
);
CREATE INDEX audit_events_actor ON audit_events (actor_id, at);
CREATE INDEX audit_events_patient ON audit_events (patient_id, at);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER  NOT NULL,
    hash TEXT    NOT NULL,
    mac  TEXT    NOT NULL DEFAULT ''
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
