//! The matrix's shared fixture, made once per run: the people, the patient's chart (three
//! records), the appointments, the grants and the links whose makers then change, a plugin.
//!
//! What is here is only read by the cells, never changed by them: a cell that changes something
//! acts on a target of its own (`targets`). Setup goes through the API where the API can do it
//! (uploads, grants, links, deactivation, hours), and through the store where it cannot (an
//! expired grant, an appointment outside the booking rules, a session row).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use careport_domain::Role;
use careport_policy::{Claims, StaffRole};
use careport_store::{appointments, assignments};
use careport_tests::{TestApp, spawn_app_with};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::clinic::send;

/// An account and the facts its tokens carry.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub staff: Option<StaffRole>,
    pub department: Option<&'static str>,
}

/// The cancer subtype assignments name.
pub const SUBTYPE: &str = "uterine-leiomyosarcoma-ulms";
/// The name of the plugin installed for the plugin routes.
pub const PLUGIN: &str = "rbac-probe";

/// Everything the cells share.
pub struct World {
    pub app: TestApp,
    /// In the e-mail address of every account made here (and of no account a cell makes).
    pub tag: String,
    /// The patient the matrix is about: in oncology through the assigned doctor.
    pub patient: Person,
    pub other_patient: Person,
    /// Assigned to the patient (and to `gone_patient`), oncology.
    pub doctor: Person,
    /// Cardiology, unassigned.
    pub doctor2: Person,
    pub nurse: Person,
    pub nurse2: Person,
    pub admin: Person,
    /// An unassigned cardiology doctor with a live grant on `record`.
    pub grantee: Person,
    /// An unassigned cardiology doctor whose grant on `record` has expired.
    pub lapsed: Person,
    /// Assigned doctors who made a link to `record`, then were deactivated / made a nurse.
    pub gone_maker: Person,
    pub moved_maker: Person,
    /// Whom the cells' grants go to: no caller, so a grant made by a cell changes no one's access.
    pub sink: Person,
    /// An oncology doctor the assignment cells assign and unassign.
    pub spare: Person,
    /// A soft-deleted patient of the assigned doctor, with an appointment.
    pub gone_patient: Person,
    /// The account of the public routes (login, refresh, reset, verify).
    pub public_user: Person,
    /// The patient's records: by the administrator; by the administrator and sensitive; by the
    /// assigned doctor (the uploader's).
    pub record: Uuid,
    pub sensitive: Uuid,
    pub uploaded: Uuid,
    /// `record`'s content.
    pub content: Vec<u8>,
    /// `grantee`'s and `lapsed`'s grants on `record`.
    pub grant: Uuid,
    pub lapsed_grant: Uuid,
    /// The patient's appointment with the assigned doctor, and `gone_patient`'s.
    pub appointment: Uuid,
    pub gone_appointment: Uuid,
    /// Links to `record` made by `gone_maker` and `moved_maker` before they changed.
    pub gone_link: String,
    pub moved_link: String,
    /// An administrator's token whose session was then ended.
    pub revoked: String,
}

/// `n` hours from now, RFC 3339.
pub fn in_hours(n: i64) -> String {
    jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(n)).expect("time").to_string()
}

/// A PDF-looking file unique to `seed`.
pub fn pdf(seed: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% careport rbac {seed}\n").into_bytes()
}

/// A contract-v1 WAT plugin that answers `{}`.
pub fn plugin_body(name: &str) -> Value {
    let module = r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "{}")
  (func (export "careport_contract") (result i32) (i32.const 1))
  (func (export "careport_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $p))
  (func (export "careport_call") (param i32 i32 i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 2))))"#;
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nkind = \"ocr-postprocess\"\ncontract = 1\nentry = \"{name}.wasm\"\nsha256 = \"{}\"\n",
        careport_plugins::manifest::sha256_hex(module.as_bytes())
    );
    json!({"manifest": manifest, "module_base64": data_encoding::BASE64.encode(module.as_bytes())})
}

impl World {
    /// An account with a fresh address (without the world's tag) like `like`.
    pub async fn account_like(&self, like: &Person) -> Person {
        let email = crate::clinic::unique("cell");
        self.person(email, like.role, like.staff, like.department).await
    }

    async fn person(&self, email: String, role: Role, staff: Option<StaffRole>, dept: Option<&'static str>) -> Person {
        let id = self.app.create_user(&email, role, staff, dept).await;
        Person { id, email, role, staff, department: dept }
    }

    /// A plain token of `p`'s, valid five minutes, on a session of its own.
    pub fn token(&self, p: &Person) -> String {
        self.mint(p, false, SystemTime::now() + Duration::from_secs(300))
    }

    pub fn mint(&self, p: &Person, mfa_pending: bool, expires_at: SystemTime) -> String {
        self.app.key_ring().mint(&claims(p, mfa_pending, expires_at)).expect("mint")
    }

    /// A request as `p`, for arranging; (status, body).
    pub async fn send_as(&self, p: &Person, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        send(&self.app, method, path, &self.token(p), body).await
    }

    /// Upload a PDF into the patient's chart as `by` (raw body, fields in the query).
    pub async fn upload(&self, by: &Person, patient: Uuid, title: &str, sensitive: bool) -> Uuid {
        let path = format!(
            "/api/v1/patients/{patient}/records?record_type=laboratory-results&title={}&file_name=r.pdf&sensitive={sensitive}",
            title.replace(' ', "%20")
        );
        let res = self
            .app
            .client
            .post(self.app.url(&path))
            .bearer_auth(self.token(by))
            .header("content-type", "application/octet-stream")
            .body(pdf(title))
            .send()
            .await
            .expect("upload");
        assert_eq!(res.status(), 201, "upload {title}");
        let v: Value = res.json().await.expect("json");
        v["id"].as_str().expect("id").parse().expect("uuid")
    }

    /// A grant on `record` to `to`, made by the patient; its id.
    pub async fn grant(&self, record: Uuid, to: Uuid) -> Uuid {
        let body = json!({"user_id": to, "expires_at": in_hours(2), "reason": "second opinion"});
        let (s, v) = self.send_as(&self.patient, "POST", &format!("/api/v1/records/{record}/grants"), Some(body)).await;
        assert_eq!(s, 201, "grant: {v}");
        v["id"].as_str().expect("grant id").parse().expect("uuid")
    }

    /// A signed link to `record` made by `maker`: its token.
    pub async fn link(&self, maker: &Person, record: Uuid) -> String {
        let path = format!("/api/v1/records/{record}/links");
        let (s, v) = self.send_as(maker, "POST", &path, Some(json!({"expires_in": 600}))).await;
        assert_eq!(s, 201, "link: {v}");
        v["url"].as_str().expect("url").split("link=").nth(1).expect("token").to_owned()
    }

    /// A scheduled appointment of `patient` with the assigned doctor, stored as is (booking
    /// rules do not apply to arranging): `days` ahead, plus an hour more for each one made.
    pub async fn appointment(&self, patient: Uuid, days: i64) -> Uuid {
        static SEQ: AtomicI64 = AtomicI64::new(0);
        let id = Uuid::now_v7();
        let now = careport_domain::time::now_ms();
        // A unique start (the store allows one scheduled appointment per clinician and start),
        // off the slots' grid.
        let starts_at = now + days * 86_400_000 + SEQ.fetch_add(1, Ordering::Relaxed) * 3_600_000 + 7_000;
        let row = appointments::AppointmentRow {
            id,
            patient_id: patient,
            clinician_id: self.doctor.id,
            starts_at,
            ends_at: starts_at + 1_800_000,
            status: "scheduled".into(),
            reason: String::new(),
            cancel_reason: None,
            booked_by: Some(self.admin.id),
            created_at: now,
            updated_at: now,
        };
        appointments::insert(self.app.services.store_handle(), &row).await.expect("appointment");
        id
    }

    /// The first free slot of the assigned doctor from tomorrow on.
    pub async fn free_slot(&self) -> String {
        let path =
            format!("/api/v1/clinicians/{}/slots?from={}&to={}", self.doctor.id, in_hours(24), in_hours(24 * 14));
        let (s, v) = self.send_as(&self.admin, "GET", &path, None).await;
        assert_eq!(s, 200, "slots: {v}");
        v["items"][0]["starts_at"].as_str().expect("a free slot").to_owned()
    }

    /// A patient assigned to the assigned doctor (so that the doctor and the oncology nurse
    /// relate to them as to the world's patient), soft-deleted or not.
    pub async fn patient_of_doctor(&self, deleted: bool) -> Uuid {
        let p = self.person(crate::clinic::unique("cellpat"), Role::Patient, None, None).await;
        assignments::assign(self.app.services.store_handle(), self.doctor.id, p.id, None, None).await.expect("assign");
        if deleted {
            careport_store::patients::set_deleted(
                self.app.services.store_handle(),
                p.id,
                Some(careport_domain::time::now_ms()),
            )
            .await
            .expect("delete");
        }
        p.id
    }

    /// Every account made by the setup (those whose address has the tag).
    pub fn people(&self) -> Vec<&Person> {
        vec![
            &self.patient,
            &self.other_patient,
            &self.doctor,
            &self.doctor2,
            &self.nurse,
            &self.nurse2,
            &self.admin,
            &self.grantee,
            &self.lapsed,
            &self.gone_maker,
            &self.moved_maker,
            &self.sink,
            &self.spare,
            &self.gone_patient,
            &self.public_user,
        ]
    }
}

pub fn claims(p: &Person, mfa_pending: bool, expires_at: SystemTime) -> Claims {
    Claims {
        user: p.id,
        role: p.role,
        staff_role: p.staff,
        department: p.department.map(str::to_owned),
        session: Uuid::now_v7(),
        expires_at,
        mfa_pending,
    }
}

/// The weekly hours of the assigned doctor: every day 09:00 to 12:00.
pub fn hours() -> Value {
    let hours: Vec<Value> = (1..=7).map(|d| json!({"weekday": d, "start_minute": 540, "end_minute": 720})).collect();
    json!({ "hours": hours })
}

/// Build the world.
pub async fn world() -> World {
    // The matrix books many times as one patient (one cell per kind of caller): the limits on a
    // patient's own bookings are tested on their own, not here.
    let app = spawn_app_with(
        |s| {
            s.clinic.max_open_per_clinician = 1_000;
            s.clinic.max_open_total = 1_000;
            s.clinic.bookings_per_hour = 1_000;
        },
        Vec::new(),
    )
    .await;
    let tag = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mk = |name: &str| format!("{name}-{tag}@example.org");
    let (doc, nurse) = (Some(StaffRole::Doctor), Some(StaffRole::Nurse));
    let (onc, card) = (Some("oncology"), Some("cardiology"));
    let mut people = Vec::new();
    for (name, role, staff, dept) in [
        ("pat", Role::Patient, None, None),
        ("other", Role::Patient, None, None),
        ("doc", Role::Clinician, doc, onc),
        ("doc2", Role::Clinician, doc, card),
        ("nurse", Role::Clinician, nurse, onc),
        ("nurse2", Role::Clinician, nurse, card),
        ("admin", Role::Admin, None, None),
        ("grantee", Role::Clinician, doc, card),
        ("lapsed", Role::Clinician, doc, card),
        ("gone", Role::Clinician, doc, onc),
        ("moved", Role::Clinician, doc, onc),
        ("sink", Role::Clinician, doc, card),
        ("spare", Role::Clinician, doc, onc),
        ("gonepat", Role::Patient, None, None),
        ("public", Role::Patient, None, None),
    ] {
        let email = mk(name);
        let id = app.create_user(&email, role, staff, dept).await;
        people.push(Person { id, email, role, staff, department: dept });
    }
    let mut it = people.into_iter();
    let mut next = || it.next().expect("person");
    let mut w = World {
        tag,
        patient: next(),
        other_patient: next(),
        doctor: next(),
        doctor2: next(),
        nurse: next(),
        nurse2: next(),
        admin: next(),
        grantee: next(),
        lapsed: next(),
        gone_maker: next(),
        moved_maker: next(),
        sink: next(),
        spare: next(),
        gone_patient: next(),
        public_user: next(),
        app,
        record: Uuid::nil(),
        sensitive: Uuid::nil(),
        uploaded: Uuid::nil(),
        content: pdf("Full blood count"),
        grant: Uuid::nil(),
        lapsed_grant: Uuid::nil(),
        appointment: Uuid::nil(),
        gone_appointment: Uuid::nil(),
        gone_link: String::new(),
        moved_link: String::new(),
        revoked: String::new(),
    };
    let db = w.app.services.store_handle();
    // The patient is treated in oncology by the assigned doctor (and by the two link makers);
    // the deleted patient too.
    for d in [&w.doctor, &w.gone_maker, &w.moved_maker] {
        assignments::assign(db, d.id, w.patient.id, None, None).await.expect("assign");
    }
    assignments::assign(db, w.doctor.id, w.gone_patient.id, None, None).await.expect("assign");
    let (s, v) = w.send_as(&w.doctor, "PUT", &format!("/api/v1/clinicians/{}/hours", w.doctor.id), Some(hours())).await;
    assert_eq!(s, 200, "hours: {v}");

    w.record = w.upload(&w.admin, w.patient.id, "Full blood count", false).await;
    w.sensitive = w.upload(&w.admin, w.patient.id, "HIV test", true).await;
    w.uploaded = w.upload(&w.doctor, w.patient.id, "Biopsy report", false).await;
    w.grant = w.grant(w.record, w.grantee.id).await;
    w.lapsed_grant = w.grant(w.record, w.lapsed.id).await;
    expire_grant(&w.app, w.lapsed_grant).await;

    // Links made while their makers could read the record; then one maker leaves, the other
    // becomes a nurse (same department).
    w.gone_link = w.link(&w.gone_maker, w.record).await;
    w.moved_link = w.link(&w.moved_maker, w.record).await;
    for (p, change) in [(&w.gone_maker, json!({"active": false})), (&w.moved_maker, json!({"staff_role": "nurse"}))] {
        let (s, v) = w.send_as(&w.admin, "PATCH", &format!("/api/v1/admin/users/{}", p.id), Some(change)).await;
        assert_eq!(s, 200, "change maker: {v}");
    }

    w.appointment = w.appointment(w.patient.id, 1).await;
    w.gone_appointment = w.appointment(w.gone_patient.id, 2).await;
    let (s, v) = w.send_as(&w.admin, "DELETE", &format!("/api/v1/patients/{}", w.gone_patient.id), None).await;
    assert_eq!(s, 204, "delete patient: {v}");

    let (s, v) = w.send_as(&w.admin, "POST", "/api/v1/admin/plugins", Some(plugin_body(PLUGIN))).await;
    assert_eq!(s, 201, "plugin: {v}");

    // A token whose session its holder ended.
    w.revoked = w.token(&w.admin);
    let (s, v) = send(&w.app, "POST", "/api/v1/auth/logout", &w.revoked, Some(json!({}))).await;
    assert_eq!(s, 204, "logout: {v}");
    w
}

/// Make a grant expired (a second ago), as time would.
async fn expire_grant(app: &TestApp, grant: Uuid) {
    let past = careport_domain::time::now_ms() - 1000;
    match app.services.store_handle().writer() {
        careport_store::db::Pool::Sqlite(p) => {
            let sql = "UPDATE record_grants SET expires_at = ?1 WHERE id = ?2";
            sqlx::query(sql).bind(past).bind(grant).execute(p).await.expect("expire grant");
        }
        careport_store::db::Pool::Postgres(p) => {
            let sql = "UPDATE record_grants SET expires_at = $1 WHERE id = $2";
            sqlx::query(sql).bind(past).bind(grant).execute(p).await.expect("expire grant");
        }
    }
}
