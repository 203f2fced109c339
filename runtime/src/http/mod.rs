//! careport's HTTP interface: routes, the OpenAPI document and its interactive docs page,
//! error mapping and request middleware. Only this crate depends on actix-web.

pub mod error;
pub mod health;
pub mod middleware;

use actix_web::{HttpResponse, web};
use careport_domain::Code;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Where the interactive API docs are served (assets compiled into the binary; no CDN).
pub const DOCS_PATH: &str = "/api/docs/";

#[derive(OpenApi)]
#[openapi(
    info(title = "careport", description = "careport's REST API."),
    paths(health::healthz, health::readyz, health::metrics, index),
    components(schemas(error::ErrorBody, health::Readiness, health::Component, health::Status)),
    tags((name = "operations", description = "Liveness, readiness and metrics"))
)]
pub struct ApiDoc;

/// The OpenAPI document, with the error code table in its description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut table = String::from(
        "careport's REST API. Errors are JSON `{\"code\", \"message\"}`; every response carries an \
         `x-request-id` header.\n\n| code | HTTP status | meaning |\n|---|---|---|\n",
    );
    for code in Code::ALL {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            code.as_str(),
            error::status_of(code.kind()).as_u16(),
            code.default_message()
        ));
    }
    doc.info.description = Some(table);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// What this server is, and where its API docs are.
#[utoipa::path(get, path = "/", tag = "operations", responses((status = 200, description = "Name, version and links")))]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "name": "careport",
        "version": env!("CARGO_PKG_VERSION"),
        "docs": DOCS_PATH,
        "openapi": OPENAPI_PATH,
    }))
}

/// A resource that answers `GET` only, and 405 with a JSON error otherwise.
fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).get(handler).default_service(web::to(error::method_not_allowed))
}

/// Every route of the server.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/", index))
        .service(get_only("/healthz", health::healthz))
        .service(get_only("/readyz", health::readyz))
        .service(get_only("/metrics", health::metrics))
        .service(SwaggerUi::new("/api/docs/{_:.*}").url(OPENAPI_PATH, openapi()));
}
