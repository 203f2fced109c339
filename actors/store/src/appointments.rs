//! Appointments: who, with whom, when (UTC milliseconds), status and reasons.
//!
//! The unique indexes `appointments_clinician_slot` and `appointments_patient_slot` (scheduled
//! appointments only) are what make double booking impossible: of two inserts racing for one
//! slot, on either backend, the second fails with a unique violation, [`BookError::SlotTaken`].

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// The statuses an appointment can have.
pub const STATUSES: [&str; 4] = ["scheduled", "completed", "cancelled", "no_show"];

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AppointmentRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub clinician_id: Uuid,
    pub starts_at: i64,
    pub ends_at: i64,
    pub status: String,
    pub reason: String,
    pub cancel_reason: Option<String>,
    pub booked_by: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Why a booking or a move failed.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("That time is already booked.")]
    SlotTaken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

fn map_unique(e: sqlx::Error) -> BookError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => BookError::SlotTaken,
        other => BookError::Store(other),
    }
}

static INSERT: Sql = Sql::new(
    "INSERT INTO appointments (id, patient_id, clinician_id, starts_at, ends_at, status, reason, booked_by,
        created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7, $8, $8)",
);
static GET: Sql = Sql::new(
    "SELECT id, patient_id, clinician_id, starts_at, ends_at, status, reason, cancel_reason, booked_by,
        created_at, updated_at FROM appointments WHERE id = $1",
);
static MOVE: Sql = Sql::new(
    "UPDATE appointments SET starts_at = $2, ends_at = $3, updated_at = $4 WHERE id = $1 AND status = 'scheduled'",
);
static SET_STATUS: Sql = Sql::new(
    "UPDATE appointments SET status = $2, cancel_reason = $3, updated_at = $4 WHERE id = $1 AND status = 'scheduled'",
);
static BUSY: Sql = Sql::new(
    "SELECT starts_at, ends_at FROM appointments
     WHERE clinician_id = $1 AND status = 'scheduled' AND ends_at > $2 AND starts_at < $3 ORDER BY starts_at",
);
static LIST: Sql = Sql::new(
    "SELECT a.id, a.patient_id, a.clinician_id, a.starts_at, a.ends_at, a.status, a.reason, a.cancel_reason,
        a.booked_by, a.created_at, a.updated_at
     FROM appointments a JOIN patients p ON p.id = a.patient_id
     WHERE ($1 = 'all'
        OR ($1 = 'self' AND a.patient_id = $2)
        OR ($1 = 'assigned' AND (a.clinician_id = $2 OR EXISTS (SELECT 1 FROM care_assignments c
              WHERE c.patient_id = a.patient_id AND c.clinician_id = $2)))
        OR ($1 = 'department' AND (a.clinician_id = $2 OR p.department = $3 OR EXISTS (
              SELECT 1 FROM care_assignments c JOIN users u ON u.id = c.clinician_id
              WHERE c.patient_id = a.patient_id AND u.department = $3 AND u.status = 'active'))))
       AND p.deleted_at IS NULL
       AND ($4 = '' OR a.status = $4)
       AND a.patient_id = COALESCE($5, a.patient_id)
       AND a.clinician_id = COALESCE($6, a.clinician_id)
       AND a.starts_at >= $7 AND a.starts_at < $8
       AND (a.starts_at > $9 OR (a.starts_at = $9 AND a.id > $10))
     ORDER BY a.starts_at, a.id LIMIT $11",
);

/// Scheduled appointments of `patient` that start at or after `from`, in all and with
/// `clinician` (the limits on a patient's own bookings).
pub async fn open_future(db: &Db, patient: Uuid, clinician: Uuid, from: i64) -> Result<(i64, i64), sqlx::Error> {
    static OPEN: Sql = Sql::new(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN clinician_id = $2 THEN 1 ELSE 0 END), 0) FROM appointments \
         WHERE patient_id = $1 AND status = 'scheduled' AND starts_at >= $3",
    );
    fetch!(db.reader(), (i64, i64), fetch_one, &OPEN, patient, clinician, from)
}

/// Book: insert a scheduled appointment.
pub async fn insert(db: &Db, a: &AppointmentRow) -> Result<(), BookError> {
    exec!(
        db.writer(),
        &INSERT,
        a.id,
        a.patient_id,
        a.clinician_id,
        a.starts_at,
        a.ends_at,
        a.reason.as_str(),
        a.booked_by,
        a.created_at
    )
    .map_err(map_unique)?;
    Ok(())
}

/// One appointment (from the writer: a booking just made is seen).
pub async fn get(db: &Db, id: Uuid) -> Result<Option<AppointmentRow>, sqlx::Error> {
    fetch!(db.writer(), AppointmentRow, fetch_optional, &GET, id)
}

/// Move a scheduled appointment; false if it is no longer scheduled.
pub async fn reschedule(db: &Db, id: Uuid, starts_at: i64, ends_at: i64) -> Result<bool, BookError> {
    Ok(exec!(db.writer(), &MOVE, id, starts_at, ends_at, now_ms()).map_err(map_unique)? == 1)
}

/// Complete, cancel or mark a no-show a scheduled appointment; false if it was not scheduled.
pub async fn set_status(db: &Db, id: Uuid, status: &str, cancel_reason: Option<&str>) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_STATUS, id, status, cancel_reason, now_ms())? == 1)
}

/// The clinician's scheduled appointments overlapping `[from, to)`, as `(start, end)`.
pub async fn busy(db: &Db, clinician: Uuid, from: i64, to: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    fetch!(db.writer(), (i64, i64), fetch_all, &BUSY, clinician, from, to)
}

/// Whose appointments a list shows (the same rules as the policies, applied in the query).
#[derive(Debug, Clone)]
pub enum Scope {
    All,
    /// A patient's own.
    Own(Uuid),
    /// A doctor: their own appointments and those of their assigned patients.
    Doctor(Uuid),
    /// A nurse: their own and those of their department's patients.
    Nurse(Uuid, String),
    Nothing,
}

/// Filters of [`list`].
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub status: Option<String>,
    pub patient: Option<Uuid>,
    pub clinician: Option<Uuid>,
    pub from: i64,
    pub to: i64,
}

/// A page of appointments ordered by start, after the cursor `(starts_at, id)`.
pub async fn list(
    db: &Db,
    scope: &Scope,
    f: &ListFilter,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<AppointmentRow>, sqlx::Error> {
    let (mode, who, dept) = match scope {
        Scope::All => ("all", Uuid::nil(), String::new()),
        Scope::Own(p) => ("self", *p, String::new()),
        Scope::Doctor(u) => ("assigned", *u, String::new()),
        Scope::Nurse(u, d) => ("department", *u, d.clone()),
        Scope::Nothing => return Ok(Vec::new()),
    };
    let (after_start, after_id) = after.unwrap_or((i64::MIN, Uuid::nil()));
    fetch!(
        db.reader(),
        AppointmentRow,
        fetch_all,
        &LIST,
        mode,
        who,
        dept,
        f.status.clone().unwrap_or_default(),
        f.patient,
        f.clinician,
        f.from,
        f.to,
        after_start,
        after_id,
        limit
    )
}

/// Appointments per status.
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    static Q: Sql = Sql::new("SELECT status, COUNT(*) FROM appointments GROUP BY status ORDER BY status");
    fetch!(db.reader(), (String, i64), fetch_all, &Q)
}

/// Appointments per week (weeks start on Monday 00:00 UTC; the key is that instant in ms) and
/// status, for weeks starting in `[from, to)`.
pub async fn count_by_week(db: &Db, from: i64, to: i64) -> Result<Vec<(i64, String, i64)>, sqlx::Error> {
    // The epoch was a Thursday: shifting by three days makes weeks start on Monday.
    static Q: Sql = Sql::new(
        "SELECT ((starts_at + 259200000) / 604800000) * 604800000 - 259200000 AS week, status, COUNT(*)
         FROM appointments WHERE starts_at >= $1 AND starts_at < $2
         GROUP BY week, status ORDER BY week, status",
    );
    fetch!(db.reader(), (i64, String, i64), fetch_all, &Q, from, to)
}

/// Patients a clinician saw (completed appointments) since `since`, most recent first.
pub async fn recently_seen(db: &Db, clinician: Uuid, since: i64, limit: i64) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    static Q: Sql = Sql::new(
        "SELECT a.patient_id, MAX(a.starts_at) AS last_seen FROM appointments a JOIN patients p ON p.id = a.patient_id
         WHERE a.clinician_id = $1 AND a.status = 'completed' AND a.starts_at >= $2 AND p.deleted_at IS NULL
         GROUP BY a.patient_id ORDER BY last_seen DESC LIMIT $3",
    );
    fetch!(db.reader(), (Uuid, i64), fetch_all, &Q, clinician, since, limit)
}
