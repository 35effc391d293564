//! What the split-pattern tests share: raw writes and reads of content,
//! a reconciliation scan of the test's stores, and a strata killed by the
//! fault hook.

use reqwest::Method;
use serde_json::Value;
use sha2::Digest;
use strata::content::Content;
use strata::content::reconcile::{self, Report};

use super::api::{Api, Reply};

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A raw body with its content type (`Err`: the process died mid-request).
pub async fn send_raw(
    api: &Api,
    method: Method,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Reply, reqwest::Error> {
    let response = api
        .client
        .request(method, api.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await?;
    Ok(Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
        text,
    })
}

pub async fn put_raw(
    api: &Api,
    path: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Reply, reqwest::Error> {
    send_raw(api, Method::PUT, path, token, content_type, body.to_vec()).await
}

/// A GET of content: status, headers, bytes.
pub async fn get_bytes(
    api: &Api,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = api.client.get(api.url(path)).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the data API answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

/// The reconciliation pass over the test's stores (one tenant, or all).
pub async fn scan(api: &Api, tenant: Option<&str>) -> Report {
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    let content = Content::new(&stores, &config.content, &config.s3);
    reconcile::scan(&stores.postgres, &content, tenant)
        .await
        .expect("scan")
}

/// A repair of the test's stores with `grace_hours`.
pub async fn repair(api: &Api, report: &Report, grace_hours: i64) -> reconcile::Repair {
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    let content = Content::new(&stores, &config.content, &config.s3);
    reconcile::repair(&content, report, chrono::Duration::hours(grace_hours))
        .await
        .expect("repair")
}

/// The orphans' `what`, sorted.
pub fn orphans(report: &Report) -> Vec<String> {
    let mut out: Vec<String> = report.orphans.iter().map(|o| o.what.clone()).collect();
    out.sort();
    out
}

/// The kinds (`s3`, `mongo`) of the orphans, sorted.
pub fn kinds(report: &Report) -> Vec<String> {
    let mut out: Vec<String> = report
        .orphans
        .iter()
        .map(|o| o.what.split(':').next().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

/// Checks a pre-signed GET: it gives `expected` straight from S3, and a
/// tampered signature or another tenant's key in it is refused by S3.
pub async fn check_presigned(url: &str, expected: &[u8], tenant: &str, other: &str) {
    let s3 = reqwest::Client::new();
    let fetched = s3.get(url).send().await.expect("S3 answers");
    assert_eq!(fetched.status(), 200, "{url}");
    assert_eq!(fetched.bytes().await.expect("bytes").as_ref(), expected);
    let mut tampered = url.to_string();
    let last = tampered.pop().expect("a signature");
    tampered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(s3.get(&tampered).send().await.expect("S3").status(), 403);
    let elsewhere = url.replacen(tenant, other, 1);
    assert_eq!(s3.get(&elsewhere).send().await.expect("S3").status(), 403);
}

/// Reads a status (and a pointer column) of a record on the
/// administrative path.
pub async fn record_state(
    api: &Api,
    table: &str,
    pointer: &str,
    record: &str,
) -> (String, Option<String>) {
    let mut tx = api.pg.begin_admin().await.expect("admin");
    api.pg
        .query_as::<(String, Option<String>)>(sqlx::AssertSqlSafe(format!(
            "SELECT status, {pointer}::text FROM {table} WHERE ref_id = $1::ulid"
        )))
        .bind(record)
        .fetch_one(&mut *tx)
        .await
        .expect("record")
}

/// A direct upload taken as far as every entity's upload goes before its
/// good confirm: declarations strata refuses (422 naming the field), a
/// start (201, a pre-signed PUT whose URL holds `key_part(uploadRef)`), a
/// confirm before anything was uploaded (409), S3 refusing a PUT with
/// another content type or size (both signed), the real PUT, confirms
/// declaring another size or SHA-256 (422) and one by another tenant's
/// token (404). What it returns: the upload's ref, its confirm path, and
/// the good declaration.
pub async fn direct_upload_until_confirm(
    api: &Api,
    uploads: &str,
    token: &str,
    other_token: &str,
    content_type: &str,
    bytes: &[u8],
    key_part: impl Fn(&str) -> String,
) -> (String, String, Value) {
    use serde_json::json;
    let declared = json!({
        "contentType": content_type,
        "size": bytes.len(),
        "sha256": sha256(bytes),
    });
    for (bad, field) in [
        (
            json!({"contentType": "text/html", "size": 1, "sha256": sha256(b"x")}),
            "contentType",
        ),
        (
            json!({"contentType": content_type, "size": 1u64 << 40, "sha256": sha256(b"x")}),
            "size",
        ),
        (
            json!({"contentType": content_type, "size": 1, "sha256": "ABC"}),
            "sha256",
        ),
    ] {
        let refused = api.post(uploads, token, bad).await;
        super::api::assert_problem(&refused, 422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], field, "{refused:?}");
    }

    let started = api.post(uploads, token, declared.clone()).await;
    assert_eq!(started.status, 201, "{started:?}");
    let upload = started.body["ref"].as_str().expect("ref").to_string();
    let url = started.body["url"].as_str().expect("url").to_string();
    assert_eq!(started.body["method"], "PUT");
    assert!(url.contains(&key_part(&upload)), "{url}");
    assert_eq!(
        started.header("location"),
        Some(format!("{uploads}/{upload}").as_str())
    );
    let confirm = format!("{uploads}/{upload}/confirm");

    let early = api.post(&confirm, token, declared.clone()).await;
    super::api::assert_problem(&early, 409, "upload_missing");

    let s3 = reqwest::Client::new();
    let put = |content_type: &str, body: Vec<u8>| {
        s3.put(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let wrong_type = put("application/octet-stream", bytes.to_vec())
        .await
        .expect("S3");
    assert_eq!(wrong_type.status(), 403, "content type is signed");
    let mut longer = bytes.to_vec();
    longer.push(b'!');
    let wrong_size = put(content_type, longer).await.expect("S3");
    assert!(
        wrong_size.status().is_client_error(),
        "content length is signed: {}",
        wrong_size.status()
    );
    let early = api.post(&confirm, token, declared.clone()).await;
    super::api::assert_problem(&early, 409, "upload_missing");

    let uploaded = put(content_type, bytes.to_vec()).await.expect("S3");
    assert_eq!(uploaded.status(), 200);
    let mut wrong = declared.clone();
    wrong["size"] = json!(bytes.len() + 1);
    let refused = api.post(&confirm, token, wrong).await;
    super::api::assert_problem(&refused, 422, "upload_mismatch");
    assert_eq!(refused.body["errors"][0]["field"], "size");
    let mut wrong = declared.clone();
    wrong["sha256"] = json!(sha256(b"something else"));
    let refused = api.post(&confirm, token, wrong).await;
    super::api::assert_problem(&refused, 422, "upload_mismatch");
    assert_eq!(refused.body["errors"][0]["field"], "sha256");
    let foreign = api.post(&confirm, other_token, declared.clone()).await;
    super::api::assert_problem(&foreign, 404, "not_found");
    (upload, confirm, declared)
}

/// A direct upload's PUT of `bytes`, started at `uploads`: its ref.
pub async fn upload_directly(
    api: &Api,
    uploads: &str,
    token: &str,
    content_type: &str,
    bytes: &[u8],
) -> (String, Value) {
    let declared = serde_json::json!({
        "contentType": content_type,
        "size": bytes.len(),
        "sha256": sha256(bytes),
    });
    let started = api.post(uploads, token, declared.clone()).await;
    assert_eq!(started.status, 201, "{started:?}");
    let url = started.body["url"].as_str().expect("url");
    let uploaded = reqwest::Client::new()
        .put(url)
        .header("content-type", content_type)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("S3");
    assert_eq!(uploaded.status(), 200);
    let upload = started.body["ref"].as_str().expect("ref").to_string();
    (upload, declared)
}

/// A new onboarding run of the tenant, moved through `states`: its ref.
pub async fn onboarding_run(api: &Api, tenant: &str, token: &str, states: &[&str]) -> String {
    let created = api
        .post(
            &format!("/v1/tenants/{tenant}/onboarding-runs"),
            token,
            serde_json::json!({"website": "https://example.com"}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let run = created.body["ref"].as_str().expect("ref").to_string();
    for to in states {
        let moved = api
            .post(
                &format!("/v1/tenants/{tenant}/onboarding-runs/{run}/transitions"),
                token,
                serde_json::json!({"to": to}),
            )
            .await;
        assert_eq!(moved.status, 200, "{moved:?}");
    }
    run
}

/// A new draft strategy of the tenant: its ref.
pub async fn draft_strategy(api: &Api, tenant: &str, token: &str) -> String {
    let created = api
        .post(
            &format!("/v1/tenants/{tenant}/strategies"),
            token,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    created.body["ref"].as_str().expect("ref").to_string()
}
