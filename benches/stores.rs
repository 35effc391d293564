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

mod common;

use std::time::Instant;

use common::{INGEST_BATCH, drop_database, fresh, ingest_batch, raw_ingest, summary};
use strata::config::Config;
use strata::stores::Stores;

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

async fn tool_call_ingest(stores: &Stores, config: &Config) {
    let (tenant_ref, tenant_id, secret) = common::tenant_with_token(stores, "ingest").await;

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
