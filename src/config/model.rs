//! The configuration's sections, their keys and their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::secrets::{MongoUrl, Secret, SecretUrl, lenient_string};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub postgres: PostgresConfig,
    pub mongo: MongoConfig,
    pub s3: S3Config,
    pub api: ApiConfig,
    pub content: ContentConfig,
    pub admin: AdminConfig,
    pub boot: BootConfig,
    pub log: LogConfig,
    pub jobs: JobsConfig,
    pub update: UpdateConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// Used to serve requests; through PgBouncer when `pgbouncer = true`.
    pub url: SecretUrl,
    /// Direct connection (never PgBouncer) for migrations and their lock.
    /// Defaults to `url` when PgBouncer is not in use.
    pub direct_url: Option<SecretUrl>,
    pub pool_size: u32,
    /// `url` goes through PgBouncer in transaction pooling mode: no named
    /// prepared statements, every unit of work in an explicit transaction.
    pub pgbouncer: bool,
    pub connect_timeout_secs: u64,
    /// How long a booting instance waits for another instance's schema
    /// upgrade (the advisory schema lock) before giving up with an error.
    pub schema_lock_wait_secs: u64,
    /// How long one migration statement waits for a table lock (PostgreSQL
    /// `lock_timeout`) before the migration transaction is rolled back and
    /// retried: a long transaction of an older instance then delays the
    /// upgrade, instead of every query queueing behind a blocked ALTER.
    pub migration_lock_timeout_secs: u64,
    /// How many times a migration transaction that could not get its locks
    /// is tried before the upgrade reports the store busy (serve retries).
    pub migration_attempts: u32,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: default_url("postgres://strata@127.0.0.1:5432/strata"),
            direct_url: None,
            pool_size: 16,
            pgbouncer: false,
            connect_timeout_secs: 5,
            schema_lock_wait_secs: 300,
            migration_lock_timeout_secs: 5,
            migration_attempts: 10,
        }
    }
}

impl PostgresConfig {
    /// The URL migrations use: `direct_url`, or `url` when there is no pooler.
    pub fn migration_url(&self) -> &SecretUrl {
        self.direct_url.as_ref().unwrap_or(&self.url)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MongoConfig {
    pub url: MongoUrl,
    #[serde(deserialize_with = "lenient_string")]
    pub database: String,
    pub connect_timeout_secs: u64,
    /// TTL of `tool_call_logs` documents (days after `createdOn`).
    pub tool_call_logs_ttl_days: u32,
    /// TTL of `integration_payloads` documents.
    pub integration_payloads_ttl_days: u32,
    /// TTL of the `entity_diffs` audit trail.
    pub entity_diffs_ttl_days: u32,
}

impl Default for MongoConfig {
    fn default() -> Self {
        Self {
            url: MongoUrl::compiled_in("mongodb://127.0.0.1:27017/"),
            database: "strata".into(),
            connect_timeout_secs: 5,
            tool_call_logs_ttl_days: 30,
            integration_payloads_ttl_days: 14,
            entity_diffs_ttl_days: 365,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: Url,
    #[serde(deserialize_with = "lenient_string")]
    pub region: String,
    #[serde(deserialize_with = "lenient_string")]
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Path-style addressing (`endpoint/bucket/key`), as MinIO and Ceph expect.
    pub path_style: bool,
    /// Bucket names are `{bucket_prefix}-{purpose}` (content, contracts).
    #[serde(deserialize_with = "lenient_string")]
    pub bucket_prefix: String,
    pub connect_timeout_secs: u64,
    /// Lifecycle of the content bucket: noncurrent versions expire after this.
    pub noncurrent_version_expiry_days: u32,
    /// Lifecycle of the content bucket: incomplete multipart uploads are aborted after this.
    pub abort_multipart_days: u32,
    /// Default retention of the contracts bucket (Object Lock).
    pub contracts_retention_years: u32,
    /// `compliance` (nobody can shorten it) or `governance` (privileged users can).
    pub contracts_retention_mode: RetentionMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    Compliance,
    Governance,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: Url::parse("http://127.0.0.1:9000")
                .expect("the default endpoint is a valid URL"),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            path_style: true,
            bucket_prefix: "strata".into(),
            connect_timeout_secs: 5,
            noncurrent_version_expiry_days: 30,
            abort_multipart_days: 1,
            contracts_retention_years: 7,
            contracts_retention_mode: RetentionMode::Compliance,
        }
    }
}

impl S3Config {
    pub fn bucket_name(&self, purpose: &str) -> String {
        format!("{}-{purpose}", self.bucket_prefix)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// The largest request body the data API reads; larger ones get 413.
    pub max_body_bytes: usize,
    /// The deepest nesting of arrays and objects a JSON body may have;
    /// deeper ones get 422 before they are parsed.
    pub max_json_depth: u32,
    /// The most items one batch request (`tool-calls:batch`,
    /// `usage-events:batch`) may carry; more get 422.
    pub max_batch_items: u32,
    /// The largest body a batch request may have (it carries up to
    /// `max_batch_items` payloads); larger ones get 413.
    pub max_batch_body_bytes: usize,
    /// The largest request + response payload of one tool call (its JSON
    /// size); a larger one is refused for that item only.
    pub max_payload_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            max_batch_items: 1000,
            max_batch_body_bytes: 16 * 1024 * 1024,
            max_payload_bytes: 256 * 1024,
        }
    }
}

/// Large content (the split pattern): S3 bytes, MongoDB metadata,
/// PostgreSQL pointers. Limits are per entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContentConfig {
    /// Lifetime of a pre-signed URL, in seconds (1..=3600).
    pub presign_expiry_secs: u64,
    /// Bodies larger than this go to S3 as a multipart upload in parts of
    /// this size; one part at a time is held in memory (5 MiB..=512 MiB).
    pub part_size_bytes: u64,
    /// The largest activity output accepted, in bytes.
    pub activity_output_max_bytes: u64,
    /// The media types an activity output may have (`text/markdown`,
    /// `application/json`).
    pub activity_output_types: Vec<String>,
    /// The largest contract PDF accepted, in bytes.
    pub contract_max_bytes: u64,
    /// The largest part of an onboarding run (scraped text, research,
    /// context file) accepted, in bytes.
    pub onboarding_max_bytes: u64,
    /// The largest strategy content (Markdown) accepted, in bytes.
    pub strategy_max_bytes: u64,
    /// How often `serve` reconciles the stores (one instance at a time);
    /// 0 turns it off.
    pub reconcile_interval_secs: u64,
    /// Orphans older than this are removed by the periodic reconciliation.
    pub reconcile_grace_hours: u32,
}

impl Default for ContentConfig {
    fn default() -> Self {
        Self {
            presign_expiry_secs: 900,
            part_size_bytes: 8 * 1024 * 1024,
            activity_output_max_bytes: 256 * 1024 * 1024,
            activity_output_types: vec!["text/markdown".into(), "application/json".into()],
            contract_max_bytes: 50 * 1024 * 1024,
            onboarding_max_bytes: 64 * 1024 * 1024,
            strategy_max_bytes: 8 * 1024 * 1024,
            reconcile_interval_secs: 3600,
            reconcile_grace_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Loopback by default: the admin API exposes operational detail.
    pub listen: SocketAddr,
    /// SHA-256 (hex) of the admin bearer token; `strata token new` makes a
    /// token and its hash. Empty: `/admin/*` refuses every request
    /// (`/livez` and `/readyz` stay open for probes).
    #[serde(deserialize_with = "lenient_string")]
    pub token_sha256: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            token_sha256: String::new(),
        }
    }
}

/// Background jobs: each runs on one instance at a time, the holder of its
/// lease in PostgreSQL (`strata_jobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// How long a job's lease lasts without renewal: when its holder dies,
    /// another instance takes the job over within this (plus a third of it).
    pub lease_secs: u64,
    /// How often the tenant purge looks for tenants to purge.
    pub purge_interval_secs: u64,
    /// Days a deleted tenant's data is kept before the purge removes it.
    pub purge_after_days: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            lease_secs: 30,
            purge_interval_secs: 3_600,
            purge_after_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootConfig {
    /// How long `check` (and each reported boot attempt of `serve`) keeps
    /// retrying an unreachable dependency before calling it failed.
    pub dependency_timeout_secs: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How often a ready server re-checks its dependencies for `/readyz`.
    pub health_interval_secs: u64,
}

impl Default for BootConfig {
    fn default() -> Self {
        Self {
            dependency_timeout_secs: 60,
            initial_backoff_ms: 250,
            max_backoff_ms: 5_000,
            health_interval_secs: 5,
        }
    }
}

impl BootConfig {
    pub fn dependency_timeout(&self) -> Duration {
        Duration::from_secs(self.dependency_timeout_secs)
    }
    pub fn backoff(&self) -> crate::retry::Backoff {
        crate::retry::Backoff::new(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// journald when started by systemd, stderr otherwise.
    Auto,
    Journald,
    File,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogRotation {
    Minutely,
    Hourly,
    Daily,
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, or `strata=debug,sqlx=warn`.
    pub level: String,
    pub format: LogFormat,
    pub target: LogTarget,
    pub directory: PathBuf,
    pub rotation: LogRotation,
    /// Rotated files kept in `directory` (0 keeps all).
    pub max_files: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            target: LogTarget::Auto,
            directory: PathBuf::from("/var/log/strata"),
            rotation: LogRotation::Daily,
            max_files: 14,
        }
    }
}

/// Where `strata self-update` finds releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateSourceKind {
    /// Self-update is off: the commands say how to turn it on.
    None,
    /// A GitHub-compatible releases API (GitHub, GitHub Enterprise, Gitea).
    Github,
    /// A bucket on an S3-compatible endpoint (MinIO, Ceph): air-gapped sites.
    S3,
}

/// Which releases `self-update` considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateChannel {
    /// Releases without a semver pre-release part (`1.2.3`).
    Stable,
    /// Pre-releases too (`1.3.0-rc.1`).
    Prerelease,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateConfig {
    pub source: UpdateSourceKind,
    pub channel: UpdateChannel,
    /// Install exactly this version (empty: the newest of the channel).
    #[serde(deserialize_with = "lenient_string")]
    pub version: String,
    /// Extra ed25519 public keys (64 hex digits each) trusted besides the
    /// compiled-in release keys; none of those can be removed.
    pub trusted_keys: Vec<String>,
    /// The strata binary to update (a tarball install's `bin/strata`);
    /// empty: the binary that runs `self-update`.
    pub install_path: PathBuf,
    /// The systemd unit restarted after an install, when it is active.
    #[serde(deserialize_with = "lenient_string")]
    pub systemd_unit: String,
    /// Instead of `systemctl restart <systemd_unit>`: this command (program
    /// and arguments) restarts strata, for other supervisors.
    pub restart_command: Vec<String>,
    /// How long the restarted strata has to answer `/readyz` with 200
    /// before the update is rolled back.
    pub ready_timeout_secs: u64,
    /// The largest release archive or package downloaded.
    pub max_download_bytes: u64,
    /// `github`: the API base: `https://api.github.com`,
    /// `https://ghe.example/api/v3`, or a Gitea's `https://gitea.example/api/v1`.
    pub github_api_url: Url,
    #[serde(deserialize_with = "lenient_string")]
    pub github_owner: String,
    #[serde(deserialize_with = "lenient_string")]
    pub github_repo: String,
    /// `github`: a token for private repositories (sent only to the API's host).
    pub github_token: Secret,
    /// `s3`: the endpoint (path-style addressing, as MinIO and Ceph serve).
    pub s3_endpoint: Url,
    #[serde(deserialize_with = "lenient_string")]
    pub s3_bucket: String,
    /// `s3`: key prefix of the releases inside the bucket, e.g. `strata/`.
    #[serde(deserialize_with = "lenient_string")]
    pub s3_prefix: String,
    #[serde(deserialize_with = "lenient_string")]
    pub s3_region: String,
    #[serde(deserialize_with = "lenient_string")]
    pub s3_access_key_id: String,
    pub s3_secret_access_key: Secret,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            source: UpdateSourceKind::None,
            channel: UpdateChannel::Stable,
            version: String::new(),
            trusted_keys: Vec::new(),
            install_path: PathBuf::new(),
            systemd_unit: "strata.service".into(),
            restart_command: Vec::new(),
            ready_timeout_secs: 1800,
            max_download_bytes: 512 * 1024 * 1024,
            github_api_url: Url::parse("https://api.github.com")
                .expect("the default API URL is a valid URL"),
            github_owner: String::new(),
            github_repo: String::new(),
            github_token: Secret::default(),
            s3_endpoint: Url::parse("http://127.0.0.1:9000")
                .expect("the default endpoint is a valid URL"),
            s3_bucket: String::new(),
            s3_prefix: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
        }
    }
}

/// Compiled-in defaults only: no input reaches this parse.
fn default_url(s: &str) -> SecretUrl {
    SecretUrl::parse(s).expect("compiled-in default URLs are valid")
}
