//! The schema of the three stores, embedded as data (`migrations/`), and
//! the reconcilers that bring a store up to it:
//!
//! * [`postgres`]: SQL migrations, checksummed, applied in one transaction,
//!   plus the serving role's grants;
//! * [`mongo`]: collections, validators and indexes (TTL, text);
//! * [`s3`]: buckets, versioning, lifecycle rules, Object Lock retention.
//!
//! An upgrade first plans without any lock. Only when something is pending
//! does it take one session advisory lock on the direct PostgreSQL
//! connection, plan again (another instance may have done the work) and
//! apply. So N instances booting at once upgrade exactly once, and
//! restarts of an up-to-date fleet never queue on the lock.

pub mod config_keys;
pub mod embedded;
pub mod mongo;
pub mod postgres;
pub mod s3;

use std::time::Instant;

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::config::Config;
use crate::stores::Stores;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{store}: {reason}")]
    Refused { store: &'static str, reason: String },
    #[error(
        "postgres: migration {name} differs from the one applied to this database (recorded \
         checksum {recorded}, this binary has {embedded}). A released migration must never \
         change: restore the original file and put the change in a new migration"
    )]
    ChangedMigration {
        name: String,
        recorded: String,
        embedded: String,
    },
    #[error(
        "postgres: the database schema is at version {database} ({database_name}), newer than \
         this binary knows (up to version {binary}, {binary_name}); run a strata release that \
         ships {database_name} or later"
    )]
    DatabaseNewer {
        database: i64,
        database_name: String,
        binary: i64,
        binary_name: String,
    },
    #[error(
        "postgres: another instance held the schema lock for longer than \
         postgres.schema_lock_wait_secs ({secs}s); it may still be migrating: \
         wait for it or raise the timeout"
    )]
    LockTimeout { secs: u64 },
    #[error("{store}: {step}: {reason}")]
    Store {
        store: &'static str,
        step: String,
        reason: String,
        /// The store went away mid-way (connection lost, timed out): worth
        /// retrying, and not a refusal of the schema.
        transient: bool,
    },
    #[error("embedded schema file {file}: {reason}")]
    Embedded { file: String, reason: String },
}

impl SchemaError {
    /// A lost or timed-out store, as opposed to a refused schema.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SchemaError::Store {
                transient: true,
                ..
            }
        )
    }
}

/// Whether a PostgreSQL error means the connection, not the statement, failed.
pub(crate) fn pg_transient(error: &sqlx::Error) -> bool {
    crate::stores::Failure::of_postgres(error).is_transient()
}

/// What an upgrade would change, per store, without changing anything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchemaPlan {
    pub postgres: Vec<String>,
    pub mongo: Vec<String>,
    pub s3: Vec<String>,
    pub warnings: Vec<String>,
    /// The highest migration applied to the database (0: none).
    pub postgres_version: i64,
    /// The highest migration this binary ships.
    pub postgres_binary_version: i64,
    /// Applied migrations newer than this binary, all declared compatible:
    /// it may serve, and refuses to migrate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postgres_newer: Vec<String>,
}

impl SchemaPlan {
    pub fn is_empty(&self) -> bool {
        self.postgres.is_empty() && self.mongo.is_empty() && self.s3.is_empty()
    }

    pub fn len(&self) -> usize {
        self.postgres.len() + self.mongo.len() + self.s3.len()
    }
}

/// What an upgrade did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchemaReport {
    pub applied: Vec<String>,
    pub warnings: Vec<String>,
    /// Whether the schema lock was taken (only when something was pending).
    pub locked: bool,
    pub postgres_version: i64,
    /// See [`SchemaPlan::postgres_newer`]: nothing was changed in any store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postgres_newer: Vec<String>,
    pub took_ms: u64,
}

/// The schema versions this binary embeds, for `strata version`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmbeddedVersions {
    pub postgres: String,
    pub mongo: String,
    pub s3: String,
}

pub fn embedded_versions() -> EmbeddedVersions {
    let postgres = match postgres::embedded_migrations() {
        Ok(all) => all
            .last()
            .map_or_else(|| "none".into(), |m| format!("{} ({})", m.version, m.name)),
        Err(e) => format!("invalid: {e}"),
    };
    EmbeddedVersions {
        postgres,
        mongo: embedded::digest("mongo/"),
        s3: embedded::digest("s3/"),
    }
}

/// Everything the binary ships, parsed.
struct Shipped {
    migrations: Vec<postgres::Migration>,
    collections: Vec<mongo::CollectionDef>,
    buckets: Vec<s3::Desired>,
}

impl Shipped {
    fn load(config: &Config) -> Result<Self, SchemaError> {
        Ok(Self {
            migrations: postgres::embedded_migrations()?,
            collections: mongo::definitions()?,
            buckets: s3::desired(&s3::definitions()?, config)?,
        })
    }
}

struct FullPlan {
    postgres: postgres::PgPlan,
    mongo: mongo::MongoPlan,
    s3: s3::S3Plan,
}

impl FullPlan {
    fn is_empty(&self) -> bool {
        self.postgres.is_empty() && self.mongo.actions.is_empty() && self.s3.actions.is_empty()
    }

    /// The database has compatible migrations newer than this binary: it
    /// serves, but leaves every store's schema to the newer binary.
    fn newer(&self) -> Option<String> {
        let newer = &self.postgres.newer_compatible;
        (!newer.is_empty()).then(|| {
            format!(
                "postgres: the database has migrations newer than this binary ({}), all \
                 declared compatible with older binaries: serving without migrating any store; \
                 upgrade strata to migrate",
                newer.join(", ")
            )
        })
    }

    fn summary(&self, shipped: &Shipped) -> SchemaPlan {
        if self.newer().is_some() {
            return SchemaPlan {
                warnings: self.newer().into_iter().collect(),
                postgres_version: self.postgres.database_version,
                postgres_binary_version: shipped.migrations.last().map_or(0, |m| m.version),
                postgres_newer: self.postgres.newer_compatible.clone(),
                ..SchemaPlan::default()
            };
        }
        SchemaPlan {
            postgres: self.postgres.steps(),
            mongo: self.mongo.steps(),
            s3: self.s3.steps(),
            warnings: self.mongo.warnings.clone(),
            postgres_newer: Vec::new(),
            postgres_version: self.postgres.database_version,
            postgres_binary_version: shipped.migrations.last().map_or(0, |m| m.version),
        }
    }
}

fn pg_error(step: &str, error: sqlx::Error) -> SchemaError {
    SchemaError::Store {
        store: "postgres",
        step: step.to_string(),
        transient: pg_transient(&error),
        reason: match &error {
            sqlx::Error::Database(db) => db.message().to_string(),
            other => other.to_string(),
        },
    }
}

/// The role that serves requests: `current_user` on `postgres.url`, when
/// it differs from the migration role (then it needs grants).
async fn serving_role(
    stores: &Stores,
    direct: &mut PgConnection,
) -> Result<Option<String>, SchemaError> {
    let step = "asking postgres.url for its role";
    let mut tx = stores
        .postgres
        .begin()
        .await
        .map_err(|e| pg_error(step, e))?;
    let serving: String = stores
        .postgres
        .query_as::<(String,)>("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| pg_error(step, e))?
        .0;
    tx.commit().await.map_err(|e| pg_error(step, e))?;
    let owner: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *direct)
        .await
        .map_err(|e| pg_error("asking postgres.direct_url for its role", e))?;
    Ok((serving != owner).then_some(serving))
}

async fn plan_all(
    stores: &Stores,
    config: &Config,
    direct: &mut PgConnection,
    shipped: &Shipped,
) -> Result<FullPlan, SchemaError> {
    let role = serving_role(stores, direct).await?;
    let postgres = postgres::plan(direct, &shipped.migrations, role.as_deref()).await?;
    let mongo = mongo::plan(stores.mongo.database(), &shipped.collections, config).await?;
    let s3 = s3::plan(&stores.s3, &shipped.buckets).await?;
    Ok(FullPlan {
        postgres,
        mongo,
        s3,
    })
}

async fn connect_direct(stores: &Stores) -> Result<PgConnection, SchemaError> {
    stores
        .postgres
        .connect_direct()
        .await
        .map_err(|e| pg_error("connecting with postgres.direct_url", e))
}

/// What an upgrade would do, per store; changes nothing, takes no lock.
pub async fn plan(stores: &Stores, config: &Config) -> Result<SchemaPlan, SchemaError> {
    let shipped = Shipped::load(config)?;
    let mut direct = connect_direct(stores).await?;
    let planned = plan_all(stores, config, &mut direct, &shipped).await;
    // Best effort: the plan is complete either way.
    let _ = direct.close().await;
    Ok(planned?.summary(&shipped))
}

/// Brings all three stores up to the embedded schema; `progress` hears one
/// line per step.
pub async fn upgrade(
    stores: &Stores,
    config: &Config,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<SchemaReport, SchemaError> {
    let started = Instant::now();
    let shipped = Shipped::load(config)?;
    let mut direct = connect_direct(stores).await?;
    let result = upgrade_on(stores, config, &mut direct, &shipped, progress).await;
    let _ = direct.close().await;
    let mut report = result?;
    report.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

async fn upgrade_on(
    stores: &Stores,
    config: &Config,
    direct: &mut PgConnection,
    shipped: &Shipped,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<SchemaReport, SchemaError> {
    let first = plan_all(stores, config, direct, shipped).await?;
    if let Some(warning) = first.newer() {
        return Ok(newer_report(&first, warning));
    }
    if first.is_empty() {
        return Ok(SchemaReport {
            warnings: first.mongo.warnings.clone(),
            postgres_version: first.postgres.database_version,
            ..SchemaReport::default()
        });
    }
    progress("taking the schema lock");
    postgres::lock(direct, config.postgres.schema_lock_wait_secs).await?;
    let applied = apply_locked(stores, config, direct, shipped, progress).await;
    // Closing the session would release it too; unlock to be explicit.
    let unlocked = postgres::unlock(direct).await;
    let report = applied?;
    unlocked?;
    Ok(report)
}

async fn apply_locked(
    stores: &Stores,
    config: &Config,
    direct: &mut PgConnection,
    shipped: &Shipped,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<SchemaReport, SchemaError> {
    // Another instance may have upgraded while this one waited.
    let plan = plan_all(stores, config, direct, shipped).await?;
    if let Some(warning) = plan.newer() {
        return Ok(newer_report(&plan, warning));
    }
    let locks = postgres::LockPolicy {
        lock_timeout: std::time::Duration::from_secs(config.postgres.migration_lock_timeout_secs),
        attempts: config.postgres.migration_attempts,
        backoff: config.boot.backoff(),
    };
    let mut applied = postgres::apply(direct, &plan.postgres, &locks, progress).await?;
    let embedded = embedded_versions();
    let started = Instant::now();
    let mongo = mongo::apply(stores.mongo.database(), &plan.mongo, progress).await?;
    record_store_changes(direct, "mongo", &embedded.mongo, &mongo.done, started).await?;
    applied.extend(mongo.done);
    let started = Instant::now();
    let s3_done = s3::apply(&stores.s3, &plan.s3, progress).await?;
    record_store_changes(direct, "s3", &embedded.s3, &s3_done, started).await?;
    applied.extend(s3_done);
    Ok(SchemaReport {
        applied,
        warnings: mongo.warnings,
        locked: true,
        postgres_newer: Vec::new(),
        postgres_version: shipped
            .migrations
            .last()
            .map_or(plan.postgres.database_version, |m| m.version),
        took_ms: 0,
    })
}

/// Appends what a reconcile of MongoDB or S3 changed to
/// `strata_store_schema_history` (migration 0009), if it changed anything.
async fn record_store_changes(
    direct: &mut PgConnection,
    store: &str,
    definitions: &str,
    steps: &[String],
    started: Instant,
) -> Result<(), SchemaError> {
    if steps.is_empty() {
        return Ok(());
    }
    let took_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO strata_store_schema_history (store, definitions, steps, applied_by, took_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(store)
    .bind(definitions)
    .bind(serde_json::json!(steps))
    .bind(format!("strata {}", env!("CARGO_PKG_VERSION")))
    .bind(took_ms)
    .execute(&mut *direct)
    .await
    .map_err(|e| SchemaError::Store {
        store: "postgres",
        step: format!("recording the {store} schema changes"),
        transient: crate::stores::Failure::of_postgres(&e).is_transient(),
        reason: e.to_string(),
    })?;
    Ok(())
}

/// One applied PostgreSQL migration.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    pub applied_on: chrono::DateTime<chrono::Utc>,
    pub applied_by: String,
    pub execution_ms: i64,
    pub compatible: bool,
}

/// What one reconcile changed in MongoDB or S3.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct StoreChange {
    pub store: String,
    /// The hash of the embedded definitions it reconciled to.
    pub definitions: String,
    pub steps: serde_json::Value,
    pub applied_on: chrono::DateTime<chrono::Utc>,
    pub applied_by: String,
    pub took_ms: i64,
}

/// The schema history of the three stores (administrative path).
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub postgres: Vec<AppliedMigration>,
    pub mongo: Vec<StoreChange>,
    pub s3: Vec<StoreChange>,
}

pub async fn history(pg: &crate::stores::postgres::Postgres) -> Result<History, sqlx::Error> {
    let mut tx = pg.begin_admin().await?;
    let postgres = sqlx::query_as(
        "SELECT version, name, checksum, applied_on, applied_by, execution_ms, compatible \
         FROM strata_schema_history ORDER BY version",
    )
    .fetch_all(&mut *tx)
    .await?;
    let changes: Vec<StoreChange> = sqlx::query_as(
        "SELECT store, definitions, steps, applied_on, applied_by, took_ms \
         FROM strata_store_schema_history ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let (mongo, s3) = changes.into_iter().partition(|c| c.store == "mongo");
    Ok(History {
        postgres,
        mongo,
        s3,
    })
}

fn newer_report(plan: &FullPlan, warning: String) -> SchemaReport {
    SchemaReport {
        warnings: vec![warning],
        postgres_version: plan.postgres.database_version,
        postgres_newer: plan.postgres.newer_compatible.clone(),
        ..SchemaReport::default()
    }
}
