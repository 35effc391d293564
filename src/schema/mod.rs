//! The schema of the three stores, embedded as data, and the reconcilers
//! that bring a store up to it. (Placeholder API: the schema issue fills it.)

use serde::Serialize;

use crate::config::Config;
use crate::stores::Stores;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{store}: {reason}")]
    Refused { store: &'static str, reason: String },
}

/// What an upgrade would change, per store, without changing anything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchemaPlan {
    pub postgres: Vec<String>,
    pub mongo: Vec<String>,
    pub s3: Vec<String>,
    pub warnings: Vec<String>,
}

impl SchemaPlan {
    pub fn is_empty(&self) -> bool {
        self.postgres.is_empty() && self.mongo.is_empty() && self.s3.is_empty()
    }
}

/// What an upgrade did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchemaReport {
    pub applied: Vec<String>,
    pub warnings: Vec<String>,
}

/// The schema versions this binary embeds, for `strata version`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmbeddedVersions {
    pub postgres: String,
    pub mongo: String,
    pub s3: String,
}

pub fn embedded_versions() -> EmbeddedVersions {
    EmbeddedVersions::default()
}

pub async fn plan(_stores: &Stores, _config: &Config) -> Result<SchemaPlan, SchemaError> {
    Ok(SchemaPlan::default())
}

/// Brings all three stores up to the embedded schema; `progress` hears one
/// line per step.
pub async fn upgrade(
    _stores: &Stores,
    _config: &Config,
    _progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<SchemaReport, SchemaError> {
    Ok(SchemaReport::default())
}
