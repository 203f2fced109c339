//! Patients' records (list, create, read, update, soft delete, restore), a user's record and a
//! patient's access log.
//!
//! Each read of patient data writes its audit event and waits for the commit before it
//! answers: if the trail cannot be written, the read fails (503 `audit_unavailable`). A record a
//! caller may not see answers 404, like one that does not exist; a deleted record is visible to
//! administrators only.

use careport_domain::time::now_ms;
use careport_domain::{Code, Email, Error, Role};
use careport_policy::StaffRole;
use careport_store::audit::{self as trail, AccessRow};
use careport_store::patients::{self, PatientError, PatientFields, PatientRow};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::page::{self, Page, PageRequest};
use super::store_err;
use super::views::Patient;
use crate::access::{
    CreatePatient, DeletePatient, ListPatients, ReadOwnAccessLog, ReadPatient, ReadUser, RestorePatient, WritePatient,
    facts, scope,
};
use crate::audit::{EventExt, outcome};
use crate::identity::service::Account;
use crate::{Caller, Pass, Services, accounts};

/// The patient operations.
pub struct Patients<'a>(pub(crate) &'a Services);

/// What a patient list asks for.
#[derive(Debug, Clone, Default)]
pub struct PatientQuery {
    /// Part of the name or the medical record number.
    pub q: Option<String>,
    pub department: Option<String>,
    /// A cancer type id: patients assigned for it (a top-level type includes its subtypes).
    pub cancer_type: Option<String>,
    /// Include soft-deleted records (administrators only).
    pub include_deleted: bool,
    pub page: PageRequest,
}

/// Fields a patient may change on their own record.
const PATIENT_FIELDS: [&str; 4] = ["phone", "address", "emergency_contact", "preferred_language"];

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::with_message(Code::InvalidValue, message)
}

fn patient_error(e: PatientError) -> Error {
    match e {
        PatientError::MrnTaken => Error::new(Code::MrnTaken),
        PatientError::Store(e) => store_err(e),
    }
}

/// The record `id` as `caller` may see it: it exists and, for anyone but an administrator, is
/// not deleted (else 404).
pub(crate) async fn visible(services: &Services, caller: &Caller, id: Uuid) -> Result<PatientRow, Error> {
    let p = patients::get(&services.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
    if p.deleted_at.is_some() && !scope::sees_deleted(caller) {
        return Err(Error::new(Code::NotFound));
    }
    Ok(p)
}

/// The record `id` if it exists and is not deleted, for changes: a deleted record is refused
/// with 409 to those who may see it, 404 to everyone else.
pub(crate) async fn live(services: &Services, caller: &Caller, id: Uuid) -> Result<PatientRow, Error> {
    let p = visible(services, caller, id).await?;
    if p.deleted_at.is_some() {
        return Err(Error::with_message(Code::Conflict, "The record is deleted; restore it first."));
    }
    Ok(p)
}

/// The chart `id` if it exists and is not deleted (else 404 to everyone): for what hangs off a
/// chart — reports, studies, bills — whose own decision is already made.
pub(crate) async fn live_chart(services: &Services, id: Uuid) -> Result<PatientRow, Error> {
    match patients::get(&services.db, id).await.map_err(store_err)? {
        Some(p) if p.deleted_at.is_none() => Ok(p),
        _ => Err(Error::new(Code::NotFound)),
    }
}

impl Patients<'_> {
    /// The patients the caller may see: a patient themself, a doctor their assigned patients, a
    /// nurse their department's, an administrator everyone. One audit event names the patients
    /// returned.
    pub async fn list(&self, pass: Pass<ListPatients>, q: PatientQuery) -> Result<Page<Patient>, Error> {
        let caller = pass.caller();
        let limit = q.page.limit()?;
        let after = page::decode_uuid(q.page.cursor.as_deref())?;
        if q.include_deleted && !scope::sees_deleted(caller) {
            return Err(Error::with_message(Code::Forbidden, "Only administrators see deleted records."));
        }
        if q.q.as_deref().is_some_and(|t| t.chars().count() > 100) {
            return Err(Error::with_message(Code::InvalidQuery, "q must be at most 100 characters."));
        }
        let filter = patients::ListFilter {
            text: q.q.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
            department: q.department,
            cancer_type: q.cancer_type,
            include_deleted: q.include_deleted,
        };
        let rows =
            patients::list(&self.0.db, &scope::patients(caller), &filter, after, limit).await.map_err(store_err)?;
        let ids: Vec<String> = rows.iter().map(|p| p.id.to_string()).collect();
        self.0
            .audit
            .one(caller.ctx.event("patient.list", outcome::SUCCESS).detail(format!(
                "{} records: {}",
                rows.len(),
                ids.join(",")
            )))
            .await?;
        Ok(Page::of(rows, limit, |p| p.id.to_string()).map(|p| Patient::from(&p)))
    }

    /// Open a patient record (clinicians and administrators). A nurse's new record is in her
    /// department unless she names another; a doctor who opens one joins its care team (in the
    /// same transaction), so that either can go on working on it. The patient links their
    /// account to it by registering with the record's e-mail address.
    pub async fn create(&self, pass: Pass<CreatePatient>, body: Map<String, Value>) -> Result<Patient, Error> {
        let caller = pass.caller();
        if !body.contains_key("full_name") {
            return Err(invalid("full_name is required."));
        }
        let claims = caller.token.claims();
        let department = match claims.staff_role {
            Some(StaffRole::Nurse) => claims.department.clone(),
            _ => None,
        };
        let mut f =
            PatientFields { sex: "unknown".into(), preferred_language: "en".into(), department, ..Default::default() };
        apply(self.0, &mut f, &body).await?;
        let id = Uuid::now_v7();
        let generated = f.mrn.is_empty();
        let join = (claims.staff_role == Some(StaffRole::Doctor)).then_some(claims.user);
        // A generated number can collide (one in ten billion per record): try again.
        let mut tries = 0;
        loop {
            if generated {
                f.mrn = patients::generate_mrn();
            }
            match patients::create(&self.0.db, id, &f, Some(caller.user()), join).await {
                Ok(()) => break,
                Err(PatientError::MrnTaken) if generated && tries < 3 => tries += 1,
                Err(e) => return Err(patient_error(e)),
            }
        }
        self.0
            .audit
            .one(caller.ctx.event("patient.create", outcome::SUCCESS).resource("patient", id).patient(id))
            .await?;
        let p = patients::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok(Patient::from(&p))
    }

    /// A patient's record with their care team. The record and its team come from one query,
    /// and the decision is made with the facts taken from them, so this hot read costs one
    /// store round trip before its audit event.
    pub async fn read(&self, caller: Caller, id: Uuid) -> Result<Patient, Error> {
        let loaded = patients::get_with_team(&self.0.db, id).await.map_err(store_err)?;
        let facts = loaded.as_ref().map(|(p, team)| facts::patient_facts_of(p, team)).unwrap_or_default();
        let pass = self.0.access.pass_with_facts::<ReadPatient>(caller, id, &facts).await?;
        let caller = pass.caller();
        let (p, team) = loaded
            .filter(|(p, _)| p.deleted_at.is_none() || scope::sees_deleted(caller))
            .ok_or_else(|| Error::new(Code::NotFound))?;
        // Fail closed: no audit event, no data.
        self.0
            .audit
            .one(caller.ctx.event("patient.read", outcome::SUCCESS).resource("patient", id).patient(id))
            .await?;
        let mut v = Patient::from(&p);
        v.care_team = Some(team);
        Ok(v)
    }

    /// Update a record. Absent fields are kept; `null` clears one. A patient may change only
    /// their contact details (phone, address, emergency contact, preferred language).
    pub async fn update(&self, pass: Pass<WritePatient>, body: Map<String, Value>) -> Result<Patient, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let current = live(self.0, caller, id).await?;
        if caller.role() == Role::Patient
            && let Some(k) = body.keys().find(|k| !PATIENT_FIELDS.contains(&k.as_str()))
        {
            return Err(Error::with_message(
                Code::Forbidden,
                format!("Patients change only their contact details; ask the clinic to change {k}."),
            ));
        }
        // Whoever verifies a chart's address at registration is linked to that chart: on a chart
        // with no account yet, a new address is an administrator's decision, not a clinician's.
        if body.contains_key("email") && current.account_status.is_none() && caller.role() != Role::Admin {
            return Err(Error::with_message(
                Code::Forbidden,
                "Only an administrator changes the e-mail address of a chart without an account: whoever \
                 verifies that address at registration is linked to the chart.",
            ));
        }
        let mut f = PatientFields::from(&current);
        apply(self.0, &mut f, &body).await?;
        patients::update(&self.0.db, id, &f).await.map_err(patient_error)?;
        let fields: Vec<&str> = body.keys().map(String::as_str).collect();
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("patient.update", outcome::SUCCESS)
                    .resource("patient", id)
                    .patient(id)
                    .detail(format!("fields: {}", fields.join(","))),
            )
            .await?;
        let p = patients::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok(Patient::from(&p))
    }

    /// Soft-delete a record (administrators): hidden from everyone else, restorable, audited.
    pub async fn delete(&self, pass: Pass<DeletePatient>) -> Result<Patient, Error> {
        self.set_deleted(pass.caller(), pass.id(), true).await
    }

    /// Restore a soft-deleted record (administrators).
    pub async fn restore(&self, pass: Pass<RestorePatient>) -> Result<Patient, Error> {
        self.set_deleted(pass.caller(), pass.id(), false).await
    }

    async fn set_deleted(&self, caller: &Caller, id: Uuid, delete: bool) -> Result<Patient, Error> {
        let current = visible(self.0, caller, id).await?;
        let (action, at) = if delete { ("patient.delete", Some(now_ms())) } else { ("patient.restore", None) };
        if current.deleted_at.is_some() != delete {
            patients::set_deleted(&self.0.db, id, at).await.map_err(store_err)?;
        }
        self.0.audit.one(caller.ctx.event(action, outcome::SUCCESS).resource("patient", id).patient(id)).await?;
        let p = patients::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok(Patient::from(&p))
    }

    /// A user record: one's own, or any for an administrator.
    pub async fn user(&self, pass: Pass<ReadUser>) -> Result<Account, Error> {
        let id = pass.id();
        let account = self.0.identity.account(id).await?;
        let mut event = pass.caller().ctx.event("user.read", outcome::SUCCESS).resource("user", id);
        if account.role == Role::Patient.as_str() {
            event = event.patient(id);
        }
        self.0.audit.one(event).await?;
        Ok(account)
    }

    /// Who opened the caller's record, and when (patients), newest first. The read is audited
    /// like any other (failing closed): the log names who read what, and whoever reads it — the
    /// patient, or someone holding their session — leaves a trace of their own.
    pub async fn access_log(&self, pass: Pass<ReadOwnAccessLog>, req: PageRequest) -> Result<Page<AccessRow>, Error> {
        let limit = req.limit()?;
        let before = page::decode_seq(req.cursor.as_deref())?;
        let own_since = careport_store::chart_links::own_reads_since(&self.0.db, pass.id()).await.map_err(store_err)?;
        let entries = trail::access_log(&self.0.db, pass.id(), own_since, before, limit).await.map_err(store_err)?;
        let event = pass
            .caller()
            .ctx
            .event("patient.access_log", outcome::SUCCESS)
            .resource("access_log", pass.id())
            .patient(pass.id())
            .detail(format!("{} entries", entries.len()));
        self.0.audit.one(event).await?;
        Ok(Page::of(entries, limit, |e| e.seq.to_string()))
    }
}

fn text(field: &str, v: &Value, max: usize) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            if s.chars().count() > max || s.chars().any(|c| c.is_control() && c != '\n') {
                return Err(invalid(format!("{field} must be at most {max} characters of text.")));
            }
            Ok(Some(s.to_owned()))
        }
        _ => Err(invalid(format!("{field} must be a string or null."))),
    }
}

fn phone(field: &str, v: &Value) -> Result<Option<String>, Error> {
    let p = text(field, v, 32)?;
    if let Some(p) = &p {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        if digits < 3 || !p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
            return Err(invalid(format!("{field} must be a phone number: digits, spaces, + - ( ) and dots.")));
        }
    }
    Ok(p)
}

fn date_of_birth(v: &Value) -> Result<Option<String>, Error> {
    let Some(s) = text("date_of_birth", v, 10)? else { return Ok(None) };
    let bad = || invalid("date_of_birth must be a past date written YYYY-MM-DD.");
    let d: jiff::civil::Date = s.parse().map_err(|_| bad())?;
    let today = jiff::Zoned::now().date();
    if d > today || d.year() < 1880 || s.len() != 10 {
        return Err(bad());
    }
    Ok(Some(d.to_string()))
}

fn mrn(v: &Value) -> Result<Option<String>, Error> {
    let m = text("mrn", v, 32)?;
    if let Some(m) = &m
        && !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(invalid("mrn must be letters, digits and hyphens (at most 32)."));
    }
    Ok(m)
}

/// Apply a JSON object of changes to `f`. Absent keys keep their value; `null` clears an
/// optional field. Unknown keys are refused, so a typo never passes silently.
async fn apply(services: &Services, f: &mut PatientFields, body: &Map<String, Value>) -> Result<(), Error> {
    for (key, v) in body {
        match key.as_str() {
            "mrn" => f.mrn = mrn(v)?.ok_or_else(|| invalid("mrn cannot be empty."))?,
            "full_name" => {
                f.full_name = text("full_name", v, 200)?.ok_or_else(|| invalid("full_name is required."))?;
            }
            "date_of_birth" => f.date_of_birth = date_of_birth(v)?,
            "sex" => {
                let s = text("sex", v, 16)?.unwrap_or_else(|| "unknown".into());
                if !["female", "male", "other", "unknown"].contains(&s.as_str()) {
                    return Err(invalid("sex must be female, male, other or unknown."));
                }
                f.sex = s;
            }
            "email" => {
                f.email = match text("email", v, 254)? {
                    Some(e) => Some(Email::parse(&e)?.as_str().to_owned()),
                    None => None,
                };
            }
            "phone" => f.phone = phone("phone", v)?,
            "address" => f.address = text("address", v, 500)?,
            "emergency_contact" => match v {
                Value::Null => {
                    f.emergency_contact_name = None;
                    f.emergency_contact_phone = None;
                    f.emergency_contact_relation = None;
                }
                Value::Object(c) => {
                    for k in c.keys() {
                        if !["name", "phone", "relation"].contains(&k.as_str()) {
                            return Err(invalid(format!("emergency_contact has no field {k:?}.")));
                        }
                    }
                    let none = Value::Null;
                    f.emergency_contact_name = text("emergency_contact.name", c.get("name").unwrap_or(&none), 200)?;
                    f.emergency_contact_phone = phone("emergency_contact.phone", c.get("phone").unwrap_or(&none))?;
                    f.emergency_contact_relation =
                        text("emergency_contact.relation", c.get("relation").unwrap_or(&none), 50)?;
                }
                _ => return Err(invalid("emergency_contact must be an object {name, phone, relation} or null.")),
            },
            "preferred_language" => {
                let l = text("preferred_language", v, 8)?.unwrap_or_else(|| "en".into());
                accounts::check_language(&l)?;
                f.preferred_language = l;
            }
            "department" => {
                let d = text("department", v, 128)?;
                accounts::check_department(&services.db, d.as_deref()).await?;
                f.department = d;
            }
            other => return Err(invalid(format!("Patients have no field {other:?}."))),
        }
    }
    Ok(())
}
