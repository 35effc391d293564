//! The schema guard: a release is installed only when its binary would
//! serve on this database. That is the rule the binary applies at boot
//! ([`crate::schema::postgres::pending`]), applied before the swap: the
//! database may be ahead of the release only by migrations declared
//! compatible with older binaries, and no applied migration may differ.

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
    fn downgrades_need_the_flag() {
        let v = |s: &str| semver::Version::parse(s).expect("semver");
        assert!(version(&v("0.2.0"), &v("0.3.0"), false).is_ok());
        assert!(version(&v("0.2.0"), &v("0.1.0"), false).is_err());
        assert!(version(&v("0.2.0"), &v("0.1.0"), true).is_ok());
    }
}
