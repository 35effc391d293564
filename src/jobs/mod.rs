//! Background jobs that run on one instance at a time (SPEC section 4,
//! scale-out): every instance runs the same loop per job, but only the
//! holder of the job's lease in PostgreSQL (`strata_jobs`, migration 0008)
//! runs it. The lease is one row taken or renewed in one statement on the
//! administrative path, so it works through anything (no session state);
//! the holder renews it every third of `jobs.lease_secs`. When the holder
//! dies its lease runs out and another instance takes the job over: within
//! `lease_secs` plus a third of it. A holder that stops in order gives its
//! leases back at once.
//!
//! Times are PostgreSQL's (`now()`), so instances with skewed clocks agree.

pub mod purge;
pub mod reconcile;

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::stores::postgres::Postgres;

/// Who holds a lease: host, process and a random part (a restarted process
/// with the same pid is another holder).
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    let random = ulid::Ulid::generate().to_string();
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &random[random.len() - 6..]
    )
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("s3: {0}")]
    S3(String),
    #[error("schema definitions: {0}")]
    Schema(String),
    #[error("{0}")]
    Content(String),
    /// The test-only fault hook fired (see [`crate::fault`]).
    #[error("fault injected at {0}")]
    Fault(&'static str),
}

/// A job: what it is called, how often it runs, what one run does. A run
/// must be safe to cut at any point and to run again (resumable).
pub trait Job: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn interval(&self) -> Duration;
    /// One run; its report (JSON) is recorded with the run.
    fn run(&self) -> impl Future<Output = Result<Value, JobError>> + Send;
}

/// The lease and schedule of one job.
pub struct Lease {
    pg: Postgres,
    name: &'static str,
    holder: String,
    ttl: Duration,
}

impl Lease {
    pub fn new(pg: Postgres, name: &'static str, holder: String, ttl: Duration) -> Self {
        Self {
            pg,
            name,
            holder,
            ttl,
        }
    }

    /// Takes the lease if it is free or expired, renews it if held by this
    /// instance. `Some(due)` when held (and whether a run is due).
    pub async fn claim(&self) -> Result<Option<bool>, sqlx::Error> {
        let mut tx = self.pg.begin_admin().await?;
        let due: Option<bool> = sqlx::query_scalar(
            "INSERT INTO strata_jobs AS j (name, holder, lease_until) \
             VALUES ($1, $2, now() + make_interval(secs => $3)) \
             ON CONFLICT (name) DO UPDATE \
               SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until \
               WHERE j.holder = EXCLUDED.holder OR j.holder IS NULL OR j.lease_until < now() \
             RETURNING j.next_run_on <= now()",
        )
        .bind(self.name)
        .bind(&self.holder)
        .bind(self.ttl.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(due)
    }

    /// Records a finished run and schedules the next one (only while
    /// still the holder: a run that outlived its lease is not recorded as
    /// the job's state, but its run row still is).
    async fn finish(
        &self,
        started: chrono::DateTime<chrono::Utc>,
        ok: bool,
        report: &Value,
        interval: Duration,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pg.begin_admin().await?;
        sqlx::query(
            "INSERT INTO strata_job_runs (name, holder, started_on, finished_on, ok, report) \
             VALUES ($1, $2, $3, clock_timestamp(), $4, $5)",
        )
        .bind(self.name)
        .bind(&self.holder)
        .bind(started)
        .bind(ok)
        .bind(report)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE strata_jobs SET runs = runs + 1, last_holder = $2, last_started_on = $3, \
               last_finished_on = clock_timestamp(), last_ok = $4, last_report = $5, \
               next_run_on = clock_timestamp() + make_interval(secs => $6) \
             WHERE name = $1 AND holder = $2",
        )
        .bind(self.name)
        .bind(&self.holder)
        .bind(started)
        .bind(ok)
        .bind(report)
        .bind(interval.as_secs_f64())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Gives the lease back (an orderly stop): another instance may take
    /// the job at once.
    pub async fn release(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pg.begin_admin().await?;
        sqlx::query(
            "UPDATE strata_jobs SET holder = NULL, lease_until = now() \
             WHERE name = $1 AND holder = $2",
        )
        .bind(self.name)
        .bind(&self.holder)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}

/// Runs `job` on this instance whenever it holds the job's lease and a run
/// is due; forever (the caller aborts the task to stop it, then calls
/// [`Lease::release`]).
pub async fn run_forever<J: Job>(job: J, lease: Lease) {
    let renew_every = lease.ttl / 3;
    loop {
        match lease.claim().await {
            Ok(Some(true)) => run_once(&job, &lease, renew_every).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(job = job.name(), error = %e, "cannot claim the job's lease"),
        }
        tokio::time::sleep(renew_every).await;
    }
}

async fn run_once<J: Job>(job: &J, lease: &Lease, renew_every: Duration) {
    let started = chrono::Utc::now();
    tracing::info!(job = job.name(), "job started");
    let run = job.run();
    tokio::pin!(run);
    // Renew the lease while the run goes on; a lost lease stops the run
    // (another instance holds the job now).
    let result = loop {
        tokio::select! {
            result = &mut run => break Some(result),
            _ = tokio::time::sleep(renew_every) => match lease.claim().await {
                Ok(Some(_)) => {}
                Ok(None) => break None,
                Err(e) => tracing::warn!(job = job.name(), error = %e, "cannot renew the job's lease"),
            },
        }
    };
    let Some(result) = result else {
        tracing::warn!(
            job = job.name(),
            "lost the job's lease during a run; the new holder resumes it"
        );
        return;
    };
    let (ok, report) = match result {
        Ok(report) => (true, report),
        Err(e) => {
            tracing::warn!(job = job.name(), error = %e, "job failed; it runs again when due");
            (false, serde_json::json!({"error": e.to_string()}))
        }
    };
    if ok {
        tracing::info!(job = job.name(), report = %report, "job finished");
    }
    if let Err(e) = lease.finish(started, ok, &report, job.interval()).await {
        tracing::warn!(job = job.name(), error = %e, "cannot record the job's run");
    }
}

/// One job's state, for `/admin/jobs`.
#[derive(Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    pub name: String,
    /// The instance holding the lease (`host:pid:random`), if any.
    pub holder: Option<String>,
    pub lease_until: chrono::DateTime<chrono::Utc>,
    pub next_run_on: chrono::DateTime<chrono::Utc>,
    pub runs: i64,
    pub last_holder: Option<String>,
    pub last_started_on: Option<chrono::DateTime<chrono::Utc>>,
    pub last_finished_on: Option<chrono::DateTime<chrono::Utc>>,
    pub last_ok: Option<bool>,
    pub last_report: Option<Value>,
}

/// Every job's state (administrative path).
pub async fn states(pg: &Postgres) -> Result<Vec<JobState>, sqlx::Error> {
    let mut tx = pg.begin_admin().await?;
    let states = sqlx::query_as(
        "SELECT name, CASE WHEN lease_until > now() THEN holder END AS holder, lease_until, \
                next_run_on, runs, last_holder, last_started_on, last_finished_on, last_ok, \
                last_report \
         FROM strata_jobs ORDER BY name",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(states)
}
