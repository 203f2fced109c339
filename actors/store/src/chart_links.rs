//! Charts linked to an account at registration, and the clinic's confirmation of each link
//! (README: "Accounts and records: one id"). A chart linked by a proven e-mail address is its
//! patient's, but the clinic confirms it: until then the account's own reads of the chart are
//! listed in the access log like anyone else's.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// A link as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChartLink {
    pub patient_id: Uuid,
    pub linked_at: i64,
    pub notified_at: Option<i64>,
    pub confirmed_at: Option<i64>,
    pub confirmed_by: Option<Uuid>,
}

static INSERT: Sql = Sql::new("INSERT INTO chart_links (patient_id, linked_at) VALUES ($1, $2)");
static GET: Sql = Sql::new(
    "SELECT patient_id, linked_at, notified_at, confirmed_at, confirmed_by FROM chart_links WHERE patient_id = $1",
);
static NOTIFIED: Sql =
    Sql::new("UPDATE chart_links SET notified_at = $2 WHERE patient_id = $1 AND notified_at IS NULL");
static CONFIRM: Sql = Sql::new(
    "UPDATE chart_links SET confirmed_at = $2, confirmed_by = $3 WHERE patient_id = $1 AND confirmed_at IS NULL",
);

/// Record that the account `patient` was linked to the chart of the same id.
pub async fn record(db: &Db, patient: Uuid) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &INSERT, patient, now_ms()).map(|_| ())
}

/// The link of `patient`'s account to their chart, if it was linked at registration.
pub async fn get(db: &Db, patient: Uuid) -> Result<Option<ChartLink>, sqlx::Error> {
    fetch!(db.writer(), ChartLink, fetch_optional, &GET, patient)
}

/// Mark the clinic told (once): `true` if this call did it.
pub async fn mark_notified(db: &Db, patient: Uuid) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &NOTIFIED, patient, now_ms())? == 1)
}

/// Confirm a link: `false` if there is no unconfirmed link for `patient`.
pub async fn confirm(db: &Db, patient: Uuid, by: Uuid) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &CONFIRM, patient, now_ms(), by)? == 1)
}

/// From when the patient's own reads of their chart count as theirs (and leave the access
/// log): always for a patient who registered on their own, from the confirmation for a linked
/// chart, never while the link waits for it.
pub async fn own_reads_since(db: &Db, patient: Uuid) -> Result<i64, sqlx::Error> {
    Ok(match get(db, patient).await? {
        None => i64::MIN,
        Some(ChartLink { confirmed_at: Some(at), .. }) => at,
        Some(_) => i64::MAX,
    })
}
