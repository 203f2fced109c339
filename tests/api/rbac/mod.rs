//! The RBAC matrix: every route of the OpenAPI document × every kind of caller → the expected
//! status (and, for lists and reads, what the answer holds). A route missing from the table, or a
//! row for a route that no longer exists, fails the test, so each new route must say who may
//! call it.
//!
//! This file owns the table and the rules; [`callers`] makes each caller's credential,
//! [`targets`] what each cell acts on and sends (valid bodies, a target per cell where the route
//! changes something), [`contents`] what an answer must hold, [`world`] the shared fixture.
//!
//! Every cell is judged in two steps. [`gate`] first: no credential, a bad token or a refused
//! link is 401 on every route that needs a caller; the web UI's cookie without its CSRF header
//! is 403 on every write; a token whose MFA enrolment is pending reaches only the MFA routes and
//! logout (403 elsewhere). Then the row's rule, which decides for the callers that got through.
//! A denial on a resource instance (a path id) is 404, on a collection or one's own account 403.

mod callers;
mod contents;
mod targets;
mod world;

use std::collections::BTreeSet;

use callers::{EVERYONE, Who};
use targets::{Body, CONTENT, Variant};
use world::World;

/// Who may call a route at all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No caller needed; credentials are ignored.
    Public,
    /// A valid token (bearer or cookie), not one whose MFA enrolment is pending.
    Token,
    /// A valid token, MFA pending or not: the MFA routes and logout.
    EvenMfaPending,
}

/// The status for a caller the gate let through.
type Rule = Box<dyn Fn(Who) -> u16>;

struct Row {
    method: &'static str,
    path: &'static str,
    variant: Variant,
    access: Access,
    rule: Rule,
}

/// The gate: what a cell answers before the route's rule is asked, with the error code it must
/// carry; `None` lets the caller through to the rule.
fn gate(row: &Row, who: Who) -> Option<(u16, Option<&'static str>)> {
    if row.access == Access::Public {
        return None;
    }
    // `?link=` stands in for a token on the content route and an image's previews only.
    let content = row.method == "get" && (row.path == CONTENT || row.path == "/api/v1/records/{id}/preview");
    match who {
        Who::Anonymous | Who::Expired | Who::Revoked | Who::Forged | Who::OtherKey => Some((401, None)),
        // A link whose maker left or changed role is refused however it is presented.
        Who::GoneLinkQuery | Who::GoneLinkBearer | Who::MovedLinkQuery | Who::MovedLinkBearer => Some((401, None)),
        Who::LinkQuery if !content => Some((401, None)),
        Who::CookieNoCsrf if row.method != "get" => Some((403, Some("csrf_rejected"))),
        Who::MfaPending if row.access != Access::EvenMfaPending => Some((403, Some("mfa_enrolment_required"))),
        _ => None,
    }
}

/// The status a cell must answer, and the error code it must carry where that is the point.
fn expected(row: &Row, who: Who) -> (u16, Option<&'static str>) {
    gate(row, who).unwrap_or_else(|| match (row.rule)(who) {
        422 if row.variant == Variant::NoReason => (422, Some("reason_required")),
        status => (status, None),
    })
}

// ----- rules: the callers the gate let through ------------------------------------------------

/// The same status for everyone.
fn public(status: u16) -> Rule {
    Box::new(move |_| status)
}

/// Every caller with a valid token, narrowed ones included (attenuation only narrows further).
fn authenticated(ok: u16) -> Rule {
    Box::new(move |_| ok)
}

/// One's own account or session, or a collection every signed-in user may ask for (each sees
/// their part): every caller but narrowed tokens (403: nothing to hide about oneself).
fn own(ok: u16) -> Rule {
    Box::new(move |who| if who.narrowed() { 403 } else { ok })
}

/// Reading one's own profile: a token narrowed to exactly that reads it too.
fn own_profile(ok: u16) -> Rule {
    Box::new(move |who| if who == Who::SelfOnly || !who.narrowed() { ok } else { 403 })
}

fn admin_only(ok: u16) -> Rule {
    Box::new(move |who| if who == Who::Admin { ok } else { 403 })
}

/// An administrator's action on a path resource: everyone else is told it does not exist.
fn admin_path(ok: u16) -> Rule {
    Box::new(move |who| if who == Who::Admin { ok } else { 404 })
}

/// Staff (every clinician) and administrators, on a collection.
fn staff(ok: u16) -> Rule {
    Box::new(move |who| match who.like() {
        _ if who.narrowed() => 403,
        Who::Admin | Who::DoctorAssigned | Who::DoctorUnassigned | Who::NurseSameDept | Who::NurseOtherDept => ok,
        _ => 403,
    })
}

/// `ok` for the callers in `may` (matched as `like`), 404 for the others.
fn path_rule(ok: u16, may: &'static [Who]) -> Rule {
    Box::new(move |who| if !who.narrowed() && may.contains(&who.like()) { ok } else { 404 })
}

/// Reading the patient (their record, care team, chart list): the patient, the assigned doctor,
/// the department's nurses, administrators, and the token narrowed to reading this patient.
fn read_patient(ok: u16) -> Rule {
    Box::new(move |who| match who.like() {
        Who::Attenuated | Who::Admin | Who::PatientSelf | Who::DoctorAssigned | Who::NurseSameDept => ok,
        _ => 404,
    })
}

/// A chart's list of records: those who read the chart, and those who hold a way into one of
/// its records without reading the chart (a grant, a link, a token narrowed to the record), who
/// see that record only. Everyone else is not told the chart exists.
fn chart_records(who: Who) -> u16 {
    match who {
        Who::GrantHolder | Who::LinkBearer | Who::NarrowedSharer => 200,
        w => read_patient(200)(w),
    }
}

const PATIENT_CARE: &[Who] = &[Who::Admin, Who::PatientSelf, Who::DoctorAssigned, Who::NurseSameDept];

/// A chart's signed reports: the patient, the assigned doctor, the department's nurses.
const READ_REPORTS: &[Who] = &[Who::PatientSelf, Who::DoctorAssigned, Who::NurseSameDept];

/// A medical record of the chart: the patient, the assigned doctor, the department's nurses (not
/// on a sensitive record), a live grant's holder, a token narrowed to the record, a link to it;
/// an administrator only through a grant (they have none here).
fn read_record(who: Who) -> u16 {
    match who {
        Who::NurseSensitive => 404,
        Who::GrantHolder | Who::LinkBearer | Who::LinkQuery | Who::NarrowedSharer => 200,
        w if w.narrowed() => 404,
        w if matches!(w.like(), Who::PatientSelf | Who::DoctorAssigned | Who::NurseSameDept) => 200,
        _ => 404,
    }
}

/// Sharing a record (grants): the patient, the assigned doctor, administrators, and a token
/// narrowed to sharing it — which may list and revoke, but not make a grant (`narrowed_makes`).
fn share_record(ok: u16, narrowed_makes: u16) -> Rule {
    Box::new(move |who| match who {
        Who::NarrowedSharer => narrowed_makes,
        w if w.narrowed() => 404,
        w if matches!(w.like(), Who::Admin | Who::PatientSelf | Who::DoctorAssigned) => ok,
        _ => 404,
    })
}

/// A link: those who may share *and read* it themselves (an administrator without a grant reads
/// nothing, so links nothing); a narrowed token never makes one (403).
fn link_record(who: Who) -> u16 {
    match who {
        Who::NarrowedSharer => 403,
        w if w.narrowed() => 404,
        w if matches!(w.like(), Who::PatientSelf | Who::DoctorAssigned) => 201,
        _ => 404,
    }
}

/// A record's text and its OCR jobs: whoever reads the record, answering `ok` where reading
/// answers 200 (asking for OCR is 202; the events route, called without a WebSocket upgrade,
/// answers 400 after its decision).
fn record_text(ok: u16) -> Rule {
    Box::new(move |who| match read_record(who) {
        200 => ok,
        other => other,
    })
}

/// Putting a record's text into the knowledge base (or taking it out): the patient and the
/// assigned doctor ("index" in `documents.datalog`); not a grant's holder, a link, a nurse, nor
/// an administrator.
fn index_record(ok: u16) -> Rule {
    Box::new(move |who| match who {
        w if w.narrowed() => 404,
        w if matches!(w.like(), Who::PatientSelf | Who::DoctorAssigned) => ok,
        _ => 404,
    })
}

/// Deleting a record: administrators, and its uploader.
fn delete_record(who: Who) -> u16 {
    if matches!(who, Who::Admin | Who::Uploader) { 204 } else { 404 }
}

/// Deleting one of the patient's sessions: the patient only.
fn delete_patient_session(who: Who) -> u16 {
    if !who.narrowed() && who.like() == Who::PatientSelf { 204 } else { 404 }
}

/// One's own access log: patients (administrators read any).
fn access_log(who: Who) -> u16 {
    match who.like() {
        _ if who.narrowed() => 403,
        Who::PatientSelf | Who::PatientOther | Who::Admin => 200,
        _ => 403,
    }
}

/// A chat session of the patient's: the patient alone, as its owner; everyone else,
/// administrators included, is told it does not exist.
fn patient_self(ok: u16) -> Rule {
    path_rule(ok, &[Who::PatientSelf])
}

/// The directory's clinician (the assigned doctor): every valid token but narrowed ones.
fn read_clinician(ok: u16) -> Rule {
    Box::new(move |who| if who.narrowed() { 404 } else { ok })
}

fn row(method: &'static str, path: &'static str, access: Access, rule: Rule) -> Row {
    Row { method, path, variant: Variant::Main, access, rule }
}

/// `(method, OpenAPI path)` → rule, in the order the cells run.
fn table() -> Vec<Row> {
    use Access::{EvenMfaPending as Mfa, Public as P, Token as T};
    let b = |f: fn(Who) -> u16| -> Rule { Box::new(f) };
    let variant = |mut r: Row, v: Variant| {
        r.variant = v;
        r
    };
    vec![
        row("get", "/", P, public(200)),
        row("get", "/healthz", P, public(200)),
        row("get", "/readyz", P, public(200)),
        row("get", "/metrics", P, public(200)),
        row("post", "/api/v1/auth/register", P, public(202)),
        row("post", "/api/v1/auth/login", P, public(200)),
        row("post", "/api/v1/auth/refresh", P, public(200)),
        row("post", "/api/v1/auth/password/forgot", P, public(202)),
        row("post", "/api/v1/auth/password/reset", P, public(204)),
        row("post", "/api/v1/auth/email/verify", P, public(204)),
        row("post", "/api/v1/auth/email/resend", P, public(202)),
        row("post", "/api/v1/auth/invitations/accept", P, public(201)),
        row("post", "/api/v1/auth/logout", Mfa, own(204)),
        row("get", "/api/v1/auth/me", T, own_profile(200)),
        row("post", "/api/v1/auth/password/change", T, own(204)),
        // Sessions are not the profile: a token narrowed to the profile does not list them.
        row("get", "/api/v1/auth/sessions", T, own(200)),
        row("delete", "/api/v1/auth/sessions/{id}", T, b(delete_patient_session)),
        row("post", "/api/v1/auth/mfa/enrol", Mfa, own(200)),
        row("post", "/api/v1/auth/mfa/confirm", Mfa, own(200)),
        row("post", "/api/v1/auth/mfa/disable", Mfa, own(204)),
        row("post", "/api/v1/auth/mfa/recovery-codes", Mfa, own(200)),
        row("post", "/api/v1/auth/tokens/attenuate", T, authenticated(200)),
        row("get", "/api/v1/admin/users", T, admin_only(200)),
        row("post", "/api/v1/admin/users", T, admin_only(201)),
        row("patch", "/api/v1/admin/users/{id}", T, admin_only(200)),
        row("post", "/api/v1/admin/users/{id}/mfa/reset", T, admin_only(204)),
        row("post", "/api/v1/admin/users/{id}/confirm-link", T, admin_only(204)),
        row("get", "/api/v1/admin/mfa-policy", T, admin_only(200)),
        row("put", "/api/v1/admin/mfa-policy", T, admin_only(200)),
        row("post", "/api/v1/admin/invitations", T, admin_only(202)),
        row("get", "/api/v1/admin/audit", T, admin_only(200)),
        row("get", "/api/v1/patients/{id}", T, read_patient(200)),
        row("get", "/api/v1/users/{id}", T, path_rule(200, &[Who::Admin, Who::PatientSelf])),
        row("get", "/api/v1/me/access-log", T, b(access_log)),
        row("get", "/api/v1/languages", P, public(200)),
        row("get", "/api/v1/departments", T, own(200)),
        row("get", "/api/v1/cancer-types", T, own(200)),
        row("get", "/api/v1/cancer-types/{id}/subtypes", T, own(200)),
        row("post", "/api/v1/admin/cancer-types", T, admin_only(201)),
        row("patch", "/api/v1/admin/cancer-types/{id}", T, admin_only(200)),
        row("get", "/api/v1/patients", T, own(200)),
        row("post", "/api/v1/patients", T, staff(201)),
        // The patient (contact details), the assigned doctor, administrators.
        row("patch", "/api/v1/patients/{id}", T, path_rule(200, &[Who::Admin, Who::PatientSelf, Who::DoctorAssigned])),
        row("get", "/api/v1/patients/{id}/care-team", T, read_patient(200)),
        row("post", "/api/v1/patients/{id}/assignments", T, admin_path(201)),
        row("delete", "/api/v1/patients/{id}/assignments/{clinician_id}", T, admin_path(204)),
        row("post", "/api/v1/patients/{id}/appointments", T, path_rule(201, PATIENT_CARE)),
        row("get", "/api/v1/clinicians", T, own(200)),
        row("get", "/api/v1/clinicians/{id}", T, read_clinician(200)),
        row("get", "/api/v1/clinicians/{id}/slots", T, read_clinician(200)),
        // The clinician themself (the assigned doctor) and administrators.
        row("patch", "/api/v1/clinicians/{id}", T, path_rule(200, &[Who::Admin, Who::DoctorAssigned])),
        row("put", "/api/v1/clinicians/{id}/hours", T, path_rule(200, &[Who::Admin, Who::DoctorAssigned])),
        row("post", "/api/v1/clinicians/{id}/exceptions", T, path_rule(201, &[Who::Admin, Who::DoctorAssigned])),
        row(
            "delete",
            "/api/v1/clinicians/{id}/exceptions/{exception_id}",
            T,
            path_rule(204, &[Who::Admin, Who::DoctorAssigned]),
        ),
        row("get", "/api/v1/appointments", T, own(200)),
        // The patient's appointment with the assigned doctor: the patient, the doctor, the
        // department's nurses, administrators.
        row("get", "/api/v1/appointments/{id}", T, path_rule(200, PATIENT_CARE)),
        row("patch", "/api/v1/appointments/{id}", T, path_rule(200, PATIENT_CARE)),
        row("post", "/api/v1/appointments/{id}/cancel", T, path_rule(200, PATIENT_CARE)),
        // A soft-deleted patient's appointments are gone for everyone, like the patient.
        variant(row("get", "/api/v1/appointments/{id}", T, path_rule(404, &[])), Variant::DeletedPatient),
        variant(row("patch", "/api/v1/appointments/{id}", T, path_rule(404, &[])), Variant::DeletedPatient),
        variant(row("post", "/api/v1/appointments/{id}/cancel", T, path_rule(404, &[])), Variant::DeletedPatient),
        row("get", "/api/v1/admin/stats", T, admin_only(200)),
        row("get", "/api/v1/admin/cluster", T, admin_only(200)),
        // The dashboard returns patients' data: a token narrowed to the profile does not read it.
        row("get", "/api/v1/dashboard", T, own(200)),
        row("get", "/api/v1/i18n/{locale}", P, public(200)),
        row("get", "/api/v1/record-types", T, own(200)),
        row("get", "/api/v1/record-types/match", T, own(200)),
        row("get", "/api/v1/admin/plugins", T, admin_only(200)),
        row("post", "/api/v1/admin/plugins", T, admin_only(201)),
        row("post", "/api/v1/admin/plugins/{name}/enable", T, admin_only(200)),
        row("post", "/api/v1/admin/plugins/{name}/disable", T, admin_only(200)),
        row("post", "/api/v1/admin/plugins/{name}/reload", T, admin_only(200)),
        row("post", "/api/v1/admin/plugins/{name}/call", T, admin_only(200)),
        // Diagnosis reports: the assigned doctor writes; the patient and the department's nurses
        // read signed ones; administrators have no part in them.
        row("post", "/api/v1/patients/{id}/reports", T, path_rule(201, &[Who::DoctorAssigned])),
        row("get", "/api/v1/patients/{id}/reports", T, path_rule(200, READ_REPORTS)),
        row("get", "/api/v1/reports/{id}", T, path_rule(200, READ_REPORTS)),
        row("patch", "/api/v1/reports/{id}", T, path_rule(200, &[Who::DoctorAssigned])),
        row("post", "/api/v1/reports/{id}/finalize", T, path_rule(200, &[Who::DoctorAssigned])),
        row("post", "/api/v1/reports/{id}/amend", T, path_rule(201, &[Who::DoctorAssigned])),
        row("post", "/api/v1/reports/{id}/export", T, path_rule(201, &[Who::DoctorAssigned])),
        // The workflow: the assigned doctor orders; the care team and the front desk move studies on.
        row("post", "/api/v1/patients/{id}/orders", T, path_rule(201, &[Who::DoctorAssigned, Who::Admin])),
        row(
            "post",
            "/api/v1/orders/{id}/transition",
            T,
            path_rule(200, &[Who::DoctorAssigned, Who::NurseSameDept, Who::Admin]),
        ),
        row("get", "/api/v1/patients/{id}/workflow", T, path_rule(200, PATIENT_CARE)),
        row("get", "/api/v1/admin/workflow", T, admin_only(200)),
        // Billing: the office (administrators); the patient reads their own account.
        row("get", "/api/v1/patients/{id}/billing", T, path_rule(200, &[Who::PatientSelf, Who::Admin])),
        row("post", "/api/v1/patients/{id}/billing", T, path_rule(201, &[Who::Admin])),
        row("post", "/api/v1/billing/{id}/pay", T, path_rule(200, &[Who::Admin])),
        row("post", "/api/v1/billing/{id}/cancel", T, path_rule(200, &[Who::Admin])),
        row("get", "/api/v1/admin/billing", T, admin_only(200)),
        row("get", "/api/v1/admin/billing/stats", T, admin_only(200)),
        row("post", "/api/v1/patients/{id}/records", T, path_rule(201, PATIENT_CARE)),
        row("get", "/api/v1/patients/{id}/records", T, Box::new(chart_records)),
        row("get", "/api/v1/records/{id}", T, b(read_record)),
        row("get", CONTENT, T, b(read_record)),
        row("get", "/api/v1/records/{id}/grants", T, share_record(200, 200)),
        // A narrowed token makes no grant, as it makes no link.
        row("post", "/api/v1/records/{id}/grants", T, share_record(201, 403)),
        // Every grant needs a reason, whoever the grantee.
        variant(row("post", "/api/v1/records/{id}/grants", T, share_record(422, 403)), Variant::NoReason),
        row("delete", "/api/v1/records/{id}/grants/{grant_id}", T, share_record(204, 204)),
        row("post", "/api/v1/records/{id}/links", T, b(link_record)),
        row("post", "/api/v1/patients/{id}/erase", T, admin_path(200)),
        row("delete", "/api/v1/records/{id}", T, b(delete_record)),
        row("post", "/api/v1/records/{id}/ocr", T, record_text(202)),
        row("get", "/api/v1/records/{id}/text", T, record_text(200)),
        row("get", "/api/v1/records/{id}/preview", T, record_text(200)),
        row("get", "/api/v1/patients/{id}/images", T, Box::new(chart_records)),
        row("get", "/api/v1/ocr/jobs/{id}", T, record_text(200)),
        row("delete", "/api/v1/ocr/jobs/{id}", T, record_text(200)),
        row("get", "/api/v1/ocr/jobs/{id}/events", T, record_text(400)),
        row("get", "/api/v1/admin/ocr/stats", T, admin_only(200)),
        // The knowledge base: everyone searches and lists (each finds their scope); curating is
        // the administrators' (and clinicians', for their department's clinician documents:
        // the cells' documents are for everyone, so only administrators may change them).
        row("post", "/api/v1/knowledge/documents", T, admin_only(201)),
        row("get", "/api/v1/knowledge/documents", T, own(200)),
        row("get", "/api/v1/knowledge/documents/{id}", T, own(200)),
        row("patch", "/api/v1/knowledge/documents/{id}", T, admin_path(200)),
        row("delete", "/api/v1/knowledge/documents/{id}", T, admin_path(204)),
        row("get", "/api/v1/knowledge/jobs/{id}", T, admin_path(200)),
        row("delete", "/api/v1/knowledge/jobs/{id}", T, admin_path(200)),
        row("post", "/api/v1/knowledge/jobs/{id}/retry", T, admin_path(200)),
        row("get", "/api/v1/knowledge/jobs/{id}/events", T, admin_path(400)),
        row("post", "/api/v1/knowledge/search", T, own(200)),
        // The matrix's app has embeddings off: there is no space to reindex into.
        row("post", "/api/v1/knowledge/reindex", T, admin_only(503)),
        row("get", "/api/v1/admin/knowledge/stats", T, admin_only(200)),
        row("post", "/api/v1/records/{id}/knowledge", T, index_record(201)),
        row("delete", "/api/v1/records/{id}/knowledge", T, index_record(204)),
        row("delete", "/api/v1/patients/{id}", T, admin_path(204)),
        row("post", "/api/v1/patients/{id}/restore", T, admin_path(200)),
        // The assistant: every signed-in user opens and lists their own sessions; a session
        // (the cells act on one of the patient's) is its owner's alone, administrators included.
        row("post", "/api/v1/chat/sessions", T, own(201)),
        row("get", "/api/v1/chat/sessions", T, own(200)),
        row("get", "/api/v1/chat/sessions/{id}", T, patient_self(200)),
        row("patch", "/api/v1/chat/sessions/{id}", T, patient_self(200)),
        row("delete", "/api/v1/chat/sessions/{id}", T, patient_self(204)),
        row("get", "/api/v1/chat/sessions/{id}/suggestions", T, patient_self(200)),
        row("post", "/api/v1/chat/sessions/{id}/messages", T, patient_self(200)),
        // A booking the patient declines (`accept: false`): decided, and nothing booked.
        row("post", "/api/v1/chat/sessions/{id}/confirm", T, patient_self(200)),
        // Called without a WebSocket upgrade, the socket answers 400 after its decision.
        row("get", "/api/v1/chat/sessions/{id}/ws", T, patient_self(400)),
    ]
}

/// The error code of a JSON error body.
fn code_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["code"].as_str().map(str::to_owned)
}

async fn run_cell(w: &World, row: &Row, who: Who) -> Option<String> {
    let (want, want_code) = expected(row, who);
    let subject = callers::subject(w, who, targets::fresh_subject(row.path)).await;
    let cred = callers::credential(w, who, subject.as_ref()).await;
    let cell = targets::prepare(w, row.method, row.path, row.variant, who, subject.as_ref()).await;
    let mut url = w.app.url(&cell.path);
    if let Some(link) = &cred.link {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("link={link}"));
    }
    let client = &w.app.client;
    let mut req = match row.method {
        "get" => client.get(&url),
        "post" => client.post(&url),
        "put" => client.put(&url),
        "patch" => client.patch(&url),
        "delete" => client.delete(&url),
        other => panic!("method {other}"),
    };
    req = match cell.body {
        Body::None => req,
        Body::Json(v) => req.json(&v),
        Body::Raw(bytes) => req.header("content-type", "application/octet-stream").body(bytes),
    };
    if let Some(t) = &cred.bearer {
        req = req.bearer_auth(t);
    }
    if let Some((cookie, csrf)) = &cred.cookie {
        req = req.header("cookie", cookie);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    let name = match row.variant {
        Variant::Main => format!("{} {}", row.method.to_uppercase(), row.path),
        v => format!("{} {} ({v:?})", row.method.to_uppercase(), row.path),
    };
    let code = code_of(&body);
    if status != want {
        let code = code.map(|c| format!(" {c}")).unwrap_or_default();
        return Some(format!("{name} as {who:?}: expected {want}, got {status}{code}"));
    }
    if let Some(c) = want_code
        && code.as_deref() != Some(c)
    {
        return Some(format!("{name} as {who:?}: expected {want} {c}, got {status} {code:?}"));
    }
    contents::check(w, (row.method, row.path, row.variant), who, subject.as_ref(), status, &body)
        .await
        .err()
        .map(|e| format!("{name} as {who:?}: {status}, but {e}"))
}

#[actix_web::test]
async fn every_route_answers_every_kind_of_caller_as_the_table_says() {
    let w = world::world().await;

    // The table covers exactly the routes of the OpenAPI document.
    let doc: serde_json::Value = w.app.get("/api/openapi.json").await.json().await.expect("openapi");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let rows = table();
    let covered: BTreeSet<(String, String)> = rows.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&documented).collect();
    assert!(missing.is_empty(), "routes without a row in the RBAC table: {missing:?}");
    assert!(stale.is_empty(), "rows for routes not in the OpenAPI document: {stale:?}");

    let mut failures = Vec::new();
    for row in &rows {
        for who in EVERYONE {
            failures.extend(run_cell(&w, row, who).await);
        }
    }
    assert!(failures.is_empty(), "{} cell(s) differ:\n{}", failures.len(), failures.join("\n"));
}
