//! The schema guard: a release is installed only when its binary would
//! serve on this database. That is the rule the binary applies at boot
//! ([`crate::schema::postgres::pending`]), applied before the swap: the
//! database may be ahead of the release only by migrations declared
//! compatible with older binaries, and no applied migration may differ.

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use super::UpdateError;
use super::manifest::Manifest;
use crate::config::Config;
use crate::schema::postgres::{Applied, pending, read_history};

/// What the database has, read on the migration connection.
pub async fn database_history(config: &Config) -> Result<Vec<Applied>, UpdateError> {
    let url = config.postgres.migration_url();
    let mut conn =
        PgConnection::connect(url.expose())
            .await
            .map_err(|e| UpdateError::Database {
                url: url.redacted(),
                reason: e.to_string(),
            })?;
    let history = read_history(&mut conn).await;
    let _ = conn.close().await;
    history.map_err(|e| UpdateError::Database {
        url: url.redacted(),
        reason: e.to_string(),
    })
}

/// Whether the release's binary would serve on a database with `history`.
pub fn check(manifest: &Manifest, history: &[Applied]) -> Result<(), UpdateError> {
    let migrations = manifest.migrations();
    pending(&migrations, history)
        .map(|_| ())
        .map_err(|e| UpdateError::SchemaGuard {
            version: manifest.version.clone(),
            reason: e.to_string(),
        })
}

/// What installing a release would change in the PostgreSQL schema, for
/// `self-update check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaPlan {
    /// The newest migration the release embeds.
    pub release_version: i64,
    /// The newest migration the database has applied (0: none).
    pub database_version: i64,
    /// The release's migrations the database does not have, in order: what
    /// the release applies when it starts.
    pub to_apply: Vec<PlannedMigration>,
    /// Every one of `to_apply` is declared compatible with older binaries:
    /// the running version (and a rollback to it) can still serve afterwards.
    pub all_compatible: bool,
    /// Migrations in the database that the release does not ship (allowed
    /// only when declared compatible).
    pub unknown_to_release: Vec<String>,
    /// Why the schema guard would refuse the release; none: it would pass.
    pub refused: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMigration {
    pub version: i64,
    pub name: String,
    /// Declared compatible with older binaries
    /// (`-- strata: compatible-with-older-binaries`).
    pub compatible: bool,
}

/// The schema change of installing `manifest`'s release on a database with
/// `history`, and the guard's verdict.
pub fn plan(manifest: &Manifest, history: &[Applied]) -> SchemaPlan {
    let migrations = manifest.migrations();
    let to_apply: Vec<PlannedMigration> = migrations
        .iter()
        .filter(|m| !history.iter().any(|a| a.version == m.version))
        .map(|m| PlannedMigration {
            version: m.version,
            name: m.name.clone(),
            compatible: m.compatible,
        })
        .collect();
    let mut unknown: Vec<&Applied> = history
        .iter()
        .filter(|a| !migrations.iter().any(|m| m.version == a.version))
        .collect();
    unknown.sort_by_key(|a| a.version);
    SchemaPlan {
        release_version: manifest.postgres_version(),
        database_version: history.iter().map(|a| a.version).max().unwrap_or(0),
        all_compatible: to_apply.iter().all(|m| m.compatible),
        to_apply,
        unknown_to_release: unknown.iter().map(|a| a.name.clone()).collect(),
        refused: pending(&migrations, history).err().map(|e| e.to_string()),
    }
}

/// A release older than the running binary needs `--allow-downgrade`.
pub fn version(
    current: &semver::Version,
    release: &semver::Version,
    allow_downgrade: bool,
) -> Result<(), UpdateError> {
    if release < current && !allow_downgrade {
        return Err(UpdateError::Downgrade {
            current: current.to_string(),
            release: release.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::manifest::ManifestMigration;

    fn manifest(versions: &[(i64, bool)]) -> Manifest {
        let mut m = Manifest::current().expect("manifest");
        m.schema.postgres = versions
            .iter()
            .map(|(v, compatible)| ManifestMigration {
                version: *v,
                name: format!("{v:04}_m"),
                checksum: format!("sum{v}"),
                compatible: *compatible,
            })
            .collect();
        m
    }

    fn applied(versions: &[(i64, bool)]) -> Vec<Applied> {
        versions
            .iter()
            .map(|(v, compatible)| Applied {
                version: *v,
                name: format!("{v:04}_m"),
                checksum: format!("sum{v}"),
                compatible: *compatible,
            })
            .collect()
    }

    #[test]
    fn an_older_release_is_refused_unless_every_newer_migration_is_compatible() {
        let old = manifest(&[(1, false), (2, false)]);
        assert!(check(&old, &applied(&[(1, false), (2, false)])).is_ok());
        assert!(
            check(&old, &applied(&[(1, false)])).is_ok(),
            "the release migrates"
        );
        let err = check(&old, &applied(&[(1, false), (2, false), (3, false)])).unwrap_err();
        assert!(err.to_string().contains("schema guard"), "{err}");
        assert!(check(&old, &applied(&[(1, false), (2, false), (3, true)])).is_ok());
    }

    #[test]
    fn the_plan_lists_what_the_release_would_apply() {
        let new = manifest(&[(1, false), (2, true), (3, false)]);
        let plan = plan(&new, &applied(&[(1, false)]));
        assert_eq!(
            plan.to_apply
                .iter()
                .map(|m| (m.version, m.compatible))
                .collect::<Vec<_>>(),
            [(2, true), (3, false)]
        );
        assert_eq!((plan.release_version, plan.database_version), (3, 1));
        assert!(!plan.all_compatible);
        assert_eq!(plan.refused, None);

        let old = manifest(&[(1, false)]);
        let plan = super::plan(&old, &applied(&[(1, false), (2, false)]));
        assert!(plan.to_apply.is_empty() && plan.all_compatible);
        assert_eq!(plan.unknown_to_release, ["0002_m"]);
        assert!(plan.refused.is_some(), "{plan:?}");
    }

    #[test]
    fn downgrades_need_the_flag() {
        let v = |s: &str| semver::Version::parse(s).expect("semver");
        assert!(version(&v("0.2.0"), &v("0.3.0"), false).is_ok());
        assert!(version(&v("0.2.0"), &v("0.1.0"), false).is_err());
        assert!(version(&v("0.2.0"), &v("0.1.0"), true).is_ok());
    }
}
