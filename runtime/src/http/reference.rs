//! The clinic's reference data: `GET /api/v1/languages` (public: the registration form needs
//! it), `GET /api/v1/departments` and `GET /api/v1/cancer-types` (signed-in users), and the
//! administration of cancer types under `/api/v1/admin/cancer-types`.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::reference::{CancerTypeChange, NewCancerType};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::authn::{Authorized, JsonBody, ManageReference, ReadReference};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// The six languages, in display order.
#[utoipa::path(get, path = "/api/v1/languages", tag = "reference", responses((status = 200, description = "Languages")))]
pub async fn languages(services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(services.reference().languages().await?))
}

/// The clinic's departments.
#[utoipa::path(get, path = "/api/v1/departments", tag = "reference",
    responses((status = 200, description = "Departments")), security(("bearer" = [])))]
pub async fn departments(auth: Authorized<ReadReference>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(services.reference().departments(auth.pass).await?))
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

/// The cancer-type tree (or, with `q`, the types matching it).
#[utoipa::path(get, path = "/api/v1/cancer-types", tag = "reference", params(TypesQuery),
    responses((status = 200, description = "Tree of types")), security(("bearer" = [])))]
pub async fn cancer_types(
    auth: Authorized<ReadReference>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: TypesQuery = super::authn::query(&req)?;
    Ok(HttpResponse::Ok().json(services.reference().cancer_types(auth.pass, q.q.as_deref(), q.include_retired).await?))
}

/// The subtypes of one top-level type.
#[utoipa::path(get, path = "/api/v1/cancer-types/{id}/subtypes", tag = "reference",
    params(("id" = String, Path, description = "Cancer type id (a slug)")),
    responses((status = 200, description = "Subtypes"), (status = 404, description = "No such type", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn subtypes(
    auth: Authorized<ReadReference>,
    services: web::Data<Services>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(services.reference().subtypes(auth.pass, &id).await?))
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
    let new = NewCancerType { parent_id: b.parent_id, name: b.name, description: b.description };
    Ok(HttpResponse::Created().json(services.reference().add_type(auth.pass, new).await?))
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
    responses((status = 200, description = "The type"), (status = 404, description = "No such type", body = super::error::ErrorBody),
        (status = 409, description = "A type of that name already exists at that level", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_type(
    auth: Authorized<ManageReference>,
    services: web::Data<Services>,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<UpdateTypeBody>()?;
    let change = CancerTypeChange { name: b.name, description: b.description, retired: b.retired };
    Ok(HttpResponse::Ok().json(services.reference().update_type(auth.pass, &id, change).await?))
}

/// The twenty medical record types.
#[utoipa::path(get, path = "/api/v1/record-types", tag = "reference",
    responses((status = 200, description = "`{items}`")), security(("bearer" = [])))]
pub async fn record_types(auth: Authorized<ReadReference>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(services.reference().record_types(auth.pass).await?))
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
    auth: Authorized<ReadReference>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: MatchQuery = super::authn::query(&req)?;
    Ok(HttpResponse::Ok().json(services.reference().match_record_type(auth.pass, &q.q).await?))
}

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
