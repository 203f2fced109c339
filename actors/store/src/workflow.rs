//! Studies and tests ordered for a patient (#18) and where each stands. Only the current state
//! is kept here; each transition is an audit event written in the same service call, so the log
//! users read is the hash-chained trail, not a second log that could be edited on its own. A
//! transition is a compare-and-set on the state it leaves.

use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// An order as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    /// What is ordered: a modality (`ct`, `mri`, …) or a test (`biopsy`, `blood`).
    pub kind: String,
    pub description: String,
    pub state: String,
    pub record_id: Option<Uuid>,
    pub report_id: Option<Uuid>,
    pub ordered_by: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
}

static INSERT: Sql = Sql::new(
    "INSERT INTO workflow_orders (id, patient_id, kind, description, state, ordered_by, created_at, updated_at)
     VALUES ($1, $2, $3, $4, 'ordered', $5, $6, $6)",
);
static GET: Sql = Sql::new(
    "SELECT id, patient_id, kind, description, state, record_id, report_id, ordered_by, created_at, updated_at
     FROM workflow_orders WHERE id = $1",
);
static FOR_PATIENT: Sql = Sql::new(
    "SELECT id, patient_id, kind, description, state, record_id, report_id, ordered_by, created_at, updated_at
     FROM workflow_orders WHERE patient_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
);
static MOVE: Sql = Sql::new(
    "UPDATE workflow_orders SET state = $3, record_id = COALESCE($4, record_id), report_id = COALESCE($5, report_id),
     updated_at = $6 WHERE id = $1 AND state = $2",
);

/// Store a new order (state `ordered`).
pub async fn insert(
    db: &Db,
    id: Uuid,
    patient: Uuid,
    kind: &str,
    description: &str,
    by: Uuid,
    at: i64,
) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &INSERT, id, patient, kind, description, by, at).map(|_| ())
}

/// One order.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    fetch!(db.writer(), OrderRow, fetch_optional, &GET, id)
}

/// A chart's orders, newest first.
pub async fn for_patient(db: &Db, patient: Uuid, limit: i64) -> Result<Vec<OrderRow>, sqlx::Error> {
    fetch!(db.reader(), OrderRow, fetch_all, &FOR_PATIENT, patient, limit)
}

/// Move an order from `from` to `to` (linking a record or a report on the way): `false` if it
/// was no longer in `from` (someone moved it first).
pub async fn transition(
    db: &Db,
    id: Uuid,
    from: &str,
    to: &str,
    record: Option<Uuid>,
    report: Option<Uuid>,
    at: i64,
) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &MOVE, id, from, to, record, report, at)? == 1)
}
