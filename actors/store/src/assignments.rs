//! Care-team assignments (which clinician treats which patient) and the other store facts the
//! policies read: `assigned(clinician, patient)` and `patient_department(patient, department)`.
//! A patient's departments are those of the clinicians assigned to them.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

static ASSIGN: Sql = Sql::new(
    "INSERT INTO care_assignments (clinician_id, patient_id, created_at) VALUES ($1, $2, $3)
     ON CONFLICT (clinician_id, patient_id) DO NOTHING",
);
static UNASSIGN: Sql = Sql::new("DELETE FROM care_assignments WHERE clinician_id = $1 AND patient_id = $2");
static FOR_PATIENT: Sql = Sql::new(
    "SELECT a.clinician_id, u.department FROM care_assignments a JOIN users u ON u.id = a.clinician_id
     WHERE a.patient_id = $1 AND u.status = 'active'",
);

/// Assign a clinician to a patient (idempotent).
pub async fn assign(db: &Db, clinician: Uuid, patient: Uuid) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &ASSIGN, clinician, patient, now_ms())?;
    Ok(())
}

/// End an assignment; false if there was none.
pub async fn unassign(db: &Db, clinician: Uuid, patient: Uuid) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &UNASSIGN, clinician, patient)? == 1)
}

/// The patient's care team: `(clinician, clinician's department)` for each active clinician.
pub async fn care_team(db: &Db, patient: Uuid) -> Result<Vec<(Uuid, Option<String>)>, sqlx::Error> {
    fetch!(db.reader(), (Uuid, Option<String>), fetch_all, &FOR_PATIENT, patient)
}
