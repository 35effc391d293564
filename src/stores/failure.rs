//! Whether a store failure is worth retrying: the one answer that the boot
//! probes, the schema upgrade and the health checks share.
//!
//! `Transient`: the store went away, timed out or is overloaded; the same
//! request may succeed later. `Permanent`: the store answered and refused
//! (bad credentials, a constraint, a missing privilege); retrying cannot fix
//! it.

use aws_sdk_s3::error::SdkError;
use mongodb::error::ErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Transient,
    Permanent,
}

impl Failure {
    pub fn is_transient(self) -> bool {
        self == Failure::Transient
    }

    fn transient_if(condition: bool) -> Self {
        if condition {
            Failure::Transient
        } else {
            Failure::Permanent
        }
    }

    pub fn of_postgres(error: &sqlx::Error) -> Self {
        Self::transient_if(match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // 08xxx connection exceptions, 57P0x shutting down / starting up /
            // cannot connect now, 53300 too many connections.
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
            _ => false,
        })
    }

    pub fn of_mongo(error: &mongodb::error::Error) -> Self {
        Self::transient_if(matches!(
            *error.kind,
            ErrorKind::Io(_)
                | ErrorKind::ServerSelection { .. }
                | ErrorKind::ConnectionPoolCleared { .. }
                | ErrorKind::DnsResolve { .. }
        ))
    }

    pub fn of_s3<E>(error: &SdkError<E>) -> Self {
        Self::transient_if(match error {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => true,
            SdkError::ServiceError(service) => {
                matches!(service.raw().status().as_u16(), 502..=504)
            }
            _ => false,
        })
    }
}
