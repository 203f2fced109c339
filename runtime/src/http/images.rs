//! Medical images: a chart's images (`GET /api/v1/patients/{id}/images`) and an image's previews
//! (`GET /api/v1/records/{id}/preview?size=thumb|web`). Uploading one is the records' upload
//! with `record_type=medical-images`; its content and signed links are the records' too.
//!
//! Adapters over `careport_actors::door::images`.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::PageRequest;
use careport_actors::door::images::ImageQuery;
use serde::Deserialize;
use utoipa::IntoParams;

use super::authn::{Authenticated, Authorized, ReadDocument, client_info, path_id};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /api/v1/patients/{id}/images` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImagesQuery {
    /// A kind (`xray`, `mri`, `ct`, `ultrasound`, `mammography`, `pet`, `other`) or a DICOM
    /// modality code (`CT`, `MR`, `CR`, `DX`, `US`, `MG`, `PT`, …).
    pub modality: Option<String>,
    /// Study (clinical) dates from (inclusive, `YYYY-MM-DD`).
    pub from: Option<String>,
    /// Study (clinical) dates to (inclusive, `YYYY-MM-DD`).
    pub to: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The chart's medical images that the caller may open, newest first, paginated: records of type
/// `medical-images`, each with its `image` metadata (kind, modality, body part, UIDs, study date,
/// size, identity check, preview state and URLs). The same decisions as the chart's records.
#[utoipa::path(get, path = "/api/v1/patients/{id}/images", tag = "records", params(("id" = Uuid, Path, description = "Patient id"), ImagesQuery),
    responses((status = 200, description = "`{items, next_cursor}`"), (status = 404, description = "No such patient, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let patient = path_id(&req, "id")?;
    let q: ImagesQuery = super::authn::query(&req)?;
    let query = ImageQuery {
        modality: q.modality,
        from: q.from,
        to: q.to,
        page: PageRequest { limit: q.limit, cursor: q.cursor },
    };
    let page = services.images().list(auth.caller, patient, query).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(page))
}

/// `GET /api/v1/records/{id}/preview` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// `thumb` (at most 256 × 256, the default) or `web` (at most 1024 × 1024).
    pub size: Option<String>,
    /// A signed link to the record (`POST /api/v1/records/{id}/links`), instead of a bearer token.
    pub link: Option<String>,
}

/// An image's preview, a grey PNG: 404 `preview_not_ready` while its job runs, 404 `no_preview`
/// for a record that is not an image or an image whose pixels are not decoded (the message says
/// why: compressed DICOM pixel data, for one). Audited like a download. A signed link to the
/// record opens its previews too (`?link=`, or as a bearer token).
#[utoipa::path(get, path = "/api/v1/records/{id}/preview", tag = "records", params(("id" = Uuid, Path, description = "Record id"), PreviewQuery),
    responses((status = 200, description = "The PNG", content_type = "image/png"),
        (status = 401, description = "No token, or an expired or revoked link", body = super::error::ErrorBody),
        (status = 404, description = "No such record, or not yours; `preview_not_ready`; `no_preview`", body = super::error::ErrorBody),
        (status = 410, description = "The file was erased with its patient's keys", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn preview(services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let q: PreviewQuery = super::authn::query(&req)?;
    let pass = match q.link.as_deref() {
        Some(link) => services.records().link_pass(link, &client_info(&req), path_id(&req, "id")?).await?,
        None => Authorized::<ReadDocument>::extract(&req).await?.pass,
    };
    let png = services.images().preview(pass, q.size.as_deref().unwrap_or("thumb")).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/png"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_DISPOSITION, "inline"))
        .body(png))
}

pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}/images").get(list)).service(r("/api/v1/records/{id}/preview").get(preview));
}
