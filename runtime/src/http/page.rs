//! Cursor pagination, the same on every list route: `?limit=…&cursor=…` in, and
//! `{"items": [...], "next_cursor": "…" | null}` out. A cursor is opaque to clients (base64url of
//! the position after the last item); a malformed one is 400 `invalid_query`.

use careport_domain::{Code, Error};
use serde::Serialize;

/// The default and largest page sizes.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// The page size asked for, checked.
pub fn limit(asked: Option<i64>) -> Result<i64, Error> {
    match asked {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Error::with_message(Code::InvalidQuery, format!("limit must be 1 to {MAX_LIMIT}."))),
    }
}

/// Encode a position.
pub fn encode(position: &str) -> String {
    data_encoding::BASE64URL_NOPAD.encode(position.as_bytes())
}

/// Decode a cursor made by [`encode`].
pub fn decode(cursor: &str) -> Result<String, Error> {
    data_encoding::BASE64URL_NOPAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Error::with_message(Code::InvalidQuery, "cursor is not valid; use next_cursor as given."))
}

/// Decode a cursor holding a UUID.
pub fn decode_uuid(cursor: Option<&str>) -> Result<Option<uuid::Uuid>, Error> {
    cursor
        .map(|c| {
            decode(c)?
                .parse()
                .map_err(|_| Error::with_message(Code::InvalidQuery, "cursor is not valid; use next_cursor as given."))
        })
        .transpose()
}

/// Decode a cursor holding a sequence number (the audit trail pages newest first by `seq`).
pub fn decode_seq(cursor: Option<&str>) -> Result<Option<i64>, Error> {
    cursor
        .map(|c| {
            decode(c)?
                .parse()
                .map_err(|_| Error::with_message(Code::InvalidQuery, "cursor is not valid; use next_cursor as given."))
        })
        .transpose()
}

/// A page of `items`; `next` is the position after the last one when the page is full.
pub fn page<T: Serialize>(items: Vec<T>, limit: i64, next: impl FnOnce(&T) -> String) -> serde_json::Value {
    let next_cursor = if items.len() as i64 == limit { items.last().map(|l| encode(&next(l))) } else { None };
    serde_json::json!({ "items": items, "next_cursor": next_cursor })
}

/// 503 `store_unavailable` (retry in a second) for a store failure.
pub fn store(e: impl Into<anyhow::Error>) -> Error {
    Error::new(Code::StoreUnavailable).caused_by(e).retry_after(1)
}
