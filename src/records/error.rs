//! What can go wrong with a record, sorted once from PostgreSQL's answers so
//! that the API never answers 500 for a refusal the database explains.

use crate::domain::state_machines::{ILLEGAL_TRANSITION, IllegalTransition};
use crate::stores::Failure;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No such record for this tenant (or soft-deleted).
    #[error("no such record")]
    NotFound,
    /// `If-Match` named a version that is no longer current.
    #[error("the record changed since it was read")]
    StaleVersion,
    /// PostgreSQL refused a status change (SQLSTATE ST409).
    #[error("illegal transition from {:?} to {}", .0.from, .0.to)]
    IllegalTransition(IllegalTransition),
    /// A field's value is refused before it reaches PostgreSQL (or a
    /// reference it holds does not resolve within the tenant).
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// A unique constraint (23505).
    #[error("conflict: {message}")]
    Conflict {
        constraint: Option<String>,
        message: String,
    },
    /// A check, foreign-key, not-null or data error (23514, 23503, 23502,
    /// 22xxx): the request's values are not acceptable.
    #[error("invalid: {message}")]
    Invalid {
        constraint: Option<String>,
        message: String,
    },
    /// The store went away, timed out, or a serialization failure: the
    /// same request may succeed later; nothing was committed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Store(String),
}

impl From<sqlx::Error> for RecordError {
    fn from(error: sqlx::Error) -> Self {
        if Failure::of_postgres(&error).is_transient() {
            return RecordError::Unavailable(error.to_string());
        }
        let sqlx::Error::Database(db) = &error else {
            return RecordError::Store(error.to_string());
        };
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let constraint = db.constraint().map(str::to_string);
        let message = db.message().to_string();
        if code == ILLEGAL_TRANSITION {
            let detail = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.detail())
                .and_then(IllegalTransition::from_detail);
            return match detail {
                Some(refused) => RecordError::IllegalTransition(refused),
                None => RecordError::Store(message),
            };
        }
        match code.as_str() {
            // object_not_in_prerequisite_state: an accepted (immutable)
            // contract.
            "23505" | "55000" => RecordError::Conflict {
                constraint,
                message,
            },
            "23503" | "23502" | "23514" => RecordError::Invalid {
                constraint,
                message,
            },
            // serialization_failure, deadlock_detected: retry.
            "40001" | "40P01" => RecordError::Unavailable(message),
            c if c.starts_with("22") => RecordError::Invalid {
                constraint,
                message,
            },
            _ => RecordError::Store(format!("{message} (SQLSTATE {code})")),
        }
    }
}
