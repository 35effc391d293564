//! The MongoDB side of the high-volume and query-shaped records (SPEC
//! section 2): tool-call payloads ingested in batches beside their
//! PostgreSQL summaries, integration payloads, and skills' full-text
//! search. Documents carry the tenant's ref as `tenantId` (`global` for
//! global templates), and every query names it.
//!
//! Cross-store rule (as for the split pattern): the MongoDB document is
//! written before the PostgreSQL row that points at it, so no pointer
//! ever names a document that was never written; an interruption in
//! between leaves an orphan document, which a retry adopts.

pub mod payloads;
pub mod skills;
pub mod tool_calls;

use crate::records::RecordError;
use crate::stores::Failure;

/// A MongoDB failure in record terms: transient ones are `Unavailable`
/// (503, retry), the rest a store error.
pub fn mongo_error(error: mongodb::error::Error) -> RecordError {
    use mongodb::error::{ErrorKind, WriteFailure};
    // The collection's validator refused what a request sent: input, as a
    // PostgreSQL check is (422), never a 500.
    if let ErrorKind::Write(WriteFailure::WriteError(e)) = &*error.kind
        && e.code == DOCUMENT_INVALID
    {
        return RecordError::Invalid {
            constraint: None,
            message: "MongoDB's validator refused the document".to_string(),
        };
    }
    if Failure::of_mongo(&error).is_transient() {
        RecordError::Unavailable(error.to_string())
    } else {
        RecordError::Store(error.to_string())
    }
}

/// MongoDB's duplicate key error: the document is already there.
pub const DUPLICATE_KEY: i32 = 11000;

/// MongoDB's "Document failed validation" (a collection validator).
pub const DOCUMENT_INVALID: i32 = 121;

/// Whether an object anywhere in `value` has a key with a NUL character:
/// BSON keys are C strings, and the driver refuses the whole write.
pub(crate) fn has_nul_key(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || has_nul_key(v))
        }
        serde_json::Value::Array(items) => items.iter().any(has_nul_key),
        _ => false,
    }
}
