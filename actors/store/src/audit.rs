//! The audit trail: append-only rows, hash-chained.
//!
//! Each event's `hash` is HMAC-SHA256, keyed with a key derived from the master key, over the
//! previous event's hash and every field of the event, length-prefixed so that no two field
//! lists encode alike. `audit_head` holds the newest link. The key lives outside the database:
//! someone who can write to the database but does not hold the master key cannot recompute
//! the chain after an edit, nor rewrite the head after deleting the newest events. Appends run in one transaction that reads the head (`FOR UPDATE` on PostgreSQL, so
//! nodes take turns; SQLite has a single writer) and writes the events and the new head; a
//! batch of events costs one transaction. [`verify`] walks the chain and names the first
//! broken link: an edited row (its hash no longer matches), a deleted row (a gap in `seq` or
//! a `prev_hash` that points elsewhere), or deleted newest rows (the head points past the end).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{Db, Pool};
use crate::fetch;
use crate::sql::Sql;

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append. Fields are identifiers, never personal data: no names, no record
/// contents, no e-mail addresses (those are in `detail` only as ids).
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub id: Uuid,
    pub at: i64,
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    pub patient_id: Option<Uuid>,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

/// A stored event.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub id: Uuid,
    pub at: i64,
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    pub patient_id: Option<Uuid>,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl EventRow {
    fn as_new(&self) -> NewEvent {
        NewEvent {
            id: self.id,
            at: self.at,
            actor_id: self.actor_id,
            actor_role: self.actor_role.clone(),
            action: self.action.clone(),
            resource_kind: self.resource_kind.clone(),
            resource_id: self.resource_id.clone(),
            patient_id: self.patient_id,
            outcome: self.outcome.clone(),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// The chain key: derived from the master key, so that the chain cannot be recomputed by
/// whoever can only write to the database.
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    /// The key as first derived from the master key's text. Since the vault (#5) it is kept
    /// in `system_keys`, wrapped by the master key, so that rotating the master key keeps the
    /// chain verifiable: `careport_actors::vault::chain_key` loads it (or stores this one).
    pub fn from_master_key(master_key: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"careport-audit-chain-v1");
        h.update(master_key.as_bytes());
        Self(h.finalize().into())
    }
}

impl ChainKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, to be wrapped for storage.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey([redacted])")
    }
}

/// Longest text kept in an event field; longer values are cut (fields are identifiers).
const MAX_FIELD: usize = 512;

/// Make an event storable on both backends: no NUL or other control characters (PostgreSQL
/// refuses NUL in text), no unbounded fields. Applied before hashing, so what is stored is
/// what was hashed.
pub fn sanitize(mut e: NewEvent) -> NewEvent {
    fn clean(s: &mut String) {
        if s.chars().any(char::is_control) || s.len() > MAX_FIELD {
            let mut t: String = s.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
            if t.len() > MAX_FIELD {
                let mut end = MAX_FIELD;
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                t.truncate(end);
            }
            *s = t;
        }
    }
    for f in [
        &mut e.actor_role,
        &mut e.resource_kind,
        &mut e.resource_id,
        &mut e.ip,
        &mut e.user_agent,
        &mut e.request_id,
        &mut e.detail,
    ]
    .into_iter()
    .flatten()
    {
        clean(f);
    }
    clean(&mut e.action);
    clean(&mut e.outcome);
    e
}

/// The link hash of event `seq` after `prev`.
pub fn chain_hash(key: &ChainKey, prev: &str, seq: i64, e: &NewEvent) -> String {
    type H = Hmac<Sha256>;
    fn field(h: &mut H, v: Option<&[u8]>) {
        match v {
            Some(b) => {
                h.update(&(b.len() as u32).to_be_bytes());
                h.update(b);
            }
            None => h.update(&u32::MAX.to_be_bytes()),
        }
    }
    let Ok(mut h) = H::new_from_slice(&key.0) else { return String::new() };
    h.update(b"careport-audit-v1");
    field(&mut h, Some(prev.as_bytes()));
    h.update(&seq.to_be_bytes());
    h.update(e.id.as_bytes());
    h.update(&e.at.to_be_bytes());
    field(&mut h, e.actor_id.as_ref().map(|u| u.as_bytes().as_slice()));
    field(&mut h, e.actor_role.as_deref().map(str::as_bytes));
    field(&mut h, Some(e.action.as_bytes()));
    field(&mut h, e.resource_kind.as_deref().map(str::as_bytes));
    field(&mut h, e.resource_id.as_deref().map(str::as_bytes));
    field(&mut h, e.patient_id.as_ref().map(|u| u.as_bytes().as_slice()));
    field(&mut h, Some(e.outcome.as_bytes()));
    field(&mut h, e.ip.as_deref().map(str::as_bytes));
    field(&mut h, e.user_agent.as_deref().map(str::as_bytes));
    field(&mut h, e.request_id.as_deref().map(str::as_bytes));
    field(&mut h, e.detail.as_deref().map(str::as_bytes));
    h.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The MAC of the head `(seq, hash)`. Without the key, a head cannot be rolled back to an
/// earlier event (to hide deleted newest events) unless that exact head row was copied before.
pub fn head_mac(key: &ChainKey, seq: i64, hash: &str) -> String {
    let Ok(mut h) = Hmac::<Sha256>::new_from_slice(&key.0) else { return String::new() };
    h.update(b"careport-audit-head-v1");
    h.update(&seq.to_be_bytes());
    h.update(hash.as_bytes());
    h.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

static HEAD: Sql = Sql::each(
    "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
    "SELECT seq, hash FROM audit_head WHERE id = 1",
);
static SET_HEAD: Sql = Sql::new("UPDATE audit_head SET seq = $1, hash = $2, mac = $3 WHERE id = 1");

/// Events per INSERT statement: 16 parameters each, well under SQLite's 32,766.
const ROWS_PER_INSERT: usize = 256;

/// `INSERT INTO audit_events (…) VALUES (…), (…)` for `rows` rows, `$N` parameters.
fn insert_rows(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_events (seq, id, at, actor_id, actor_role, action, resource_kind, resource_id, patient_id, \
         outcome, ip, user_agent, request_id, detail, prev_hash, hash) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=16 {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * 16 + c));
        }
        sql.push(')');
    }
    sql
}

// One multi-row INSERT per chunk of events: a batch costs a few statements, not one per event.
macro_rules! append_in {
    ($tx:ident, $text:ident, $key:expr, $events:expr, $sql:expr) => {{
        let (mut seq, mut prev): (i64, String) = sqlx::query_as(HEAD.$text()).fetch_one(&mut *$tx).await?;
        for chunk in $events.chunks(ROWS_PER_INSERT) {
            let mut rows = Vec::with_capacity(chunk.len());
            for e in chunk {
                seq += 1;
                let hash = chain_hash($key, &prev, seq, e);
                rows.push((seq, e, prev.clone(), hash.clone()));
                prev = hash;
            }
            let text = $sql(insert_rows(rows.len()));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
            for (seq, e, prev_hash, hash) in rows {
                q = q
                    .bind(seq)
                    .bind(e.id)
                    .bind(e.at)
                    .bind(e.actor_id)
                    .bind(e.actor_role.clone())
                    .bind(e.action.clone())
                    .bind(e.resource_kind.clone())
                    .bind(e.resource_id.clone())
                    .bind(e.patient_id)
                    .bind(e.outcome.clone())
                    .bind(e.ip.clone())
                    .bind(e.user_agent.clone())
                    .bind(e.request_id.clone())
                    .bind(e.detail.clone())
                    .bind(prev_hash)
                    .bind(hash);
            }
            q.execute(&mut *$tx).await?;
        }
        let mac = head_mac($key, seq, &prev);
        sqlx::query(SET_HEAD.$text()).bind(seq).bind(prev.as_str()).bind(mac.as_str()).execute(&mut *$tx).await?;
        seq
    }};
}

/// Append events in order, in one transaction. Returns the sequence number of the last one.
/// Events are [`sanitize`]d first.
pub async fn append(db: &Db, key: &ChainKey, events: &[NewEvent]) -> Result<i64, sqlx::Error> {
    let events: Vec<NewEvent> = events.iter().cloned().map(sanitize).collect();
    let events = &events;
    match db.writer() {
        Pool::Sqlite(p) => {
            let mut tx = p.begin().await?;
            let last = append_in!(tx, sqlite, key, events, |t: String| crate::sql::numbered_to_sqlite(&t));
            tx.commit().await?;
            Ok(last)
        }
        Pool::Postgres(p) => {
            let mut tx = p.begin().await?;
            let last = append_in!(tx, pg, key, events, |t: String| t);
            tx.commit().await?;
            Ok(last)
        }
    }
}

/// Filters for [`list`]. Times are milliseconds since the epoch; `before` pages backwards.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<Uuid>,
    pub patient: Option<Uuid>,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

static LIST: Sql = Sql::new(
    "SELECT seq, id, at, actor_id, actor_role, action, resource_kind, resource_id, patient_id, outcome, ip,
            user_agent, request_id, detail, prev_hash, hash
     FROM audit_events
     WHERE ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR patient_id = $2) AND (CAST($3 AS TEXT) IS NULL OR action = $3)
       AND at >= $4 AND at <= $5 AND seq < $6
     ORDER BY seq DESC LIMIT $7",
);

/// Events matching `filter`, newest first.
pub async fn list(db: &Db, f: &Filter) -> Result<Vec<EventRow>, sqlx::Error> {
    fetch!(
        db.reader(),
        EventRow,
        fetch_all,
        &LIST,
        f.actor,
        f.patient,
        f.action.as_deref(),
        f.from.unwrap_or(i64::MIN),
        f.to.unwrap_or(i64::MAX),
        f.before.unwrap_or(i64::MAX),
        f.limit
    )
}

/// One line of a patient's access log: someone else's action on their data.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AccessRow {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: String,
}

static ACCESS_LOG: Sql = Sql::new(
    "SELECT e.seq, e.at, e.actor_id, u.full_name AS actor_name, e.actor_role, e.action, e.resource_kind,
            e.resource_id, e.outcome
     FROM audit_events e LEFT JOIN users u ON u.id = e.actor_id
     WHERE e.patient_id = $1 AND (e.actor_id IS NULL OR e.actor_id <> $1 OR e.at < $4) AND e.outcome = 'success'
       AND e.seq < $2
     ORDER BY e.seq DESC LIMIT $3",
);

/// Who acted on a patient's data, newest first: everyone but the patient, and the patient's own
/// account too before `own_since` (a chart linked at registration, before the clinic confirmed
/// the link: [`crate::chart_links::own_reads_since`]). Only what succeeded: a denied attempt by
/// another patient must not show that patient's name.
pub async fn access_log(
    db: &Db,
    patient: Uuid,
    own_since: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AccessRow>, sqlx::Error> {
    fetch!(db.reader(), AccessRow, fetch_all, &ACCESS_LOG, patient, before.unwrap_or(i64::MAX), limit, own_since)
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Events checked.
    pub events: i64,
    /// The first broken link, if any: the sequence number where it shows, and what is wrong.
    pub broken: Option<(i64, String)>,
}

static PAGE: Sql = Sql::new(
    "SELECT seq, id, at, actor_id, actor_role, action, resource_kind, resource_id, patient_id, outcome, ip,
            user_agent, request_id, detail, prev_hash, hash
     FROM audit_events WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2",
);
static READ_HEAD: Sql = Sql::new("SELECT seq, hash, mac FROM audit_head WHERE id = 1");

/// Walk the chain up to the head read at the start (events appended meanwhile are left for
/// the next run), page by page, and report the first broken link.
pub async fn verify(db: &Db, key: &ChainKey) -> Result<Verification, sqlx::Error> {
    const PAGE_SIZE: i64 = 1000;
    let (head_seq, head_hash, mac) = fetch!(db.reader(), (i64, String, String), fetch_one, &READ_HEAD)?;
    let head_ok =
        if head_seq == 0 { head_hash == GENESIS && mac.is_empty() } else { mac == head_mac(key, head_seq, &head_hash) };
    if !head_ok {
        let why = format!("the chain head (event #{head_seq}) was rewritten: its MAC does not match");
        return Ok(Verification { events: 0, broken: Some((head_seq, why)) });
    }
    let mut expected_seq = 1i64;
    let mut prev = GENESIS.to_owned();
    let mut checked = 0i64;
    loop {
        let page = fetch!(db.reader(), EventRow, fetch_all, &PAGE, expected_seq - 1, PAGE_SIZE, head_seq)?;
        let done = (page.len() as i64) < PAGE_SIZE;
        for row in page {
            if row.seq != expected_seq {
                let why = format!("event #{expected_seq} is missing (deleted); the chain resumes at #{}", row.seq);
                return Ok(Verification { events: checked, broken: Some((expected_seq, why)) });
            }
            if row.prev_hash != prev {
                let why = format!(
                    "event #{} does not follow the event before it (an event was removed or replaced)",
                    row.seq
                );
                return Ok(Verification { events: checked, broken: Some((row.seq, why)) });
            }
            if chain_hash(key, &prev, row.seq, &row.as_new()) != row.hash {
                let why = format!("event #{} was altered after it was written", row.seq);
                return Ok(Verification { events: checked, broken: Some((row.seq, why)) });
            }
            prev = row.hash;
            expected_seq += 1;
            checked += 1;
        }
        if done {
            break;
        }
    }
    let last = expected_seq - 1;
    if head_seq != last || head_hash != prev {
        let why = if head_seq > last {
            format!("events #{} to #{head_seq} are missing (the newest events were deleted)", last + 1)
        } else {
            format!("the chain head does not match event #{last}")
        };
        return Ok(Verification { events: checked, broken: Some((last + 1, why)) });
    }
    Ok(Verification { events: checked, broken: None })
}
