//! The three stores strata owns: connecting, probing version and
//! capabilities at boot, and cheap health pings afterwards.

pub mod failure;
pub mod mongo;
pub mod postgres;
pub mod s3;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::retry::Transient;

pub use failure::Failure;

/// One of the servers strata depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dependency {
    Postgres,
    Mongo,
    S3,
}

impl Dependency {
    pub const ALL: [Dependency; 3] = [Dependency::Postgres, Dependency::Mongo, Dependency::S3];

    pub fn name(self) -> &'static str {
        match self {
            Dependency::Postgres => "postgres",
            Dependency::Mongo => "mongo",
            Dependency::S3 => "s3",
        }
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a probe failed. `Unreachable` is worth retrying; `Unfit` (too old,
/// missing privilege or capability, bad credentials) is not.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    #[error("{check}: cannot reach {address}: {cause}")]
    Unreachable {
        check: &'static str,
        address: String,
        cause: String,
    },
    #[error("{check}: {reason}")]
    Unfit { check: &'static str, reason: String },
}

impl ProbeError {
    pub fn check(&self) -> &'static str {
        match self {
            ProbeError::Unreachable { check, .. } | ProbeError::Unfit { check, .. } => check,
        }
    }
}

impl Transient for ProbeError {
    fn is_transient(&self) -> bool {
        matches!(self, ProbeError::Unreachable { .. })
    }
}

/// One passed check of a probe, e.g. `version` → `PostgreSQL 16.4`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckPassed {
    pub check: &'static str,
    pub detail: String,
}

/// What a successful boot probe learned about a server.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub address: String,
    pub version: Option<String>,
    pub checks: Vec<CheckPassed>,
    /// Things that work but deserve an operator's attention.
    pub warnings: Vec<String>,
}

impl ProbeReport {
    fn new(address: String) -> Self {
        Self {
            address,
            version: None,
            checks: Vec::new(),
            warnings: Vec::new(),
        }
    }
    fn passed(&mut self, check: &'static str, detail: impl Into<String>) {
        self.checks.push(CheckPassed {
            check,
            detail: detail.into(),
        });
    }
}

/// Handles to all three stores. Creating them does no I/O; probes do.
#[derive(Clone)]
pub struct Stores {
    pub postgres: postgres::Postgres,
    pub mongo: mongo::Mongo,
    pub s3: s3::S3,
}

impl Stores {
    pub async fn new(config: &Config) -> Result<Self, ProbeError> {
        Ok(Self {
            postgres: postgres::Postgres::new(&config.postgres)?,
            mongo: mongo::Mongo::new(&config.mongo).await?,
            s3: s3::S3::new(&config.s3),
        })
    }

    pub fn address(&self, dependency: Dependency) -> String {
        match dependency {
            Dependency::Postgres => self.postgres.address(),
            Dependency::Mongo => self.mongo.address(),
            Dependency::S3 => self.s3.address(),
        }
    }

    /// The full boot probe: reachability, version, privileges, capabilities.
    pub async fn probe(&self, dependency: Dependency) -> Result<ProbeReport, ProbeError> {
        match dependency {
            Dependency::Postgres => self.postgres.probe().await,
            Dependency::Mongo => self.mongo.probe().await,
            Dependency::S3 => self.s3.probe().await,
        }
    }

    /// A cheap liveness round trip for `/readyz` after boot.
    pub async fn ping(&self, dependency: Dependency) -> Result<(), ProbeError> {
        match dependency {
            Dependency::Postgres => self.postgres.ping().await,
            Dependency::Mongo => self.mongo.ping().await,
            Dependency::S3 => self.s3.ping().await,
        }
    }
}

/// How long each store may take to close. With serve's drain this keeps
/// a whole stop well inside the unit's `TimeoutStopSec=60s`.
pub const CLOSE_STORE: Duration = Duration::from_secs(5);

impl Stores {
    /// Closes the clients, in order, each within [`CLOSE_STORE`]. Every
    /// command calls it before returning, once nothing uses the stores.
    pub async fn close(self) {
        // Waits for every handle to a server-side resource (cursor, session)
        // to be dropped, ends the server sessions and stops the driver's
        // monitors and pool workers. Without it the runtime drops those
        // workers at exit while another driver task (a last session clean-up)
        // still asks them for a connection, and the driver panics.
        close(
            "mongo",
            self.mongo.client().clone().shutdown().into_future(),
        )
        .await;
        // Both pools (serving and administrative): closes idle connections
        // and waits for checked-out ones.
        close("postgres", self.postgres.close()).await;
        // Waits until an interrupted Object Lock probe deleted its bucket.
        close("s3", self.s3.close()).await;
    }
}

async fn close(store: &'static str, closing: impl Future<Output = ()>) {
    if tokio::time::timeout(CLOSE_STORE, closing).await.is_err() {
        tracing::warn!(
            store,
            limit_secs = CLOSE_STORE.as_secs(),
            "did not close in time"
        );
    }
}

/// Compares a dotted version string's major component with a minimum.
pub(crate) fn major_version(version: &str) -> Option<u32> {
    version.split(['.', '-', ' ']).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_version_parses_common_forms() {
        assert_eq!(major_version("7.0.14"), Some(7));
        assert_eq!(major_version("16.4"), Some(16));
        assert_eq!(major_version("8.0.0-rc1"), Some(8));
        assert_eq!(major_version("garbage"), None);
    }
}
