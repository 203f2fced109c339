//! An administrator's pages: the start page (the clinic's figures), users (search, invite,
//! activate/deactivate, roles, the MFA policy), reference data (cancer and record types), the
//! knowledge base (upload, metadata, live embedding jobs, delete), plugins (call statistics,
//! upload, enable/disable, reload), the audit trail (filters, chain verification) and
//! statistics drawn as SVG.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::access::{ManageKnowledge, ManagePlugins, ManageReference, ManageUsers, ReadAudit, ReadStats};
use careport_actors::door::PageRequest;
use careport_actors::door::admin::{AccountQuery, AuditQuery};
use careport_actors::door::knowledge::ListQuery;
use careport_actors::{Caller, Services};
use careport_domain::{Code, Error, Role};
use minijinja::context;
use serde::Deserialize;
use serde_json::Value;

use super::svg::bars;
use super::{View, also, app_data, pass};

fn query<T: serde::de::DeserializeOwned + Default>(req: &HttpRequest) -> Result<T, Error> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| Error::with_message(Code::InvalidQuery, "The address has a value this page does not understand."))
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The charts of the clinic's figures (`GET /api/v1/admin/stats`, OCR and search load).
fn charts(view: &View, stats: &Value, ocr: &Value, knowledge: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut chart = |title: String, rows: Vec<(String, f64)>| {
        let svg = bars(&title, &rows);
        out.push(serde_json::json!({ "title": title, "svg": svg, "rows": rows }));
    };
    let weeks: Vec<(String, f64)> = stats["appointments_by_week"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| {
                    let total: f64 =
                        w["by_status"].as_object().map(|m| m.values().filter_map(Value::as_f64).sum()).unwrap_or(0.0);
                    (w["week_start"].as_str().unwrap_or("").chars().take(10).collect(), total)
                })
                .collect()
        })
        .unwrap_or_default();
    chart(view.t("stats.appointments_by_week"), weeks);
    let departments: Vec<(String, f64)> = stats["patients_by_department"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| (d["department"].as_str().unwrap_or("—").to_owned(), d["patients"].as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default();
    chart(view.t("stats.patients_by_department"), departments);
    let types: Vec<(String, f64)> = stats["patients_by_cancer_type"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (d["cancer_type_id"].as_str().unwrap_or("—").to_owned(), d["patients"].as_f64().unwrap_or(0.0))
                })
                .collect()
        })
        .unwrap_or_default();
    chart(view.t("stats.patients_by_cancer_type"), types);
    let ocr_rows: Vec<(String, f64)> = ocr["jobs"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0))).collect())
        .unwrap_or_default();
    chart(view.t("stats.ocr_jobs"), ocr_rows);
    let search_rows = vec![
        (view.t("stats.documents"), knowledge["documents"].as_f64().unwrap_or(0.0)),
        (view.t("stats.chunks_embedded"), knowledge["chunks_embedded"].as_f64().unwrap_or(0.0)),
        (view.t("stats.searches"), knowledge["node"]["searches"].as_f64().unwrap_or(0.0)),
        (view.t("stats.mean_search_ms"), knowledge["node"]["mean_search_ms"].as_f64().unwrap_or(0.0)),
    ];
    chart(view.t("stats.search_load"), search_rows);
    out
}

async fn load_figures(services: &Services, caller: &Caller) -> (Value, Value) {
    let ocr = match also::<ReadStats>(services, caller, None).await {
        Ok(p) => services.text().stats(p).await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    let knowledge = match also::<ManageKnowledge>(services, caller, None).await {
        Ok(p) => services.knowledge().stats(p).await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    (ocr, knowledge)
}

/// The administrator's start page.
pub async fn home(view: &View, services: &Services, caller: &Caller, stats: Value) -> HttpResponse {
    let (ocr, knowledge) = load_figures(services, caller).await;
    let charts = charts(view, &stats, &ocr, &knowledge);
    view.render("home_admin.html", context! { stats, charts, ocr, knowledge })
}

/// `GET /admin/stats`.
pub async fn stats(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ReadStats>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let stats = match services.dashboard().stats(pass).await {
        Ok(s) => s,
        Err(e) => return view.error(&e),
    };
    let (ocr, knowledge) = load_figures(&services, &caller).await;
    let charts = charts(&view, &stats, &ocr, &knowledge);
    view.render("admin_stats.html", context! { stats, charts, ocr, knowledge })
}

#[derive(Deserialize, Default)]
pub struct UserFilter {
    pub email: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    pub cursor: Option<String>,
}

/// `GET /admin/users`.
pub async fn users(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ManageUsers>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let f: UserFilter = match query(&req) {
        Ok(f) => f,
        Err(e) => return view.error(&e),
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let role = match nonempty(f.role.clone()).map(|r| r.parse::<Role>()) {
        Some(Ok(r)) => Some(r),
        Some(Err(_)) => return view.error(&Error::with_message(Code::InvalidQuery, "No such role.")),
        None => None,
    };
    let q = AccountQuery {
        role,
        status: nonempty(f.status.clone()),
        email: nonempty(f.email.clone()),
        page: PageRequest { limit: Some(50), cursor: nonempty(f.cursor.clone()) },
    };
    let accounts = match services.admin().accounts(pass, q).await {
        Ok(p) => p,
        Err(e) => return view.error(&e),
    };
    let mfa_roles = match also::<ManageUsers>(&services, &caller, None).await {
        Ok(p) => services.admin().mfa_policy(p).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    view.render(
        "admin_users.html",
        context! {
            items => accounts.items, next_cursor => accounts.next_cursor, mfa_roles,
            filter => context! { email => f.email, role => f.role, status => f.status },
        },
    )
}

/// `GET /admin/reference`: cancer types and record types.
pub async fn reference(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ManageReference>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let read = match also::<careport_actors::access::ReadReference>(&services, &caller, None).await {
        Ok(p) => p,
        Err(e) => return view.error(&e),
    };
    let types = match services.reference().cancer_types(read, None, true).await {
        Ok(t) => serde_json::to_value(t).unwrap_or_default(),
        Err(e) => return view.error(&e),
    };
    let record_types = super::clinician::record_types(&services, &caller).await;
    view.render("admin_reference.html", context! { cancer_types => types["items"].clone(), record_types })
}

#[derive(Deserialize, Default)]
pub struct DocumentFilter {
    pub title: Option<String>,
    pub state: Option<String>,
    pub cursor: Option<String>,
}

/// `GET /admin/knowledge`.
pub async fn knowledge(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ManageKnowledge>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let f: DocumentFilter = match query(&req) {
        Ok(f) => f,
        Err(e) => return view.error(&e),
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let stats = services.knowledge().stats(pass).await.unwrap_or_default();
    let list = match also::<careport_actors::access::ListKnowledge>(&services, &caller, None).await {
        Ok(p) => {
            let q = ListQuery {
                cancer_type: None,
                department: None,
                language: None,
                audience: None,
                state: nonempty(f.state.clone()),
                title: nonempty(f.title.clone()),
                page: PageRequest { limit: Some(50), cursor: nonempty(f.cursor.clone()) },
            };
            services.knowledge().list(p, q).await
        }
        Err(e) => Err(e),
    };
    match list {
        Ok(p) => view.render(
            "admin_knowledge.html",
            context! {
                items => p.items, next_cursor => p.next_cursor, stats,
                filter => context! { title => f.title, state => f.state },
            },
        ),
        Err(e) => view.error(&e),
    }
}

/// `GET /admin/plugins`.
pub async fn plugins(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ManagePlugins>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let installed = serde_json::to_value(services.plugins().list(pass)).unwrap_or_default();
    view.render(
        "admin_plugins.html",
        context! { items => installed["items"].clone(), failed => installed["failed"].clone() },
    )
}

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub patient: Option<String>,
    pub action: Option<String>,
    pub cursor: Option<String>,
    pub verify: Option<String>,
}

/// `GET /admin/audit`: the trail with filters; `?verify=1` walks the chain.
pub async fn audit(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ReadAudit>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let f: AuditFilter = match query(&req) {
        Ok(f) => f,
        Err(e) => return view.error(&e),
    };
    let uuid = |s: &Option<String>| -> Result<Option<uuid::Uuid>, Error> {
        match nonempty(s.clone()) {
            None => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| Error::with_message(Code::InvalidQuery, "An id must be a UUID."))
            }
        }
    };
    let (actor, patient) = match (uuid(&f.actor), uuid(&f.patient)) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => return view.error(&e),
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let q = AuditQuery {
        actor,
        patient,
        action: nonempty(f.action.clone()),
        from: None,
        to: None,
        page: PageRequest { limit: Some(50), cursor: nonempty(f.cursor.clone()) },
    };
    let events = match services.admin().audit_trail(pass, q).await {
        Ok(p) => p,
        Err(e) => return view.error(&e),
    };
    let verification = if f.verify.is_some() {
        match also::<ReadAudit>(&services, &caller, None).await {
            Ok(p) => services.admin().verify_audit(p).await.ok(),
            Err(_) => None,
        }
    } else {
        None
    };
    view.render(
        "admin_audit.html",
        context! {
            items => events.items, next_cursor => events.next_cursor, verification,
            filter => context! { actor => f.actor, patient => f.patient, action => f.action },
        },
    )
}
