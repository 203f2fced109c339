//! Medical records: upload into a patient's chart (multipart or a raw stream), the chart's list,
//! one record, soft delete (`/api/v1/patients/{id}/records`, `/api/v1/records/{id}`). Reading the
//! content, grants, signed links and erasure are in [`super::record_access`].
//!
//! Adapters over `careport_actors::door::records`. What stays here is the wire: reading a
//! multipart form up to its `file` part, the declared `Content-Length`, and the response
//! headers. An upload is begun before its body is read (who may upload, whether the chart is
//! open, the declared length: 413), and its body is handed to the operation as it streams, so
//! the vault seals it without ever holding the whole file.

use actix_multipart::{Field, Multipart};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::PageRequest;
use careport_actors::door::records::{Once, RecordQuery, UploadFields};
use careport_domain::{Code, Error};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::authn::{Authenticated, Authorized, DeleteDocument, ReadDocument, UploadToPatient, path_id};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn invalid(message: impl Into<String>) -> Error {
    Error::with_message(Code::InvalidValue, message)
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
    /// `medical-images` only: a picture's kind (`xray`, `mri`, `ct`, `ultrasound`,
    /// `mammography`, `pet`, `other`); a DICOM file's modality decides its own.
    pub image_kind: Option<String>,
    /// `medical-images` only: accept a DICOM file whose patient identifiers differ from the
    /// chart's (administrators; `true`/`false`).
    pub override_identity: Option<bool>,
}

impl From<UploadQuery> for UploadFields {
    fn from(q: UploadQuery) -> Self {
        Self {
            record_type: q.record_type,
            title: q.title,
            date: q.date,
            file_name: q.file_name,
            sensitive: q.sensitive,
            image_kind: q.image_kind,
            override_identity: q.override_identity,
        }
    }
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

fn malformed() -> Error {
    Error::with_message(Code::BadRequest, "The multipart body is malformed.")
}

/// Read a small text field of a multipart upload (at most 4 KiB).
async fn text_field(field: &mut Field) -> std::result::Result<String, Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        buf.extend_from_slice(&chunk.map_err(|_| malformed())?);
        if buf.len() > 4096 {
            return Err(invalid("A form field is longer than 4 KiB."));
        }
    }
    String::from_utf8(buf).map_err(|_| invalid("A form field is not UTF-8 text."))
}

/// A form's yes/no field.
async fn flag(field: &mut Field, name: &str) -> std::result::Result<bool, Error> {
    match text_field(field).await?.trim() {
        "true" | "1" | "on" => Ok(true),
        "false" | "0" | "off" | "" => Ok(false),
        _ => Err(invalid(format!("{name} must be true or false."))),
    }
}

/// Read a form's text fields up to its `file` part. The form comes back with the part: the
/// part reads from the form's payload, which must live while the file streams. Fields after
/// the file are not read (the record is committed by then).
async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
) -> std::result::Result<(UploadFields, Multipart, Field), Error> {
    let mut form = Multipart::new(req.headers(), payload.into_inner());
    let mut fields = UploadFields::default();
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|_| malformed())?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "record_type" => fields.record_type = Some(text_field(&mut field).await?),
            "title" => fields.title = Some(text_field(&mut field).await?),
            "date" => fields.date = Some(text_field(&mut field).await?),
            "sensitive" => fields.sensitive = Some(flag(&mut field, "sensitive").await?),
            "image_kind" => fields.image_kind = Some(text_field(&mut field).await?),
            "override_identity" => fields.override_identity = Some(flag(&mut field, "override_identity").await?),
            "file" => {
                fields.file_name = field.content_disposition().and_then(|d| d.get_filename().map(str::to_owned));
                return Ok((fields, form, field));
            }
            other => {
                return Err(invalid(format!(
                    "Unknown form field `{}`; send record_type, title, date, sensitive (image_kind, override_identity \
                     for medical images), then file.",
                    other.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect::<String>()
                )));
            }
        }
    }
    Err(invalid("The form has no `file` part."))
}

/// Upload a file into the patient's chart: `multipart/form-data` with the fields `record_type`,
/// `title`, `date` (optional), `sensitive` (optional) and then `file` (the fields must come
/// before the file, which is streamed as it arrives); or the file itself as the body, with the
/// fields in the query string. Answers 201 with the record.
///
/// A record of type `medical-images` is a DICOM file or a PNG/JPEG/TIFF picture: a DICOM file's
/// metadata is read and kept (`image` in the answer), and its patient identifiers must match the
/// chart (409 `patient_mismatch`, nothing kept) unless an administrator sends
/// `override_identity=true`; previews are made by a job.
///
/// With an `Idempotency-Key` header (1 to 200 visible ASCII characters, the uploader's own, kept
/// a day), sending the same upload again — its answer lost — answers 200 with the record the
/// first one made (`Idempotent-Replayed: true`) and keeps nothing new; the same key for another
/// chart is 409.
#[utoipa::path(post, path = "/api/v1/patients/{id}/records", tag = "records", params(("id" = Uuid, Path, description = "Patient id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 visible ASCII characters: a resend with the same key answers the first upload's record"), UploadQuery),
    request_body(content = String, description = "multipart/form-data (fields, then `file`), or the raw file", content_type = "multipart/form-data"),
    responses((status = 201, description = "The record"),
        (status = 200, description = "The record an earlier upload with the same `Idempotency-Key` made (`Idempotent-Replayed: true`)"),
        (status = 400, description = "Bad metadata", body = super::error::ErrorBody),
        (status = 404, description = "No such patient, or not yours", body = super::error::ErrorBody),
        (status = 403, description = "`override_identity` asked by someone who may not override", body = super::error::ErrorBody),
        (status = 409, description = "The patient's record is deleted; (`patient_mismatch`) a DICOM file names another patient; the `Idempotency-Key` was used for another chart", body = super::error::ErrorBody),
        (status = 413, description = "Over `vault.max_upload_mib` (a medical image: over 1 GiB)", body = super::error::ErrorBody),
        (status = 415, description = "Not PDF, PNG, JPEG, TIFF, DICOM or plain text", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    auth: Authorized<UploadToPatient>,
    services: web::Data<Services>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let pending = services.records().start_upload(auth.pass, declared_length(&req)).await?;
    let key = match req.headers().get("idempotency-key").map(|v| v.to_str().map(str::to_owned)) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(_)) => {
            let e = invalid("Idempotency-Key must be 1 to 200 visible ASCII characters.");
            return Err(pending.refuse(e).await.into());
        }
    };
    let pending = match pending.once(key).await? {
        Once::Fresh(pending) => pending,
        Once::Replayed(record) => {
            // The body is read to its end, unkept: a client still sending it when the answer
            // came would see its connection reset, and send the upload again.
            // At most as much as an upload may send, then the connection may go.
            let (mut payload, mut left) = (payload, services.records().body_limit());
            while let Some(Ok(chunk)) = payload.next().await {
                left = left.saturating_sub(chunk.len() as u64);
                if left == 0 {
                    break;
                }
            }
            return Ok(HttpResponse::Ok()
                .insert_header((header::LOCATION, format!("/api/v1/records/{}", record.id)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header(("Idempotent-Replayed", "true"))
                .json(record));
        }
    };
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let record = if is_multipart {
        match read_form(&req, payload).await {
            // `_form` is held while the part streams from its payload.
            Ok((fields, _form, file)) => pending.store(fields, file).await?,
            Err(e) => return Err(pending.refuse(e).await.into()),
        }
    } else {
        match super::authn::query::<UploadQuery>(&req) {
            Ok(q) => pending.store(q.into(), payload).await?,
            Err(e) => return Err(pending.refuse(e.0).await.into()),
        }
    };
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/records/{}", record.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(record))
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
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The records of a patient's chart that the caller may open, newest first, paginated. A
/// nurse does not see records marked sensitive; an administrator sees those granted to them.
#[utoipa::path(get, path = "/api/v1/patients/{id}/records", tag = "records", params(("id" = Uuid, Path, description = "Patient id"), ListQuery),
    responses((status = 200, description = "`{items, next_cursor}`"), (status = 404, description = "No such patient, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let patient = path_id(&req, "id")?;
    let q: ListQuery = super::authn::query(&req)?;
    let query = RecordQuery {
        record_type: q.record_type,
        from: q.from,
        to: q.to,
        q: q.q,
        modality: None,
        page: PageRequest { limit: q.limit, cursor: q.cursor },
    };
    let page = services.records().list(auth.caller, patient, query).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(page))
}

/// One record's metadata (its content is at `content_url`).
#[utoipa::path(get, path = "/api/v1/records/{id}", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 200, description = "The record"), (status = 404, description = "No such record, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(auth: Authorized<ReadDocument>, services: web::Data<Services>) -> Result<HttpResponse> {
    let record = services.records().read(auth.pass).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(record))
}

/// Soft-delete a record (administrators, and its uploader): it disappears from the chart and
/// its content can no longer be read; the file stays, sealed, for the retention period.
#[utoipa::path(delete, path = "/api/v1/records/{id}", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such record, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(auth: Authorized<DeleteDocument>, services: web::Data<Services>) -> Result<HttpResponse> {
    services.records().delete(auth.pass).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}/records").get(list).post(upload))
        .service(r("/api/v1/records/{id}").get(get).delete(delete));
}
