//! The boot as explicit steps, shared by `serve`, `check` and `migrate`:
//! configuration → dependency checks → schema upgrade → ready.
//!
//! Progress is kept in a [`Health`] that the admin API reads for `/readyz`
//! and that systemd hears about through `STATUS=`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{BootConfig, Config, ConfigError};
use crate::ops::systemd;
use crate::retry::{GaveUp, retry};
use crate::schema::{SchemaError, SchemaReport};
use crate::stores::{Dependency, ProbeError, ProbeReport, Stores};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{dependency} unreachable after {attempts} attempts in {elapsed_secs:.1}s: {error}")]
    Unreachable {
        dependency: Dependency,
        error: ProbeError,
        attempts: u32,
        elapsed_secs: f64,
    },
    #[error("{dependency} is not usable: {error}")]
    Unfit {
        dependency: Dependency,
        error: ProbeError,
    },
    /// A store's settings cannot even build a client (e.g. an unusable URL).
    #[error("{0}")]
    Stores(ProbeError),
    #[error("schema upgrade refused: {0}")]
    Schema(#[from] SchemaError),
    #[error("cannot listen on {address} ({what}): {reason}")]
    Listen {
        what: &'static str,
        address: String,
        reason: String,
    },
}

impl BootError {
    fn from_probe(dependency: Dependency, gave_up: GaveUp<ProbeError>) -> Self {
        match gave_up.error {
            error @ ProbeError::Unreachable { .. } => BootError::Unreachable {
                dependency,
                error,
                attempts: gave_up.attempts,
                elapsed_secs: gave_up.elapsed.as_secs_f64(),
            },
            error @ ProbeError::Unfit { .. } => BootError::Unfit { dependency, error },
        }
    }
}

/// The boot steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Config,
    Postgres,
    Mongo,
    S3,
    Schema,
    Listen,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Config,
        Step::Postgres,
        Step::Mongo,
        Step::S3,
        Step::Schema,
        Step::Listen,
    ];

    pub fn of(dependency: Dependency) -> Step {
        match dependency {
            Dependency::Postgres => Step::Postgres,
            Dependency::Mongo => Step::Mongo,
            Dependency::S3 => Step::S3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepStatus {
    pub step: Step,
    pub state: StepState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The last thing known about one dependency.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DependencyStatus {
    pub address: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct BootState {
    steps: Vec<StepStatus>,
    /// When each step last started, for its duration metric.
    step_started: BTreeMap<Step, Instant>,
    dependencies: BTreeMap<Dependency, DependencyStatus>,
    booted: bool,
    schema: Option<SchemaReport>,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub booted: bool,
    pub steps: Vec<StepStatus>,
    pub dependencies: BTreeMap<Dependency, DependencyStatus>,
}

/// Shared boot progress and dependency health; cheap to clone.
#[derive(Clone)]
pub struct Health {
    state: Arc<RwLock<BootState>>,
    started: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Self {
        let steps = Step::ALL
            .iter()
            .map(|&step| StepStatus {
                step,
                state: StepState::Pending,
                detail: None,
            })
            .collect();
        Self {
            state: Arc::new(RwLock::new(BootState {
                steps,
                step_started: BTreeMap::new(),
                dependencies: BTreeMap::new(),
                booted: false,
                schema: None,
            })),
            started: Instant::now(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut BootState) -> R) -> R {
        // A panic while holding the lock leaves plain data behind: keep using it.
        let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    fn read<R>(&self, f: impl FnOnce(&BootState) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    pub fn set_step(&self, step: Step, state: StepState, detail: Option<String>) {
        if state == StepState::Running {
            systemd::status(&format!("boot: {}", step_label(step)));
        }
        self.with(|s| {
            if let Some(entry) = s.steps.iter_mut().find(|e| e.step == step) {
                entry.state = state;
                entry.detail = detail;
            }
            match state {
                StepState::Running => {
                    s.step_started.insert(step, Instant::now());
                }
                StepState::Done | StepState::Failed => {
                    let took = s
                        .step_started
                        .get(&step)
                        .map_or(0.0, |started| started.elapsed().as_secs_f64());
                    if let Some(m) = crate::ops::metrics::metrics() {
                        m.boot_step_seconds
                            .with_label_values(&[step_label(step)])
                            .set(took);
                    }
                }
                StepState::Pending => {}
            }
        });
    }

    pub fn record_ok(&self, dependency: Dependency, report: &ProbeReport) {
        self.with(|s| {
            let entry = s.dependencies.entry(dependency).or_default();
            entry.address = report.address.clone();
            entry.ok = true;
            entry.version = report.version.clone().or(entry.version.take());
            entry.error = None;
            entry.warnings = report.warnings.clone();
            entry.checked_at = Some(Utc::now());
        });
    }

    pub fn record_ping(
        &self,
        dependency: Dependency,
        address: String,
        result: &Result<(), ProbeError>,
    ) {
        self.with(|s| {
            let entry = s.dependencies.entry(dependency).or_default();
            entry.address = address;
            entry.ok = result.is_ok();
            entry.error = result.as_ref().err().map(ToString::to_string);
            entry.checked_at = Some(Utc::now());
        });
    }

    pub fn record_schema(&self, report: SchemaReport) {
        if let Some(m) = crate::ops::metrics::metrics() {
            let embedded = crate::schema::embedded_versions();
            m.schema_info.reset();
            for (store, version) in [
                ("postgres", report.postgres_version.to_string()),
                ("mongo", embedded.mongo),
                ("s3", embedded.s3),
            ] {
                m.schema_info.with_label_values(&[store, &version]).set(1);
            }
        }
        self.with(|s| s.schema = Some(report));
    }

    pub fn schema(&self) -> Option<SchemaReport> {
        self.read(|s| s.schema.clone())
    }

    pub fn set_booted(&self) {
        self.with(|s| s.booted = true);
    }

    pub fn is_booted(&self) -> bool {
        self.read(|s| s.booted)
    }

    /// Booted and every dependency answered its last check.
    pub fn is_ready(&self) -> bool {
        self.read(|s| {
            s.booted
                && Dependency::ALL
                    .iter()
                    .all(|d| s.dependencies.get(d).is_some_and(|e| e.ok))
        })
    }

    pub fn readiness(&self) -> Readiness {
        let ready = self.is_ready();
        self.read(|s| Readiness {
            ready,
            booted: s.booted,
            steps: s.steps.clone(),
            dependencies: s.dependencies.clone(),
        })
    }

    pub fn dependencies(&self) -> BTreeMap<Dependency, DependencyStatus> {
        self.read(|s| s.dependencies.clone())
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

fn step_label(step: Step) -> &'static str {
    match step {
        Step::Config => "loading configuration",
        Step::Postgres => "checking PostgreSQL",
        Step::Mongo => "checking MongoDB",
        Step::S3 => "checking S3",
        Step::Schema => "upgrading the schema",
        Step::Listen => "opening the data API",
    }
}

/// One bounded round of probes (`boot.dependency_timeout_secs`), retrying
/// transient failures with backoff. Unfit servers fail at once.
pub async fn probe_bounded(
    stores: &Stores,
    dependency: Dependency,
    boot: &BootConfig,
) -> Result<ProbeReport, BootError> {
    // Each attempt gets what is left of the round: a server that accepts
    // connections and never answers must not outlast the bound.
    let deadline = tokio::time::Instant::now() + boot.dependency_timeout();
    retry(
        boot.backoff(),
        boot.dependency_timeout(),
        |attempt, error: &ProbeError| {
            tracing::debug!(%dependency, attempt, %error, "dependency check failed, retrying");
        },
        || async move {
            let left = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(MIN_ATTEMPT);
            bounded(stores, dependency, left, stores.probe(dependency)).await
        },
    )
    .await
    .map(|(report, _)| report)
    .map_err(|gave_up| BootError::from_probe(dependency, gave_up))
}

/// The shortest time an attempt is given, even at the end of a round.
const MIN_ATTEMPT: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs a probe or ping for at most `limit`; silence counts as unreachable.
async fn bounded<T>(
    stores: &Stores,
    dependency: Dependency,
    limit: std::time::Duration,
    attempt: impl std::future::Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(ProbeError::Unreachable {
                check: "reachable",
                address: stores.address(dependency),
                cause: format!("no answer within {:.1}s", limit.as_secs_f64()),
            })
        })
}

/// Probes all three dependencies at once, one bounded round each: what
/// `check` reports.
pub async fn probe_all(
    stores: &Stores,
    boot: &BootConfig,
) -> Vec<(Dependency, Result<ProbeReport, BootError>)> {
    let (pg, mongo, s3) = tokio::join!(
        probe_bounded(stores, Dependency::Postgres, boot),
        probe_bounded(stores, Dependency::Mongo, boot),
        probe_bounded(stores, Dependency::S3, boot),
    );
    vec![
        (Dependency::Postgres, pg),
        (Dependency::Mongo, mongo),
        (Dependency::S3, s3),
    ]
}

/// Waits for one dependency the way `serve` does: round after round until it
/// answers (an unreachable database may come up later), recording every
/// failed round in `health`. An unfit server ends the boot.
pub async fn wait_for(
    stores: &Stores,
    dependency: Dependency,
    boot: &BootConfig,
    health: &Health,
) -> Result<ProbeReport, BootError> {
    let step = Step::of(dependency);
    health.set_step(step, StepState::Running, None);
    loop {
        match probe_bounded(stores, dependency, boot).await {
            Ok(report) => {
                health.record_ok(dependency, &report);
                health.set_step(step, StepState::Done, report.version.clone());
                for warning in &report.warnings {
                    tracing::warn!(%dependency, "{warning}");
                }
                tracing::info!(%dependency, address = %report.address, version = ?report.version, "dependency ready");
                return Ok(report);
            }
            Err(error @ BootError::Unreachable { .. }) => {
                let message = error.to_string();
                tracing::warn!(%dependency, "{message}; still waiting");
                health.record_ping(
                    dependency,
                    stores.address(dependency),
                    &Err(probe_error(&error)),
                );
                health.set_step(step, StepState::Running, Some(message));
                systemd::status(&format!("boot: waiting for {dependency}"));
            }
            Err(error) => {
                health.set_step(step, StepState::Failed, Some(error.to_string()));
                return Err(error);
            }
        }
    }
}

fn probe_error(error: &BootError) -> ProbeError {
    match error {
        BootError::Unreachable { error, .. }
        | BootError::Unfit { error, .. }
        | BootError::Stores(error) => error.clone(),
        other => ProbeError::Unfit {
            check: "boot",
            reason: other.to_string(),
        },
    }
}

/// Builds the store clients the way `serve` does: a `mongodb+srv` URL is
/// resolved here, and a failed lookup is retried (recorded for `/readyz`)
/// rather than taken for bad configuration.
pub async fn connect_stores(config: &Config, health: &Health) -> Result<Stores, BootError> {
    let backoff = config.boot.backoff();
    let mut delays = backoff.delays();
    loop {
        match Stores::new(config).await {
            Ok(stores) => return Ok(stores),
            Err(error @ ProbeError::Unreachable { .. }) => {
                tracing::warn!(dependency = %Dependency::Mongo, %error, "still waiting");
                health.record_ping(Dependency::Mongo, config.mongo.url.address(), &Err(error));
                tokio::time::sleep(delays.next().unwrap_or(backoff.max())).await;
            }
            Err(error) => return Err(BootError::Stores(error)),
        }
    }
}

/// Waits for all three dependencies (concurrently), then upgrades the schema.
pub async fn prepare_stores(
    config: &Config,
    stores: &Stores,
    health: &Health,
) -> Result<SchemaReport, BootError> {
    let boot = &config.boot;
    let (pg, mongo, s3) = tokio::join!(
        wait_for(stores, Dependency::Postgres, boot, health),
        wait_for(stores, Dependency::Mongo, boot, health),
        wait_for(stores, Dependency::S3, boot, health),
    );
    pg?;
    mongo?;
    s3?;

    health.set_step(Step::Schema, StepState::Running, None);
    let progress = |line: &str| tracing::info!("schema: {line}");
    let backoff = config.boot.backoff();
    let mut delays = backoff.delays();
    loop {
        match crate::schema::upgrade(stores, config, &progress).await {
            Ok(report) => {
                for warning in &report.warnings {
                    tracing::warn!("schema: {warning}");
                }
                // An older binary on a compatible newer schema says so in /readyz.
                let detail = if report.postgres_newer.is_empty() {
                    format!("{} change(s) applied", report.applied.len())
                } else {
                    report.warnings.join("; ")
                };
                health.set_step(Step::Schema, StepState::Done, Some(detail));
                health.record_schema(report.clone());
                return Ok(report);
            }
            // A store lost mid-upgrade: the upgrade is one transaction per
            // store and idempotent, so wait and run it again.
            Err(error) if error.is_transient() => {
                tracing::warn!("schema upgrade interrupted: {error}; retrying");
                health.set_step(Step::Schema, StepState::Running, Some(error.to_string()));
                systemd::status("boot: schema upgrade interrupted, retrying");
                tokio::time::sleep(delays.next().unwrap_or(backoff.max())).await;
            }
            Err(error) => {
                health.set_step(Step::Schema, StepState::Failed, Some(error.to_string()));
                return Err(error.into());
            }
        }
    }
}

/// Re-checks the dependencies every `boot.health_interval_secs` for as long
/// as the server runs, so `/readyz` turns 503 when one goes away and 200
/// again when it comes back.
pub fn spawn_health_monitor(
    stores: Stores,
    boot: BootConfig,
    health: Health,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = std::time::Duration::from_secs(boot.health_interval_secs);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A silent server (network partition) must turn /readyz to 503 too,
        // not freeze the monitor until TCP gives up.
        let limit = interval.max(MIN_ATTEMPT);
        loop {
            ticker.tick().await;
            let (pg, mongo, s3) = tokio::join!(
                bounded(
                    &stores,
                    Dependency::Postgres,
                    limit,
                    stores.ping(Dependency::Postgres)
                ),
                bounded(
                    &stores,
                    Dependency::Mongo,
                    limit,
                    stores.ping(Dependency::Mongo)
                ),
                bounded(&stores, Dependency::S3, limit, stores.ping(Dependency::S3)),
            );
            for (dependency, result) in [
                (Dependency::Postgres, pg),
                (Dependency::Mongo, mongo),
                (Dependency::S3, s3),
            ] {
                let was_ok = health.dependencies().get(&dependency).is_some_and(|d| d.ok);
                match (&result, was_ok) {
                    (Err(e), true) => {
                        tracing::warn!(%dependency, error = %e, "dependency lost; not ready")
                    }
                    (Ok(()), false) => tracing::info!(%dependency, "dependency back"),
                    _ => {}
                }
                health.record_ping(dependency, stores.address(dependency), &result);
            }
            stores.postgres.record_pool_metrics();
            if let (Some(m), Ok(backlog)) = (
                crate::ops::metrics::metrics(),
                crate::audit::drain::backlog(&stores.postgres).await,
            ) {
                m.outbox_backlog
                    .with_label_values(&["audit"])
                    .set(backlog.rows);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_boot_and_every_dependency() {
        let health = Health::new();
        assert!(!health.is_ready());
        for d in Dependency::ALL {
            health.record_ping(d, "x".into(), &Ok(()));
        }
        assert!(!health.is_ready(), "not booted yet");
        health.set_booted();
        assert!(health.is_ready());
        let lost = Err(ProbeError::Unreachable {
            check: "reachable",
            address: "x".into(),
            cause: "refused".into(),
        });
        health.record_ping(Dependency::Mongo, "x".into(), &lost);
        assert!(!health.is_ready());
        let readiness = health.readiness();
        assert!(
            readiness.dependencies[&Dependency::Mongo]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("refused")
        );
    }
}
