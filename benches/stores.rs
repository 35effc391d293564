//! Benchmarks against the real local servers (`scripts/bench` starts them):
//! what a boot costs on empty and on current stores, and how many tenant
//! transactions per second the pooled path carries through PgBouncer.
//!
//! Numbers, not assertions: the README records what this printed.

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
        let mut tx = stores.postgres.begin().await.expect("begin");
        stores
            .postgres
            .query("SELECT set_config('strata.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .expect("tenant setting");
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

    drop(stores);
    for database in databases {
        drop_database(&database).await;
    }
}
