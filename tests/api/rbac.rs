//! The RBAC matrix: every route of the OpenAPI document × every kind of caller → the expected
//! status. A route missing from the table (or a table row for a route that no longer exists)
//! fails the test, so each new route must say who may call it.
//!
//! Bodies are `{}`: a caller who passes authorization then fails body validation (400), which
//! shows the decision without side effects. Tokens are minted fresh for each cell with the
//! app's key (a new session each), so one cell cannot disturb another.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use careport_domain::Role;
use careport_policy::{Claims, KeyPair, KeyRing, Narrowing, StaffRole};
use careport_store::{appointments, assignments, sessions};
use careport_tests::{TestApp, spawn_app};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    PatientSelf,
    PatientOther,
    DoctorAssigned,
    DoctorUnassigned,
    NurseSameDept,
    NurseOtherDept,
    Admin,
    Expired,
    Revoked,
    Forged,
    OtherKey,
    Attenuated,
}

const EVERYONE: [Who; 13] = [
    Who::Anonymous,
    Who::PatientSelf,
    Who::PatientOther,
    Who::DoctorAssigned,
    Who::DoctorUnassigned,
    Who::NurseSameDept,
    Who::NurseOtherDept,
    Who::Admin,
    Who::Expired,
    Who::Revoked,
    Who::Forged,
    Who::OtherKey,
    Who::Attenuated,
];

struct People {
    patient: Uuid,
    other_patient: Uuid,
    doctor: Uuid,
    doctor2: Uuid,
    nurse: Uuid,
    nurse2: Uuid,
    admin: Uuid,
    /// A real session of the patient (the target of `DELETE /auth/sessions/{id}`).
    patient_session: Uuid,
    /// The patient's appointment with the assigned doctor.
    appointment: Uuid,
    /// A medical record of the patient's chart (uploaded by the administrator).
    record: Uuid,
}

fn claims(user: Uuid, role: Role, staff: Option<StaffRole>, dept: Option<&str>, expires_at: SystemTime) -> Claims {
    Claims {
        user,
        role,
        staff_role: staff,
        department: dept.map(str::to_owned),
        session: Uuid::now_v7(),
        expires_at,
        mfa_pending: false,
    }
}

async fn token(app: &TestApp, p: &People, who: Who) -> Option<String> {
    let ring = app.key_ring();
    let soon = SystemTime::now() + Duration::from_secs(300);
    let mint = |c: Claims| ring.mint(&c).expect("mint");
    Some(match who {
        Who::Anonymous => return None,
        Who::PatientSelf => mint(claims(p.patient, Role::Patient, None, None, soon)),
        Who::PatientOther => mint(claims(p.other_patient, Role::Patient, None, None, soon)),
        Who::DoctorAssigned => mint(claims(p.doctor, Role::Clinician, Some(StaffRole::Doctor), Some("oncology"), soon)),
        Who::DoctorUnassigned => {
            mint(claims(p.doctor2, Role::Clinician, Some(StaffRole::Doctor), Some("cardiology"), soon))
        }
        Who::NurseSameDept => mint(claims(p.nurse, Role::Clinician, Some(StaffRole::Nurse), Some("oncology"), soon)),
        Who::NurseOtherDept => {
            mint(claims(p.nurse2, Role::Clinician, Some(StaffRole::Nurse), Some("cardiology"), soon))
        }
        Who::Admin => mint(claims(p.admin, Role::Admin, None, None, soon)),
        Who::Expired => mint(claims(p.admin, Role::Admin, None, None, SystemTime::now() - Duration::from_secs(5))),
        Who::Revoked => {
            let c = claims(p.admin, Role::Admin, None, None, soon);
            let session = c.session;
            let t = mint(c);
            app.services.auth.revoke_sessions(&[session], "test").await.expect("revoke");
            t
        }
        Who::Forged => {
            // An admin token whose signature no longer matches its content.
            let t = mint(claims(p.admin, Role::Admin, None, None, soon)).into_bytes();
            let mut t = t;
            let i = t.len() / 3;
            t[i] = if t[i] == b'Q' { b'R' } else { b'Q' };
            String::from_utf8(t).expect("utf8")
        }
        Who::OtherKey => KeyRing::new(app.settings.auth.tokens.key_id, KeyPair::new(), Vec::new())
            .mint(&claims(p.admin, Role::Admin, None, None, soon))
            .expect("mint"),
        Who::Attenuated => {
            // The assigned doctor's token narrowed to reading this one patient.
            let full = mint(claims(p.doctor, Role::Clinician, Some(StaffRole::Doctor), Some("oncology"), soon));
            let verified = ring.verify(&full).expect("verify");
            careport_policy::attenuate(
                &verified,
                &Narrowing {
                    operations: Some(vec!["read".into()]),
                    resources: Some(vec![("patient".into(), p.patient.to_string())]),
                    expires_at: None,
                },
            )
            .expect("attenuate")
        }
    })
}

/// The expected status of a route for a caller.
type Rule = fn(Who) -> u16;

fn bad_token(who: Who) -> bool {
    matches!(who, Who::Expired | Who::Revoked | Who::Forged | Who::OtherKey)
}

/// Public: every caller alike (a bad token is ignored, not an error).
fn public(status: u16) -> impl Fn(Who) -> u16 {
    move |_| status
}

/// Any valid token; `ok` is the status once past authorization.
fn authenticated(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        Who::Anonymous => 401,
        w if bad_token(w) => 401,
        _ => ok,
    }
}

/// One's own account or session: every valid caller, but not the attenuated token (it may read
/// one patient only); own-resource denials are 403 (nothing to hide about oneself).
fn own(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        Who::Attenuated => 403,
        w => authenticated(ok)(w),
    }
}

fn admin_only(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        Who::Admin => ok,
        Who::Anonymous => 401,
        w if bad_token(w) => 401,
        _ => 403,
    }
}

fn read_patient(who: Who) -> u16 {
    match who {
        Who::Admin | Who::PatientSelf | Who::DoctorAssigned | Who::NurseSameDept | Who::Attenuated => 200,
        Who::PatientOther | Who::DoctorUnassigned | Who::NurseOtherDept => 404,
        _ => 401,
    }
}

fn read_user(who: Who) -> u16 {
    match who {
        Who::Admin | Who::PatientSelf => 200,
        Who::Anonymous => 401,
        w if bad_token(w) => 401,
        _ => 404,
    }
}

fn access_log(who: Who) -> u16 {
    match who {
        Who::PatientSelf | Who::PatientOther | Who::Admin => 200,
        Who::Anonymous => 401,
        w if bad_token(w) => 401,
        _ => 403,
    }
}

fn delete_patient_session(who: Who) -> u16 {
    match who {
        Who::PatientSelf => 204,
        Who::Anonymous => 401,
        w if bad_token(w) => 401,
        _ => 404,
    }
}

fn bad_or_anonymous(who: Who) -> bool {
    who == Who::Anonymous || bad_token(who)
}

/// Staff (every clinician) and administrators.
fn staff(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        w if bad_or_anonymous(w) => 401,
        Who::Admin | Who::DoctorAssigned | Who::DoctorUnassigned | Who::NurseSameDept | Who::NurseOtherDept => ok,
        _ => 403,
    }
}

/// An administrator's action on a path resource: everyone else is told it does not exist.
fn admin_path(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        w if bad_or_anonymous(w) => 401,
        Who::Admin => ok,
        _ => 404,
    }
}

/// Changing the patient's record: the patient (contact details), the assigned doctor, admins.
fn write_patient(who: Who) -> u16 {
    match who {
        w if bad_or_anonymous(w) => 401,
        Who::Admin | Who::PatientSelf | Who::DoctorAssigned => 200,
        _ => 404,
    }
}

/// Booking for the patient (body `{}` → 400 once authorized): the patient, the assigned doctor,
/// the nurses of the patient's department, admins.
fn book_for_patient(who: Who) -> u16 {
    match who {
        w if bad_or_anonymous(w) => 401,
        Who::Admin | Who::PatientSelf | Who::DoctorAssigned | Who::NurseSameDept => 400,
        _ => 404,
    }
}

/// The patient's appointment with the assigned doctor: the patient, the doctor, the
/// department's nurses and admins; `ok` once authorized.
fn appointment(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        w if bad_or_anonymous(w) => 401,
        Who::Admin | Who::PatientSelf | Who::DoctorAssigned | Who::NurseSameDept => ok,
        _ => 404,
    }
}

/// Reading the directory's clinician (the assigned doctor): every valid token but the
/// attenuated one (narrowed to one patient).
fn read_clinician(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        w if bad_or_anonymous(w) => 401,
        Who::Attenuated => 404,
        _ => ok,
    }
}

/// Changing the clinician (the assigned doctor): that doctor and admins.
fn write_clinician(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        w if bad_or_anonymous(w) => 401,
        Who::Admin | Who::DoctorAssigned => ok,
        _ => 404,
    }
}

/// Reading a medical record of the chart: the patient, the assigned doctor and the
/// department's nurses; an administrator only through a grant (they have none here); the
/// attenuated token is narrowed to the patient, not the record.
fn read_record(who: Who) -> u16 {
    match who {
        w if bad_or_anonymous(w) => 401,
        Who::PatientSelf | Who::DoctorAssigned | Who::NurseSameDept => 200,
        _ => 404,
    }
}

/// Uploading into the chart (body `{}` without metadata → 400 once authorized): the patient,
/// the assigned doctor, the department's nurses and administrators.
fn upload_record(who: Who) -> u16 {
    match who {
        w if bad_or_anonymous(w) => 401,
        Who::Admin | Who::PatientSelf | Who::DoctorAssigned | Who::NurseSameDept => 400,
        _ => 404,
    }
}

/// Sharing a record (grants, links): the patient, the assigned doctor and administrators.
fn share_record(ok: u16) -> impl Fn(Who) -> u16 {
    move |who| match who {
        w if bad_or_anonymous(w) => 401,
        Who::Admin | Who::PatientSelf | Who::DoctorAssigned => ok,
        _ => 404,
    }
}

/// A nested resource that does not exist (an unassigned clinician, an unknown absence): 404 to
/// every valid caller, allowed or not.
fn absent(who: Who) -> u16 {
    if bad_or_anonymous(who) { 401 } else { 404 }
}

/// Who gets which status on one route.
type Expect = Box<dyn Fn(Who) -> u16>;

/// `(method, OpenAPI path)` → rule.
fn table() -> Vec<(&'static str, &'static str, Expect)> {
    let b = |f: Rule| -> Expect { Box::new(f) };
    vec![
        ("get", "/", Box::new(public(200))),
        ("get", "/healthz", Box::new(public(200))),
        ("get", "/readyz", Box::new(public(200))),
        ("get", "/metrics", Box::new(public(200))),
        ("post", "/api/v1/auth/register", Box::new(public(400))),
        ("post", "/api/v1/auth/login", Box::new(public(400))),
        ("post", "/api/v1/auth/refresh", Box::new(public(401))),
        ("post", "/api/v1/auth/password/forgot", Box::new(public(400))),
        ("post", "/api/v1/auth/password/reset", Box::new(public(400))),
        ("post", "/api/v1/auth/email/verify", Box::new(public(400))),
        ("post", "/api/v1/auth/email/resend", Box::new(public(400))),
        ("post", "/api/v1/auth/invitations/accept", Box::new(public(400))),
        ("post", "/api/v1/auth/logout", Box::new(own(204))),
        ("get", "/api/v1/auth/me", Box::new(own(200))),
        ("post", "/api/v1/auth/password/change", Box::new(own(400))),
        ("get", "/api/v1/auth/sessions", Box::new(own(200))),
        ("delete", "/api/v1/auth/sessions/{id}", b(delete_patient_session)),
        ("post", "/api/v1/auth/mfa/enrol", Box::new(own(400))),
        ("post", "/api/v1/auth/mfa/confirm", Box::new(own(400))),
        ("post", "/api/v1/auth/mfa/disable", Box::new(own(400))),
        ("post", "/api/v1/auth/mfa/recovery-codes", Box::new(own(400))),
        ("post", "/api/v1/auth/tokens/attenuate", Box::new(authenticated(400))),
        ("get", "/api/v1/admin/users", Box::new(admin_only(200))),
        ("post", "/api/v1/admin/users", Box::new(admin_only(400))),
        ("patch", "/api/v1/admin/users/{id}", Box::new(admin_only(200))),
        ("post", "/api/v1/admin/users/{id}/mfa/reset", Box::new(admin_only(204))),
        ("get", "/api/v1/admin/mfa-policy", Box::new(admin_only(200))),
        ("put", "/api/v1/admin/mfa-policy", Box::new(admin_only(400))),
        ("post", "/api/v1/admin/invitations", Box::new(admin_only(400))),
        ("get", "/api/v1/admin/audit", Box::new(admin_only(200))),
        ("get", "/api/v1/patients/{id}", b(read_patient)),
        ("get", "/api/v1/users/{id}", b(read_user)),
        ("get", "/api/v1/me/access-log", b(access_log)),
        ("get", "/api/v1/languages", Box::new(public(200))),
        ("get", "/api/v1/departments", Box::new(own(200))),
        ("get", "/api/v1/cancer-types", Box::new(own(200))),
        ("get", "/api/v1/cancer-types/{id}/subtypes", Box::new(own(200))),
        ("post", "/api/v1/admin/cancer-types", Box::new(admin_only(400))),
        ("patch", "/api/v1/admin/cancer-types/{id}", Box::new(admin_only(200))),
        ("get", "/api/v1/patients", Box::new(own(200))),
        ("post", "/api/v1/patients", Box::new(staff(400))),
        ("patch", "/api/v1/patients/{id}", b(write_patient)),
        ("get", "/api/v1/patients/{id}/care-team", b(read_patient)),
        ("post", "/api/v1/patients/{id}/assignments", Box::new(admin_path(400))),
        ("delete", "/api/v1/patients/{id}/assignments/{clinician_id}", b(absent)),
        ("post", "/api/v1/patients/{id}/appointments", b(book_for_patient)),
        ("get", "/api/v1/clinicians", Box::new(own(200))),
        ("get", "/api/v1/clinicians/{id}", Box::new(read_clinician(200))),
        ("get", "/api/v1/clinicians/{id}/slots", Box::new(read_clinician(400))),
        ("patch", "/api/v1/clinicians/{id}", Box::new(write_clinician(200))),
        ("put", "/api/v1/clinicians/{id}/hours", Box::new(write_clinician(400))),
        ("post", "/api/v1/clinicians/{id}/exceptions", Box::new(write_clinician(400))),
        ("delete", "/api/v1/clinicians/{id}/exceptions/{exception_id}", b(absent)),
        ("get", "/api/v1/appointments", Box::new(own(200))),
        ("get", "/api/v1/appointments/{id}", Box::new(appointment(200))),
        ("patch", "/api/v1/appointments/{id}", Box::new(appointment(400))),
        ("post", "/api/v1/appointments/{id}/cancel", Box::new(appointment(400))),
        ("get", "/api/v1/admin/stats", Box::new(admin_only(200))),
        ("get", "/api/v1/dashboard", Box::new(own(200))),
        ("get", "/api/v1/i18n/{locale}", Box::new(public(200))),
        ("get", "/api/v1/record-types", Box::new(own(200))),
        ("get", "/api/v1/record-types/match", Box::new(own(400))),
        ("get", "/api/v1/admin/plugins", Box::new(admin_only(200))),
        ("post", "/api/v1/admin/plugins", Box::new(admin_only(400))),
        ("post", "/api/v1/admin/plugins/{name}/enable", Box::new(admin_only(404))),
        ("post", "/api/v1/admin/plugins/{name}/disable", Box::new(admin_only(404))),
        ("post", "/api/v1/admin/plugins/{name}/reload", Box::new(admin_only(404))),
        ("post", "/api/v1/admin/plugins/{name}/call", Box::new(admin_only(404))),
        ("post", "/api/v1/patients/{id}/records", b(upload_record)),
        ("get", "/api/v1/patients/{id}/records", b(read_patient)),
        ("get", "/api/v1/records/{id}", b(read_record)),
        ("get", "/api/v1/records/{id}/content", b(read_record)),
        ("get", "/api/v1/records/{id}/grants", Box::new(share_record(200))),
        ("post", "/api/v1/records/{id}/grants", Box::new(share_record(400))),
        ("delete", "/api/v1/records/{id}/grants/{grant_id}", Box::new(share_record(404))),
        ("post", "/api/v1/records/{id}/links", Box::new(share_record(400))),
        // Erasing needs a deleted record first: 409 for the administrator, here.
        ("post", "/api/v1/patients/{id}/erase", Box::new(admin_path(409))),
        ("delete", "/api/v1/records/{id}", Box::new(admin_path(204))),
        // Last: the administrator deletes the patient's record, then restores it.
        ("delete", "/api/v1/patients/{id}", Box::new(admin_path(204))),
        ("post", "/api/v1/patients/{id}/restore", Box::new(admin_path(200))),
    ]
}

fn concrete(path: &str, p: &People) -> String {
    if path.contains("{locale}") {
        return path.replace("{locale}", "en");
    }
    if path.contains("{name}") {
        return path.replace("{name}", "no-such-plugin");
    }
    if path.contains("/cancer-types/") {
        return path.replace("{id}", "uterine");
    }
    if path.starts_with("/api/v1/auth/sessions/") {
        return path.replace("{id}", &p.patient_session.to_string());
    }
    if path.starts_with("/api/v1/admin/users/") {
        return path.replace("{id}", &p.other_patient.to_string());
    }
    if path.starts_with("/api/v1/clinicians/") {
        return path.replace("{id}", &p.doctor.to_string()).replace("{exception_id}", &Uuid::now_v7().to_string());
    }
    if path.starts_with("/api/v1/records/") {
        return path.replace("{id}", &p.record.to_string()).replace("{grant_id}", &Uuid::now_v7().to_string());
    }
    if path.starts_with("/api/v1/appointments/") {
        return path.replace("{id}", &p.appointment.to_string());
    }
    if path.contains("{clinician_id}") {
        return path.replace("{id}", &p.patient.to_string()).replace("{clinician_id}", &p.doctor2.to_string());
    }
    path.replace("{id}", &p.patient.to_string())
}

#[actix_web::test]
async fn every_route_answers_every_kind_of_caller_as_the_table_says() {
    let app = spawn_app().await;
    let mk = |name: &str| format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]);
    let patient_email = mk("pat");
    let patient = app.create_user(&patient_email, Role::Patient, None, None).await;
    let people = People {
        patient,
        other_patient: app.create_user(&mk("other"), Role::Patient, None, None).await,
        doctor: app.create_user(&mk("doc"), Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await,
        doctor2: app.create_user(&mk("doc2"), Role::Clinician, Some(StaffRole::Doctor), Some("cardiology")).await,
        nurse: app.create_user(&mk("nurse"), Role::Clinician, Some(StaffRole::Nurse), Some("oncology")).await,
        nurse2: app.create_user(&mk("nurse2"), Role::Clinician, Some(StaffRole::Nurse), Some("cardiology")).await,
        admin: app.create_user(&mk("admin"), Role::Admin, None, None).await,
        patient_session: Uuid::now_v7(),
        appointment: Uuid::now_v7(),
        record: Uuid::nil(),
    };
    let mut people = people;
    // The patient is treated in oncology by the assigned doctor.
    assignments::assign(&app.db, people.doctor, people.patient, None, None).await.expect("assign");
    let now = careport_domain::time::now_ms();
    let booked = appointments::AppointmentRow {
        id: people.appointment,
        patient_id: people.patient,
        clinician_id: people.doctor,
        starts_at: now + 86_400_000,
        ends_at: now + 86_400_000 + 1_800_000,
        status: "scheduled".into(),
        reason: String::new(),
        cancel_reason: None,
        booked_by: Some(people.admin),
        created_at: now,
        updated_at: now,
    };
    appointments::insert(&app.db, &booked).await.expect("appointment");
    let meta = careport_actors::vault::UploadMeta {
        patient: people.patient,
        record_type: "laboratory-results".into(),
        title: "Full blood count".into(),
        clinical_date: None,
        file_name: "fbc.pdf".into(),
        sensitive: false,
        uploaded_by: people.admin,
    };
    let body = futures_util::stream::iter(vec![Ok::<_, std::convert::Infallible>(actix_web::web::Bytes::from_static(
        b"%PDF-1.7\nfull blood count",
    ))]);
    people.record = app.services.vault.upload(meta, body).await.expect("record").record.id;
    sessions::create(&app.db, people.patient_session, people.patient, i64::MAX / 2, "digest-of-nothing", None, None)
        .await
        .expect("session");

    // The table covers exactly the routes of the OpenAPI document.
    let doc: serde_json::Value = app.get("/api/openapi.json").await.json().await.expect("openapi");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let rows = table();
    let covered: BTreeSet<(String, String)> = rows.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&documented).collect();
    assert!(missing.is_empty(), "routes without a row in the RBAC table: {missing:?}");
    assert!(stale.is_empty(), "rows for routes not in the OpenAPI document: {stale:?}");

    let mut failures = Vec::new();
    for (method, path, rule) in &rows {
        let url = app.url(&concrete(path, &people));
        for who in EVERYONE {
            let expected = rule(who);
            let mut req = match *method {
                "get" => app.client.get(&url),
                "post" => app.client.post(&url).json(&serde_json::json!({})),
                "put" => app.client.put(&url).json(&serde_json::json!({})),
                "patch" => app.client.patch(&url).json(&serde_json::json!({})),
                "delete" => app.client.delete(&url),
                other => panic!("method {other}"),
            };
            if let Some(t) = token(&app, &people, who).await {
                req = req.bearer_auth(t);
            }
            let status = req.send().await.expect("request").status().as_u16();
            if status != expected {
                failures
                    .push(format!("{} {path} as {who:?}: expected {expected}, got {status}", method.to_uppercase()));
            }
        }
    }
    assert!(failures.is_empty(), "{} cell(s) differ:\n{}", failures.len(), failures.join("\n"));
}
