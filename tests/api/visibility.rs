//! Lists agree with single reads (issue #13, "One source for who sees whom").
//!
//! Who sees whom is decided in two places: a single read (`GET /patients/{id}`,
//! `/appointments/{id}`, `/records/{id}`) asks the policies (`policies/*.datalog`) with the
//! store's facts, while a list filters in SQL (`patients::list`, `appointments::list`) or row by
//! row (`GET /patients/{id}/records`). Two sources of one rule drift apart unnoticed, and then a
//! list shows what its caller may not open, or hides what they may. This property test proves
//! they agree: it generates a clinic from a seed and, for every caller in it, checks family by
//! family that the ids a list pages through are exactly the ids whose single read answers 200:
//!
//! - patients: `GET /patients` (all pages; administrators with `include_deleted=true`) against
//!   `GET /patients/{id}`;
//! - appointments: `GET /appointments` (all pages) against `GET /appointments/{id}`;
//! - records: for each patient, `GET /patients/{id}/records` (all pages; 404 is the empty set)
//!   against `GET /records/{id}` for that patient's records.
//!
//! The clinic (see [`generate`]): three of the seeded departments; doctors and nurses in them;
//! administrators; patients with and without an account and a record department; care
//! assignments of doctors and nurses, some of them ended; a deactivated clinician or none;
//! appointments (some cancelled) with doctors and nurses, some of soft-deleted patients; records,
//! some sensitive, some soft-deleted, some of soft-deleted patients; grants to administrators and
//! to others, live, expired or lapsing during the set-up; then soft-deleted patients. Callers are
//! every account that can hold a token: patients (deleted ones too: their account still signs
//! in), active doctors and nurses, administrators. Deactivated clinicians are not callers: their
//! sessions end when they are deactivated. Tokens are minted with the app's key, with each user's
//! real role, staff role and department, as `rbac.rs` does.
//!
//! Seeds: three fixed ones and one from the clock, each on a fresh app on the harness's backend;
//! `CAREPORT_TEST_VISIBILITY_SEED=n` runs seed `n` alone. A failure names the seed, the caller
//! (role, staff role, department), the family and the ids only in the list or only in single
//! reads, each with its data shape. Every seed's clinic holds the shapes that once disagreed (an
//! appointment of a deleted patient, a granted record of a deleted patient, a record granted to
//! someone outside its chart), so they stay covered.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use careport_domain::Role;
use careport_domain::time::now_ms;
use careport_policy::{Claims, StaffRole};
use careport_store::{appointments, assignments, patients, users, vault};
use careport_tests::{TestApp, spawn_app};
use futures_util::StreamExt;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use uuid::Uuid;

/// The seeds every run checks, besides one from the clock.
const FIXED_SEEDS: [u64; 3] = [1, 0x5eed_cafe, 20_261_126];

/// Set to a seed to run that seed alone (to reproduce a failure).
const SEED_VAR: &str = "CAREPORT_TEST_VISIBILITY_SEED";

/// The departments the migrations seed (`migrations/*/..._reference_data.sql`).
const SEEDED_DEPARTMENTS: [&str; 9] = [
    "oncology",
    "radiation-oncology",
    "surgical-oncology",
    "hematology",
    "gynecologic-oncology",
    "cardiology",
    "palliative-care",
    "radiology",
    "pathology",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Patients,
    Appointments,
    Records,
}

/// Which side an id was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    OnlyInList,
    OnlyInSingleReads,
}

/// An account of the generated clinic.
#[derive(Clone, Debug)]
struct Member {
    label: String,
    id: Uuid,
    role: Role,
    staff: Option<StaffRole>,
    department: Option<String>,
    active: bool,
}

impl Member {
    fn describe(&self) -> String {
        let staff = self.staff.map(StaffRole::as_str).unwrap_or("-");
        let dept = self.department.as_deref().unwrap_or("-");
        format!("{} ({}/{staff}/{dept}) {}", self.label, self.role.as_str(), self.id)
    }
}

#[derive(Clone, Debug)]
struct PatientInfo {
    label: String,
    id: Uuid,
    account: bool,
    department: Option<String>,
    deleted: bool,
    /// Assignments: (index in `Clinic::staff`, ended).
    team: Vec<(usize, bool)>,
}

#[derive(Clone, Debug)]
struct AppointmentInfo {
    label: String,
    id: Uuid,
    patient: usize,
    clinician: usize,
    status: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    /// A day ahead.
    Live,
    /// Written already expired.
    Past,
    /// Expired during the set-up (a short expiry, then a wait).
    Lapsed,
}

#[derive(Clone, Debug)]
struct RecordInfo {
    label: String,
    id: Uuid,
    patient: usize,
    sensitive: bool,
    deleted: bool,
    /// (grantee, expiry).
    grants: Vec<(Uuid, Expiry)>,
}

/// The generated clinic, as the test arranged it.
struct Clinic {
    seed: u64,
    departments: Vec<&'static str>,
    /// Doctors, nurses and administrators.
    staff: Vec<Member>,
    patients: Vec<PatientInfo>,
    appointments: Vec<AppointmentInfo>,
    records: Vec<RecordInfo>,
}

impl Clinic {
    fn label_of(&self, id: Uuid) -> String {
        if let Some(m) = self.staff.iter().find(|m| m.id == id) {
            return m.label.clone();
        }
        if let Some(p) = self.patients.iter().find(|p| p.id == id) {
            return p.label.clone();
        }
        id.to_string()
    }

    /// Everyone who can hold a token: patients with an account, active staff.
    fn callers(&self) -> Vec<Member> {
        let patients = self.patients.iter().filter(|p| p.account).map(|p| Member {
            label: p.label.clone(),
            id: p.id,
            role: Role::Patient,
            staff: None,
            department: None,
            active: true,
        });
        patients.chain(self.staff.iter().filter(|m| m.active).cloned()).collect()
    }

    fn describe_patient(&self, p: &PatientInfo) -> String {
        let team: Vec<String> = p
            .team
            .iter()
            .map(|&(s, ended)| {
                let m = &self.staff[s];
                format!(
                    "{}{}{}",
                    m.label,
                    if ended { " ended" } else { "" },
                    if m.active { "" } else { " deactivated" }
                )
            })
            .collect();
        format!(
            "patient {} {} [dept {}, {}{}, team: {}]",
            p.label,
            p.id,
            p.department.as_deref().unwrap_or("none"),
            if p.account { "account" } else { "no account" },
            if p.deleted { ", DELETED" } else { "" },
            if team.is_empty() { "none".to_owned() } else { team.join(", ") }
        )
    }

    fn describe(&self, family: Family, id: Uuid, caller: &Member) -> String {
        match family {
            Family::Patients => match self.patients.iter().find(|p| p.id == id) {
                Some(p) => self.describe_patient(p),
                None => format!("patient {id} (not generated)"),
            },
            Family::Appointments => match self.appointments.iter().find(|a| a.id == id) {
                Some(a) => format!(
                    "appointment {} {} [{}, with {}, of {}]",
                    a.label,
                    a.id,
                    a.status,
                    self.staff[a.clinician].label,
                    self.describe_patient(&self.patients[a.patient])
                ),
                None => format!("appointment {id} (not generated)"),
            },
            Family::Records => match self.records.iter().find(|r| r.id == id) {
                Some(r) => {
                    let grants: Vec<String> = r
                        .grants
                        .iter()
                        .map(|(g, e)| {
                            let who = if *g == caller.id { "the caller".to_owned() } else { self.label_of(*g) };
                            format!("{who} {e:?}")
                        })
                        .collect();
                    format!(
                        "record {} {} [{}{}, grants: {}, of {}]",
                        r.label,
                        r.id,
                        if r.sensitive { "sensitive" } else { "not sensitive" },
                        if r.deleted { ", DELETED" } else { "" },
                        if grants.is_empty() { "none".to_owned() } else { grants.join(", ") },
                        self.describe_patient(&self.patients[r.patient])
                    )
                }
                None => format!("record {id} (not generated)"),
            },
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var(SEED_VAR) {
        return vec![s.trim().parse().unwrap_or_else(|_| panic!("{SEED_VAR}={s:?} is not a u64"))];
    }
    let clock = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7);
    let mut all = FIXED_SEEDS.to_vec();
    all.push(clock);
    all
}

fn email(seed: u64, label: &str) -> String {
    format!("{}-{seed}-{}@example.org", label.to_lowercase(), &Uuid::new_v4().simple().to_string()[..6])
}

/// Build the clinic of `seed` in `app`'s store. The first patient is always soft-deleted and
/// has the first appointment and the first record (granted to the first administrator); the
/// second record, of a patient who is not deleted, is granted to another patient: shapes that
/// once disagreed are in every seed's clinic, whatever else it makes.
async fn generate(app: &TestApp, seed: u64) -> Clinic {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    // The app's own store handle, not the test's `app.db`: on SQLite each handle has one writer
    // connection, and a read-then-write transaction (`assignments::assign`) on a second handle
    // fails with "database is locked" when the app commits in between (seen here at start-up).
    let db = app.services.store_handle();
    let now = now_ms();

    let mut pool = SEEDED_DEPARTMENTS.to_vec();
    let mut departments = Vec::new();
    for _ in 0..3 {
        departments.push(pool.remove(rng.random_range(0..pool.len())));
    }
    let dept = |rng: &mut Xoshiro256PlusPlus| departments[rng.random_range(0..departments.len())].to_owned();

    // Staff: four doctors, three nurses, two administrators.
    let mut staff = Vec::new();
    for (prefix, n, role, staff_role) in [
        ("D", 4, Role::Clinician, Some(StaffRole::Doctor)),
        ("N", 3, Role::Clinician, Some(StaffRole::Nurse)),
        ("A", 2, Role::Admin, None),
    ] {
        for i in 0..n {
            let label = format!("{prefix}{i}");
            let department = staff_role.map(|_| dept(&mut rng));
            let id = app.create_user(&email(seed, &label), role, staff_role, department.as_deref()).await;
            staff.push(Member { label, id, role, staff: staff_role, department, active: true });
        }
    }
    let clinicians: Vec<usize> = (0..staff.len()).filter(|&i| staff[i].role == Role::Clinician).collect();
    let admins: Vec<usize> = (0..staff.len()).filter(|&i| staff[i].role == Role::Admin).collect();

    // Patients: six with an account, two records only; about a third without a department. The
    // department may be outside the three the staff work in (nobody's by department).
    let mut pats = Vec::new();
    for i in 0..8 {
        let label = format!("P{i}");
        let account = i < 6;
        let department = match rng.random_range(0..6) {
            0 | 1 => None,
            2 => Some(SEEDED_DEPARTMENTS[rng.random_range(0..SEEDED_DEPARTMENTS.len())].to_owned()),
            _ => Some(dept(&mut rng)),
        };
        let id = if account {
            let id = app.create_user(&email(seed, &label), Role::Patient, None, None).await;
            let row = patients::get(db, id).await.expect("patient row").expect("a patient account has a record");
            let mut fields = patients::PatientFields::from(&row);
            fields.department = department.clone();
            assert!(patients::update(db, id, &fields).await.expect("update patient"));
            id
        } else {
            let id = Uuid::now_v7();
            let fields = patients::PatientFields {
                mrn: patients::generate_mrn(),
                full_name: format!("Record-only {label}"),
                sex: "unknown".into(),
                preferred_language: "en".into(),
                department: department.clone(),
                ..Default::default()
            };
            patients::create(db, id, &fields, None, None).await.expect("create patient");
            id
        };
        pats.push(PatientInfo { label, id, account, department, deleted: false, team: Vec::new() });
    }

    // Care assignments (doctors more often than nurses); some end again.
    for p in &mut pats {
        for &c in &clinicians {
            let p_assign = if staff[c].staff == Some(StaffRole::Doctor) { 0.35 } else { 0.15 };
            if !rng.random_bool(p_assign) {
                continue;
            }
            assignments::assign(db, staff[c].id, p.id, None, Some(staff[admins[0]].id)).await.expect("assign");
            let ended = rng.random_bool(0.3);
            if ended {
                assert!(assignments::unassign(db, staff[c].id, p.id, None).await.expect("unassign"));
            }
            p.team.push((c, ended));
        }
    }

    // Appointments: twelve, with doctors and nurses (deactivated ones too), an hour apart; the
    // first is the deleted patient's. Some are cancelled.
    let mut appts = Vec::new();
    for i in 0..12 {
        let patient = if i == 0 { 0 } else { rng.random_range(0..pats.len()) };
        let clinician = clinicians[rng.random_range(0..clinicians.len())];
        let starts_at = now + (i as i64 - 3) * 3_600_000;
        let row = appointments::AppointmentRow {
            id: Uuid::now_v7(),
            patient_id: pats[patient].id,
            clinician_id: staff[clinician].id,
            starts_at,
            ends_at: starts_at + 1_800_000,
            status: "scheduled".into(),
            reason: String::new(),
            cancel_reason: None,
            booked_by: Some(staff[admins[0]].id),
            created_at: now,
            updated_at: now,
        };
        appointments::insert(db, &row).await.expect("appointment");
        let status = if rng.random_bool(0.2) {
            assert!(appointments::set_status(db, row.id, "cancelled", Some("generated")).await.expect("cancel"));
            "cancelled"
        } else {
            "scheduled"
        };
        appts.push(AppointmentInfo { label: format!("AP{i}"), id: row.id, patient, clinician, status });
    }

    // Records: ten, uploaded by various people; the first is the deleted patient's.
    let mut recs = Vec::new();
    let mut rows = Vec::new();
    for i in 0..10 {
        let patient = match i {
            0 => 0,
            1 => rng.random_range(1..pats.len()),
            _ => rng.random_range(0..pats.len()),
        };
        let sensitive = rng.random_bool(0.3);
        let uploaded_by = if pats[patient].account && rng.random_bool(0.3) {
            pats[patient].id
        } else {
            staff[rng.random_range(0..staff.len())].id
        };
        let meta = careport_actors::vault::UploadMeta {
            patient: pats[patient].id,
            record_type: if sensitive { "pathology-reports" } else { "laboratory-results" }.into(),
            title: format!("R{i} of seed {seed}"),
            clinical_date: None,
            file_name: format!("r{i}.pdf"),
            sensitive,
            uploaded_by,
        };
        let content = actix_web::web::Bytes::from(format!("%PDF-1.7\nseed {seed} record {i}\n"));
        let body = futures_util::stream::iter(vec![Ok::<_, std::convert::Infallible>(content)]);
        let row = app.services.vault.upload(meta, body).await.expect("upload").record;
        recs.push(RecordInfo {
            label: format!("R{i}"),
            id: row.id,
            patient,
            sensitive,
            deleted: false,
            grants: Vec::new(),
        });
        rows.push(row);
    }

    // Grants: the first record to the first administrator; the second to a patient who is not
    // its own; then eight more to anyone (administrators half the time), live, expired or lapsing.
    let others: Vec<usize> = (0..6).filter(|&q| q != recs[1].patient).collect();
    let other = others[rng.random_range(0..others.len())];
    let mut to_grant = vec![(0, staff[admins[0]].id, Expiry::Live), (1, pats[other].id, Expiry::Live)];
    for _ in 0..8 {
        let r = rng.random_range(0..recs.len());
        let grantee = if rng.random_bool(0.5) {
            staff[admins[rng.random_range(0..admins.len())]].id
        } else if rng.random_bool(0.5) {
            staff[clinicians[rng.random_range(0..clinicians.len())]].id
        } else {
            pats[rng.random_range(0..6)].id
        };
        let expiry = match rng.random_range(0..5) {
            0 => Expiry::Past,
            1 => Expiry::Lapsed,
            _ => Expiry::Live,
        };
        to_grant.push((r, grantee, expiry));
    }
    // The service writes any expiry it is given (the route refuses past ones): an expired grant
    // is written as such, a lapsing one expires while the rest is arranged.
    let lapse_at = now_ms() + 400;
    for (r, grantee, expiry) in to_grant {
        let expires_at = match expiry {
            Expiry::Live => now + 86_400_000,
            Expiry::Past => now - 60_000,
            Expiry::Lapsed => lapse_at,
        };
        app.services
            .vault
            .grant(&rows[r], grantee, expires_at, Some("generated".into()), staff[admins[0]].id)
            .await
            .expect("grant");
        recs[r].grants.push((grantee, expiry));
    }

    // Soft-deleted records (never the first two), clinicians deactivated, patients deleted.
    for r in recs.iter_mut().skip(2) {
        if rng.random_bool(0.2) {
            assert!(vault::delete_record(db, r.id, staff[admins[0]].id).await.expect("delete record"));
            r.deleted = true;
        }
    }
    if rng.random_bool(0.6) {
        let c = clinicians[rng.random_range(0..clinicians.len())];
        assert!(users::set_active(db, staff[c].id, false).await.expect("deactivate"));
        staff[c].active = false;
    }
    // The second record's patient stays: their chart is the one granted outside the chart.
    let kept = recs[1].patient;
    for (i, p) in pats.iter_mut().enumerate() {
        if i == 0 || (i != kept && rng.random_bool(0.2)) {
            assert!(patients::set_deleted(db, p.id, Some(now_ms())).await.expect("delete patient"));
            p.deleted = true;
        }
    }

    // The lapsing grants have expired before anyone reads.
    let wait = lapse_at + 50 - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }

    Clinic { seed, departments, staff, patients: pats, appointments: appts, records: recs }
}

fn token(app: &TestApp, m: &Member) -> String {
    let claims = Claims {
        user: m.id,
        role: m.role,
        staff_role: m.staff,
        department: m.department.clone(),
        session: Uuid::now_v7(),
        expires_at: SystemTime::now() + Duration::from_secs(600),
        mfa_pending: false,
    };
    app.key_ring().mint(&claims).expect("mint")
}

/// GET as `token`: (status, body).
async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app.get_as(path, token).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Every id a list pages through (`None`: the list answered 404). Any other status, or an id
/// listed twice, is a failure of its own.
async fn list_ids(app: &TestApp, token: &str, path: &str, errors: &mut Vec<String>) -> Option<BTreeSet<Uuid>> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..200 {
        let mut page = format!("{path}{sep}limit=3");
        if let Some(c) = &cursor {
            page.push_str(&format!("&cursor={c}"));
        }
        let (status, v) = get(app, token, &page).await;
        match status {
            200 => {}
            404 if cursor.is_none() => return None,
            s => {
                errors.push(format!("GET {page} answered {s}: {v}"));
                return Some(ids);
            }
        }
        for item in v["items"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let id = item["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()).expect("an item id");
            if !ids.insert(id) {
                errors.push(format!("GET {path}: {id} on two pages"));
            }
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Some(ids),
        }
    }
    errors.push(format!("GET {path}: more than 200 pages"));
    Some(ids)
}

/// The ids of `ids` whose single read (`prefix` + id) answers 200; statuses other than 200 and
/// 404 are failures of their own.
async fn readable(
    app: &TestApp,
    token: &str,
    prefix: &str,
    ids: &BTreeSet<Uuid>,
    errors: &mut Vec<String>,
) -> BTreeSet<Uuid> {
    let statuses: Vec<(Uuid, u16)> = futures_util::stream::iter(ids.iter().copied())
        .map(|id| async move { (id, get(app, token, &format!("{prefix}{id}")).await.0) })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut ok = BTreeSet::new();
    for (id, status) in statuses {
        match status {
            200 => {
                ok.insert(id);
            }
            404 => {}
            s => errors.push(format!("GET {prefix}{id} answered {s}")),
        }
    }
    ok
}

/// One id on one side of one caller's family.
struct Disagreement {
    family: Family,
    side: Side,
    id: Uuid,
}

/// Record every id on one side only.
fn compare(family: Family, listed: &BTreeSet<Uuid>, read: &BTreeSet<Uuid>, found: &mut Vec<Disagreement>) {
    for (side, ids) in [(Side::OnlyInList, listed.difference(read)), (Side::OnlyInSingleReads, read.difference(listed))]
    {
        for &id in ids {
            found.push(Disagreement { family, side, id });
        }
    }
}

/// Check one caller, family by family: the disagreements, and how many ids the caller read in
/// each family (patients, appointments, records).
async fn check_caller(
    app: &TestApp,
    clinic: &Clinic,
    caller: &Member,
    errors: &mut Vec<String>,
) -> (Vec<Disagreement>, [usize; 3]) {
    let token = token(app, caller);
    let mut found = Vec::new();
    let mut reads = [0; 3];

    // Patients.
    let query = if caller.role == Role::Admin { "/api/v1/patients?include_deleted=true" } else { "/api/v1/patients" };
    let listed = list_ids(app, &token, query, errors).await.unwrap_or_default();
    let mut universe: BTreeSet<Uuid> = clinic.patients.iter().map(|p| p.id).collect();
    universe.extend(&listed);
    let read = readable(app, &token, "/api/v1/patients/", &universe, errors).await;
    compare(Family::Patients, &listed, &read, &mut found);
    reads[0] = read.len();

    // Appointments.
    let listed = list_ids(app, &token, "/api/v1/appointments", errors).await.unwrap_or_default();
    let mut universe: BTreeSet<Uuid> = clinic.appointments.iter().map(|a| a.id).collect();
    universe.extend(&listed);
    let read = readable(app, &token, "/api/v1/appointments/", &universe, errors).await;
    compare(Family::Appointments, &listed, &read, &mut found);
    reads[1] = read.len();

    // Records, chart by chart.
    for (i, p) in clinic.patients.iter().enumerate() {
        let listed =
            list_ids(app, &token, &format!("/api/v1/patients/{}/records", p.id), errors).await.unwrap_or_default();
        let mut universe: BTreeSet<Uuid> = clinic.records.iter().filter(|r| r.patient == i).map(|r| r.id).collect();
        universe.extend(&listed);
        let read = readable(app, &token, "/api/v1/records/", &universe, errors).await;
        compare(Family::Records, &listed, &read, &mut found);
        reads[2] += read.len();
    }
    (found, reads)
}

/// One family's disagreements for one caller, as a failure message.
fn report(clinic: &Clinic, caller: &Member, family: Family, ds: &[&Disagreement]) -> Option<String> {
    let ids = |side: Side| -> Option<String> {
        let ids: Vec<String> =
            ds.iter().filter(|d| d.side == side).map(|d| clinic.describe(family, d.id, caller)).collect();
        (!ids.is_empty()).then(|| ids.join("\n      "))
    };
    let (list, single) = (ids(Side::OnlyInList), ids(Side::OnlyInSingleReads));
    if list.is_none() && single.is_none() {
        return None;
    }
    let seed = clinic.seed;
    let mut msg = format!("seed {seed} (rerun: {SEED_VAR}={seed}), caller {}, {family:?}:", caller.describe());
    if let Some(ids) = list {
        let _ = write!(msg, "\n    only in the list:\n      {ids}");
    }
    if let Some(ids) = single {
        let _ = write!(msg, "\n    only in single reads:\n      {ids}");
    }
    Some(msg)
}

#[actix_web::test]
async fn visibility_lists_agree_with_single_reads_for_every_caller() {
    let seeds = seeds();
    eprintln!("visibility: seeds {seeds:?} (rerun one with {SEED_VAR}=<seed>)");
    let mut failures = Vec::new();
    for seed in seeds {
        let started = std::time::Instant::now();
        let app = spawn_app().await;
        let clinic = generate(&app, seed).await;
        let generated = started.elapsed();
        let mut errors = Vec::new();
        let callers = clinic.callers();
        // Ids read by callers other than administrators, per family: a clinic where nobody but
        // an administrator reads anything would prove nothing.
        let mut reads = [0; 3];
        for caller in &callers {
            let (found, read) = check_caller(&app, &clinic, caller, &mut errors).await;
            if caller.role != Role::Admin {
                for (total, n) in reads.iter_mut().zip(read) {
                    *total += n;
                }
            }
            for family in [Family::Patients, Family::Appointments, Family::Records] {
                let ds: Vec<&Disagreement> = found.iter().filter(|d| d.family == family).collect();
                failures.extend(report(&clinic, caller, family, &ds));
            }
        }
        failures.extend(errors.into_iter().map(|e| format!("seed {seed}: {e}")));
        if reads.contains(&0) {
            failures.push(format!(
                "seed {seed}: callers other than administrators read nothing in some family \
                 (patients, appointments, records: {reads:?}): the generator must make a richer clinic"
            ));
        }
        eprintln!(
            "visibility: seed {seed}: departments {:?}, {} callers, non-admin reads (patients, appointments, \
             records) {reads:?}, set up in {generated:?}, checked in {:?}",
            clinic.departments,
            callers.len(),
            started.elapsed() - generated
        );
    }
    assert!(
        failures.is_empty(),
        "lists and single reads disagree ({} finding(s)):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
