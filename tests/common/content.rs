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
