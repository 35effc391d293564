//! Configuration: built-in defaults < TOML file < `STRATA_*` environment.
//!
//! Every value is validated after extraction and every error names the key it
//! is about (`postgres.url`), where it came from (file or environment
//! variable) and what is wrong. Secrets are wrapped so that neither `Debug`
//! nor `Serialize` can print them: `config show` serializes the same struct
//! the server runs with, and gets the redacted form by construction.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// Where packages install the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/strata/strata.toml";
/// Prefix of configuration environment variables; `__` separates nesting.
pub const ENV_PREFIX: &str = "STRATA_";
const REDACTED: &str = "<redacted>";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{}", format_invalid(.0))]
    Invalid(Vec<InvalidKey>),
}

/// One bad configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKey {
    /// Dotted key, e.g. `postgres.pool_size`.
    pub key: String,
    pub reason: String,
    /// The file or environment variable the value came from, when known.
    pub source: Option<String>,
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration key `{}`: {}",
            self.key, self.reason
        )?;
        if let Some(source) = &self.source {
            write!(f, " (from {source})")?;
        }
        Ok(())
    }
}

fn format_invalid(keys: &[InvalidKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A string that must never be printed: `Debug` and `Serialize` redact it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { REDACTED })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_string(d).map(Secret)
    }
}

/// Environment values that look like numbers (`STRATA_S3__SECRET_ACCESS_KEY=1234`)
/// arrive as numbers; a string field takes them as their text.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Str(String),
        Int(i128),
        Float(f64),
        Bool(bool),
    }
    // The untagged error would echo the value, which may be a secret.
    Scalar::deserialize(d)
        .map(|v| match v {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        })
        .map_err(|_| serde::de::Error::custom("expected a string"))
}

/// Debug, Display and Serialize all show a connection string's
/// `redacted()` form: there is no way to print the secret by accident.
macro_rules! printed_redacted {
    ($type:ty) => {
        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.redacted())
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.redacted())
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.redacted())
            }
        }
    };
}

/// A connection URL that may carry a password. Printing shows it with the
/// password replaced; [`SecretUrl::expose`] gives the real one to drivers.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    pub fn parse(s: &str) -> Result<Self, url::ParseError> {
        Url::parse(s).map(Self)
    }
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
    pub fn url(&self) -> &Url {
        &self.0
    }
    /// The URL with its password replaced, safe to print.
    pub fn redacted(&self) -> String {
        let mut url = self.0.clone();
        if url.password().is_some() {
            // set_password only fails on URLs that cannot have one.
            let _ = url.set_password(Some(REDACTED));
        }
        // Query parameters may carry credentials too (e.g. `password=`).
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_sensitive_option(&k) {
                        REDACTED.to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
    /// `host:port` for messages about reaching the server.
    pub fn address(&self) -> String {
        let host = self.0.host_str().unwrap_or("?");
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }
}

printed_redacted!(SecretUrl);

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = lenient_string(d)?;
        // The parse error never contains the input, so no secret leaks here.
        SecretUrl::parse(&raw)
            .map_err(|e| serde::de::Error::custom(format!("not a valid URL: {e}")))
    }
}

/// A MongoDB connection string: `mongodb://u:p@h1:27017,h2:27017/?replicaSet=rs0`
/// or `mongodb+srv://…`. A seed list of several hosts is not a URL the
/// `url` crate accepts, so this keeps the text and validates it with the
/// driver's own parser. Printing redacts the password and sensitive options.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoUrl(String);

impl MongoUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        match mongodb::options::ConnectionString::parse(s) {
            Ok(_) => Ok(Self(s.to_string())),
            Err(e) => {
                let mut message = e.kind.to_string();
                if let Some(password) = Self::password_of(s).filter(|p| !p.is_empty()) {
                    message = message.replace(password, REDACTED);
                }
                Err(format!("not a valid MongoDB connection string: {message}"))
            }
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `user:password@` part's password, if any.
    fn password_of(s: &str) -> Option<&str> {
        let rest = s.split_once("://")?.1;
        let authority = rest.split(['/', '?']).next()?;
        let (userinfo, _) = authority.rsplit_once('@')?;
        userinfo.split_once(':').map(|(_, password)| password)
    }

    pub fn redacted(&self) -> String {
        let mut text = self.0.clone();
        if let Some(password) = Self::password_of(&self.0).filter(|p| !p.is_empty()) {
            let (scheme, rest) = text.split_once("://").unwrap_or(("", &self.0));
            let rest = rest.replacen(&format!(":{password}@"), &format!(":{REDACTED}@"), 1);
            text = format!("{scheme}://{rest}");
        }
        match text.split_once('?') {
            Some((base, query)) => {
                let options: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, _)) if is_sensitive_option(key) => format!("{key}={REDACTED}"),
                        _ => pair.to_string(),
                    })
                    .collect();
                format!("{base}?{}", options.join("&"))
            }
            None => text,
        }
    }

    /// The hosts for messages: `h1:27017,h2:27017`, or the SRV name.
    pub fn address(&self) -> String {
        use mongodb::options::{ConnectionString, HostInfo};
        match ConnectionString::parse(&self.0).map(|c| c.host_info) {
            Ok(HostInfo::HostIdentifiers(hosts)) => hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            Ok(HostInfo::DnsRecord(name)) => name,
            Ok(_) | Err(_) => "?".into(),
        }
    }
}

fn is_sensitive_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "key",
        "authmechanismproperties",
    ]
    .iter()
    .any(|s| key.contains(s))
}

printed_redacted!(MongoUrl);

impl<'de> Deserialize<'de> for MongoUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = lenient_string(d)?;
        MongoUrl::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub postgres: PostgresConfig,
    pub mongo: MongoConfig,
    pub s3: S3Config,
    pub api: ApiConfig,
    pub admin: AdminConfig,
    pub boot: BootConfig,
    pub log: LogConfig,
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
    /// How long a booting instance waits for another instance's migration
    /// lock before giving up with an error.
    pub migration_lock_timeout_secs: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: default_url("postgres://strata@127.0.0.1:5432/strata"),
            direct_url: None,
            pool_size: 16,
            pgbouncer: false,
            connect_timeout_secs: 5,
            migration_lock_timeout_secs: 300,
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
            url: MongoUrl("mongodb://127.0.0.1:27017/".into()),
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
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

/// Compiled-in defaults only: no input reaches this parse.
fn default_url(s: &str) -> SecretUrl {
    SecretUrl::parse(s).expect("compiled-in default URLs are valid")
}

/// Where the configuration file comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `--config FILE`: the file must exist.
    Explicit(PathBuf),
    /// The default path: used when present, skipped when absent.
    Default(PathBuf),
}

impl ConfigSource {
    pub fn from_arg(arg: Option<&Path>) -> Self {
        match arg {
            Some(p) => Self::Explicit(p.to_path_buf()),
            None => Self::Default(PathBuf::from(DEFAULT_CONFIG_PATH)),
        }
    }
    pub fn path(&self) -> &Path {
        match self {
            Self::Explicit(p) | Self::Default(p) => p,
        }
    }
}

impl Config {
    /// Loads defaults, then the file, then `STRATA_*` variables, and validates.
    pub fn load(source: &ConfigSource) -> Result<Self, ConfigError> {
        let figment = Self::figment(source)?;
        let config: Config = figment.extract().map_err(|e| from_figment(&figment, e))?;
        config.validate(&figment)?;
        Ok(config)
    }

    fn figment(source: &ConfigSource) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let path = source.path();
        match source {
            ConfigSource::Explicit(_) => {
                std::fs::metadata(path).map_err(|e| ConfigError::File {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                figment = figment.merge(Toml::file_exact(path));
            }
            ConfigSource::Default(_) => {
                if path.exists() {
                    figment = figment.merge(Toml::file_exact(path));
                }
            }
        }
        Ok(figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| !is_reserved_env_key(key.as_str()))
                .split("__"),
        ))
    }

    /// Checks what types alone cannot: URL schemes, ranges, names.
    fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, reason: String| {
            problems.push(InvalidKey {
                key: key.to_string(),
                reason,
                source: source_of(figment, key),
            });
        };

        let pg_schemes = ["postgres", "postgresql"];
        check_scheme(
            &mut bad,
            "postgres.url",
            self.postgres.url.url(),
            &pg_schemes,
        );
        if let Some(direct) = &self.postgres.direct_url {
            check_scheme(&mut bad, "postgres.direct_url", direct.url(), &pg_schemes);
        } else if self.postgres.pgbouncer {
            bad(
                "postgres.direct_url",
                "required when postgres.pgbouncer = true: migrations take a session lock, \
                 which PgBouncer's transaction pooling does not keep"
                    .into(),
            );
        }
        if !(1..=1000).contains(&self.postgres.pool_size) {
            bad("postgres.pool_size", "must be between 1 and 1000".into());
        }
        check_timeout(
            &mut bad,
            "postgres.connect_timeout_secs",
            self.postgres.connect_timeout_secs,
        );
        if !(1..=86_400).contains(&self.postgres.migration_lock_timeout_secs) {
            bad(
                "postgres.migration_lock_timeout_secs",
                "must be between 1 and 86400 seconds".into(),
            );
        }

        if let Err(reason) = validate_mongo_database(&self.mongo.database) {
            bad("mongo.database", reason);
        }
        check_timeout(
            &mut bad,
            "mongo.connect_timeout_secs",
            self.mongo.connect_timeout_secs,
        );
        for (key, days) in [
            (
                "mongo.tool_call_logs_ttl_days",
                self.mongo.tool_call_logs_ttl_days,
            ),
            (
                "mongo.integration_payloads_ttl_days",
                self.mongo.integration_payloads_ttl_days,
            ),
            (
                "mongo.entity_diffs_ttl_days",
                self.mongo.entity_diffs_ttl_days,
            ),
        ] {
            check_days(&mut bad, key, days, 36_500);
        }

        check_scheme(
            &mut bad,
            "s3.endpoint",
            &self.s3.endpoint,
            &["http", "https"],
        );
        if self.s3.region.trim().is_empty() {
            bad("s3.region", "must not be empty".into());
        }
        for purpose in ["content", "contracts"] {
            if let Err(reason) = validate_bucket_name(&self.s3.bucket_name(purpose)) {
                bad(
                    "s3.bucket_prefix",
                    format!("gives bucket name for {purpose} that {reason}"),
                );
            }
        }
        if self.s3.access_key_id.is_empty() != self.s3.secret_access_key.is_empty() {
            bad(
                "s3.secret_access_key",
                "s3.access_key_id and s3.secret_access_key must be set together".into(),
            );
        }
        check_timeout(
            &mut bad,
            "s3.connect_timeout_secs",
            self.s3.connect_timeout_secs,
        );
        check_days(
            &mut bad,
            "s3.noncurrent_version_expiry_days",
            self.s3.noncurrent_version_expiry_days,
            36_500,
        );
        check_days(
            &mut bad,
            "s3.abort_multipart_days",
            self.s3.abort_multipart_days,
            36_500,
        );
        if !(1..=100).contains(&self.s3.contracts_retention_years) {
            bad(
                "s3.contracts_retention_years",
                "must be between 1 and 100".into(),
            );
        }

        let hash = &self.admin.token_sha256;
        let is_sha256_hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !hash.is_empty() && !is_sha256_hex {
            bad(
                "admin.token_sha256",
                "must be the 64 hex digits of a SHA-256 hash (see `strata token new`), not the token itself".into(),
            );
        }
        if self.api.listen == self.admin.listen {
            bad("admin.listen", "must differ from api.listen".into());
        }

        if self.boot.dependency_timeout_secs == 0 {
            bad("boot.dependency_timeout_secs", "must be at least 1".into());
        }
        if self.boot.initial_backoff_ms == 0 {
            bad("boot.initial_backoff_ms", "must be at least 1".into());
        }
        if self.boot.max_backoff_ms < self.boot.initial_backoff_ms {
            bad(
                "boot.max_backoff_ms",
                "must not be below boot.initial_backoff_ms".into(),
            );
        }
        if self.boot.health_interval_secs == 0 {
            bad("boot.health_interval_secs", "must be at least 1".into());
        }

        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            bad("log.level", format!("not a valid log filter: {e}"));
        }
        if self.log.target == LogTarget::File && self.log.directory.as_os_str().is_empty() {
            bad(
                "log.directory",
                "required when log.target = \"file\"".into(),
            );
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

fn check_scheme(bad: &mut impl FnMut(&str, String), key: &str, url: &Url, schemes: &[&str]) {
    if !schemes.contains(&url.scheme()) {
        bad(
            key,
            format!(
                "scheme `{}` is not one of {}",
                url.scheme(),
                schemes.join(", ")
            ),
        );
    } else if url.host_str().is_none_or(str::is_empty) {
        bad(key, "has no host".into());
    }
}

fn check_timeout(bad: &mut impl FnMut(&str, String), key: &str, secs: u64) {
    if !(1..=600).contains(&secs) {
        bad(key, "must be between 1 and 600 seconds".into());
    }
}

fn check_days(bad: &mut impl FnMut(&str, String), key: &str, days: u32, max: u32) {
    if !(1..=max).contains(&days) {
        bad(key, format!("must be between 1 and {max} days"));
    }
}

fn validate_mongo_database(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if let Some(c) = name.chars().find(|c| "/\\. \"$*<>:|?".contains(*c)) {
        return Err(format!("must not contain {c:?}"));
    }
    Ok(())
}

/// S3 bucket naming rules (the subset that all of AWS, MinIO and Ceph enforce).
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    if !(3..=63).contains(&name.len()) {
        return Err("must be 3 to 63 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err("may only hold lowercase letters, digits, '-' and '.'".into());
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// `STRATA_*` variables that are not configuration keys: `STRATA_CONFIG`
/// (the `--config` flag) and the test suite's `STRATA_TEST_*`.
fn is_reserved_env_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("config") || key.to_ascii_lowercase().starts_with("test_")
}

/// Keys whose values must not appear in error messages.
fn is_secret_key(key: &str) -> bool {
    key.ends_with("url")
        || key.contains("secret")
        || key.contains("password")
        || key.contains("token")
}

fn source_of(figment: &Figment, key: &str) -> Option<String> {
    let md = figment.find_metadata(key)?;
    Some(describe_source(md, key))
}

/// Names where a value came from: the file, or the exact variable name
/// (figment's own interpolation would say `POSTGRES.URL`).
fn describe_source(md: &figment::Metadata, key: &str) -> String {
    match &md.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ if md.name.contains("environment") => {
            format!(
                "{ENV_PREFIX}{}",
                key.replace('.', "__").to_ascii_uppercase()
            )
        }
        _ => md.name.to_string(),
    }
}

fn from_figment(figment: &Figment, error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let keys = error
        .into_iter()
        .map(|e| {
            let mut key = e.path.join(".");
            let reason = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    // figment already put the field at the end of the path.
                    key = if e.path.last() == Some(field) {
                        key
                    } else if key.is_empty() {
                        field.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                    format!("unknown key; expected one of: {}", expected.join(", "))
                }
                Kind::InvalidType(actual, expected) if is_secret_key(&key) => {
                    let _ = actual;
                    format!("wrong type, expected {expected}")
                }
                Kind::InvalidValue(_, expected) if is_secret_key(&key) => {
                    format!("invalid value, expected {expected}")
                }
                kind => kind.to_string(),
            };
            let source = e
                .metadata
                .as_ref()
                .map(|md| describe_source(md, &key))
                .or_else(|| source_of(figment, &key));
            InvalidKey {
                key: if key.is_empty() { "(root)".into() } else { key },
                reason,
                source,
            }
        })
        .collect();
    ConfigError::Invalid(keys)
}

#[cfg(test)]
// figment::Error (the Jail closures' error) is large; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    /// A jail with no inherited environment: the test suite itself runs
    /// with STRATA_* settings exported.
    fn in_jail(f: impl FnOnce(&mut Jail) -> figment::error::Result<()>) {
        Jail::expect_with(|jail| {
            jail.clear_env();
            f(jail)
        });
    }

    fn load_in_jail(jail: &Jail, file: Option<&str>) -> Result<Config, ConfigError> {
        let source = match file {
            Some(contents) => {
                jail.create_file("strata.toml", contents)
                    .map_err(|e| ConfigError::File {
                        path: "strata.toml".into(),
                        reason: e.to_string(),
                    })?;
                ConfigSource::Explicit(jail.directory().join("strata.toml"))
            }
            None => ConfigSource::Default(jail.directory().join("absent.toml")),
        };
        Config::load(&source)
    }

    fn invalid_keys(err: ConfigError) -> Vec<InvalidKey> {
        match err {
            ConfigError::Invalid(keys) => keys,
            other => panic!("expected invalid keys, got {other}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_admin_is_loopback() {
        in_jail(|jail| {
            let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
            assert!(config.admin.listen.ip().is_loopback());
            assert_eq!(config.postgres.pool_size, 16);
            assert_eq!(config.s3.bucket_name("contracts"), "strata-contracts");
            Ok(())
        });
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        in_jail(|jail| {
            jail.set_env("STRATA_POSTGRES__POOL_SIZE", "42");
            jail.set_env("STRATA_LOG__FORMAT", "json");
            let config = load_in_jail(
                jail,
                Some("[postgres]\npool_size = 7\nconnect_timeout_secs = 9\n[log]\nformat = \"text\"\nlevel = \"debug\"\n"),
            )
            .map_err(|e| e.to_string())?;
            // env beats file
            assert_eq!(config.postgres.pool_size, 42);
            assert_eq!(config.log.format, LogFormat::Json);
            // file beats defaults
            assert_eq!(config.postgres.connect_timeout_secs, 9);
            assert_eq!(config.log.level, "debug");
            // untouched keys keep defaults
            assert_eq!(config.mongo.database, "strata");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_named_with_its_source() {
        in_jail(|jail| {
            let err =
                load_in_jail(jail, Some("[postgres]\npool_sise = 3\n")).expect_err("unknown key");
            let keys = invalid_keys(err);
            assert_eq!(keys[0].key, "postgres.pool_sise");
            assert!(keys[0].reason.contains("unknown key"), "{:?}", keys[0]);
            Ok(())
        });
    }

    #[test]
    fn unknown_env_key_is_named() {
        in_jail(|jail| {
            jail.set_env("STRATA_MONGO__DATABSE", "x");
            let keys = invalid_keys(load_in_jail(jail, None).expect_err("unknown key"));
            assert_eq!(keys[0].key, "mongo.databse");
            Ok(())
        });
    }

    #[test]
    fn wrong_type_names_key() {
        in_jail(|jail| {
            let keys = invalid_keys(
                load_in_jail(jail, Some("[postgres]\npool_size = \"many\"\n"))
                    .expect_err("wrong type"),
            );
            assert_eq!(keys[0].key, "postgres.pool_size");
            assert!(
                keys[0]
                    .source
                    .as_deref()
                    .unwrap_or("")
                    .ends_with("strata.toml"),
                "{:?}",
                keys[0]
            );
            Ok(())
        });
    }

    #[test]
    fn semantic_errors_name_key_and_env_source() {
        in_jail(|jail| {
            jail.set_env("STRATA_POSTGRES__URL", "mysql://u:p@h/db");
            jail.set_env("STRATA_POSTGRES__POOL_SIZE", "0");
            let keys = invalid_keys(load_in_jail(jail, None).expect_err("bad values"));
            let url = keys
                .iter()
                .find(|k| k.key == "postgres.url")
                .expect("url named");
            assert!(url.reason.contains("mysql"));
            assert_eq!(url.source.as_deref(), Some("STRATA_POSTGRES__URL"));
            assert!(keys.iter().any(|k| k.key == "postgres.pool_size"));
            Ok(())
        });
    }

    #[test]
    fn reserved_env_variables_are_not_config_keys() {
        in_jail(|jail| {
            jail.set_env("STRATA_CONFIG", "/etc/strata/other.toml");
            jail.set_env("STRATA_TEST_PG_PORT", "1");
            load_in_jail(jail, None).map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn admin_token_hash_must_be_a_hash() {
        in_jail(|jail| {
            jail.set_env("STRATA_ADMIN__TOKEN_SHA256", "plain-token-by-mistake");
            let keys = invalid_keys(load_in_jail(jail, None).expect_err("not a hash"));
            assert_eq!(keys[0].key, "admin.token_sha256");
            assert!(!keys[0].reason.contains("plain-token-by-mistake"));
            Ok(())
        });
    }

    #[test]
    fn pgbouncer_requires_direct_url() {
        in_jail(|jail| {
            jail.set_env("STRATA_POSTGRES__PGBOUNCER", "true");
            let keys = invalid_keys(load_in_jail(jail, None).expect_err("missing direct url"));
            assert_eq!(keys[0].key, "postgres.direct_url");
            Ok(())
        });
    }

    #[test]
    fn numeric_looking_secret_from_env_is_a_string() {
        in_jail(|jail| {
            jail.set_env("STRATA_S3__ACCESS_KEY_ID", "12345");
            jail.set_env("STRATA_S3__SECRET_ACCESS_KEY", "67890");
            let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(config.s3.secret_access_key.expose(), "67890");
            assert_eq!(config.s3.access_key_id, "12345");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_toml() {
        in_jail(|jail| {
            jail.set_env(
                "STRATA_POSTGRES__URL",
                "postgres://app:hunter2pw@db:5432/strata?password=qpw",
            );
            jail.set_env("STRATA_S3__ACCESS_KEY_ID", "AKID");
            jail.set_env("STRATA_S3__SECRET_ACCESS_KEY", "s3cr3tkey");
            let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
            let shown = format!("{}{:?}", config.to_redacted_toml(), config);
            for secret in ["hunter2pw", "s3cr3tkey", "qpw"] {
                assert!(!shown.contains(secret), "{secret} leaked: {shown}");
            }
            assert!(shown.contains("db:5432"));
            assert_eq!(
                config.postgres.url.expose(),
                "postgres://app:hunter2pw@db:5432/strata?password=qpw"
            );
            Ok(())
        });
    }

    #[test]
    fn wrong_typed_secret_is_not_echoed() {
        in_jail(|jail| {
            let err = load_in_jail(
                jail,
                Some("[s3]\nsecret_access_key = [\"topsecretvalue\"]\n"),
            )
            .expect_err("wrong type");
            let text = err.to_string();
            assert!(text.contains("s3.secret_access_key"), "{text}");
            assert!(!text.contains("topsecretvalue"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn a_replica_set_seed_list_is_a_valid_mongo_url() {
        in_jail(|jail| {
            jail.set_env(
                "STRATA_MONGO__URL",
                "mongodb://app:s3cr3t-pw@h1:27017,h2:27017,h3:27018/?replicaSet=rs0&authSource=admin",
            );
            let config = load_in_jail(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(config.mongo.url.address(), "h1:27017,h2:27017,h3:27018");
            let shown = format!(
                "{} {:?} {}",
                config.mongo.url,
                config.mongo.url,
                config.to_redacted_toml()
            );
            assert!(!shown.contains("s3cr3t-pw"), "{shown}");
            assert!(
                shown.contains("replicaSet=rs0") && shown.contains("app:<redacted>@h1"),
                "{shown}"
            );
            assert!(config.mongo.url.expose().contains("s3cr3t-pw"));
            Ok(())
        });
    }

    #[test]
    fn mongo_url_errors_name_the_key_and_hide_the_password() {
        in_jail(|jail| {
            jail.set_env("STRATA_MONGO__URL", "mongodb://app:pw-777@h1:notaport/");
            let keys = invalid_keys(load_in_jail(jail, None).expect_err("bad port"));
            assert_eq!(keys[0].key, "mongo.url");
            assert!(!keys[0].reason.contains("pw-777"), "{:?}", keys[0]);
            jail.set_env("STRATA_MONGO__URL", "postgres://h1/");
            let keys = invalid_keys(load_in_jail(jail, None).expect_err("bad scheme"));
            assert!(keys[0].reason.contains("scheme"), "{:?}", keys[0]);
            Ok(())
        });
    }

    #[test]
    fn sensitive_mongo_options_are_redacted() {
        let url =
            MongoUrl::parse("mongodb+srv://cluster.example.com/?appName=strata").expect("valid");
        assert_eq!(url.address(), "cluster.example.com");
        assert!(url.redacted().contains("appName=strata"));
        for key in [
            "authMechanismProperties",
            "tlsCertificateKeyFilePassword",
            "sessionToken",
        ] {
            assert!(is_sensitive_option(key), "{key}");
        }
        assert!(!is_sensitive_option("replicaSet"));
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(validate_bucket_name("strata-content").is_ok());
        assert!(validate_bucket_name("Strata").is_err());
        assert!(validate_bucket_name("-abc").is_err());
        assert!(validate_bucket_name("ab").is_err());
    }
}
