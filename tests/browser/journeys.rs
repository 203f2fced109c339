//! The web UI's journeys in a real browser (headless Chromium over WebDriver): a patient, a
//! doctor with two-step sign-in, an administrator — and a patient of another doctor who stays
//! as invisible in the pages as in the API. Every page a journey opens is checked with axe-core
//! (no serious or critical violation) and photographed at desktop and phone width.

use careport_domain::Role;
use careport_policy::StaffRole;
use careport_tests::{PASSWORD, TestApp, spawn_app_with};
use jiff::ToSpan;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::Browser;

const SCAN: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/scan.png");

fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

/// An app for the journeys: the language packs installed, OCR on, the knowledge base on its
/// full-text side (no model needed).
async fn portal() -> TestApp {
    spawn_app_with(
        |s| {
            s.plugins.bundled = true;
            s.ocr.enabled = true;
            s.ocr.auto_record_types = Vec::new();
        },
        Vec::new(),
    )
    .await
}

/// The authenticator app's code now (`offset` steps of 30 s away).
fn totp_now(secret: &str, offset: i64) -> String {
    use careport_actors::identity::totp;
    let raw = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).expect("base32");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() as i64;
    totp::code_at(&raw, totp::step_of(now) + offset)
}

/// Look at a page as a person and as a screen reader would: a photo at both widths, and axe.
async fn check(b: &Browser, name: &str) {
    b.screenshot(name).await;
    b.axe(name).await;
}

/// Sign in through the page (the e-mail, the password, and a code when asked for one).
async fn sign_in(b: &Browser, email: &str, totp: Option<&str>) {
    b.goto("/login").await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.click("form[data-login] button[type=submit]").await;
    if let Some(code) = totp {
        b.wait_for("#totp").await;
        b.wait_text("[data-alert]", "code").await;
        b.fill("#totp", code).await;
        b.click("form[data-login] button[type=submit]").await;
    }
    b.wait_url("/home").await;
}

/// The next weekday at least two days ahead, and a doctor who works 09:00–12:00 every day.
fn booking_day() -> jiff::civil::Date {
    let mut d = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC).date().checked_add(2.days()).expect("date");
    while matches!(d.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday) {
        d = d.tomorrow().expect("date");
    }
    d
}

#[actix_web::test]
async fn a_patient_registers_uploads_books_chats_reads_the_access_log_and_switches_to_arabic() {
    if !Browser::available() {
        return;
    }
    let app = portal().await;
    let admin_email = unique("admin");
    app.create_user(&admin_email, Role::Admin, None, None).await;
    let admin = app.token(&admin_email).await;
    let doctor_email = unique("doc");
    let doctor_id = app.create_user(&doctor_email, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    let hours: Vec<Value> = (1..=7).map(|wd| json!({"weekday": wd, "start_minute": 540, "end_minute": 720})).collect();
    let (s, v) =
        app.send("PUT", &format!("/api/v1/clinicians/{doctor_id}/hours"), &admin, Some(json!({"hours": hours}))).await;
    assert_eq!(s, 200, "{v}");
    // A passage for the assistant to quote.
    let (s, v) = app
        .send(
            "POST",
            "/api/v1/knowledge/documents",
            &admin,
            Some(json!({
                "title": "Fatigue during chemotherapy",
                "text": "Fatigue is the most common side effect of chemotherapy. Short walks, regular meals and \
                         sleep at fixed hours help; tell your care team when fatigue stops you from daily tasks.",
                "audience": "patient", "language": "en",
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    let b = Browser::start(&app).await;
    // Register and verify through the pages.
    let email = unique("pat");
    b.goto("/register").await;
    check(&b, "register").await;
    b.fill("#full_name", "Pat Page").await;
    b.fill("#email", &email).await;
    b.fill("#password", PASSWORD).await;
    b.click("form[data-api] button[type=submit]").await;
    b.wait_text("[data-ok]", "on its way").await;
    let mail = app.email_to(&email).await;
    let link =
        mail.split_whitespace().find(|w| w.contains("/verify-email?token=")).expect("verification link").to_owned();
    let path = &link[link.find("/verify-email").expect("path")..];
    b.goto(path).await;
    b.click("form button[type=submit]").await;
    b.wait_text("body", "verified").await;

    sign_in(&b, &email, None).await;
    b.wait_text("h1", "Welcome").await;
    check(&b, "patient-home").await;

    // Upload a photo of a lab sheet; the text is read and shown beside it.
    b.goto("/records").await;
    check(&b, "patient-records-empty").await;
    let dir = tempfile::tempdir().expect("dir");
    let photo = dir.path().join("lab-sheet.png");
    std::fs::write(&photo, SCAN).expect("write");
    b.upload("#up-file", &photo).await;
    b.fill("#up-title", "Blood count").await;
    b.click("form[data-upload] button[type=submit]").await;
    b.wait_url("/records/").await;
    b.wait_text("[data-ocr-text]", "Haemoglobin").await;
    assert!(b.exists(".viewer img").await, "the photo is shown in the page");
    // "Let careport choose" matched the title to a type, shown by its name.
    assert!(b.text("main").await.contains("Laboratory Results"), "the record type's name");
    check(&b, "patient-record").await;

    // Book the first free slot of the doctor on a weekday.
    let day = booking_day();
    b.goto(&format!("/appointments?clinician={doctor_id}&day={day}")).await;
    b.wait_for("input[name=starts_at]").await;
    check(&b, "patient-appointments").await;
    b.click("input[name=starts_at]").await;
    b.fill("#book-reason", "Follow-up").await;
    b.click("form[data-api] button[type=submit]").await;
    b.wait_text(".cards", "Follow-up").await;
    let (s, list) = app.send("GET", "/api/v1/appointments", &app.token(&email).await, None).await;
    assert_eq!(s, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");

    // Ask the assistant; the answer streams in with a citation that opens its passage.
    b.goto("/chat").await;
    check(&b, "patient-chat-empty").await;
    b.click("form[data-api] button[type=submit]").await;
    b.wait_url("/chat/").await;
    b.fill("#question", "What helps with fatigue during chemotherapy?").await;
    b.click("form[data-chat] button[type=submit]").await;
    b.wait_for(".msg-assistant .citations a").await;
    b.wait_text(".msg-assistant .body", "atigue").await;
    check(&b, "patient-chat").await;
    b.click(".msg-assistant .citations a").await;
    b.wait_url("/passages/").await;
    b.wait_text("mark", "Fatigue").await;
    check(&b, "patient-passage").await;

    // Who opened my record.
    b.goto("/access-log").await;
    b.wait_text("h1", "Who opened my record").await;
    check(&b, "patient-access-log").await;

    // Arabic: the whole page turns right to left.
    b.goto("/home").await;
    b.click("a[hreflang=ar]").await;
    b.wait_for("html[dir=rtl]").await;
    assert_eq!(b.attr("html", "lang").await.as_deref(), Some("ar"));
    check(&b, "patient-home-ar").await;
    b.close().await;
}

#[actix_web::test]
async fn a_doctor_signs_in_with_totp_opens_a_patient_and_watches_a_scan_being_read() {
    if !Browser::available() {
        return;
    }
    let app = portal().await;
    let admin_email = unique("admin");
    app.create_user(&admin_email, Role::Admin, None, None).await;
    let admin = app.token(&admin_email).await;
    let doctor_email = unique("doc");
    let doctor_id = app.create_user(&doctor_email, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    let other_doctor = unique("doc2");
    let other_doctor_id =
        app.create_user(&other_doctor, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    let mine = app.create_user(&unique("mine"), Role::Patient, None, None).await;
    let theirs = app.create_user(&unique("theirs"), Role::Patient, None, None).await;
    for (patient, clinician) in [(mine, doctor_id), (theirs, other_doctor_id)] {
        let (s, v) = app
            .send(
                "POST",
                &format!("/api/v1/patients/{patient}/assignments"),
                &admin,
                Some(json!({"clinician_id": clinician, "cancer_type_id": "uterine-leiomyosarcoma-ulms"})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    // Two-step sign-in, enrolled through the API.
    let doctor = app.token(&doctor_email).await;
    let (s, e) = app.send("POST", "/api/v1/auth/mfa/enrol", &doctor, Some(json!({"password": PASSWORD}))).await;
    assert_eq!(s, 200, "{e}");
    let secret = e["secret"].as_str().expect("secret").to_owned();
    let (s, v) =
        app.send("POST", "/api/v1/auth/mfa/confirm", &doctor, Some(json!({"code": totp_now(&secret, -1)}))).await;
    assert_eq!(s, 200, "{v}");

    let b = Browser::start(&app).await;
    b.goto("/login").await;
    check(&b, "login").await;
    sign_in(&b, &doctor_email, Some(&totp_now(&secret, 0))).await;
    check(&b, "doctor-home").await;

    // Their patient is listed; the other doctor's is not, and its chart is the API's 404.
    b.goto("/patients").await;
    b.wait_for("table[data-patients]").await;
    assert!(b.exists(&format!("a[href='/patients/{mine}']")).await, "their own patient is listed");
    assert!(!b.exists(&format!("a[href='/patients/{theirs}']")).await, "another doctor's patient is listed");
    check(&b, "doctor-patients").await;
    b.goto(&format!("/patients/{theirs}")).await;
    b.wait_text("main", "not_found").await;
    let res = app.client.get(app.url(&format!("/api/v1/patients/{theirs}"))).bearer_auth(&doctor).send().await;
    assert_eq!(res.expect("request").status(), 404, "the API agrees");

    // Open the assigned patient and upload a scan: the bar follows the OCR job to its end.
    b.goto("/patients").await;
    b.click(&format!("a[href='/patients/{mine}']")).await;
    b.wait_url(&format!("/patients/{mine}")).await;
    check(&b, "doctor-chart").await;
    let dir = tempfile::tempdir().expect("dir");
    let scan = dir.path().join("scan.png");
    std::fs::write(&scan, SCAN).expect("write");
    b.upload("#up-file", &scan).await;
    b.eval(
        "const f = document.querySelector('form[data-upload]'); sessionStorage.setItem('seen', '[]');
         new MutationObserver(() => {
           const p = f.querySelector('progress'), l = f.querySelector('[data-progress-label]');
           const s = JSON.parse(sessionStorage.getItem('seen'));
           s.push([p.getAttribute('value'), l.dataset.status || '']);
           sessionStorage.setItem('seen', JSON.stringify(s));
         }).observe(f, {subtree: true, attributes: true});
         return true;",
    )
    .await;
    b.click("form[data-upload] button[type=submit]").await;
    b.wait_url("/records/").await;
    // What the bar showed on the way, recorded across the page change: the upload, then the
    // OCR job to its end.
    let seen = b.eval("return JSON.parse(sessionStorage.getItem('seen') || '[]')").await;
    let steps = seen.as_array().cloned().unwrap_or_default();
    assert!(steps.iter().any(|s| s[1] == "running" || s[1] == "done"), "the job's progress was shown: {seen}");
    assert_eq!(steps.last().map(|s| (s[0].clone(), s[1].clone())), Some((json!("100"), json!("done"))), "{seen}");
    b.wait_text("[data-ocr-text]", "Haemoglobin").await;
    check(&b, "doctor-record").await;

    b.goto("/hours").await;
    check(&b, "doctor-hours").await;
    b.goto("/settings").await;
    check(&b, "settings").await;
    b.close().await;
}

#[actix_web::test]
async fn an_administrator_invites_a_clinician_and_adds_a_knowledge_document_whose_job_finishes() {
    if !Browser::available() {
        return;
    }
    let app = portal().await;
    let admin_email = unique("admin");
    app.create_user(&admin_email, Role::Admin, None, None).await;
    let b = Browser::start(&app).await;
    sign_in(&b, &admin_email, None).await;
    check(&b, "admin-home").await;

    b.goto("/admin/users").await;
    check(&b, "admin-users").await;
    let invitee = unique("newdoc");
    b.fill("#inv-email", &invitee).await;
    b.select("#inv-staff", "doctor").await;
    b.fill("#inv-dept", "oncology").await;
    b.click("form[data-api='/api/v1/admin/invitations'] button[type=submit]").await;
    b.wait_text("form[data-api='/api/v1/admin/invitations'] [data-ok]", "on its way").await;
    let mail = app.email_to(&invitee).await;
    assert!(mail.contains("/accept-invitation?token="), "the invitation's link");

    b.goto("/admin/knowledge").await;
    check(&b, "admin-knowledge-empty").await;
    let dir = tempfile::tempdir().expect("dir");
    let doc = dir.path().join("nausea.md");
    std::fs::write(&doc, "# Nausea\n\nAnti-sickness medicine works best taken before the nausea starts.\n")
        .expect("write");
    b.fill("#k-title", "Managing nausea").await;
    b.upload("#k-file", &doc).await;
    b.click("form[data-upload] button[type=submit]").await;
    b.wait_text("table[data-documents]", "Managing nausea").await;
    b.wait_text("table[data-documents]", "Ready").await;
    check(&b, "admin-knowledge").await;

    for (path, name) in
        [("/admin/plugins", "admin-plugins"), ("/admin/reference", "admin-reference"), ("/admin/stats", "admin-stats")]
    {
        b.goto(path).await;
        b.wait_for("h1").await;
        check(&b, name).await;
    }
    b.goto("/admin/audit").await;
    b.click("a[href='/admin/audit?verify=1']").await;
    b.wait_for("[data-chain=intact]").await;
    check(&b, "admin-audit").await;
    b.close().await;
}
