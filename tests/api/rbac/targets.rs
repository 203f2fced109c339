//! What each cell acts on and sends: the concrete path and a valid body, so that a cell shows
//! the authorization decision and then the route's real answer, not its body parser's.
//!
//! Routes that change something get a target per cell, made just before it: a session, a grant,
//! a record, an appointment, an absence, an account or a patient of its own, so that a caller
//! let through by mistake cannot change what a later caller is refused on. Routes that only read
//! share the world's targets; a caller that is about one record (the uploader, the sensitive
//! record's nurse) reads that one.

use serde_json::{Value, json};
use uuid::Uuid;

use super::callers::Who;
use super::world::{PLUGIN, Person, SUBTYPE, World, hours, in_hours, pdf, plugin_body};
use careport_tests::PASSWORD;

/// A second target for a route: the same route, another situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Main,
    /// `POST …/grants` without a `reason`.
    NoReason,
    /// An appointment of a soft-deleted patient.
    DeletedPatient,
}

pub enum Body {
    None,
    Json(Value),
    /// A raw upload (the file itself as the body).
    Raw(Vec<u8>),
}

/// One cell's request, less its credential.
pub struct Cell {
    pub path: String,
    pub body: Body,
}

pub const CONTENT: &str = "/api/v1/records/{id}/content";

/// Rows that change the caller's own account for good (MFA): each cell acts as a fresh account.
pub fn fresh_subject(path: &str) -> bool {
    path.starts_with("/api/v1/auth/mfa/")
}

/// The record `who` is about.
pub fn record_of(w: &World, who: Who) -> Uuid {
    match who {
        Who::NurseSensitive => w.sensitive,
        Who::Uploader => w.uploaded,
        _ => w.record,
    }
}

fn cell(path: impl Into<String>, body: Body) -> Cell {
    Cell { path: path.into(), body }
}

fn json_cell(path: impl Into<String>, body: Value) -> Cell {
    cell(path, Body::Json(body))
}

/// A knowledge document's body: for everyone, so every caller finds it.
fn knowledge_body() -> Value {
    json!({"title": format!("Cell document {}", Uuid::new_v4().simple()), "text": "# Fever\n\nCall the 24-hour line.",
        "audience": "all", "language": "en"})
}

/// A knowledge document made by the administrator for one cell.
async fn knowledge_doc(w: &World) -> Uuid {
    let (s, v) = w.send_as(&w.admin, "POST", "/api/v1/knowledge/documents", Some(knowledge_body())).await;
    assert_eq!(s, 201, "knowledge document: {v}");
    v["id"].as_str().expect("id").parse().expect("uuid")
}

/// A chat session of the patient's, made for one cell.
async fn chat_session(w: &World) -> Uuid {
    let (s, v) = w.send_as(&w.patient, "POST", "/api/v1/chat/sessions", Some(json!({"language": "en"}))).await;
    assert_eq!(s, 201, "chat session: {v}");
    v["id"].as_str().expect("id").parse().expect("uuid")
}

/// A report of the patient's, written by their doctor for one cell: signed, or a draft.
async fn report(w: &World, signed: bool) -> Uuid {
    let body = json!({"findings": "Cell findings", "impression": "Cell impression"});
    let (s, v) = w.send_as(&w.doctor, "POST", &format!("/api/v1/patients/{}/reports", w.patient.id), Some(body)).await;
    assert_eq!(s, 201, "report: {v}");
    let id: Uuid = v["id"].as_str().expect("id").parse().expect("uuid");
    if signed {
        let (s, v) = w.send_as(&w.doctor, "POST", &format!("/api/v1/reports/{id}/finalize"), None).await;
        assert_eq!(s, 200, "finalize: {v}");
    }
    id
}

/// Start MFA enrolment for `p` (with a plain token of theirs): the secret.
async fn enrol(w: &World, p: &Person) -> String {
    let (s, v) = w.send_as(p, "POST", "/api/v1/auth/mfa/enrol", Some(json!({"password": PASSWORD}))).await;
    assert_eq!(s, 200, "enrol: {v}");
    v["secret"].as_str().expect("secret").to_owned()
}

/// Turn MFA on for `p` with the current step's code: the secret. (The cell then sends the next
/// step's, which the server accepts too and which is not a replay; either survives a step
/// boundary passing in between.)
async fn enable_mfa(w: &World, p: &Person) -> String {
    let secret = enrol(w, p).await;
    let body = json!({"code": crate::auth::current_code(&secret, 0)});
    let (s, v) = w.send_as(p, "POST", "/api/v1/auth/mfa/confirm", Some(body)).await;
    assert_eq!(s, 200, "confirm: {v}");
    secret
}

/// Whose MFA a cell's fixture turns on: the cell's own fresh subject; never an account of the
/// world's (a link's maker, for instance), whose state the other cells rely on.
async fn mfa_account(w: &World, subject: Option<&Person>) -> Person {
    match subject {
        Some(p) if !p.email.contains(&w.tag) => p.clone(),
        _ => w.account_like(&w.patient).await,
    }
}

/// A token for an e-mailed link, and the digest the store keeps of it (hex SHA-256, as the
/// identity service computes it).
fn link_token() -> (String, String) {
    let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let digest = careport_plugins::manifest::sha256_hex(token.as_bytes());
    (token, digest)
}

/// A single-use e-mail link of `purpose` for `p`, stored as the app would: the token.
async fn email_link(w: &World, p: &Person, purpose: careport_store::auth_links::Purpose) -> String {
    let (token, digest) = link_token();
    careport_store::auth_links::issue(w.app.services.store_handle(), p.id, purpose, &digest, 3_600_000)
        .await
        .expect("link");
    token
}

/// `path` with the world's ids (and, where the route changes something, this cell's own).
pub async fn prepare(
    w: &World,
    method: &str,
    path: &str,
    variant: Variant,
    who: Who,
    subject: Option<&Person>,
) -> Cell {
    let patient = w.patient.id;
    let record = record_of(w, who);
    let unique = crate::clinic::unique;
    let with_id = |id: Uuid| path.replace("{id}", &id.to_string());
    match (method, path) {
        // Diagnosis reports, the workflow and billing (#18): a resource of its own per cell.
        ("post", "/api/v1/patients/{id}/reports") => json_cell(
            with_id(patient),
            json!({"findings": "Cell findings", "impression": "Cell impression", "icd10": ["C34.1"]}),
        ),
        ("get", "/api/v1/reports/{id}") => cell(with_id(report(w, true).await), Body::None),
        ("patch", "/api/v1/reports/{id}") => {
            json_cell(with_id(report(w, false).await), json!({"impression": "Changed"}))
        }
        ("post", "/api/v1/reports/{id}/finalize") => cell(with_id(report(w, false).await), Body::None),
        ("post", "/api/v1/reports/{id}/amend") => json_cell(
            with_id(report(w, true).await),
            json!({"findings": "Amended findings", "impression": "Amended impression"}),
        ),
        ("post", "/api/v1/reports/{id}/export") => cell(with_id(report(w, true).await), Body::None),
        ("post", "/api/v1/patients/{id}/orders") => {
            json_cell(with_id(patient), json!({"kind": "ct", "description": "Cell study"}))
        }
        ("post", "/api/v1/orders/{id}/transition") => {
            let (s, v) = w
                .send_as(
                    &w.doctor,
                    "POST",
                    &format!("/api/v1/patients/{patient}/orders"),
                    Some(json!({"kind": "ct", "description": "Cell study"})),
                )
                .await;
            assert_eq!(s, 201, "order: {v}");
            json_cell(path.replace("{id}", v["id"].as_str().expect("id")), json!({"to": "scheduled"}))
        }
        ("get", "/api/v1/admin/workflow") => cell(format!("{path}?user={}", w.doctor.id), Body::None),
        ("post", "/api/v1/patients/{id}/billing") => json_cell(
            with_id(patient),
            json!({"service_code": "CELL", "description": "Cell item", "quantity": 1, "unit_price": 1000, "due_date": "2030-01-01"}),
        ),
        ("post", "/api/v1/billing/{id}/pay" | "/api/v1/billing/{id}/cancel") => {
            let body = json!({"service_code": "CELL", "description": "Cell item", "quantity": 1, "unit_price": 1000, "due_date": "2030-01-01"});
            let (s, v) = w.send_as(&w.admin, "POST", &format!("/api/v1/patients/{patient}/billing"), Some(body)).await;
            assert_eq!(s, 201, "bill: {v}");
            cell(path.replace("{id}", v["id"].as_str().expect("id")), Body::None)
        }
        // Public routes.
        ("post", "/api/v1/auth/register") => {
            json_cell(path, json!({"email": unique("reg"), "password": PASSWORD, "full_name": "Reg Istrant"}))
        }
        ("post", "/api/v1/auth/login") => json_cell(path, json!({"email": w.public_user.email, "password": PASSWORD})),
        ("post", "/api/v1/auth/refresh") => {
            let pair = w.app.login(&w.public_user.email).await;
            json_cell(path, json!({"refresh_token": pair["refresh_token"]}))
        }
        ("post", "/api/v1/auth/password/forgot" | "/api/v1/auth/email/resend") => {
            // Another account than the reset row's: the link these send in the background would
            // retire the one that row stores.
            json_cell(path, json!({"email": w.other_patient.email}))
        }
        ("post", "/api/v1/auth/password/reset") => {
            let token = email_link(w, &w.public_user, careport_store::auth_links::Purpose::Reset).await;
            json_cell(path, json!({"token": token, "new_password": PASSWORD}))
        }
        ("post", "/api/v1/auth/email/verify") => {
            let token = email_link(w, &w.public_user, careport_store::auth_links::Purpose::Verify).await;
            json_cell(path, json!({"token": token}))
        }
        ("post", "/api/v1/auth/invitations/accept") => {
            let (token, digest) = link_token();
            let email = unique("invited");
            let invitation = careport_store::auth_links::NewInvitation {
                token_hash: &digest,
                email: &email,
                role: "clinician",
                staff_role: Some("nurse"),
                department: Some("cardiology"),
                invited_by: w.admin.id,
                ttl_ms: 3_600_000,
            };
            careport_store::auth_links::invite(w.app.services.store_handle(), invitation).await.expect("invitation");
            json_cell(path, json!({"token": token, "password": PASSWORD, "full_name": "New Nurse"}))
        }

        // One's own account.
        ("post", "/api/v1/auth/logout") => json_cell(path, json!({"all_sessions": false})),
        ("post", "/api/v1/auth/password/change") => {
            // The same password again: the decision is shown, and later logins still work.
            json_cell(path, json!({"current_password": PASSWORD, "new_password": PASSWORD}))
        }
        ("delete", "/api/v1/auth/sessions/{id}") => {
            // A session of the patient's, made for this cell.
            let (id, (_, refresh_digest)) = (Uuid::now_v7(), link_token());
            careport_store::sessions::create(
                w.app.services.store_handle(),
                id,
                patient,
                i64::MAX / 2,
                &refresh_digest,
                None,
                None,
            )
            .await
            .expect("session");
            cell(with_id(id), Body::None)
        }
        ("post", "/api/v1/auth/mfa/enrol") => json_cell(path, json!({"password": PASSWORD})),
        ("post", "/api/v1/auth/mfa/confirm") => {
            let p = mfa_account(w, subject).await;
            let secret = enrol(w, &p).await;
            json_cell(path, json!({"code": crate::auth::current_code(&secret, 0)}))
        }
        ("post", "/api/v1/auth/mfa/disable" | "/api/v1/auth/mfa/recovery-codes") => {
            let p = mfa_account(w, subject).await;
            let secret = enable_mfa(w, &p).await;
            json_cell(path, json!({"password": PASSWORD, "code": crate::auth::current_code(&secret, 1)}))
        }
        ("post", "/api/v1/auth/tokens/attenuate") => json_cell(path, json!({"operations": ["read"], "expires_in": 60})),

        // Administration.
        ("get", "/api/v1/admin/users") => cell(format!("{path}?email={}&limit=200", w.tag), Body::None),
        ("post", "/api/v1/admin/users") => json_cell(
            path,
            json!({"email": unique("made"), "password": PASSWORD, "role": "clinician", "staff_role": "doctor",
                "department": "cardiology", "full_name": "Made Byadmin"}),
        ),
        ("patch", "/api/v1/admin/users/{id}") => {
            let target = w.account_like(&w.nurse).await;
            json_cell(with_id(target.id), json!({"department": "cardiology"}))
        }
        ("post", "/api/v1/admin/users/{id}/mfa/reset") => {
            let target = w.account_like(&w.other_patient).await;
            cell(with_id(target.id), Body::None)
        }
        ("post", "/api/v1/admin/users/{id}/confirm-link") => {
            // An account linked at registration to a chart, waiting for the clinic's confirmation.
            let target = w.account_like(&w.other_patient).await;
            careport_store::chart_links::record(w.app.services.store_handle(), target.id).await.expect("link");
            cell(with_id(target.id), Body::None)
        }
        ("put", "/api/v1/admin/mfa-policy") => json_cell(path, json!({"required_roles": []})),
        ("post", "/api/v1/admin/invitations") => json_cell(
            path,
            json!({"email": unique("invite"), "role": "clinician", "staff_role": "nurse", "department": "oncology"}),
        ),
        ("get", "/api/v1/admin/audit") => cell(format!("{path}?patient={patient}&limit=200"), Body::None),
        ("post", "/api/v1/admin/cancer-types") => json_cell(
            path,
            json!({"name": format!("Type {}", Uuid::new_v4().simple()), "description": "Made by a cell"}),
        ),
        ("patch", "/api/v1/admin/cancer-types/{id}") => {
            json_cell(path.replace("{id}", "uterine"), json!({"retired": false}))
        }
        ("post", "/api/v1/admin/plugins") => {
            json_cell(path, plugin_body(&format!("cell-{}", &Uuid::new_v4().simple().to_string()[..8])))
        }
        ("post", "/api/v1/admin/plugins/{name}/call") => {
            // Enabled, whatever the `disable` row left.
            let enable = format!("/api/v1/admin/plugins/{PLUGIN}/enable");
            assert_eq!(w.send_as(&w.admin, "POST", &enable, None).await.0, 200, "enable the plugin");
            json_cell(path.replace("{name}", PLUGIN), json!({"text": "x", "pages": [], "language": "en"}))
        }
        (_, p) if p.starts_with("/api/v1/admin/plugins/{name}") => cell(path.replace("{name}", PLUGIN), Body::None),

        // Reference data.
        ("get", "/api/v1/i18n/{locale}") => cell(path.replace("{locale}", "en"), Body::None),
        ("get", "/api/v1/cancer-types/{id}/subtypes") => cell(path.replace("{id}", "uterine"), Body::None),
        ("get", "/api/v1/record-types/match") => cell(format!("{path}?q=blood%20count"), Body::None),

        // Patients and care teams.
        ("get", "/api/v1/patients" | "/api/v1/appointments" | "/api/v1/clinicians") => {
            cell(format!("{path}?limit=200"), Body::None)
        }
        ("post", "/api/v1/patients") => json_cell(path, json!({"full_name": "Opened Byacell"})),
        ("patch", "/api/v1/patients/{id}") => json_cell(with_id(patient), json!({"phone": "+44 20 7946 0000"})),
        ("post", "/api/v1/patients/{id}/assignments") => {
            // Not assigned before the cell: assigning answers 201.
            careport_store::assignments::unassign(w.app.services.store_handle(), w.spare.id, patient, None)
                .await
                .expect("unassign");
            json_cell(with_id(patient), json!({"clinician_id": w.spare.id, "cancer_type_id": SUBTYPE}))
        }
        ("delete", "/api/v1/patients/{id}/assignments/{clinician_id}") => {
            // Assigned before the cell (oncology, like the patient's team: no one's access changes).
            careport_store::assignments::assign(w.app.services.store_handle(), w.spare.id, patient, None, None)
                .await
                .expect("assign");
            cell(with_id(patient).replace("{clinician_id}", &w.spare.id.to_string()), Body::None)
        }
        ("post", "/api/v1/patients/{id}/appointments") => json_cell(
            with_id(patient),
            json!({"clinician_id": w.doctor.id, "starts_at": w.free_slot().await, "reason": "Follow-up"}),
        ),
        ("post", "/api/v1/patients/{id}/erase" | "/api/v1/patients/{id}/restore") => {
            cell(with_id(w.patient_of_doctor(true).await), Body::None)
        }
        ("delete", "/api/v1/patients/{id}") => cell(with_id(w.patient_of_doctor(false).await), Body::None),
        ("get", "/api/v1/patients/{id}/records" | "/api/v1/patients/{id}/images") => {
            cell(format!("{}?limit=200", with_id(patient)), Body::None)
        }
        ("post", "/api/v1/patients/{id}/records") => {
            let title = format!("Upload {}", Uuid::new_v4().simple());
            let query =
                format!("?record_type=laboratory-results&title={}&file_name=cell.pdf", title.replace(' ', "%20"));
            cell(format!("{}{query}", with_id(patient)), Body::Raw(pdf(&title)))
        }
        ("get", "/api/v1/users/{id}") => cell(with_id(patient), Body::None),
        ("get", "/api/v1/me/access-log") => cell(format!("{path}?limit=200"), Body::None),

        // Clinicians (the assigned doctor).
        ("get", "/api/v1/clinicians/{id}/slots") => {
            cell(format!("{}?from={}&to={}", with_id(w.doctor.id), in_hours(24), in_hours(24 * 7)), Body::None)
        }
        ("patch", "/api/v1/clinicians/{id}") => {
            json_cell(with_id(w.doctor.id), json!({"bio": "Gynaecological oncology."}))
        }
        // The same hours again: the booking cells keep their slots.
        ("put", "/api/v1/clinicians/{id}/hours") => json_cell(with_id(w.doctor.id), hours()),
        ("post", "/api/v1/clinicians/{id}/exceptions") => json_cell(
            with_id(w.doctor.id),
            json!({"starts_at": in_hours(24 * 200), "ends_at": in_hours(24 * 200 + 4), "kind": "training"}),
        ),
        ("delete", "/api/v1/clinicians/{id}/exceptions/{exception_id}") => {
            let body = json!({"starts_at": in_hours(24 * 210), "ends_at": in_hours(24 * 210 + 4), "kind": "leave"});
            let made = format!("/api/v1/clinicians/{}/exceptions", w.doctor.id);
            let (s, v) = w.send_as(&w.doctor, "POST", &made, Some(body)).await;
            assert_eq!(s, 201, "absence: {v}");
            let id = v["id"].as_str().expect("absence id");
            cell(with_id(w.doctor.id).replace("{exception_id}", id), Body::None)
        }
        (_, p) if p.starts_with("/api/v1/clinicians/{id}") => cell(with_id(w.doctor.id), Body::None),

        // Appointments.
        ("get", "/api/v1/appointments/{id}") => {
            let a = if variant == Variant::DeletedPatient { w.gone_appointment } else { w.appointment };
            cell(with_id(a), Body::None)
        }
        ("patch" | "post", "/api/v1/appointments/{id}" | "/api/v1/appointments/{id}/cancel") => {
            let of = if variant == Variant::DeletedPatient { w.gone_patient.id } else { patient };
            let a = w.appointment(of, 60).await;
            let body = if method == "patch" {
                json!({"starts_at": w.free_slot().await})
            } else {
                json!({"reason": "The patient is unwell"})
            };
            json_cell(with_id(a), body)
        }

        // Medical records.
        ("get", "/api/v1/records/{id}" | CONTENT | "/api/v1/records/{id}/grants") => cell(with_id(record), Body::None),
        ("post", "/api/v1/records/{id}/grants") => {
            let mut body = json!({"user_id": w.sink.id, "expires_at": in_hours(2), "reason": "Second opinion"});
            if variant == Variant::NoReason {
                body.as_object_mut().expect("object").remove("reason");
            }
            json_cell(with_id(record), body)
        }
        ("delete", "/api/v1/records/{id}/grants/{grant_id}") => {
            let grant = w.grant(record, w.sink.id).await;
            cell(with_id(record).replace("{grant_id}", &grant.to_string()), Body::None)
        }
        ("post", "/api/v1/records/{id}/links") => json_cell(with_id(record), json!({"expires_in": 60})),
        ("post", "/api/v1/records/{id}/ocr") => json_cell(with_id(record), json!({"language": "en"})),
        ("get", "/api/v1/records/{id}/preview") => {
            crate::imaging::give_preview(&w.app, record).await;
            cell(format!("{}?size=thumb", with_id(record)), Body::None)
        }
        ("get", "/api/v1/records/{id}/text") => {
            crate::ocr::give_text(&w.app, record).await;
            cell(with_id(record), Body::None)
        }
        (_, p) if p.starts_with("/api/v1/ocr/jobs/{id}") => {
            // A queued job of the record, made for this cell (no worker takes it: it has no
            // queue row), so that cancelling it answers 200 in every cell that may.
            let job = crate::ocr::queued_job(&w.app, record).await;
            cell(with_id(job), Body::None)
        }
        ("delete", "/api/v1/records/{id}") => {
            let by = if who == Who::Uploader { &w.doctor } else { &w.admin };
            cell(
                with_id(w.upload(by, patient, &format!("To delete {}", Uuid::new_v4().simple()), false).await),
                Body::None,
            )
        }

        // The knowledge base: a document of its own per cell (for everyone to see).
        ("post", "/api/v1/knowledge/documents") => json_cell(path, knowledge_body()),
        ("get", "/api/v1/knowledge/documents") => cell(format!("{path}?limit=200"), Body::None),
        ("patch", "/api/v1/knowledge/documents/{id}") => {
            json_cell(with_id(knowledge_doc(w).await), json!({"title": "Renamed by a cell"}))
        }
        (_, "/api/v1/knowledge/documents/{id}") => cell(with_id(knowledge_doc(w).await), Body::None),
        (_, p) if p.starts_with("/api/v1/knowledge/jobs/{id}") => {
            // A job row of a document of the cell's own, queued (no worker takes it: it has no
            // queue row) so that cancelling answers 200, or cancelled so that a retry does.
            let doc = knowledge_doc(w).await;
            let job = Uuid::now_v7();
            let db = w.app.services.store_handle();
            careport_store::knowledge::insert_job(db, job, "index", Some(doc), 0, "none", None).await.expect("job");
            if p.ends_with("/retry") {
                careport_store::knowledge::cancel_job(db, job).await.expect("cancel");
            }
            cell(with_id(job), Body::None)
        }
        ("post", "/api/v1/knowledge/search") => json_cell(path, json!({"query": "fever on chemotherapy"})),
        ("post", "/api/v1/records/{id}/knowledge") => {
            crate::ocr::give_text(&w.app, record).await;
            cell(with_id(record), Body::None)
        }
        ("delete", "/api/v1/records/{id}/knowledge") => {
            // Opted in by the patient just before the cell.
            crate::ocr::give_text(&w.app, record).await;
            let (s, v) = w.send_as(&w.patient, "POST", &with_id(record), None).await;
            assert_eq!(s, 201, "opt in: {v}");
            cell(with_id(record), Body::None)
        }

        // The assistant: a session of the patient's per cell.
        ("post", "/api/v1/chat/sessions") => json_cell(path, json!({"title": "Opened by a cell"})),
        ("get", "/api/v1/chat/sessions") => cell(format!("{path}?limit=200"), Body::None),
        (_, p) if p.starts_with("/api/v1/chat/sessions/{id}") => {
            let session = chat_session(w).await;
            match (method, p) {
                ("patch", _) => json_cell(with_id(session), json!({"title": "Renamed by a cell"})),
                (_, "/api/v1/chat/sessions/{id}/suggestions") => {
                    cell(format!("{}?count=3", with_id(session)), Body::None)
                }
                (_, "/api/v1/chat/sessions/{id}/messages") => {
                    json_cell(with_id(session), json!({"text": "How long does radiotherapy take?"}))
                }
                (_, "/api/v1/chat/sessions/{id}/confirm") => {
                    // A booking prepared in the session, as the model's tool would.
                    let action = careport_actors::chat::PendingAction::Book {
                        clinician_id: w.doctor.id,
                        starts_at: in_hours(24 * 30),
                        reason: String::new(),
                        clinician: "Dr Cell".into(),
                    };
                    let id = w.app.services.chat.hold(patient, session, action);
                    json_cell(with_id(session), json!({"id": id, "accept": false}))
                }
                _ => cell(with_id(session), Body::None),
            }
        }

        (_, p) if p.contains('{') => cell(with_id(patient), Body::None),
        _ => cell(path, Body::None),
    }
}
