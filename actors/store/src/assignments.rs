//! Care-team assignments (which clinician treats which patient, for which cancer subtype), their
//! history, and the store facts the policies read: `assigned(clinician, patient)` and
//! `patient_department(patient, department)`. A patient's departments are the record's own and
//! those of the active clinicians assigned to them.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{fetch, transaction};

static CURRENT: Sql =
    Sql::new("SELECT cancer_type_id FROM care_assignments WHERE clinician_id = $1 AND patient_id = $2");
pub(crate) static INSERT: Sql = Sql::new(
    "INSERT INTO care_assignments (clinician_id, patient_id, cancer_type_id, assigned_by, created_at)
     VALUES ($1, $2, $3, $4, $5)",
);
static CHANGE: Sql = Sql::new(
    "UPDATE care_assignments SET cancer_type_id = $3, assigned_by = $4 WHERE clinician_id = $1 AND patient_id = $2",
);
static DELETE: Sql = Sql::new("DELETE FROM care_assignments WHERE clinician_id = $1 AND patient_id = $2");
pub(crate) static HISTORY_INSERT: Sql = Sql::new(
    "INSERT INTO care_assignment_history (id, clinician_id, patient_id, cancer_type_id, action, actor_id, at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)",
);
// The policies' facts for one patient, in one query: assigned active clinicians with their
// departments, and (clinician NULL) the record's own department.
static FACTS: Sql = Sql::new(
    "SELECT a.clinician_id, u.department FROM care_assignments a JOIN users u ON u.id = a.clinician_id
     WHERE a.patient_id = $1 AND u.status = 'active'
     UNION ALL
     SELECT NULL, p.department FROM patients p WHERE p.id = $1 AND p.department IS NOT NULL",
);
static TEAM: Sql = Sql::new(
    "SELECT a.clinician_id, u.full_name, u.staff_role, u.department, a.cancer_type_id, t.name AS cancer_type_name,
            a.created_at AS since
     FROM care_assignments a JOIN users u ON u.id = a.clinician_id LEFT JOIN cancer_types t ON t.id = a.cancer_type_id
     WHERE a.patient_id = $1 AND u.status = 'active' ORDER BY a.created_at",
);
static HISTORY: Sql = Sql::new(
    "SELECT h.clinician_id, u.full_name, h.cancer_type_id, h.action, h.actor_id, h.at
     FROM care_assignment_history h LEFT JOIN users u ON u.id = h.clinician_id
     WHERE h.patient_id = $1 ORDER BY h.at, h.id",
);

/// What [`assign`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    /// A new assignment.
    Created,
    /// The clinician already treated the patient for another type: now this one.
    Changed,
    /// Already assigned for this type: nothing written.
    Unchanged,
}

/// A member of a patient's care team.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct TeamMember {
    pub clinician_id: Uuid,
    pub full_name: Option<String>,
    pub staff_role: Option<String>,
    pub department: Option<String>,
    pub cancer_type_id: Option<String>,
    pub cancer_type_name: Option<String>,
    pub since: i64,
}

/// One step of a patient's assignment history.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct HistoryEntry {
    pub clinician_id: Uuid,
    pub full_name: Option<String>,
    pub cancer_type_id: Option<String>,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub at: i64,
}

/// Assign a clinician to a patient for a cancer type, recording it in the history. Assigning
/// again with another type changes the assignment; with the same type, nothing happens.
pub async fn assign(
    db: &Db,
    clinician: Uuid,
    patient: Uuid,
    cancer_type: Option<&str>,
    actor: Option<Uuid>,
) -> Result<Assigned, sqlx::Error> {
    let now = now_ms();
    transaction!(db, |tx, dialect| {
        let current: Option<Option<String>> =
            sqlx::query_scalar(CURRENT.text(dialect)).bind(clinician).bind(patient).fetch_optional(&mut *tx).await?;
        let outcome = match current {
            None => {
                sqlx::query(INSERT.text(dialect))
                    .bind(clinician)
                    .bind(patient)
                    .bind(cancer_type)
                    .bind(actor)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Assigned::Created
            }
            Some(t) if t.as_deref() == cancer_type => Assigned::Unchanged,
            Some(_) => {
                sqlx::query(CHANGE.text(dialect))
                    .bind(clinician)
                    .bind(patient)
                    .bind(cancer_type)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await?;
                Assigned::Changed
            }
        };
        let action = match outcome {
            Assigned::Created => Some("assigned"),
            Assigned::Changed => Some("changed"),
            Assigned::Unchanged => None,
        };
        if let Some(action) = action {
            sqlx::query(HISTORY_INSERT.text(dialect))
                .bind(Uuid::now_v7())
                .bind(clinician)
                .bind(patient)
                .bind(cancer_type)
                .bind(action)
                .bind(actor)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        Ok::<_, sqlx::Error>(outcome)
    })
}

/// End an assignment, recording it in the history; false if there was none.
pub async fn unassign(db: &Db, clinician: Uuid, patient: Uuid, actor: Option<Uuid>) -> Result<bool, sqlx::Error> {
    transaction!(db, |tx, dialect| {
        let current: Option<Option<String>> =
            sqlx::query_scalar(CURRENT.text(dialect)).bind(clinician).bind(patient).fetch_optional(&mut *tx).await?;
        let Some(cancer_type) = current else { return Ok(false) };
        sqlx::query(DELETE.text(dialect)).bind(clinician).bind(patient).execute(&mut *tx).await?;
        sqlx::query(HISTORY_INSERT.text(dialect))
            .bind(Uuid::now_v7())
            .bind(clinician)
            .bind(patient)
            .bind(cancer_type)
            .bind("ended")
            .bind(actor)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        Ok::<_, sqlx::Error>(true)
    })
}

/// The policies' view of a patient: `(clinician, clinician's department)` for each active
/// assigned clinician, and `(None, department)` for the record's own department.
pub async fn care_team(db: &Db, patient: Uuid) -> Result<Vec<(Option<Uuid>, Option<String>)>, sqlx::Error> {
    fetch!(db.reader(), (Option<Uuid>, Option<String>), fetch_all, &FACTS, patient)
}

/// The patient's care team with names and the type each clinician treats.
pub async fn team(db: &Db, patient: Uuid) -> Result<Vec<TeamMember>, sqlx::Error> {
    fetch!(db.reader(), TeamMember, fetch_all, &TEAM, patient)
}

/// Every assignment change of a patient, oldest first.
pub async fn history(db: &Db, patient: Uuid) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    fetch!(db.reader(), HistoryEntry, fetch_all, &HISTORY, patient)
}
