//! careport's HTTP interface: routes, the OpenAPI document and its interactive docs page,
//! error mapping and request middleware. Only this crate depends on actix-web.

pub mod admin;
pub mod appointments;
pub mod auth;
pub mod authn;
pub mod billing;
pub mod care_team;
pub mod chat;
pub mod clinicians;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod i18n;
pub mod images;
pub mod knowledge;
pub mod middleware;
pub mod ocr;
pub mod pages;
pub mod patients;
pub mod plugins;
pub mod record_access;
pub mod records;
pub mod reference;
pub mod reports;
pub mod ui;
pub mod workflow;

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
    paths(
        health::healthz, health::readyz, health::metrics, index,
        auth::register, auth::login, auth::refresh, auth::logout, auth::me, auth::change_password,
        auth::forgot_password, auth::reset_password, auth::verify_email, auth::resend_verification,
        auth::list_sessions, auth::delete_session, auth::mfa_enrol, auth::mfa_confirm, auth::mfa_disable,
        auth::mfa_recovery_codes, auth::accept_invitation, auth::attenuate,
        admin::list_users, admin::create_user, admin::update_user, admin::reset_mfa, admin::confirm_chart_link, admin::get_mfa_policy,
        admin::put_mfa_policy, admin::invite, admin::audit,
        patients::list, patients::create, patients::get_patient, patients::update, patients::delete,
        patients::restore, care_team::care_team, care_team::assign, care_team::unassign,
        patients::get_user, patients::access_log,
        clinicians::list, clinicians::get, clinicians::free_slots, clinicians::update, clinicians::set_hours,
        clinicians::add_exception, clinicians::delete_exception,
        appointments::book, appointments::list, appointments::get, appointments::update, appointments::cancel,
        dashboard::admin_stats, dashboard::admin_cluster, dashboard::dashboard,
        i18n::catalogue,
        plugins::list, plugins::upload, plugins::enable, plugins::disable, plugins::reload, plugins::call,
        reference::languages, reference::departments, reference::cancer_types, reference::subtypes,
        reference::add_type, reference::update_type, reference::record_types, reference::match_record_type,
        records::upload, records::list, records::get, records::delete, record_access::content,
        images::list, images::preview,
        record_access::create_grant, record_access::list_grants, record_access::delete_grant,
        record_access::create_link, record_access::erase,
        ocr::request, ocr::text, ocr::job, ocr::cancel, ocr::events, ocr::stats,
        knowledge::create, knowledge::list, knowledge::get, knowledge::update, knowledge::delete,
        knowledge::job, knowledge::cancel, knowledge::retry, knowledge::events, knowledge::search,
        knowledge::reindex, knowledge::stats, knowledge::add_record, knowledge::remove_record,
        chat::create, chat::list, chat::get, chat::rename, chat::delete, chat::suggestions, chat::message,
        chat::confirm, chat::socket,
        reports::create, reports::list, reports::get, reports::update, reports::finalize, reports::amend,
        reports::export,
        workflow::order, workflow::transition, workflow::chart, workflow::by_user,
        billing::account, billing::create, billing::pay, billing::cancel, billing::all, billing::stats,
    ),
    components(schemas(
        error::ErrorBody, health::Readiness, health::Component, health::Status,
        auth::RegisterBody, auth::LoginBody, auth::RefreshBody, auth::LogoutBody, auth::ChangePasswordBody,
        auth::EmailBody, auth::ResetPasswordBody, auth::TokenBody, auth::PasswordBody, auth::CodeBody,
        auth::PasswordCodeBody, auth::AcceptInvitationBody, auth::AttenuateBody, auth::ResourceRef,
        admin::CreateUserBody, admin::UpdateUserBody, admin::MfaPolicyBody, admin::InviteBody,
        reference::NewTypeBody, reference::UpdateTypeBody,
        patients::PatientBody, care_team::AssignBody,
        clinicians::ProfileBody, clinicians::SpecializationBody, clinicians::HoursBody, clinicians::HoursItem,
        clinicians::ExceptionBody,
        appointments::BookBody, appointments::UpdateBody, appointments::CancelBody,
        plugins::UploadBody, record_access::GrantBody, record_access::LinkBody, ocr::OcrBody,
        knowledge::DocumentBody, knowledge::SearchBody,
        reports::ReportBody, reports::ReportPatch, workflow::OrderBody, workflow::TransitionBody, billing::BillBody,
        chat::NewSessionBody, chat::RenameBody, chat::MessageBody, chat::ConfirmBody,
    )),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "operations", description = "Liveness, readiness and metrics"),
        (name = "auth", description = "Accounts, sessions, passwords, MFA, tokens"),
        (name = "admin", description = "Administration: accounts, invitations, MFA policy, audit trail, statistics, plugins"),
        (name = "patients", description = "Patients' records, care teams and assignments"),
        (name = "clinicians", description = "The clinician directory: profiles, hours, absences, free slots"),
        (name = "appointments", description = "Booking, rescheduling, outcomes and cancellation"),
        (name = "users", description = "User records"),
        (name = "reference", description = "Languages, departments, cancer types, record types"),
        (name = "records", description = "Medical records: encrypted uploads and downloads, grants, signed links, OCR text"),
        (name = "knowledge", description = "The knowledge base: documents, embedding jobs, filtered hybrid search"),
        (name = "chat", description = "The assistant: sessions, streamed answers over a WebSocket, tools with the user's own rights, suggestions"),
        (name = "reports", description = "Diagnosis reports: drafts, sign-off, amendments with their history, the PDF as a record"),
        (name = "workflow", description = "Ordered studies and tests, their transitions, and the log read from the audit trail"),
        (name = "billing", description = "Bill items in minor units of the clinic's currency, totals per status, paying and cancelling, the figures"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme (Biscuit access tokens).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("Biscuit").build()),
        );
    }
}

/// The statuses that every operation of a kind can answer, documented once here rather than
/// repeated on each path (a contract fuzzer holds each operation to its list): 401 and 403 where
/// a token is taken, 404 where the path names a resource, 400 where a body or a query is read,
/// 413 and 415 where a body is, 429 (and 409/422 for passwords and codes) on the throttled
/// account routes, 503 everywhere (the store,
/// the audit trail or a model unavailable for now; `Retry-After` says when to try again).
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::Operation;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        };
        let add = |op: &mut Operation, code: &str, description: &str| {
            op.responses.responses.entry(code.to_owned()).or_insert_with(|| error(description));
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let names_resource = path.contains('{');
            let throttled = path.starts_with("/api/v1/auth/");
            for op in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_query = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter().any(
                        |p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Query),
                    )
                });
                if secured {
                    add(op, "401", "No token, or an expired, revoked or malformed one");
                    add(op, "403", "Not allowed to do this");
                }
                if names_resource {
                    add(op, "404", "No such resource, or not one the caller may see");
                }
                if op.request_body.is_some() {
                    add(op, "400", "The body is not valid for this operation");
                    add(op, "413", "The body is too large");
                    add(op, "415", "The body is not of a type this operation reads");
                } else if has_query || secured {
                    add(op, "400", "A query or path value is not valid");
                }
                if throttled {
                    add(op, "429", "Too many attempts; retry after `Retry-After` seconds");
                    if op.request_body.is_some() {
                        // Second factors: a wrong password or code (422), a state it does not
                        // fit, such as enrolling twice (409).
                        add(op, "409", "Not in a state that allows this");
                        add(op, "422", "The password or code is not right");
                    }
                }
                add(op, "503", "Unavailable for now (store, audit trail, a model); retry after `Retry-After`");
            }
        }
    }
}

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

/// What this server is, and where its API docs are (a browser is sent to the web UI).
#[utoipa::path(get, path = "/", tag = "operations", responses((status = 200, description = "Name, version and links")))]
pub async fn index(req: actix_web::HttpRequest) -> HttpResponse {
    // A browser opening the portal's address goes to the web UI's start page.
    if ui::wants_html(&req) {
        return HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, "/home")).finish();
    }
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
        .configure(auth::config)
        .configure(admin::config)
        .configure(patients::config)
        .configure(care_team::config)
        .configure(clinicians::config)
        .configure(appointments::config)
        .configure(dashboard::config)
        .configure(plugins::config)
        .configure(i18n::config)
        .configure(reference::config)
        .configure(records::config)
        .configure(images::config)
        .configure(record_access::config)
        .configure(ocr::config)
        .configure(knowledge::config)
        .configure(chat::config)
        .configure(reports::config)
        .configure(workflow::config)
        .configure(billing::config)
        .configure(pages::config)
        .configure(ui::config)
        .service(SwaggerUi::new("/api/docs/{_:.*}").url(OPENAPI_PATH, openapi()));
}
