//! The workflow of ordered studies and tests: ordering one (`POST /api/v1/patients/{id}/orders`),
//! moving it on (`POST /api/v1/orders/{id}/transition`), a chart's orders and log
//! (`GET /api/v1/patients/{id}/workflow`) and one user's transitions for administrators
//! (`GET /api/v1/admin/workflow?user=`). The log is read from the audit trail.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::workflow::{Move, NewOrder};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{Authorized, JsonBody, ReadAudit, ReadWorkflow, WriteOrder, WriteWorkflow};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /api/v1/patients/{id}/orders`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    /// `xray`, `mri`, `ct`, `ultrasound`, `mammography`, `pet`, `biopsy`, `blood` or `other`.
    pub kind: String,
    /// 1 to 500 characters.
    pub description: String,
}

/// `POST /api/v1/orders/{id}/transition`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// `scheduled`, `acquired`, `reported`, `reviewed` or `cancelled`: one step forward, or
    /// cancelled before it is reported.
    pub to: String,
    /// The record the acquisition produced (with `acquired`).
    pub record_id: Option<Uuid>,
    /// The signed report (required with `reported`).
    pub report_id: Option<Uuid>,
}

/// Order a study or test for a patient (state `ordered`, logged).
#[utoipa::path(post, path = "/api/v1/patients/{id}/orders", tag = "workflow", request_body = OrderBody,
    params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 201, description = "The order")), security(("bearer" = [])))]
pub async fn order(
    auth: Authorized<WriteWorkflow>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<OrderBody>()?;
    let o = services.workflow().order(auth.pass, NewOrder { kind: b.kind, description: b.description }).await?;
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(o))
}

/// Move an order on; each move is an audit event, and the log is read from the trail.
#[utoipa::path(post, path = "/api/v1/orders/{id}/transition", tag = "workflow", request_body = TransitionBody,
    params(("id" = Uuid, Path, description = "Order id")),
    responses((status = 200, description = "The order"), (status = 409, description = "Not a move the workflow has", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn transition(
    auth: Authorized<WriteOrder>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<TransitionBody>()?;
    let m = Move { to: b.to, record_id: b.record_id, report_id: b.report_id };
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(services.workflow().advance(auth.pass, m).await?))
}

/// A chart's orders and its log, newest first.
#[utoipa::path(get, path = "/api/v1/patients/{id}/workflow", tag = "workflow", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "`{orders, log}`")), security(("bearer" = [])))]
pub async fn chart(auth: Authorized<ReadWorkflow>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(services.workflow().chart(auth.pass).await?))
}

/// `GET /api/v1/admin/workflow` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ByUserQuery {
    /// The user whose transitions to show.
    pub user: Uuid,
    /// 1 to 500 (default 100).
    pub limit: Option<i64>,
}

/// One user's transitions, newest first (administrators).
#[utoipa::path(get, path = "/api/v1/admin/workflow", tag = "workflow", params(ByUserQuery),
    responses((status = 200, description = "`{items}`")), security(("bearer" = [])))]
pub async fn by_user(
    auth: Authorized<ReadAudit>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: ByUserQuery = super::authn::query(&req)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(careport_domain::Error::with_message(
            careport_domain::Code::InvalidQuery,
            "limit must be 1 to 500.",
        )
        .into());
    }
    let items = services.workflow().by_user(auth.pass, q.user, limit).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(serde_json::json!({ "items": items })))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}/orders").post(order))
        .service(r("/api/v1/orders/{id}/transition").post(transition))
        .service(r("/api/v1/patients/{id}/workflow").get(chart))
        .service(r("/api/v1/admin/workflow").get(by_user));
}
