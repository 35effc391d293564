//! The release manifest: `release.json` inside the signed archive, so the
//! signature covers it. It names the version, the target, the schema the
//! binary embeds, and the SHA-256 of the binary and of each package.

use serde::{Deserialize, Serialize};

use crate::schema::postgres::{Migration, embedded_migrations};
use crate::schema::{SchemaError, embedded};

/// The manifest's file name inside the archive.
pub const MANIFEST_FILE: &str = "release.json";
/// The binary's file name inside the archive.
pub const BINARY_FILE: &str = "strata";
/// The format this binary reads; a newer one is refused.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub version: String,
    /// `x86_64-linux`: what [`target`] returns on the machine that runs it.
    pub target: String,
    #[serde(default)]
    pub git_commit: String,
    pub schema: ManifestSchema,
    /// SHA-256 of `strata` in the archive (filled in by `scripts/release`).
    #[serde(default)]
    pub binary_sha256: String,
    /// The `.deb` and `.rpm` of the same build, published beside the archive.
    #[serde(default)]
    pub packages: Vec<ManifestPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSchema {
    pub postgres: Vec<ManifestMigration>,
    /// Digests of the MongoDB collection and S3 bucket definitions.
    pub mongo: String,
    pub s3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestMigration {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    pub compatible: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPackage {
    /// `deb` or `rpm`.
    pub kind: String,
    /// The asset's file name at the release source.
    pub file: String,
    pub sha256: String,
}

/// `x86_64-linux`, `aarch64-linux`: part of every asset name.
pub fn target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// The archive's asset name for `version`.
pub fn archive_name(version: &str) -> String {
    format!("strata-{version}-{}.tar.gz", target())
}

impl Manifest {
    /// This binary's own manifest (without the hashes `scripts/release` adds).
    pub fn current() -> Result<Self, SchemaError> {
        Ok(Self {
            format: FORMAT,
            name: "strata".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            target: target(),
            git_commit: env!("BUILT_GIT_COMMIT").into(),
            schema: ManifestSchema {
                postgres: embedded_migrations()?
                    .iter()
                    .map(|m| ManifestMigration {
                        version: m.version,
                        name: m.name.clone(),
                        checksum: m.checksum.clone(),
                        compatible: m.compatible,
                    })
                    .collect(),
                mongo: embedded::digest("mongo/"),
                s3: embedded::digest("s3/"),
            },
            binary_sha256: String::new(),
            packages: Vec::new(),
        })
    }

    /// The release's migrations in the shape the migration runner compares.
    pub fn migrations(&self) -> Vec<Migration> {
        let mut all: Vec<Migration> = self
            .schema
            .postgres
            .iter()
            .map(|m| Migration {
                version: m.version,
                name: m.name.clone(),
                sql: String::new(),
                checksum: m.checksum.clone(),
                compatible: m.compatible,
            })
            .collect();
        all.sort_by_key(|m| m.version);
        all
    }

    pub fn postgres_version(&self) -> i64 {
        self.schema
            .postgres
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
    }

    pub fn package(&self, kind: &str) -> Option<&ManifestPackage> {
        self.packages.iter().find(|p| p.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_manifest_names_every_embedded_migration() {
        let manifest = Manifest::current().expect("manifest");
        let shipped = embedded_migrations().expect("migrations");
        assert_eq!(manifest.schema.postgres.len(), shipped.len());
        assert_eq!(manifest.migrations(), {
            let mut m = shipped.clone();
            for x in &mut m {
                x.sql.clear();
            }
            m
        });
        assert_eq!(manifest.version, env!("CARGO_PKG_VERSION"));
        let text = serde_json::to_string(&manifest).expect("json");
        let back: Manifest = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, manifest);
    }
}
