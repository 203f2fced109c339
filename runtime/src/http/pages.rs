//! The pages behind the links in e-mails: `/verify-email`, `/reset-password`,
//! `/accept-invitation`, and `/forgot-password` to ask for a reset link. Plain server-rendered
//! HTML forms, no script, no external assets.
//!
//! Opening a link never acts by itself (mail scanners follow links): the page shows a button
//! or a form, and the POST does the work. The token travels in a hidden field, not a cookie, so
//! these forms need no CSRF token: the secret token is the authority.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use careport_actors::Services;
use careport_domain::{Email, Error};
use serde::Deserialize;

use super::authn::Client;

/// Query of a link.
#[derive(Deserialize)]
pub struct LinkQuery {
    pub token: Option<String>,
}

/// Escape text for HTML content and attribute values.
fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn page(status: actix_web::http::StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header(("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t} · careport</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}\
             label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}\
             button{{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem}}.err{{color:#a00}}.ok{{color:#060}}</style></head>\
             <body><main><h1>{t}</h1>{body}</main></body></html>",
            t = esc(title)
        ))
}

fn ok(title: &str, body: &str) -> HttpResponse {
    page(actix_web::http::StatusCode::OK, title, body)
}

fn failed(title: &str, e: &Error, form: &str) -> HttpResponse {
    let status = super::error::status_of(e.kind());
    page(status, title, &format!("<p class=\"err\" role=\"alert\">{}</p>{form}", esc(e.message())))
}

const NO_TOKEN: &str = "<p class=\"err\">This link is incomplete. Open the link from the e-mail again.</p>";

fn verify_form(token: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/verify-email\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
         <p>Confirm that this is your e-mail address.</p><button type=\"submit\">Verify my address</button></form>",
        esc(token)
    )
}

pub async fn verify_email_page(q: web::Query<LinkQuery>) -> HttpResponse {
    match q.into_inner().token {
        Some(t) => ok("Verify your e-mail address", &verify_form(&t)),
        None => ok("Verify your e-mail address", NO_TOKEN),
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    pub token: String,
}

pub async fn verify_email_submit(
    services: web::Data<Services>,
    client: Client,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    match services.identity.verify_email(&client.0, &form.token).await {
        Ok(()) => {
            ok("Address verified", "<p class=\"ok\">Thank you: your address is verified. You can now log in.</p>")
        }
        Err(e) => failed("Verify your e-mail address", &e, ""),
    }
}

fn password_form(action: &str, token: &str, with_name: bool) -> String {
    let name = if with_name {
        "<label for=\"full_name\">Your full name</label><input id=\"full_name\" name=\"full_name\" autocomplete=\"name\">"
    } else {
        ""
    };
    format!(
        "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"token\" value=\"{}\">{name}\
         <label for=\"password\">New password (at least 12 characters; a phrase of several words works well)</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"12\" required>\
         <button type=\"submit\">Save</button></form>",
        esc(token)
    )
}

pub async fn reset_password_page(q: web::Query<LinkQuery>) -> HttpResponse {
    match q.into_inner().token {
        Some(t) => ok("Choose a new password", &password_form("/reset-password", &t, false)),
        None => ok("Choose a new password", NO_TOKEN),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    pub token: String,
    pub password: String,
    pub full_name: Option<String>,
}

pub async fn reset_password_submit(
    services: web::Data<Services>,
    client: Client,
    form: web::Form<PasswordForm>,
) -> HttpResponse {
    let form = form.into_inner();
    match services.identity.reset_password(&client.0, &form.token, form.password).await {
        Ok(()) => ok(
            "Password changed",
            "<p class=\"ok\">Your password is changed and every session was signed out. Log in with the new password.</p>",
        ),
        Err(e) => failed("Choose a new password", &e, &password_form("/reset-password", &form.token, false)),
    }
}

pub async fn accept_invitation_page(q: web::Query<LinkQuery>) -> HttpResponse {
    match q.into_inner().token {
        Some(t) => ok("Join careport", &password_form("/accept-invitation", &t, true)),
        None => ok("Join careport", NO_TOKEN),
    }
}

pub async fn accept_invitation_submit(
    services: web::Data<Services>,
    client: Client,
    form: web::Form<PasswordForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let name = form.full_name.clone().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    match services.identity.accept_invitation(&client.0, &form.token, name, form.password).await {
        Ok(_) => ok("Welcome to careport", "<p class=\"ok\">Your account is ready. You can now log in.</p>"),
        Err(e) => failed("Join careport", &e, &password_form("/accept-invitation", &form.token, true)),
    }
}

const FORGOT_FORM: &str = "<form method=\"post\" action=\"/forgot-password\"><label for=\"email\">Your e-mail address</label>\
     <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required><button type=\"submit\">Send me a link</button></form>";

pub async fn forgot_password_page() -> HttpResponse {
    ok("Forgot your password?", FORGOT_FORM)
}

#[derive(Deserialize)]
pub struct EmailForm {
    pub email: String,
}

pub async fn forgot_password_submit(
    services: web::Data<Services>,
    client: Client,
    form: web::Form<EmailForm>,
) -> HttpResponse {
    match Email::parse(&form.email) {
        Ok(email) => match services.identity.forgot_password(&client.0, email).await {
            Ok(()) => ok(
                "Check your e-mail",
                "<p class=\"ok\">If an account uses this address, a reset link is on its way.</p>",
            ),
            // Too many requests for the address or from this client: said as it is, alike for every address.
            Err(e) => failed("Forgot your password?", &e, FORGOT_FORM),
        },
        Err(e) => failed("Forgot your password?", &e, FORGOT_FORM),
    }
}

/// Register the pages.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/verify-email").get(verify_email_page).post(verify_email_submit))
        .service(r("/reset-password").get(reset_password_page).post(reset_password_submit))
        .service(r("/accept-invitation").get(accept_invitation_page).post(accept_invitation_submit))
        .service(r("/forgot-password").get(forgot_password_page).post(forgot_password_submit));
}
