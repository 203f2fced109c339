//! The web UI's pages over plain HTTP (the journeys in a browser are in `tests/browser`): every
//! page renders for the roles that may open it, with the UI's security headers; the menu follows
//! the policies; a page a caller may not open answers like the API; a signed-out visitor is sent
//! to sign in; the pages speak the installed languages, Arabic right to left.

use careport_domain::Role;
use careport_policy::StaffRole;
use careport_tests::{PASSWORD, TestApp, spawn_app_with};
use serde_json::{Value, json};
use uuid::Uuid;

fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

/// The session cookie of a web sign-in.
async fn web_session(app: &TestApp, email: &str) -> String {
    let res = app
        .post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD, "use_cookie": true}))
        .await;
    assert_eq!(res.status(), 200);
    let access = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("__Host-careport_access="))
        .expect("access cookie")
        .split(';')
        .next()
        .expect("value")
        .to_owned();
    format!("__Host-careport_access={access}")
}

async fn page(app: &TestApp, cookie: Option<&str>, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = app.client.get(app.url(path)).header("Accept", "text/html");
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.text().await.expect("body"), headers)
}

struct Portal {
    app: TestApp,
    admin: String,
    doctor: String,
    patient: String,
    patient_id: Uuid,
    other_patient_id: Uuid,
}

async fn portal(bundled: bool) -> Portal {
    let app = spawn_app_with(|s| s.plugins.bundled = bundled, Vec::new()).await;
    let (a, d, d2, p, p2) = (unique("admin"), unique("doc"), unique("doc2"), unique("pat"), unique("pat2"));
    app.create_user(&a, Role::Admin, None, None).await;
    let doctor_id = app.create_user(&d, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    let other_doctor_id = app.create_user(&d2, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    let patient_id = app.create_user(&p, Role::Patient, None, None).await;
    let other_patient_id = app.create_user(&p2, Role::Patient, None, None).await;
    let admin_token = app.login(&a).await["access_token"].as_str().expect("token").to_owned();
    for (patient, clinician) in [(patient_id, doctor_id), (other_patient_id, other_doctor_id)] {
        let (s, v) = app
            .send(
                "POST",
                &format!("/api/v1/patients/{patient}/assignments"),
                &admin_token,
                Some(json!({"clinician_id": clinician, "cancer_type_id": "uterine-leiomyosarcoma-ulms"})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    Portal {
        admin: web_session(&app, &a).await,
        doctor: web_session(&app, &d).await,
        patient: web_session(&app, &p).await,
        patient_id,
        other_patient_id,
        app,
    }
}

#[actix_web::test]
async fn every_page_renders_for_the_roles_that_may_open_it_with_the_ui_headers() {
    let p = portal(false).await;
    let everyone = ["/home", "/settings", "/chat"];
    let patient = ["/records", "/appointments", "/access-log", "/reports", "/billing"];
    let doctor = ["/patients", "/hours", "/appointments"];
    let admin = [
        "/admin/users",
        "/admin/reference",
        "/admin/knowledge",
        "/admin/plugins",
        "/admin/audit",
        "/admin/audit?verify=1",
        "/admin/stats",
        "/patients",
    ];
    let chart = format!("/patients/{}", p.patient_id);
    for (who, cookie, paths) in [
        ("patient", &p.patient, everyone.iter().chain(patient.iter()).map(|s| s.to_string()).collect::<Vec<_>>()),
        (
            "doctor",
            &p.doctor,
            everyone.iter().chain(doctor.iter()).map(|s| s.to_string()).chain([chart.clone()]).collect(),
        ),
        (
            "admin",
            &p.admin,
            everyone.iter().chain(admin.iter()).map(|s| s.to_string()).chain([chart.clone()]).collect(),
        ),
    ] {
        for path in paths {
            let (s, body, h) = page(&p.app, Some(cookie), &path).await;
            assert_eq!(s, 200, "{who} {path}: {body}");
            assert!(body.starts_with("<!doctype html>"), "{who} {path}");
            let csp = h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{who} {path}: {csp}");
            assert_eq!(h.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{path}");
            assert_eq!(h.get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"), "{path}");
            // No inline script or style anywhere: the CSP would block it.
            assert!(!body.contains("<script>") && !body.contains(" style=") && !body.contains(" onclick="), "{path}");
        }
    }
    // The menu is what the policies allow: administration only for the administrator.
    let (_, patient_home, _) = page(&p.app, Some(&p.patient), "/home").await;
    assert!(patient_home.contains("href=\"/records\"") && patient_home.contains("href=\"/access-log\""));
    assert!(patient_home.contains("href=\"/reports\"") && patient_home.contains("href=\"/billing\""));
    assert!(!patient_home.contains("href=\"/admin/users\"") && !patient_home.contains("href=\"/patients\""));
    let (_, doctor_home, _) = page(&p.app, Some(&p.doctor), "/home").await;
    assert!(doctor_home.contains("href=\"/patients\"") && doctor_home.contains("href=\"/hours\""));
    assert!(!doctor_home.contains("href=\"/admin/users\"") && !doctor_home.contains("href=\"/access-log\""));
    let (_, admin_home, _) = page(&p.app, Some(&p.admin), "/home").await;
    assert!(admin_home.contains("href=\"/admin/users\"") && admin_home.contains("<svg class=\"chart\""));
    // An administrator may open any chart and any clinician's hours, but has neither of their own.
    for own in
        ["href=\"/records\"", "href=\"/hours\"", "href=\"/access-log\"", "href=\"/reports\"", "href=\"/billing\""]
    {
        assert!(!admin_home.contains(own), "{own} in an administrator's menu");
    }
}

#[actix_web::test]
async fn a_page_the_caller_may_not_open_answers_like_the_api_and_a_visitor_is_sent_to_sign_in() {
    let p = portal(false).await;
    // Another doctor's patient: 404, as `GET /api/v1/patients/{id}`; not in the list either.
    let (s, body, _) = page(&p.app, Some(&p.doctor), &format!("/patients/{}", p.other_patient_id)).await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("not_found") && !body.contains("pat2-"), "no trace of the patient");
    let (_, list, _) = page(&p.app, Some(&p.doctor), "/patients").await;
    assert!(list.contains(&p.patient_id.to_string()) && !list.contains(&p.other_patient_id.to_string()));
    // A patient opening the administration: 403 page, nothing shown.
    let (s, _, _) = page(&p.app, Some(&p.patient), "/admin/audit").await;
    assert_eq!(s, 403);
    // Signed out: to the sign-in page, and back here afterwards (never to another site).
    let (s, _, h) = page(&p.app, None, "/records?q=x").await;
    assert_eq!(s, 303);
    assert_eq!(h.get("location").and_then(|v| v.to_str().ok()), Some("/login?next=/records%3Fq%3Dx"));
    let (s, body, _) = page(&p.app, None, "/login?next=//evil.example/").await;
    assert_eq!(s, 200);
    assert!(body.contains("data-next=\"&#x2f;home\""), "an address of another site is not followed");
    // A browser opening the portal goes to its start page; an API client still gets JSON.
    let (s, _, h) = page(&p.app, None, "/").await;
    assert_eq!((s, h.get("location").and_then(|v| v.to_str().ok())), (303, Some("/home")));
    let res = p.app.get("/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["name"], "careport");
}

#[actix_web::test]
async fn pages_speak_the_installed_languages_and_arabic_is_laid_out_right_to_left() {
    let p = portal(true).await;
    let (s, body, _) = page(&p.app, None, "/login").await;
    assert_eq!(s, 200);
    assert!(body.contains("<html lang=\"en\" dir=\"ltr\">"));
    for code in ["es", "fr", "ar", "zh", "hi"] {
        assert!(body.contains(&format!("hreflang=\"{code}\"")), "the switcher offers {code}");
    }
    // The switcher's cookie decides; the browser's Accept-Language otherwise.
    let res = p.app.client.get(p.app.url("/lang/ar?next=/login")).send().await.expect("request");
    assert_eq!(res.status(), 303);
    let cookie = res.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("cookie").to_owned();
    assert!(cookie.starts_with("careport_lang=ar"));
    let (_, ar, _) = page(&p.app, Some("careport_lang=ar"), "/login").await;
    assert!(ar.contains("<html lang=\"ar\" dir=\"rtl\">"), "{}", &ar[..200.min(ar.len())]);
    assert!(!ar.contains(">Sign in<"), "the page is in Arabic");
    let res = p.app.client.get(p.app.url("/login")).header("Accept-Language", "fr-CA,fr;q=0.9,en;q=0.5").send().await;
    let fr = res.expect("request").text().await.expect("body");
    assert!(fr.contains("<html lang=\"fr\" dir=\"ltr\">"));
    // An error page is in the page's language too.
    let both = format!("{}; careport_lang=es", p.doctor);
    let (s, es, _) = page(&p.app, Some(&both), &format!("/patients/{}", p.other_patient_id)).await;
    assert_eq!(s, 404);
    assert!(es.contains("<html lang=\"es\""), "{es}");
}

/// Whether a web UI route needs a signed-in user.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Access {
    /// Open to a visitor: sign-in, registration, the account e-mails' forms, assets, languages.
    Public,
    /// A visitor is sent to sign in (a form post is refused).
    SignedIn,
}

/// The routes outside the OpenAPI document: the web UI's pages and what they load, and the API
/// docs page. Everything else the server routes is in the OpenAPI document, which the RBAC
/// matrix walks; a route added here is checked below for who may open it.
const OUTSIDE_OPENAPI: &[(&str, &str, Access)] = &[
    ("GET", "/static/{}", Access::Public),
    ("GET", "/lang/{}", Access::Public),
    ("GET", "/login", Access::Public),
    ("GET", "/register", Access::Public),
    ("GET", "/verify-email", Access::Public),
    ("POST", "/verify-email", Access::Public),
    ("GET", "/reset-password", Access::Public),
    ("POST", "/reset-password", Access::Public),
    ("GET", "/accept-invitation", Access::Public),
    ("POST", "/accept-invitation", Access::Public),
    ("GET", "/forgot-password", Access::Public),
    ("POST", "/forgot-password", Access::Public),
    ("GET", "/api/docs/{}", Access::Public),
    ("GET", "/home", Access::SignedIn),
    ("GET", "/settings", Access::SignedIn),
    ("POST", "/ui/qr", Access::SignedIn),
    ("GET", "/records", Access::SignedIn),
    ("GET", "/records/{}", Access::SignedIn),
    ("GET", "/appointments", Access::SignedIn),
    ("GET", "/chat", Access::SignedIn),
    ("GET", "/chat/{}", Access::SignedIn),
    ("GET", "/passages/{}", Access::SignedIn),
    ("GET", "/access-log", Access::SignedIn),
    ("GET", "/reports", Access::SignedIn),
    ("GET", "/billing", Access::SignedIn),
    ("GET", "/patients", Access::SignedIn),
    ("GET", "/patients/{}", Access::SignedIn),
    ("GET", "/hours", Access::SignedIn),
    ("GET", "/admin/users", Access::SignedIn),
    ("GET", "/admin/reference", Access::SignedIn),
    ("GET", "/admin/knowledge", Access::SignedIn),
    ("GET", "/admin/plugins", Access::SignedIn),
    ("GET", "/admin/audit", Access::SignedIn),
    ("GET", "/admin/stats", Access::SignedIn),
];

/// Every `(method, path)` that `runtime/src/http` registers, read from its source: each
/// resource's path literal (`r("…")`, `page("…")`, `get_only("…")`, `web::resource("…")`,
/// `SwaggerUi::new("…")`) and the methods chained on it. Path parameters read `{}`.
fn registered_routes() -> std::collections::BTreeSet<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src/http");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("runtime/src/http") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut routes = std::collections::BTreeSet::new();
    for f in files {
        let src = std::fs::read_to_string(&f).expect("source");
        for opener in ["r(\"/", "page(\"/", "get_only(\"/", "web::resource(\"/", "SwaggerUi::new(\"/"] {
            for (at, _) in src.match_indices(opener) {
                if src[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let start = at + opener.len() - 1;
                let end = start + src[start..].find('"').expect("closing quote");
                let path = normalise(&src[start..end]);
                let rest = &src[end..];
                let chain =
                    &rest[..[rest.find(".service("), rest.find(';')].into_iter().flatten().min().unwrap_or(rest.len())];
                let mut methods: Vec<&str> = ["get", "post", "put", "patch", "delete"]
                    .into_iter()
                    .filter(|m| chain.contains(&format!(".{m}(")))
                    .collect();
                if opener.starts_with("get_only") || opener.starts_with("SwaggerUi") {
                    methods.push("get");
                }
                assert!(!methods.is_empty(), "{}: {path} has no method", f.display());
                for m in methods {
                    routes.insert((m.to_uppercase(), path.clone()));
                }
            }
        }
    }
    routes
}

/// A route or OpenAPI path with each parameter as `{}`.
fn normalise(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("{}");
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// No route hides from the RBAC matrix: every route the server registers is in the OpenAPI
/// document (which the matrix walks) or is one of [`OUTSIDE_OPENAPI`], each of which a visitor
/// opens only if it is listed public; and every operation of the document is routed.
#[actix_web::test]
async fn every_route_is_in_the_openapi_document_or_a_listed_page() {
    let routes = registered_routes();
    assert!(routes.len() > 100, "the reading of runtime/src/http found too few routes: {routes:?}");
    let app = careport_tests::spawn_app().await;
    let doc: Value = app.get("/api/openapi.json").await.json().await.expect("openapi");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&m.as_str()) {
                documented.insert((m.to_uppercase(), normalise(path)));
            }
        }
    }
    let listed: std::collections::BTreeSet<(String, String)> =
        OUTSIDE_OPENAPI.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    let hidden: Vec<_> = routes.difference(&documented).filter(|r| !listed.contains(*r)).collect();
    assert!(hidden.is_empty(), "routed, but neither in the OpenAPI document nor a listed page: {hidden:?}");
    let stale: Vec<_> = listed.iter().filter(|r| !routes.contains(*r) || documented.contains(*r)).collect();
    assert!(stale.is_empty(), "listed as outside the OpenAPI document, but not routed or documented: {stale:?}");
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(unrouted.is_empty(), "in the OpenAPI document, but not routed: {unrouted:?}");

    // Who may open each listed page: a visitor is sent to sign in, or refused a form post.
    for (method, path, access) in OUTSIDE_OPENAPI {
        let url = app.url(&path.replace("{}", &Uuid::now_v7().to_string()));
        let req = match *method {
            "GET" => app.client.get(url),
            _ => app.client.post(url).header("content-type", "application/x-www-form-urlencoded").body(""),
        };
        let res = req.header("Accept", "text/html").send().await.expect("request");
        let status = res.status().as_u16();
        let location = res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(status < 500, "{method} {path}: {status}");
        let sent_to_sign_in = status == 303 && location.starts_with("/login");
        match access {
            Access::SignedIn if *method == "GET" => assert!(sent_to_sign_in, "{method} {path}: {status} {location}"),
            Access::SignedIn => assert!([401, 403].contains(&status) || sent_to_sign_in, "{method} {path}: {status}"),
            Access::Public => assert!(!sent_to_sign_in, "{method} {path} is listed public: {status} {location}"),
        }
    }
}

#[actix_web::test]
async fn an_image_record_shows_its_preview_and_what_was_read_from_it() {
    let app = spawn_app_with(|_| {}, Vec::new()).await;
    let p = unique("pat");
    let patient_id = app.create_user(&p, Role::Patient, None, None).await;
    let token = app.login(&p).await["access_token"].as_str().expect("token").to_owned();
    // A patient uploads a study of their own (a generated DICOM file stating their identifiers).
    let chart = careport_store::patients::get(&app.db, patient_id).await.expect("store").expect("chart");
    let dicom = careport::seed_charts::demo_dicom(&chart, "CR", "CHEST", "1.2.840.10008.5.1.4.1.1.1", "20260301");
    let (ct, body) =
        crate::records::multipart(&[("record_type", "medical-images"), ("title", "Chest X-ray")], "cr.dcm", &dicom);
    let res = app
        .client
        .post(app.url(&format!("/api/v1/patients/{patient_id}/records")))
        .bearer_auth(&token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 201);
    let record: Value = res.json().await.expect("json");
    let id = record["id"].as_str().expect("id").to_owned();
    let cookie = web_session(&app, &p).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (s, v) = app.send("GET", &format!("/api/v1/records/{id}"), &token, None).await;
        assert_eq!(s, 200, "{v}");
        if v["image"]["preview"]["status"] == "ready" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no preview within 30 s: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, page_body, _) = page(&app, Some(&cookie), &format!("/records/{id}")).await;
    assert_eq!(s, 200);
    // Attribute values come HTML-escaped (`/` as `&#x2f;`), as the browser reads them.
    let page_body = page_body.replace("&#x2f;", "/");
    assert!(page_body.contains(&format!("/api/v1/records/{id}/preview?size=web")), "{page_body}");
    for shown in ["X-ray", "CR", "CHEST", "2026-03-01", "256 × 256", "Match this chart"] {
        assert!(page_body.contains(shown), "{shown} on the page");
    }
    let (_, list, _) = page(&app, Some(&cookie), "/records").await;
    let list = list.replace("&#x2f;", "/");
    assert!(list.contains(&format!("/api/v1/records/{id}/preview?size=thumb")) && list.contains("class=\"thumb\""));
    // The page's image loads with the page's own cookie.
    let res = app
        .client
        .get(app.url(&format!("/api/v1/records/{id}/preview?size=web")))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("preview");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
}

#[actix_web::test]
async fn a_patient_reads_their_signed_reports_and_their_bills() {
    let app = spawn_app_with(|_| {}, Vec::new()).await;
    let (a, d, p) = (unique("admin"), unique("doc"), unique("pat"));
    app.create_user(&a, Role::Admin, None, None).await;
    let doctor_id = app.create_user(&d, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    let patient_id = app.create_user(&p, Role::Patient, None, None).await;
    let token = |e: String| {
        let app = &app;
        async move { app.login(&e).await["access_token"].as_str().expect("token").to_owned() }
    };
    let (admin, doctor) = (token(a.clone()).await, token(d.clone()).await);
    let assign = json!({"clinician_id": doctor_id, "cancer_type_id": "uterine-leiomyosarcoma-ulms"});
    let (s, v) = app.send("POST", &format!("/api/v1/patients/{patient_id}/assignments"), &admin, Some(assign)).await;
    assert_eq!(s, 201, "{v}");
    let report = json!({"findings": "Clear lungs.", "impression": "No acute abnormality.", "icd10": ["Z09"]});
    let (s, draft) = app.send("POST", &format!("/api/v1/patients/{patient_id}/reports"), &doctor, Some(report)).await;
    assert_eq!(s, 201, "{draft}");
    let (_, second) = app
        .send(
            "POST",
            &format!("/api/v1/patients/{patient_id}/reports"),
            &doctor,
            Some(json!({"findings": "Draft only.", "impression": "Not signed yet.", "icd10": []})),
        )
        .await;
    assert!(second["id"].is_string());
    let (s, _) = app
        .send("POST", &format!("/api/v1/reports/{}/finalize", draft["id"].as_str().expect("id")), &doctor, None)
        .await;
    assert_eq!(s, 200);
    for (code, price, due, pay) in [("CONS", 12345, "2026-01-10", false), ("IMG", 50000, "2099-01-01", true)] {
        let bill = json!({"service_code": code, "description": format!("{code} service"), "quantity": 1,
            "unit_price": price, "due_date": due});
        let (s, b) = app.send("POST", &format!("/api/v1/patients/{patient_id}/billing"), &admin, Some(bill)).await;
        assert_eq!(s, 201, "{b}");
        if pay {
            let (s, _) =
                app.send("POST", &format!("/api/v1/billing/{}/pay", b["id"].as_str().expect("id")), &admin, None).await;
            assert_eq!(s, 200);
        }
    }
    let cookie = web_session(&app, &p).await;
    let (s, reports, _) = page(&app, Some(&cookie), "/reports").await;
    assert_eq!(s, 200);
    assert!(reports.contains("No acute abnormality.") && reports.contains("Z09") && reports.contains("Imaging report"));
    assert!(!reports.contains("Not signed yet."), "a draft is not the patient's to read");
    let (s, bills, _) = page(&app, Some(&cookie), "/billing").await;
    assert_eq!(s, 200);
    assert!(bills.contains("123.45 EUR") && bills.contains("500.00 EUR"), "minor units shown as major: {bills}");
    assert!(bills.contains("Overdue") && bills.contains("Paid"), "{bills}");
    // A clinician has no such pages of their own: no chart, so no entry and the page refuses.
    let doctor_cookie = web_session(&app, &d).await;
    let (_, home, _) = page(&app, Some(&doctor_cookie), "/home").await;
    assert!(!home.contains("href=\"/reports\"") && !home.contains("href=\"/billing\""));
    let (s, _, _) = page(&app, Some(&doctor_cookie), "/billing").await;
    assert_eq!(s, 404, "not theirs");
}
