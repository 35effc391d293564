//! SIGHUP: reload what can change without a restart.
//!
//! The configuration is read again from the same file and environment and
//! validated; a configuration that does not load is refused as a whole
//! (the error names the key) and the running one stays. What takes effect:
//! - `log.level` at once (unless `RUST_LOG` is set, which keeps precedence);
//! - `[jobs]` (purge grace, intervals) at the next run of each job;
//! - MongoDB TTLs (`mongo.*_ttl_days`) and the S3 lifecycle and retention
//!   settings: the schema reconciliation runs again with the new values
//!   (MongoDB `collMod`, bucket lifecycle/retention), keeping the data.
//!
//! Everything else (listeners, store URLs and credentials, pool sizes,
//! boot settings) needs a restart; a change to it is logged as such.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{Config, ConfigSource};
use crate::stores::Stores;

/// The configuration jobs read at each run; replaced by a reload.
pub type Live = watch::Receiver<Arc<Config>>;

fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    toml::to_string(a).ok() == toml::to_string(b).ok()
}

/// What changed that only a restart applies.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if !same(&old.postgres, &new.postgres) {
        changed.push("postgres");
    }
    if !same(&old.api, &new.api) {
        changed.push("api");
    }
    if !same(&old.admin, &new.admin) {
        changed.push("admin");
    }
    if !same(&old.boot, &new.boot) {
        changed.push("boot");
    }
    let (om, nm) = (&old.mongo, &new.mongo);
    if om.url.expose() != nm.url.expose() || om.database != nm.database {
        changed.push("mongo (url, database)");
    }
    let (os, ns) = (&old.s3, &new.s3);
    if os.endpoint != ns.endpoint
        || os.access_key_id != ns.access_key_id
        || os.secret_access_key.expose() != ns.secret_access_key.expose()
        || os.bucket_prefix != ns.bucket_prefix
        || os.region != ns.region
    {
        changed.push("s3 (endpoint, credentials, buckets)");
    }
    let (ol, nl) = (&old.log, &new.log);
    if ol.target != nl.target || ol.format != nl.format || ol.directory != nl.directory {
        changed.push("log (target, format, directory)");
    }
    changed
}

/// Takes SIGHUP over from its default action (which ends the process) as
/// early as possible; a hangup during the boot is handled once serving.
pub fn listen() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; a reload needs a restart");
            None
        }
    }
}

/// Reloads on every SIGHUP until the task is aborted.
pub async fn on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    source: ConfigSource,
    stores: Stores,
    live: watch::Sender<Arc<Config>>,
) {
    while hangups.recv().await.is_some() {
        reload(&source, &stores, &live).await;
    }
}

pub async fn reload(source: &ConfigSource, stores: &Stores, live: &watch::Sender<Arc<Config>>) {
    let new = match Config::load(source) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the configuration does not load; keeping the running one");
            return;
        }
    };
    let old = live.borrow().clone();
    for section in needs_restart(&old, &new) {
        tracing::warn!(%section, "SIGHUP: changed, takes effect at the next restart");
    }
    match crate::ops::logging::set_level(&new.log.level) {
        Ok(true) => tracing::info!(level = %new.log.level, "SIGHUP: log level applied"),
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "SIGHUP: log.level not applied"),
    }
    // The store URLs and credentials stay the running ones: reconcile the
    // TTLs and bucket rules with the new values on the current stores.
    let mut effective = new.clone();
    effective.postgres = old.postgres.clone();
    effective.mongo.url = old.mongo.url.clone();
    effective.mongo.database = old.mongo.database.clone();
    effective.s3 = crate::config::S3Config {
        endpoint: old.s3.endpoint.clone(),
        region: old.s3.region.clone(),
        access_key_id: old.s3.access_key_id.clone(),
        secret_access_key: old.s3.secret_access_key.clone(),
        path_style: old.s3.path_style,
        bucket_prefix: old.s3.bucket_prefix.clone(),
        ..new.s3.clone()
    };
    match crate::schema::upgrade(stores, &effective, &|_| {}).await {
        Ok(report) => tracing::info!(
            applied = ?report.applied,
            "SIGHUP: MongoDB TTLs and S3 bucket rules reconciled"
        ),
        Err(e) => tracing::error!(error = %e, "SIGHUP: reconciling TTLs and bucket rules failed"),
    }
    live.send_replace(Arc::new(effective));
    tracing::info!("SIGHUP: configuration reloaded");
}
