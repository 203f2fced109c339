//! Patients' records: identity (name, date of birth, sex, medical record number), contact
//! details, emergency contact, preferred language and department. Records are soft-deleted.
//!
//! A patient's account, when they have one, has the record's id; [`crate::users::create`]
//! writes the record of every new patient account in the same transaction.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, scalar};

/// A record as stored, with its account's status (`None`: no account yet).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct PatientRow {
    pub id: Uuid,
    pub mrn: String,
    pub full_name: String,
    pub date_of_birth: Option<String>,
    pub sex: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub emergency_contact_relation: Option<String>,
    pub preferred_language: String,
    pub department: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub account_status: Option<String>,
}

/// The fields a record is written from (create and update).
#[derive(Debug, Clone, Default)]
pub struct PatientFields {
    pub mrn: String,
    pub full_name: String,
    pub date_of_birth: Option<String>,
    pub sex: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub emergency_contact_relation: Option<String>,
    pub preferred_language: String,
    pub department: Option<String>,
}

impl From<&PatientRow> for PatientFields {
    fn from(p: &PatientRow) -> Self {
        Self {
            mrn: p.mrn.clone(),
            full_name: p.full_name.clone(),
            date_of_birth: p.date_of_birth.clone(),
            sex: p.sex.clone(),
            email: p.email.clone(),
            phone: p.phone.clone(),
            address: p.address.clone(),
            emergency_contact_name: p.emergency_contact_name.clone(),
            emergency_contact_phone: p.emergency_contact_phone.clone(),
            emergency_contact_relation: p.emergency_contact_relation.clone(),
            preferred_language: p.preferred_language.clone(),
            department: p.department.clone(),
        }
    }
}

/// Why a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PatientError {
    #[error("Another patient has this medical record number.")]
    MrnTaken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

pub(crate) fn map_unique(e: sqlx::Error) -> PatientError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => PatientError::MrnTaken,
        other => PatientError::Store(other),
    }
}

/// Lower-case name and MRN: what `q` searches.
pub fn search_text(full_name: &str, mrn: &str) -> String {
    format!("{} {}", full_name, mrn).to_lowercase()
}

/// A new medical record number: `CP` and ten digits, for records created without the
/// hospital's own number.
pub fn generate_mrn() -> String {
    let n = rand::random::<u64>() % 10_000_000_000;
    format!("CP{n:010}")
}

macro_rules! columns {
    () => {
        "p.id, p.mrn, p.full_name, p.date_of_birth, p.sex, p.email, p.phone, p.address,
    p.emergency_contact_name, p.emergency_contact_phone, p.emergency_contact_relation, p.preferred_language,
    p.department, p.created_at, p.updated_at, p.deleted_at,
    (SELECT u.status FROM users u WHERE u.id = p.id) AS account_status"
    };
}

pub(crate) static INSERT: Sql = Sql::new(
    "INSERT INTO patients (id, mrn, full_name, date_of_birth, sex, email, phone, address, emergency_contact_name,
        emergency_contact_phone, emergency_contact_relation, preferred_language, department, search_text,
        created_by, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
);
static UPDATE: Sql = Sql::new(
    "UPDATE patients SET mrn = $2, full_name = $3, date_of_birth = $4, sex = $5, email = $6, phone = $7,
        address = $8, emergency_contact_name = $9, emergency_contact_phone = $10, emergency_contact_relation = $11,
        preferred_language = $12, department = $13, search_text = $14, updated_at = $15
     WHERE id = $1",
);
static SET_DELETED: Sql = Sql::new("UPDATE patients SET deleted_at = $2, updated_at = $3 WHERE id = $1");
static GET: Sql = Sql::new(concat!("SELECT ", columns!(), " FROM patients p WHERE p.id = $1"));
// Who sees which records ($1 mode, $2 user, $3 department) and the filters ($4 to $7).
macro_rules! visible_where {
    () => {
        " FROM patients p
     WHERE ($1 = 'all'
        OR ($1 = 'self' AND p.id = $2)
        OR ($1 = 'assigned' AND EXISTS (SELECT 1 FROM care_assignments a WHERE a.patient_id = p.id AND a.clinician_id = $2))
        OR ($1 = 'department' AND (p.department = $3 OR EXISTS (
              SELECT 1 FROM care_assignments a JOIN users c ON c.id = a.clinician_id
              WHERE a.patient_id = p.id AND c.department = $3 AND c.status = 'active'))))
       AND ($4 OR p.deleted_at IS NULL)
       AND ($5 = '' OR p.search_text LIKE $5)
       AND ($6 = '' OR p.department = $6)
       AND ($7 = '' OR EXISTS (SELECT 1 FROM care_assignments a JOIN cancer_types t ON t.id = a.cancer_type_id
              WHERE a.patient_id = p.id AND (t.id = $7 OR t.parent_id = $7)))"
    };
}
static LIST: Sql = Sql::new(concat!("SELECT ", columns!(), visible_where!(), " AND p.id > $8 ORDER BY p.id LIMIT $9"));
static COUNT: Sql = Sql::new(concat!("SELECT COUNT(*)", visible_where!()));
static UNLINKED_BY_EMAIL: Sql = Sql::new(
    "SELECT p.id FROM patients p WHERE p.email = $1 AND p.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p.id)
     ORDER BY p.id LIMIT 2",
);

/// Whose patients a list shows.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Administrators.
    All,
    /// A patient: their own record.
    Own(Uuid),
    /// A doctor: the patients assigned to them.
    Assigned(Uuid),
    /// A nurse: the patients of their department (the record's, or an assigned clinician's).
    Department(String),
    /// Someone who may see no patient.
    Nothing,
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Part of the name or the MRN.
    pub text: Option<String>,
    pub department: Option<String>,
    /// A cancer type (a subtype, or a top-level type and its subtypes) of an assignment.
    pub cancer_type: Option<String>,
    pub include_deleted: bool,
}

/// Create a record with `id`; with `assign_to`, that clinician joins its care team (no cancer
/// type yet) in the same transaction, with the step in the assignment history.
pub async fn create(
    db: &Db,
    id: Uuid,
    f: &PatientFields,
    created_by: Option<Uuid>,
    assign_to: Option<Uuid>,
) -> Result<(), PatientError> {
    let now = now_ms();
    crate::transaction!(db, |tx, dialect| {
        sqlx::query(INSERT.text(dialect))
            .bind(id)
            .bind(f.mrn.as_str())
            .bind(f.full_name.as_str())
            .bind(f.date_of_birth.as_deref())
            .bind(f.sex.as_str())
            .bind(f.email.as_deref())
            .bind(f.phone.as_deref())
            .bind(f.address.as_deref())
            .bind(f.emergency_contact_name.as_deref())
            .bind(f.emergency_contact_phone.as_deref())
            .bind(f.emergency_contact_relation.as_deref())
            .bind(f.preferred_language.as_str())
            .bind(f.department.as_deref())
            .bind(search_text(&f.full_name, &f.mrn))
            .bind(created_by)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
        if let Some(clinician) = assign_to {
            sqlx::query(crate::assignments::INSERT.text(dialect))
                .bind(clinician)
                .bind(id)
                .bind(None::<&str>)
                .bind(created_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(crate::assignments::HISTORY_INSERT.text(dialect))
                .bind(Uuid::now_v7())
                .bind(clinician)
                .bind(id)
                .bind(None::<&str>)
                .bind("assigned")
                .bind(created_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        Ok::<_, PatientError>(())
    })
}

/// Replace the record's fields; false if there is no such record.
pub async fn update(db: &Db, id: Uuid, f: &PatientFields) -> Result<bool, PatientError> {
    let n = exec!(
        db.writer(),
        &UPDATE,
        id,
        f.mrn.as_str(),
        f.full_name.as_str(),
        f.date_of_birth.as_deref(),
        f.sex.as_str(),
        f.email.as_deref(),
        f.phone.as_deref(),
        f.address.as_deref(),
        f.emergency_contact_name.as_deref(),
        f.emergency_contact_phone.as_deref(),
        f.emergency_contact_relation.as_deref(),
        f.preferred_language.as_str(),
        f.department.as_deref(),
        search_text(&f.full_name, &f.mrn),
        now_ms()
    )
    .map_err(map_unique)?;
    Ok(n == 1)
}

/// Soft-delete (`Some(time)`) or restore (`None`) a record.
pub async fn set_deleted(db: &Db, id: Uuid, deleted_at: Option<i64>) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_DELETED, id, deleted_at, now_ms())? == 1)
}

/// A record, deleted or not. Reads the writer on SQLite so a write just made is seen.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<PatientRow>, sqlx::Error> {
    fetch!(db.writer(), PatientRow, fetch_optional, &GET, id)
}

/// A record from the read pool (hot reads, where a just-committed write need not be seen).
pub async fn get_read(db: &Db, id: Uuid) -> Result<Option<PatientRow>, sqlx::Error> {
    fetch!(db.reader(), PatientRow, fetch_optional, &GET, id)
}

fn scope_params(scope: &Scope) -> Option<(&'static str, Uuid, String)> {
    Some(match scope {
        Scope::All => ("all", Uuid::nil(), String::new()),
        Scope::Own(u) => ("self", *u, String::new()),
        Scope::Assigned(u) => ("assigned", *u, String::new()),
        Scope::Department(d) => ("department", Uuid::nil(), d.clone()),
        Scope::Nothing => return None,
    })
}

fn text_pattern(f: &ListFilter) -> String {
    f.text.as_deref().map(crate::sql::contains_pattern).unwrap_or_default()
}

/// A page of records in `scope`, ordered by id (creation order), after `after`.
pub async fn list(
    db: &Db,
    scope: &Scope,
    f: &ListFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<PatientRow>, sqlx::Error> {
    let Some((mode, who, dept)) = scope_params(scope) else { return Ok(Vec::new()) };
    fetch!(
        db.reader(),
        PatientRow,
        fetch_all,
        &LIST,
        mode,
        who,
        dept,
        f.include_deleted,
        text_pattern(f),
        f.department.clone().unwrap_or_default(),
        f.cancer_type.clone().unwrap_or_default(),
        after.unwrap_or(Uuid::nil()),
        limit
    )
}

/// How many records [`list`] would page through.
pub async fn count(db: &Db, scope: &Scope, f: &ListFilter) -> Result<i64, sqlx::Error> {
    let Some((mode, who, dept)) = scope_params(scope) else { return Ok(0) };
    scalar!(
        db.reader(),
        i64,
        fetch_one,
        &COUNT,
        mode,
        who,
        dept,
        f.include_deleted,
        text_pattern(f),
        f.department.clone().unwrap_or_default(),
        f.cancer_type.clone().unwrap_or_default()
    )
}

/// The one record with this e-mail address that has no account yet (`None` if none, or if
/// several records share the address: then no record is linked by address).
pub async fn unlinked_by_email(db: &Db, email: &str) -> Result<Option<Uuid>, sqlx::Error> {
    let ids = scalar!(db.writer(), Uuid, fetch_all, &UNLINKED_BY_EMAIL, email)?;
    Ok(if ids.len() == 1 { ids.first().copied() } else { None })
}

/// Patients per department (`None`: no department), records not deleted.
pub async fn count_by_department(db: &Db) -> Result<Vec<(Option<String>, i64)>, sqlx::Error> {
    static Q: Sql = Sql::new(
        "SELECT department, COUNT(*) FROM patients WHERE deleted_at IS NULL GROUP BY department ORDER BY department",
    );
    fetch!(db.reader(), (Option<String>, i64), fetch_all, &Q)
}

/// Patients per cancer type of their current assignments (subtype and its top-level type).
pub async fn count_by_cancer_type(db: &Db) -> Result<Vec<(String, Option<String>, i64)>, sqlx::Error> {
    static Q: Sql = Sql::new(
        "SELECT t.id, t.parent_id, COUNT(DISTINCT a.patient_id) FROM care_assignments a
         JOIN cancer_types t ON t.id = a.cancer_type_id JOIN patients p ON p.id = a.patient_id
         WHERE p.deleted_at IS NULL GROUP BY t.id, t.parent_id ORDER BY t.id",
    );
    fetch!(db.reader(), (String, Option<String>, i64), fetch_all, &Q)
}

/// Give an account that became a patient's its record (same id), if it has none.
pub async fn ensure_for_account(db: &Db, id: Uuid) -> Result<(), sqlx::Error> {
    static ENSURE: Sql = Sql::new(
        "INSERT INTO patients (id, mrn, full_name, sex, email, preferred_language, search_text, created_at, updated_at)
         SELECT u.id, $2, COALESCE(u.full_name, ''), 'unknown', u.email, u.preferred_language,
                lower(COALESCE(u.full_name, '') || ' ' || $2), $3, $3
         FROM users u WHERE u.id = $1
         ON CONFLICT (id) DO NOTHING",
    );
    exec!(db.writer(), &ENSURE, id, generate_mrn(), now_ms())?;
    Ok(())
}

/// A record with its care team, in one round trip (the hot read of `GET /patients/{id}`): the
/// team comes as a JSON array built by the database.
pub async fn get_with_team(
    db: &Db,
    id: Uuid,
) -> Result<Option<(PatientRow, Vec<crate::assignments::TeamMember>)>, sqlx::Error> {
    static Q: Sql = Sql::each(
        concat!(
            "SELECT ",
            columns!(),
            ", (SELECT COALESCE(json_agg(json_build_object('clinician_id', a.clinician_id, 'full_name', u.full_name,
                  'staff_role', u.staff_role, 'department', u.department, 'cancer_type_id', a.cancer_type_id,
                  'cancer_type_name', t.name, 'since', a.created_at) ORDER BY a.created_at), '[]'::json)::text
                FROM care_assignments a JOIN users u ON u.id = a.clinician_id
                LEFT JOIN cancer_types t ON t.id = a.cancer_type_id
                WHERE a.patient_id = p.id AND u.status = 'active') AS team
             FROM patients p WHERE p.id = $1"
        ),
        concat!(
            "SELECT ",
            columns!(),
            ", (SELECT json_group_array(json_object('clinician_id', lower(hex(a.clinician_id)), 'full_name', u.full_name,
                  'staff_role', u.staff_role, 'department', u.department, 'cancer_type_id', a.cancer_type_id,
                  'cancer_type_name', t.name, 'since', a.created_at))
                FROM (SELECT * FROM care_assignments WHERE patient_id = p.id ORDER BY created_at) a
                JOIN users u ON u.id = a.clinician_id LEFT JOIN cancer_types t ON t.id = a.cancer_type_id
                WHERE u.status = 'active') AS team
             FROM patients p WHERE p.id = $1"
        ),
    );
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        patient: PatientRow,
        team: Option<String>,
    }
    let row = fetch!(db.reader(), Row, fetch_optional, &Q, id)?;
    row.map(|r| {
        let team = match r.team.as_deref() {
            None => Vec::new(),
            Some(text) => serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        };
        Ok((r.patient, team))
    })
    .transpose()
}
