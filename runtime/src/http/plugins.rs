//! Plugin administration under `/api/v1/admin/plugins` (administrators): list with statistics,
//! upload, enable, disable, reload. Every change is audited.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::plugins::Change;
use careport_domain::{Code, Error};
use serde::Deserialize;
use utoipa::ToSchema;

use super::authn::{Authorized, JsonBody, ManagePlugins};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn name_of(req: &HttpRequest) -> String {
    req.match_info().get("name").unwrap_or_default().to_owned()
}

/// The installed plugins with their statistics, and the directories that failed to load.
#[utoipa::path(get, path = "/api/v1/admin/plugins", tag = "admin",
    responses((status = 200, description = "`{items, failed}`")), security(("bearer" = [])))]
pub async fn list(auth: Authorized<ManagePlugins>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(services.plugins().list(auth.pass)))
}

/// `POST /api/v1/admin/plugins`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    /// The text of `plugin.toml`.
    pub manifest: String,
    /// The module named by the manifest's `entry`, base64.
    pub module_base64: String,
}

/// Upload a plugin, or a new version of one: validated and compiled first, then swapped in
/// atomically; a refused version leaves the serving one in place (422 `plugin_refused`).
#[utoipa::path(post, path = "/api/v1/admin/plugins", tag = "admin", request_body = UploadBody,
    responses((status = 201, description = "Installed"), (status = 422, description = "Refused, with the reason", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    auth: Authorized<ManagePlugins>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<UploadBody>()?;
    let module = data_encoding::BASE64
        .decode(b.module_base64.trim().as_bytes())
        .map_err(|_| Error::with_message(Code::InvalidValue, "module_base64 is not base64."))?;
    let m = services.plugins().upload(auth.pass, b.manifest, module).await?;
    Ok(HttpResponse::Created()
        .json(serde_json::json!({ "name": m.name, "version": m.version, "kind": m.kind, "contract": m.contract })))
}

async fn change(
    auth: Authorized<ManagePlugins>,
    services: web::Data<Services>,
    req: HttpRequest,
    change: Change,
) -> Result<HttpResponse> {
    let item = services.plugins().change(auth.pass, &name_of(&req), change).await?;
    Ok(HttpResponse::Ok().json(item))
}

/// Enable a plugin.
#[utoipa::path(post, path = "/api/v1/admin/plugins/{name}/enable", tag = "admin", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin"), (status = 404, description = "No such plugin", body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn enable(
    auth: Authorized<ManagePlugins>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    change(auth, services, req, Change::Enable).await
}

/// Disable a plugin: its calls fail at once with `disabled` until it is enabled again.
#[utoipa::path(post, path = "/api/v1/admin/plugins/{name}/disable", tag = "admin", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin"), (status = 404, description = "No such plugin", body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn disable(
    auth: Authorized<ManagePlugins>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    change(auth, services, req, Change::Disable).await
}

/// Load a plugin's directory again (after its files were replaced on disk).
#[utoipa::path(post, path = "/api/v1/admin/plugins/{name}/reload", tag = "admin", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin"), (status = 404, description = "No such plugin", body = super::error::ErrorBody),
        (status = 422, description = "Refused; the old version keeps serving", body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn reload(
    auth: Authorized<ManagePlugins>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    change(auth, services, req, Change::Reload).await
}

/// Call a plugin with a JSON input and see its output: for integrators and operators to try a
/// plugin (administrators; audited without the input, which may hold patient data).
#[utoipa::path(post, path = "/api/v1/admin/plugins/{name}/call", tag = "admin", params(("name" = String, Path, description = "Plugin name")),
    request_body = serde_json::Value,
    responses((status = 200, description = "The plugin's output"), (status = 404, description = "No such plugin", body = super::error::ErrorBody),
        (status = 422, description = "The call failed (time or memory limit, trap, bad output)", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn call(
    auth: Authorized<ManagePlugins>,
    services: web::Data<Services>,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse> {
    let input = body.parse::<serde_json::Value>()?;
    let output = services.plugins().call(auth.pass, &name_of(&req), input).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(output))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/admin/plugins").get(list).post(upload))
        .service(r("/api/v1/admin/plugins/{name}/enable").post(enable))
        .service(r("/api/v1/admin/plugins/{name}/disable").post(disable))
        .service(r("/api/v1/admin/plugins/{name}/reload").post(reload))
        .service(r("/api/v1/admin/plugins/{name}/call").post(call));
}
