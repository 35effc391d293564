//! `strata serve`: listeners first (so probes and clients get answers),
//! then the boot (dependencies → schema), then READY=1.

use std::future::IntoFuture;
use std::sync::Arc;

use tokio::sync::watch;

use crate::api::{self, admin, data};
use crate::boot::{self, BootError, Health, Step, StepState};
use crate::cli::exit;
use crate::config::Config;
use crate::ops::{logging, systemd};
use crate::version::BuildInfo;

pub async fn run(config: Config) -> u8 {
    let _log_guard = match logging::init(&config.log) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("strata: {e}");
            return exit::BAD_CONFIG;
        }
    };
    match serve(config).await {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("strata: {e}");
            exit::of(&e)
        }
    }
}

async fn serve(config: Config) -> Result<(), BootError> {
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
    let admin_router = admin::router(admin::AdminState {
        health: health.clone(),
        token_sha256: Arc::from(config.admin.token_sha256.as_str()),
        build,
    });
    let data_state = data::DataState::new(health.clone(), &config.api);
    let data_router = data::router(data_state.clone());
    let admin_server = tokio::spawn(
        axum::serve(admin_listener, admin_router)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let data_server = tokio::spawn(
        axum::serve(data_listener, data_router)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    tracing::info!(admin = %config.admin.listen, api = %config.api.listen, "listening");

    let booted = tokio::select! {
        result = boot::connect_stores(&config, &health) => Some(result),
        () = shutdown_signal() => None,
    };
    let stores = match booted {
        Some(result) => result?,
        None => return Ok(()),
    };
    let booted = tokio::select! {
        result = boot::prepare_stores(&config, &stores, &health) => Some(result),
        () = shutdown_signal() => None,
    };
    let result = match booted {
        None => {
            tracing::info!("stop requested during boot");
            Ok(())
        }
        Some(Err(e)) => Err(e),
        Some(Ok(_)) => {
            data_state.set_postgres(stores.postgres.clone());
            health.set_step(
                Step::Listen,
                StepState::Done,
                Some(config.api.listen.to_string()),
            );
            health.set_booted();
            systemd::ready();
            let watchdog = systemd::spawn_watchdog();
            let monitor =
                boot::spawn_health_monitor(stores.clone(), config.boot.clone(), health.clone());
            tracing::info!("ready");
            shutdown_signal().await;
            tracing::info!("stopping");
            monitor.abort();
            if let Some(w) = watchdog {
                w.abort();
            }
            Ok(())
        }
    };
    systemd::stopping();
    // Ignore a send error: it only means every server already ended.
    let _ = stop_tx.send(true);
    for server in [admin_server, data_server] {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "listener ended with an error"),
            Err(e) => tracing::warn!(error = %e, "listener task failed"),
        }
    }
    result
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // Err: the sender is gone, which also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// SIGTERM (systemd) or SIGINT (a terminal).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops strata");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
