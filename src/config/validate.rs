//! What types alone cannot check: URL schemes, ranges, names.

use figment::Figment;
use url::Url;

use super::error::{ConfigError, InvalidKey, source_of};
use super::model::{Config, LogTarget, UpdateSourceKind};

impl Config {
    /// Checks what types alone cannot: URL schemes, ranges, names.
    pub(super) fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
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
        if !(1..=86_400).contains(&self.postgres.schema_lock_wait_secs) {
            bad(
                "postgres.schema_lock_wait_secs",
                "must be between 1 and 86400 seconds".into(),
            );
        }
        if !(2..=3_600).contains(&self.jobs.lease_secs) {
            bad(
                "jobs.lease_secs",
                "must be between 2 and 3600 seconds".into(),
            );
        }
        if !(1..=604_800).contains(&self.jobs.purge_interval_secs) {
            bad(
                "jobs.purge_interval_secs",
                "must be between 1 second and 604800 (a week)".into(),
            );
        }
        if self.jobs.purge_after_days > 3_650 {
            bad(
                "jobs.purge_after_days",
                "must be at most 3650 days (0: purge at the next run)".into(),
            );
        }
        if !(1..=60).contains(&self.postgres.migration_lock_timeout_secs) {
            bad(
                "postgres.migration_lock_timeout_secs",
                "must be between 1 and 60 seconds: every query on a table waits behind a \
                 migration that waits for that table's lock (the wait for another instance's \
                 upgrade is postgres.schema_lock_wait_secs)"
                    .into(),
            );
        }
        if !(1..=1000).contains(&self.postgres.migration_attempts) {
            bad(
                "postgres.migration_attempts",
                "must be between 1 and 1000".into(),
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
        if !(1024..=64 * 1024 * 1024).contains(&self.api.max_body_bytes) {
            bad(
                "api.max_body_bytes",
                "must be between 1024 and 67108864 (64 MiB)".into(),
            );
        }
        if !(2..=128).contains(&self.api.max_json_depth) {
            bad("api.max_json_depth", "must be between 2 and 128".into());
        }
        self.content.check(&mut bad);
        // A version put over a recorded one leaves the recorded one
        // noncurrent; reconciliation must remove it before the bucket's
        // lifecycle rule expires the recorded version.
        let expiry_hours = u64::from(self.s3.noncurrent_version_expiry_days) * 24;
        if self.content.reconcile_interval_secs > 0
            && u64::from(self.content.reconcile_grace_hours)
                + self.content.reconcile_interval_secs / 3600
                + 1
                >= expiry_hours
        {
            bad(
                "content.reconcile_grace_hours",
                format!(
                    "with content.reconcile_interval_secs, must stay below \
                     s3.noncurrent_version_expiry_days ({expiry_hours} hours): \
                     reconciliation must reclaim a version put over a recorded one before \
                     the lifecycle rule expires the recorded version"
                ),
            );
        }
        if !(1..=10_000).contains(&self.api.max_batch_items) {
            bad("api.max_batch_items", "must be between 1 and 10000".into());
        }
        if !(self.api.max_body_bytes..=1024 * 1024 * 1024).contains(&self.api.max_batch_body_bytes)
        {
            bad(
                "api.max_batch_body_bytes",
                "must be between api.max_body_bytes and 1073741824 (1 GiB)".into(),
            );
        }
        // A payload is one MongoDB document (16 MiB at most, with its envelope).
        if !(1024..=15 * 1024 * 1024).contains(&self.api.max_payload_bytes) {
            bad(
                "api.max_payload_bytes",
                "must be between 1024 and 15728640 (15 MiB: a MongoDB document holds 16 MiB)"
                    .into(),
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

        self.validate_update(&mut bad);

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

impl Config {
    fn validate_update(&self, bad: &mut impl FnMut(&str, String)) {
        let update = &self.update;
        for (i, key) in update.trusted_keys.iter().enumerate() {
            if let Err(reason) = crate::update::keys::parse_public_key(key) {
                bad(&format!("update.trusted_keys.{i}"), reason);
            }
        }
        if !(1..=86_400).contains(&update.ready_timeout_secs) {
            bad(
                "update.ready_timeout_secs",
                "must be between 1 and 86400 seconds".into(),
            );
        }
        if !(1024 * 1024..=8 * 1024 * 1024 * 1024).contains(&update.max_download_bytes) {
            bad(
                "update.max_download_bytes",
                "must be between 1048576 (1 MiB) and 8589934592 (8 GiB)".into(),
            );
        }
        if !update.install_path.as_os_str().is_empty() && !update.install_path.is_absolute() {
            bad("update.install_path", "must be an absolute path".into());
        }
        if update.systemd_unit.trim().is_empty() {
            bad("update.systemd_unit", "must not be empty".into());
        }
        if update
            .restart_command
            .first()
            .is_some_and(|program| program.trim().is_empty())
        {
            bad(
                "update.restart_command",
                "the first element is the program and must not be empty".into(),
            );
        }
        if !update.version.is_empty()
            && semver::Version::parse(update.version.trim_start_matches('v')).is_err()
        {
            bad(
                "update.version",
                "must be a semantic version such as 1.2.3 (or empty for the newest)".into(),
            );
        }
        match update.source {
            UpdateSourceKind::None => {}
            UpdateSourceKind::Github => {
                check_scheme(
                    bad,
                    "update.github_api_url",
                    &update.github_api_url,
                    &["http", "https"],
                );
                for (key, value) in [
                    ("update.github_owner", &update.github_owner),
                    ("update.github_repo", &update.github_repo),
                ] {
                    if value.trim().is_empty() {
                        bad(key, "required when update.source = \"github\"".into());
                    } else if value.contains('/') {
                        bad(key, "must not contain '/'".into());
                    }
                }
            }
            UpdateSourceKind::S3 => {
                check_scheme(
                    bad,
                    "update.s3_endpoint",
                    &update.s3_endpoint,
                    &["http", "https"],
                );
                if let Err(reason) = validate_bucket_name(&update.s3_bucket) {
                    bad("update.s3_bucket", reason);
                }
                if update.s3_region.trim().is_empty() {
                    bad("update.s3_region", "must not be empty".into());
                }
                if update.s3_access_key_id.is_empty() != update.s3_secret_access_key.is_empty() {
                    bad(
                        "update.s3_secret_access_key",
                        "update.s3_access_key_id and update.s3_secret_access_key must be set \
                         together"
                            .into(),
                    );
                }
            }
        }
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

/// The media types an activity output may be stored as (the MongoDB
/// validator knows these two formats).
pub const ACTIVITY_OUTPUT_TYPES: [&str; 2] = ["text/markdown", "application/json"];

impl super::model::ContentConfig {
    fn check(&self, bad: &mut impl FnMut(&str, String)) {
        if !(1..=3600).contains(&self.presign_expiry_secs) {
            bad(
                "content.presign_expiry_secs",
                "must be between 1 and 3600 (a pre-signed URL lives at most an hour)".into(),
            );
        }
        // S3 refuses parts below 5 MiB (but the last).
        if !(5 * 1024 * 1024..=512 * 1024 * 1024).contains(&self.part_size_bytes) {
            bad(
                "content.part_size_bytes",
                "must be between 5242880 (5 MiB, the S3 minimum) and 536870912 (512 MiB)".into(),
            );
        }
        // 10,000 parts is the S3 maximum of one multipart upload.
        if self.activity_output_max_bytes == 0
            || self.activity_output_max_bytes > self.part_size_bytes.saturating_mul(10_000)
        {
            bad(
                "content.activity_output_max_bytes",
                "must be at least 1 and at most 10000 × content.part_size_bytes".into(),
            );
        }
        for (key, value) in [
            ("content.contract_max_bytes", self.contract_max_bytes),
            ("content.onboarding_max_bytes", self.onboarding_max_bytes),
            ("content.strategy_max_bytes", self.strategy_max_bytes),
        ] {
            if value == 0 || value > self.part_size_bytes.saturating_mul(10_000) {
                bad(
                    key,
                    "must be at least 1 and at most 10000 × content.part_size_bytes".into(),
                );
            }
        }
        if self.reconcile_grace_hours > 24 * 365 {
            bad(
                "content.reconcile_grace_hours",
                "must be at most 8760 (a year)".into(),
            );
        }
        if self.reconcile_interval_secs > 7 * 24 * 3600 {
            bad(
                "content.reconcile_interval_secs",
                "must be at most 604800 (a week); 0 turns it off".into(),
            );
        }
        if self.activity_output_types.is_empty() {
            bad(
                "content.activity_output_types",
                "must name at least one media type".into(),
            );
        }
        for media_type in &self.activity_output_types {
            if !ACTIVITY_OUTPUT_TYPES.contains(&media_type.as_str()) {
                bad(
                    "content.activity_output_types",
                    format!(
                        "{media_type:?} is not one of {}",
                        ACTIVITY_OUTPUT_TYPES.join(", ")
                    ),
                );
            }
        }
    }
}
