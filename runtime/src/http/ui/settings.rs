//! The settings page every signed-in user has: language, password, two-factor sign-in (with a
//! QR code to scan) and sessions, with "sign out everywhere". The changes are the API's
//! endpoints, called by the page's script; `POST /ui/qr` draws the enrolment's QR code.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::access::{ListOwnSessions, ReadSelf};
use careport_domain::{Code, Error};
use minijinja::context;

use super::{View, also, app_data, pass};

/// `GET /settings`.
pub async fn settings(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ReadSelf>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let account = match services.identity.me(&pass).await {
        Ok(a) => a,
        Err(e) => return view.error(&e),
    };
    let sessions = match also::<ListOwnSessions>(&services, &caller, None).await {
        Ok(p) => services
            .identity
            .sessions(&p)
            .await
            .map(|s| serde_json::to_value(s).unwrap_or_default())
            .unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    view.render("settings.html", context! { account, sessions, this_session => caller.session().to_string() })
}

/// `POST /ui/qr` (a signed-in user, the CSRF header): the `otpauth://` URI the enrolment just
/// returned, drawn as an SVG QR code. The URI travels in the body, never in an address.
pub async fn qr(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(answer) = super::caller(&req).await {
        return answer;
    }
    let text = String::from_utf8_lossy(&body);
    if !text.starts_with("otpauth://") || text.len() > 512 {
        let view = View::new(&req, None).await;
        return view.error(&Error::with_message(Code::InvalidValue, "Only an otpauth:// URI is drawn."));
    }
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(220, 220).build();
            HttpResponse::Ok()
                .content_type("image/svg+xml")
                .insert_header(("cache-control", "no-store"))
                .insert_header(("x-content-type-options", "nosniff"))
                .body(svg)
        }
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}
