//! S3 buckets: created with versioning, lifecycle rules and Object Lock
//! default retention (read back with GetBucketVersioning /
//! GetBucketLifecycleConfiguration / GetObjectLockConfiguration); config
//! changes reconciled; a contracts bucket without Object Lock stops the
//! boot; a COMPLIANCE-locked version cannot be deleted.

mod common;

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectLockEnabled, ObjectLockRetentionMode};
use strata::stores::Stores;

async fn rules(client: &Client, bucket: &str) -> Vec<(String, Option<i32>, Option<i32>, bool)> {
    let out = client
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .expect("lifecycle");
    let mut rules: Vec<_> = out
        .rules()
        .iter()
        .map(|r| {
            (
                r.id().unwrap_or_default().to_string(),
                r.noncurrent_version_expiration()
                    .and_then(|n| n.noncurrent_days()),
                r.abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation()),
                r.expiration()
                    .and_then(|e| e.expired_object_delete_marker())
                    .unwrap_or(false),
            )
        })
        .collect();
    rules.sort();
    rules
}

async fn versioning(client: &Client, bucket: &str) -> Option<BucketVersioningStatus> {
    client
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .expect("versioning")
        .status()
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_get_versioning_lifecycle_and_retention_and_follow_config() {
    let fixture = common::Fixture::new("buckets").await;
    let (code, out, err) = common::run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let config = fixture.config();
    let stores = Stores::new(&config).await.expect("stores");
    let client = stores.s3.client();
    let content = config.s3.bucket_name("content");
    let contracts = config.s3.bucket_name("contracts");

    assert_eq!(
        versioning(client, &content).await,
        Some(BucketVersioningStatus::Enabled)
    );
    assert_eq!(
        rules(client, &content).await,
        vec![
            (
                "abort-incomplete-multipart-uploads".into(),
                None,
                Some(1),
                false
            ),
            ("expire-noncurrent-versions".into(), Some(30), None, false),
            ("remove-expired-delete-markers".into(), None, None, true),
        ]
    );
    assert_eq!(
        versioning(client, &contracts).await,
        Some(BucketVersioningStatus::Enabled)
    );
    let lock = client
        .get_object_lock_configuration()
        .bucket(&contracts)
        .send()
        .await
        .expect("object lock");
    let lock = lock.object_lock_configuration().expect("configured");
    assert_eq!(
        lock.object_lock_enabled(),
        Some(&ObjectLockEnabled::Enabled)
    );
    let retention = lock
        .rule()
        .and_then(|r| r.default_retention())
        .expect("default retention");
    assert_eq!(retention.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert_eq!(retention.years(), Some(7));

    // Up to date now.
    let plan = strata::schema::plan(&stores, &config).await.expect("plan");
    assert!(plan.s3.is_empty(), "{:?}", plan.s3);

    // New values in the configuration are applied by the next run.
    let changed = |command: &mut std::process::Command| {
        command
            .env("STRATA_S3__NONCURRENT_VERSION_EXPIRY_DAYS", "45")
            .env("STRATA_S3__CONTRACTS_RETENTION_YEARS", "10");
    };
    let mut plan = fixture.strata(&["migrate", "--plan"]);
    changed(&mut plan);
    let (code, out, _) = common::run(plan);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("45 d") && out.contains("COMPLIANCE 10 years"),
        "{out}"
    );
    let mut migrate = fixture.strata(&["migrate"]);
    changed(&mut migrate);
    let (code, out, err) = common::run(migrate);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        rules(client, &content)
            .await
            .iter()
            .any(|r| r.1 == Some(45))
    );
    let years = client
        .get_object_lock_configuration()
        .bucket(&contracts)
        .send()
        .await
        .expect("object lock")
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
        .and_then(|d| d.years());
    assert_eq!(years, Some(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contracts_bucket_without_object_lock_stops_the_boot() {
    let fixture = common::Fixture::new("nolock").await;
    let config = fixture.config();
    let stores = Stores::new(&config).await.expect("stores");
    let contracts = config.s3.bucket_name("contracts");
    stores
        .s3
        .client()
        .create_bucket()
        .bucket(&contracts)
        .set_create_bucket_configuration(stores.s3.create_bucket_configuration())
        .send()
        .await
        .expect("pre-create a bucket without Object Lock");
    const EXPLANATION: &str = "Object Lock can only be enabled when a bucket is created";

    let mut serve = common::serve::Served::start(
        fixture.strata(&["serve"]),
        fixture.admin_addr(),
        fixture.api_addr(),
    );
    let code = tokio::task::spawn_blocking(move || {
        let status = serve.child.wait().expect("wait for serve");
        (status.code(), serve.stderr())
    });
    let (code, stderr) = tokio::time::timeout(Duration::from_secs(60), code)
        .await
        .expect("serve exits")
        .expect("join");
    assert_eq!(code, Some(4), "unfit dependency\n{stderr}");
    assert!(
        stderr.contains(EXPLANATION) && stderr.contains(&contracts),
        "{stderr}"
    );

    // The bucket reconciler, reached without the probe, says the same.
    let refused = strata::schema::plan(&stores, &config)
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains(EXPLANATION), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compliance_locked_contract_version_cannot_be_deleted() {
    let fixture = common::Fixture::new("worm").await;
    let (code, out, err) = common::run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let config = fixture.config();
    let stores = Stores::new(&config).await.expect("stores");
    let client = stores.s3.client();
    let bucket = config.s3.bucket_name("contracts");
    let key = format!(
        "{}/contracts/{}.pdf",
        uuid::Uuid::new_v4(),
        ulid::Ulid::generate()
    );

    let put = client
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(ByteStream::from_static(b"%PDF-1.7 signed"))
        .send()
        .await
        .expect("put a contract");
    let version = put.version_id().expect("a version id").to_string();
    let retention = client
        .get_object_retention()
        .bucket(&bucket)
        .key(&key)
        .version_id(&version)
        .send()
        .await
        .expect("retention");
    let retention = retention.retention().expect("default retention applied");
    assert_eq!(retention.mode(), Some(&ObjectLockRetentionMode::Compliance));

    let deleted = client
        .delete_object()
        .bucket(&bucket)
        .key(&key)
        .version_id(&version)
        .send()
        .await;
    // Refused by the lock itself: AccessDenied, not some other failure.
    let refusal = |result: Result<_, aws_sdk_s3::error::SdkError<_>>| {
        let error = result.expect_err("a COMPLIANCE-locked version cannot be deleted");
        (
            error.code().map(str::to_string),
            error.raw_response().map(|r| r.status().as_u16()),
        )
    };
    assert_eq!(
        refusal(deleted),
        (Some("AccessDenied".to_string()), Some(403)),
        "a COMPLIANCE-locked version cannot be deleted"
    );
    let bypass = client
        .delete_object()
        .bucket(&bucket)
        .key(&key)
        .version_id(&version)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert_eq!(
        refusal(bypass),
        (Some("AccessDenied".to_string()), Some(403)),
        "not even with the governance bypass"
    );
    client
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .version_id(&version)
        .send()
        .await
        .expect("the version is still there");
}
