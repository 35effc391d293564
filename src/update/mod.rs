//! `strata self-update`: signed releases from a GitHub-compatible releases
//! API or an S3 bucket, installed atomically, with a schema guard and
//! rollback.
//!
//! * [`source`]: release discovery and download (the `self_update` crate);
//! * [`keys`]: the compiled-in release keys and the configured extra ones;
//! * [`verify`]: signature, completeness, manifest and binary digest;
//! * [`manifest`]: `release.json`, signed inside the archive;
//! * [`guard`]: the schema guard and the downgrade rule;
//! * [`install`]: the tarball and package layouts, swap and rollback;
//! * [`restart`]: restart the service and wait for `/readyz`.

pub mod guard;
pub mod install;
pub mod keys;
pub mod manifest;
pub mod restart;
pub mod source;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use install::{Layout, PackageManager};
use restart::Restarter;
use source::{Available, Source};

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(
        "self-update is not configured: set update.source to \"github\" or \"s3\" (see README, \
         \"Upgrading strata (self-update)\")"
    )]
    NotConfigured,
    #[error("{0}")]
    Usage(String),
    #[error("invalid configuration key `update.trusted_keys`: {0}")]
    Keys(String),
    #[error("release source {source_url}: {reason}")]
    Source { source_url: String, reason: String },
    #[error("release source {source_url} has no {wanted}")]
    NoRelease { wanted: String, source_url: String },
    #[error("downloading {asset}: {reason}")]
    Download { asset: String, reason: String },
    #[error("refused {asset}: {check} check failed: {reason}; nothing was installed")]
    Verification {
        asset: String,
        check: &'static str,
        reason: String,
    },
    #[error("refused {version}: smoke test failed: {reason}; nothing was installed")]
    SmokeTest { version: String, reason: String },
    #[error(
        "refused {release}: it is older than the running {current}; pass --allow-downgrade \
         (the schema guard still applies)"
    )]
    Downgrade { current: String, release: String },
    #[error("refused {version}: schema guard: {reason}; nothing was installed")]
    SchemaGuard { version: String, reason: String },
    #[error("schema guard: cannot read the migration history at {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("install: {step}: {reason}")]
    Install { step: String, reason: String },
    #[error("package manager: `{command}`: {reason}")]
    Package { command: String, reason: String },
    #[error("restart: `{command}`: {reason}")]
    Restart { command: String, reason: String },
    #[error("no previous binary to roll back to ({path} does not exist)")]
    NoPrevious { path: String },
    #[error(
        "{version} did not become ready within {secs}s ({last}); rolled back to {previous}{after}"
    )]
    RolledBack {
        version: String,
        previous: String,
        secs: u64,
        last: String,
        after: String,
    },
}

/// The binary to update (`update.install_path`, else the running one),
/// symlinks resolved.
pub fn installed_exe(config: &Config) -> Result<PathBuf, UpdateError> {
    let configured = &config.update.install_path;
    let path = if configured.as_os_str().is_empty() {
        std::env::current_exe()
    } else {
        Ok(configured.clone())
    };
    path.and_then(|p| p.canonicalize())
        .map_err(|e| UpdateError::Install {
            step: "finding the installed binary (update.install_path)".into(),
            reason: e.to_string(),
        })
}

/// The installed binary's version: this one's, or what the configured
/// `update.install_path` reports.
pub fn installed_version(
    config: &Config,
    exe: &std::path::Path,
) -> Result<semver::Version, UpdateError> {
    let text = if config.update.install_path.as_os_str().is_empty() {
        env!("CARGO_PKG_VERSION").to_string()
    } else {
        install::reported_version(exe).map_err(|reason| UpdateError::Install {
            step: format!("asking {} for its version", exe.display()),
            reason,
        })?
    };
    semver::Version::parse(&text).map_err(|_| UpdateError::Install {
        step: format!("asking {} for its version", exe.display()),
        reason: format!("{text:?} is not a semantic version"),
    })
}

/// What `self-update check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub current: String,
    /// The release `apply` would install (none: nothing for this target).
    pub available: Option<String>,
    pub update_available: bool,
    /// `upgrade`, `downgrade` (needs --allow-downgrade) or `none`.
    pub change: &'static str,
    pub source: String,
    pub layout: String,
    pub restart: String,
    pub releases: Vec<String>,
}

pub async fn check(config: &Config, wanted: Option<&str>) -> Result<CheckReport, UpdateError> {
    let source = Source::new(&config.update)?;
    let exe = installed_exe(config)?;
    let layout = Layout::detect(&exe);
    let current = installed_version(config, &exe)?;
    let releases = source.list().await?;
    let pinned = wanted.is_some() || !config.update.version.is_empty();
    let picked = match source.pick_from(releases.clone(), wanted) {
        Ok(picked) => Some(picked),
        // A pinned version that is not published is an error, not "up to date".
        Err(e) if pinned => return Err(e),
        Err(_) => None,
    };
    let change = match &picked {
        Some(p) if p.version > current => "upgrade",
        Some(p) if p.version < current => "downgrade",
        _ => "none",
    };
    Ok(CheckReport {
        current: current.to_string(),
        available: picked.as_ref().map(|p| p.version.to_string()),
        update_available: change != "none",
        change,
        source: source.describe(),
        layout: layout.describe(),
        restart: Restarter::choose(&config.update).describe(),
        releases: releases.iter().map(|r| r.version.to_string()).collect(),
    })
}

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub version: Option<String>,
    pub allow_downgrade: bool,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub from: String,
    pub to: String,
    pub layout: String,
    pub signed_by: String,
    pub restarted: bool,
    pub ready_after_ms: Option<u64>,
    /// False when the release was already installed.
    pub changed: bool,
}

/// A verified release in a staging directory.
struct Staged {
    release: Available,
    unpacked: verify::Unpacked,
    signed_by: String,
    work: PathBuf,
}

async fn stage(
    source: &Source<'_>,
    release: Available,
    layout: &Layout,
    config: &Config,
    say: &dyn Fn(&str),
) -> Result<Staged, UpdateError> {
    let keys = keys::trusted(&config.update.trusted_keys).map_err(UpdateError::Keys)?;
    let work = install::fresh_staging(&layout.staging(), &release.version.to_string())?;
    let checked = download_and_verify(source, &release, &work, &keys, say).await;
    let (signed_by, unpacked) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            // Nothing of a refused release stays on disk.
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    Ok(Staged {
        release,
        unpacked,
        signed_by,
        work,
    })
}

async fn download_and_verify(
    source: &Source<'_>,
    release: &Available,
    work: &std::path::Path,
    keys: &[keys::TrustedKey],
    say: &dyn Fn(&str),
) -> Result<(String, verify::Unpacked), UpdateError> {
    // Saved under its published name: the signature is bound to it.
    let archive = work.join(&release.archive.name);
    say(&format!("downloading {}", release.archive.name));
    let bytes = source.download(&release.archive, &archive).await?;
    say(&format!("checking the signature ({bytes} bytes)"));
    let signed_by = verify::signature(&archive, keys)?;
    let unpacked = verify::unpack(&archive, work, &release.version)?;
    say(&format!(
        "signed by {signed_by}; manifest: version {}, postgres schema {}",
        unpacked.manifest.version,
        unpacked.manifest.postgres_version()
    ));
    Ok((signed_by, unpacked))
}

/// Downloads, verifies, guards, installs, restarts and waits for ready;
/// rolls back when the new version is not ready in time.
pub async fn apply(
    config: &Config,
    options: &ApplyOptions,
    say: &dyn Fn(&str),
) -> Result<Applied, UpdateError> {
    let source = Source::new(&config.update)?;
    let exe = installed_exe(config)?;
    let layout = Layout::detect(&exe);
    let current = installed_version(config, &exe)?;
    let release = source.pick(options.version.as_deref()).await?;
    say(&format!(
        "strata {current} ({}); release {} from {}",
        layout.describe(),
        release.version,
        source.describe()
    ));
    if release.version == current {
        return Ok(Applied {
            from: current.to_string(),
            to: current.to_string(),
            layout: layout.describe(),
            signed_by: String::new(),
            restarted: false,
            ready_after_ms: None,
            changed: false,
        });
    }
    guard::version(&current, &release.version, options.allow_downgrade)?;
    let staged = stage(&source, release, &layout, config, say).await?;
    let result = install_staged(config, &source, &layout, &staged, &current, say).await;
    // The staging directory is scratch either way.
    let _ = std::fs::remove_dir_all(&staged.work);
    result
}

async fn install_staged(
    config: &Config,
    source: &Source<'_>,
    layout: &Layout,
    staged: &Staged,
    current: &semver::Version,
    say: &dyn Fn(&str),
) -> Result<Applied, UpdateError> {
    let manifest = &staged.unpacked.manifest;
    say("schema guard: reading the database's migration history");
    let history = guard::database_history(config).await?;
    guard::check(manifest, &history)?;
    install::smoke_test(&staged.unpacked.binary, &manifest.version)?;
    say(&format!(
        "smoke test passed: {} version --json",
        manifest.version
    ));
    let downgrade = staged.release.version < *current;
    match layout {
        Layout::Tarball { exe } => {
            install::swap_in(exe, &staged.unpacked.binary, &staged.work)?;
            say(&format!(
                "installed {} at {} (previous kept as {})",
                manifest.version,
                exe.display(),
                install::previous_of(exe).display()
            ));
        }
        Layout::Package { manager, .. } => {
            let file = fetch_package(source, staged, *manager, say).await?;
            install::install_package(*manager, &file, downgrade)?;
            record_previous(layout, current);
            say(&format!(
                "installed {} with the package manager",
                manifest.version
            ));
        }
    }
    let restarter = Restarter::choose(&config.update);
    let timeout = Duration::from_secs(config.update.ready_timeout_secs);
    if restarter == Restarter::None {
        say("strata is not running as a service here: start it to use the new version");
        return Ok(Applied {
            from: current.to_string(),
            to: manifest.version.clone(),
            layout: layout.describe(),
            signed_by: staged.signed_by.clone(),
            restarted: false,
            ready_after_ms: None,
            changed: true,
        });
    }
    say(&format!("restarting: {}", restarter.describe()));
    let ready = restart_after_install(layout, &restarter, timeout)
        .map_err(|e| e.to_string())
        .and_then(|()| restart::wait_ready(config.admin.listen, timeout));
    match ready {
        Ok(took) => {
            say(&format!(
                "{} is ready ({} ms)",
                manifest.version,
                took.as_millis()
            ));
            Ok(Applied {
                from: current.to_string(),
                to: manifest.version.clone(),
                layout: layout.describe(),
                signed_by: staged.signed_by.clone(),
                restarted: true,
                ready_after_ms: Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
                changed: true,
            })
        }
        Err(last) => {
            say(&format!(
                "{} is not ready: {last}; rolling back to {current}",
                manifest.version
            ));
            let after = roll_back_layout(config, layout, current, say)
                .await
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    restart_after_install(layout, &restarter, timeout).map_err(|e| e.to_string())
                })
                .and_then(|()| restart::wait_ready(config.admin.listen, timeout))
                .map_or_else(
                    |e| format!(", but the rollback is not ready either: {e}"),
                    |_| format!("; {current} is ready again"),
                );
            Err(UpdateError::RolledBack {
                version: manifest.version.clone(),
                previous: current.to_string(),
                secs: timeout.as_secs(),
                last,
                after,
            })
        }
    }
}

/// Restarts after an install. A package's own maintainer scripts already
/// `try-restart` an active unit (and `systemctl` waits for it), so then
/// only the readiness wait follows; a configured restart command still runs.
fn restart_after_install(
    layout: &Layout,
    restarter: &Restarter,
    timeout: Duration,
) -> Result<(), UpdateError> {
    match (layout, restarter) {
        (Layout::Package { .. }, Restarter::Systemd(_)) => Ok(()),
        _ => restarter.restart(timeout),
    }
}

/// Downloads the release's package for `manager`, checked against the
/// SHA-256 in the signed manifest.
async fn fetch_package(
    source: &Source<'_>,
    staged: &Staged,
    manager: PackageManager,
    say: &dyn Fn(&str),
) -> Result<PathBuf, UpdateError> {
    let manifest = &staged.unpacked.manifest;
    let refuse = |reason: String| UpdateError::Verification {
        asset: staged.release.archive.name.clone(),
        check: "package",
        reason,
    };
    let package = manifest
        .package(manager.kind())
        .ok_or_else(|| refuse(format!("the manifest lists no .{} package", manager.kind())))?;
    let asset = staged
        .release
        .assets
        .iter()
        .find(|a| a.name == package.file)
        .ok_or_else(|| refuse(format!("the release has no asset {}", package.file)))?;
    let file = staged.work.join(&package.file);
    say(&format!("downloading {}", package.file));
    source.download(asset, &file).await?;
    let digest = verify::sha256_file(&file).map_err(|e| refuse(e.to_string()))?;
    if !digest.eq_ignore_ascii_case(&package.sha256) {
        return Err(UpdateError::Verification {
            asset: package.file.clone(),
            check: "package digest",
            reason: format!(
                "SHA-256 {digest}, the signed manifest says {}",
                package.sha256
            ),
        });
    }
    Ok(file)
}

fn previous_version_file(layout: &Layout) -> PathBuf {
    layout.staging().join("previous-version")
}

/// The package layout has no second binary: remember what to reinstall.
fn record_previous(layout: &Layout, version: &semver::Version) {
    let _ = std::fs::write(previous_version_file(layout), version.to_string());
}

/// Puts the previous version back, after the schema guard agreed that it
/// can serve on the database as it is now (the new version may have
/// migrated it at its start).
async fn roll_back_layout(
    config: &Config,
    layout: &Layout,
    previous: &semver::Version,
    say: &dyn Fn(&str),
) -> Result<(), UpdateError> {
    match layout {
        Layout::Tarball { exe } => {
            let path = install::previous_of(exe);
            if !path.exists() {
                return Err(UpdateError::NoPrevious {
                    path: path.display().to_string(),
                });
            }
            match install::binary_manifest(&path) {
                Ok(manifest) => {
                    say("schema guard: can the previous binary serve on this database?");
                    let history = guard::database_history(config).await?;
                    guard::check(&manifest, &history)?;
                }
                // A binary from before self-update cannot say; the operator
                // installed it by hand, and its own boot still refuses.
                Err(e) => say(&format!(
                    "schema guard skipped: {} does not print its manifest ({e})",
                    path.display()
                )),
            }
            let work = install::fresh_staging(&layout.staging(), "rollback")?;
            let result = install::swap_back(exe, &work);
            let _ = std::fs::remove_dir_all(&work);
            result
        }
        Layout::Package { manager, .. } => {
            let source = Source::new(&config.update)?;
            let release = source.pick(Some(&previous.to_string())).await?;
            let staged = stage(&source, release, layout, config, say).await?;
            let result = async {
                say("schema guard: can the previous version serve on this database?");
                let history = guard::database_history(config).await?;
                guard::check(&staged.unpacked.manifest, &history)?;
                let file = fetch_package(&source, &staged, *manager, say).await?;
                install::install_package(*manager, &file, true)
            }
            .await;
            let _ = std::fs::remove_dir_all(&staged.work);
            result
        }
    }
}

/// What `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    pub layout: String,
    pub restored: String,
    pub restarted: bool,
}

/// Puts the previous binary back (tarball: `strata.previous`, byte for
/// byte; package: the previous version's signed package), then restarts.
pub async fn rollback(config: &Config, say: &dyn Fn(&str)) -> Result<RolledBack, UpdateError> {
    let layout = Layout::detect(&installed_exe(config)?);
    let restored = match &layout {
        Layout::Tarball { exe } => {
            // The version does not matter here: the previous binary is on disk.
            roll_back_layout(config, &layout, &semver::Version::new(0, 0, 0), say).await?;
            install::previous_of(exe).display().to_string()
        }
        Layout::Package { .. } => {
            let file = previous_version_file(&layout);
            let text = std::fs::read_to_string(&file).map_err(|_| UpdateError::NoPrevious {
                path: file.display().to_string(),
            })?;
            let version =
                semver::Version::parse(text.trim()).map_err(|_| UpdateError::NoPrevious {
                    path: file.display().to_string(),
                })?;
            roll_back_layout(config, &layout, &version, say).await?;
            version.to_string()
        }
    };
    say(&format!("restored {restored}"));
    let restarter = Restarter::choose(&config.update);
    let restarted = restarter != Restarter::None;
    if restarted {
        let timeout = Duration::from_secs(config.update.ready_timeout_secs);
        restart_after_install(&layout, &restarter, timeout)?;
        restart::wait_ready(config.admin.listen, timeout).map_err(|last| UpdateError::Restart {
            command: restarter.describe(),
            reason: format!("not ready after the rollback: {last}"),
        })?;
    }
    Ok(RolledBack {
        layout: layout.describe(),
        restored,
        restarted,
    })
}
