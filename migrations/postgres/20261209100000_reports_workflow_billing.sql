-- Diagnosis reports, the workflow of studies and billing (#18). Medical images (DICOM metadata,
-- previews) come with their own migration.

-- A diagnosis report: one version of it. `previous_id` points to the version it amends (the
-- first has none); `root_id` names the report across its versions. The text (findings,
-- impression, recommendations, ICD-10 codes) is sealed with the patient's key; `digest` is the
-- SHA-256 of that text as signed, which the audit trail records at sign-off.
CREATE TABLE diagnosis_reports (
    id            UUID    PRIMARY KEY,
    root_id       UUID    NOT NULL,
    previous_id   UUID    REFERENCES diagnosis_reports (id),
    version       INTEGER NOT NULL,
    patient_id    UUID    NOT NULL REFERENCES patients (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('imaging', 'pathology')),
    state         TEXT    NOT NULL CHECK (state IN ('draft', 'final', 'amended')),
    body          TEXT    NOT NULL,
    record_ids    TEXT    NOT NULL,
    author_id     UUID    NOT NULL,
    signed_by     UUID,
    signed_at     BIGINT,
    digest        TEXT,
    pdf_record_id UUID    REFERENCES medical_records (id),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX diagnosis_reports_patient ON diagnosis_reports (patient_id, created_at, id);
CREATE UNIQUE INDEX diagnosis_reports_version ON diagnosis_reports (root_id, version);

-- A study or test ordered for a patient, and where it stands. Each transition is an audit
-- event (`workflow.transition`, hash-chained): the log is a view over the trail, not a second
-- log of its own.
CREATE TABLE workflow_orders (
    id          UUID    PRIMARY KEY,
    patient_id  UUID    NOT NULL REFERENCES patients (id),
    kind        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('ordered', 'scheduled', 'acquired', 'reported', 'reviewed', 'cancelled')),
    record_id   UUID    REFERENCES medical_records (id),
    report_id   UUID    REFERENCES diagnosis_reports (id),
    ordered_by  UUID    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX workflow_orders_patient ON workflow_orders (patient_id, created_at, id);

-- A bill item. Amounts are integers in minor units of `clinic.currency`; the tax rate in basis
-- points (20 % = 2000). `total` = quantity × unit price plus tax, rounded half up, fixed at
-- creation. Paying and cancelling are transitions with who and when, never edits; `overdue` is
-- not stored: it is `unpaid` or `pending` past `due_date`.
CREATE TABLE bill_items (
    id             UUID    PRIMARY KEY,
    patient_id     UUID    NOT NULL REFERENCES patients (id),
    service_code   TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    quantity       BIGINT  NOT NULL CHECK (quantity > 0),
    unit_price     BIGINT  NOT NULL CHECK (unit_price >= 0),
    tax_rate_bp    BIGINT  NOT NULL CHECK (tax_rate_bp >= 0),
    total          BIGINT  NOT NULL,
    currency       TEXT    NOT NULL,
    due_date       TEXT    NOT NULL,
    appointment_id UUID    REFERENCES appointments (id),
    record_id      UUID    REFERENCES medical_records (id),
    report_id      UUID    REFERENCES diagnosis_reports (id),
    status         TEXT    NOT NULL CHECK (status IN ('unpaid', 'pending', 'paid', 'cancelled')),
    created_by     UUID    NOT NULL,
    created_at     BIGINT  NOT NULL,
    paid_at        BIGINT,
    paid_by        UUID,
    cancelled_at   BIGINT,
    cancelled_by   UUID
);
CREATE INDEX bill_items_patient ON bill_items (patient_id, created_at, id);
CREATE INDEX bill_items_paid ON bill_items (paid_at) WHERE paid_at IS NOT NULL;
