//! Bill items (#18). Amounts are integers in minor units (cents); the store keeps the total fixed
//! at creation and moves an item only forward — `unpaid`/`pending` to `paid` or `cancelled` —
//! with who and when; nothing edits an amount. `overdue` is computed by the service from the due
//! date, never stored, so it cannot go stale.

use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// A bill item as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BillRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub service_code: String,
    pub description: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub tax_rate_bp: i64,
    pub total: i64,
    pub currency: String,
    /// `YYYY-MM-DD`, in the clinic's time zone.
    pub due_date: String,
    pub appointment_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub report_id: Option<Uuid>,
    pub status: String,
    pub created_by: Uuid,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    pub paid_by: Option<Uuid>,
    pub cancelled_at: Option<i64>,
    pub cancelled_by: Option<Uuid>,
}

static INSERT: Sql = Sql::new(
    "INSERT INTO bill_items (id, patient_id, service_code, description, quantity, unit_price, tax_rate_bp, total, \
     currency, due_date, appointment_id, record_id, report_id, status, created_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
);
static GET: Sql = Sql::new(
    "SELECT id, patient_id, service_code, description, quantity, unit_price, tax_rate_bp, total, currency, \
     due_date, appointment_id, record_id, report_id, status, created_by, created_at, paid_at, paid_by, cancelled_at, \
     cancelled_by FROM bill_items WHERE id = $1",
);
static PATIENT_OF: Sql = Sql::new("SELECT patient_id FROM bill_items WHERE id = $1");
static FOR_PATIENT: Sql = Sql::new(
    "SELECT id, patient_id, service_code, description, quantity, unit_price, tax_rate_bp, total, currency, \
     due_date, appointment_id, record_id, report_id, status, created_by, created_at, paid_at, paid_by, cancelled_at, \
     cancelled_by FROM bill_items WHERE patient_id = $1 ORDER BY created_at, id LIMIT $2",
);
static ALL: Sql = Sql::new(
    "SELECT id, patient_id, service_code, description, quantity, unit_price, tax_rate_bp, total, currency, \
     due_date, appointment_id, record_id, report_id, status, created_by, created_at, paid_at, paid_by, cancelled_at, \
     cancelled_by FROM bill_items
     WHERE ($1 = '' OR (CASE WHEN status IN ('unpaid', 'pending') AND due_date < $2 THEN 'overdue' ELSE status END) = $1)
       AND id < $3
     ORDER BY id DESC LIMIT $4",
);
static PAY: Sql = Sql::new(
    "UPDATE bill_items SET status = 'paid', paid_at = $3, paid_by = $2
     WHERE id = $1 AND status IN ('unpaid', 'pending')",
);
static CANCEL: Sql = Sql::new(
    "UPDATE bill_items SET status = 'cancelled', cancelled_at = $3, cancelled_by = $2
     WHERE id = $1 AND status IN ('unpaid', 'pending')",
);
static PAID_BETWEEN: Sql =
    Sql::new("SELECT paid_at, total FROM bill_items WHERE status = 'paid' AND paid_at >= $1 AND paid_at < $2");
static OPEN: Sql = Sql::new("SELECT due_date, total FROM bill_items WHERE status IN ('unpaid', 'pending')");

/// Store a new item.
pub async fn insert(db: &Db, b: &BillRow) -> Result<(), sqlx::Error> {
    exec!(
        db.writer(),
        &INSERT,
        b.id,
        b.patient_id,
        &b.service_code,
        &b.description,
        b.quantity,
        b.unit_price,
        b.tax_rate_bp,
        b.total,
        &b.currency,
        &b.due_date,
        b.appointment_id,
        b.record_id,
        b.report_id,
        &b.status,
        b.created_by,
        b.created_at
    )
    .map(|_| ())
}

/// One item.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<BillRow>, sqlx::Error> {
    fetch!(db.writer(), BillRow, fetch_optional, &GET, id)
}

/// The chart an item belongs to (for the policies).
pub async fn patient_of(db: &Db, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    Ok(fetch!(db.reader(), (Uuid,), fetch_optional, &PATIENT_OF, id)?.map(|(p,)| p))
}

/// The clinic's bill items, newest first, before `before`: those whose status as shown (`overdue`
/// for an open item due before `today`, `YYYY-MM-DD`) is `status`, or all when it is empty.
pub async fn all(
    db: &Db,
    status: &str,
    today: &str,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<BillRow>, sqlx::Error> {
    fetch!(db.reader(), BillRow, fetch_all, &ALL, status, today, before.unwrap_or(Uuid::max()), limit)
}

/// A patient's items, oldest first, at most `limit`.
pub async fn for_patient(db: &Db, patient: Uuid, limit: i64) -> Result<Vec<BillRow>, sqlx::Error> {
    fetch!(db.reader(), BillRow, fetch_all, &FOR_PATIENT, patient, limit)
}

/// Mark an open item paid: `false` if it is not open (already paid or cancelled).
pub async fn pay(db: &Db, id: Uuid, by: Uuid, at: i64) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &PAY, id, by, at)? == 1)
}

/// Cancel an open item: `false` if it is not open.
pub async fn cancel(db: &Db, id: Uuid, by: Uuid, at: i64) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &CANCEL, id, by, at)? == 1)
}

/// `(paid_at, total)` of the items paid in `[from, to)`.
pub async fn paid_between(db: &Db, from: i64, to: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    fetch!(db.reader(), (i64, i64), fetch_all, &PAID_BETWEEN, from, to)
}

/// `(due_date, total)` of every open item (unpaid or pending).
pub async fn open_items(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    fetch!(db.reader(), (String, i64), fetch_all, &OPEN)
}
