//! The SQL migration runner: embedded `migrations/postgres/NNNN_name.sql`
//! files applied in order on the direct connection, recorded with their
//! checksums in `strata_schema_history`.
//!
//! Its own small runner rather than sqlx's migrator, because strata needs:
//! checksums over normalised line endings, a refusal (with the file name)
//! when a shipped migration changed, a refusal when the database is newer
//! than the binary, a lock wait bounded by configuration, no lock at all
//! when nothing is pending, and the serving role's grants reconciled.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::{SchemaError, embedded};
use crate::retry::Backoff;

/// Records what was applied; only the migration role can touch it.
pub const HISTORY_TABLE: &str = "strata_schema_history";

/// Key of the session advisory lock that serialises schema upgrades of
/// every store (ASCII "strata" + "schema" folded into an i64).
pub const LOCK_KEY: i64 = 0x7374_7261_7461_5343;

/// What a serving role needs on every strata table.
const TABLE_PRIVILEGES: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

/// Tables named `strata_*` are strata's own bookkeeping (migration history,
/// the state machines' transitions): the serving role gets nothing on them,
/// so nothing it executes can rewrite what PostgreSQL enforces.
const INTERNAL_TABLE_PATTERN: &str = "strata\\_%";

/// The line by which a migration declares that binaries older than it may
/// keep serving on a database that has it (an additive change: new tables,
/// columns with defaults, indexes). Without it, an older binary refuses a
/// database that has the migration.
pub const COMPATIBLE_MARKER: &str = "-- strata: compatible-with-older-binaries";

/// One embedded migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    /// The file name without `.sql`, e.g. `0002_records`.
    pub name: String,
    pub sql: String,
    pub checksum: String,
    /// Declared with [`COMPATIBLE_MARKER`].
    pub compatible: bool,
}

impl Migration {
    /// Parses `NNNN_description.sql`.
    pub fn new(file_name: &str, sql: &str) -> Result<Self, SchemaError> {
        let bad = |reason: &str| SchemaError::Embedded {
            file: format!("postgres/{file_name}"),
            reason: reason.to_string(),
        };
        let name = file_name
            .strip_suffix(".sql")
            .ok_or_else(|| bad("a migration file must end in .sql"))?;
        let (digits, description) = name
            .split_once('_')
            .ok_or_else(|| bad("a migration file is named NNNN_description.sql"))?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || description.is_empty()
        {
            return Err(bad("a migration file is named NNNN_description.sql"));
        }
        let version: i64 = digits
            .parse()
            .map_err(|_| bad("the version number is too large"))?;
        if version < 1 {
            return Err(bad("versions start at 1"));
        }
        Ok(Self {
            version,
            name: name.to_string(),
            checksum: embedded::checksum(sql),
            compatible: sql.lines().any(|line| line.trim() == COMPATIBLE_MARKER),
            sql: embedded::normalise(sql),
        })
    }
}

/// The migrations this binary ships, in version order.
pub fn embedded_migrations() -> Result<Vec<Migration>, SchemaError> {
    let files = embedded::postgres_files()?;
    let mut migrations = files
        .iter()
        .map(|(name, sql)| Migration::new(name, sql))
        .collect::<Result<Vec<_>, _>>()?;
    migrations.sort_by_key(|m| m.version);
    for pair in migrations.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(SchemaError::Embedded {
                file: format!("postgres/{}.sql", pair[1].name),
                reason: format!(
                    "version {} is also used by {}",
                    pair[1].version, pair[0].name
                ),
            });
        }
    }
    Ok(migrations)
}

/// A row of the history table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Applied {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    /// The migration declared older binaries compatible.
    pub compatible: bool,
}

/// What the database lacks, or has beyond this binary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pending<'m> {
    /// Shipped migrations still to apply, in order.
    pub todo: Vec<&'m Migration>,
    /// Applied migrations newer than this binary, all declared compatible:
    /// this binary may serve on the database but must not migrate it.
    pub newer: Vec<String>,
}

/// Compares the embedded migrations with the recorded ones and returns
/// those still to apply. Refuses a changed migration, a database newer
/// than the binary (unless every newer migration is declared compatible),
/// and history the binary does not know.
pub fn pending<'m>(
    embedded: &'m [Migration],
    applied: &[Applied],
) -> Result<Pending<'m>, SchemaError> {
    let binary_max = embedded.last().map_or(0, |b| b.version);
    let (newer, known): (Vec<&Applied>, Vec<&Applied>) =
        applied.iter().partition(|a| a.version > binary_max);
    if let Some(newest) = newer.iter().max_by_key(|a| a.version)
        && newer.iter().any(|a| !a.compatible)
    {
        return Err(SchemaError::DatabaseNewer {
            database: newest.version,
            database_name: newest.name.clone(),
            binary: binary_max,
            binary_name: embedded
                .last()
                .map_or_else(|| "none".into(), |b| b.name.clone()),
        });
    }
    for record in known {
        let Some(shipped) = embedded.iter().find(|m| m.version == record.version) else {
            return Err(SchemaError::Refused {
                store: "postgres",
                reason: format!(
                    "the database records migration {} which this binary does not ship; it \
                     was made by another build of strata: run that build, or restore a backup",
                    record.name
                ),
            });
        };
        if shipped.checksum != record.checksum {
            return Err(SchemaError::ChangedMigration {
                name: shipped.name.clone(),
                recorded: record.checksum.clone(),
                embedded: shipped.checksum.clone(),
            });
        }
    }
    let newest_applied = applied.iter().map(|a| a.version).max().unwrap_or(0);
    let todo: Vec<&Migration> = embedded
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect();
    if let Some(gap) = todo.iter().find(|m| m.version < newest_applied) {
        return Err(SchemaError::Refused {
            store: "postgres",
            reason: format!(
                "migration {} is not applied but a later one is; migrations must be applied \
                 in order (was {} added to an already released series?)",
                gap.name, gap.name
            ),
        });
    }
    let mut newer: Vec<&Applied> = newer;
    newer.sort_by_key(|a| a.version);
    Ok(Pending {
        todo,
        newer: newer.iter().map(|a| a.name.clone()).collect(),
    })
}

/// What the PostgreSQL side of an upgrade would do.
#[derive(Debug, Clone, Default)]
pub struct PgPlan {
    /// The highest applied version (0 on an empty database).
    pub database_version: i64,
    pub pending: Vec<Migration>,
    /// Existing tables the serving role lacks privileges on (the tables
    /// that pending migrations create are granted as well).
    pub grants: Vec<String>,
    pub serving_role: Option<String>,
    /// Applied migrations newer than this binary, all declared compatible:
    /// serve, but do not migrate (see [`Pending::newer`]).
    pub newer_compatible: Vec<String>,
}

impl PgPlan {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.grants.is_empty()
    }

    pub fn steps(&self) -> Vec<String> {
        let mut steps: Vec<String> = self
            .pending
            .iter()
            .map(|m| format!("apply migration {}", m.name))
            .collect();
        if let Some(role) = &self.serving_role {
            let tables = if !self.pending.is_empty() {
                "strata's tables".to_string()
            } else if !self.grants.is_empty() {
                describe_tables(&self.grants)
            } else {
                return steps;
            };
            steps.push(format!(
                "grant {} on {tables} to role {role}",
                TABLE_PRIVILEGES.join(", ")
            ));
        }
        steps
    }
}

fn describe_tables(tables: &[String]) -> String {
    if tables.len() <= 3 {
        tables.join(", ")
    } else {
        format!("{} tables", tables.len())
    }
}

fn db_error(step: impl Into<String>, error: sqlx::Error) -> SchemaError {
    let reason = match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            format!("{} (SQLSTATE {code})", db.message())
        }
        other => other.to_string(),
    };
    SchemaError::Store {
        store: "postgres",
        step: step.into(),
        transient: super::pg_transient(&error),
        reason,
    }
}

/// The recorded history; empty when the table does not exist yet.
pub async fn read_history(conn: &mut PgConnection) -> Result<Vec<Applied>, SchemaError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT to_regclass(format('%I.%I', current_schema(), $1::text)) IS NOT NULL",
    )
    .bind(HISTORY_TABLE)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error("reading the migration history", e))?;
    if !exists {
        return Ok(Vec::new());
    }
    // `compatible` arrived with 0.2; a history written before has no such
    // column (and its migrations declared nothing).
    sqlx::query_as::<_, Applied>(
        "SELECT version, name, checksum, \
                coalesce((to_jsonb(h) ->> 'compatible')::boolean, false) AS compatible \
         FROM strata_schema_history h ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error("reading the migration history", e))
}

/// Strata's tables (owned by the current role, except its own `strata_*`
/// bookkeeping) on which `role` lacks one of the serving privileges.
async fn missing_grants(conn: &mut PgConnection, role: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
           AND pg_get_userbyid(c.relowner) = current_user AND c.relname NOT LIKE $2 \
           AND NOT (has_table_privilege($1, c.oid, 'SELECT') \
                AND has_table_privilege($1, c.oid, 'INSERT') \
                AND has_table_privilege($1, c.oid, 'UPDATE') \
                AND has_table_privilege($1, c.oid, 'DELETE')) \
         ORDER BY 1",
    )
    .bind(role)
    .bind(INTERNAL_TABLE_PATTERN)
    .fetch_all(&mut *conn)
    .await
}

/// Reads the database and compares it with `migrations`; changes nothing
/// and takes no lock.
pub async fn plan(
    conn: &mut PgConnection,
    migrations: &[Migration],
    serving_role: Option<&str>,
) -> Result<PgPlan, SchemaError> {
    let applied = read_history(conn).await?;
    let found = pending(migrations, &applied)?;
    let todo: Vec<Migration> = found.todo.into_iter().cloned().collect();
    let database_version = applied.iter().map(|a| a.version).max().unwrap_or(0);
    let mut grants = Vec::new();
    if let Some(role) = serving_role {
        if !role_exists(conn, role).await? {
            return Err(SchemaError::Refused {
                store: "postgres",
                reason: format!(
                    "the serving role {role} (the user of postgres.url) does not exist"
                ),
            });
        }
        grants = missing_grants(conn, role)
            .await
            .map_err(|e| db_error(format!("reading the privileges of role {role}"), e))?;
    }
    Ok(PgPlan {
        database_version,
        pending: todo,
        grants,
        serving_role: serving_role.map(str::to_string),
        newer_compatible: found.newer,
    })
}

async fn role_exists(conn: &mut PgConnection, role: &str) -> Result<bool, SchemaError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("looking up the serving role", e))
}

/// Takes the schema lock on this (direct) session, waiting at most
/// `timeout_secs`.
pub async fn lock(conn: &mut PgConnection, timeout_secs: u64) -> Result<(), SchemaError> {
    // lock_timeout bounds the wait for the advisory lock; reset afterwards
    // so that it does not apply to the migrations' own DDL.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET lock_timeout = '{}s'",
        timeout_secs
    )))
    .execute(&mut *conn)
    .await
    .map_err(|e| db_error("setting lock_timeout", e))?;
    let locked = sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await;
    let reset = sqlx::raw_sql("SET lock_timeout = DEFAULT")
        .execute(&mut *conn)
        .await;
    match locked {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03") => {
            return Err(SchemaError::LockTimeout { secs: timeout_secs });
        }
        Err(e) => return Err(db_error("taking the schema lock", e)),
    }
    reset.map_err(|e| db_error("resetting lock_timeout", e))?;
    Ok(())
}

pub async fn unlock(conn: &mut PgConnection) -> Result<(), SchemaError> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| db_error("releasing the schema lock", e))
}

/// How migration statements wait for table locks.
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    /// PostgreSQL `lock_timeout` for every statement of the migration
    /// transaction (`postgres.migration_lock_timeout_secs`).
    pub lock_timeout: Duration,
    /// Tries of the whole transaction (`postgres.migration_attempts`).
    pub attempts: u32,
    pub backoff: Backoff,
}

/// A failed statement of the migration transaction.
struct Failed {
    step: String,
    error: sqlx::Error,
}

fn failed(step: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Failed {
    let step = step.into();
    move |error| Failed { step, error }
}

/// SQLSTATE 55P03: a lock was not granted within `lock_timeout`.
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

/// Applies `plan` (computed under the lock) in ONE transaction: either the
/// database reaches the binary's version with all grants, or nothing
/// changes and the previous binary still runs on it. (So a migration
/// cannot use statements that refuse a transaction block, such as
/// `CREATE INDEX CONCURRENTLY`; none needs to yet.)
///
/// Every statement waits at most `locks.lock_timeout` for a table lock: a
/// DDL statement queued behind a long transaction would otherwise make every
/// later query on that table queue behind it. On such a timeout the whole
/// transaction is rolled back and tried again, up to `locks.attempts` times;
/// then the store counts as busy (a transient error: `serve` retries).
pub async fn apply(
    conn: &mut PgConnection,
    plan: &PgPlan,
    locks: &LockPolicy,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<String>, SchemaError> {
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let attempts = locks.attempts.max(1);
    let mut delays = locks.backoff.delays();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match apply_once(conn, plan, locks.lock_timeout, progress).await {
            Ok(done) => return Ok(done),
            Err(Failed { step, error }) if is_lock_timeout(&error) => {
                let waited = locks.lock_timeout.as_secs_f64();
                if attempt >= attempts {
                    return Err(SchemaError::Store {
                        store: "postgres",
                        step,
                        reason: format!(
                            "could not get its table locks within {waited:.1}s in {attempts} \
                             attempts: another transaction holds them (see pg_stat_activity); \
                             nothing was changed"
                        ),
                        transient: true,
                    });
                }
                progress(&format!(
                    "postgres: {step}: waited {waited:.1}s for a table lock that another \
                     transaction holds; rolled back, retrying (attempt {}/{attempts})",
                    attempt + 1
                ));
                let delay = delays.next().unwrap_or(locks.backoff.max());
                tokio::time::sleep(delay).await;
            }
            Err(Failed { step, error }) => return Err(db_error(step, error)),
        }
    }
}

async fn apply_once(
    conn: &mut PgConnection,
    plan: &PgPlan,
    lock_timeout: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<String>, Failed> {
    let mut done = Vec::new();
    let mut tx = conn
        .begin()
        .await
        .map_err(failed("starting the migration transaction"))?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", lock_timeout.as_millis()))
        .execute(&mut *tx)
        .await
        .map_err(failed("setting lock_timeout"))?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS strata_schema_history (
            version      bigint PRIMARY KEY,
            name         text NOT NULL,
            checksum     text NOT NULL,
            applied_on   timestamptz NOT NULL DEFAULT now(),
            execution_ms bigint NOT NULL,
            applied_by   text NOT NULL
        );
        ALTER TABLE strata_schema_history
            ADD COLUMN IF NOT EXISTS compatible boolean NOT NULL DEFAULT false",
    )
    .execute(&mut *tx)
    .await
    .map_err(failed("creating the migration history table"))?;
    for migration in &plan.pending {
        progress(&format!("postgres: applying migration {}", migration.name));
        let started = Instant::now();
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql.clone()))
            .execute(&mut *tx)
            .await
            .map_err(failed(format!("applying migration {}", migration.name)))?;
        let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO strata_schema_history \
                (version, name, checksum, execution_ms, applied_by, compatible) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(migration.version)
        .bind(&migration.name)
        .bind(&migration.checksum)
        .bind(elapsed)
        .bind(format!("strata {}", env!("CARGO_PKG_VERSION")))
        .bind(migration.compatible)
        .execute(&mut *tx)
        .await
        .map_err(failed(format!("recording migration {}", migration.name)))?;
        done.push(format!(
            "postgres: applied migration {} ({elapsed} ms)",
            migration.name
        ));
    }
    if let Some(role) = &plan.serving_role {
        // Re-read after the migrations: they may have created tables.
        let tables = missing_grants(&mut tx, role)
            .await
            .map_err(failed(format!("reading the privileges of role {role}")))?;
        if !tables.is_empty() {
            progress(&format!("postgres: granting table privileges to {role}"));
        }
        for table in &tables {
            let grant = grant_statement(table, role);
            sqlx::raw_sql(sqlx::AssertSqlSafe(grant))
                .execute(&mut *tx)
                .await
                .map_err(failed(format!("granting privileges on {table} to {role}")))?;
        }
        if !tables.is_empty() {
            done.push(format!(
                "postgres: granted {} on {} to role {role}",
                TABLE_PRIVILEGES.join(", "),
                describe_tables(&tables)
            ));
        }
    }
    tx.commit()
        .await
        .map_err(failed("committing the migrations"))?;
    Ok(done)
}

/// `"name"` with embedded quotes doubled: safe for any role or table name.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn grant_statement(table: &str, role: &str) -> String {
    format!(
        "GRANT {} ON TABLE {} TO {}",
        TABLE_PRIVILEGES.join(", "),
        quote_ident(table),
        quote_ident(role)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(file: &str, sql: &str) -> Migration {
        Migration::new(file, sql).expect("valid migration")
    }

    fn recorded(m: &Migration) -> Applied {
        Applied {
            version: m.version,
            name: m.name.clone(),
            checksum: m.checksum.clone(),
            compatible: m.compatible,
        }
    }

    fn todo<'m>(all: &'m [Migration], applied: &[Applied]) -> Vec<&'m Migration> {
        pending(all, applied).expect("plan").todo
    }

    #[test]
    fn file_names_are_parsed_and_checked() {
        let one = m("0001_init.sql", "SELECT 1;");
        assert_eq!((one.version, one.name.as_str()), (1, "0001_init"));
        for bad in [
            "init.sql",
            "0001_.sql",
            "x001_init.sql",
            "0001_init.txt",
            "0000_zero.sql",
        ] {
            assert!(Migration::new(bad, "").is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn embedded_migrations_load_in_order() {
        let all = embedded_migrations().expect("embedded migrations are valid");
        assert!(all.len() >= 3);
        assert!(all.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(all[0].name, "0001_foundation");
    }

    #[test]
    fn pending_lists_what_is_not_recorded() {
        let all = [m("0001_a.sql", "A"), m("0002_b.sql", "B")];
        assert_eq!(todo(&all, &[]).len(), 2);
        assert_eq!(todo(&all, &[recorded(&all[0])]), vec![&all[1]]);
        assert!(todo(&all, &[recorded(&all[0]), recorded(&all[1])]).is_empty());
    }

    #[test]
    fn crlf_checkout_is_not_a_change() {
        let shipped = m("0001_a.sql", "CREATE TABLE a ();\n");
        let crlf = m("0001_a.sql", "CREATE TABLE a ();\r\n");
        assert!(todo(&[crlf], &[recorded(&shipped)]).is_empty());
    }

    #[test]
    fn a_changed_migration_is_refused_by_name() {
        let shipped = m("0001_a.sql", "CREATE TABLE a ();");
        let changed = m("0001_a.sql", "CREATE TABLE a (id int);");
        let err = pending(&[changed], &[recorded(&shipped)]).expect_err("changed");
        assert!(matches!(err, SchemaError::ChangedMigration { .. }), "{err}");
        assert!(err.to_string().contains("0001_a"), "{err}");
    }

    #[test]
    fn a_newer_database_is_refused_with_both_versions() {
        let all = [m("0001_a.sql", "A")];
        let future = Applied {
            version: 7,
            name: "0007_future".into(),
            checksum: "x".into(),
            compatible: false,
        };
        let err = pending(&all, &[recorded(&all[0]), future]).expect_err("newer");
        let text = err.to_string();
        assert!(
            text.contains("0007_future") && text.contains("0001_a"),
            "{text}"
        );
    }

    #[test]
    fn a_newer_database_whose_newer_migrations_are_compatible_is_served_not_migrated() {
        let all = [m("0001_a.sql", "A"), m("0002_b.sql", "B")];
        let future = |version: i64, compatible: bool| Applied {
            version,
            name: format!("000{version}_future"),
            checksum: "x".into(),
            compatible,
        };
        let applied = [
            recorded(&all[0]),
            recorded(&all[1]),
            future(3, true),
            future(4, true),
        ];
        let found = pending(&all, &applied).expect("compatible");
        assert!(found.todo.is_empty());
        assert_eq!(found.newer, ["0003_future", "0004_future"]);
        // One incompatible newer migration is enough to refuse.
        let applied = [
            recorded(&all[0]),
            recorded(&all[1]),
            future(3, true),
            future(4, false),
        ];
        let err = pending(&all, &applied).expect_err("incompatible");
        assert!(
            matches!(err, SchemaError::DatabaseNewer { database: 4, .. }),
            "{err}"
        );
        // Known migrations are still checked on a newer database.
        let mut changed = recorded(&all[1]);
        changed.checksum = "other".into();
        let applied = [recorded(&all[0]), changed, future(3, true)];
        assert!(matches!(
            pending(&all, &applied),
            Err(SchemaError::ChangedMigration { .. })
        ));
    }

    #[test]
    fn the_compatibility_marker_is_read_from_the_file() {
        let plain = m("0001_a.sql", "CREATE TABLE a ();");
        assert!(!plain.compatible);
        let marked = m(
            "0002_b.sql",
            &format!("-- adds a column\n{COMPATIBLE_MARKER}\nALTER TABLE a ADD b int;"),
        );
        assert!(marked.compatible);
        let shipped = embedded_migrations().expect("embedded");
        // The first migrations build what older binaries never had.
        assert!(!shipped[0].compatible);
    }

    #[test]
    fn unknown_or_skipped_history_is_refused() {
        let all = [
            m("0001_a.sql", "A"),
            m("0002_b.sql", "B"),
            m("0003_c.sql", "C"),
        ];
        let mut stranger = recorded(&all[1]);
        stranger.version = 2;
        stranger.checksum = all[1].checksum.clone();
        // 0002 missing from the binary but recorded
        let without_b = [all[0].clone(), all[2].clone()];
        assert!(pending(&without_b, &[recorded(&all[0]), stranger]).is_err());
        // 0002 shipped later than 0003 was applied
        assert!(pending(&all, &[recorded(&all[0]), recorded(&all[2])]).is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("strata_app"), "\"strata_app\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            grant_statement("tenants", "App Role"),
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE \"tenants\" TO \"App Role\""
        );
    }
}
