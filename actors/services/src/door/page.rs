//! Cursor pagination, the same on every list: `?limit=…&cursor=…` in, and
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

/// `?limit=…&cursor=…` as a list operation takes it.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The checked page size.
    pub fn limit(&self) -> Result<i64, Error> {
        limit(self.limit)
    }
}

/// A page of a list: `{"items": [...], "next_cursor": "…" | null}`.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `items`, with a next cursor at the position `next` gives of the last item when the page
    /// is full.
    pub fn of(items: Vec<T>, limit: i64, next: impl FnOnce(&T) -> String) -> Self {
        let next_cursor = if items.len() as i64 == limit { items.last().map(|l| encode(&next(l))) } else { None };
        Self { items, next_cursor }
    }

    /// Map the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}
