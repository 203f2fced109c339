-- What careport reads from a medical image (#18): one row per record of type medical-images,
-- written in the upload's own transaction (with the job that makes its previews), so that an
-- acknowledged image always has its metadata and a preview on the way.
--
-- kind: xray | mri | ct | ultrasound | mammography | pet | other (from the DICOM modality, or
-- as the uploader said for a picture). identity: how the file's patient identifiers stood to the
-- chart — matched (every identifier the file states matches), absent (the file states none, a
-- de-identified export, or a picture), overridden (an administrator accepted a mismatch; the
-- trail says who). preview: pending | ready | none (no decodable pixels; preview_reason says why)
-- | failed. thumb and web are PNG previews sealed with the file's data key, like its OCR text:
-- read, shared and shredded with the file.
CREATE TABLE record_images (
    record_id       UUID    PRIMARY KEY REFERENCES medical_records (id),
    patient_id      UUID    NOT NULL REFERENCES patients (id),
    kind            TEXT    NOT NULL,
    modality        TEXT,
    body_part       TEXT,
    study_uid       TEXT,
    series_uid      TEXT,
    instance_uid    TEXT,
    study_date      TEXT,
    rows_count      BIGINT,
    columns_count   BIGINT,
    transfer_syntax TEXT,
    identity        TEXT    NOT NULL,
    preview         TEXT    NOT NULL,
    preview_reason  TEXT,
    thumb           TEXT,
    web             TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX record_images_patient ON record_images (patient_id, kind);
