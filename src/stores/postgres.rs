//! PostgreSQL: a pooled handle for serving (possibly through PgBouncer in
//! transaction mode) and a direct connection for migrations.
//!
//! Behind PgBouncer's transaction pooling, named prepared statements and
//! unnamed statements outside a transaction both break (the server session
//! changes between statements). So the pooled path never caches statements
//! and runs every unit of work inside one explicit transaction, which is
//! also where the tenant setting for row-level security lives.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres as Pg, Transaction};

use super::{Failure, ProbeError, ProbeReport};
use crate::config::{PostgresConfig, SecretUrl};

/// Connections of the administrative path (see [`Postgres::begin_admin`]).
const ADMIN_POOL_SIZE: u32 = 2;

/// The oldest server strata runs on (`server_version_num`).
pub const MIN_SERVER_VERSION_NUM: i32 = 160_000;

#[derive(Clone)]
pub struct Postgres {
    pool: PgPool,
    /// The administrative path: a few connections as the migration role.
    admin: PgPool,
    direct: PgConnectOptions,
    pooled_address: String,
    direct_address: String,
    pgbouncer: bool,
    separate_direct: bool,
    connect_timeout: Duration,
    /// Callers waiting for a connection: serving pool, admin pool (sqlx
    /// does not count them; the metrics do).
    waiting: Arc<[AtomicI64; 2]>,
}

const SERVING: usize = 0;
const ADMIN: usize = 1;

/// One caller waiting for a connection of a pool, counted while it waits
/// (dropped when it has one, failed or was cancelled).
struct Waiting<'a>(&'a AtomicI64);

impl<'a> Waiting<'a> {
    fn start(counter: &'a AtomicI64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Postgres {
    /// Builds the (lazy) pool and the direct options; no I/O happens here.
    pub fn new(config: &PostgresConfig) -> Result<Self, ProbeError> {
        let timeout = Duration::from_secs(config.connect_timeout_secs);
        let pooled = connect_options(&config.url, "postgres.url", config.pgbouncer)?;
        let direct_url = config.migration_url();
        let direct = connect_options(direct_url, "postgres.direct_url", false)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size)
            .acquire_timeout(timeout)
            .connect_lazy_with(pooled);
        // Cross-tenant work is rare (tenant administration, purges): a small
        // pool that gives its connections back when idle.
        let admin = PgPoolOptions::new()
            .max_connections(ADMIN_POOL_SIZE)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(timeout)
            .connect_lazy_with(direct.clone());
        Ok(Self {
            pool,
            admin,
            direct,
            pooled_address: config.url.address(),
            direct_address: direct_url.address(),
            pgbouncer: config.pgbouncer,
            separate_direct: config.direct_url.is_some(),
            connect_timeout: timeout,
            waiting: Arc::new([AtomicI64::new(0), AtomicI64::new(0)]),
        })
    }

    pub fn address(&self) -> String {
        if self.separate_direct {
            format!("{} (direct {})", self.pooled_address, self.direct_address)
        } else {
            self.pooled_address.clone()
        }
    }

    /// Puts both pools' connection counts into the metrics.
    pub fn record_pool_metrics(&self) {
        let Some(m) = crate::ops::metrics::metrics() else {
            return;
        };
        for (name, pool, waiting) in [
            ("serving", &self.pool, &self.waiting[SERVING]),
            ("admin", &self.admin, &self.waiting[ADMIN]),
        ] {
            let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
            let size = i64::from(pool.size());
            m.postgres_pool.with_label_values(&[name, "idle"]).set(idle);
            m.postgres_pool
                .with_label_values(&[name, "in_use"])
                .set((size - idle).max(0));
            m.postgres_pool
                .with_label_values(&[name, "waiting"])
                .set(waiting.load(Ordering::Relaxed).max(0));
        }
    }

    /// Callers waiting for a connection of the serving pool right now.
    pub fn waiting_for_connection(&self) -> i64 {
        self.waiting[SERVING].load(Ordering::Relaxed).max(0)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts the transaction that carries one unit of work.
    pub async fn begin(&self) -> Result<Transaction<'static, Pg>, sqlx::Error> {
        let _waiting = Waiting::start(&self.waiting[SERVING]);
        begin_detached(&self.pool, None).await
    }

    /// Starts a read-only transaction (for reads: a query that would write
    /// fails instead of writing). `BEGIN READ ONLY` is a simple statement
    /// sent in place of `BEGIN`: no extra round trip.
    pub async fn begin_read_only(&self) -> Result<Transaction<'static, Pg>, sqlx::Error> {
        let _waiting = Waiting::start(&self.waiting[SERVING]);
        begin_detached(&self.pool, Some("BEGIN READ ONLY")).await
    }

    /// Starts a unit of work for one tenant: a transaction whose
    /// transaction-local `strata.tenant_id` is what row-level security
    /// reads. Being transaction-local, it survives PgBouncer transaction
    /// pooling and cannot leak into another client's transaction.
    pub async fn begin_tenant(
        &self,
        tenant_id: uuid::Uuid,
    ) -> Result<Transaction<'static, Pg>, sqlx::Error> {
        let mut tx = self.begin().await?;
        self.query("SELECT set_config('strata.tenant_id', $1, true)")
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// The one sanctioned way from a tenant's ref (the ULID the API
    /// receives) to its id: `strata_tenant_id()`, a function of the
    /// migration role, since the serving role sees no tenant row but its
    /// own. `None` for an unknown, suspended or deleted tenant.
    pub async fn tenant_id(&self, tenant_ref: &str) -> Result<Option<uuid::Uuid>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let id: Option<uuid::Uuid> = self
            .query_as::<(Option<uuid::Uuid>,)>("SELECT strata_tenant_id($1)")
            .bind(tenant_ref)
            .fetch_one(&mut *tx)
            .await?
            .0;
        tx.commit().await?;
        Ok(id)
    }

    /// [`Postgres::begin_tenant`] from a tenant's ref, resolving it and
    /// setting it in one round trip. `None` (and nothing left open) for an
    /// unknown, suspended or deleted tenant.
    pub async fn begin_tenant_ref(
        &self,
        tenant_ref: &str,
    ) -> Result<Option<(uuid::Uuid, Transaction<'static, Pg>)>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let (id,): (Option<uuid::Uuid>,) = self
            .query_as(
                "SELECT nullif(set_config('strata.tenant_id', \
                                          coalesce(strata_tenant_id($1)::text, ''), true), \
                               '')::uuid",
            )
            .bind(tenant_ref)
            .fetch_one(&mut *tx)
            .await?;
        match id {
            Some(id) => Ok(Some((id, tx))),
            None => {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }

    /// A transaction on the administrative path: the migration role of
    /// `postgres.direct_url`, whose `*_owner` policies see every tenant's
    /// rows. Only for deliberate cross-tenant work (tenants, global skills,
    /// purges), never for a tenant's request. The serving role cannot take
    /// this path: it is not, and may not be, that role (checked at boot).
    pub async fn begin_admin(&self) -> Result<Transaction<'static, Pg>, sqlx::Error> {
        let _waiting = Waiting::start(&self.waiting[ADMIN]);
        begin_detached(&self.admin, None).await
    }

    /// Closes both pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
        self.admin.close().await;
    }

    /// A query fit for the pooled path: never a named, cached statement when
    /// PgBouncer sits in between.
    pub fn query<'q>(&self, sql: impl sqlx::SqlSafeStr) -> sqlx::query::Query<'q, Pg, PgArguments> {
        sqlx::query(sql).persistent(!self.pgbouncer)
    }

    /// A typed query for the pooled path; see [`Postgres::query`].
    pub fn query_as<'q, O>(
        &self,
        sql: impl sqlx::SqlSafeStr,
    ) -> sqlx::query::QueryAs<'q, Pg, O, PgArguments>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        sqlx::query_as(sql).persistent(!self.pgbouncer)
    }

    /// A session on the direct URL, for migrations and their advisory lock.
    pub async fn connect_direct(&self) -> Result<PgConnection, sqlx::Error> {
        // sqlx bounds pool acquisition, not a single connection: a server
        // that accepts and never answers would otherwise hang the caller.
        match tokio::time::timeout(
            self.connect_timeout,
            PgConnection::connect_with(&self.direct),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}s", self.connect_timeout.as_secs()),
            ))),
        }
    }

    pub async fn probe(&self) -> Result<ProbeReport, ProbeError> {
        let mut report = ProbeReport::new(self.address());

        let mut tx = self
            .begin()
            .await
            .map_err(|e| classify("reachable", &self.pooled_address, e))?;
        let (version_num, version, user, isolation_breakers): (i32, String, String, Vec<String>) =
            self.query_as(SERVING_ROLE_QUERY)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| classify("reachable", &self.pooled_address, e))?;
        tx.commit()
            .await
            .map_err(|e| classify("reachable", &self.pooled_address, e))?;
        let via = if self.pgbouncer {
            " through PgBouncer"
        } else {
            ""
        };
        report.passed(
            "reachable",
            format!("{}{via} as {user}", self.pooled_address),
        );
        check_version(version_num, &version)?;
        report.version = Some(version.clone());
        report.passed("version", format!("PostgreSQL {version} (>= 16)"));
        if !isolation_breakers.is_empty() {
            return Err(unfit_serving_role(&user, &isolation_breakers.join("; ")));
        }

        let mut direct = self
            .connect_direct()
            .await
            .map_err(|e| classify("direct", &self.direct_address, e))?;
        let (
            direct_version_num,
            direct_version,
            direct_user,
            can_create,
            direct_bypasses_rls,
            serving_is_migrator,
        ): (i32, String, String, bool, bool, bool) = sqlx::query_as(
            // Since PostgreSQL 15 only the database owner may create in
            // `public` by default: CREATE on the database is not enough.
            "SELECT current_setting('server_version_num')::int4, \
                        current_setting('server_version'), \
                        current_user::text, \
                        has_database_privilege(current_database(), 'CREATE') \
                          AND coalesce(has_schema_privilege(current_schema(), 'CREATE'), false), \
                        (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user), \
                        pg_has_role($1, current_user, 'MEMBER')",
        )
        .bind(&user)
        .fetch_one(&mut direct)
        .await
        .map_err(|e| classify("direct", &self.direct_address, e))?;
        // Best effort: the probe has its answer either way.
        let _ = direct.close().await;
        check_version(direct_version_num, &direct_version)?;
        if serving_is_migrator {
            return Err(unfit_serving_role(
                &user,
                &format!(
                    "it is (a member of) the migration role {direct_user} of postgres.direct_url, \
                     which owns strata's tables and may see every tenant's rows; give \
                     postgres.url a role of its own"
                ),
            ));
        }
        report.passed(
            "serving_role",
            format!("{user} owns nothing and is subject to row-level security"),
        );
        report.passed(
            "direct",
            format!("{} as {direct_user}", self.direct_address),
        );
        if !can_create {
            return Err(ProbeError::Unfit {
                check: "privileges",
                reason: format!(
                    "role {direct_user} of the migration URL cannot create tables in the \
                     database's schema; migrations need CREATE on the database and on the \
                     schema (simplest: make the role the database owner)"
                ),
            });
        }
        if direct_bypasses_rls {
            report.warnings.push(format!(
                "the migration role {direct_user} is a superuser or has BYPASSRLS: the tables it \
                 owns are not subject to row-level security for it; prefer an ordinary owner role"
            ));
        }
        report.passed(
            "privileges",
            format!("{direct_user} may create schema objects"),
        );
        Ok(report)
    }

    pub async fn ping(&self) -> Result<(), ProbeError> {
        let mut tx = self
            .begin()
            .await
            .map_err(|e| classify("reachable", &self.pooled_address, e))?;
        self.query("SELECT 1")
            .execute(&mut *tx)
            .await
            .map_err(|e| classify("reachable", &self.pooled_address, e))?;
        tx.commit()
            .await
            .map_err(|e| classify("reachable", &self.pooled_address, e))?;
        Ok(())
    }
}

/// Version, role, and every reason the serving role could see past
/// row-level security: superuser or BYPASSRLS (itself or through a role it
/// is a member of), membership of the database owner, or owning (being a
/// member of the owner of) a table in strata's schema. Owners and the
/// database owner get the `*_owner` policies and may disable RLS.
const SERVING_ROLE_QUERY: &str = "\
    SELECT current_setting('server_version_num')::int4, \
           current_setting('server_version'), \
           current_user::text, \
           array_remove(ARRAY[ \
             (SELECT 'it is a superuser or has BYPASSRLS' \
              FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolbypassrls)), \
             (SELECT 'it is a member of ' || string_agg(r.rolname, ', ') \
                     || ', which is a superuser or has BYPASSRLS' \
              FROM pg_roles r WHERE r.rolname <> current_user \
                AND (r.rolsuper OR r.rolbypassrls) AND pg_has_role(current_user, r.oid, 'MEMBER')), \
             (SELECT 'it is (a member of) the database owner ' || pg_get_userbyid(d.datdba) \
              FROM pg_database d WHERE d.datname = current_database() \
                AND pg_has_role(current_user, d.datdba, 'MEMBER')), \
             (SELECT 'it owns (or is a member of the owner of) ' \
                     || string_agg(DISTINCT c.relname, ', ' ORDER BY c.relname) \
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
                AND pg_has_role(current_user, c.relowner, 'MEMBER')) \
           ], NULL)";

fn unfit_serving_role(user: &str, why: &str) -> ProbeError {
    ProbeError::Unfit {
        check: "serving_role",
        reason: format!(
            "role {user} of postgres.url could see past row-level security: {why}. Serve with \
             an ordinary role that owns nothing; strata grants it what it needs"
        ),
    }
}

/// `BEGIN` on a connection of `pool`, in a task of its own. sqlx's begin is
/// not cancel-safe (its issue 4393, fixed after 0.9.0): a caller dropped
/// while the answer to `BEGIN` is in flight (a client that hung up) leaves
/// the connection inside a transaction sqlx does not know of, the pool
/// hands it to the next request, and that request runs inside it: after a
/// dropped `BEGIN READ ONLY`, the next write fails. In its own task the
/// `BEGIN` completes whatever happens to the caller, and a transaction
/// nobody takes any more is dropped there, which rolls it back.
async fn begin_detached(
    pool: &PgPool,
    statement: Option<&'static str>,
) -> Result<Transaction<'static, Pg>, sqlx::Error> {
    let pool = pool.clone();
    let begun = tokio::spawn(async move {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    });
    match begun.await {
        Ok(result) => result,
        // Only a panic in sqlx ends the task otherwise.
        Err(e) => Err(sqlx::Error::Io(std::io::Error::other(e.to_string()))),
    }
}

fn connect_options(
    url: &SecretUrl,
    key: &'static str,
    pgbouncer: bool,
) -> Result<PgConnectOptions, ProbeError> {
    // sqlx's parse error may quote the URL, so it is not passed on.
    let options = PgConnectOptions::from_str(url.expose()).map_err(|_| ProbeError::Unfit {
        check: "config",
        reason: format!("{key} is not a usable PostgreSQL URL: {url}"),
    })?;
    let options = options.application_name("strata");
    Ok(if pgbouncer {
        options.statement_cache_capacity(0)
    } else {
        options
    })
}

fn check_version(version_num: i32, version: &str) -> Result<(), ProbeError> {
    if version_num < MIN_SERVER_VERSION_NUM {
        return Err(ProbeError::Unfit {
            check: "version",
            reason: format!("PostgreSQL {version} is too old: strata needs 16 or newer"),
        });
    }
    Ok(())
}

/// Sorts a driver error into "try again" and "fix something first".
fn classify(check: &'static str, address: &str, error: sqlx::Error) -> ProbeError {
    let unreachable = |cause: String| ProbeError::Unreachable {
        check,
        address: address.to_string(),
        cause,
    };
    let transient = Failure::of_postgres(&error).is_transient();
    match &error {
        sqlx::Error::Io(e) => unreachable(e.to_string()),
        sqlx::Error::Tls(e) => unreachable(format!("TLS: {e}")),
        sqlx::Error::PoolTimedOut => unreachable("timed out connecting".into()),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => unreachable(error.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if transient {
                unreachable(format!("{} (SQLSTATE {code})", db.message()))
            } else {
                ProbeError::Unfit {
                    check,
                    reason: format!("{address}: {} (SQLSTATE {code})", db.message()),
                }
            }
        }
        other => ProbeError::Unfit {
            check,
            reason: format!("{address}: {other}"),
        },
    }
}
