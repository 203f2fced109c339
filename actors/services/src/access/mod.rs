//! Access decisions: who may do what, decided once.
//!
//! [`Access`] runs the Datalog policies (`policies/*.datalog`) with the store facts a decision
//! needs, writes the audit event of every denial, and makes the [`Pass`] that service operations
//! take. It also owns the two things that must agree with the policies: the scopes of list
//! queries ([`scope`]: the Rust side of "who sees whom", proved equal to the single-resource
//! decisions by the visibility property test) and signed links ([`links`]).
//!
//! # Layout
//! - [`operations`]: the `operations!` list, [`Target`] and [`Pass`].
//! - [`facts`]: the store facts of a patient, an appointment, a medical record, a session.
//! - [`scope`]: list scopes derived from the caller's claims.
//! - [`links`]: minting and checking signed links, one check for every way a link is presented.

pub mod facts;
pub mod links;
pub mod operations;
pub mod scope;

use std::sync::Arc;
use std::time::SystemTime;

use careport_domain::{Code, Error};
use careport_policy::{Decision, Policies, Request, Resource, StoreFact};
use careport_store::Db;
use uuid::Uuid;

pub use operations::*;

use crate::audit::{Audit, EventExt, outcome};
use crate::identity::{Caller, Identity};

/// The access service. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    policies: Policies,
    audit: Audit,
    identity: Identity,
}

impl Access {
    /// `policies` come with their run limits already set.
    pub fn new(db: Db, policies: Policies, audit: Audit, identity: Identity) -> Self {
        Self { inner: Arc::new(Inner { db, policies, audit, identity }) }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Decide `O` for `caller` on the resource its target names (`id` for an instance; ignored
    /// otherwise) and hand back the pass. A denial is audited and answers 404 for an instance
    /// (its existence is not told) and 403 otherwise.
    pub async fn pass<O: Operation>(&self, caller: Caller, id: Option<Uuid>) -> Result<Pass<O>, Error> {
        let id = match O::TARGET {
            Target::OwnUser => caller.user(),
            Target::OwnSession => caller.session(),
            Target::Family => Uuid::nil(),
            Target::Instance => id.ok_or_else(|| Error::new(Code::NotFound))?,
        };
        if O::TARGET == Target::OwnSession && !caller.token.is_attenuated() {
            // Ending one's own session needs only one's own, unnarrowed token; an account that
            // must still enrol MFA can log out too.
            return Ok(Pass::new(caller, id));
        }
        let (resource, hide) = match O::TARGET {
            Target::Family => ("*".to_owned(), false),
            Target::Instance => (id.to_string(), true),
            Target::OwnUser | Target::OwnSession => (id.to_string(), false),
        };
        self.authorize(&caller, O::OPERATION, O::KIND, &resource, hide).await?;
        Ok(Pass::new(caller, id))
    }

    /// Whether `caller` may do `O` (on their own user for an own-user operation, on `id` for an
    /// instance, on the family otherwise) — asked, not enforced: nothing is audited and a failure
    /// reads as no. For showing or hiding a way in (the web UI's menu); the operation itself
    /// still decides when it is called.
    pub async fn allows<O: Operation>(&self, caller: &Caller, id: Option<Uuid>) -> bool {
        let resource = match O::TARGET {
            Target::OwnUser => caller.user().to_string(),
            Target::OwnSession => caller.session().to_string(),
            Target::Family => "*".to_owned(),
            Target::Instance => match id {
                Some(id) => id.to_string(),
                None => return false,
            },
        };
        let Ok(facts) = facts::facts_for(self, caller, O::KIND, &resource).await else { return false };
        self.permits(caller, O::OPERATION, O::KIND, &resource, &facts).unwrap_or(false)
    }

    /// [`Access::pass`] with the store facts already at hand: an operation that must load the
    /// very rows the facts come from loads them once (they must be the facts
    /// [`facts::facts_for`] would return).
    pub async fn pass_with_facts<O: Operation>(
        &self,
        caller: Caller,
        id: Uuid,
        facts: &[StoreFact],
    ) -> Result<Pass<O>, Error> {
        self.authorize_with_facts(
            &caller,
            O::OPERATION,
            O::KIND,
            &id.to_string(),
            O::TARGET == Target::Instance,
            facts,
        )
        .await?;
        Ok(Pass::new(caller, id))
    }

    /// [`Access::pass_with_facts`] for a resource that does not exist yet (its facts are those
    /// of the request): a denial answers 403, as there is nothing to hide.
    pub async fn pass_for_new<O: Operation>(
        &self,
        caller: Caller,
        id: Uuid,
        facts: &[StoreFact],
    ) -> Result<Pass<O>, Error> {
        self.authorize_with_facts(&caller, O::OPERATION, O::KIND, &id.to_string(), false, facts).await?;
        Ok(Pass::new(caller, id))
    }

    /// Decide whether `caller` may do `operation` on `(kind, id)`. A denial is audited and
    /// answers 404 when `hide` (a resource instance: its existence is not told) or 403.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        operation: &str,
        kind: &str,
        id: &str,
        hide: bool,
    ) -> Result<(), Error> {
        if caller.token.claims().mfa_pending && kind != "mfa" {
            return Err(Error::new(Code::MfaEnrolmentRequired));
        }
        let facts = facts::facts_for(self, caller, kind, id).await?;
        self.authorize_with_facts(caller, operation, kind, id, hide, &facts).await
    }

    async fn authorize_with_facts(
        &self,
        caller: &Caller,
        operation: &str,
        kind: &str,
        id: &str,
        hide: bool,
        facts: &[StoreFact],
    ) -> Result<(), Error> {
        if caller.token.claims().mfa_pending && kind != "mfa" {
            return Err(Error::new(Code::MfaEnrolmentRequired));
        }
        if self.decide(caller, operation, kind, id, facts)? {
            return Ok(());
        }
        let mut event = caller.ctx.event(&format!("{kind}.{operation}"), outcome::DENIED).resource(kind, id);
        // A record's patient comes with its facts: the denial goes into that patient's log.
        let record_patient = facts.iter().find_map(|f| match f {
            StoreFact::DocumentPatient { patient, .. } => Some(*patient),
            _ => None,
        });
        if let Some(p) = patient_of(kind, id).or(record_patient) {
            event = event.patient(p);
        }
        self.inner.audit.best_effort(event).await;
        Err(Error::new(if hide { Code::NotFound } else { Code::Forbidden }))
    }

    /// Whether the policies allow `operation` on `(kind, id)` with these facts — asked, not
    /// enforced: nothing is audited (an operation choosing between two ways in, or filtering a
    /// list to what its caller may open).
    pub(crate) fn permits(
        &self,
        caller: &Caller,
        operation: &str,
        kind: &str,
        id: &str,
        facts: &[StoreFact],
    ) -> Result<bool, Error> {
        if caller.token.claims().mfa_pending {
            return Ok(false);
        }
        self.decide(caller, operation, kind, id, facts)
    }

    /// The policies' decision, nothing else: no MFA gate, no audit.
    fn decide(
        &self,
        caller: &Caller,
        operation: &str,
        kind: &str,
        id: &str,
        facts: &[StoreFact],
    ) -> Result<bool, Error> {
        let req = Request { operation, resource: Resource { kind, id }, now: SystemTime::now(), facts };
        let decision = self.inner.policies.authorize(&caller.token, &req).map_err(|e| match e {
            // The time limit is wall-clock: a saturated CPU can hit it on a small decision.
            // Nothing was allowed; the client is told to retry, as for any overload (a 500
            // would say the server is broken).
            careport_policy::PolicyError::RunLimit(limit) => Error::new(Code::ServiceUnavailable)
                .retry_after(1)
                .caused_by(anyhow::anyhow!("policy run limit: {limit}")),
            other => Error::internal(anyhow::anyhow!("policy evaluation failed: {other}")),
        })?;
        Ok(decision == Decision::Allow)
    }
}

/// The patient an event is about, for the patient's access log.
pub fn patient_of(kind: &str, id: &str) -> Option<Uuid> {
    match kind {
        "patient" | "access_log" => Uuid::parse_str(id).ok(),
        _ => None,
    }
}
