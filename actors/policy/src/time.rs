//! Biscuit dates are whole seconds since the Unix epoch; this is the one place that converts,
//! so that minting, checking and the cache agree on the truncation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::Term;

use crate::PolicyError;

/// Seconds since the epoch, truncated; a time before 1970 is refused rather than panicking the way
/// `biscuit_auth::builder::date` would.
pub(crate) fn to_secs(t: SystemTime) -> Result<u64, PolicyError> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| PolicyError::Invalid("time before 1970-01-01".to_owned()))
}

pub(crate) fn date_term(t: SystemTime) -> Result<Term, PolicyError> {
    to_secs(t).map(Term::Date)
}

pub(crate) fn from_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}
