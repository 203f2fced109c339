//! The clinic's reference data: languages, departments and the two-level cancer-type tree.
//! Ids are stable slugs (`uterine-leiomyosarcoma-ulms`), seeded by migration.

use careport_domain::time::now_ms;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, scalar};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Language {
    pub code: String,
    pub name: String,
    pub native_name: String,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct CancerType {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub description: String,
    pub position: i64,
    pub retired_at: Option<i64>,
}

static LANGUAGES: Sql = Sql::new("SELECT code, name, native_name FROM languages ORDER BY display_order");
static DEPARTMENTS: Sql = Sql::new("SELECT id, name, description FROM departments ORDER BY name");
static DEPARTMENT_EXISTS: Sql = Sql::new("SELECT COUNT(*) FROM departments WHERE id = $1");
static TYPES: Sql = Sql::new(
    "SELECT id, parent_id, name, description, position, retired_at FROM cancer_types
     WHERE ($1 OR retired_at IS NULL) ORDER BY position, name",
);
static TYPE_BY_ID: Sql =
    Sql::new("SELECT id, parent_id, name, description, position, retired_at FROM cancer_types WHERE id = $1");
static SEARCH: Sql = Sql::new(
    "SELECT id, parent_id, name, description, position, retired_at FROM cancer_types
     WHERE retired_at IS NULL AND (lower(name) LIKE $1 OR lower(description) LIKE $1)
     ORDER BY (parent_id IS NOT NULL), position, name LIMIT 50",
);
static NEXT_POSITION: Sql = Sql::new(
    "SELECT COALESCE(MAX(position), 0) + 1 FROM cancer_types WHERE COALESCE(parent_id, '') = COALESCE($1, '')",
);
static INSERT_TYPE: Sql = Sql::new(
    "INSERT INTO cancer_types (id, parent_id, name, description, position, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $6)",
);
static UPDATE_TYPE: Sql =
    Sql::new("UPDATE cancer_types SET name = $2, description = $3, retired_at = $4, updated_at = $5 WHERE id = $1");

pub async fn languages(db: &Db) -> Result<Vec<Language>, sqlx::Error> {
    fetch!(db.reader(), Language, fetch_all, &LANGUAGES)
}

pub async fn departments(db: &Db) -> Result<Vec<Department>, sqlx::Error> {
    fetch!(db.reader(), Department, fetch_all, &DEPARTMENTS)
}

pub async fn department_exists(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    Ok(scalar!(db.reader(), i64, fetch_one, &DEPARTMENT_EXISTS, id)? > 0)
}

/// Every cancer type (retired ones too when asked), top level and subtypes together.
pub async fn cancer_types(db: &Db, include_retired: bool) -> Result<Vec<CancerType>, sqlx::Error> {
    fetch!(db.reader(), CancerType, fetch_all, &TYPES, include_retired)
}

pub async fn cancer_type(db: &Db, id: &str) -> Result<Option<CancerType>, sqlx::Error> {
    fetch!(db.writer(), CancerType, fetch_optional, &TYPE_BY_ID, id)
}

/// Types whose name or description contains `text` (case-insensitive), top level first.
pub async fn search_cancer_types(db: &Db, text: &str) -> Result<Vec<CancerType>, sqlx::Error> {
    let escaped: String = text.to_lowercase().chars().filter(|c| !matches!(c, '%' | '_' | '\\')).collect();
    fetch!(db.reader(), CancerType, fetch_all, &SEARCH, format!("%{escaped}%"))
}

/// Why a cancer type could not be added or changed.
#[derive(Debug, thiserror::Error)]
pub enum TypeError {
    #[error("A cancer type of that name already exists here.")]
    NameTaken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

fn map_unique(e: sqlx::Error) -> TypeError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => TypeError::NameTaken,
        other => TypeError::Store(other),
    }
}

/// Add a type under `parent` (or at the top level); its id is the slug of parent and name.
pub async fn add_cancer_type(
    db: &Db,
    parent: Option<&str>,
    name: &str,
    description: &str,
) -> Result<CancerType, TypeError> {
    let id = match parent {
        Some(p) => format!("{p}-{}", slug(name)),
        None => slug(name),
    };
    let position = scalar!(db.writer(), i64, fetch_one, &NEXT_POSITION, parent)?;
    exec!(db.writer(), &INSERT_TYPE, id.as_str(), parent, name, description, position, now_ms()).map_err(map_unique)?;
    Ok(CancerType {
        id,
        parent_id: parent.map(str::to_owned),
        name: name.to_owned(),
        description: description.to_owned(),
        position,
        retired_at: None,
    })
}

/// Rename, re-describe, retire or restore a type.
pub async fn update_cancer_type(
    db: &Db,
    id: &str,
    name: &str,
    description: &str,
    retired_at: Option<i64>,
) -> Result<bool, TypeError> {
    Ok(exec!(db.writer(), &UPDATE_TYPE, id, name, description, retired_at, now_ms()).map_err(map_unique)? == 1)
}

/// A URL-safe id from a name: lower case ASCII letters and digits joined by `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(super::slug("Leiomyosarcoma (uLMS)"), "leiomyosarcoma-ulms");
        assert_eq!(
            super::slug("Undifferentiated/dedifferentiated carcinoma"),
            "undifferentiated-dedifferentiated-carcinoma"
        );
    }
}
