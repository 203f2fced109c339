//! Plugin administration under `/api/v1/admin/plugins` (administrators): list with statistics,
//! upload, enable, disable, reload. Every change is audited.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::audit::{EventExt, outcome};
use careport_actors::plugins::PluginError;
use careport_domain::{Code, Error};
use serde::Deserialize;
use utoipa::ToSchema;

use super::authn::{Authorized, JsonBody, ManagePlugins};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn refused(e: PluginError) -> Error {
    match e {
        PluginError::NotFound(_) => Error::new(Code::NotFound),
        other => Error::with_message(Code::PluginRefused, other.to_string()),
    }
}

fn name_of(req: &HttpRequest) -> String {
    req.match_info().get("name").unwrap_or_default().to_owned()
}

/// The installed plugins with their statistics, and the directories that failed to load.
#[utoipa::path(get, path = "/api/v1/admin/plugins", tag = "admin",
    responses((status = 200, description = "`{items, failed}`")), security(("bearer" = [])))]
pub async fn list(_: Authorized<ManagePlugins>, services: web::Data<Services>) -> Result<HttpResponse> {
    let failed: Vec<_> = services
        .plugins
        .failed()
        .into_iter()
        .map(|(dir, error)| serde_json::json!({ "dir": dir, "error": error }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": services.plugins.list(), "failed": failed })))
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
    let result = services.plugins.upload(b.manifest, module).await;
    let (outcome_text, detail) = match &result {
        Ok(m) => (outcome::SUCCESS, format!("{} {}", m.name, m.version)),
        Err(e) => (outcome::FAILURE, e.to_string()),
    };
    services.audit.write(vec![auth.caller().ctx.event("admin.plugin_upload", outcome_text).resource("plugins", "*").detail(detail)])
        .await?;
    let m = result.map_err(refused)?;
    Ok(HttpResponse::Created()
        .json(serde_json::json!({ "name": m.name, "version": m.version, "kind": m.kind, "contract": m.contract })))
}

async fn change(
    auth: Authorized<ManagePlugins>,
    services: web::Data<Services>,
    req: HttpRequest,
    action: &str,
) -> Result<HttpResponse> {
    let name = name_of(&req);
    let result = match action {
        "enable" | "disable" => match services.plugins.set_enabled(&name, action == "enable").await {
            Ok(true) => Ok(()),
            Ok(false) => Err(PluginError::NotFound(name.clone())),
            Err(e) => Err(e),
        },
        _ => services.plugins.reload(&name).await.map(|_| ()),
    };
    if !matches!(result, Err(PluginError::NotFound(_))) {
        let o = if result.is_ok() { outcome::SUCCESS } else { outcome::FAILURE };
        services.audit.write(vec![auth.caller().ctx.event(&format!("admin.plugin_{action}"), o).resource("plugins", &name)])
            .await?;
    }
    result.map_err(refused)?;
    let item = services.plugins.list().into_iter().find(|p| p.name == name);
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
    change(auth, services, req, "enable").await
}

/// Disable a plugin: its calls fail at once with `disabled` until it is enabled again.
#[utoipa::path(post, path = "/api/v1/admin/plugins/{name}/disable", tag = "admin", params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin"), (status = 404, description = "No such plugin", body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn disable(
    auth: Authorized<ManagePlugins>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    change(auth, services, req, "disable").await
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
    change(auth, services, req, "reload").await
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
    let name = name_of(&req);
    let input = body.parse::<serde_json::Value>()?;
    let result = services.plugins.call(&name, input).await;
    if !matches!(result, Err(PluginError::NotFound(_))) {
        let o = if result.is_ok() { outcome::SUCCESS } else { outcome::FAILURE };
        services.audit.write(vec![auth.caller().ctx.event("admin.plugin_call", o).resource("plugins", &name)]).await?;
    }
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(result.map_err(refused)?))
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
