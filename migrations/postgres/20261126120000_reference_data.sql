-- Reference data of the clinic directory: languages, departments and the cancer-type tree
-- (DESIGN §10). Ids are stable slugs, so links and seeds agree on every node. Descriptions
-- are our own. Times are milliseconds since the Unix epoch.

CREATE TABLE languages (
    code          TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    native_name   TEXT    NOT NULL,
    display_order INTEGER NOT NULL UNIQUE
);
INSERT INTO languages (code, name, native_name, display_order) VALUES
    ('en', 'English', 'English', 1),
    ('ar', 'Arabic', 'العربية', 2),
    ('zh', 'Chinese', '中文', 3),
    ('fr', 'French', 'Français', 4),
    ('hi', 'Hindi', 'हिन्दी', 5),
    ('es', 'Spanish', 'Español', 6);

CREATE TABLE departments (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL UNIQUE,
    description TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
INSERT INTO departments (id, name, description, created_at) VALUES
    ('oncology', 'Medical Oncology', 'Chemotherapy, targeted and immune therapies, and the overall plan of cancer care.', 0),
    ('radiation-oncology', 'Radiation Oncology', 'Planning and delivery of radiotherapy.', 0),
    ('surgical-oncology', 'Surgical Oncology', 'Biopsies, tumour removal and reconstructive surgery.', 0),
    ('hematology', 'Hematology', 'Blood cancers: leukemia, lymphoma and myeloma, and transfusion support.', 0),
    ('gynecologic-oncology', 'Gynecologic Oncology', 'Cancers of the ovary, cervix and uterus.', 0),
    ('cardiology', 'Cardio-oncology', 'Heart health before, during and after cancer treatment.', 0),
    ('palliative-care', 'Palliative Care', 'Relief of pain and other symptoms, and support for patients and families.', 0),
    ('radiology', 'Radiology', 'Imaging: CT, MRI, PET and ultrasound, and image-guided procedures.', 0),
    ('pathology', 'Pathology', 'Laboratory diagnosis from tissue and blood samples.', 0);

-- Two levels: a top-level type (parent_id NULL) and its subtypes. Retired types stay (old
-- assignments name them) but are no longer offered.
CREATE TABLE cancer_types (
    id          TEXT   PRIMARY KEY,
    parent_id   TEXT   REFERENCES cancer_types (id),
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
CREATE UNIQUE INDEX cancer_types_name ON cancer_types (COALESCE(parent_id, ''), lower(name));
CREATE INDEX cancer_types_parent ON cancer_types (parent_id);
INSERT INTO cancer_types (id, parent_id, name, description, position, created_at, updated_at) VALUES
    ('breast', NULL, 'Breast', 'Cancer that starts in the cells of the breast, most often in the milk ducts or lobules.', 1, 0, 0),
    ('lung', NULL, 'Lung', 'Cancer that starts in the lungs, usually in the cells lining the airways.', 2, 0, 0),
    ('prostate', NULL, 'Prostate', 'Cancer of the prostate gland, which sits below the bladder in men.', 3, 0, 0),
    ('pancreatic', NULL, 'Pancreatic', 'Cancer of the pancreas, the gland behind the stomach that makes digestive juices and insulin.', 4, 0, 0),
    ('colorectal', NULL, 'Colorectal', 'Cancer of the colon or rectum, often growing from a polyp in the bowel lining.', 5, 0, 0),
    ('liver', NULL, 'Liver', 'Cancer that starts in the liver, most often in its main cells (hepatocellular carcinoma).', 6, 0, 0),
    ('stomach', NULL, 'Stomach', 'Cancer of the stomach lining, also called gastric cancer.', 7, 0, 0),
    ('ovarian', NULL, 'Ovarian', 'Cancer of the ovaries or the nearby fallopian tubes and peritoneum.', 8, 0, 0),
    ('cervical', NULL, 'Cervical', 'Cancer of the cervix, the lower part of the uterus; most cases follow a long-lasting HPV infection.', 9, 0, 0),
    ('uterine', NULL, 'Uterine', 'Cancers of the uterus: carcinomas of its lining (endometrium) and sarcomas of its muscle and supporting tissue.', 10, 0, 0),
    ('kidney', NULL, 'Kidney', 'Cancer of the kidneys, most often renal cell carcinoma.', 11, 0, 0),
    ('bladder', NULL, 'Bladder', 'Cancer of the bladder, usually starting in the cells lining its inside.', 12, 0, 0),
    ('skin', NULL, 'Skin', 'Cancers of the skin, including melanoma and the more common basal and squamous cell cancers.', 13, 0, 0),
    ('brain', NULL, 'Brain', 'Tumours that start in the brain or spinal cord, such as gliomas.', 14, 0, 0),
    ('throat', NULL, 'Throat', 'Cancers of the throat, voice box and tonsils (head and neck cancers).', 15, 0, 0),
    ('esophageal', NULL, 'Esophageal', 'Cancer of the esophagus, the tube that carries food from the throat to the stomach.', 16, 0, 0),
    ('bone', NULL, 'Bone', 'Cancers that start in bone, such as osteosarcoma and Ewing sarcoma.', 17, 0, 0),
    ('thyroid', NULL, 'Thyroid', 'Cancer of the thyroid gland in the neck; most types respond well to treatment.', 18, 0, 0),
    ('testicular', NULL, 'Testicular', 'Cancer of the testicles, most common in young men and often curable.', 19, 0, 0),
    ('leukemia', NULL, 'Leukemia', 'Cancers of the blood-forming cells of the bone marrow.', 20, 0, 0),
    ('lymphoma', NULL, 'Lymphoma', 'Cancers of the lymphocytes in the lymph nodes and lymphatic system.', 21, 0, 0);

INSERT INTO cancer_types (id, parent_id, name, description, position, created_at, updated_at) VALUES
    ('uterine-adenosarcoma', 'uterine', 'Adenosarcoma', 'A usually low-grade tumour mixing benign glands with malignant stroma.', 1, 0, 0),
    ('uterine-carcinosarcoma-mmmt', 'uterine', 'Carcinosarcoma (MMMT)', 'An aggressive tumour with both carcinoma and sarcoma parts, also called malignant mixed Müllerian tumour.', 2, 0, 0),
    ('uterine-clear-cell-carcinoma', 'uterine', 'Clear-cell carcinoma', 'A rare, often aggressive carcinoma of the endometrium with cells that look clear under the microscope.', 3, 0, 0),
    ('uterine-endometrioid-carcinoma', 'uterine', 'Endometrioid carcinoma', 'The most common cancer of the endometrium, often found early.', 4, 0, 0),
    ('uterine-hg-ess', 'uterine', 'HG-ESS', 'High-grade endometrial stromal sarcoma, a fast-growing sarcoma of the uterine lining''s supporting tissue.', 5, 0, 0),
    ('uterine-leiomyosarcoma-ulms', 'uterine', 'Leiomyosarcoma (uLMS)', 'A sarcoma of the smooth muscle of the uterine wall.', 6, 0, 0),
    ('uterine-lg-ess', 'uterine', 'LG-ESS', 'Low-grade endometrial stromal sarcoma, a slow-growing sarcoma that can recur years later.', 7, 0, 0),
    ('uterine-ntrk-rearranged-spindle-cell-sarcoma', 'uterine', 'NTRK-rearranged spindle-cell sarcoma', 'A rare sarcoma driven by an NTRK gene fusion, which targeted drugs can treat.', 8, 0, 0),
    ('uterine-pecoma', 'uterine', 'PEComa', 'A rare tumour of perivascular epithelioid cells.', 9, 0, 0),
    ('uterine-rhabdomyosarcoma', 'uterine', 'Rhabdomyosarcoma', 'A sarcoma with features of skeletal muscle, rare in the uterus.', 10, 0, 0),
    ('uterine-serous-carcinoma', 'uterine', 'Serous carcinoma', 'An aggressive endometrial carcinoma that tends to spread early.', 11, 0, 0),
    ('uterine-utrosct', 'uterine', 'UTROSCT', 'Uterine tumour resembling ovarian sex-cord tumour, usually of low malignant potential.', 12, 0, 0),
    ('uterine-undifferentiated-dedifferentiated-carcinoma', 'uterine', 'Undifferentiated/dedifferentiated carcinoma', 'A carcinoma whose cells have lost their specialised features; it grows quickly.', 13, 0, 0),
    ('uterine-uus', 'uterine', 'UUS', 'Undifferentiated uterine sarcoma, a high-grade sarcoma without a more specific type.', 14, 0, 0),
    ('breast-invasive-ductal-carcinoma', 'breast', 'Invasive Ductal Carcinoma', 'The most common breast cancer, starting in a milk duct and growing into nearby tissue.', 1, 0, 0);
