//! The SQL migration runner: embedded `migrations/postgres/NNNN_name.sql`
//! files applied in order on the direct connection, recorded with their
//! checksums in `strata_schema_history`.
//!
//! Its own small runner rather than sqlx's migrator, because strata needs:
//! checksums over normalised line endings, a refusal (with the file name)
//! when a shipped migration changed, a refusal when the database is newer
//! than the binary, a lock wait bounded by configuration, no lock at all
//! when nothing is pending, and the serving role's grants reconciled.

use std::time::Instant;

use sqlx::{Connection, PgConnection};

use super::{SchemaError, embedded};

/// Records what was applied; only the migration role can touch it.
pub const HISTORY_TABLE: &str = "strata_schema_history";

/// Key of the session advisory lock that serialises schema upgrades of
/// every store (ASCII "strata" + "schema" folded into an i64).
pub const LOCK_KEY: i64 = 0x7374_7261_7461_5343;

/// What a serving role needs on every strata table.
const TABLE_PRIVILEGES: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

/// One embedded migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    /// The file name without `.sql`, e.g. `0002_records`.
    pub name: String,
    pub sql: String,
    pub checksum: String,
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
}

/// Compares the embedded migrations with the recorded ones and returns
/// those still to apply. Refuses a changed migration, a database newer
/// than the binary, and history the binary does not know.
pub fn pending<'m>(
    embedded: &'m [Migration],
    applied: &[Applied],
) -> Result<Vec<&'m Migration>, SchemaError> {
    let binary_max = embedded.last();
    if let Some(newest) = applied.iter().max_by_key(|a| a.version)
        && binary_max.is_none_or(|b| newest.version > b.version)
    {
        return Err(SchemaError::DatabaseNewer {
            database: newest.version,
            database_name: newest.name.clone(),
            binary: binary_max.map_or(0, |b| b.version),
            binary_name: binary_max.map_or_else(|| "none".into(), |b| b.name.clone()),
        });
    }
    for record in applied {
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
    Ok(todo)
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
    sqlx::query_as::<_, Applied>(
        "SELECT version, name, checksum FROM strata_schema_history ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error("reading the migration history", e))
}

/// Strata's tables (owned by the current role, except the history) on
/// which `role` lacks one of the serving privileges.
async fn missing_grants(conn: &mut PgConnection, role: &str) -> Result<Vec<String>, SchemaError> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
           AND pg_get_userbyid(c.relowner) = current_user AND c.relname <> $2 \
           AND NOT (has_table_privilege($1, c.oid, 'SELECT') \
                AND has_table_privilege($1, c.oid, 'INSERT') \
                AND has_table_privilege($1, c.oid, 'UPDATE') \
                AND has_table_privilege($1, c.oid, 'DELETE')) \
         ORDER BY 1",
    )
    .bind(role)
    .bind(HISTORY_TABLE)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(format!("reading the privileges of role {role}"), e))
}

/// Reads the database and compares it with `migrations`; changes nothing
/// and takes no lock.
pub async fn plan(
    conn: &mut PgConnection,
    migrations: &[Migration],
    serving_role: Option<&str>,
) -> Result<PgPlan, SchemaError> {
    let applied = read_history(conn).await?;
    let todo: Vec<Migration> = pending(migrations, &applied)?
        .into_iter()
        .cloned()
        .collect();
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
        grants = missing_grants(conn, role).await?;
    }
    Ok(PgPlan {
        database_version,
        pending: todo,
        grants,
        serving_role: serving_role.map(str::to_string),
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

/// Applies `plan` (computed under the lock) in ONE transaction: either the
/// database reaches the binary's version with all grants, or nothing
/// changes and the previous binary still runs on it. (So a migration
/// cannot use statements that refuse a transaction block, such as
/// `CREATE INDEX CONCURRENTLY`; none needs to yet.)
pub async fn apply(
    conn: &mut PgConnection,
    plan: &PgPlan,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<String>, SchemaError> {
    let mut done = Vec::new();
    if plan.is_empty() {
        return Ok(done);
    }
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| db_error("starting the migration transaction", e))?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS strata_schema_history (
            version      bigint PRIMARY KEY,
            name         text NOT NULL,
            checksum     text NOT NULL,
            applied_on   timestamptz NOT NULL DEFAULT now(),
            execution_ms bigint NOT NULL,
            applied_by   text NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| db_error("creating the migration history table", e))?;
    for migration in &plan.pending {
        progress(&format!("postgres: applying migration {}", migration.name));
        let started = Instant::now();
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql.clone()))
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(format!("applying migration {}", migration.name), e))?;
        let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO strata_schema_history (version, name, checksum, execution_ms, applied_by) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(migration.version)
        .bind(&migration.name)
        .bind(&migration.checksum)
        .bind(elapsed)
        .bind(format!("strata {}", env!("CARGO_PKG_VERSION")))
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(format!("recording migration {}", migration.name), e))?;
        done.push(format!(
            "postgres: applied migration {} ({elapsed} ms)",
            migration.name
        ));
    }
    if let Some(role) = &plan.serving_role {
        // Re-read after the migrations: they may have created tables.
        let tables = missing_grants(&mut tx, role).await?;
        if !tables.is_empty() {
            progress(&format!("postgres: granting table privileges to {role}"));
        }
        for table in &tables {
            let grant = grant_statement(table, role);
            sqlx::raw_sql(sqlx::AssertSqlSafe(grant))
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(format!("granting privileges on {table} to {role}"), e))?;
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
        .map_err(|e| db_error("committing the migrations", e))?;
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
        }
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
        assert_eq!(pending(&all, &[]).expect("plan").len(), 2);
        let todo = pending(&all, &[recorded(&all[0])]).expect("plan");
        assert_eq!(todo, vec![&all[1]]);
        assert!(
            pending(&all, &[recorded(&all[0]), recorded(&all[1])])
                .expect("plan")
                .is_empty()
        );
    }

    #[test]
    fn crlf_checkout_is_not_a_change() {
        let shipped = m("0001_a.sql", "CREATE TABLE a ();\n");
        let crlf = m("0001_a.sql", "CREATE TABLE a ();\r\n");
        assert!(
            pending(&[crlf], &[recorded(&shipped)])
                .expect("same")
                .is_empty()
        );
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
        };
        let err = pending(&all, &[recorded(&all[0]), future]).expect_err("newer");
        let text = err.to_string();
        assert!(
            text.contains("0007_future") && text.contains("0001_a"),
            "{text}"
        );
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
