//! What an access token says about its holder ([`Claims`]), how the claims become the token's
//! authority block, and how they are read back from a verified token ([`VerifiedToken`]).
//!
//! Claims are read from the **authority block only**: any holder can append blocks, so a fact
//! such as `role("admin")` in an attenuation block must never be mistaken for a claim.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use biscuit_auth::Biscuit;
use biscuit_auth::builder::{Binary, BiscuitBuilder, BlockBuilder, CheckKind, Op, Term, fact, string};
use careport_domain::Role;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::{date_term, from_secs};
use crate::{PolicyError, TokenError};

/// A clinician's staff role; only clinicians carry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    Doctor,
    Nurse,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Doctor => "doctor",
            StaffRole::Nurse => "nurse",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "doctor" => Some(StaffRole::Doctor),
            "nurse" => Some(StaffRole::Nurse),
            _ => None,
        }
    }
}

/// The claims of an access token.
///
/// `expires_at` is kept by Biscuit in whole seconds: after a round trip through a token it is
/// truncated to the second (the token is valid through that second, inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: Uuid,
    pub role: Role,
    /// Doctor or nurse; `Some` only for clinicians (minting refuses it on other roles).
    pub staff_role: Option<StaffRole>,
    pub department: Option<String>,
    pub session: Uuid,
    pub expires_at: SystemTime,
    /// The account must enrol MFA first: the token only reaches resource kind `mfa`.
    pub mfa_pending: bool,
}

/// Longest department name accepted in a token.
const MAX_DEPARTMENT_LEN: usize = 128;

impl Claims {
    /// The authority block. Facts are built as terms (never by formatting strings into Datalog),
    /// and the expiry check takes its date as a parameter.
    pub(crate) fn to_builder(&self) -> Result<BiscuitBuilder, PolicyError> {
        if self.staff_role.is_some() && self.role != Role::Clinician {
            return Err(PolicyError::Invalid("only clinicians carry a staff role".to_owned()));
        }
        if let Some(d) = &self.department {
            // Biscuit prints strings without escaping them, and claims are read back by printing
            // and re-parsing the authority block (see `from_authority`): a quote or backslash
            // would not survive that, so such names are refused here, at the source.
            if d.is_empty()
                || d.len() > MAX_DEPARTMENT_LEN
                || d.chars().any(|c| c == '"' || c == '\\' || c.is_control())
            {
                return Err(PolicyError::Invalid(
                    "department must be 1 to 128 characters without quotes, backslashes or control characters"
                        .to_owned(),
                ));
            }
        }
        let mut b = Biscuit::builder()
            .fact(fact("user", &[string(&self.user.to_string())]))?
            .fact(fact("role", &[string(self.role.as_str())]))?;
        if let Some(s) = self.staff_role {
            b = b.fact(fact("staff_role", &[string(s.as_str())]))?;
        }
        if let Some(d) = &self.department {
            b = b.fact(fact("department", &[string(d)]))?;
        }
        b = b.fact(fact("session", &[string(&self.session.to_string())]))?;
        let params = HashMap::from([("expiry".to_owned(), date_term(self.expires_at)?)]);
        b = b.code_with_params("check if time($t), $t <= {expiry};", params, HashMap::new())?;
        if self.mfa_pending {
            b = b.code("check if resource(\"mfa\", $id);")?;
        }
        Ok(b)
    }

    /// Read the claims back from block 0 of a verified token.
    ///
    /// Biscuit has no public accessor for one block's facts and checks, so block 0 is printed and
    /// parsed back with Biscuit's own parser. That touches neither other blocks nor the Datalog
    /// engine: a hostile attenuation block can neither add claims nor make this step slow.
    ///
    /// Also answers whether the block is exactly what [`Claims::to_builder`] writes (the claim
    /// facts, one `time` check of the form `$t <= <date>`, at most one MFA check, nothing else):
    /// only then may [`crate::Policies::authorize`] stand the claims in for the block.
    fn from_authority(biscuit: &Biscuit) -> Result<(Claims, bool), TokenError> {
        let source = biscuit.print_block_source(0).map_err(|_| TokenError::Malformed)?;
        let block = BlockBuilder::new().code(&source).map_err(|_| TokenError::InvalidClaims("authority block"))?;

        let mut user = None;
        let mut role = None;
        let mut staff_role = None;
        let mut department = None;
        let mut session = None;
        for f in &block.facts {
            let [Term::Str(value)] = f.predicate.terms.as_slice() else {
                return Err(TokenError::InvalidClaims("unexpected fact"));
            };
            let slot = match f.predicate.name.as_str() {
                "user" => &mut user,
                "role" => &mut role,
                "staff_role" => &mut staff_role,
                "department" => &mut department,
                "session" => &mut session,
                _ => return Err(TokenError::InvalidClaims("unexpected fact")),
            };
            // One of each: two `user` facts would make the policies' joins ambiguous.
            if slot.replace(value.clone()).is_some() {
                return Err(TokenError::InvalidClaims("duplicate fact"));
            }
        }

        let mut expiry: Option<u64> = None;
        let mut mfa_pending = false;
        let mut canonical = block.rules.is_empty() && block.scopes.is_empty();
        let (mut time_checks, mut mfa_checks) = (0, 0);
        for check in &block.checks {
            match (&check.kind, check.queries.as_slice()) {
                (CheckKind::One, [q]) if q.scopes.is_empty() => match (q.body.as_slice(), q.expressions.as_slice()) {
                    ([p], [e]) if p.name == "time" => match (p.terms.as_slice(), e.ops.as_slice()) {
                        (
                            [Term::Variable(v)],
                            [Op::Value(Term::Variable(w)), Op::Value(Term::Date(_)), Op::Binary(Binary::LessOrEqual)],
                        ) if v == w => time_checks += 1,
                        _ => canonical = false,
                    },
                    ([p], []) if p.name == "resource" => match p.terms.as_slice() {
                        [Term::Str(k), Term::Variable(_)] if k == "mfa" => mfa_checks += 1,
                        _ => canonical = false,
                    },
                    _ => canonical = false,
                },
                _ => canonical = false,
            }
            for q in &check.queries {
                match q.body.as_slice() {
                    [p] if p.name == "time" => {
                        for d in q.expressions.iter().flat_map(|e| &e.ops).filter_map(|op| match op {
                            Op::Value(Term::Date(d)) => Some(*d),
                            _ => None,
                        }) {
                            expiry = Some(expiry.map_or(d, |e| e.min(d)));
                        }
                    }
                    [p] if p.name == "resource" && p.terms.first() == Some(&Term::Str("mfa".to_owned())) => {
                        mfa_pending = true;
                    }
                    _ => {}
                }
            }
        }

        let parse_uuid =
            |v: Option<String>, what| v.and_then(|s| Uuid::parse_str(&s).ok()).ok_or(TokenError::InvalidClaims(what));
        let role: Role = role.and_then(|r| r.parse().ok()).ok_or(TokenError::InvalidClaims("role"))?;
        let staff_role = match staff_role {
            Some(s) => Some(StaffRole::parse(&s).ok_or(TokenError::InvalidClaims("staff_role"))?),
            None => None,
        };
        let claims = Claims {
            user: parse_uuid(user, "user")?,
            role,
            staff_role,
            department,
            session: parse_uuid(session, "session")?,
            expires_at: from_secs(expiry.ok_or(TokenError::InvalidClaims("expiry"))?),
            mfa_pending,
        };
        Ok((claims, canonical && time_checks == 1 && mfa_checks <= 1))
    }
}

/// A token whose signatures verified, with its claims. Cheap to share: the cache hands out
/// `Arc<VerifiedToken>`, and it is `Send + Sync` (checked at compile time below) so that one
/// cache serves every worker thread.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    biscuit: Arc<Biscuit>,
    claims: Claims,
    digest: [u8; 32],
    /// The authority block holds exactly what `claims` says (see `Claims::from_authority`).
    canonical: bool,
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<VerifiedToken>();
};

impl VerifiedToken {
    pub(crate) fn new(biscuit: Biscuit, digest: [u8; 32]) -> Result<Self, TokenError> {
        let (claims, canonical) = Claims::from_authority(&biscuit)?;
        Ok(VerifiedToken { biscuit: Arc::new(biscuit), claims, digest, canonical })
    }

    /// The claims of the authority block (never of attenuation blocks).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    pub fn biscuit(&self) -> &Biscuit {
        &self.biscuit
    }

    /// SHA-256 of the token string as presented: the cache key.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The authority block's expiry. Attenuation blocks may expire earlier; the policies see
    /// their checks, the cache only this outer bound.
    pub fn expires_at(&self) -> SystemTime {
        self.claims.expires_at
    }

    /// A single-block token whose authority block is exactly its claims: the policies may be run
    /// on the claims directly, without loading the token's blocks.
    pub(crate) fn is_plain(&self) -> bool {
        self.canonical && !self.is_attenuated()
    }

    /// Whether blocks were appended to the authority block (the token was attenuated).
    pub fn is_attenuated(&self) -> bool {
        self.biscuit.block_count() > 1
    }
}
