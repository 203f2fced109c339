//! Time as careport stores it: milliseconds since the Unix epoch, UTC.
//!
//! Both backends store the same `BIGINT`, so one SQL text serves SQLite and PostgreSQL and
//! ordering and arithmetic (leases, backoff) need no dialect-specific date functions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// A duration in whole milliseconds, saturating.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
