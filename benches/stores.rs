//! Benchmarks against the real local servers (`scripts/bench` starts them):
//! what a boot costs on empty and on current stores, and how many tenant
//! transactions per second the pooled path carries through PgBouncer.
//!
//! Numbers, not assertions: the README records what this printed.
//!
//! Last, tool-call batch ingest: `POST .../tool-calls:batch` of strata's
//! data API (served in this process, through PgBouncer and MongoDB) against
//! the same `insert_many` (unordered) + one multi-row INSERT issued directly
//! by the drivers, at the same batch size and payloads.

use std::time::{Duration, Instant};

use sqlx::Connection;
use strata::config::{Config, MongoUrl, Secret, SecretUrl};
use strata::stores::Stores;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench"))
}

struct Fresh {
    database: String,
    config: Config,
}

/// A private PostgreSQL database, MongoDB database and bucket prefix.
async fn fresh(tag: &str) -> Fresh {
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
    config.s3.bucket_prefix = name;
    Fresh { database, config }
}

async fn drop_database(database: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(&var("STRATA_TEST_PG_SUPERUSER_URL")).await {
        let sql = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await;
    }
}

fn summary(label: &str, mut samples: Vec<Duration>) {
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

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut databases = Vec::new();

    // 1. The first boot's schema upgrade: empty stores → current schema.
    let mut first_boot = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let fresh = fresh("empty").await;
        let stores = Stores::new(&fresh.config).await.expect("stores");
        let started = Instant::now();
        strata::schema::upgrade(&stores, &fresh.config, &|_| {})
            .await
            .expect("upgrade");
        first_boot.push(started.elapsed());
        databases.push(fresh.database.clone());
        last = Some((fresh, stores));
    }
    summary("schema upgrade, empty stores (3 stores)", first_boot);

    let (fresh, stores) = last.expect("at least one run");
    let config = &fresh.config;

    // 2. Every later boot: dependency probes, then a plan that finds nothing.
    let mut probes = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        for (_, result) in strata::boot::probe_all(&stores, &config.boot).await {
            result.expect("probe");
        }
        probes.push(started.elapsed());
    }
    summary("dependency probes (all three, concurrently)", probes);

    let mut steady = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let report = strata::schema::upgrade(&stores, config, &|_| {})
            .await
            .expect("upgrade");
        assert!(!report.locked, "nothing pending: no lock");
        steady.push(started.elapsed());
    }
    summary("schema upgrade, current stores (no lock)", steady);

    // Where a steady-state boot spends its time, store by store.
    let collections = strata::schema::mongo::definitions().expect("collections");
    let buckets =
        strata::schema::s3::desired(&strata::schema::s3::definitions().expect("buckets"), config)
            .expect("desired buckets");
    let mut mongo_plans = Vec::new();
    let mut s3_plans = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        strata::schema::mongo::plan(stores.mongo.database(), &collections, config)
            .await
            .expect("mongo plan");
        mongo_plans.push(started.elapsed());
        let started = Instant::now();
        strata::schema::s3::plan(&stores.s3, &buckets)
            .await
            .expect("s3 plan");
        s3_plans.push(started.elapsed());
    }
    summary("  of which: MongoDB plan (7 collections)", mongo_plans);
    summary("  of which: S3 plan (2 buckets)", s3_plans);

    // 3. The pooled path: tenant transactions through PgBouncer.
    let tenant = uuid::Uuid::new_v4();
    {
        // Tenants are made on the administrative path: the serving role
        // may not insert them (row-level security).
        let mut tx = stores.postgres.begin_admin().await.expect("begin");
        stores
            .postgres
            .query(
                "INSERT INTO tenants (id, ref_id, name, slug, plan) \
                 VALUES ($1, $2, 'Bench', 'bench', 'basic')",
            )
            .bind(tenant)
            .bind(ulid::Ulid::generate().to_string())
            .execute(&mut *tx)
            .await
            .expect("insert tenant");
        tx.commit().await.expect("commit");
    }
    const TASKS: usize = 64;
    const PER_TASK: usize = 100;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let postgres = stores.postgres.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(PER_TASK);
            for _ in 0..PER_TASK {
                let t = Instant::now();
                let mut tx = postgres.begin_tenant(tenant).await.expect("begin tenant");
                let (_n,): (i64,) = postgres
                    .query_as("SELECT count(*) FROM activities WHERE deleted_on IS NULL")
                    .fetch_one(&mut *tx)
                    .await
                    .expect("select");
                tx.commit().await.expect("commit");
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result.expect("task"));
    }
    let elapsed = started.elapsed();
    let count = latencies.len();
    summary("tenant transaction via PgBouncer (64 clients)", latencies);
    println!(
        "{:<48} {count} transactions in {:.2} s = {:.0} tx/s (pool of {})",
        "  throughput",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        config.postgres.pool_size
    );

    // 4. Tool-call batch ingest: strata's data API against the drivers.
    tool_call_ingest(&stores, config).await;

    drop(stores);
    for database in databases {
        drop_database(&database).await;
    }
}

const INGEST_BATCH: usize = 1000;
const INGEST_PAD: usize = 400;

/// A batch of calls as strata's API takes them (~0.5 KB of payload each).
fn ingest_batch() -> serde_json::Value {
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
async fn raw_ingest(
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

async fn tool_call_ingest(stores: &Stores, config: &Config) {
    use strata::records::admin::{self, NewTenant, TokenScope};
    let tenant_ref = admin::create_tenant(
        &stores.postgres,
        &NewTenant {
            slug: "ingest".into(),
            name: "Ingest".into(),
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

    // The data API in this process, on a loopback port.
    let health = strata::boot::Health::new();
    health.set_booted();
    let state = strata::api::data::DataState::new(health, &config.api);
    state.set_postgres(stores.postgres.clone());
    state.set_mongo(stores.mongo.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/v1/tenants/{tenant_ref}/tool-calls:batch",
        listener.local_addr().expect("address")
    );
    let server = tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
        listener,
        strata::api::data::router(state),
    )));
    let client = reqwest::Client::new();

    for clients in [1usize, 4] {
        const BATCHES_PER_CLIENT: usize = 8;
        // Bodies made beforehand: neither side pays for making the data.
        let batches: Vec<Vec<serde_json::Value>> = (0..clients)
            .map(|_| (0..BATCHES_PER_CLIENT).map(|_| ingest_batch()).collect())
            .collect();
        let bodies: Vec<Vec<String>> = batches
            .iter()
            .map(|b| b.iter().map(|v| v.to_string()).collect())
            .collect();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for bodies in bodies {
            let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                for body in bodies {
                    let t = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(&secret)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(response.status(), 200, "{:?}", response.text().await);
                    latencies.push(t.elapsed());
                }
                latencies
            });
        }
        let mut latencies = Vec::new();
        while let Some(result) = tasks.join_next().await {
            latencies.extend(result.expect("client"));
        }
        let strata_rate =
            (clients * BATCHES_PER_CLIENT * INGEST_BATCH) as f64 / started.elapsed().as_secs_f64();
        summary(
            &format!("tool-calls:batch via strata, {clients} client(s)"),
            latencies,
        );

        let raw_batches: Vec<Vec<serde_json::Value>> = (0..clients)
            .map(|_| (0..BATCHES_PER_CLIENT).map(|_| ingest_batch()).collect())
            .collect();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for batches in raw_batches {
            let (stores, tenant_ref) = (stores.clone(), tenant_ref.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                for batch in batches {
                    let t = Instant::now();
                    raw_ingest(&stores, tenant_id, &tenant_ref, &batch).await;
                    latencies.push(t.elapsed());
                }
                latencies
            });
        }
        let mut latencies = Vec::new();
        while let Some(result) = tasks.join_next().await {
            latencies.extend(result.expect("client"));
        }
        let raw_rate =
            (clients * BATCHES_PER_CLIENT * INGEST_BATCH) as f64 / started.elapsed().as_secs_f64();
        summary(
            &format!("same batches by the drivers, {clients} client(s)"),
            latencies,
        );
        println!(
            "{:<48} strata {strata_rate:.0} calls/s, drivers {raw_rate:.0} calls/s ({:.0}%), batches of {INGEST_BATCH}",
            "  throughput",
            100.0 * strata_rate / raw_rate
        );
    }
    server.abort();
}
