//! The clinic's reference data: languages (public: the registration form needs them),
//! departments, the cancer-type tree and record types (signed-in users), and the
//! administration of cancer types. Reads come from the shared cache (Redis when configured);
//! every change invalidates it on every node.

use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::record_types::{self, RecordType};
use careport_store::reference::{self, CancerType, Department, Language, TypeError};
use serde::Serialize;

use super::store_err;
use super::views::Items;
use crate::Services;
use crate::access::{ManageReference, Pass, ReadReference};
use crate::audit::{EventExt, outcome};

/// The reference-data operations.
pub struct Reference<'a>(pub(crate) &'a Services);

/// A top-level cancer type with its subtypes.
#[derive(Debug, Clone, Serialize)]
pub struct TypeNode {
    #[serde(flatten)]
    pub cancer_type: CancerType,
    pub subtypes: Vec<CancerType>,
}

/// The cancer types: the tree, or the types a search found.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum CancerTypes {
    Tree(Items<TypeNode>),
    Found(Items<CancerType>),
}

/// A record type that matches free text, with its score.
#[derive(Debug, Clone, Serialize)]
pub struct RecordTypeMatch {
    pub id: String,
    pub name: String,
    pub description: String,
    pub score: f64,
}

/// A new cancer type.
#[derive(Debug, Clone, Default)]
pub struct NewCancerType {
    pub parent_id: Option<String>,
    pub name: String,
    pub description: String,
}

/// A change to a cancer type; absent fields are kept.
#[derive(Debug, Clone, Default)]
pub struct CancerTypeChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub retired: Option<bool>,
}

fn type_error(e: TypeError) -> Error {
    match e {
        TypeError::NameTaken => Error::with_message(Code::Conflict, "A cancer type of that name already exists here."),
        TypeError::Store(e) => store_err(e),
    }
}

fn check_text(field: &str, v: &str, max: usize) -> Result<String, Error> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Error::with_message(Code::InvalidValue, format!("{field} must be 1 to {max} characters of text.")));
    }
    Ok(v.to_owned())
}

fn tree(types: Vec<CancerType>) -> Items<TypeNode> {
    let (top, subs): (Vec<_>, Vec<_>) = types.into_iter().partition(|t| t.parent_id.is_none());
    top.into_iter()
        .map(|t| {
            let subtypes = subs.iter().filter(|s| s.parent_id.as_deref() == Some(t.id.as_str())).cloned().collect();
            TypeNode { cancer_type: t, subtypes }
        })
        .collect::<Vec<_>>()
        .into()
}

impl Reference<'_> {
    /// The interface languages (public).
    pub async fn languages(&self) -> Result<Items<Language>, Error> {
        Ok(reference::languages(&self.0.db).await.map_err(store_err)?.into())
    }

    /// The clinic's departments.
    pub async fn departments(&self, _: Pass<ReadReference>) -> Result<Items<Department>, Error> {
        let db = &self.0.db;
        let items = self
            .0
            .cache
            .get_or_load("reference", "departments", || reference::departments(db))
            .await
            .map_err(store_err)?;
        Ok(items.into())
    }

    async fn cancer_types_cached(&self, include_retired: bool) -> Result<Vec<CancerType>, Error> {
        let db = &self.0.db;
        let key = if include_retired { "cancer_types:all" } else { "cancer_types:active" };
        self.0
            .cache
            .get_or_load("reference", key, || reference::cancer_types(db, include_retired))
            .await
            .map_err(store_err)
    }

    /// The cancer-type tree, or with `q` the types whose names match.
    pub async fn cancer_types(
        &self,
        _: Pass<ReadReference>,
        q: Option<&str>,
        include_retired: bool,
    ) -> Result<CancerTypes, Error> {
        if let Some(text) = q.map(str::trim).filter(|t| !t.is_empty()) {
            if text.chars().count() > 100 {
                return Err(Error::with_message(Code::InvalidQuery, "q must be at most 100 characters."));
            }
            let found = reference::search_cancer_types(&self.0.db, text).await.map_err(store_err)?;
            return Ok(CancerTypes::Found(found.into()));
        }
        Ok(CancerTypes::Tree(tree(self.cancer_types_cached(include_retired).await?)))
    }

    /// The active subtypes of a type (404 for an unknown type).
    pub async fn subtypes(&self, _: Pass<ReadReference>, id: &str) -> Result<Items<CancerType>, Error> {
        let parent = reference::cancer_type(&self.0.db, id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        let all = self.cancer_types_cached(false).await?;
        Ok(all.into_iter().filter(|t| t.parent_id.as_deref() == Some(parent.id.as_str())).collect::<Vec<_>>().into())
    }

    /// Add a cancer type or subtype (administrators).
    pub async fn add_type(&self, pass: Pass<ManageReference>, b: NewCancerType) -> Result<CancerType, Error> {
        let name = check_text("name", &b.name, 100)?;
        let description = check_text("description", &b.description, 1000)?;
        if reference::slug(&name).is_empty() {
            return Err(Error::with_message(Code::InvalidValue, "name needs at least one letter or digit."));
        }
        if let Some(p) = &b.parent_id {
            match reference::cancer_type(&self.0.db, p).await.map_err(store_err)? {
                Some(t) if t.parent_id.is_none() && t.retired_at.is_none() => {}
                Some(_) => {
                    return Err(Error::with_message(Code::InvalidValue, "parent_id must be an active top-level type."));
                }
                None => return Err(Error::with_message(Code::InvalidValue, "parent_id names no cancer type.")),
            }
        }
        let t = reference::add_cancer_type(&self.0.db, b.parent_id.as_deref(), &name, &description)
            .await
            .map_err(type_error)?;
        self.0.cache.invalidate("reference").await;
        self.0
            .audit
            .one(pass.caller().ctx.event("admin.cancer_type_add", outcome::SUCCESS).resource("reference", &t.id))
            .await?;
        Ok(t)
    }

    /// Rename, describe, retire or restore a cancer type (administrators).
    pub async fn update_type(
        &self,
        pass: Pass<ManageReference>,
        id: &str,
        b: CancerTypeChange,
    ) -> Result<CancerType, Error> {
        let current = reference::cancer_type(&self.0.db, id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        let name = match &b.name {
            Some(n) => check_text("name", n, 100)?,
            None => current.name.clone(),
        };
        let description = match &b.description {
            Some(d) => check_text("description", d, 1000)?,
            None => current.description.clone(),
        };
        let retired_at = match b.retired {
            Some(true) => current.retired_at.or(Some(now_ms())),
            Some(false) => None,
            None => current.retired_at,
        };
        reference::update_cancer_type(&self.0.db, &current.id, &name, &description, retired_at)
            .await
            .map_err(type_error)?;
        self.0.cache.invalidate("reference").await;
        self.0
            .audit
            .one(
                pass.caller()
                    .ctx
                    .event("admin.cancer_type_update", outcome::SUCCESS)
                    .resource("reference", &current.id),
            )
            .await?;
        reference::cancer_type(&self.0.db, &current.id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))
    }

    /// The medical record types.
    pub async fn record_types(&self, _: Pass<ReadReference>) -> Result<Items<RecordType>, Error> {
        Ok(record_types::all(&self.0.db).await.map_err(store_err)?.into())
    }

    /// The three record types that best match free text (trigram similarity and word cover).
    pub async fn match_record_type(&self, _: Pass<ReadReference>, q: &str) -> Result<Items<RecordTypeMatch>, Error> {
        if q.trim().is_empty() || q.chars().count() > 200 {
            return Err(Error::with_message(Code::InvalidQuery, "q must be 1 to 200 characters."));
        }
        let types = record_types::all(&self.0.db).await.map_err(store_err)?;
        Ok(record_types::rank(&types, q, 3)
            .into_iter()
            .map(|(t, score)| RecordTypeMatch {
                id: t.id.clone(),
                name: t.name.clone(),
                description: t.description.clone(),
                score,
            })
            .collect::<Vec<_>>()
            .into())
    }
}
