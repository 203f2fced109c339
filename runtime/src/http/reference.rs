//! The clinic's reference data: `GET /api/v1/languages` (public: the registration form needs
//! it), `GET /api/v1/departments` and `GET /api/v1/cancer-types` (signed-in users), and the
//! administration of cancer types under `/api/v1/admin/cancer-types`.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::audit::{EventExt, outcome};
use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::reference::{self, CancerType, TypeError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::authn::{Authorized, JsonBody, ManageReference, ReadReference};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn store(e: impl Into<anyhow::Error>) -> Error {
    Error::new(Code::StoreUnavailable).caused_by(e).retry_after(1)
}

fn type_error(e: TypeError) -> Error {
    match e {
        TypeError::NameTaken => Error::with_message(Code::Conflict, "A cancer type of that name already exists here."),
        TypeError::Store(e) => store(e),
    }
}

/// The six languages, in display order.
#[utoipa::path(get, path = "/api/v1/languages", tag = "reference", responses((status = 200, description = "Languages")))]
pub async fn languages(services: web::Data<Services>) -> Result<HttpResponse> {
    let langs = reference::languages(&services.db).await.map_err(store)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": langs })))
}

/// The clinic's departments.
#[utoipa::path(get, path = "/api/v1/departments", tag = "reference",
    responses((status = 200, description = "Departments")), security(("bearer" = [])))]
pub async fn departments(_: Authorized<ReadReference>, services: web::Data<Services>) -> Result<HttpResponse> {
    let db = &services.db;
    let items =
        services.cache.get_or_load("reference", "departments", || reference::departments(db)).await.map_err(store)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `GET /api/v1/cancer-types` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TypesQuery {
    /// Search names and descriptions (flat list of matches, top level first).
    pub q: Option<String>,
    /// Include retired types (administrators' screens).
    #[serde(default)]
    pub include_retired: bool,
}

fn tree(types: Vec<CancerType>) -> serde_json::Value {
    let (top, subs): (Vec<_>, Vec<_>) = types.into_iter().partition(|t| t.parent_id.is_none());
    let items: Vec<_> = top
        .into_iter()
        .map(|t| {
            let children: Vec<&CancerType> =
                subs.iter().filter(|s| s.parent_id.as_deref() == Some(t.id.as_str())).collect();
            let mut v = serde_json::to_value(&t).unwrap_or_default();
            v["subtypes"] = serde_json::to_value(children).unwrap_or_default();
            v
        })
        .collect();
    serde_json::json!({ "items": items })
}

/// The cancer-type tree (or, with `q`, the types matching it).
#[utoipa::path(get, path = "/api/v1/cancer-types", tag = "reference", params(TypesQuery),
    responses((status = 200, description = "Tree of types")), security(("bearer" = [])))]
pub async fn cancer_types(
    _: Authorized<ReadReference>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: TypesQuery = super::authn::query(&req)?;
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if text.chars().count() > 100 {
            return Err(Error::with_message(Code::InvalidQuery, "q must be at most 100 characters.").into());
        }
        let found = reference::search_cancer_types(&services.db, text).await.map_err(store)?;
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "items": found })));
    }
    let all = cancer_types_cached(&services, q.include_retired).await?;
    Ok(HttpResponse::Ok().json(tree(all)))
}

/// Every cancer type, through the cache.
async fn cancer_types_cached(
    services: &Services,
    include_retired: bool,
) -> std::result::Result<Vec<CancerType>, Error> {
    let db = &services.db;
    let key = if include_retired { "cancer_types:all" } else { "cancer_types:active" };
    services.cache.get_or_load("reference", key, || reference::cancer_types(db, include_retired)).await.map_err(store)
}

/// The subtypes of one top-level type.
#[utoipa::path(get, path = "/api/v1/cancer-types/{id}/subtypes", tag = "reference",
    params(("id" = String, Path, description = "Cancer type id (a slug)")),
    responses((status = 200, description = "Subtypes"), (status = 404, description = "No such type", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn subtypes(
    _: Authorized<ReadReference>,
    services: web::Data<Services>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let parent =
        reference::cancer_type(&services.db, &id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))?;
    let all = cancer_types_cached(&services, false).await?;
    let items: Vec<_> = all.into_iter().filter(|t| t.parent_id.as_deref() == Some(parent.id.as_str())).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

fn check_text(field: &str, v: &str, max: usize) -> std::result::Result<String, Error> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Error::with_message(Code::InvalidValue, format!("{field} must be 1 to {max} characters of text.")));
    }
    Ok(v.to_owned())
}

/// `POST /api/v1/admin/cancer-types`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTypeBody {
    /// A top-level type's id to add a subtype; absent for a new top-level type.
    pub parent_id: Option<String>,
    pub name: String,
    pub description: String,
}

/// Add a cancer type (administrators). The tree has two levels.
#[utoipa::path(post, path = "/api/v1/admin/cancer-types", tag = "reference", request_body = NewTypeBody,
    responses((status = 201, description = "Added"), (status = 409, description = "Name taken", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_type(
    auth: Authorized<ManageReference>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<NewTypeBody>()?;
    let name = check_text("name", &b.name, 100)?;
    let description = check_text("description", &b.description, 1000)?;
    if reference::slug(&name).is_empty() {
        return Err(Error::with_message(Code::InvalidValue, "name needs at least one letter or digit.").into());
    }
    if let Some(p) = &b.parent_id {
        let parent = reference::cancer_type(&services.db, p).await.map_err(store)?;
        match parent {
            Some(t) if t.parent_id.is_none() && t.retired_at.is_none() => {}
            Some(_) => {
                return Err(
                    Error::with_message(Code::InvalidValue, "parent_id must be an active top-level type.").into()
                );
            }
            None => return Err(Error::with_message(Code::InvalidValue, "parent_id names no cancer type.").into()),
        }
    }
    let t = reference::add_cancer_type(&services.db, b.parent_id.as_deref(), &name, &description)
        .await
        .map_err(type_error)?;
    services.cache.invalidate("reference").await;
    services
        .auth
        .audit(vec![auth.caller.ctx.event("admin.cancer_type_add", outcome::SUCCESS).resource("reference", &t.id)])
        .await?;
    Ok(HttpResponse::Created().json(t))
}

/// `PATCH /api/v1/admin/cancer-types/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTypeBody {
    pub name: Option<String>,
    pub description: Option<String>,
    /// true retires the type (no longer offered; old assignments keep naming it), false restores it.
    pub retired: Option<bool>,
}

/// Rename, re-describe, retire or restore a cancer type (administrators).
#[utoipa::path(patch, path = "/api/v1/admin/cancer-types/{id}", tag = "reference", request_body = UpdateTypeBody,
    params(("id" = String, Path, description = "Cancer type id")),
    responses((status = 200, description = "The type"), (status = 404, description = "No such type", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_type(
    auth: Authorized<ManageReference>,
    services: web::Data<Services>,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<UpdateTypeBody>()?;
    let current =
        reference::cancer_type(&services.db, &id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))?;
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
    reference::update_cancer_type(&services.db, &current.id, &name, &description, retired_at)
        .await
        .map_err(type_error)?;
    services.cache.invalidate("reference").await;
    services
        .auth
        .audit(vec![
            auth.caller.ctx.event("admin.cancer_type_update", outcome::SUCCESS).resource("reference", &current.id),
        ])
        .await?;
    let updated = reference::cancer_type(&services.db, &current.id)
        .await
        .map_err(store)?
        .ok_or_else(|| Error::new(Code::NotFound))?;
    Ok(HttpResponse::Ok().json(updated))
}

/// The twenty medical record types.
#[utoipa::path(get, path = "/api/v1/record-types", tag = "reference",
    responses((status = 200, description = "`{items}`")), security(("bearer" = [])))]
pub async fn record_types(_: Authorized<ReadReference>, services: web::Data<Services>) -> Result<HttpResponse> {
    let items = careport_store::record_types::all(&services.db).await.map_err(store)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `GET /api/v1/record-types/match` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MatchQuery {
    /// Free text naming a kind of document ("lab result", "CT report").
    pub q: String,
}

/// The record types best matching free text, best first, each with a score from 0 to 1 (only
/// scores of at least 0.3; none if nothing is close).
#[utoipa::path(get, path = "/api/v1/record-types/match", tag = "reference", params(MatchQuery),
    responses((status = 200, description = "`{items: [{id, name, description, score}]}`"),
        (status = 400, description = "q missing or too long", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn match_record_type(
    _: Authorized<ReadReference>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: MatchQuery = super::authn::query(&req)?;
    if q.q.trim().is_empty() || q.q.chars().count() > 200 {
        return Err(Error::with_message(Code::InvalidQuery, "q must be 1 to 200 characters.").into());
    }
    let types = careport_store::record_types::all(&services.db).await.map_err(store)?;
    let items: Vec<_> = careport_store::record_types::rank(&types, &q.q, 3)
        .into_iter()
        .map(|(t, score)| serde_json::json!({ "id": t.id, "name": t.name, "description": t.description, "score": score }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/languages").get(languages))
        .service(r("/api/v1/departments").get(departments))
        .service(r("/api/v1/cancer-types").get(cancer_types))
        .service(r("/api/v1/cancer-types/{id}/subtypes").get(subtypes))
        .service(r("/api/v1/record-types").get(record_types))
        .service(r("/api/v1/record-types/match").get(match_record_type))
        .service(r("/api/v1/admin/cancer-types").post(add_type))
        .service(r("/api/v1/admin/cancer-types/{id}").patch(update_type));
}
