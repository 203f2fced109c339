//! The clinic's statistics (`GET /api/v1/admin/stats`, administrators), the cluster's nodes
//! (`GET /api/v1/admin/cluster`, administrators) and each role's start
//! page (`GET /api/v1/dashboard`): a clinician's patients and appointments, a patient's next
//! appointment and care team, an administrator's statistics.

use actix_web::{HttpResponse, web};
use careport_actors::Services;

use super::authn::{Authorized, ReadDashboard, ReadStats};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// Counts: accounts by role, patients by department and by cancer type, appointments by status
/// and by week (weeks start Monday 00:00 UTC; eight weeks back, four ahead). No patient data.
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin",
    responses((status = 200, description = "Statistics")), security(("bearer" = [])))]
pub async fn admin_stats(auth: Authorized<ReadStats>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(services.dashboard().stats(auth.pass).await?))
}

/// The nodes of the cluster as this node hears them on the event bus: itself first, then every
/// node heard within three of its heartbeats — name, version, backend, uptime, state (`ready`,
/// `draining`, `store_down`), jobs running on it now, done and failed since it started, and how
/// long ago it was heard. One embedded node lists itself alone. Administrators (the policies'
/// `read` on `stats`).
#[utoipa::path(get, path = "/api/v1/admin/cluster", tag = "admin",
    responses((status = 200, description = "`{node, nodes: [...]}`")), security(("bearer" = [])))]
pub async fn admin_cluster(_auth: Authorized<ReadStats>, services: web::Data<Services>) -> Result<HttpResponse> {
    let nodes = services.cluster.nodes().await;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(serde_json::json!({ "node": services.cluster.node(), "nodes": nodes })))
}

/// The caller's start page, by role.
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "users",
    responses((status = 200, description = "`{role, …}`: what this role starts from")), security(("bearer" = [])))]
pub async fn dashboard(auth: Authorized<ReadDashboard>, services: web::Data<Services>) -> Result<HttpResponse> {
    let page = services.dashboard().start_page(auth.pass).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(page))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/admin/stats").get(admin_stats))
        .service(r("/api/v1/admin/cluster").get(admin_cluster))
        .service(r("/api/v1/dashboard").get(dashboard));
}
