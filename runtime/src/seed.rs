//! `careport seed-demo`: a realistic demo clinic in an empty store — administrators, clinicians
//! with hours and specializations, patients' records (some with accounts), care-team
//! assignments and appointments over four weeks (two past, two ahead); then
//! [`crate::seed_charts`] adds images, reports and bills to the first charts, through the door.
//!
//! Every password is generated here and printed once, on standard output; none is fixed
//! anywhere. Demo addresses use the reserved `.example` domain, so no e-mail can reach anyone.
//!
//! Unlike `user create` and `records import`, which go through the service operations
//! (`careport_actors::door`) as an operator, this writes its fixture straight into the store, on
//! purpose: it writes *history* — appointments two weeks in the past, completed or missed —
//! which no operation allows (a booking in the past is refused), and it runs only on an empty
//! store, where no rule has anything to protect yet. Accounts are still made by the shared
//! account rules (`careport_actors::accounts`).

use anyhow::{Context, bail};
use careport_actors::accounts::{self, NewAccount};
use careport_actors::clinic::{slots, time_zone};
use careport_domain::time::now_ms;
use careport_domain::{Email, Role};
use careport_policy::StaffRole;
use careport_store::appointments::{self, AppointmentRow, BookError};
use careport_store::clinicians::{self, Hours, Specialization};
use careport_store::patients::{self, PatientFields};
use careport_store::{Db, assignments, reference, users};
use uuid::Uuid;

use crate::settings::Settings;

/// The domain of every demo address (reserved by RFC 2606: mail to it goes nowhere).
pub const DEMO_DOMAIN: &str = "demo.careport.example";

/// How much to seed.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub admins: usize,
    pub clinicians: usize,
    pub patients: usize,
    /// Patients who also get an account (the first ones).
    pub patient_accounts: usize,
    /// Appointments per patient over the four weeks (on average).
    pub appointments_per_patient: usize,
}

const FIRST: [&str; 40] = [
    "Amina", "Ben", "Chloé", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kavya", "Liam", "Maya",
    "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Samuel", "Tara", "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
    "Aarav", "Beatriz", "Carlos", "Dalia", "Emeka", "Fatima", "Gustavo", "Hana", "Ivan", "Julia", "Karim", "Lucía",
    "Mei", "Noah",
];
const LAST: [&str; 40] = [
    "Abara",
    "Bernard",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fernández",
    "García",
    "Haddad",
    "Ibrahim",
    "Jensen",
    "Kumar",
    "Laurent",
    "Martin",
    "Nguyen",
    "Okafor",
    "Patel",
    "Quispe",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Vargas",
    "Wang",
    "Xu",
    "Yamamoto",
    "Zhang",
    "Ahmed",
    "Bianchi",
    "Costa",
    "Diallo",
    "Evans",
    "Fischer",
    "Gupta",
    "Hassan",
    "Ivanova",
    "Jovanović",
    "Kowalski",
    "López",
    "Moreau",
    "Novak",
];
const DEPARTMENTS: [&str; 6] =
    ["oncology", "radiation-oncology", "surgical-oncology", "hematology", "gynecologic-oncology", "palliative-care"];
const LANGS: [&str; 10] = ["en", "en", "en", "en", "es", "fr", "ar", "zh", "hi", "es"];
const REASONS: [&str; 6] =
    ["Follow-up", "Treatment review", "New referral", "Scan results", "Chemotherapy cycle", "Symptom check"];

/// A small deterministic generator (xorshift), seeded from the OS, so one run is coherent.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Self(rand::random::<u64>() | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A generated password: 24 characters of base32 from 15 random bytes (120 bits).
fn password() -> String {
    let bytes: [u8; 15] = rand::random();
    data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
}

struct Credential {
    role: &'static str,
    email: String,
    password: String,
}

/// The store and settings, and the credentials generated so far.
struct Accounts<'a> {
    db: &'a Db,
    settings: &'a Settings,
    creds: Vec<Credential>,
}

impl Accounts<'_> {
    async fn create(
        &mut self,
        email: String,
        name: String,
        role: Role,
        staff: Option<StaffRole>,
        department: Option<&str>,
    ) -> anyhow::Result<Uuid> {
        let (db, settings) = (self.db, self.settings);
        let pw = password();
        let id = accounts::create_account(
            db,
            &settings.auth.argon2,
            NewAccount {
                email: Email::parse(&email)?,
                password: pw.clone(),
                full_name: Some(name),
                role,
                staff_role: staff,
                department: department.map(str::to_owned),
                preferred_language: None,
                email_verified: true,
                link_record: true,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
        self.creds.push(Credential { role: role.as_str(), email, password: pw });
        Ok(id)
    }
}

/// Seed the demo clinic and print the generated credentials.
/// Seed the fixture; returns the charts (with their doctors) for [`crate::seed_charts`].
pub async fn seed(db: &Db, settings: &Settings, size: Size) -> anyhow::Result<Vec<crate::seed_charts::DemoChart>> {
    let already =
        users::list(db, &users::ListFilter { email_contains: Some(DEMO_DOMAIN), ..Default::default() }, None, 1)
            .await?;
    if !already.is_empty() {
        bail!("this store already holds demo data (accounts @{DEMO_DOMAIN}); seed an empty store");
    }
    let tz = time_zone(&settings.clinic.time_zone)?;
    let mut rng = Rng::new();
    let mut accounts = Accounts { db, settings, creds: Vec::new() };
    let types = reference::cancer_types(db, false).await?;
    let top: Vec<&str> = types.iter().filter(|t| t.parent_id.is_none()).map(|t| t.id.as_str()).collect();
    let subtypes: Vec<(&str, &str)> =
        types.iter().filter_map(|t| t.parent_id.as_deref().map(|p| (t.id.as_str(), p))).collect();
    if subtypes.is_empty() {
        bail!("the cancer-type tree has no subtypes to assign");
    }

    for i in 1..=size.admins {
        let name = format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST));
        accounts.create(format!("admin{i}@{DEMO_DOMAIN}"), name, Role::Admin, None, None).await?;
    }

    // Clinicians: three doctors to every two nurses, spread over the departments.
    let mut doctors: Vec<(Uuid, &str)> = Vec::new();
    for i in 1..=size.clinicians {
        let dept = DEPARTMENTS[(i - 1) % DEPARTMENTS.len()];
        let staff = if i % 5 == 0 || i % 5 == 3 { StaffRole::Nurse } else { StaffRole::Doctor };
        let name = format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST));
        let email = format!("{}{i}@{DEMO_DOMAIN}", staff.as_str());
        let id = accounts.create(email, name, Role::Clinician, Some(staff), Some(dept)).await?;
        let slot = [20, 30, 30, 45][rng.below(4)];
        clinicians::set_profile(db, id, &format!("{} in {}.", staff.as_str(), dept.replace('-', " ")), slot, None)
            .await?;
        let mut hours: Vec<Hours> = Vec::new();
        for weekday in 1..=5 {
            if rng.below(6) == 0 {
                continue; // a day off
            }
            hours.push(Hours { weekday, start_minute: 8 * 60 + 30, end_minute: 12 * 60 });
            hours.push(Hours { weekday, start_minute: 13 * 60, end_minute: 17 * 60 });
        }
        clinicians::set_hours(db, id, &hours).await?;
        let primary = *rng.pick(&top);
        let mut specs = vec![Specialization { cancer_type_id: primary.to_owned(), is_primary: true }];
        let second = *rng.pick(&top);
        if second != primary {
            specs.push(Specialization { cancer_type_id: second.to_owned(), is_primary: false });
        }
        clinicians::set_specializations(db, id, &specs).await?;
        if staff == StaffRole::Doctor {
            doctors.push((id, dept));
        }
    }
    if doctors.is_empty() {
        bail!("at least one doctor is needed (--clinicians 1 or more)");
    }

    // Patients' records; the first ones also get an account (linked by address).
    let now = now_ms();
    let mut patient_ids = Vec::with_capacity(size.patients);
    for i in 1..=size.patients {
        let first = *rng.pick(&FIRST);
        let last = *rng.pick(&LAST);
        let (doctor, dept) = *rng.pick(&doctors);
        let email = format!("patient{i}@{DEMO_DOMAIN}");
        let year = 1940 + rng.below(66);
        let fields = PatientFields {
            mrn: patients::generate_mrn(),
            full_name: format!("{first} {last}"),
            date_of_birth: Some(format!("{year}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))),
            sex: ["female", "male", "female", "male", "other"][rng.below(5)].to_owned(),
            email: Some(email.clone()),
            phone: Some(format!("+1 555 01{:02} {:04}", rng.below(100), rng.below(10_000))),
            address: Some(format!("{} Elm Street, Springfield", 1 + rng.below(400))),
            emergency_contact_name: Some(format!("{} {last}", rng.pick(&FIRST))),
            emergency_contact_phone: Some(format!("+1 555 02{:02} {:04}", rng.below(100), rng.below(10_000))),
            emergency_contact_relation: Some(["spouse", "parent", "child", "sibling", "friend"][rng.below(5)].into()),
            preferred_language: (*rng.pick(&LANGS)).to_owned(),
            department: Some(dept.to_owned()),
        };
        let id = Uuid::now_v7();
        patients::create(db, id, &fields, None, None).await.with_context(|| format!("patient {i}"))?;
        if i <= size.patient_accounts {
            let linked = accounts.create(email, fields.full_name.clone(), Role::Patient, None, None).await?;
            if linked != id {
                bail!("patient {i}'s account was not linked to their record");
            }
        }
        let (subtype, _) = *rng.pick(&subtypes);
        assignments::assign(db, doctor, id, Some(subtype), None).await?;
        patient_ids.push((id, doctor));
        if i % 1000 == 0 {
            eprintln!("  {i} patients");
        }
    }

    // Appointments in the clinicians' slots, two weeks back and two ahead.
    let from = now - 14 * 86_400_000;
    let to = now + 14 * 86_400_000;
    let mut booked = 0usize;
    let wanted = size.patients * size.appointments_per_patient;
    let mut calendars = std::collections::HashMap::new();
    for (id, _) in &doctors {
        let c = clinicians::get(db, *id).await?.context("doctor")?;
        let h = clinicians::hours(db, *id).await?;
        calendars.insert(*id, slots::working_slots(&tz, &h, c.slot_minutes, from, to));
    }
    for attempt in 0..wanted * 3 {
        if booked == wanted {
            break;
        }
        let (patient, doctor) = patient_ids[attempt % patient_ids.len()];
        let Some(free) = calendars.get(&doctor).filter(|s| !s.is_empty()) else { continue };
        let (start, end) = *rng.pick(free);
        let row = AppointmentRow {
            id: Uuid::now_v7(),
            patient_id: patient,
            clinician_id: doctor,
            starts_at: start,
            ends_at: end,
            status: "scheduled".into(),
            reason: (*rng.pick(&REASONS)).to_owned(),
            cancel_reason: None,
            booked_by: None,
            created_at: now,
            updated_at: now,
        };
        match appointments::insert(db, &row).await {
            Ok(()) => booked += 1,
            Err(BookError::SlotTaken) => continue,
            Err(e) => return Err(e.into()),
        }
        if start < now {
            let (status, why) = match rng.below(10) {
                0 => ("cancelled", Some("Patient unwell")),
                1 => ("no_show", None),
                _ => ("completed", None),
            };
            appointments::set_status(db, row.id, status, why).await?;
        } else if rng.below(12) == 0 {
            appointments::set_status(db, row.id, "cancelled", Some("Rescheduled by the clinic")).await?;
        }
    }

    println!(
        "careport demo clinic seeded: {} admins, {} clinicians, {} patients ({} with accounts), {booked} appointments.",
        size.admins, size.clinicians, size.patients, size.patient_accounts
    );
    println!("These passwords are shown once and stored nowhere in clear. Keep them or reset them.\n");
    println!("{:<10} {:<42} password", "role", "e-mail");
    for c in accounts.creds {
        println!("{:<10} {:<42} {}", c.role, c.email, c.password);
    }
    Ok(patient_ids.into_iter().map(|(patient, doctor)| crate::seed_charts::DemoChart { patient, doctor }).collect())
}
