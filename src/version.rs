//! What this binary is: version, commit, build date, embedded schema.

use serde::Serialize;

use crate::schema::{EmbeddedVersions, embedded_versions};

#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_date: &'static str,
    pub schema: EmbeddedVersions,
}

impl BuildInfo {
    pub fn current() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            git_commit: env!("BUILT_GIT_COMMIT"),
            build_date: env!("BUILT_DATE"),
            schema: embedded_versions(),
        }
    }
}
