//! The Datalog policies: loading `policies/*.datalog` once at start (a syntax error stops the boot
//! and names the file and line), the run limits, and [`Policies::authorize`], which builds one
//! authorizer per request from the token, the request and the store's facts.
//!
//! The files are parsed once at load, into two forms: compiled Datalog (`crate::compiled`) for a
//! plain token (authority block only, exactly its claims: nearly every request), and a template
//! `AuthorizerBuilder` that each other request clones and builds with the token, so that Biscuit
//! evaluates the checks and scopes of attenuation blocks. Both give the same decisions; the
//! tests run both.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use biscuit_auth::AuthorizerLimits;
use biscuit_auth::builder::{AuthorizerBuilder, Fact, fact, string};
use biscuit_auth::error::{Logic, Token};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::compiled::Compiled;
use crate::time::date_term;
use crate::{PolicyError, VerifiedToken};

/// Run limits set on every authorizer. Biscuit's defaults (1000 facts, 100 iterations, 1 ms) are
/// too tight: the store facts alone can pass 1000, and 1 ms times out intermittently under load
/// (STYLE §6). Deserialized from `[auth.policy]` with `max_time_ms` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyLimits {
    pub max_facts: u64,
    pub max_iterations: u64,
    #[serde(rename = "max_time_ms", deserialize_with = "millis")]
    pub max_time: Duration,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits { max_facts: 10_000, max_iterations: 100, max_time: Duration::from_millis(5) }
    }
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

impl PolicyLimits {
    pub(crate) fn to_biscuit(self) -> AuthorizerLimits {
        AuthorizerLimits { max_facts: self.max_facts, max_iterations: self.max_iterations, max_time: self.max_time }
    }
}

/// What is being asked: `operation` on `resource` at `now`, with the facts the store knows about
/// the resource and the caller.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub operation: &'a str,
    pub resource: Resource<'a>,
    pub now: SystemTime,
    pub facts: &'a [StoreFact],
}

/// A resource instance (`kind`, `id`); collections use the id `"*"`. Uuids are written the way
/// `Uuid::to_string` writes them (hyphenated, lower case), like the token's `user` fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub kind: &'a str,
    pub id: &'a str,
}

/// Facts the store contributes to one decision; the runtime loads only those relevant to the
/// request (the caller and the resource), not whole tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFact {
    /// `assigned($clinician, $patient)`: a doctor is assigned to the patient.
    Assigned { clinician: Uuid, patient: Uuid },
    /// `patient_department($patient, $department)`.
    PatientDepartment { patient: Uuid, department: String },
    /// `document_patient($document, $patient)`: the document belongs to the patient's record.
    DocumentPatient { document: String, patient: Uuid },
    /// `document_unrestricted($document)`: the document is not marked sensitive, so the
    /// nurses of the patient's department may read it.
    DocumentUnrestricted { document: String },
    /// `appointment($appointment, $patient, $clinician)`: who an appointment is for and with.
    Appointment { appointment: Uuid, patient: Uuid, clinician: Uuid },
    /// `owner($user, $kind, $id)`: full control (read, write, delete, share).
    Owner { user: Uuid, kind: String, id: String },
    /// `grant($user, $kind, $id, $operation)`: exactly one operation.
    Grant { user: Uuid, kind: String, id: String, operation: String },
    /// `chart($kind, $id, $patient)`: the resource (a report, a bill, an ordered study) belongs
    /// to the patient's chart.
    Chart { kind: String, id: String, patient: Uuid },
    /// `report_final($report)`: the report was signed (final, or since amended): no longer a
    /// draft.
    ReportFinal { report: String },
    /// `knowledge_audience($doc, $audience)` and, when it has one, `knowledge_department($doc,
    /// $department)`: a knowledge document as it is (or as a change would make it).
    Knowledge { document: String, audience: String, department: Option<String> },
}

impl StoreFact {
    fn to_fact(&self) -> Fact {
        match self {
            StoreFact::Assigned { clinician, patient } => {
                fact("assigned", &[string(&clinician.to_string()), string(&patient.to_string())])
            }
            StoreFact::PatientDepartment { patient, department } => {
                fact("patient_department", &[string(&patient.to_string()), string(department)])
            }
            StoreFact::DocumentPatient { document, patient } => {
                fact("document_patient", &[string(document), string(&patient.to_string())])
            }
            StoreFact::DocumentUnrestricted { document } => fact("document_unrestricted", &[string(document)]),
            StoreFact::Appointment { appointment, patient, clinician } => fact(
                "appointment",
                &[string(&appointment.to_string()), string(&patient.to_string()), string(&clinician.to_string())],
            ),
            StoreFact::Owner { user, kind, id } => {
                fact("owner", &[string(&user.to_string()), string(kind), string(id)])
            }
            StoreFact::Grant { user, kind, id, operation } => {
                fact("grant", &[string(&user.to_string()), string(kind), string(id), string(operation)])
            }
            StoreFact::Chart { kind, id, patient } => {
                fact("chart", &[string(kind), string(id), string(&patient.to_string())])
            }
            StoreFact::ReportFinal { report } => fact("report_final", &[string(report)]),
            StoreFact::Knowledge { document, audience, .. } => {
                fact("knowledge_audience", &[string(document), string(audience)])
            }
        }
    }

    /// The Datalog facts of this store fact (a knowledge document gives one or two).
    fn to_facts(&self) -> Vec<Fact> {
        match self {
            StoreFact::Knowledge { document, department: Some(d), .. } => {
                vec![self.to_fact(), fact("knowledge_department", &[string(document), string(d)])]
            }
            other => vec![other.to_fact()],
        }
    }
}

/// The outcome of a policy run. `Deny` covers "no allow matched" and "a check failed" (expired
/// token, attenuation); at the HTTP layer a denied resource instance answers 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn is_allow(self) -> bool {
        self == Decision::Allow
    }
}

/// The loaded policy files, ready to authorize. `Send + Sync`: one instance serves all workers.
#[derive(Debug, Clone)]
pub struct Policies {
    template: AuthorizerBuilder,
    /// `None` when the files produce `time` or `resource` facts themselves (see `compiled`).
    compiled: Option<Arc<Compiled>>,
    limits: PolicyLimits,
    files: Vec<String>,
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Policies>();
};

impl Policies {
    /// Load every `*.datalog` file of `dir`, in file-name order, with the default limits.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Policies, PolicyError> {
        let dir = dir.as_ref();
        let io = |e: std::io::Error| PolicyError::Io { file: dir.display().to_string(), message: e.to_string() };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "datalog") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let source = std::fs::read_to_string(&path)
                .map_err(|e| PolicyError::Io { file: path.display().to_string(), message: e.to_string() })?;
            sources.push((name, source));
        }
        Policies::from_sources(sources)
    }

    /// Load policy sources given as (file name, text), in the order given.
    pub fn from_sources(sources: Vec<(String, String)>) -> Result<Policies, PolicyError> {
        if sources.is_empty() {
            // Without files everything would be denied: a wrong path, not a policy.
            return Err(PolicyError::Load { file: "policies/".to_owned(), message: "no .datalog files".to_owned() });
        }
        let mut template = AuthorizerBuilder::new();
        let mut files = Vec::with_capacity(sources.len());
        for (file, source) in &sources {
            check_syntax(file, source)?;
            template =
                template.code(source).map_err(|e| PolicyError::Load { file: file.clone(), message: e.to_string() })?;
            files.push(file.clone());
        }
        // Default deny, after every file's policies: policies are tried in order, first match wins.
        template = template.policy("deny if true")?;
        let texts: Vec<&str> = sources.iter().map(|(_, s)| s.as_str()).collect();
        let compiled = Compiled::new(&texts).map(Arc::new);
        let limits = PolicyLimits::default();
        Ok(Policies { template: template.set_limits(limits.to_biscuit()), compiled, limits, files })
    }

    /// Replace the run limits (from `[auth.policy]`).
    pub fn with_limits(mut self, limits: PolicyLimits) -> Policies {
        self.limits = limits;
        self.template = self.template.set_limits(limits.to_biscuit());
        self
    }

    pub fn limits(&self) -> PolicyLimits {
        self.limits
    }

    /// The file names loaded, in evaluation order.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Decide `req` for the holder of `token`. `Err` means no decision (run limit, internal
    /// error); the caller must treat it as a failure, never as an allow.
    pub fn authorize(&self, token: &VerifiedToken, req: &Request<'_>) -> Result<Decision, PolicyError> {
        match &self.compiled {
            Some(compiled) if token.is_plain() => compiled.authorize(token, req, self.limits),
            _ => self.authorize_general(token, req),
        }
    }

    /// The general path: Biscuit's authorizer with the whole token (every block).
    fn authorize_general(&self, token: &VerifiedToken, req: &Request<'_>) -> Result<Decision, PolicyError> {
        let mut b = self
            .template
            .clone()
            .fact(fact("operation", &[string(req.operation)]))?
            .fact(fact("resource", &[string(req.resource.kind), string(req.resource.id)]))?
            .fact(fact("time", &[date_term(req.now)?]))?;
        for f in req.facts.iter().flat_map(StoreFact::to_facts) {
            b = b.fact(f)?;
        }
        let mut authorizer = b.build(token.biscuit())?;
        match authorizer.authorize() {
            Ok(_) => Ok(Decision::Allow),
            // A failed check (expiry, attenuation, MFA) or no matching allow. An invalid rule in
            // an appended block is the token holder's doing, so it denies too.
            Err(Token::FailedLogic(
                Logic::Unauthorized { .. } | Logic::NoMatchingPolicy { .. } | Logic::InvalidBlockRule(..),
            )) => Ok(Decision::Deny),
            // An expression that fails to evaluate (e.g. a type error in a check some holder
            // appended) cannot allow anything; deny rather than answer 500 for a client's block.
            Err(Token::Execution(e)) => {
                tracing::warn!(error = %e, "policy expression failed; denying");
                Ok(Decision::Deny)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Parse `source` with Biscuit's parser to locate a syntax error: the parser's errors borrow the
/// remaining input, so its offset into `source` gives the line.
fn check_syntax(file: &str, source: &str) -> Result<(), PolicyError> {
    let Err(errors) = biscuit_auth::parser::parse_source(source) else {
        return Ok(());
    };
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let start = source.as_ptr() as usize;
    let mut at = (first.input.as_ptr() as usize).saturating_sub(start).min(source.len());
    if !source.is_char_boundary(at) {
        at = 0;
    }
    // The parser reports the point where a statement failed, which may be the whitespace before it.
    let rest = &source[at..];
    let at = at + (rest.len() - rest.trim_start().len());
    let line = source[..at].matches('\n').count() + 1;
    let snippet: String = source[at..].lines().next().unwrap_or("").chars().take(60).collect();
    let message = match &first.message {
        Some(m) => format!("{m} (at `{snippet}`)"),
        None => format!("cannot parse `{snippet}`"),
    };
    Err(PolicyError::Syntax { file: file.to_owned(), line, message })
}
