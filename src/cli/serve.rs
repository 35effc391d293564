//! `strata serve`: listeners first (so probes and clients get answers),
//! then the boot (dependencies → schema), then READY=1.
//!
//! Stopping (SIGTERM, SIGINT, or a panic anywhere) always takes the same
//! order, whether the boot finished or was cut at any step:
//! 1. `STOPPING=1` to systemd;
//! 2. stop accepting and drain in-flight requests (at most [`DRAIN`]);
//! 3. stop the audit drainer (it finishes its pass and makes a last one, at
//!    most [`DRAIN_AUDIT`]; what it leaves stays in the PostgreSQL outbox for
//!    the next drain), then the other background tasks (health monitor,
//!    watchdog) and wait for them;
//! 4. close the stores: MongoDB (`Client::shutdown`), the PostgreSQL pool,
//!    then S3 (wait for an Object Lock probe bucket to be deleted), each at
//!    most [`crate::stores::CLOSE_STORE`] ([`Stores::close`]);
//! 5. exit (0, or the boot's error code).
//!
//! A boot step that is cut is simply dropped: the PostgreSQL schema upgrade
//! runs in one transaction on its own session, so dropping that session
//! rolls it back and releases the schema lock on the server; the MongoDB
//! and S3 steps are idempotent and rerun at the next start.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, admin, data};
use crate::audit;
use crate::boot::{self, BootError, Health, Step, StepState};
use crate::cli::exit;
use crate::config::{Config, ConfigSource};
use crate::jobs;
use crate::ops::shutdown::{self, Stop};
use crate::ops::{logging, reload, systemd};
use crate::stores::Stores;
use crate::version::BuildInfo;

/// How long in-flight requests may take to finish once strata stops.
pub const DRAIN: Duration = Duration::from_secs(10);
/// How long the audit drainer may take to finish once requests are done.
pub const DRAIN_AUDIT: Duration = Duration::from_secs(5);

pub async fn run(config: Config, source: ConfigSource) -> u8 {
    // Before the first log line: from here a signal means "stop in order",
    // and SIGHUP a reload (never the default: the end of the process).
    let signals = shutdown::listen();
    let hangups = reload::listen();
    let _log_guard = match logging::init(&config.log) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("strata: {e}");
            return exit::BAD_CONFIG;
        }
    };
    let signals = match signals {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM/SIGINT; strata cannot stop in order");
            None
        }
    };
    let result = serve(config, Reload { source, hangups }, Stop::new()).await;
    if let Some(task) = signals {
        task.abort();
    }
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("strata: {e}");
            exit::of(&e)
        }
    }
}

/// How to reload the configuration on SIGHUP.
struct Reload {
    source: ConfigSource,
    hangups: Option<tokio::signal::unix::Signal>,
}

async fn serve(config: Config, reload: Reload, stop: Stop) -> Result<(), BootError> {
    let build = BuildInfo::current();
    tracing::info!(
        version = build.version,
        commit = build.git_commit,
        "strata starting"
    );
    let health = Health::new();
    health.set_step(Step::Config, StepState::Done, None);

    let (stop_tx, stop_rx) = watch::channel(false);
    let admin_listener = api::bind("admin API", config.admin.listen).await?;
    let data_listener = api::bind("data API", config.api.listen).await?;
    let admin_state = admin::AdminState::new(health.clone(), &config.admin.token_sha256, build)
        .with_config(&config);
    let admin_router = admin::router(admin_state.clone());
    let data_state = data::DataState::new(health.clone(), &config.api);
    let data_router = data::router(data_state.clone());
    let listeners = vec![
        (
            "admin API",
            tokio::spawn(
                axum::serve(admin_listener, admin_router)
                    .with_graceful_shutdown(stopped(stop_rx.clone()))
                    .into_future(),
            ),
        ),
        (
            "data API",
            tokio::spawn(
                axum::serve(data_listener, data_router)
                    .with_graceful_shutdown(stopped(stop_rx))
                    .into_future(),
            ),
        ),
    ];
    tracing::info!(admin = %config.admin.listen, api = %config.api.listen, "listening");

    let mut running = Running::default();
    let result = boot_and_serve(
        &config,
        reload,
        &health,
        (&data_state, &admin_state),
        stop.clone(),
        &mut running,
    )
    .await;

    // The ordered stop; see the module documentation.
    systemd::stopping();
    match stop.requested() {
        Some(reason) => tracing::info!(%reason, "stopping"),
        None => tracing::info!("stopping after a failed boot"),
    }
    // Ignore a send error: it only means every server already ended.
    let _ = stop_tx.send(true);
    for (what, server) in listeners {
        if let Some(Err(e)) = stop_task(what, server, DRAIN).await {
            tracing::warn!(listener = what, error = %e, "listener ended with an error");
        }
    }
    // After the listeners: the requests that append diffs are done.
    if let Some(drainer) = running.drainer.take() {
        stop_task("audit drainer", drainer.stop(), DRAIN_AUDIT).await;
    }
    for (what, task) in running.tasks {
        task.abort();
        stop_task(what, task, DRAIN).await;
    }
    // Give the jobs' leases back, so that another instance takes them over
    // now rather than when they run out.
    for lease in running.leases {
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "cannot give a job's lease back; it runs out by itself");
        }
    }
    if let Some(stores) = running.stores {
        stores.close().await;
    }
    tracing::info!("stopped");
    result
}

/// What the boot has started so far, for the stop to undo.
#[derive(Default)]
struct Running {
    stores: Option<Stores>,
    drainer: Option<audit::drain::Drainer>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    leases: Vec<jobs::Lease>,
}

/// The boot, then serving until a stop is requested. Returns early (Ok) at
/// whatever step a stop comes.
async fn boot_and_serve(
    config: &Config,
    reload: Reload,
    health: &Health,
    (data_state, admin_state): (&data::DataState, &admin::AdminState),
    mut stop: Stop,
    running: &mut Running,
) -> Result<(), BootError> {
    // Biased towards the boot step: stores that were just built must be
    // kept, so that the stop closes them.
    let stores = tokio::select! {
        biased;
        result = boot::connect_stores(config, health) => result?,
        _ = stop.wait() => return Ok(()),
    };
    running.stores = Some(stores.clone());
    let prepared = tokio::select! {
        biased;
        _ = stop.wait() => None,
        result = boot::prepare_stores(config, &stores, health) => Some(result),
    };
    match prepared {
        None => {
            tracing::info!("stop requested during boot");
            return Ok(());
        }
        Some(result) => result?,
    };
    let content = crate::content::Content::new(&stores, &config.content, &config.s3);
    data_state.set_content(content.clone());
    data_state.set_postgres(stores.postgres.clone());
    admin_state.set_postgres(stores.postgres.clone());
    admin_state.set_stores(stores.clone());
    data_state.set_mongo(stores.mongo.clone());
    health.set_step(
        Step::Listen,
        StepState::Done,
        Some(config.api.listen.to_string()),
    );
    health.set_booted();
    systemd::ready();
    if let Some(watchdog) = systemd::spawn_watchdog() {
        running.tasks.push(("watchdog", watchdog));
    }
    running.drainer = Some(audit::drain::spawn(
        stores.postgres.clone(),
        stores.mongo.clone(),
    ));
    running.tasks.push((
        "health monitor",
        boot::spawn_health_monitor(stores.clone(), config.boot.clone(), health.clone()),
    ));
    // One instance at a time runs each background job (see crate::jobs).
    let instance = jobs::instance_id();
    let lease_ttl = Duration::from_secs(config.jobs.lease_secs);
    let lease = |name| jobs::Lease::new(stores.postgres.clone(), name, instance.clone(), lease_ttl);
    let (live_tx, live) = watch::channel(Arc::new(config.clone()));
    admin_state.set_live_config(live.clone());
    running.tasks.push((
        "tenant purge",
        tokio::spawn(jobs::run_forever(
            jobs::purge::Purge::new(stores.clone(), live.clone()),
            lease(jobs::purge::NAME),
        )),
    ));
    running.leases.push(lease(jobs::purge::NAME));
    if config.content.reconcile_interval_secs > 0 {
        running.tasks.push((
            "reconcile",
            tokio::spawn(jobs::run_forever(
                jobs::reconcile::Reconcile::new(stores.postgres.clone(), content, live),
                lease(jobs::reconcile::NAME),
            )),
        ));
        running.leases.push(lease(jobs::reconcile::NAME));
    }
    if let Some(hangups) = reload.hangups {
        running.tasks.push((
            "reload",
            tokio::spawn(reload::on_sighup(
                hangups,
                reload.source,
                stores.clone(),
                live_tx,
            )),
        ));
    }
    tracing::info!(%instance, "background jobs started");
    tracing::info!("ready");
    stop.wait().await;
    Ok(())
}

/// Waits for a task to end, at most `limit`; then aborts it and waits for
/// that, so that nothing of it runs on while the stores close.
async fn stop_task<T>(what: &'static str, mut task: JoinHandle<T>, limit: Duration) -> Option<T> {
    let result = match tokio::time::timeout(limit, &mut task).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                task = what,
                limit_secs = limit.as_secs(),
                "did not finish in time; cutting it"
            );
            task.abort();
            task.await
        }
    };
    match result {
        Ok(output) => Some(output),
        Err(e) if e.is_cancelled() => None,
        Err(e) => {
            tracing::warn!(task = what, error = %e, "task failed");
            None
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // Err: the sender is gone, which also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}
