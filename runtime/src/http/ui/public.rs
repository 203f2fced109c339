//! The pages anyone opens: sign in (with the second factor when the account has one), register
//! (patients), and `/home`, which sends each caller to their start page. Signing in, out and
//! registering are the API's endpoints, called by the page's script.

use actix_web::{HttpRequest, HttpResponse};
use careport_actors::access::ReadDashboard;
use careport_actors::door::dashboard::StartPage;
use minijinja::context;

use super::{View, app_data, bare_pass};

fn next_of(req: &HttpRequest) -> String {
    req.uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("next=")))
        .map(super::percent_decode)
        // Only a path of this portal: never another site (open redirect).
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/home".to_owned())
}

/// `GET /login`.
pub async fn login(req: HttpRequest) -> HttpResponse {
    let view = View::new(&req, None).await;
    view.render("login.html", context! { next => next_of(&req) })
}

/// `GET /register`: a patient creates their account (staff are invited).
pub async fn register(req: HttpRequest) -> HttpResponse {
    let view = View::new(&req, None).await;
    view.render("register.html", context! {})
}

/// `GET /home`: the caller's start page, as `GET /api/v1/dashboard` shapes it.
pub async fn home(req: HttpRequest) -> HttpResponse {
    let pass = match bare_pass::<ReadDashboard>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<careport_actors::Services>(&req);
    let caller = pass.caller().clone();
    // The menu and the start page at once: both wait on the store, neither needs the other.
    let dashboard = services.dashboard();
    let (view, page) = tokio::join!(View::new(&req, Some(&caller)), dashboard.start_page(pass));
    let page = match page {
        Ok(p) => p,
        Err(e) => return view.error(&e),
    };
    match page {
        StartPage::Patient { patient_id, next_appointment, care_team } => {
            super::patient::home(&view, &services, &caller, patient_id, next_appointment, care_team).await
        }
        StartPage::Clinician { patients, today, upcoming, recently_seen } => {
            super::clinician::home(&view, &services, &caller, patients, today, upcoming, recently_seen).await
        }
        StartPage::Admin { stats } => super::admin::home(&view, &services, &caller, stats).await,
    }
}
