//! Plugins kept in the store (manifest, module, switch), so that every node serves the same
//! set. `updated_at` orders changes: a node installs a row newer than the one it serves.

use careport_domain::time::now_ms;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// A stored plugin.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredPlugin {
    pub name: String,
    pub version: String,
    pub manifest: String,
    pub module: Vec<u8>,
    pub enabled: bool,
    pub updated_at: i64,
}

static UPSERT: Sql = Sql::new(
    "INSERT INTO plugins (name, version, manifest, module, enabled, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (name) DO UPDATE SET version = excluded.version, manifest = excluded.manifest,
       module = excluded.module, enabled = excluded.enabled, updated_at = excluded.updated_at",
);
static SET_ENABLED: Sql = Sql::new("UPDATE plugins SET enabled = $2, updated_at = $3 WHERE name = $1");
static GET: Sql = Sql::new("SELECT name, version, manifest, module, enabled, updated_at FROM plugins WHERE name = $1");
static VERSIONS: Sql = Sql::new("SELECT name, updated_at FROM plugins ORDER BY name");

/// Store a plugin (a new one, or a new version); returns its `updated_at`.
pub async fn put(
    db: &Db,
    name: &str,
    version: &str,
    manifest: &str,
    module: &[u8],
    enabled: bool,
) -> Result<i64, sqlx::Error> {
    let at = now_ms();
    exec!(db.writer(), &UPSERT, name, version, manifest, module, enabled, at)?;
    Ok(at)
}

/// Switch a stored plugin; `None` if there is no such row.
pub async fn set_enabled(db: &Db, name: &str, enabled: bool) -> Result<Option<i64>, sqlx::Error> {
    let at = now_ms();
    Ok((exec!(db.writer(), &SET_ENABLED, name, enabled, at)? == 1).then_some(at))
}

pub async fn get(db: &Db, name: &str) -> Result<Option<StoredPlugin>, sqlx::Error> {
    fetch!(db.writer(), StoredPlugin, fetch_optional, &GET, name)
}

/// `(name, updated_at)` of every stored plugin.
pub async fn versions(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    fetch!(db.reader(), (String, i64), fetch_all, &VERSIONS)
}
