//! careport's shared vocabulary: ids, validated value types and the error code table.
//!
//! Every other crate depends on this one, so it stays small and free of actix, HTTP and SQL.
//! The mapping from an [`ErrorKind`] to an HTTP status lives in `runtime`, not here.

pub mod error;
pub mod ids;
pub mod time;
pub mod values;

pub use error::{Code, Error, ErrorKind, Result};
pub use ids::{JobId, UserId};
pub use values::{Email, Role};
