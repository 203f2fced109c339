"""Writes migrations/{postgres,sqlite}/20261126130000_clinic.sql (one source, two dialects):
    python3 scripts/gen-clinic-migration.py pg > migrations/postgres/20261126130000_clinic.sql
    python3 scripts/gen-clinic-migration.py sqlite > migrations/sqlite/20261126130000_clinic.sql
"""
import sys
pg = sys.argv[1] == "pg"
U = "UUID" if pg else "BLOB"
B = "BIGINT" if pg else "INTEGER"
BOOL = "BOOLEAN" if pg else "INTEGER"
I = "BIGINT" if pg else "INTEGER"  # i64 in Rust
mrn_expr = ("'CP' || upper(substr(replace(id::text, '-', ''), 21, 12))" if pg
            else "'CP' || upper(substr(hex(id), 21, 12))")
search_expr = ("lower(COALESCE(full_name, '') || ' ' || " + mrn_expr + ")")
out = f"""-- The clinic directory and scheduling: patients' records, care-team assignments with their
-- cancer subtype and history, clinicians' profiles, specializations, working hours and
-- exceptions, and appointments. Times are milliseconds since the Unix epoch (UTC); working
-- hours are minutes of the clinic's local day (`[clinic] time_zone`).

-- A patient's record. A patient's account, when they have one, has the same id: policies,
-- the audit trail and the care team all name the patient by this one id.
CREATE TABLE patients (
    id                         {U}   PRIMARY KEY,
    mrn                        TEXT   NOT NULL UNIQUE,
    full_name                  TEXT   NOT NULL,
    date_of_birth              TEXT,
    sex                        TEXT   NOT NULL DEFAULT 'unknown' CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    email                      TEXT,
    phone                      TEXT,
    address                    TEXT,
    emergency_contact_name     TEXT,
    emergency_contact_phone    TEXT,
    emergency_contact_relation TEXT,
    preferred_language         TEXT   NOT NULL DEFAULT 'en' REFERENCES languages (code),
    department                 TEXT   REFERENCES departments (id),
    -- lower-case name and MRN, for search.
    search_text                TEXT   NOT NULL,
    created_by                 {U},
    created_at                 {B} NOT NULL,
    updated_at                 {B} NOT NULL,
    deleted_at                 {B}
);
CREATE INDEX patients_email ON patients (email);
CREATE INDEX patients_department ON patients (department);

-- Every existing patient account gets its record.
INSERT INTO patients (id, mrn, full_name, sex, email, preferred_language, search_text, created_at, updated_at)
SELECT id, {mrn_expr}, COALESCE(full_name, ''), 'unknown', email, preferred_language, {search_expr}, created_at, updated_at
FROM users WHERE role = 'patient';

-- Care-team assignments now name the patient's record and the cancer subtype treated.
CREATE TABLE care_assignments_v2 (
    clinician_id   {U}   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    patient_id     {U}   NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    cancer_type_id TEXT   REFERENCES cancer_types (id),
    assigned_by    {U},
    created_at     {B} NOT NULL,
    PRIMARY KEY (clinician_id, patient_id)
);
INSERT INTO care_assignments_v2 (clinician_id, patient_id, created_at)
SELECT clinician_id, patient_id, created_at FROM care_assignments WHERE patient_id IN (SELECT id FROM patients);
DROP TABLE care_assignments;
ALTER TABLE care_assignments_v2 RENAME TO care_assignments;
CREATE INDEX care_assignments_patient ON care_assignments (patient_id);

-- What happened to assignments: assigned, changed (another subtype), ended.
CREATE TABLE care_assignment_history (
    id             {U}   PRIMARY KEY,
    clinician_id   {U}   NOT NULL,
    patient_id     {U}   NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    cancer_type_id TEXT,
    action         TEXT   NOT NULL CHECK (action IN ('assigned', 'changed', 'ended')),
    actor_id       {U},
    at             {B} NOT NULL
);
CREATE INDEX care_assignment_history_patient ON care_assignment_history (patient_id, at);

CREATE TABLE clinician_profiles (
    user_id      {U}   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    bio          TEXT   NOT NULL DEFAULT '',
    slot_minutes {I} NOT NULL DEFAULT 30 CHECK (slot_minutes BETWEEN 5 AND 240),
    updated_at   {B} NOT NULL
);

-- Top-level cancer types a clinician treats; exactly one may be primary.
CREATE TABLE clinician_specializations (
    clinician_id   {U}   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    cancer_type_id TEXT   NOT NULL REFERENCES cancer_types (id),
    is_primary     {BOOL} NOT NULL,
    PRIMARY KEY (clinician_id, cancer_type_id)
);
CREATE UNIQUE INDEX clinician_specializations_primary ON clinician_specializations (clinician_id) WHERE is_primary;
CREATE INDEX clinician_specializations_type ON clinician_specializations (cancer_type_id);

-- Weekly hours in the clinic's local time: ISO weekday (1 = Monday) and minutes of the day.
CREATE TABLE working_hours (
    clinician_id {U}   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    weekday      {I} NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_minute {I} NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute   {I} NOT NULL CHECK (end_minute BETWEEN 1 AND 1440),
    CHECK (start_minute < end_minute),
    PRIMARY KEY (clinician_id, weekday, start_minute)
);

-- Leave, holidays and other absences: no slots are offered inside them.
CREATE TABLE clinician_exceptions (
    id           {U}   PRIMARY KEY,
    clinician_id {U}   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    starts_at    {B} NOT NULL,
    ends_at      {B} NOT NULL,
    kind         TEXT   NOT NULL CHECK (kind IN ('leave', 'holiday', 'training', 'other')),
    note         TEXT   NOT NULL DEFAULT '',
    created_by   {U},
    created_at   {B} NOT NULL,
    CHECK (starts_at < ends_at)
);
CREATE INDEX clinician_exceptions_clinician ON clinician_exceptions (clinician_id, ends_at);

CREATE TABLE appointments (
    id            {U}   PRIMARY KEY,
    patient_id    {U}   NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    clinician_id  {U}   NOT NULL REFERENCES users (id),
    starts_at     {B} NOT NULL,
    ends_at       {B} NOT NULL,
    status        TEXT   NOT NULL CHECK (status IN ('scheduled', 'completed', 'cancelled', 'no_show')),
    reason        TEXT   NOT NULL DEFAULT '',
    cancel_reason TEXT,
    booked_by     {U},
    created_at    {B} NOT NULL,
    updated_at    {B} NOT NULL,
    CHECK (starts_at < ends_at)
);
-- The guard against double booking: one scheduled appointment per clinician per start time,
-- and one per patient. Two racing bookings of one slot: the second insert fails here.
CREATE UNIQUE INDEX appointments_clinician_slot ON appointments (clinician_id, starts_at) WHERE status = 'scheduled';
CREATE UNIQUE INDEX appointments_patient_slot ON appointments (patient_id, starts_at) WHERE status = 'scheduled';
CREATE INDEX appointments_patient ON appointments (patient_id, starts_at);
CREATE INDEX appointments_clinician ON appointments (clinician_id, starts_at);
CREATE INDEX appointments_starts ON appointments (starts_at);
"""
print(out, end="")
