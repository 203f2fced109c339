//! Medical records: upload into a patient's chart (multipart or a raw stream), the chart's list,
//! one record, soft delete (`/api/v1/patients/{id}/records`, `/api/v1/records/{id}`). Reading the
//! content, grants, signed links and erasure are in [`super::record_access`].
//!
//! An upload is checked before its body is read — who may upload, the metadata, the declared
//! length (413) — then its first bytes decide what it is (415), and only then is anything
//! stored. The vault seals it as it streams; the record becomes visible when it is committed.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::audit::{EventExt, outcome};
use careport_actors::vault::UploadMeta;
use careport_actors::{Caller, Services};
use careport_domain::{Code, Error};
use careport_store::vault::{self as stored, RecordFilter, RecordRow};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use uuid::Uuid;

use super::authn::{Authorized, ReadDocument, ReadPatient, UploadToPatient};
use super::error::ApiError;
use super::page::{self, store};
use super::patients::{invalid, path_id, rfc3339, visible};

type Result<T> = std::result::Result<T, ApiError>;

/// A record as the API shows it.
pub fn record_json(r: &RecordRow) -> Value {
    serde_json::json!({
        "id": r.id,
        "patient_id": r.patient_id,
        "record_type": r.record_type,
        "title": r.title,
        "date": r.clinical_date,
        "file_name": r.file_name,
        "media_type": r.media_type,
        "size": r.size,
        "sensitive": r.sensitive,
        "uploaded_by": r.uploaded_by,
        "created_at": rfc3339(r.created_at),
        "deleted_at": r.deleted_at.map(rfc3339),
        "content_url": format!("/api/v1/records/{}/content", r.id),
    })
}

/// The metadata of an upload, from the multipart fields or the raw upload's query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// A record type id (`GET /api/v1/record-types`).
    pub record_type: Option<String>,
    /// 1 to 200 characters.
    pub title: Option<String>,
    /// The clinical date, `YYYY-MM-DD`, not in the future.
    pub date: Option<String>,
    /// The file's name, shown when it is downloaded (raw uploads; multipart takes the part's).
    pub file_name: Option<String>,
    /// Hide the record from the department's nurses (`true`/`false`).
    pub sensitive: Option<bool>,
}

struct Checked {
    record_type: String,
    title: String,
    date: Option<String>,
    sensitive: bool,
}

async fn check_meta(services: &Services, q: &UploadQuery) -> std::result::Result<Checked, Error> {
    let record_type = q.record_type.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        invalid("record_type is required (GET /api/v1/record-types lists them; /match finds one from free text).")
    })?;
    let types = careport_store::record_types::all(&services.db).await.map_err(store)?;
    if !types.iter().any(|t| t.id == record_type) {
        return Err(invalid("record_type names no record type (GET /api/v1/record-types lists them)."));
    }
    let title = q.title.as_deref().map(str::trim).unwrap_or_default();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        return Err(invalid("title is required: 1 to 200 characters, no control characters."));
    }
    let date = match q.date.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(clinical_date(s)?),
    };
    Ok(Checked {
        record_type: record_type.to_owned(),
        title: title.to_owned(),
        date,
        sensitive: q.sensitive.unwrap_or(false),
    })
}

/// A `YYYY-MM-DD` date that is not in the future.
pub(super) fn clinical_date(s: &str) -> std::result::Result<String, Error> {
    let bad = || invalid("date must be a date written YYYY-MM-DD, not in the future.");
    let d: jiff::civil::Date = s.parse().map_err(|_| bad())?;
    if s.len() != 10 || d > jiff::Zoned::now().date() || d.year() < 1880 {
        return Err(bad());
    }
    Ok(d.to_string())
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Read a small text field of a multipart upload (at most 4 KiB).
async fn text_field(field: &mut actix_multipart::Field) -> std::result::Result<String, Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|_| Error::with_message(Code::BadRequest, "The multipart body is malformed."))?;
        buf.extend_from_slice(&chunk);
        if buf.len() > 4096 {
            return Err(invalid("A form field is longer than 4 KiB."));
        }
    }
    String::from_utf8(buf).map_err(|_| invalid("A form field is not UTF-8 text."))
}

/// Upload a file into the patient's chart: `multipart/form-data` with the fields `record_type`,
/// `title`, `date` (optional), `sensitive` (optional) and then `file` (the fields must come
/// before the file, which is streamed as it arrives); or the file itself as the body, with the
/// fields in the query string. Answers 201 with the record.
#[utoipa::path(post, path = "/api/v1/patients/{id}/records", tag = "records", params(("id" = Uuid, Path, description = "Patient id"), UploadQuery),
    request_body(content = String, description = "multipart/form-data (fields, then `file`), or the raw file", content_type = "multipart/form-data"),
    responses((status = 201, description = "The record"), (status = 400, description = "Bad metadata", body = super::error::ErrorBody),
        (status = 404, description = "No such patient, or not yours", body = super::error::ErrorBody),
        (status = 413, description = "Over `vault.max_upload_mib`", body = super::error::ErrorBody),
        (status = 415, description = "Not PDF, PNG, JPEG, TIFF, DICOM or plain text", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    auth: Authorized<UploadToPatient>,
    services: web::Data<Services>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let patient = path_id(&auth.resource_id)?;
    let max = services.vault.max_upload_bytes();
    let p = visible(&services, &auth.caller, patient).await?;
    if p.deleted_at.is_some() {
        return Err(Error::with_message(Code::Conflict, "The patient's record is deleted; restore it first.").into());
    }
    // Multipart framing adds a little to the file; anything beyond that is refused unread.
    if declared_length(&req).is_some_and(|n| n > max.saturating_add(64 << 10)) {
        return Err(refused(
            &services,
            &auth.caller,
            patient,
            Error::with_message(
                Code::PayloadTooLarge,
                format!("The file is larger than the limit of {} MiB.", services.vault.config().max_upload_mib),
            ),
        )
        .await);
    }
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let result = if is_multipart {
        upload_multipart(&services, &auth.caller, patient, &req, payload).await
    } else {
        let q: UploadQuery = super::authn::query(&req)?;
        let meta = check_meta(&services, &q).await?;
        let name = q.file_name.clone().unwrap_or_default();
        let body = payload.map(|r| r.map_err(|e| e.to_string()));
        services.vault.upload(upload_meta(&auth.caller, patient, meta, name), body).await
    };
    let uploaded = match result {
        Ok(u) => u,
        Err(e) => return Err(refused(&services, &auth.caller, patient, e).await),
    };
    let r = &uploaded.record;
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event("record.upload", outcome::SUCCESS)
                .resource("document", r.id)
                .patient(patient)
                .detail(format!("{} bytes, {}", r.size, r.media_type)),
        ])
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/records/{}", r.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(record_json(r)))
}

/// Audit a refused upload (its code only: no name, no content) and pass the error on.
async fn refused(services: &Services, caller: &Caller, patient: Uuid, e: Error) -> ApiError {
    let event = caller
        .ctx
        .event("record.upload", outcome::FAILURE)
        .resource("patient", patient)
        .patient(patient)
        .detail(e.code().as_str());
    if let Err(audit) = services.auth.audit(vec![event]).await {
        tracing::warn!(error = %audit, "could not audit a refused upload");
    }
    e.into()
}

fn upload_meta(caller: &Caller, patient: Uuid, meta: Checked, file_name: String) -> UploadMeta {
    UploadMeta {
        patient,
        record_type: meta.record_type,
        title: meta.title,
        clinical_date: meta.date,
        file_name,
        sensitive: meta.sensitive,
        uploaded_by: caller.user(),
    }
}

async fn upload_multipart(
    services: &Services,
    caller: &Caller,
    patient: Uuid,
    req: &HttpRequest,
    payload: web::Payload,
) -> std::result::Result<careport_actors::vault::Uploaded, Error> {
    let mut form = Multipart::new(req.headers(), payload.into_inner());
    let mut q = UploadQuery::default();
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|_| Error::with_message(Code::BadRequest, "The multipart body is malformed."))?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "record_type" => q.record_type = Some(text_field(&mut field).await?),
            "title" => q.title = Some(text_field(&mut field).await?),
            "date" => q.date = Some(text_field(&mut field).await?),
            "sensitive" => {
                q.sensitive = Some(match text_field(&mut field).await?.trim() {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" | "" => false,
                    _ => return Err(invalid("sensitive must be true or false.")),
                })
            }
            "file" => {
                let meta = check_meta(services, &q).await?;
                let file_name =
                    field.content_disposition().and_then(|d| d.get_filename().map(str::to_owned)).unwrap_or_default();
                let body = field.map(|r| r.map_err(|e| e.to_string()));
                // Fields after the file are not read: the record is already committed.
                return services.vault.upload(upload_meta(caller, patient, meta, file_name), body).await;
            }
            other => {
                return Err(invalid(format!(
                    "Unknown form field `{}`; send record_type, title, date, sensitive, then file.",
                    other.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect::<String>()
                )));
            }
        }
    }
    Err(invalid("The form has no `file` part."))
}

/// `GET /api/v1/patients/{id}/records` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this record type.
    pub record_type: Option<String>,
    /// Clinical dates from (inclusive, `YYYY-MM-DD`).
    pub from: Option<String>,
    /// Clinical dates to (inclusive, `YYYY-MM-DD`).
    pub to: Option<String>,
    /// Text in the title, any case.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The records of a patient's chart that the caller may open, newest first, paginated. A
/// nurse does not see records marked sensitive; an administrator sees those granted to them.
#[utoipa::path(get, path = "/api/v1/patients/{id}/records", tag = "records", params(("id" = Uuid, Path, description = "Patient id"), ListQuery),
    responses((status = 200, description = "`{items, next_cursor}`"), (status = 404, description = "No such patient, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    auth: Authorized<ReadPatient>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: ListQuery = super::authn::query(&req)?;
    let patient = path_id(&auth.resource_id)?;
    visible(&services, &auth.caller, patient).await?;
    let limit = page::limit(q.limit)?;
    let mut before = page::decode_uuid(q.cursor.as_deref())?;
    let date = |field: &str, v: &Option<String>| -> std::result::Result<Option<String>, Error> {
        v.as_deref()
            .map(|s| {
                s.parse::<jiff::civil::Date>()
                    .map(|d| d.to_string())
                    .map_err(|_| Error::with_message(Code::InvalidQuery, format!("{field} must be YYYY-MM-DD.")))
            })
            .transpose()
    };
    let filter = RecordFilter {
        record_type: q.record_type.clone(),
        from: date("from", &q.from)?,
        to: date("to", &q.to)?,
        text: q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|t| t.chars().take(100).collect()),
        include_deleted: false,
    };
    // The page holds only what the caller may open: each row is asked of the policies (a
    // nurse's sensitive rows, an administrator's ungranted ones drop out), reading on until
    // the page is full or the chart ends.
    let chart = services.auth.chart_facts(patient).await?;
    let mut items: Vec<RecordRow> = Vec::new();
    let mut next = None;
    for round in 0..20 {
        let rows = stored::records(&services.db, patient, &filter, before, limit + 1).await.map_err(store)?;
        let more = rows.len() as i64 > limit;
        let mut full = false;
        for r in rows.into_iter().take(limit as usize) {
            before = Some(r.id);
            let facts = services.auth.record_facts(&auth.caller, &r, &chart, true).await?;
            if services.auth.permits(&auth.caller, "read", "document", &r.id.to_string(), &facts)? {
                items.push(r);
                if items.len() as i64 == limit {
                    full = true;
                    break;
                }
            }
        }
        if full {
            next = items.last().map(|r| r.id);
            break;
        }
        if !more {
            break;
        }
        if round == 19 {
            // A short page, but the chart goes on: the client continues from here.
            next = before;
        }
    }
    let next_cursor = next.map(|id| page::encode(&id.to_string()));
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event("record.list", outcome::SUCCESS)
                .resource("patient", patient)
                .patient(patient)
                .detail(format!("{} records", items.len())),
        ])
        .await?;
    let items: Vec<Value> = items.iter().map(record_json).collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "items": items, "next_cursor": next_cursor })))
}

/// The record `id` if it and its patient's record are not deleted (else 404 to everyone).
pub(super) async fn live_record(services: &Services, id: Uuid) -> std::result::Result<RecordRow, Error> {
    stored::live_record(&services.db, id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))
}

/// One record's metadata (its content is at `content_url`).
#[utoipa::path(get, path = "/api/v1/records/{id}", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 200, description = "The record"), (status = 404, description = "No such record, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(auth: Authorized<ReadDocument>, services: web::Data<Services>) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    let r = live_record(&services, id).await?;
    services
        .auth
        .audit(vec![
            auth.caller.ctx.event("record.view", outcome::SUCCESS).resource("document", id).patient(r.patient_id),
        ])
        .await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(record_json(&r)))
}

/// Soft-delete a record (administrators, and its uploader): it disappears from the chart and
/// its content can no longer be read; the file stays, sealed, for the retention period.
#[utoipa::path(delete, path = "/api/v1/records/{id}", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such record, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    auth: Authorized<super::authn::DeleteDocument>,
    services: web::Data<Services>,
) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    let r = live_record(&services, id).await?;
    if !stored::delete_record(&services.db, id, auth.caller.user()).await.map_err(store)? {
        return Err(Error::new(Code::NotFound).into());
    }
    services
        .auth
        .audit(vec![
            auth.caller.ctx.event("record.delete", outcome::SUCCESS).resource("document", id).patient(r.patient_id),
        ])
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}/records").get(list).post(upload))
        .service(r("/api/v1/records/{id}").get(get).delete(delete));
}
