//! S3: the buckets of `migrations/s3/buckets.toml`, reconciled: created
//! when missing, versioning, lifecycle rules and default retention set
//! when they differ. A contracts bucket without Object Lock is refused:
//! Object Lock cannot be added to an existing bucket.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    DefaultRetention, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use serde::Deserialize;

use super::config_keys::Setting;
use super::{SchemaError, embedded};
use crate::config::{Config, RetentionMode};
use crate::stores::ProbeError;
use crate::stores::s3::{S3, is_not_found, object_lock_missing};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketsFile {
    bucket: Vec<BucketDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketDef {
    pub purpose: String,
    #[serde(default)]
    pub versioning: bool,
    #[serde(default)]
    pub object_lock: bool,
    #[serde(default)]
    pub default_retention: Option<RetentionDef>,
    #[serde(default)]
    pub lifecycle: Vec<RuleDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionDef {
    /// `compliance`, `governance`, or a configuration key.
    pub mode: Setting<RetentionMode>,
    pub years: Setting<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub id: String,
    #[serde(default)]
    pub noncurrent_version_expiration_days: Option<Setting<u32>>,
    #[serde(default)]
    pub abort_incomplete_multipart_upload_days: Option<Setting<u32>>,
    #[serde(default)]
    pub expired_object_delete_marker: bool,
}

/// A number of days or years, as S3 takes it.
fn resolve_i32(setting: &Setting<u32>, config: &Config) -> Result<i32, SchemaError> {
    let value = setting.resolve(config, embedded::S3_BUCKETS)?;
    i32::try_from(value).map_err(|_| bad_file(format!("{value} is out of range")))
}

fn bad_file(reason: String) -> SchemaError {
    SchemaError::Embedded {
        file: embedded::S3_BUCKETS.into(),
        reason,
    }
}

/// Parses the embedded bucket definitions.
pub fn definitions() -> Result<Vec<BucketDef>, SchemaError> {
    let text = embedded::text(embedded::S3_BUCKETS)?;
    let file: BucketsFile = toml::from_str(&text).map_err(|e| bad_file(e.to_string()))?;
    Ok(file.bucket)
}

/// A lifecycle rule reduced to what strata sets, for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub prefix: String,
    pub noncurrent_days: Option<i32>,
    pub abort_days: Option<i32>,
    pub expired_delete_marker: bool,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)?;
        let mut parts = Vec::new();
        if let Some(d) = self.noncurrent_days {
            parts.push(format!("noncurrent versions expire after {d} d"));
        }
        if let Some(d) = self.abort_days {
            parts.push(format!("incomplete uploads aborted after {d} d"));
        }
        if self.expired_delete_marker {
            parts.push("expired delete markers removed".into());
        }
        if !self.enabled {
            parts.push("disabled".into());
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

impl Rule {
    fn from_sdk(rule: &LifecycleRule) -> Self {
        // Servers answer with a Filter; old ones may use the deprecated
        // top-level Prefix.
        #[allow(deprecated)]
        let legacy = rule.prefix();
        let prefix = rule
            .filter()
            .and_then(LifecycleRuleFilter::prefix)
            .or(legacy)
            .unwrap_or_default()
            .to_string();
        Rule {
            id: rule.id().unwrap_or_default().to_string(),
            enabled: *rule.status() == ExpirationStatus::Enabled,
            prefix,
            noncurrent_days: rule
                .noncurrent_version_expiration()
                .and_then(NoncurrentVersionExpiration::noncurrent_days),
            abort_days: rule
                .abort_incomplete_multipart_upload()
                .and_then(AbortIncompleteMultipartUpload::days_after_initiation),
            expired_delete_marker: rule
                .expiration()
                .and_then(LifecycleExpiration::expired_object_delete_marker)
                .unwrap_or(false),
        }
    }

    fn to_sdk(&self) -> Result<LifecycleRule, SchemaError> {
        let mut builder = LifecycleRule::builder()
            .id(&self.id)
            .status(if self.enabled {
                ExpirationStatus::Enabled
            } else {
                ExpirationStatus::Disabled
            })
            .filter(LifecycleRuleFilter::builder().prefix(&self.prefix).build());
        if let Some(days) = self.noncurrent_days {
            builder = builder.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(days)
                    .build(),
            );
        }
        if let Some(days) = self.abort_days {
            builder = builder.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(days)
                    .build(),
            );
        }
        if self.expired_delete_marker {
            builder = builder.expiration(
                LifecycleExpiration::builder()
                    .expired_object_delete_marker(true)
                    .build(),
            );
        }
        builder
            .build()
            .map_err(|e| bad_file(format!("lifecycle rule {}: {e}", self.id)))
    }
}

/// The settings a bucket should have, with configuration applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub purpose: String,
    pub bucket: String,
    pub versioning: bool,
    pub object_lock: bool,
    pub retention: Option<(RetentionMode, i32)>,
    pub rules: Vec<Rule>,
}

pub fn desired(defs: &[BucketDef], config: &Config) -> Result<Vec<Desired>, SchemaError> {
    defs.iter()
        .map(|def| {
            let retention = def
                .default_retention
                .as_ref()
                .map(|r| {
                    Ok((
                        r.mode.resolve(config, embedded::S3_BUCKETS)?,
                        resolve_i32(&r.years, config)?,
                    ))
                })
                .transpose()?;
            let mut rules = def
                .lifecycle
                .iter()
                .map(|r| {
                    Ok(Rule {
                        id: r.id.clone(),
                        enabled: true,
                        prefix: String::new(),
                        noncurrent_days: r
                            .noncurrent_version_expiration_days
                            .as_ref()
                            .map(|v| resolve_i32(v, config))
                            .transpose()?,
                        abort_days: r
                            .abort_incomplete_multipart_upload_days
                            .as_ref()
                            .map(|v| resolve_i32(v, config))
                            .transpose()?,
                        expired_delete_marker: r.expired_object_delete_marker,
                    })
                })
                .collect::<Result<Vec<_>, SchemaError>>()?;
            rules.sort();
            if def.object_lock && !def.versioning {
                return Err(bad_file(format!(
                    "bucket {}: Object Lock needs versioning",
                    def.purpose
                )));
            }
            Ok(Desired {
                purpose: def.purpose.clone(),
                bucket: config.s3.bucket_name(&def.purpose),
                versioning: def.versioning,
                object_lock: def.object_lock,
                retention,
                rules,
            })
        })
        .collect()
}

fn mode_name(mode: RetentionMode) -> &'static str {
    match mode {
        RetentionMode::Compliance => "COMPLIANCE",
        RetentionMode::Governance => "GOVERNANCE",
    }
}

/// One change to a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        bucket: String,
        object_lock: bool,
    },
    EnableVersioning {
        bucket: String,
    },
    SetLifecycle {
        bucket: String,
        from: Vec<Rule>,
        to: Vec<Rule>,
    },
    SetRetention {
        bucket: String,
        from: Option<String>,
        mode: RetentionMode,
        years: i32,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |rules: &[Rule]| {
            if rules.is_empty() {
                "none".to_string()
            } else {
                rules
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        match self {
            Action::Create {
                bucket,
                object_lock: true,
            } => write!(f, "create bucket {bucket} with Object Lock"),
            Action::Create { bucket, .. } => write!(f, "create bucket {bucket}"),
            Action::EnableVersioning { bucket } => write!(f, "enable versioning on {bucket}"),
            Action::SetLifecycle { bucket, from, to } => write!(
                f,
                "set lifecycle rules of {bucket}: {} (now: {})",
                list(to),
                list(from)
            ),
            Action::SetRetention {
                bucket,
                from,
                mode,
                years,
            } => write!(
                f,
                "set default retention of {bucket} to {} {years} years (now: {})",
                mode_name(*mode),
                from.as_deref().unwrap_or("none")
            ),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct S3Plan {
    pub actions: Vec<Action>,
}

impl S3Plan {
    pub fn steps(&self) -> Vec<String> {
        self.actions.iter().map(ToString::to_string).collect()
    }
}

fn s3_error(step: String, error: ProbeError) -> SchemaError {
    SchemaError::Store {
        store: "s3",
        step,
        transient: matches!(error, ProbeError::Unreachable { .. }),
        reason: error.to_string(),
    }
}

/// What the bucket looks like now; `None` when it does not exist.
struct Current {
    versioning: bool,
    object_lock: bool,
    retention: ReadRetention,
    rules: Vec<Rule>,
}

async fn current(s3: &S3, bucket: &str) -> Result<Option<Current>, SchemaError> {
    let client = s3.client();
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => {
            return Err(s3_error(
                format!("looking up bucket {bucket}"),
                s3.classify("bucket", e),
            ));
        }
    }
    // The three reads are independent: one round trip instead of three.
    let (versioning, rules, lock) = tokio::join!(
        read_versioning(s3, bucket),
        read_rules(s3, bucket),
        read_object_lock(s3, bucket)
    );
    let (versioning, rules, (object_lock, retention)) = (versioning?, rules?, lock?);
    Ok(Some(Current {
        versioning,
        object_lock,
        retention,
        rules,
    }))
}

async fn read_versioning(s3: &S3, bucket: &str) -> Result<bool, SchemaError> {
    Ok(s3
        .client()
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| {
            s3_error(
                format!("reading versioning of {bucket}"),
                s3.classify("versioning", e),
            )
        })?
        .status()
        == Some(&BucketVersioningStatus::Enabled))
}

async fn read_rules(s3: &S3, bucket: &str) -> Result<Vec<Rule>, SchemaError> {
    match s3
        .client()
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => {
            let mut rules: Vec<Rule> = out.rules().iter().map(Rule::from_sdk).collect();
            rules.sort();
            Ok(rules)
        }
        Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
        Err(e) => Err(s3_error(
            format!("reading lifecycle rules of {bucket}"),
            s3.classify("lifecycle", e),
        )),
    }
}

/// Default retention as read back: mode, years, days.
type ReadRetention = Option<(String, Option<i32>, Option<i32>)>;

async fn read_object_lock(s3: &S3, bucket: &str) -> Result<(bool, ReadRetention), SchemaError> {
    match s3
        .client()
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => {
            let config = out.object_lock_configuration();
            let enabled = config.and_then(ObjectLockConfiguration::object_lock_enabled)
                == Some(&ObjectLockEnabled::Enabled);
            let retention = config
                .and_then(ObjectLockConfiguration::rule)
                .and_then(ObjectLockRule::default_retention)
                .map(|r| {
                    (
                        r.mode().map(|m| m.as_str().to_string()).unwrap_or_default(),
                        r.years(),
                        r.days(),
                    )
                });
            Ok((enabled, retention))
        }
        Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok((false, None)),
        Err(e) => Err(s3_error(
            format!("reading Object Lock of {bucket}"),
            s3.classify("object_lock", e),
        )),
    }
}

fn describe_retention(current: &(String, Option<i32>, Option<i32>)) -> String {
    match current {
        (mode, Some(years), _) => format!("{mode} {years} years"),
        (mode, None, Some(days)) => format!("{mode} {days} days"),
        (mode, None, None) => mode.clone(),
    }
}

/// The actions that bring one bucket from `current` to `want` (pure).
fn diff(want: &Desired, current: Option<&Current>) -> Result<Vec<Action>, SchemaError> {
    let mut actions = Vec::new();
    let bucket = want.bucket.clone();
    let Some(current) = current else {
        actions.push(Action::Create {
            bucket: bucket.clone(),
            object_lock: want.object_lock,
        });
        // Object Lock turns versioning on by itself.
        if want.versioning && !want.object_lock {
            actions.push(Action::EnableVersioning {
                bucket: bucket.clone(),
            });
        }
        if let Some((mode, years)) = want.retention {
            actions.push(Action::SetRetention {
                bucket: bucket.clone(),
                from: None,
                mode,
                years,
            });
        }
        if !want.rules.is_empty() {
            actions.push(Action::SetLifecycle {
                bucket,
                from: Vec::new(),
                to: want.rules.clone(),
            });
        }
        return Ok(actions);
    };
    if want.object_lock && !current.object_lock {
        return Err(SchemaError::Refused {
            store: "s3",
            reason: object_lock_missing(&bucket),
        });
    }
    if want.versioning && !current.versioning {
        actions.push(Action::EnableVersioning {
            bucket: bucket.clone(),
        });
    }
    if let Some((mode, years)) = want.retention {
        let same = current
            .retention
            .as_ref()
            .is_some_and(|(m, y, d)| m == mode_name(mode) && *y == Some(years) && d.is_none());
        if !same {
            actions.push(Action::SetRetention {
                bucket: bucket.clone(),
                from: current.retention.as_ref().map(describe_retention),
                mode,
                years,
            });
        }
    }
    if want.rules != current.rules {
        actions.push(Action::SetLifecycle {
            bucket,
            from: current.rules.clone(),
            to: want.rules.clone(),
        });
    }
    Ok(actions)
}

/// Compares the buckets with the definitions; changes nothing.
pub async fn plan(s3: &S3, wanted: &[Desired]) -> Result<S3Plan, SchemaError> {
    // Buckets are read concurrently; the actions keep the definitions' order.
    let mut reads = tokio::task::JoinSet::new();
    for (index, want) in wanted.iter().enumerate() {
        let (s3, bucket) = (s3.clone(), want.bucket.clone());
        reads.spawn(async move { (index, current(&s3, &bucket).await) });
    }
    let mut found = Vec::with_capacity(wanted.len());
    while let Some(joined) = reads.join_next().await {
        found.push(joined.map_err(|e| SchemaError::Refused {
            store: "s3",
            reason: format!("reading the buckets failed: {e}"),
        })?);
    }
    found.sort_by_key(|(index, _)| *index);
    let mut plan = S3Plan::default();
    for ((_, now), want) in found.into_iter().zip(wanted) {
        plan.actions.extend(diff(want, now?.as_ref())?);
    }
    Ok(plan)
}

/// Applies a plan computed under the schema lock.
pub async fn apply(
    s3: &S3,
    plan: &S3Plan,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<String>, SchemaError> {
    let client = s3.client();
    let mut done = Vec::new();
    for action in &plan.actions {
        let line = format!("s3: {action}");
        progress(&line);
        match action {
            Action::Create {
                bucket,
                object_lock,
            } => {
                let result = client
                    .create_bucket()
                    .bucket(bucket)
                    .set_create_bucket_configuration(s3.create_bucket_configuration())
                    .object_lock_enabled_for_bucket(*object_lock)
                    .send()
                    .await;
                match result {
                    Ok(_) => {}
                    Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {
                        // Created meanwhile: make sure it is what strata needs.
                        if *object_lock
                            && !s3.object_lock_enabled(bucket).await.map_err(|e| {
                                s3_error(format!("reading Object Lock of {bucket}"), e)
                            })?
                        {
                            return Err(SchemaError::Refused {
                                store: "s3",
                                reason: object_lock_missing(bucket),
                            });
                        }
                    }
                    Err(e) => {
                        return Err(s3_error(
                            format!("creating bucket {bucket}"),
                            s3.classify("bucket", e),
                        ));
                    }
                }
            }
            Action::EnableVersioning { bucket } => {
                client
                    .put_bucket_versioning()
                    .bucket(bucket)
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        s3_error(
                            format!("enabling versioning on {bucket}"),
                            s3.classify("versioning", e),
                        )
                    })?;
            }
            Action::SetLifecycle { bucket, to, .. } => {
                let rules = to.iter().map(Rule::to_sdk).collect::<Result<Vec<_>, _>>()?;
                let configuration = BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules))
                    .build()
                    .map_err(|e| bad_file(format!("lifecycle of {bucket}: {e}")))?;
                client
                    .put_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .lifecycle_configuration(configuration)
                    .send()
                    .await
                    .map_err(|e| {
                        s3_error(
                            format!("setting lifecycle rules of {bucket}"),
                            s3.classify("lifecycle", e),
                        )
                    })?;
            }
            Action::SetRetention {
                bucket,
                mode,
                years,
                ..
            } => {
                let mode = match mode {
                    RetentionMode::Compliance => ObjectLockRetentionMode::Compliance,
                    RetentionMode::Governance => ObjectLockRetentionMode::Governance,
                };
                let configuration = ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(
                                DefaultRetention::builder().mode(mode).years(*years).build(),
                            )
                            .build(),
                    )
                    .build();
                client
                    .put_object_lock_configuration()
                    .bucket(bucket)
                    .object_lock_configuration(configuration)
                    .send()
                    .await
                    .map_err(|e| {
                        s3_error(
                            format!("setting the default retention of {bucket}"),
                            s3.classify("object_lock", e),
                        )
                    })?;
            }
        }
        done.push(line);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(config: &Config) -> Vec<Desired> {
        desired(&definitions().expect("embedded buckets parse"), config).expect("resolves")
    }

    fn as_current(want: &Desired) -> Current {
        Current {
            versioning: want.versioning,
            object_lock: want.object_lock,
            retention: want
                .retention
                .map(|(m, y)| (mode_name(m).to_string(), Some(y), None)),
            rules: want.rules.clone(),
        }
    }

    #[test]
    fn the_spec_buckets_are_defined() {
        let config = Config::default();
        let all = wanted(&config);
        let content = all
            .iter()
            .find(|b| b.purpose == "content")
            .expect("content");
        assert!(content.versioning && !content.object_lock);
        assert!(content.rules.iter().any(|r| r.noncurrent_days == Some(30)));
        assert!(content.rules.iter().any(|r| r.abort_days == Some(1)));
        assert!(content.rules.iter().any(|r| r.expired_delete_marker));
        let contracts = all
            .iter()
            .find(|b| b.purpose == "contracts")
            .expect("contracts");
        assert!(contracts.object_lock);
        assert_eq!(contracts.retention, Some((RetentionMode::Compliance, 7)));
        assert_eq!(contracts.bucket, "strata-contracts");
        // The mode comes from its configuration key like the numbers do.
        let mut governed = config.clone();
        governed.s3.contracts_retention_mode = RetentionMode::Governance;
        let contracts = wanted(&governed)
            .into_iter()
            .find(|b| b.purpose == "contracts")
            .expect("contracts");
        assert_eq!(contracts.retention, Some((RetentionMode::Governance, 7)));
    }

    #[test]
    fn a_missing_bucket_is_created_with_everything() {
        let config = Config::default();
        for want in wanted(&config) {
            let actions = diff(&want, None).expect("diff");
            assert!(
                matches!(&actions[0], Action::Create { object_lock, .. } if *object_lock == want.object_lock)
            );
            assert!(
                actions
                    .iter()
                    .any(|a| matches!(a, Action::SetLifecycle { .. }))
            );
        }
    }

    #[test]
    fn a_matching_bucket_plans_nothing() {
        let config = Config::default();
        for want in wanted(&config) {
            assert!(
                diff(&want, Some(&as_current(&want)))
                    .expect("diff")
                    .is_empty()
            );
        }
    }

    #[test]
    fn config_changes_show_up_as_changes() {
        let config = Config::default();
        let before = wanted(&config);
        let mut changed = config.clone();
        changed.s3.noncurrent_version_expiry_days = 60;
        changed.s3.contracts_retention_years = 10;
        for (old, new) in before.iter().zip(wanted(&changed)) {
            let actions = diff(&new, Some(&as_current(old))).expect("diff");
            assert_eq!(actions.len(), 1, "{actions:?}");
            let text = actions[0].to_string();
            assert!(text.contains("60 d") || text.contains("10 years"), "{text}");
        }
    }

    #[test]
    fn an_existing_bucket_without_object_lock_is_refused() {
        let config = Config::default();
        let contracts = wanted(&config)
            .into_iter()
            .find(|b| b.object_lock)
            .expect("contracts");
        let mut current = as_current(&contracts);
        current.object_lock = false;
        current.retention = None;
        let err = diff(&contracts, Some(&current)).expect_err("refused");
        assert!(
            err.to_string()
                .contains("only be enabled when a bucket is created"),
            "{err}"
        );
    }
}
