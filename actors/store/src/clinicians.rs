//! Clinicians' directory rows: profile (bio, appointment length), specializations (top-level
//! cancer types, one primary), weekly working hours in the clinic's local time, and exceptions
//! (leave, holidays) in UTC. A clinician is an account with role `clinician`.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, transaction};

/// Default appointment length when a clinician has set none.
pub const DEFAULT_SLOT_MINUTES: i64 = 30;

/// A clinician as the directory shows them.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ClinicianRow {
    pub id: Uuid,
    pub full_name: Option<String>,
    pub staff_role: Option<String>,
    pub department: Option<String>,
    pub bio: String,
    pub slot_minutes: i64,
}

/// One specialization.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Specialization {
    pub cancer_type_id: String,
    pub is_primary: bool,
}

/// One span of weekly working hours: ISO weekday (1 = Monday), minutes of the local day.
#[derive(Debug, Clone, Copy, sqlx::FromRow, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Hours {
    pub weekday: i64,
    pub start_minute: i64,
    pub end_minute: i64,
}

/// An absence (leave, holiday, training): no slots inside it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Exception {
    pub id: Uuid,
    pub clinician_id: Uuid,
    pub starts_at: i64,
    pub ends_at: i64,
    pub kind: String,
    pub note: String,
}

static GET: Sql = Sql::new(
    "SELECT u.id, u.full_name, u.staff_role, u.department, COALESCE(p.bio, '') AS bio,
        COALESCE(p.slot_minutes, 30) AS slot_minutes
     FROM users u LEFT JOIN clinician_profiles p ON p.user_id = u.id
     WHERE u.id = $1 AND u.role = 'clinician' AND u.status = 'active'",
);
static LIST: Sql = Sql::new(
    "SELECT u.id, u.full_name, u.staff_role, u.department, COALESCE(p.bio, '') AS bio,
        COALESCE(p.slot_minutes, 30) AS slot_minutes
     FROM users u LEFT JOIN clinician_profiles p ON p.user_id = u.id
     WHERE u.role = 'clinician' AND u.status = 'active'
       AND ($1 = '' OR EXISTS (SELECT 1 FROM clinician_specializations s
              WHERE s.clinician_id = u.id AND s.cancer_type_id = $1))
       AND ($2 = '' OR u.department = $2)
       AND ($3 = '' OR u.staff_role = $3)
       AND u.id > $4
     ORDER BY u.id LIMIT $5",
);
static UPSERT_PROFILE: Sql = Sql::new(
    "INSERT INTO clinician_profiles (user_id, bio, slot_minutes, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (user_id) DO UPDATE SET bio = excluded.bio, slot_minutes = excluded.slot_minutes,
       updated_at = excluded.updated_at",
);
static SPECS_OF: Sql = Sql::new(
    "SELECT cancer_type_id, is_primary FROM clinician_specializations WHERE clinician_id = $1
     ORDER BY is_primary DESC, cancer_type_id",
);
static SPECS_ALL: Sql = Sql::new(
    "SELECT clinician_id, cancer_type_id, is_primary FROM clinician_specializations
     ORDER BY clinician_id, is_primary DESC, cancer_type_id",
);
static SPECS_DELETE: Sql = Sql::new("DELETE FROM clinician_specializations WHERE clinician_id = $1");
static SPECS_INSERT: Sql =
    Sql::new("INSERT INTO clinician_specializations (clinician_id, cancer_type_id, is_primary) VALUES ($1, $2, $3)");
static HOURS_OF: Sql = Sql::new(
    "SELECT weekday, start_minute, end_minute FROM working_hours WHERE clinician_id = $1
     ORDER BY weekday, start_minute",
);
static HOURS_DELETE: Sql = Sql::new("DELETE FROM working_hours WHERE clinician_id = $1");
static HOURS_INSERT: Sql =
    Sql::new("INSERT INTO working_hours (clinician_id, weekday, start_minute, end_minute) VALUES ($1, $2, $3, $4)");
static EXCEPTIONS: Sql = Sql::new(
    "SELECT id, clinician_id, starts_at, ends_at, kind, note FROM clinician_exceptions
     WHERE clinician_id = $1 AND ends_at > $2 AND starts_at < $3 ORDER BY starts_at",
);
static EXCEPTION_INSERT: Sql = Sql::new(
    "INSERT INTO clinician_exceptions (id, clinician_id, starts_at, ends_at, kind, note, created_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
);
static EXCEPTION_DELETE: Sql = Sql::new("DELETE FROM clinician_exceptions WHERE id = $1 AND clinician_id = $2");

/// An active clinician.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<ClinicianRow>, sqlx::Error> {
    fetch!(db.reader(), ClinicianRow, fetch_optional, &GET, id)
}

/// Filters of [`list`] (empty: any).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub specialization: Option<String>,
    pub department: Option<String>,
    pub staff_role: Option<String>,
}

/// A page of active clinicians, ordered by id, after `after`.
pub async fn list(db: &Db, f: &ListFilter, after: Option<Uuid>, limit: i64) -> Result<Vec<ClinicianRow>, sqlx::Error> {
    fetch!(
        db.reader(),
        ClinicianRow,
        fetch_all,
        &LIST,
        f.specialization.clone().unwrap_or_default(),
        f.department.clone().unwrap_or_default(),
        f.staff_role.clone().unwrap_or_default(),
        after.unwrap_or(Uuid::nil()),
        limit
    )
}

/// Set bio and appointment length.
///
/// With `specs`, the specializations are replaced in the same transaction: a profile is never
/// half-changed.
pub async fn set_profile(
    db: &Db,
    id: Uuid,
    bio: &str,
    slot_minutes: i64,
    specs: Option<&[Specialization]>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    transaction!(db, |tx, dialect| {
        sqlx::query(UPSERT_PROFILE.text(dialect))
            .bind(id)
            .bind(bio)
            .bind(slot_minutes)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if let Some(specs) = specs {
            sqlx::query(SPECS_DELETE.text(dialect)).bind(id).execute(&mut *tx).await?;
            for s in specs {
                sqlx::query(SPECS_INSERT.text(dialect))
                    .bind(id)
                    .bind(s.cancer_type_id.as_str())
                    .bind(s.is_primary)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok::<_, sqlx::Error>(())
    })
}

/// A clinician's specializations, primary first.
pub async fn specializations(db: &Db, id: Uuid) -> Result<Vec<Specialization>, sqlx::Error> {
    fetch!(db.reader(), Specialization, fetch_all, &SPECS_OF, id)
}

/// Every clinician's specializations (the table is small: a row per clinician and type).
pub async fn all_specializations(db: &Db) -> Result<Vec<(Uuid, String, bool)>, sqlx::Error> {
    fetch!(db.reader(), (Uuid, String, bool), fetch_all, &SPECS_ALL)
}

/// Replace a clinician's specializations.
pub async fn set_specializations(db: &Db, id: Uuid, specs: &[Specialization]) -> Result<(), sqlx::Error> {
    transaction!(db, |tx, dialect| {
        sqlx::query(SPECS_DELETE.text(dialect)).bind(id).execute(&mut *tx).await?;
        for s in specs {
            sqlx::query(SPECS_INSERT.text(dialect))
                .bind(id)
                .bind(s.cancer_type_id.as_str())
                .bind(s.is_primary)
                .execute(&mut *tx)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    })
}

/// A clinician's weekly hours, by weekday and start.
pub async fn hours(db: &Db, id: Uuid) -> Result<Vec<Hours>, sqlx::Error> {
    fetch!(db.writer(), Hours, fetch_all, &HOURS_OF, id)
}

/// Replace a clinician's weekly hours (checked by the caller: no overlaps).
pub async fn set_hours(db: &Db, id: Uuid, hours: &[Hours]) -> Result<(), sqlx::Error> {
    transaction!(db, |tx, dialect| {
        sqlx::query(HOURS_DELETE.text(dialect)).bind(id).execute(&mut *tx).await?;
        for h in hours {
            sqlx::query(HOURS_INSERT.text(dialect))
                .bind(id)
                .bind(h.weekday)
                .bind(h.start_minute)
                .bind(h.end_minute)
                .execute(&mut *tx)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    })
}

/// Absences overlapping `[from, to)`.
pub async fn exceptions(db: &Db, id: Uuid, from: i64, to: i64) -> Result<Vec<Exception>, sqlx::Error> {
    fetch!(db.writer(), Exception, fetch_all, &EXCEPTIONS, id, from, to)
}

/// Record an absence.
pub async fn add_exception(db: &Db, e: &Exception, created_by: Uuid) -> Result<(), sqlx::Error> {
    exec!(
        db.writer(),
        &EXCEPTION_INSERT,
        e.id,
        e.clinician_id,
        e.starts_at,
        e.ends_at,
        e.kind.as_str(),
        e.note.as_str(),
        created_by,
        now_ms()
    )?;
    Ok(())
}

/// Remove an absence; false if the clinician has no such absence.
pub async fn delete_exception(db: &Db, clinician: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &EXCEPTION_DELETE, id, clinician)? == 1)
}
