//! Billing: a patient's account (`GET /api/v1/patients/{id}/billing`: items and totals per
//! status), adding an item, paying or cancelling one, and the clinic's figures
//! (`GET /api/v1/admin/billing/stats`). Amounts are integers in minor units of `clinic.currency`.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::billing::NewBill;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{Authorized, JsonBody, ReadBilling, ReadBillingStats, SettleBill, WriteBilling};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /api/v1/patients/{id}/billing`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillBody {
    /// The clinic's code for the service (1 to 32 characters).
    pub service_code: String,
    pub description: String,
    /// 1 to 100,000.
    pub quantity: i64,
    /// Minor units (cents) of `clinic.currency`, an integer.
    pub unit_price: i64,
    /// Percent as a string with at most two decimals ("20", "5.5"); absent: no tax.
    pub tax_rate: Option<String>,
    /// `YYYY-MM-DD`.
    pub due_date: String,
    /// `unpaid` (default) or `pending`.
    pub status: Option<String>,
    pub appointment_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub report_id: Option<Uuid>,
}

/// A patient's bill items and their totals per status (`unpaid`, `pending`, `paid`, `overdue`,
/// `cancelled`), in minor units.
#[utoipa::path(get, path = "/api/v1/patients/{id}/billing", tag = "billing", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "`{currency, items, totals}`")), security(("bearer" = [])))]
pub async fn account(auth: Authorized<ReadBilling>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(services.billing().account(auth.pass).await?))
}

/// Add an item to a patient's account (administrators).
#[utoipa::path(post, path = "/api/v1/patients/{id}/billing", tag = "billing", request_body = BillBody,
    params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 201, description = "The item"), (status = 400, description = "A value is not valid", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    auth: Authorized<WriteBilling>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<BillBody>()?;
    let new = NewBill {
        service_code: b.service_code,
        description: b.description,
        quantity: b.quantity,
        unit_price: b.unit_price,
        tax_rate: b.tax_rate,
        due_date: b.due_date,
        status: b.status,
        appointment_id: b.appointment_id,
        record_id: b.record_id,
        report_id: b.report_id,
    };
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(services.billing().create(auth.pass, new).await?))
}

/// Record an open item paid (who and when). 409 `bill_closed` if it is paid or cancelled.
#[utoipa::path(post, path = "/api/v1/billing/{id}/pay", tag = "billing", params(("id" = Uuid, Path, description = "Bill item id")),
    responses((status = 200, description = "The item"), (status = 409, description = "Already paid or cancelled", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn pay(auth: Authorized<SettleBill>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(services.billing().pay(auth.pass).await?))
}

/// Cancel an open item (who and when). 409 `bill_closed` if it is paid or cancelled.
#[utoipa::path(post, path = "/api/v1/billing/{id}/cancel", tag = "billing", params(("id" = Uuid, Path, description = "Bill item id")),
    responses((status = 200, description = "The item"), (status = 409, description = "Already paid or cancelled", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(auth: Authorized<SettleBill>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(services.billing().cancel(auth.pass).await?))
}

/// `GET /api/v1/admin/billing/stats` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// First day (`YYYY-MM-DD`); default: the first of the month eleven months before `to`.
    pub from: Option<String>,
    /// Last day (`YYYY-MM-DD`); default: today.
    pub to: Option<String>,
}

/// Revenue by month (by the day paid), what is outstanding and what is overdue.
#[utoipa::path(get, path = "/api/v1/admin/billing/stats", tag = "billing", params(StatsQuery),
    responses((status = 200, description = "`{currency, from, to, revenue_by_month, outstanding, overdue}`")),
    security(("bearer" = [])))]
pub async fn stats(
    auth: Authorized<ReadBillingStats>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: StatsQuery = super::authn::query(&req)?;
    let s = services.billing().stats(auth.pass, q.from.as_deref(), q.to.as_deref()).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(s))
}

/// `GET /api/v1/admin/billing` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AllQuery {
    /// `unpaid`, `pending`, `paid`, `overdue` (open and past its due date) or `cancelled`.
    pub status: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The clinic's bill items across patients, newest first, paginated, by status as shown
/// (`overdue` computed from the due date): the front desk's list of what to chase.
#[utoipa::path(get, path = "/api/v1/admin/billing", tag = "billing", params(AllQuery),
    responses((status = 200, description = "`{items, next_cursor}`"),
        (status = 400, description = "A bad status, limit or cursor", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn all(
    auth: Authorized<ReadBillingStats>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: AllQuery = super::authn::query(&req)?;
    let page = careport_actors::door::PageRequest { limit: q.limit, cursor: q.cursor };
    let items = services.billing().all(auth.pass, q.status.as_deref(), page).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(items))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}/billing").get(account).post(create))
        .service(r("/api/v1/billing/{id}/pay").post(pay))
        .service(r("/api/v1/billing/{id}/cancel").post(cancel))
        .service(r("/api/v1/admin/billing").get(all))
        .service(r("/api/v1/admin/billing/stats").get(stats));
}
