//! Stored embeddings and their vector spaces.
//!
//! Each row records the model id and dimension that made it. When the configured provider
//! changes (say from the local MiniLM to an external model), the old rows are not mixed into
//! searches: [`stale`] lists them so careport can say what needs re-embedding.

use careport_domain::time::now_ms;

use crate::db::{Db, Pool};
use crate::sql::Sql;
use crate::{exec, fetch};

/// Rows of one vector space.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Space {
    pub model: String,
    pub dim: i32,
    pub count: i64,
}

static UPSERT_PG: &str = "INSERT INTO embeddings (source_kind, source_id, model, dim, vector, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (source_kind, source_id, model) DO UPDATE SET dim = EXCLUDED.dim, vector = EXCLUDED.vector, created_at = EXCLUDED.created_at";
static UPSERT_SQLITE: &str = "INSERT INTO embeddings (source_kind, source_id, model, dim, vector, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (source_kind, source_id, model) DO UPDATE SET dim = excluded.dim, vector = excluded.vector, created_at = excluded.created_at";
static SPACES: Sql =
    Sql::new("SELECT model, dim, COUNT(*) AS count FROM embeddings GROUP BY model, dim ORDER BY model, dim");
static STALE: Sql = Sql::new(
    "SELECT model, dim, COUNT(*) AS count FROM embeddings WHERE model <> $1 OR dim <> $2
     GROUP BY model, dim ORDER BY model, dim",
);
static STALE_MODEL: Sql = Sql::new(
    "SELECT model, dim, COUNT(*) AS count FROM embeddings WHERE model <> $1 GROUP BY model, dim ORDER BY model, dim",
);
static DELETE_SPACE: Sql = Sql::new("DELETE FROM embeddings WHERE model = $1 AND dim = $2");

/// Store (or replace) the vector of one source under one model.
pub async fn put(db: &Db, source_kind: &str, source_id: &str, model: &str, vector: &[f32]) -> Result<(), sqlx::Error> {
    let dim = i32::try_from(vector.len()).map_err(|_| sqlx::Error::Protocol("vector too long".into()))?;
    let now = now_ms();
    match db.writer() {
        Pool::Sqlite(p) => {
            let blob: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            sqlx::query(UPSERT_SQLITE)
                .bind(source_kind)
                .bind(source_id)
                .bind(model)
                .bind(dim)
                .bind(blob)
                .bind(now)
                .execute(p)
                .await?;
        }
        Pool::Postgres(p) => {
            sqlx::query(UPSERT_PG)
                .bind(source_kind)
                .bind(source_id)
                .bind(model)
                .bind(dim)
                .bind(pgvector::Vector::from(vector.to_vec()))
                .bind(now)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// Every vector space with stored rows.
pub async fn spaces(db: &Db) -> Result<Vec<Space>, sqlx::Error> {
    fetch!(db.reader(), Space, fetch_all, &SPACES)
}

/// The spaces that differ from the configured model (and dimension, when known): their rows
/// need re-embedding before they can be searched again.
pub async fn stale(db: &Db, model: &str, dim: Option<usize>) -> Result<Vec<Space>, sqlx::Error> {
    match dim {
        Some(dim) => {
            let dim = i32::try_from(dim).unwrap_or(i32::MAX);
            fetch!(db.reader(), Space, fetch_all, &STALE, model, dim)
        }
        None => fetch!(db.reader(), Space, fetch_all, &STALE_MODEL, model),
    }
}

/// Drop one space's rows (after re-embedding, or when an operator gives up on it).
pub async fn delete_space(db: &Db, model: &str, dim: i32) -> Result<u64, sqlx::Error> {
    exec!(db.writer(), &DELETE_SPACE, model, dim)
}
