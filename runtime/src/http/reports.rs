//! Diagnosis reports: writing one into a chart (`POST /api/v1/patients/{id}/reports`), the
//! chart's list, one version with its history, changing a draft (`PATCH`), signing it off
//! (`/finalize`), amending a signed one (`/amend`) and its PDF as a record (`/export`). The
//! rules (who writes, who signs, who reads which version) are the door's and the policies'.

use actix_web::{HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::reports::{ReportChange, ReportInput, ReportText};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::authn::{Authorized, JsonBody, ListReports, ReadReport, WriteReport, WriteReports};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn no_store(mut res: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    res.insert_header(("cache-control", "no-store"));
    res
}

/// A report's text (new, or an amendment).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// 1 to 20,000 characters.
    pub findings: String,
    /// 1 to 20,000 characters.
    pub impression: String,
    pub recommendations: Option<String>,
    /// ICD-10 codes (`C34.32`), checked in format.
    #[serde(default)]
    pub icd10: Vec<String>,
    /// Records of the same chart the report is about.
    #[serde(default)]
    pub record_ids: Vec<Uuid>,
    /// `imaging` (default) or `pathology`: the record type its PDF becomes.
    pub kind: Option<String>,
}

impl From<ReportBody> for ReportInput {
    fn from(b: ReportBody) -> Self {
        ReportInput {
            text: ReportText {
                findings: b.findings,
                impression: b.impression,
                recommendations: b.recommendations,
                icd10: b.icd10,
            },
            record_ids: b.record_ids,
            kind: b.kind,
        }
    }
}

/// A change to a draft: each field given replaces the draft's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportPatch {
    pub findings: Option<String>,
    pub impression: Option<String>,
    /// `null` removes them.
    #[serde(default, with = "super::admin::double_option")]
    #[schema(value_type = Option<String>)]
    pub recommendations: Option<Option<String>>,
    pub icd10: Option<Vec<String>>,
    pub record_ids: Option<Vec<Uuid>>,
    pub kind: Option<String>,
}

/// Write a diagnosis report (a draft) into a chart: the patient's assigned doctors.
#[utoipa::path(post, path = "/api/v1/patients/{id}/reports", tag = "reports", request_body = ReportBody,
    params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 201, description = "The draft"), (status = 400, description = "A field or an ICD-10 code is not valid", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    auth: Authorized<WriteReports>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<ReportBody>()?;
    let report = services.reports().create(auth.pass, b.into()).await?;
    Ok(no_store(HttpResponse::Created())
        .insert_header(("location", format!("/api/v1/reports/{}", report.id)))
        .json(report))
}

/// A chart's reports: the newest version of each that the caller may read (a patient: the
/// newest signed one), newest first.
#[utoipa::path(get, path = "/api/v1/patients/{id}/reports", tag = "reports", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "`{items}`")), security(("bearer" = [])))]
pub async fn list(auth: Authorized<ListReports>, services: web::Data<Services>) -> Result<HttpResponse> {
    let items = services.reports().list(auth.pass).await?;
    Ok(no_store(HttpResponse::Ok()).json(serde_json::json!({ "items": items })))
}

/// One version of a report with the versions the caller may read (`versions`, oldest first).
#[utoipa::path(get, path = "/api/v1/reports/{id}", tag = "reports", params(("id" = Uuid, Path, description = "Report version id")),
    responses((status = 200, description = "The version and its history")), security(("bearer" = [])))]
pub async fn get(auth: Authorized<ReadReport>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(no_store(HttpResponse::Ok()).json(services.reports().get(auth.pass).await?))
}

/// Change a draft. A signed report answers 409 `report_final`.
#[utoipa::path(patch, path = "/api/v1/reports/{id}", tag = "reports", request_body = ReportPatch,
    params(("id" = Uuid, Path, description = "Report version id")),
    responses((status = 200, description = "The draft"), (status = 409, description = "Signed: amend it instead", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    auth: Authorized<WriteReport>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<ReportPatch>()?;
    let change = ReportChange {
        findings: b.findings,
        impression: b.impression,
        recommendations: b.recommendations,
        icd10: b.icd10,
        record_ids: b.record_ids,
        kind: b.kind,
    };
    Ok(no_store(HttpResponse::Ok()).json(services.reports().edit(auth.pass, change).await?))
}

/// Sign a draft off: it becomes `final` and immutable (and the version it amends `amended`).
/// With `clinic.report_sign_off = "second_reader"`, its author may not (409 `second_reader_required`).
#[utoipa::path(post, path = "/api/v1/reports/{id}/finalize", tag = "reports", params(("id" = Uuid, Path, description = "Report version id")),
    responses((status = 200, description = "Signed"), (status = 409, description = "Already signed, or a second reader must sign", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn finalize(auth: Authorized<WriteReport>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(no_store(HttpResponse::Ok()).json(services.reports().finalize(auth.pass).await?))
}

/// Amend a signed report: a new draft version pointing to it; the signed one stays readable.
#[utoipa::path(post, path = "/api/v1/reports/{id}/amend", tag = "reports", request_body = ReportBody,
    params(("id" = Uuid, Path, description = "Report version id (signed)")),
    responses((status = 201, description = "The amendment (a draft)"), (status = 409, description = "Not signed, or an amendment is being written", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn amend(
    auth: Authorized<WriteReport>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<ReportBody>()?;
    let report = services.reports().amend(auth.pass, b.into()).await?;
    Ok(no_store(HttpResponse::Created())
        .insert_header(("location", format!("/api/v1/reports/{}", report.id)))
        .json(report))
}

/// A signed report as a PDF record of the chart ("Imaging Reports" or "Pathology Reports").
#[utoipa::path(post, path = "/api/v1/reports/{id}/export", tag = "reports", params(("id" = Uuid, Path, description = "Report version id (signed)")),
    responses((status = 201, description = "The record"), (status = 409, description = "Not signed", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(auth: Authorized<WriteReport>, services: web::Data<Services>) -> Result<HttpResponse> {
    let record = services.reports().export(auth.pass).await?;
    Ok(no_store(HttpResponse::Created()).json(record))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}/reports").post(create).get(list))
        .service(r("/api/v1/reports/{id}").get(get).patch(update))
        .service(r("/api/v1/reports/{id}/finalize").post(finalize))
        .service(r("/api/v1/reports/{id}/amend").post(amend))
        .service(r("/api/v1/reports/{id}/export").post(export));
}
