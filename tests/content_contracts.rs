//! Contracts are WORM: the accepted PDF goes into the Object Lock bucket,
//! the contract records its acceptance and becomes immutable, and S3
//! itself (Ceph radosgw here) refuses to delete the locked version, to
//! shorten its retention (even with a governance bypass) and to delete the
//! bucket; a new PUT under the key only adds a version, and strata keeps
//! serving exactly the accepted one. A crash after the upload leaves the
//! contract pending and the PDF an orphan, never a dangling pointer.

mod common;

use base64::Engine;
use chrono::{Duration as Days, Utc};
use common::api::{Api, Reply, assert_problem};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;
use strata::content::Content;
use strata::content::reconcile;

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn query() -> String {
    "acceptedByName=Ada%20Lovelace&acceptedByEmail=ada%40example.com\
     &acceptedIp=203.0.113.7&acceptedUserAgent=Mozilla%2F5.0"
        .to_string()
}

async fn accept(api: &Api, path: &str, token: &str, query: &str, content_type: &str) -> Reply {
    let response = api
        .client
        .post(api.url(&format!("{path}/accept?{query}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(PDF.to_vec())
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.expect("body");
            Reply {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
                headers,
                text,
            }
        }
        Err(e) => Reply {
            status: 0,
            headers: Default::default(),
            body: Value::Null,
            text: e.to_string(),
        },
    }
}

/// The HTTP status and S3 error code of a refusal (a refusal by the
/// server, not a network failure).
fn refusal<T: std::fmt::Debug, E>(
    result: Result<T, aws_sdk_s3::error::SdkError<E>>,
) -> (u16, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    match result {
        Err(aws_sdk_s3::error::SdkError::ServiceError(service)) => (
            service.raw().status().as_u16(),
            service.err().code().unwrap_or_default().to_string(),
        ),
        other => panic!("expected S3 to refuse, got {other:?}"),
    }
}

async fn pending_contract(api: &Api, tenant: &str, token: &str) -> String {
    let created = api
        .post(
            &format!("/v1/tenants/{tenant}/contracts"),
            token,
            json!({"template": "msa", "templateVersion": "2026-1"}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    created.body["ref"].as_str().expect("ref").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_contract_is_worm_in_s3_and_immutable_in_postgres() {
    let api = Api::start("content-contract", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("globex").await;
    let other_token = api.token(Some(&other)).await;
    let contract = pending_contract(&api, &tenant, &token).await;
    let path = format!("/v1/tenants/{tenant}/contracts/{contract}");

    // Refused before anything is stored.
    let bad_email = query().replace("ada%40example.com", "nobody");
    assert_problem(
        &accept(&api, &path, &token, &bad_email, "application/pdf").await,
        422,
        "validation_failed",
    );
    let bad_ip = query().replace("203.0.113.7", "not-an-ip");
    let refused = accept(&api, &path, &token, &bad_ip, "application/pdf").await;
    assert_problem(&refused, 422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "acceptedIp");
    assert_problem(
        &accept(&api, &path, &token, &query(), "text/plain").await,
        415,
        "unsupported_media_type",
    );
    let foreign = accept(
        &api,
        &format!("/v1/tenants/{other}/contracts/{contract}"),
        &other_token,
        &query(),
        "application/pdf",
    )
    .await;
    assert_problem(&foreign, 404, "not_found");

    // Accepted: the whole acceptance record, retention from the bucket.
    let accepted = accept(&api, &path, &token, &query(), "application/pdf").await;
    assert_eq!(accepted.status, 200, "{accepted:?}");
    let body = &accepted.body;
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["acceptedByName"], "Ada Lovelace");
    assert_eq!(body["acceptedByEmail"], "ada@example.com");
    assert_eq!(body["acceptedIp"], "203.0.113.7");
    assert_eq!(body["acceptedUserAgent"], "Mozilla/5.0");
    assert_eq!(body["pdfSha256"], sha256(PDF));
    assert!(body["acceptedAt"].is_string());
    assert!(body.get("pdfS3Key").is_none(), "keys stay inside strata");
    let version = body["pdfVersionId"].as_str().expect("version").to_string();
    // The acceptance is a transition in the contract's history.
    let history = api.history(&path, &token).await;
    let actions: Vec<&str> = history.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["transition", "create"], "{history:?}");
    let diff = &history[0].1;
    assert_eq!(diff["before"]["status"], "pending", "{diff}");
    assert_eq!(diff["after"]["status"], "accepted", "{diff}");
    assert_eq!(diff["after"]["pdfSha256"], sha256(PDF), "{diff}");
    let pdf_ref = body["pdfRef"].as_str().expect("pdfRef").to_string();
    let retain_until: chrono::DateTime<Utc> = body["retainUntil"]
        .as_str()
        .expect("retainUntil")
        .parse()
        .expect("RFC 3339");
    // The fixture keeps the default: 7 years of COMPLIANCE retention.
    assert!(
        retain_until > Utc::now() + Days::days(6 * 365),
        "{retain_until}"
    );

    let read = api
        .client
        .get(api.url(&format!("{path}/pdf")))
        .bearer_auth(&token);
    let response = read.send().await.expect("pdf");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(response.bytes().await.expect("bytes").as_ref(), PDF);

    // Immutable in PostgreSQL: no change, no delete, no second acceptance.
    let patched = api
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(&json!({"template": "changed"})),
            &[("if-match", "*")],
        )
        .await;
    assert_problem(&patched, 409, "conflict");
    let deleted = api
        .call(Method::DELETE, &path, Some(&token), None, &[])
        .await;
    assert_problem(&deleted, 409, "conflict");
    let again = accept(&api, &path, &token, &query(), "application/pdf").await;
    assert_problem(&again, 409, "illegal_transition");

    // WORM in S3, refused by the server itself.
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    let s3 = stores.s3.client().clone();
    let bucket = config.s3.bucket_name("contracts");
    let key = format!("{tenant}/contracts/{contract}/{pdf_ref}.pdf");

    let delete_version = s3
        .delete_object()
        .bucket(&bucket)
        .key(&key)
        .version_id(&version)
        .send()
        .await;
    assert_eq!(
        refusal(delete_version),
        (403, "AccessDenied".to_string()),
        "deleting the locked version"
    );
    let shorten = s3
        .put_object_retention()
        .bucket(&bucket)
        .key(&key)
        .version_id(&version)
        .retention(
            aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Compliance)
                .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                    (Utc::now() + Days::days(1)).timestamp(),
                ))
                .build(),
        )
        .send()
        .await;
    assert_eq!(
        refusal(shorten),
        (403, "AccessDenied".to_string()),
        "shortening the retention"
    );
    let bypass = s3
        .put_object_retention()
        .bucket(&bucket)
        .key(&key)
        .version_id(&version)
        .bypass_governance_retention(true)
        .retention(
            aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Governance)
                .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                    (Utc::now() + Days::days(1)).timestamp(),
                ))
                .build(),
        )
        .send()
        .await;
    assert!(
        bypass.is_err(),
        "a governance bypass on COMPLIANCE: {bypass:?}"
    );
    let drop_bucket = s3.delete_bucket().bucket(&bucket).send().await;
    assert_eq!(
        refusal(drop_bucket),
        (409, "BucketNotEmpty".to_string()),
        "deleting the bucket"
    );

    // Overwriting the key adds a version (Object Lock needs Content-MD5),
    // and a plain delete only a marker: the accepted version stays, and
    // strata serves exactly it.
    let forged = b"%PDF-1.4 forged".to_vec();
    let md5 = {
        use md5::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&forged))
    };
    let overwritten = s3
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .content_md5(md5)
        .body(forged.into())
        .send()
        .await
        .expect("a new version");
    assert_ne!(overwritten.version_id(), Some(version.as_str()));
    s3.delete_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("a delete marker");
    let original = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .version_id(&version)
        .send()
        .await
        .expect("the accepted version is intact");
    let bytes = original.body.collect().await.expect("bytes").into_bytes();
    assert_eq!(bytes.as_ref(), PDF);
    let response = api
        .client
        .get(api.url(&format!("{path}/pdf")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("pdf");
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.expect("bytes").as_ref(), PDF);

    let content = Content::new(&stores, &config.content, &config.s3);
    let report = reconcile::scan(&stores.postgres, &content, Some(&tenant))
        .await
        .expect("scan");
    assert_eq!(report.dangling, vec![], "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_pdf_the_contract_stays_pending() {
    let mut api = Api::start("content-contract-kill", &[("STRATA_TEST_FAULT", "s3:kill")]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let contract = pending_contract(&api, &tenant, &token).await;
    let path = format!("/v1/tenants/{tenant}/contracts/{contract}");
    let answer = accept(&api, &path, &token, &query(), "application/pdf").await;
    assert_eq!(answer.status, 0, "the process died mid-request: {answer:?}");
    assert!(!api.served.child.wait().expect("wait").success());

    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    let content = Content::new(&stores, &config.content, &config.s3);
    let report = reconcile::scan(&stores.postgres, &content, Some(&tenant))
        .await
        .expect("scan");
    assert_eq!(report.dangling, vec![], "{report:?}");
    assert_eq!(report.orphans.len(), 1, "{report:?}");
    assert!(
        report.orphans[0]
            .what
            .starts_with(&format!("s3-contracts:{tenant}/contracts/{contract}/")),
        "{report:?}"
    );
    let mut tx = api.pg.begin_admin().await.expect("admin");
    let (status, key): (String, Option<String>) = api
        .pg
        .query_as("SELECT status, pdf_s3_key FROM contracts WHERE ref_id = $1::ulid")
        .bind(&contract)
        .fetch_one(&mut *tx)
        .await
        .expect("contract");
    assert_eq!((status.as_str(), key), ("pending", None));
}
