//! S3 (MinIO in production, Ceph radosgw in tests): a client built from the
//! config, with the SDK's own retries off because boot has its own.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, ObjectLockEnabled};

use tokio::sync::RwLock;

use super::{Failure, ProbeError, ProbeReport};
use crate::config::S3Config;

/// The region that takes no LocationConstraint on CreateBucket.
const DEFAULT_REGION: &str = "us-east-1";

#[derive(Clone)]
pub struct S3 {
    client: Client,
    address: String,
    region: String,
    bucket_prefix: String,
    contracts_bucket: String,
    has_credentials: bool,
    /// Shared by work that must not be cut half-way (the Object Lock probe
    /// creates a bucket it must delete); [`S3::close`] waits for it.
    unfinished: Arc<RwLock<()>>,
}

impl S3 {
    pub fn new(config: &S3Config) -> Self {
        let timeout = Duration::from_secs(config.connect_timeout_secs);
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(config.endpoint.as_str().trim_end_matches('/'))
            .region(Region::new(config.region.clone()))
            .force_path_style(config.path_style)
            // MinIO and Ceph predate the SDK's default CRC trailers; checksums
            // strata needs are computed and verified by strata itself.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_attempt_timeout(timeout.saturating_mul(6))
                    .build(),
            );
        let has_credentials = !config.access_key_id.is_empty();
        if has_credentials {
            builder = builder.credentials_provider(Credentials::new(
                config.access_key_id.clone(),
                config.secret_access_key.expose().to_string(),
                None,
                None,
                "strata-config",
            ));
        }
        let address = match (
            config.endpoint.host_str(),
            config.endpoint.port_or_known_default(),
        ) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => config.endpoint.to_string(),
        };
        Self {
            client: Client::from_conf(builder.build()),
            address,
            region: config.region.clone(),
            bucket_prefix: config.bucket_prefix.clone(),
            contracts_bucket: config.bucket_name("contracts"),
            has_credentials,
            unfinished: Arc::default(),
        }
    }

    pub fn address(&self) -> String {
        self.address.clone()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// CreateBucket's configuration for the configured region.
    pub fn create_bucket_configuration(&self) -> Option<CreateBucketConfiguration> {
        (self.region != DEFAULT_REGION).then(|| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                .build()
        })
    }

    pub async fn probe(&self) -> Result<ProbeReport, ProbeError> {
        if !self.has_credentials {
            return Err(ProbeError::Unfit {
                check: "credentials",
                reason: "s3.access_key_id and s3.secret_access_key are not set".into(),
            });
        }
        let mut report = ProbeReport::new(self.address());
        let buckets = self
            .client
            .list_buckets()
            .send()
            .await
            .map_err(|e| self.classify("reachable", e))?;
        report.passed(
            "reachable",
            format!(
                "{} answers signed requests ({} buckets visible)",
                self.address,
                buckets.buckets().len()
            ),
        );
        let (detail, leftover) = self.probe_object_lock().await?;
        report.passed("object_lock", detail);
        report.warnings.extend(leftover);
        Ok(report)
    }

    /// Object Lock is probed, not assumed: the contracts bucket's own
    /// configuration says it when the bucket exists (nothing is written);
    /// only when it does not is a throwaway bucket created with it. The
    /// second value warns about a throwaway bucket that could not be removed.
    async fn probe_object_lock(&self) -> Result<(String, Option<String>), ProbeError> {
        let contracts = &self.contracts_bucket;
        match self.client.head_bucket().bucket(contracts).send().await {
            Ok(_) => {
                let enabled = self.object_lock_enabled(contracts).await?;
                return if enabled {
                    Ok((format!("bucket {contracts} has Object Lock"), None))
                } else {
                    Err(ProbeError::Unfit {
                        check: "object_lock",
                        reason: object_lock_missing(contracts),
                    })
                };
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(self.classify("object_lock", e)),
        }

        // On a task of its own: a boot stopped here (SIGTERM) still deletes
        // the bucket, and `close` waits for that.
        let unfinished = self.unfinished.clone().read_owned().await;
        let s3 = self.clone();
        let probe = tokio::spawn(async move {
            let _unfinished = unfinished;
            s3.probe_with_bucket().await
        });
        probe.await.unwrap_or_else(|e| {
            Err(ProbeError::Unfit {
                check: "object_lock",
                reason: format!("the Object Lock probe failed: {e}"),
            })
        })
    }

    /// Waits (unbounded: bound it) until no probe bucket is left to delete.
    pub async fn close(&self) {
        let _all_done = self.unfinished.write().await;
    }

    /// Creates a throwaway bucket with Object Lock, reads it back, deletes it.
    async fn probe_with_bucket(&self) -> Result<(String, Option<String>), ProbeError> {
        let probe_bucket = probe_bucket_name(&self.bucket_prefix);
        let created = self
            .client
            .create_bucket()
            .bucket(&probe_bucket)
            .set_create_bucket_configuration(self.create_bucket_configuration())
            .object_lock_enabled_for_bucket(true)
            .send()
            .await;
        if let Err(e) = created {
            return Err(match self.classify("object_lock", e) {
                unreachable @ ProbeError::Unreachable { .. } => unreachable,
                ProbeError::Unfit { reason, .. } => ProbeError::Unfit {
                    check: "object_lock",
                    reason: format!("cannot create a bucket with Object Lock: {reason}"),
                },
            });
        }
        let enabled = self.object_lock_enabled(&probe_bucket).await;
        let deleted = self
            .client
            .delete_bucket()
            .bucket(&probe_bucket)
            .send()
            .await;
        let leftover = deleted.err().map(|e| {
            format!(
                "could not remove the Object Lock probe bucket {probe_bucket} ({}); it is empty \
                 and may be deleted by hand",
                concise(&e)
            )
        });
        if let Some(warning) = &leftover {
            tracing::warn!(bucket = %probe_bucket, "{warning}");
        }
        if enabled? {
            Ok((
                "no contracts bucket yet: the endpoint creates buckets with Object Lock".into(),
                leftover,
            ))
        } else {
            Err(ProbeError::Unfit {
                check: "object_lock",
                reason:
                    "the endpoint accepted a bucket with Object Lock but does not report it enabled"
                        .into(),
            })
        }
    }

    pub async fn object_lock_enabled(&self, bucket: &str) -> Result<bool, ProbeError> {
        match self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                == Some(&ObjectLockEnabled::Enabled)),
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
            Err(e) => Err(self.classify("object_lock", e)),
        }
    }

    pub async fn ping(&self) -> Result<(), ProbeError> {
        self.client
            .list_buckets()
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify("reachable", e))
    }

    pub fn classify<E>(&self, check: &'static str, error: SdkError<E>) -> ProbeError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let transient = Failure::of_s3(&error).is_transient();
        match &error {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ProbeError::Unreachable {
                check,
                address: self.address.clone(),
                cause: concise(&error),
            },
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = error.code().unwrap_or("unknown");
                if transient {
                    ProbeError::Unreachable {
                        check,
                        address: self.address.clone(),
                        cause: format!("HTTP {status} {code}"),
                    }
                } else {
                    ProbeError::Unfit {
                        check,
                        reason: format!(
                            "{}: HTTP {status} {code}: {}",
                            self.address,
                            error.message().unwrap_or("no message")
                        ),
                    }
                }
            }
            _ => ProbeError::Unfit {
                check,
                reason: format!("{}: {}", self.address, concise(&error)),
            },
        }
    }
}

/// Why a bucket that exists without Object Lock cannot become the
/// contracts bucket (said by the probe and by the bucket reconciler).
pub fn object_lock_missing(bucket: &str) -> String {
    format!(
        "bucket {bucket} exists without Object Lock. Object Lock can only be enabled when a \
         bucket is created: move its objects elsewhere, delete the bucket and let strata create \
         it, or choose another s3.bucket_prefix"
    )
}

/// HTTP 404 from the service (e.g. HeadBucket of a missing bucket).
pub fn is_not_found<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    match error {
        SdkError::ServiceError(service) => service.raw().status().as_u16() == 404,
        _ => false,
    }
}

/// The SDK's full error chain, on one line.
fn concise<E: std::error::Error + 'static>(error: &SdkError<E>) -> String {
    DisplayErrorContext(error).to_string().replace('\n', " ")
}

/// A unique, valid bucket name for one Object Lock probe.
fn probe_bucket_name(prefix: &str) -> String {
    // The ULID's last 16 characters are its 80 random bits: they must
    // survive whole, so a long prefix is shortened instead.
    let ulid = ulid::Ulid::generate().to_string().to_ascii_lowercase();
    let suffix = format!("-lockprobe-{}", &ulid[10..]);
    let room = 63 - suffix.len();
    let mut head: String = prefix.chars().take(room).collect();
    // A shortened prefix must still end in a letter or digit.
    while head.ends_with(['-', '.']) {
        head.pop();
    }
    format!("{head}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_bucket_names_are_valid_and_unique() {
        let a = probe_bucket_name("strata");
        let b = probe_bucket_name("strata");
        assert_ne!(a, b);
        crate::config::validate_bucket_name(&a).expect("valid name");
        // Long prefixes (up to the 53 that `{prefix}-contracts` allows)
        // keep the random part whole, so concurrent probes never collide.
        for length in 40..=53 {
            let prefix = format!("{}-x", "p".repeat(length - 2));
            let (a, b) = (probe_bucket_name(&prefix), probe_bucket_name(&prefix));
            assert_ne!(a, b, "{a}");
            assert!(a.len() <= 63, "{a}");
            crate::config::validate_bucket_name(&a).expect("valid long name");
        }
        let dashed = probe_bucket_name(&format!("{}-", "q".repeat(36)));
        crate::config::validate_bucket_name(&dashed).expect("no dash before the stem");
    }
}
