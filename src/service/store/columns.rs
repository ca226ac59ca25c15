//! How both stores keep a record's structured fields (an upload, a task
//! choice, metadata, a result): as JSON text in a column. Written with what
//! it is named in the error; read back leniently, since the store wrote it
//! from checked data and only corruption or an older, incompatible version
//! makes it unreadable: that reads as none, never as a lost job.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Result, StoreError};

/// `value` as its column's JSON text; `what` names it if it cannot be.
pub(super) fn to_json<T: Serialize + ?Sized>(value: &T, what: &'static str) -> Result<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

/// An optional value as its column's JSON text (NULL for none).
pub(super) fn to_json_opt<T: Serialize>(
    value: Option<&T>,
    what: &'static str,
) -> Result<Option<String>> {
    value.map(|v| to_json(v, what)).transpose()
}

/// A JSON column read back: none when NULL or unreadable.
pub(super) fn from_json<T: DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
