//! Shared support for the integration tests. They run against the real
//! servers that `scripts/deps up` starts (PostgreSQL 16 behind PgBouncer,
//! MongoDB (mongod, a single-node replica set), Ceph radosgw) and read their addresses from
//! the `STRATA_*` / `STRATA_TEST_*` variables that `scripts/deps env`
//! prints. Every test gets its own PostgreSQL database, MongoDB database
//! and bucket prefix, so tests run in parallel without seeing each other.
#![allow(dead_code)] // each test binary uses a part of this module

pub mod api;
pub mod content;
pub mod logged;
pub mod outage;
pub mod relay;
pub mod serve;
pub mod tools;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sqlx::Connection;
use strata::config::{Config, MongoUrl, Secret, SecretUrl};

/// The local dependencies, as `scripts/deps env` describes them.
#[derive(Debug, Clone)]
pub struct Deps {
    pub pg_superuser_url: String,
    pub pg_owner_url: String,
    pub pg_app_user: String,
    pub pg_app_password: String,
    pub pg_port: u16,
    pub pgbouncer_port: u16,
    pub mongo_url: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key: String,
    pub s3_secret_key: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with scripts/test (it starts the real local \
             dependencies with scripts/deps up and exports their settings)"
        )
    })
}

pub fn deps() -> &'static Deps {
    static DEPS: OnceLock<Deps> = OnceLock::new();
    DEPS.get_or_init(|| Deps {
        pg_superuser_url: var("STRATA_TEST_PG_SUPERUSER_URL"),
        pg_owner_url: var("STRATA_TEST_PG_OWNER_URL"),
        pg_app_user: var("STRATA_TEST_PG_APP_USER"),
        pg_app_password: var("STRATA_TEST_PG_APP_PASSWORD"),
        pg_port: var("STRATA_TEST_PG_PORT")
            .parse()
            .expect("STRATA_TEST_PG_PORT is a port"),
        pgbouncer_port: var("STRATA_TEST_PGBOUNCER_PORT")
            .parse()
            .expect("STRATA_TEST_PGBOUNCER_PORT is a port"),
        mongo_url: var("STRATA_MONGO__URL"),
        s3_endpoint: var("STRATA_S3__ENDPOINT"),
        s3_region: var("STRATA_S3__REGION"),
        s3_access_key: var("STRATA_S3__ACCESS_KEY_ID"),
        s3_secret_key: var("STRATA_S3__SECRET_ACCESS_KEY"),
    })
}

/// A free loopback port (bound and released; the window for a race is tiny).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A short unique lowercase name: valid as a database and bucket prefix.
pub fn unique_name(tag: &str) -> String {
    let id = ulid::Ulid::generate().to_string().to_ascii_lowercase();
    // The random tail of the ULID; the time head repeats within a test run.
    format!("{tag}-{}", &id[16..])
}

/// One test's private slice of every store.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub pg_database: String,
    pub mongo_database: String,
    pub bucket_prefix: String,
    pub api_port: u16,
    pub admin_port: u16,
}

impl Fixture {
    /// Creates an empty PostgreSQL database owned by `strata_owner`; the
    /// MongoDB database and the buckets come into being when strata writes.
    pub async fn new(tag: &str) -> Fixture {
        let name = unique_name(tag);
        let pg_database = name.replace('-', "_");
        let mut admin = sqlx::PgConnection::connect(&deps().pg_superuser_url)
            .await
            .expect("connect to PostgreSQL as superuser");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{pg_database}\" OWNER strata_owner"
        )))
        .execute(&mut admin)
        .await
        .expect("create the test database");
        let _ = admin.close().await;
        Fixture {
            bucket_prefix: name.clone(),
            mongo_database: pg_database.clone(),
            pg_database,
            name,
            api_port: free_port(),
            admin_port: free_port(),
        }
    }

    pub fn pooled_url(&self) -> String {
        let d = deps();
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            d.pg_app_user, d.pg_app_password, d.pgbouncer_port, self.pg_database
        )
    }

    pub fn direct_url(&self) -> String {
        with_database(&deps().pg_owner_url, &self.pg_database)
    }

    pub fn superuser_url(&self) -> String {
        with_database(&deps().pg_superuser_url, &self.pg_database)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// The `STRATA_*` settings for a strata process using this fixture:
    /// serving through PgBouncer, migrating on the direct URL.
    pub fn env(&self) -> Vec<(String, String)> {
        let d = deps();
        [
            ("STRATA_POSTGRES__URL", self.pooled_url()),
            ("STRATA_POSTGRES__DIRECT_URL", self.direct_url()),
            ("STRATA_POSTGRES__PGBOUNCER", "true".into()),
            ("STRATA_MONGO__URL", d.mongo_url.clone()),
            ("STRATA_MONGO__DATABASE", self.mongo_database.clone()),
            ("STRATA_S3__ENDPOINT", d.s3_endpoint.clone()),
            ("STRATA_S3__REGION", d.s3_region.clone()),
            ("STRATA_S3__ACCESS_KEY_ID", d.s3_access_key.clone()),
            ("STRATA_S3__SECRET_ACCESS_KEY", d.s3_secret_key.clone()),
            ("STRATA_S3__PATH_STYLE", "true".into()),
            ("STRATA_S3__BUCKET_PREFIX", self.bucket_prefix.clone()),
            ("STRATA_API__LISTEN", self.api_addr().to_string()),
            ("STRATA_ADMIN__LISTEN", self.admin_addr().to_string()),
            ("STRATA_BOOT__DEPENDENCY_TIMEOUT_SECS", "10".into()),
            ("STRATA_BOOT__INITIAL_BACKOFF_MS", "100".into()),
            ("STRATA_BOOT__MAX_BACKOFF_MS", "500".into()),
            ("STRATA_BOOT__HEALTH_INTERVAL_SECS", "1".into()),
            ("STRATA_LOG__TARGET", "stderr".into()),
            ("STRATA_LOG__LEVEL", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The same settings as a [`Config`], for tests that call the library.
    pub fn config(&self) -> Config {
        let d = deps();
        let mut config = Config::default();
        config.postgres.url = SecretUrl::parse(&self.pooled_url()).expect("pooled url");
        config.postgres.direct_url =
            Some(SecretUrl::parse(&self.direct_url()).expect("direct url"));
        config.postgres.pgbouncer = true;
        config.mongo.url = MongoUrl::parse(&d.mongo_url).expect("mongo url");
        config.mongo.database = self.mongo_database.clone();
        config.s3.endpoint = url::Url::parse(&d.s3_endpoint).expect("s3 endpoint");
        config.s3.region = d.s3_region.clone();
        config.s3.access_key_id = d.s3_access_key.clone();
        config.s3.secret_access_key = Secret::new(d.s3_secret_key.clone());
        config.s3.path_style = true;
        config.s3.bucket_prefix = self.bucket_prefix.clone();
        config.api.listen = self.api_addr();
        config.admin.listen = self.admin_addr();
        config.boot.dependency_timeout_secs = 10;
        config.boot.initial_backoff_ms = 100;
        config.boot.max_backoff_ms = 500;
        config.boot.health_interval_secs = 1;
        config
    }

    /// Library handles to this fixture's stores, upgraded to the embedded schema.
    pub async fn migrated_stores(&self) -> strata::stores::Stores {
        let config = self.config();
        let stores = strata::stores::Stores::new(&config).await.expect("stores");
        strata::schema::upgrade(&stores, &config, &|_| {})
            .await
            .expect("migrate");
        stores
    }

    /// `strata ARGS` with this fixture's settings (and no others).
    pub fn strata(&self, args: &[&str]) -> Command {
        let mut command = strata_command(args);
        command.envs(self.env());
        command
    }
}

/// Removes the test's PostgreSQL and MongoDB databases, so repeated runs
/// do not pile them up on the shared servers. Best effort: a failure here
/// must not hide the test's own result. (Buckets stay: the contracts bucket
/// may hold COMPLIANCE-locked objects; radosgw's memstore forgets them at
/// the next `scripts/deps up`.)
impl Drop for Fixture {
    fn drop(&mut self) {
        let pg_database = self.pg_database.clone();
        let mongo_database = self.mongo_database.clone();
        // Drop may run inside a test's runtime: clean up on a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&deps().pg_superuser_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{pg_database}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
                if let Ok(client) = mongodb::Client::with_uri_str(&deps().mongo_url).await {
                    let _ = client.database(&mongo_database).drop().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The strata binary with every inherited `STRATA_*` setting removed.
pub fn strata_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("STRATA_") && !key.starts_with("STRATA_TEST_") {
            command.env_remove(&key);
        }
    }
    command
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("RUST_LOG");
    command
}

pub fn with_database(url: &str, database: &str) -> String {
    let mut url = url::Url::parse(url).expect("a PostgreSQL URL");
    url.set_path(database);
    url.to_string()
}

/// Runs a command to completion; stdout and stderr as text.
pub fn run(mut command: Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run strata");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Creates an active tenant through the administrative path (the serving
/// role cannot insert tenants); returns its id and ref.
pub async fn create_tenant(
    pg: &strata::stores::postgres::Postgres,
    slug: &str,
) -> (uuid::Uuid, String) {
    let id = uuid::Uuid::new_v4();
    let tenant_ref = ulid::Ulid::generate().to_string();
    let mut tx = pg.begin_admin().await.expect("begin admin");
    pg.query("INSERT INTO tenants (id, ref_id, name, slug, plan) VALUES ($1, $2, $3, $3, 'basic')")
        .bind(id)
        .bind(&tenant_ref)
        .bind(slug)
        .execute(&mut *tx)
        .await
        .expect("create tenant");
    tx.commit().await.expect("commit tenant");
    (id, tenant_ref)
}

/// The SQLSTATE of a failed statement, if it failed in the database.
pub fn sqlstate<T>(result: &Result<T, sqlx::Error>) -> Option<String> {
    match result {
        Err(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}
