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
    /// What the release would change in the PostgreSQL schema, read from
    /// its signed manifest and the database (none when nothing would change
    /// or it could not be read: see `schema_error`).
    pub schema: Option<guard::SchemaPlan>,
    /// Why `schema` could not be worked out (the release failed its checks,
    /// the database could not be read).
    pub schema_error: Option<String>,
}

pub async fn check(config: &Config, wanted: Option<&str>) -> Result<CheckReport, UpdateError> {
    let source = Source::new(&config.update)?;
    let keys = keys::trusted(&config.update.trusted_keys).map_err(UpdateError::Keys)?;
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
    let (schema, schema_error) = match &picked {
        Some(release) if change != "none" => {
            match schema_change(config, &source, release, &keys).await {
                Ok(plan) => (Some(plan), None),
                Err(e) => (None, Some(e.to_string())),
            }
        }
        _ => (None, None),
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
        schema,
        schema_error,
    })
}

/// The release's schema (from its manifest, trusted only once the archive
/// passed every check) against the database's migration history. The
/// archive goes to a temporary directory that is removed again.
async fn schema_change(
    config: &Config,
    source: &Source<'_>,
    release: &Available,
    keys: &[keys::TrustedKey],
) -> Result<guard::SchemaPlan, UpdateError> {
    let work = tempfile::Builder::new()
        .prefix("strata-self-update-check-")
        .tempdir()
        .map_err(|e| UpdateError::Install {
            step: "creating a temporary directory for the release's manifest".into(),
            reason: e.to_string(),
        })?;
    let (_, unpacked) =
        download_and_verify(source, release, work.path(), keys, &|_: &str| {}).await?;
    let history = guard::database_history(config).await?;
    Ok(guard::plan(&unpacked.manifest, &history))
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
    // Decided before anything changes: the package layout stops the unit
    // before it installs, and a stopped unit no longer says it was running.
    let restarter = Restarter::choose(&config.update);
    let staged = stage(&source, release, &layout, config, say).await?;
    let result = install_staged(config, &source, &layout, &restarter, &staged, &current, say).await;
    // The staging directory is scratch either way.
    let _ = std::fs::remove_dir_all(&staged.work);
    result
}

async fn install_staged(
    config: &Config,
    source: &Source<'_>,
    layout: &Layout,
    restarter: &Restarter,
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
    let timeout = Duration::from_secs(config.update.ready_timeout_secs);
    // The package layout's record of the previous version, as it was before.
    let mut recorded = None;
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
            stop_for_package(restarter, timeout, say)?;
            if let Err(e) = install::install_package(*manager, &file, downgrade) {
                // The package manager may have stopped half-way (the new
                // files unpacked, not configured), and strata is stopped:
                // put the previous version back.
                say(&format!("{e}; rolling back to {current}"));
                let after =
                    restore_previous(config, layout, restarter, current, timeout, say).await;
                return Err(match e {
                    UpdateError::Package { command, reason } => UpdateError::Package {
                        command,
                        reason: format!("{reason}; rolled back to {current}{after}"),
                    },
                    other => other,
                });
            }
            recorded = Some(record_previous(layout, current));
            say(&format!(
                "installed {} with the package manager",
                manifest.version
            ));
        }
    }
    if *restarter == Restarter::None {
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
    let ready = restarter
        .restart(timeout)
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
            let after = restore_previous(config, layout, restarter, current, timeout, say).await;
            if let Some(earlier) = recorded {
                restore_record(layout, earlier);
            }
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

/// Before the package manager replaces a systemd-run strata: stop it. The
/// package's own scripts `try-restart` a running unit, and that restart
/// would wait for the new version's `READY=1` up to the unit's
/// `TimeoutStartSec=` (30 min), outside `update.ready_timeout_secs`; with
/// the unit stopped they leave it alone, and the start that follows is
/// ours, bounded, with the rollback behind it.
fn stop_for_package(
    restarter: &Restarter,
    timeout: Duration,
    say: &dyn Fn(&str),
) -> Result<(), UpdateError> {
    if let Restarter::Systemd(unit) = restarter {
        say(&format!("stopping {unit} for the package manager"));
        restarter.stop(timeout)?;
    }
    Ok(())
}

/// Puts `previous` back, restarts it and waits for it; says how that went
/// (the tail of the error message).
async fn restore_previous(
    config: &Config,
    layout: &Layout,
    restarter: &Restarter,
    previous: &semver::Version,
    timeout: Duration,
    say: &dyn Fn(&str),
) -> String {
    let restored = roll_back_layout(config, layout, restarter, previous, say)
        .await
        .map_err(|e| e.to_string());
    let ready = restored.and_then(|()| {
        if *restarter == Restarter::None {
            return Ok(false);
        }
        restarter.restart(timeout).map_err(|e| e.to_string())?;
        restart::wait_ready(config.admin.listen, timeout).map(|_| true)
    });
    match ready {
        Ok(true) => format!("; {previous} is ready again"),
        Ok(false) => format!("; {previous} is installed again"),
        Err(e) => format!(", but the rollback is not ready either: {e}"),
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
/// Returns what was remembered before.
fn record_previous(layout: &Layout, version: &semver::Version) -> Option<String> {
    let file = previous_version_file(layout);
    let earlier = std::fs::read_to_string(&file).ok();
    let _ = std::fs::write(file, version.to_string());
    earlier
}

/// After an update was undone: the record as it was before it.
fn restore_record(layout: &Layout, earlier: Option<String>) {
    let file = previous_version_file(layout);
    let _ = match earlier {
        Some(text) => std::fs::write(file, text),
        None => std::fs::remove_file(file),
    };
}

/// Puts the previous version back, after the schema guard agreed that it
/// can serve on the database as it is now (the new version may have
/// migrated it at its start). The package layout stops a systemd-run
/// strata before the package manager runs (see [`stop_for_package`]).
async fn roll_back_layout(
    config: &Config,
    layout: &Layout,
    restarter: &Restarter,
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
                let timeout = Duration::from_secs(config.update.ready_timeout_secs);
                stop_for_package(restarter, timeout, say)?;
                install::install_package(*manager, &file, true)?;
                say(&format!("installed {previous} with the package manager"));
                Ok::<(), UpdateError>(())
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
    let exe = installed_exe(config)?;
    let layout = Layout::detect(&exe);
    // Before anything changes (the package layout stops the unit first).
    let restarter = Restarter::choose(&config.update);
    let restored = match &layout {
        Layout::Tarball { exe } => {
            // The version does not matter here: the previous binary is on disk.
            roll_back_layout(
                config,
                &layout,
                &restarter,
                &semver::Version::new(0, 0, 0),
                say,
            )
            .await?;
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
            let installed = installed_version(config, &exe).ok();
            roll_back_layout(config, &layout, &restarter, &version, say).await?;
            // As with `strata.previous`: a second rollback undoes the first.
            if let Some(installed) = installed {
                let _ = record_previous(&layout, &installed);
            }
            version.to_string()
        }
    };
    say(&format!("restored {restored}"));
    let restarted = restarter != Restarter::None;
    if restarted {
        let timeout = Duration::from_secs(config.update.ready_timeout_secs);
        restarter.restart(timeout)?;
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
