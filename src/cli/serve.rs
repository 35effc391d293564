//! `strata serve`: listeners first (so probes and clients get answers),
//! then the boot (dependencies → schema), then READY=1.
//!
//! Stopping (SIGTERM, SIGINT, or a panic anywhere) always takes the same
//! order, whether the boot finished or was cut at any step:
//! 1. `STOPPING=1` to systemd;
//! 2. stop accepting and drain in-flight requests (at most [`DRAIN`]);
//! 3. stop the background tasks (health monitor, watchdog) and wait for them;
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
use crate::boot::{self, BootError, Health, Step, StepState};
use crate::cli::exit;
use crate::config::Config;
use crate::ops::shutdown::{self, Stop};
use crate::ops::{logging, systemd};
use crate::stores::Stores;
use crate::version::BuildInfo;

/// How long in-flight requests may take to finish once strata stops.
pub const DRAIN: Duration = Duration::from_secs(10);

pub async fn run(config: Config) -> u8 {
    // Before the first log line: from here a signal means "stop in order".
    let signals = shutdown::listen();
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
    let result = serve(config, Stop::new()).await;
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

async fn serve(config: Config, stop: Stop) -> Result<(), BootError> {
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
    let admin_stores = Arc::new(std::sync::OnceLock::new());
    let admin_router = admin::router(admin::AdminState {
        health: health.clone(),
        token_sha256: Arc::from(config.admin.token_sha256.as_str()),
        build,
        stores: admin_stores.clone(),
    });
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
        &health,
        (&data_state, &admin_stores),
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
    for (what, task) in running.tasks {
        task.abort();
        stop_task(what, task, DRAIN).await;
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
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// The boot, then serving until a stop is requested. Returns early (Ok) at
/// whatever step a stop comes.
async fn boot_and_serve(
    config: &Config,
    health: &Health,
    (data_state, admin_stores): (&data::DataState, &std::sync::OnceLock<Stores>),
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
    data_state.set_postgres(stores.postgres.clone());
    data_state.set_mongo(stores.mongo.clone());
    let _ = admin_stores.set(stores.clone());
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
    running.tasks.push((
        "health monitor",
        boot::spawn_health_monitor(stores, config.boot.clone(), health.clone()),
    ));
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
