//! The web UI: server-rendered pages for patients, clinicians and administrators.
//!
//! Why it is built this way:
//! - **One set of rules.** A page is an adapter over the same door operations as the JSON API:
//!   it authenticates with the `__Host-` session cookie, asks the access service for the
//!   operation's pass, calls the operation and renders what it returns. What a page may show is
//!   what the API would answer, audit events included. Writes are the API's own endpoints,
//!   called by the one vendored script (`/static/app.js`) with the CSRF header, so there is no
//!   second set of write rules either. The menu is asked of the policies ([`Menu`]), not of roles.
//! - **No build step.** Templates (`runtime/ui/templates`) and the script and stylesheet
//!   (`runtime/ui/static`) are compiled into the binary with `include_str!` and parsed once at
//!   start: a template that does not parse fails startup, and a test renders every page.
//! - **Strict CSP.** Scripts, styles and connections only from the portal itself; no inline
//!   script, style attribute or event handler anywhere (the script binds to `data-*` attributes).
//! - **Languages.** The page's language is the `careport_lang` cookie (the switcher sets it),
//!   else the browser's `Accept-Language`, among English and the installed language packs; the
//!   strings come from the packs' catalogues (read once per pack version) with English built in,
//!   and Arabic is laid out right to left.

pub mod admin;
pub mod clinician;
pub mod patient;
pub mod public;
pub mod settings;
pub mod svg;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::access::{Operation, Pass};
use careport_actors::door::menu::{Menu, menu};
use careport_actors::{Caller, Services};
use careport_domain::{Error, ErrorKind};
use minijinja::value::{Kwargs, Object, Value};
use minijinja::{Environment, State};
use serde::Serialize;
use sha2::Digest;

use super::error::status_of;

/// The languages the portal offers, English first; the others when their pack is installed.
pub const LOCALES: &[&str] = &["en", "es", "fr", "ar", "zh", "hi"];
/// The language switcher's cookie (a preference, not a secret).
pub const LANG_COOKIE: &str = "careport_lang";

/// The content security policy of every page: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
     connect-src 'self'; frame-src 'self'; media-src 'self' blob:; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../ui/templates/base.html")),
    ("macros.html", include_str!("../../../ui/templates/macros.html")),
    ("error.html", include_str!("../../../ui/templates/error.html")),
    ("login.html", include_str!("../../../ui/templates/login.html")),
    ("register.html", include_str!("../../../ui/templates/register.html")),
    ("home_patient.html", include_str!("../../../ui/templates/home_patient.html")),
    ("home_clinician.html", include_str!("../../../ui/templates/home_clinician.html")),
    ("home_admin.html", include_str!("../../../ui/templates/home_admin.html")),
    ("records.html", include_str!("../../../ui/templates/records.html")),
    ("record.html", include_str!("../../../ui/templates/record.html")),
    ("appointments.html", include_str!("../../../ui/templates/appointments.html")),
    ("chat.html", include_str!("../../../ui/templates/chat.html")),
    ("passage.html", include_str!("../../../ui/templates/passage.html")),
    ("access_log.html", include_str!("../../../ui/templates/access_log.html")),
    ("reports.html", include_str!("../../../ui/templates/reports.html")),
    ("billing.html", include_str!("../../../ui/templates/billing.html")),
    ("settings.html", include_str!("../../../ui/templates/settings.html")),
    ("patients.html", include_str!("../../../ui/templates/patients.html")),
    ("chart.html", include_str!("../../../ui/templates/chart.html")),
    ("hours.html", include_str!("../../../ui/templates/hours.html")),
    ("admin_users.html", include_str!("../../../ui/templates/admin_users.html")),
    ("admin_reference.html", include_str!("../../../ui/templates/admin_reference.html")),
    ("admin_knowledge.html", include_str!("../../../ui/templates/admin_knowledge.html")),
    ("admin_plugins.html", include_str!("../../../ui/templates/admin_plugins.html")),
    ("admin_audit.html", include_str!("../../../ui/templates/admin_audit.html")),
    ("admin_stats.html", include_str!("../../../ui/templates/admin_stats.html")),
];

/// The static files: name, content type, content.
const STATIC: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../../../ui/static/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../../ui/static/app.js")),
];

/// A language's strings: the pack's catalogue (or none for English) and its messages.
#[derive(Debug)]
pub struct Strings {
    locale: String,
    direction: String,
    /// The catalogue these came from, to notice a new pack version.
    source: Option<Arc<serde_json::Value>>,
    messages: HashMap<String, String>,
}

impl Object for Strings {}

impl Strings {
    fn english() -> Self {
        Self {
            locale: "en".into(),
            direction: "ltr".into(),
            source: None,
            messages: crate::i18n::english().into_iter().collect(),
        }
    }

    fn from_catalogue(locale: &str, c: Arc<serde_json::Value>) -> Self {
        let mut messages: HashMap<String, String> = crate::i18n::english().into_iter().collect();
        if let Some(m) = c.get("messages").and_then(|m| m.as_object()) {
            for (k, v) in m {
                if let Some(v) = v.as_str() {
                    messages.insert(k.clone(), v.to_owned());
                }
            }
        }
        let direction = c.get("direction").and_then(|d| d.as_str()).unwrap_or("ltr").to_owned();
        Self { locale: locale.to_owned(), direction, source: Some(c), messages }
    }

    /// The text of `key`, with `{name}` placeholders filled; `count` picks the plural form.
    pub fn text(&self, key: &str, args: &[(&str, String)], count: Option<i64>) -> String {
        let found = match count {
            Some(n) => {
                let category = if n == 1 { "one" } else { "other" };
                self.messages
                    .get(&format!("{key}#{category}"))
                    .or_else(|| self.messages.get(&format!("{key}#other")))
                    .or_else(|| self.messages.get(key))
            }
            None => self.messages.get(key),
        };
        let mut text = found.cloned().unwrap_or_else(|| key.to_owned());
        if let Some(n) = count {
            text = text.replace("{count}", &n.to_string());
        }
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

/// The UI's state: the parsed templates, the static files' fingerprints, the strings by locale.
pub struct Ui {
    env: Environment<'static>,
    english: Arc<Strings>,
    strings: RwLock<HashMap<String, Arc<Strings>>>,
    /// `?v=` of the static files: a new build gets new URLs, so they may be cached for long.
    pub asset_version: String,
    time_zone: jiff::tz::TimeZone,
}

impl Ui {
    /// Parse the templates (an error names the template and line). `time_zone` is the clinic's:
    /// times are shown as the clinic's local time, as appointments are booked in it.
    pub fn new(time_zone: &str) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
        for (name, source) in TEMPLATES {
            env.add_template(name, source).map_err(|e| anyhow::anyhow!("template {name}: {e:#}"))?;
        }
        let tz = careport_actors::clinic::time_zone(time_zone)?;
        let zone = tz.clone();
        env.add_function("t", translate);
        env.add_filter("when", move |v: Value| format_time(&v, &zone, "%Y-%m-%d %H:%M"));
        let zone = tz.clone();
        env.add_filter("day", move |v: Value| format_time(&v, &zone, "%Y-%m-%d"));
        let zone = tz.clone();
        env.add_filter("clock", move |v: Value| format_time(&v, &zone, "%H:%M"));
        env.add_filter("bytes", |n: i64| human_bytes(n));
        env.add_filter("money", |minor: i64, currency: String| money(minor, &currency));
        let mut hasher = sha2::Sha256::new();
        for (_, _, content) in STATIC {
            hasher.update(content.as_bytes());
        }
        let asset_version = data_encoding::HEXLOWER.encode(&hasher.finalize()[..6]);
        Ok(Self {
            env,
            english: Arc::new(Strings::english()),
            strings: RwLock::default(),
            asset_version,
            time_zone: tz,
        })
    }

    /// The clinic's time zone.
    pub fn time_zone(&self) -> &jiff::tz::TimeZone {
        &self.time_zone
    }

    /// The strings of `locale`: English built in; another locale from its installed pack
    /// (re-read when the pack's version changes), or `None` when no pack provides it.
    async fn strings(&self, services: &Services, locale: &str) -> Option<Arc<Strings>> {
        if locale == "en" {
            return Some(self.english.clone());
        }
        let catalogue = services.plugins.catalogue(locale).await?;
        if let Some(s) = self.strings.read().unwrap_or_else(|e| e.into_inner()).get(locale)
            && s.source.as_ref().is_some_and(|c| Arc::ptr_eq(c, &catalogue))
        {
            return Some(s.clone());
        }
        let s = Arc::new(Strings::from_catalogue(locale, catalogue));
        self.strings.write().unwrap_or_else(|e| e.into_inner()).insert(locale.to_owned(), s.clone());
        Some(s)
    }

    fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// `t("key", count=n, name=value)` in a template: the page language's text of `key`.
fn translate(state: &State, key: &str, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let strings = state.lookup("_strings");
    let Some(strings) = strings.as_ref().and_then(|s| s.downcast_object_ref::<Strings>()) else {
        return Ok(key.to_owned());
    };
    let count: Option<i64> = kwargs.get("count")?;
    let mut args = Vec::new();
    for name in kwargs.args() {
        if name == "count" {
            continue;
        }
        let v: Value = kwargs.get(name)?;
        args.push((name, v.to_string()));
    }
    kwargs.assert_all_used()?;
    Ok(strings.text(key, &args, count))
}

/// An RFC 3339 string or Unix milliseconds, in the clinic's time zone.
fn format_time(v: &Value, tz: &jiff::tz::TimeZone, format: &str) -> String {
    let ts = if let Some(s) = v.as_str() {
        s.parse::<jiff::Timestamp>().ok()
    } else {
        i64::try_from(v.clone()).ok().and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
    };
    match ts {
        Some(ts) => ts.to_zoned(tz.clone()).strftime(format).to_string(),
        None => String::new(),
    }
}

/// An amount in minor units of `currency` as its major units, in integers only (no float on
/// the path of money): `12345, "EUR"` is `123.45`; currencies without minor units (JPY, KRW, …)
/// and those with three (BHD, KWD, …) are shown with their own number of decimals.
fn money(minor: i64, currency: &str) -> String {
    const NONE: [&str; 17] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF",
        "XPF",
    ];
    const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let decimals: u32 = if NONE.contains(&currency) {
        0
    } else if THREE.contains(&currency) {
        3
    } else {
        2
    };
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{abs}");
    }
    let unit = 10u64.pow(decimals);
    format!("{sign}{}.{:0width$}", abs / unit, abs % unit, width = decimals as usize)
}

fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KB", n / 1024.0)
    } else {
        format!("{:.1} MB", n / (1024.0 * 1024.0))
    }
}

/// A language the switcher offers.
#[derive(Serialize)]
struct Offered {
    code: &'static str,
    name: String,
}

/// One request's view: its language, the caller's menu, and how to answer.
pub struct View {
    ui: web::Data<Ui>,
    strings: Arc<Strings>,
    base: Value,
}

fn app_data<T: 'static>(req: &HttpRequest) -> web::Data<T> {
    #[allow(clippy::expect_used)]
    req.app_data::<web::Data<T>>().cloned().expect("the UI's app data is registered at startup")
}

/// The locales a request asks for, best first: the switcher's cookie, then `Accept-Language`.
fn wanted(req: &HttpRequest) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = req.cookie(LANG_COOKIE) {
        out.push(c.value().to_ascii_lowercase());
    }
    if let Some(h) = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|h| h.to_str().ok()) {
        let mut tags: Vec<(f32, String)> = h
            .split(',')
            .filter_map(|part| {
                let mut bits = part.trim().split(';');
                let tag = bits.next()?.trim().split('-').next()?.to_ascii_lowercase();
                let q =
                    bits.find_map(|b| b.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
                Some((q, tag))
            })
            .collect();
        tags.sort_by(|a, b| b.0.total_cmp(&a.0));
        out.extend(tags.into_iter().map(|(_, t)| t));
    }
    out.retain(|l| LOCALES.contains(&l.as_str()));
    out
}

impl View {
    /// The view of a request by `caller` (none on the public pages).
    pub async fn new(req: &HttpRequest, caller: Option<&Caller>) -> Self {
        let ui = app_data::<Ui>(req);
        let services = app_data::<Services>(req);
        let mut strings = None;
        for l in wanted(req) {
            if let Some(s) = ui.strings(&services, &l).await {
                strings = Some(s);
                break;
            }
        }
        let strings = strings.unwrap_or_else(|| ui.english.clone());
        let mut offered = Vec::new();
        for code in LOCALES {
            if let Some(s) = ui.strings(&services, code).await {
                let name = match &s.source {
                    Some(c) => c.get("name").and_then(|n| n.as_str()).unwrap_or(code).to_owned(),
                    None => "English".to_owned(),
                };
                offered.push(Offered { code, name });
            }
        }
        let menu: Option<Menu> = match caller {
            Some(c) => Some(menu(&services, c).await),
            None => None,
        };
        let administers = menu.as_ref().is_some_and(Menu::administers);
        let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
        let base = minijinja::context! {
            lang => strings.locale.clone(),
            dir => strings.direction.clone(),
            locales => offered,
            menu => menu,
            administers => administers,
            signed_in => caller.is_some(),
            user_id => caller.map(|c| c.user().to_string()),
            path => path,
            v => ui.asset_version.clone(),
            _strings => Value::from_dyn_object(strings.clone()),
        };
        Self { ui, strings, base }
    }

    /// The text of `key` in this view's language.
    pub fn t(&self, key: &str) -> String {
        self.strings.text(key, &[], None)
    }

    /// Render `template` with `data` (and the view's own fields), 200.
    pub fn render(&self, template: &str, data: Value) -> HttpResponse {
        self.render_status(StatusCode::OK, template, data)
    }

    /// Render `template` with `data` and `status`.
    pub fn render_status(&self, status: StatusCode, template: &str, data: Value) -> HttpResponse {
        let ctx = minijinja::context! { ..data, ..self.base.clone() };
        match self.ui.render(template, ctx) {
            Ok(body) => html(status, body),
            Err(e) => {
                tracing::error!(template, error = %format!("{e:#}"), "a page failed to render");
                html(StatusCode::INTERNAL_SERVER_ERROR, self.plain_error("error.internal"))
            }
        }
    }

    /// The page for an error of an operation, in this view's language.
    pub fn error(&self, e: &Error) -> HttpResponse {
        let status = status_of(e.kind());
        let key = format!("error.{}", e.code().as_str());
        let message = self.strings.text(&key, &[], None);
        // The English table's text is the API's default message; a specific message (which
        // names a field, say) is kept when the language is English.
        let message = if self.strings.locale == "en" { e.message().to_owned() } else { message };
        self.render_status(
            status,
            "error.html",
            minijinja::context! { status => status.as_u16(), code => e.code().as_str(), message => message },
        )
    }

    fn plain_error(&self, key: &str) -> String {
        format!(
            "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>careport</title></head><body><main><h1>{}</h1></main></body></html>",
            self.strings.locale,
            self.strings.text(key, &[], None).replace('<', "&lt;")
        )
    }
}

/// A page's answer: HTML with the UI's security headers.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header(("content-security-policy", CSP))
        .insert_header(("referrer-policy", "same-origin"))
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("x-frame-options", "DENY"))
        .body(body)
}

/// Where a signed-out visitor is sent: the sign-in page, coming back here afterwards.
pub fn to_login(req: &HttpRequest) -> HttpResponse {
    let here = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/home");
    let next: String = here
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/login?next={next}"))).finish()
}

/// The answer to a page request that could not be authorized: sign in again when the session
/// is missing or over, else the error page (404 for what the caller may not see).
pub async fn refused(req: &HttpRequest, caller: Option<&Caller>, e: &Error) -> HttpResponse {
    if e.kind() == ErrorKind::Unauthenticated {
        return to_login(req);
    }
    View::new(req, caller).await.error(e)
}

/// The caller behind the session cookie, with a view, or the answer that sends them away.
pub async fn caller(req: &HttpRequest) -> Result<Caller, HttpResponse> {
    match super::authn::authenticate(req).await {
        Ok((_, caller)) => Ok(caller),
        Err(e) => Err(refused(req, None, &e.0).await),
    }
}

/// The caller's pass for `O` on `id` with their view, or the answer that sends them away.
pub async fn pass<O: Operation>(req: &HttpRequest, id: Option<uuid::Uuid>) -> Result<(View, Pass<O>), HttpResponse> {
    let caller = caller(req).await?;
    let services = app_data::<Services>(req);
    match services.access.pass::<O>(caller.clone(), id).await {
        Ok(pass) => Ok((View::new(req, Some(&caller)).await, pass)),
        Err(e) => Err(refused(req, Some(&caller), &e).await),
    }
}

/// The caller's pass for `O` on `id`, without the view: for a page that builds its view while
/// its data loads (`/home`).
pub async fn bare_pass<O: Operation>(req: &HttpRequest, id: Option<uuid::Uuid>) -> Result<Pass<O>, HttpResponse> {
    let caller = caller(req).await?;
    let services = app_data::<Services>(req);
    match services.access.pass::<O>(caller.clone(), id).await {
        Ok(pass) => Ok(pass),
        Err(e) => Err(refused(req, Some(&caller), &e).await),
    }
}

/// Another pass for a caller already holding one (a page that shows several things).
pub async fn also<O: Operation>(
    services: &Services,
    caller: &Caller,
    id: Option<uuid::Uuid>,
) -> Result<Pass<O>, Error> {
    services.access.pass::<O>(caller.clone(), id).await
}

/// `GET /static/{file}`: the script and the stylesheet.
pub async fn asset(path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    match STATIC.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, content)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            // The URL carries the build's fingerprint (`?v=`), so the file may be kept.
            .insert_header(("cache-control", "public, max-age=31536000, immutable"))
            .insert_header(("x-content-type-options", "nosniff"))
            .body(*content),
        None => HttpResponse::NotFound().finish(),
    }
}

/// `GET /lang/{code}?next=`: remember the chosen language and go back.
pub async fn choose_language(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let code = path.into_inner();
    let next = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("next=")))
        .map(percent_decode)
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/home".to_owned());
    let mut res = HttpResponse::SeeOther();
    res.insert_header((header::LOCATION, next));
    if LOCALES.contains(&code.as_str()) {
        res.cookie(
            actix_web::cookie::Cookie::build(LANG_COOKIE, code)
                .path("/")
                .same_site(actix_web::cookie::SameSite::Lax)
                .max_age(actix_web::cookie::time::Duration::days(365))
                .finish(),
        );
    }
    res.finish()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /`: browsers go to their start page; API clients get the JSON index.
pub fn wants_html(req: &HttpRequest) -> bool {
    req.headers().get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// Register the pages.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let page = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(page("/static/{file}").get(asset))
        .service(page("/lang/{code}").get(choose_language))
        .service(page("/login").get(public::login))
        .service(page("/register").get(public::register))
        .service(page("/home").get(public::home))
        .service(page("/settings").get(settings::settings))
        .service(page("/ui/qr").post(settings::qr))
        .service(page("/records").get(patient::my_records))
        .service(page("/records/{id}").get(patient::record))
        .service(page("/appointments").get(patient::appointments))
        .service(page("/chat").get(patient::chat))
        .service(page("/chat/{id}").get(patient::chat_session))
        .service(page("/passages/{id}").get(patient::passage))
        .service(page("/access-log").get(patient::access_log))
        .service(page("/reports").get(patient::my_reports))
        .service(page("/billing").get(patient::my_billing))
        .service(page("/patients").get(clinician::patients))
        .service(page("/patients/{id}").get(clinician::chart))
        .service(page("/hours").get(clinician::hours))
        .service(page("/admin/users").get(admin::users))
        .service(page("/admin/reference").get(admin::reference))
        .service(page("/admin/knowledge").get(admin::knowledge))
        .service(page("/admin/plugins").get(admin::plugins))
        .service(page("/admin/audit").get(admin::audit))
        .service(page("/admin/stats").get(admin::stats));
}

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn money_is_shown_in_major_units_with_the_currency_s_own_decimals() {
        assert_eq!(money(12345, "EUR"), "123.45");
        assert_eq!(money(5, "USD"), "0.05");
        assert_eq!(money(-250, "EUR"), "-2.50");
        assert_eq!(money(1500, "JPY"), "1500");
        assert_eq!(money(1234, "KWD"), "1.234");
        assert_eq!(money(i64::MIN, "EUR"), "-92233720368547758.08");
    }
}
