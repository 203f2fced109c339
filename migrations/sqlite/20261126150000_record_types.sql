-- The twenty medical record types (DESIGN §10), with descriptions of our own and the free-text
-- names people use for them (aliases, `|`-separated), which GET /api/v1/record-types/match ranks.
CREATE TABLE record_types (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    aliases     TEXT    NOT NULL,
    position    INTEGER NOT NULL
);
INSERT INTO record_types (id, name, description, aliases, position) VALUES
    ('laboratory-results', 'Laboratory Results', 'Blood, urine and other laboratory test results.', 'lab result|lab results|blood test|blood work|bloods|laboratory report|full blood count|cbc|chemistry panel', 1),
    ('imaging-reports', 'Imaging Reports', 'Reports on scans and images other than a radiologist''s formal report.', 'imaging|scan report|scan|ultrasound report|echo report', 2),
    ('pathology-reports', 'Pathology Reports', 'A pathologist''s findings on tissue or cells.', 'pathology|histology|cytology|path report', 3),
    ('consultation-notes', 'Consultation Notes', 'Notes from a specialist consultation or clinic visit.', 'consultation|consult note|clinic letter|clinic note|referral letter', 4),
    ('procedure-reports', 'Procedure Reports', 'What was done during a procedure and what was found.', 'procedure|procedure note|endoscopy report|colonoscopy report', 5),
    ('medication-history', 'Medication History', 'Current and past medicines, doses and changes.', 'medication list|medications|prescriptions|drug history|medicine list', 6),
    ('treatment-plans', 'Treatment Plans', 'The agreed plan of treatment and its schedule.', 'treatment plan|care plan|plan of care|mdt outcome', 7),
    ('diagnostic-tests', 'Diagnostic Tests', 'Results of diagnostic tests such as ECGs or lung function.', 'diagnostic test|ecg|ekg|lung function|spirometry', 8),
    ('surgical-reports', 'Surgical Reports', 'An operation note: the surgery performed and its findings.', 'surgery report|operation note|operative report|op note', 9),
    ('radiology-reports', 'Radiology Reports', 'A radiologist''s report on a CT, MRI, PET or X-ray.', 'radiology|ct report|ct scan|mri report|mri|pet scan|x-ray|xray|mammogram', 10),
    ('biopsy-reports', 'Biopsy Reports', 'Findings from a biopsy sample.', 'biopsy|core biopsy|fna|fine needle aspiration', 11),
    ('chemotherapy-records', 'Chemotherapy Records', 'Chemotherapy cycles, drugs, doses and side effects.', 'chemo|chemotherapy|chemo record|infusion record|systemic therapy', 12),
    ('radiation-therapy-records', 'Radiation Therapy Records', 'Radiotherapy plans, fractions and doses given.', 'radiotherapy|radiation|rt record|radiation treatment', 13),
    ('progress-notes', 'Progress Notes', 'Ongoing notes on the patient''s condition and progress.', 'progress note|ward note|daily note|follow-up note', 14),
    ('discharge-summaries', 'Discharge Summaries', 'A summary written when the patient leaves hospital.', 'discharge summary|discharge letter|discharge note', 15),
    ('admission-records', 'Admission Records', 'Notes and forms from admission to hospital.', 'admission|admission note|admission form|clerking', 16),
    ('physical-examination', 'Physical Examination', 'Findings from a physical examination.', 'physical exam|examination|exam findings', 17),
    ('immunization-records', 'Immunization Records', 'Vaccines given and their dates.', 'immunisation|immunization|vaccination|vaccine record', 18),
    ('allergy-documentation', 'Allergy Documentation', 'Known allergies and reactions.', 'allergies|allergy list|allergy record|adverse reactions', 19),
    ('clinical-assessments', 'Clinical Assessments', 'Structured assessments such as performance status or pain scores.', 'assessment|clinical assessment|performance status|ecog|pain score', 20);
