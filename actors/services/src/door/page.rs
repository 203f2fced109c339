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

#[cfg(test)]
mod properties {
    //! Any cursor or limit a client sends gives a page position or a clear 400, never a panic,
    //! and a cursor careport made always reads back as the position it was made from.

    use proptest::prelude::*;

    use super::*;

    fn is_invalid_query(e: &Error) -> bool {
        e.code() == Code::InvalidQuery
    }

    proptest! {
        #[test]
        fn any_text_decodes_or_is_a_clear_error(cursor in ".{0,200}") {
            match decode(&cursor) {
                Ok(position) => prop_assert_eq!(encode(&position), cursor.clone()),
                Err(e) => prop_assert!(is_invalid_query(&e)),
            }
            if let Err(e) = decode_uuid(Some(&cursor)) {
                prop_assert!(is_invalid_query(&e));
            }
            if let Err(e) = decode_seq(Some(&cursor)) {
                prop_assert!(is_invalid_query(&e));
            }
        }

        #[test]
        fn any_bytes_as_a_cursor_are_a_clear_error_or_a_position(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let cursor = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(decode(&cursor).is_ok() || decode(&cursor).is_err_and(|e| is_invalid_query(&e)));
        }

        #[test]
        fn a_cursor_made_from_a_position_reads_back(position in any::<String>(), seq in any::<i64>(), id in any::<u128>()) {
            prop_assert_eq!(decode(&encode(&position)).ok(), Some(position));
            prop_assert_eq!(decode_seq(Some(&encode(&seq.to_string()))).ok(), Some(Some(seq)));
            let id = uuid::Uuid::from_u128(id);
            prop_assert_eq!(decode_uuid(Some(&encode(&id.to_string()))).ok(), Some(Some(id)));
        }

        #[test]
        fn any_limit_is_in_range_or_a_clear_error(asked in proptest::option::of(any::<i64>())) {
            match limit(asked) {
                Ok(n) => prop_assert!((1..=MAX_LIMIT).contains(&n)),
                Err(e) => prop_assert!(is_invalid_query(&e) && asked.is_some()),
            }
        }
    }
}
