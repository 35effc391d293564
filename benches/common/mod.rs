//! What the benchmarks share: fresh stores on the local servers, a tenant
//! with a service token, latency summaries, and the tool-call batch both
//! ways (strata's body, the drivers' equivalent).

#![allow(dead_code)] // each bench binary uses its own part

use std::time::Duration;

use sqlx::Connection;
use strata::config::{Config, MongoUrl, Secret, SecretUrl};
use strata::stores::Stores;

pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench"))
}

pub struct Fresh {
    pub database: String,
    pub config: Config,
}

/// A private PostgreSQL database, MongoDB database and bucket prefix.
pub async fn fresh(tag: &str) -> Fresh {
    let id = ulid::Ulid::generate().to_string().to_ascii_lowercase();
    let name = format!("bench-{tag}-{}", &id[16..]);
    let database = name.replace('-', "_");
    let mut admin = sqlx::PgConnection::connect(&var("STRATA_TEST_PG_SUPERUSER_URL"))
        .await
        .expect("superuser connection");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{database}\" OWNER strata_owner"
    )))
    .execute(&mut admin)
    .await
    .expect("create database");
    let _ = admin.close().await;

    let with_db = |url: &str| {
        let mut url = url::Url::parse(url).expect("url");
        url.set_path(&database);
        SecretUrl::parse(url.as_str()).expect("url")
    };
    let mut config = Config::default();
    config.postgres.url = with_db(&var("STRATA_POSTGRES__URL"));
    config.postgres.direct_url = Some(with_db(&var("STRATA_POSTGRES__DIRECT_URL")));
    config.postgres.pgbouncer = true;
    config.postgres.pool_size = 16;
    config.mongo.url = MongoUrl::parse(&var("STRATA_MONGO__URL")).expect("mongo url");
    config.mongo.database = database.clone();
    config.s3.endpoint = url::Url::parse(&var("STRATA_S3__ENDPOINT")).expect("endpoint");
    config.s3.region = var("STRATA_S3__REGION");
    config.s3.access_key_id = var("STRATA_S3__ACCESS_KEY_ID");
    config.s3.secret_access_key = Secret::new(var("STRATA_S3__SECRET_ACCESS_KEY"));
    config.s3.path_style = true;
    config.s3.bucket_prefix = name;
    Fresh { database, config }
}

pub async fn drop_database(database: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(&var("STRATA_TEST_PG_SUPERUSER_URL")).await {
        let sql = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await;
    }
}

pub fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label:<48} n={:<5} min {:>8.2} ms  median {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        samples.len(),
        ms(samples[0]),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(samples[samples.len() - 1]),
    );
}

pub const INGEST_BATCH: usize = 1000;
pub const INGEST_PAD: usize = 400;

/// A batch of calls as strata's API takes them (~0.5 KB of payload each).
pub fn ingest_batch() -> serde_json::Value {
    let calls: Vec<serde_json::Value> = (0..INGEST_BATCH)
        .map(|i| {
            serde_json::json!({
                "ref": ulid::Ulid::generate().to_string(),
                "toolName": "search",
                "method": "query",
                "status": "succeeded",
                "durationMs": i % 500,
                "request": {"q": format!("question {i}"), "pad": "x".repeat(INGEST_PAD)},
                "response": {"hits": [i, i + 1, i + 2], "ok": true},
            })
        })
        .collect();
    serde_json::json!({ "calls": calls })
}

/// The same batch written by the drivers directly: payloads with one
/// unordered insert_many, summaries with one multi-row INSERT.
pub async fn raw_ingest(
    stores: &Stores,
    tenant_id: uuid::Uuid,
    tenant_ref: &str,
    batch: &serde_json::Value,
) {
    use mongodb::bson::{self, doc};
    let calls = batch["calls"].as_array().expect("calls");
    let documents: Vec<mongodb::bson::Document> = calls
        .iter()
        .map(|c| {
            doc! {
                "tenantId": tenant_ref,
                "refId": c["ref"].as_str().expect("ref"),
                "toolCallRef": c["ref"].as_str().expect("ref"),
                "createdOn": bson::DateTime::now(),
                "deletedOn": bson::Bson::Null,
                "request": bson::to_bson(&c["request"]).expect("bson"),
                "response": bson::to_bson(&c["response"]).expect("bson"),
            }
        })
        .collect();
    stores
        .mongo
        .database()
        .collection::<mongodb::bson::Document>("tool_call_logs")
        .insert_many(documents)
        .ordered(false)
        .await
        .expect("insert_many");
    let rows: Vec<serde_json::Value> = calls
        .iter()
        .map(|c| {
            serde_json::json!({
                "ref": c["ref"], "tool_name": c["toolName"], "method": c["method"],
                "status": c["status"], "duration_ms": c["durationMs"],
            })
        })
        .collect();
    let mut tx = stores
        .postgres
        .begin_tenant(tenant_id)
        .await
        .expect("begin");
    stores
        .postgres
        .query(
            "INSERT INTO tool_calls (ref_id, tenant_id, tool_name, method, status, started_on, \
                                     duration_ms, finished_on, payload_ref) \
             SELECT x.ref, $1, x.tool_name, x.method, x.status, now(), x.duration_ms, \
                    now() + make_interval(secs => x.duration_ms / 1000.0), x.ref \
             FROM jsonb_to_recordset($2::jsonb) AS x(ref text, tool_name text, method text, \
                                                     status text, duration_ms integer)",
        )
        .bind(tenant_id)
        .bind(serde_json::Value::Array(rows))
        .execute(&mut *tx)
        .await
        .expect("multi-row insert");
    tx.commit().await.expect("commit");
}

/// A tenant (made on the administrative path) and a service token for it:
/// (tenant ref, tenant id, the token's secret).
pub async fn tenant_with_token(stores: &Stores, slug: &str) -> (String, uuid::Uuid, String) {
    use strata::records::admin::{self, NewTenant, TokenScope};
    let tenant_ref = admin::create_tenant(
        &stores.postgres,
        &NewTenant {
            slug: slug.into(),
            name: slug.into(),
            plan: "basic".into(),
        },
    )
    .await
    .expect("tenant")
    .tenant_ref;
    let tenant_id = stores
        .postgres
        .tenant_id(&tenant_ref)
        .await
        .expect("tenant id")
        .expect("active tenant");
    let (secret, _) = strata::api::auth::new_token().expect("token");
    admin::create_token(
        &stores.postgres,
        &secret,
        "bench",
        &TokenScope::Tenant(tenant_ref.clone()),
        None,
    )
    .await
    .expect("create token");
    (tenant_ref, tenant_id, secret)
}
