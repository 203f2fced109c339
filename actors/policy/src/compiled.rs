//! The policy files compiled once into Biscuit's Datalog form, for the common request: a token
//! with only its authority block, and that block exactly its claims (`VerifiedToken::is_plain`).
//!
//! Biscuit's `AuthorizerBuilder::build` + `Authorizer::authorize` re-convert every rule, check and
//! policy from builder form (strings) to Datalog form (symbol indices) on each request, and decode
//! the token's blocks again; that was most of the per-request cost. Here the conversion is done at
//! load, and a request only interns its own strings, adds its facts and runs the same engine
//! (`World::run_with_limits`, `Rule::find_match`) with the same trusted origins, limits and order
//! as `Authorizer::authorize`. The authority block's two checks are evaluated in Rust on the
//! claims: `time($t), $t <= expiry` is `now <= expiry` and `resource("mfa", $id)` is
//! `kind == "mfa"`, which holds only while the policy files themselves never produce `time` or
//! `resource` facts (otherwise [`Compiled::new`] answers `None` and every request takes the
//! general path). Attenuated tokens always take the general path: their blocks' checks and
//! scopes are Biscuit's to evaluate.

use std::collections::HashMap;
use std::time::Instant;

use biscuit_auth::builder::{self, CheckKind, Convert, PolicyKind};
use biscuit_auth::datalog::{Fact, Origin, Rule, SymbolIndex, SymbolTable, Term, TrustedOrigins, World};
use biscuit_auth::error::Execution;
use uuid::Uuid;

use crate::policies::{Decision, PolicyLimits, Request, StoreFact};
use crate::time::to_secs;
use crate::{PolicyError, VerifiedToken};

/// Origin of the authorizer's own facts and rules (Biscuit's convention).
const AUTHORIZER: usize = usize::MAX;

type Queries = Vec<(Rule, TrustedOrigins)>;

#[derive(Debug)]
pub(crate) struct Compiled {
    /// Symbols of the policy files; each request clones it and interns its own strings.
    symbols: SymbolTable,
    /// The policy files' facts and rules.
    world: World,
    checks: Vec<(CheckKind, Queries)>,
    policies: Vec<(PolicyKind, Queries)>,
    names: Names,
}

/// Symbol indices of the predicate names the runtime writes.
#[derive(Debug)]
struct Names {
    user: SymbolIndex,
    role: SymbolIndex,
    staff_role: SymbolIndex,
    department: SymbolIndex,
    session: SymbolIndex,
    operation: SymbolIndex,
    resource: SymbolIndex,
    time: SymbolIndex,
    assigned: SymbolIndex,
    patient_department: SymbolIndex,
    document_patient: SymbolIndex,
    document_unrestricted: SymbolIndex,
    knowledge_audience: SymbolIndex,
    knowledge_department: SymbolIndex,
    appointment: SymbolIndex,
    owner: SymbolIndex,
    grant: SymbolIndex,
    chart: SymbolIndex,
    report_final: SymbolIndex,
}

impl Compiled {
    /// Compile the files (already accepted by the general path's `AuthorizerBuilder`) plus the
    /// final `deny if true`, in order. `None` when the fast path would not be equivalent.
    pub(crate) fn new(sources: &[&str]) -> Option<Compiled> {
        let (mut facts, mut rules, mut checks, mut policies) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for source in sources {
            let parsed = biscuit_auth::parser::parse_source(source).ok()?;
            facts.extend(parsed.facts.into_iter().map(|(_, f)| builder::Fact::from(f)));
            rules.extend(parsed.rules.into_iter().map(|(_, r)| builder::Rule::from(r)));
            checks.extend(parsed.checks.into_iter().map(|(_, c)| builder::Check::from(c)));
            policies.extend(parsed.policies.into_iter().map(|(_, p)| builder::Policy::from(p)));
        }
        let deny: builder::Policy = "deny if true".try_into().ok()?;
        policies.push(deny);

        // The authority checks are answered from the request alone (see the module comment).
        let reserved = |name: &str| name == "time" || name == "resource";
        if facts.iter().any(|f| reserved(&f.predicate.name)) || rules.iter().any(|r| reserved(&r.head.name)) {
            return None;
        }

        let mut symbols = SymbolTable::new();
        let mut world = World::new();
        // No token blocks, no third-party keys: the trusted origins Biscuit computes for a token
        // of one block (the authority block 0 and the authorizer).
        let keys = HashMap::new();
        let default = TrustedOrigins::from_scopes(&[], &TrustedOrigins::default(), AUTHORIZER, &keys);
        let origin = authorizer_origin();
        for f in &facts {
            world.add_fact(&origin, f.convert(&mut symbols));
        }
        for r in &rules {
            let r = r.convert(&mut symbols);
            let trusted = TrustedOrigins::from_scopes(&r.scopes, &default, AUTHORIZER, &keys);
            world.add_rule(AUTHORIZER, &trusted, r);
        }
        let mut queries = |qs: &[builder::Rule]| -> Queries {
            qs.iter()
                .map(|q| {
                    let q = q.convert(&mut symbols);
                    let trusted = TrustedOrigins::from_scopes(&q.scopes, &default, AUTHORIZER, &keys);
                    (q, trusted)
                })
                .collect()
        };
        let checks = checks.into_iter().map(|c| (c.kind, queries(&c.queries))).collect();
        let policies = policies.into_iter().map(|p| (p.kind, queries(&p.queries))).collect();
        let mut name = |n: &str| symbols.insert(n);
        let names = Names {
            user: name("user"),
            role: name("role"),
            staff_role: name("staff_role"),
            department: name("department"),
            session: name("session"),
            operation: name("operation"),
            resource: name("resource"),
            time: name("time"),
            assigned: name("assigned"),
            patient_department: name("patient_department"),
            document_patient: name("document_patient"),
            document_unrestricted: name("document_unrestricted"),
            knowledge_audience: name("knowledge_audience"),
            knowledge_department: name("knowledge_department"),
            appointment: name("appointment"),
            owner: name("owner"),
            grant: name("grant"),
            chart: name("chart"),
            report_final: name("report_final"),
        };
        Some(Compiled { symbols, world, checks, policies, names })
    }

    /// Decide `req` for a plain token (`VerifiedToken::is_plain`): the same decision as the
    /// general path in `Policies::authorize`.
    pub(crate) fn authorize(
        &self,
        token: &VerifiedToken,
        req: &Request<'_>,
        limits: PolicyLimits,
    ) -> Result<Decision, PolicyError> {
        let now = to_secs(req.now)?;
        let claims = token.claims();
        // The authority block's checks: `check if time($t), $t <= expiry` (the request's `time`
        // fact is the only one) and, with MFA pending, `check if resource("mfa", $id)`.
        if now > to_secs(claims.expires_at)? || (claims.mfa_pending && req.resource.kind != "mfa") {
            return Ok(Decision::Deny);
        }

        let n = &self.names;
        let mut symbols = self.symbols.clone();
        let mut world = self.world.clone();
        let mut buf = Uuid::encode_buffer();
        let mut s = |v: &str| Term::Str(symbols.insert(v));
        let mut uuid = |u: &Uuid| u.hyphenated().encode_lower(&mut buf).to_owned();

        let authority = authority_origin();
        world.add_fact(&authority, Fact::new(n.user, &[s(&uuid(&claims.user))]));
        world.add_fact(&authority, Fact::new(n.role, &[s(claims.role.as_str())]));
        if let Some(r) = claims.staff_role {
            world.add_fact(&authority, Fact::new(n.staff_role, &[s(r.as_str())]));
        }
        if let Some(d) = &claims.department {
            world.add_fact(&authority, Fact::new(n.department, &[s(d)]));
        }
        world.add_fact(&authority, Fact::new(n.session, &[s(&uuid(&claims.session))]));

        let origin = authorizer_origin();
        world.add_fact(&origin, Fact::new(n.operation, &[s(req.operation)]));
        world.add_fact(&origin, Fact::new(n.resource, &[s(req.resource.kind), s(req.resource.id)]));
        world.add_fact(&origin, Fact::new(n.time, &[Term::Date(now)]));
        for f in req.facts {
            let fact = match f {
                StoreFact::Assigned { clinician, patient } => {
                    Fact::new(n.assigned, &[s(&uuid(clinician)), s(&uuid(patient))])
                }
                StoreFact::PatientDepartment { patient, department } => {
                    Fact::new(n.patient_department, &[s(&uuid(patient)), s(department)])
                }
                StoreFact::DocumentPatient { document, patient } => {
                    Fact::new(n.document_patient, &[s(document), s(&uuid(patient))])
                }
                StoreFact::DocumentUnrestricted { document } => Fact::new(n.document_unrestricted, &[s(document)]),
                StoreFact::Appointment { appointment, patient, clinician } => {
                    Fact::new(n.appointment, &[s(&uuid(appointment)), s(&uuid(patient)), s(&uuid(clinician))])
                }
                StoreFact::Owner { user, kind, id } => Fact::new(n.owner, &[s(&uuid(user)), s(kind), s(id)]),
                StoreFact::Grant { user, kind, id, operation } => {
                    Fact::new(n.grant, &[s(&uuid(user)), s(kind), s(id), s(operation)])
                }
                StoreFact::Chart { kind, id, patient } => Fact::new(n.chart, &[s(kind), s(id), s(&uuid(patient))]),
                StoreFact::ReportFinal { report } => Fact::new(n.report_final, &[s(report)]),
                StoreFact::Knowledge { document, audience, department } => {
                    if let Some(d) = department {
                        world.add_fact(&origin, Fact::new(n.knowledge_department, &[s(document), s(d)]));
                    }
                    Fact::new(n.knowledge_audience, &[s(document), s(audience)])
                }
            };
            world.add_fact(&origin, fact);
        }

        match self.run(&mut world, &symbols, limits) {
            Ok(d) => Ok(d),
            Err(Execution::RunLimit(limit)) => Err(PolicyError::RunLimit(limit.to_string())),
            // As in the general path: an expression that fails to evaluate cannot allow anything.
            Err(Execution::Expression(e)) => {
                tracing::warn!(error = %e, "policy expression failed; denying");
                Ok(Decision::Deny)
            }
        }
    }

    /// `Authorizer::authorize` without token blocks: run the rules, then the checks (all must
    /// pass), then the policies in order (the first that matches decides). The time limit covers
    /// the whole, as in Biscuit; a failed check denies at once, whatever the policies say.
    fn run(&self, world: &mut World, symbols: &SymbolTable, limits: PolicyLimits) -> Result<Decision, Execution> {
        let deadline = Instant::now() + limits.max_time;
        world.run_with_limits(symbols, limits.to_biscuit())?;
        let timed_out = || Instant::now() >= deadline;
        let timeout = || Execution::RunLimit(biscuit_auth::error::RunLimit::Timeout);
        if timed_out() {
            return Err(timeout());
        }
        for (kind, queries) in &self.checks {
            let mut passed = false;
            for (q, trusted) in queries {
                let matched = match kind {
                    CheckKind::One => q.find_match(&world.facts, AUTHORIZER, trusted, symbols, &world.extern_funcs)?,
                    CheckKind::All => q.check_match_all(&world.facts, trusted, symbols, &world.extern_funcs)?,
                    CheckKind::Reject => {
                        !q.find_match(&world.facts, AUTHORIZER, trusted, symbols, &world.extern_funcs)?
                    }
                };
                if timed_out() {
                    return Err(timeout());
                }
                if matched {
                    passed = true;
                    break;
                }
            }
            if !passed {
                return Ok(Decision::Deny);
            }
        }
        for (kind, queries) in &self.policies {
            for (q, trusted) in queries {
                let matched = q.find_match(&world.facts, AUTHORIZER, trusted, symbols, &world.extern_funcs)?;
                if timed_out() {
                    return Err(timeout());
                }
                if matched {
                    return Ok(match kind {
                        PolicyKind::Allow => Decision::Allow,
                        PolicyKind::Deny => Decision::Deny,
                    });
                }
            }
        }
        Ok(Decision::Deny)
    }
}

fn authority_origin() -> Origin {
    let mut o = Origin::default();
    o.insert(0);
    o
}

fn authorizer_origin() -> Origin {
    let mut o = Origin::default();
    o.insert(AUTHORIZER);
    o
}
