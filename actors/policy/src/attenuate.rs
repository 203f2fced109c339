//! Attenuation (DESIGN §4): a holder narrows its token by appending a block of checks (some
//! operations, some resources, an earlier expiry) and hands the result on. Signed download links,
//! caregiver access and integrator tokens are attenuated tokens. A block can only add checks, so
//! an attenuated token can never do more than the token it came from.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::SystemTime;

use biscuit_auth::builder::{BlockBuilder, Term, string};

use crate::time::date_term;
use crate::{OPERATIONS, PolicyError, RESOURCE_KINDS, VerifiedToken};

/// What to narrow to; `None` leaves that dimension as the token has it. At least one field should
/// be set, otherwise the new block narrows nothing (allowed, but pointless).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// Only these operations (names from [`crate::OPERATIONS`]).
    pub operations: Option<Vec<String>>,
    /// Only these resources, as (kind, id); kinds from [`crate::RESOURCE_KINDS`].
    pub resources: Option<Vec<(String, String)>>,
    /// Not after this time. Clamped to the token's own expiry: never wider (and the authority
    /// block's check would refuse later times anyway).
    pub expires_at: Option<SystemTime>,
}

/// Append a block narrowing `token` and return the new token (base64url). Every value enters the
/// block as a parameter, never as Datalog text.
pub fn attenuate(token: &VerifiedToken, narrowing: &Narrowing) -> Result<String, PolicyError> {
    let mut block = BlockBuilder::new();

    if let Some(ops) = &narrowing.operations {
        if ops.is_empty() {
            return Err(PolicyError::Invalid("attenuation: empty operation list".to_owned()));
        }
        if let Some(bad) = ops.iter().find(|o| !OPERATIONS.contains(&o.as_str())) {
            return Err(PolicyError::Invalid(format!("attenuation: unknown operation {bad:?}")));
        }
        let set: BTreeSet<Term> = ops.iter().map(|o| string(o)).collect();
        let params = HashMap::from([("ops".to_owned(), Term::Set(set))]);
        block = block.code_with_params("check if operation($op), {ops}.contains($op);", params, HashMap::new())?;
    }

    if let Some(resources) = &narrowing.resources {
        if resources.is_empty() {
            return Err(PolicyError::Invalid("attenuation: empty resource list".to_owned()));
        }
        if let Some((bad, _)) = resources.iter().find(|(k, _)| !RESOURCE_KINDS.contains(&k.as_str())) {
            return Err(PolicyError::Invalid(format!("attenuation: unknown resource kind {bad:?}")));
        }
        // `check if resource({k0}, {i0}) or resource({k1}, {i1}) …`: only the parameter names are
        // generated text; kinds and ids are bound as parameters.
        let mut source = String::from("check if ");
        let mut params = HashMap::with_capacity(resources.len() * 2);
        for (n, (kind, id)) in resources.iter().enumerate() {
            if n > 0 {
                source.push_str(" or ");
            }
            let _ = write!(source, "resource({{k{n}}}, {{i{n}}})");
            params.insert(format!("k{n}"), string(kind));
            params.insert(format!("i{n}"), string(id));
        }
        source.push(';');
        block = block.code_with_params(&source, params, HashMap::new())?;
    }

    if let Some(at) = narrowing.expires_at {
        let at = at.min(token.expires_at());
        let params = HashMap::from([("expiry".to_owned(), date_term(at)?)]);
        block = block.code_with_params("check if time($t), $t <= {expiry};", params, HashMap::new())?;
    }

    Ok(token.biscuit().append(block)?.to_base64()?)
}
