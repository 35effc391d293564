//! Issue 13, side by side: each workload run two ways against the same
//! local servers in the same run, at the same concurrency:
//!
//! - **drivers**: the same store operations issued directly by sqlx, the
//!   MongoDB driver and the AWS SDK from this process (the floor);
//! - **strata**: the release `strata serve` over HTTP, driven by `wrk`
//!   (`benches/wrk/strata.lua` builds each request and prints the latency
//!   percentiles as JSON from its `done()` hook).
//!
//! Per cell: throughput, p50/p99/max, CPU seconds per 1,000 operations
//! (strata's process from `/proc/PID/stat`; the drivers' own process),
//! strata's peak RSS (`VmHWM`, reset before each cell) and errors. Also the
//! boot to ready on current stores, idle RSS, peak RSS under a 32-way mixed
//! load and the binary's size. Results go to `target/bench/side_by_side.json`
//! and a table. Numbers, not assertions.
//!
//! Settings (environment): `STRATA_BENCH_BIN` (default
//! `target/release/strata`), `STRATA_BENCH_SECS` (measured seconds per
//! cell, 6), `STRATA_BENCH_WARMUP_SECS` (1), `STRATA_BENCH_ONLY` (a
//! comma-separated list of workloads, `mixed` included), `STRATA_BENCH_OUT`,
//! `STRATA_BENCH_PERF` (a directory: `perf record` of strata in each cell).

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mongodb::bson::{self, Bson, Document, doc};
use serde_json::{Value, json};
use sha2::Digest;
use sqlx::{Connection, Postgres as Pg, Transaction};
use strata::records::collections::activities::{self, Activity};
use strata::records::collections::skills::{self, Skill};
use strata::stores::Stores;

use common::{fresh, ingest_batch, raw_ingest, tenant_with_token, var};

/// Activities the split write cycles through (running at first, then
/// succeeded: a succeeded activity's output is replaced).
const WRITE_REFS: usize = 2000;
const SKILLS: usize = 10_000;
const USAGE_EVENTS: i64 = 1_000_000;
const OUTPUT_BYTES: usize = 16 * 1024;
const STREAM_BYTES: usize = 1024 * 1024;
const VOCABULARY: [&str; 50] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basalt", "cobalt", "dune",
    "ember", "fjord", "granite", "harbor", "iris", "jasper", "kelp", "lagoon", "meadow", "nectar",
    "onyx", "pebble", "quartz", "raven", "saffron", "thistle", "umber", "violet", "willow",
    "yarrow",
];
/// Words a search asks for (each in about 2 in 50 skills' names).
const SEARCHED: [&str; 4] = ["delta", "granite", "meadow", "raven"];

fn env_secs(name: &str, default: f64) -> Duration {
    Duration::from_secs_f64(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU seconds (user + system) of a process so far.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 here.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A `/proc/PID/status` field in MB (VmRSS, VmHWM).
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak RSS (VmHWM) of a process to its current RSS.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// One cell of the table.
#[derive(Debug, Clone, serde::Serialize)]
struct Cell {
    workload: String,
    side: &'static str,
    concurrency: usize,
    ops: u64,
    secs: f64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    cpu_secs_per_1k_ops: f64,
    /// strata's peak RSS during the cell (MB); the drivers': none.
    peak_rss_mb: Option<f64>,
    errors: u64,
    /// PgBouncer's counts for the bench's database over the window, per
    /// operation: queries (each one round trip: a simple query, or a
    /// Sync of the extended protocol) and transactions.
    pg_round_trips_per_op: f64,
    pg_xacts_per_op: f64,
    /// The measured process's CPU over the window, in cores.
    process_cores: f64,
    /// How busy the whole machine was (0..1 of all cores): the stores,
    /// the load generator and everyone else included.
    machine_busy: f64,
}

/// The machine's (busy, total) CPU time so far, from /proc/stat.
fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0.0) + fields.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

fn busy_between(before: (f64, f64), after: (f64, f64)) -> f64 {
    let total = after.1 - before.1;
    if total > 0.0 {
        (after.0 - before.0) / total
    } else {
        0.0
    }
}

/// PgBouncer's totals (transactions, queries) for one database so far
/// (`SHOW STATS` on its admin console, through psql).
fn pgbouncer_totals(database: &str) -> (f64, f64) {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &var("STRATA_TEST_PGBOUNCER_PORT")])
        .args(["-U", "postgres", "-At", "-c", "SHOW STATS", "pgbouncer"])
        .env("PGPASSWORD", var("STRATA_TEST_PG_SUPERUSER_PASSWORD"))
        .stderr(Stdio::null())
        .output();
    let text = output
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    text.lines()
        .map(|l| l.split('|').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&database))
        .map_or((0.0, 0.0), |f| {
            let n = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            (n(1), n(2))
        })
}

fn per_op(before: (f64, f64), after: (f64, f64), ops: u64) -> (f64, f64) {
    if ops == 0 {
        return (0.0, 0.0);
    }
    (
        (after.1 - before.1) / ops as f64,
        (after.0 - before.0) / ops as f64,
    )
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs `op` from `concurrency` tasks for a warm-up, then for `secs`
/// measured: operations completed in the window, their latencies, this
/// process's CPU over the window.
async fn drive<F, Fut>(
    database: &str,
    workload: &str,
    concurrency: usize,
    warmup: Duration,
    secs: Duration,
    op: F,
) -> Cell
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let sequence = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (op, measuring, stop, sequence) = (
            op.clone(),
            measuring.clone(),
            stop.clone(),
            sequence.clone(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = op(sequence.fetch_add(1, Ordering::Relaxed)).await;
                // Operations completed inside the window count (as wrk
                // counts them), including those begun in the warm-up.
                if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    match result {
                        Ok(()) => latencies.push(started.elapsed()),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            (latencies, errors, first_error)
        });
    }
    tokio::time::sleep(warmup).await;
    let pg_before = pgbouncer_totals(database);
    let machine_before = machine_cpu();
    let cpu_before = cpu_secs("self");
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu = cpu_secs("self") - cpu_before;
    let machine_busy = busy_between(machine_before, machine_cpu());
    let pg_after = pgbouncer_totals(database);
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (l, e, first) = done.expect("driver task");
        latencies.extend(l);
        errors += e;
        if let Some(first) = first {
            eprintln!("  drivers {workload} c={concurrency}: error: {first}");
        }
    }
    latencies.sort();
    let ops = latencies.len() as u64;
    let (pg_round_trips_per_op, pg_xacts_per_op) = per_op(pg_before, pg_after, ops);
    Cell {
        workload: workload.to_string(),
        side: "drivers",
        concurrency,
        ops,
        secs: elapsed.as_secs_f64(),
        ops_per_sec: ops as f64 / elapsed.as_secs_f64(),
        p50_ms: ms(percentile(&latencies, 0.5)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        cpu_secs_per_1k_ops: if ops > 0 {
            cpu * 1000.0 / ops as f64
        } else {
            0.0
        },
        peak_rss_mb: None,
        errors,
        pg_round_trips_per_op,
        pg_xacts_per_op,
        process_cores: cpu / elapsed.as_secs_f64(),
        machine_busy,
    }
}

/// What the drivers' side and wrk's script need to know.
struct Bench {
    /// The PostgreSQL database (PgBouncer's statistics are per database).
    database: String,
    stores: Stores,
    tenant_ref: String,
    tenant_id: uuid::Uuid,
    token: String,
    token_hash: Vec<u8>,
    bucket: String,
    write_refs: Arc<Vec<String>>,
    get_ref: String,
    output_ref: String,
    stream_ref: String,
    markdown: bytes::Bytes,
    api: String,
    scratch: PathBuf,
}

type Tx = Transaction<'static, Pg>;

/// The drivers' unit of work: the same `BEGIN` and `strata_authenticate`
/// call strata makes for every request.
async fn begin(b: &Bench, read_only: bool) -> Result<Tx, String> {
    let pool = b.stores.postgres.pool();
    let mut tx = if read_only {
        pool.begin_with("BEGIN READ ONLY").await
    } else {
        pool.begin().await
    }
    .map_err(|e| e.to_string())?;
    let (outcome,): (String,) = sqlx::query_as("SELECT outcome FROM strata_authenticate($1, $2)")
        .persistent(false)
        .bind(&b.token_hash[..])
        .bind(&b.tenant_ref)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    if outcome != "ok" {
        return Err(format!("authenticate: {outcome}"));
    }
    Ok(tx)
}

fn get_sql() -> String {
    format!(
        "SELECT {} FROM activities t WHERE t.tenant_id = $1 AND t.deleted_on IS NULL \
           AND t.ref_id = $2",
        activities::TABLE.columns()
    )
}

async fn get_activity(b: &Bench, tx: &mut Tx, sql: &str, r: &str) -> Result<Activity, String> {
    sqlx::query_as::<_, Activity>(sqlx::AssertSqlSafe(sql.to_string()))
        .persistent(false)
        .bind(b.tenant_id)
        .bind(r)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| e.to_string())
}

async fn audit(b: &Bench, tx: &mut Tx, r: &str, action: &str, diff: Value) -> Result<(), String> {
    let rows = json!([{
        "position": 0, "tenant_id": b.tenant_id, "entity": "activities", "entity_ref": r,
        "action": action, "actor": "bench", "diff": diff,
    }]);
    sqlx::query(
        "INSERT INTO audit_outbox (tenant_id, entity, entity_ref, action, actor, diff) \
         SELECT tenant_id, entity, entity_ref, action, actor, diff \
         FROM jsonb_to_recordset($1::jsonb) AS x(position integer, tenant_id uuid, entity text, \
              entity_ref text, action text, actor text, diff jsonb) ORDER BY position",
    )
    .persistent(false)
    .bind(rows)
    .execute(&mut **tx)
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn md5_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(<md5::Md5 as md5::Digest>::digest(bytes))
}

/// The split write by the drivers: check the activity, the object into S3
/// (Content-MD5, SHA-256 in its metadata), the document into MongoDB, then
/// the pointer, the state and the audit diff in one transaction.
async fn split_write(b: &Bench, get: &str, sequence: u64) -> Result<(), String> {
    let activity_ref = &b.write_refs[sequence as usize % b.write_refs.len()];
    let mut tx = begin(b, false).await?;
    get_activity(b, &mut tx, get, activity_ref).await?;
    tx.commit().await.map_err(|e| e.to_string())?;

    let body = b.markdown.clone();
    let sha256 = hex::encode(sha2::Sha256::digest(&body));
    let output_ref = ulid::Ulid::generate().to_string();
    let key = format!(
        "{}/activities/{activity_ref}/outputs/{output_ref}.md",
        b.tenant_ref
    );
    let put = b
        .stores
        .s3
        .client()
        .put_object()
        .bucket(&b.bucket)
        .key(&key)
        .content_type("text/markdown")
        .content_length(body.len() as i64)
        .content_md5(md5_base64(&body))
        .metadata("sha256", &sha256)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()))
        .send()
        .await
        .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
    let stored = strata::content::Stored {
        key: key.clone(),
        size: body.len() as u64,
        sha256: sha256.clone(),
        content_type: "text/markdown".into(),
        version_id: put.version_id().map(str::to_string),
    };
    let document = strata::content::outputs::OutputDocument {
        tenant_id: b.tenant_ref.clone(),
        ref_id: output_ref.clone(),
        activity_ref: activity_ref.clone(),
        format: "markdown".into(),
        s3_key: key,
        size: body.len() as i64,
        sha256,
        metadata: strata::content::object_metadata(&stored),
        created_on: bson::DateTime::now(),
    };
    b.stores
        .mongo
        .database()
        .collection::<strata::content::outputs::OutputDocument>("activity_outputs")
        .insert_one(&document)
        .await
        .map_err(|e| e.to_string())?;

    let mut tx = begin(b, false).await?;
    let sql = format!(
        "UPDATE activities AS t SET output_ref = $3::ulid, status = 'succeeded', \
           finished_on = coalesce(t.finished_on, now()) \
         WHERE t.tenant_id = $1 AND t.deleted_on IS NULL AND t.ref_id = $2 \
         RETURNING {}",
        activities::TABLE.columns()
    );
    let after: Activity = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .persistent(false)
        .bind(b.tenant_id)
        .bind(activity_ref)
        .bind(&output_ref)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    let diff =
        json!({"outputRef": [Value::Null, after.output_ref], "status": ["running", "succeeded"]});
    audit(b, &mut tx, activity_ref, "transition", diff).await?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// The output's record and document, as both reads start.
async fn output_document(
    b: &Bench,
    get: &str,
    activity_ref: &str,
) -> Result<strata::content::outputs::OutputDocument, String> {
    let mut tx = begin(b, true).await?;
    let activity = get_activity(b, &mut tx, get, activity_ref).await?;
    tx.commit().await.map_err(|e| e.to_string())?;
    let output_ref = activity.output_ref.ok_or("no output")?;
    b.stores
        .mongo
        .database()
        .collection::<strata::content::outputs::OutputDocument>("activity_outputs")
        .find_one(doc! {"tenantId": &b.tenant_ref, "refId": output_ref, "deletedOn": null})
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no document".to_string())
}

async fn output_url(b: &Bench, get: &str) -> Result<(), String> {
    let document = output_document(b, get, &b.output_ref).await?;
    let config = aws_sdk_s3::presigning::PresigningConfig::builder()
        .start_time(std::time::SystemTime::now())
        .expires_in(Duration::from_secs(900))
        .build()
        .map_err(|e| e.to_string())?;
    let presigned = b
        .stores
        .s3
        .client()
        .get_object()
        .bucket(&b.bucket)
        .key(&document.s3_key)
        .set_version_id(document.version_id())
        .presigned(config)
        .await
        .map_err(|e| e.to_string())?;
    std::hint::black_box(presigned.uri().len());
    Ok(())
}

async fn stream_read(b: &Bench, get: &str) -> Result<(), String> {
    let document = output_document(b, get, &b.stream_ref).await?;
    let mut object = b
        .stores
        .s3
        .client()
        .get_object()
        .bucket(&b.bucket)
        .key(&document.s3_key)
        .set_version_id(document.version_id())
        .send()
        .await
        .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
    let mut size = 0;
    while let Some(chunk) = object.body.next().await {
        size += chunk.map_err(|e| e.to_string())?.len();
    }
    if size != STREAM_BYTES {
        return Err(format!("read {size} bytes"));
    }
    Ok(())
}

async fn record_create(b: &Bench) -> Result<(), String> {
    let mut tx = begin(b, false).await?;
    let sql = format!(
        "INSERT INTO activities AS t (ref_id, tenant_id, kind) VALUES ($2::ulid, $1, ($3->>'kind')) \
         RETURNING {}",
        activities::TABLE.columns()
    );
    let created: Activity = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .persistent(false)
        .bind(b.tenant_id)
        .bind(ulid::Ulid::generate().to_string())
        .bind(json!({"kind": "bench"}))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    let diff = serde_json::to_value(&created).map_err(|e| e.to_string())?;
    audit(b, &mut tx, &created.record_ref, "create", diff).await?;
    tx.commit().await.map_err(|e| e.to_string())
}

async fn record_get(b: &Bench, get: &str) -> Result<(), String> {
    let mut tx = begin(b, true).await?;
    get_activity(b, &mut tx, get, &b.get_ref).await?;
    tx.commit().await.map_err(|e| e.to_string())
}

async fn record_list(b: &Bench) -> Result<(), String> {
    let mut tx = begin(b, true).await?;
    let sql = format!(
        "SELECT {} FROM activities t WHERE t.tenant_id = $1 AND t.deleted_on IS NULL \
           AND ($2::text IS NULL OR t.ref_id > $2) \
           AND ($4::text IS NULL OR t.status = $4) \
           AND ($5::timestamptz IS NULL OR t.created_on >= $5) \
           AND ($6::timestamptz IS NULL OR t.created_on < $6) \
         ORDER BY t.ref_id LIMIT $3",
        activities::TABLE.columns()
    );
    let rows: Vec<Activity> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .persistent(false)
        .bind(b.tenant_id)
        .bind(None::<String>)
        .bind(51i64)
        .bind(None::<String>)
        .bind(None::<chrono::DateTime<chrono::Utc>>)
        .bind(None::<chrono::DateTime<chrono::Utc>>)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    if rows.len() != 51 {
        return Err(format!("a page of {}", rows.len()));
    }
    Ok(())
}

async fn skills_search(b: &Bench, sequence: u64) -> Result<(), String> {
    let word = SEARCHED[sequence as usize % SEARCHED.len()];
    let mut tx = begin(b, true).await?;
    let mut cursor = b
        .stores
        .mongo
        .database()
        .collection::<Document>("skills")
        .find(doc! {
            "$text": {"$search": word},
            "tenantId": {"$in": [&b.tenant_ref, "global"]},
            "deletedOn": Bson::Null,
        })
        .projection(doc! {"refId": 1, "description": 1, "tags": 1, "score": {"$meta": "textScore"}})
        .sort(doc! {"score": {"$meta": "textScore"}, "refId": 1})
        .limit(21)
        .await
        .map_err(|e| e.to_string())?;
    let mut refs = Vec::new();
    while cursor.advance().await.map_err(|e| e.to_string())? {
        let document: Document = cursor.deserialize_current().map_err(|e| e.to_string())?;
        refs.push(document.get_str("refId").unwrap_or_default().to_string());
    }
    let sql = format!(
        "SELECT {} FROM skills t \
         WHERE (t.tenant_id = $1 OR t.tenant_id IS NULL) AND t.deleted_on IS NULL \
           AND t.content_ref = ANY($2::text[])",
        skills::TABLE.columns()
    );
    let rows: Vec<Skill> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .persistent(false)
        .bind(b.tenant_id)
        .bind(&refs)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    if rows.len() < 20 {
        return Err(format!("{} hits", rows.len()));
    }
    Ok(())
}

async fn usage_summary(b: &Bench) -> Result<(), String> {
    let mut tx = begin(b, true).await?;
    let month = |m: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, m, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default()
    };
    let rows: Vec<strata::records::usage::MonthlyUsage> =
        sqlx::query_as(strata::records::usage::TENANT_SUMMARY_SQL)
            .persistent(false)
            .bind(b.tenant_id)
            .bind(month(1))
            .bind(month(12))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    if rows.len() != 60 {
        return Err(format!("{} summary rows", rows.len()));
    }
    Ok(())
}

/// One workload's drivers' side.
async fn drivers(b: &Arc<Bench>, workload: &str, concurrency: usize) -> Cell {
    let (warmup, secs) = (
        env_secs("STRATA_BENCH_WARMUP_SECS", 1.0),
        env_secs("STRATA_BENCH_SECS", 6.0),
    );
    let get: Arc<str> = get_sql().into();
    let b = b.clone();
    let w = workload.to_string();
    let database = b.database.clone();
    let mut cell = drive(
        &database,
        workload,
        concurrency,
        warmup,
        secs,
        move |sequence| {
            let (b, get, w) = (b.clone(), get.clone(), w.clone());
            async move {
                match w.as_str() {
                    "split_write" => split_write(&b, &get, sequence).await,
                    "output_url" => output_url(&b, &get).await,
                    "stream_1mb" => stream_read(&b, &get).await,
                    "record_create" => record_create(&b).await,
                    "record_get" => record_get(&b, &get).await,
                    "record_list" => record_list(&b).await,
                    "tool_call_batch" => {
                        let batch = ingest_batch();
                        raw_ingest(&b.stores, b.tenant_id, &b.tenant_ref, &batch).await;
                        Ok(())
                    }
                    "skills_search" => skills_search(&b, sequence).await,
                    "usage_summary" => usage_summary(&b).await,
                    other => Err(format!("unknown workload {other}")),
                }
            }
        },
    )
    .await;
    if workload == "tool_call_batch" {
        // Making the batch (1,000 calls' JSON) is the load generator's
        // work, not the drivers': take it out of the CPU figure.
        let started = cpu_secs("self");
        let n = 20;
        for _ in 0..n {
            std::hint::black_box(ingest_batch());
        }
        let per_batch = (cpu_secs("self") - started) / f64::from(n);
        cell.cpu_secs_per_1k_ops = (cell.cpu_secs_per_1k_ops - per_batch * 1000.0).max(0.0);
    }
    cell
}

/// wrk's JSON (from the `done()` hook of benches/wrk/strata.lua).
#[derive(serde::Deserialize)]
struct WrkReport {
    requests: u64,
    duration_us: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    non2xx: u64,
    socket_errors: u64,
}

fn wrk(b: &Bench, workload: &str, concurrency: usize, secs: Duration) -> Option<WrkReport> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/wrk/strata.lua");
    let threads = concurrency.min(2);
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{}s", secs.as_secs_f64().ceil() as u64))
        .arg("--timeout")
        .arg("30s")
        .arg("-s")
        .arg(&script)
        .arg(&b.api)
        .env("WORKLOAD", workload)
        .env("TOKEN", &b.token)
        .env("TENANT", &b.tenant_ref)
        .env("GET_REF", &b.get_ref)
        .env("OUTPUT_REF", &b.output_ref)
        .env("STREAM_REF", &b.stream_ref)
        .env("SCRATCH", &b.scratch)
        .stderr(Stdio::inherit())
        .output()
        .expect("run wrk (scripts/bench installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("{\"requests\""));
    match line.map(serde_json::from_str::<WrkReport>) {
        Some(Ok(report)) => Some(report),
        _ => {
            eprintln!("  wrk {workload} c={concurrency}: no report:\n{text}");
            None
        }
    }
}

/// One workload's strata side: a warm-up run, then the measured one with
/// strata's CPU and peak RSS around it.
fn strata_side(b: &Bench, pid: u32, workload: &str, concurrency: usize) -> Cell {
    let (warmup, secs) = (
        env_secs("STRATA_BENCH_WARMUP_SECS", 1.0),
        env_secs("STRATA_BENCH_SECS", 6.0),
    );
    wrk(b, workload, concurrency, warmup);
    reset_peak(pid);
    let pid_text = pid.to_string();
    let pg_before = pgbouncer_totals(&b.database);
    // STRATA_BENCH_PERF=DIR: a CPU profile of strata per cell (perf's
    // cpu-clock works where hardware counters do not; DWARF call graphs, as
    // release builds keep no frame pointers).
    let perf = std::env::var_os("STRATA_BENCH_PERF").map(|dir| {
        Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "499",
                "--call-graph",
                "dwarf,32768",
            ])
            .arg("-p")
            .arg(&pid_text)
            .arg("-o")
            .arg(Path::new(&dir).join(format!("{workload}-{concurrency}.data")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perf record")
    });
    let machine_before = machine_cpu();
    let cpu_before = cpu_secs(&pid_text);
    let report = wrk(b, workload, concurrency, secs);
    let cpu = cpu_secs(&pid_text) - cpu_before;
    let machine_busy = busy_between(machine_before, machine_cpu());
    if let Some(mut perf) = perf {
        let _ = Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status();
        let _ = perf.wait();
    }
    let pg_after = pgbouncer_totals(&b.database);
    let peak = status_mb(pid, "VmHWM");
    let Some(r) = report else {
        return Cell {
            workload: workload.to_string(),
            side: "strata",
            concurrency,
            ops: 0,
            secs: 0.0,
            ops_per_sec: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
            cpu_secs_per_1k_ops: 0.0,
            peak_rss_mb: Some(peak),
            errors: 1,
            pg_round_trips_per_op: 0.0,
            pg_xacts_per_op: 0.0,
            process_cores: 0.0,
            machine_busy,
        };
    };
    let ok = r.requests.saturating_sub(r.non2xx);
    let (pg_round_trips_per_op, pg_xacts_per_op) = per_op(pg_before, pg_after, r.requests);
    Cell {
        workload: workload.to_string(),
        side: "strata",
        concurrency,
        ops: r.requests,
        secs: r.duration_us / 1e6,
        ops_per_sec: ok as f64 / (r.duration_us / 1e6),
        p50_ms: r.p50_us / 1000.0,
        p99_ms: r.p99_us / 1000.0,
        max_ms: r.max_us / 1000.0,
        cpu_secs_per_1k_ops: if r.requests > 0 {
            cpu * 1000.0 / r.requests as f64
        } else {
            0.0
        },
        peak_rss_mb: Some(peak),
        errors: r.non2xx + r.socket_errors,
        pg_round_trips_per_op,
        pg_xacts_per_op,
        process_cores: cpu / (r.duration_us / 1e6),
        machine_busy,
    }
}

fn strata_bin() -> PathBuf {
    std::env::var_os("STRATA_BENCH_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/strata"),
        PathBuf::from,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `strata serve` on the bench's stores; the environment only, like a unit.
fn spawn_strata(config: &strata::config::Config, api: u16, admin: u16, log: &Path) -> Child {
    let mut command = Command::new(strata_bin());
    command.arg("serve");
    for (key, _) in std::env::vars() {
        if key.starts_with("STRATA_") {
            command.env_remove(&key);
        }
    }
    let log = std::fs::File::create(log).expect("log file");
    command
        .env("STRATA_POSTGRES__URL", config.postgres.url.expose())
        .env(
            "STRATA_POSTGRES__DIRECT_URL",
            config
                .postgres
                .direct_url
                .as_ref()
                .expect("direct")
                .expose(),
        )
        .env("STRATA_POSTGRES__PGBOUNCER", "true")
        .env("STRATA_MONGO__URL", var("STRATA_MONGO__URL"))
        .env("STRATA_MONGO__DATABASE", &config.mongo.database)
        .env("STRATA_S3__ENDPOINT", config.s3.endpoint.as_str())
        .env("STRATA_S3__REGION", &config.s3.region)
        .env("STRATA_S3__ACCESS_KEY_ID", &config.s3.access_key_id)
        .env(
            "STRATA_S3__SECRET_ACCESS_KEY",
            var("STRATA_S3__SECRET_ACCESS_KEY"),
        )
        .env("STRATA_S3__PATH_STYLE", "true")
        .env("STRATA_S3__BUCKET_PREFIX", &config.s3.bucket_prefix)
        .env("STRATA_API__LISTEN", format!("127.0.0.1:{api}"))
        .env("STRATA_ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("STRATA_LOG__TARGET", "stderr")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(log);
    command.spawn().expect("spawn strata serve")
}

/// Time from spawn to the first `/readyz` 200.
async fn until_ready(admin: u16, spawned: Instant) -> Duration {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{admin}/readyz");
    let deadline = spawned + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            return spawned.elapsed();
        }
        assert!(Instant::now() < deadline, "strata not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn seed(
    stores: &Stores,
    config: &strata::config::Config,
    tenant_id: uuid::Uuid,
    tenant_ref: &str,
) -> Vec<String> {
    let mut owner = sqlx::PgConnection::connect(
        config
            .postgres
            .direct_url
            .as_ref()
            .expect("direct")
            .expose(),
    )
    .await
    .expect("owner connection");
    // Activities, running: the split write's targets, the get's and the list's rows.
    let refs: Vec<String> = (0..WRITE_REFS)
        .map(|_| ulid::Ulid::generate().to_string())
        .collect();
    sqlx::query(
        "INSERT INTO activities (ref_id, tenant_id, kind, status, started_on) \
         SELECT r, $1, 'bench', 'running', now() FROM unnest($2::text[]) AS r",
    )
    .bind(tenant_id)
    .bind(&refs)
    .execute(&mut owner)
    .await
    .expect("seed activities");

    // 10,000 skills: the documents (names from a small vocabulary, so that
    // a word matches about 400) and the rows pointing at them.
    let mut documents = Vec::with_capacity(SKILLS);
    let mut rows = Vec::with_capacity(SKILLS);
    for i in 0..SKILLS {
        let content_ref = ulid::Ulid::generate().to_string();
        let w = |k: usize| VOCABULARY[(i * 7 + k * 13 + i / 50) % VOCABULARY.len()];
        let name = format!("{} {} skill {i}", w(0), w(1));
        documents.push(doc! {
            "tenantId": tenant_ref,
            "refId": &content_ref,
            "createdOn": bson::DateTime::now(),
            "deletedOn": Bson::Null,
            "name": &name,
            "description": format!("Does {} things with {}", w(2), w(3)),
            "content": format!("# {name}\n\nSteps: {} then {} then {}.", w(4), w(5), w(6)),
            "tags": [w(7)],
        });
        rows.push(
            json!({"ref": ulid::Ulid::generate().to_string(), "name": name,
                         "slug": format!("skill-{i}"), "content_ref": content_ref}),
        );
    }
    for chunk in documents.chunks(1000) {
        stores
            .mongo
            .database()
            .collection::<Document>("skills")
            .insert_many(chunk.to_vec())
            .await
            .expect("seed skill documents");
    }
    sqlx::query(
        "INSERT INTO skills (ref_id, tenant_id, name, slug, content_ref) \
         SELECT x.ref, $1, x.name, x.slug, x.content_ref \
         FROM jsonb_to_recordset($2::jsonb) AS x(ref text, name text, slug text, content_ref text)",
    )
    .bind(tenant_id)
    .bind(Value::Array(rows))
    .execute(&mut owner)
    .await
    .expect("seed skills");

    // 1,000,000 usage events over 2026's 12 months, 5 metrics.
    sqlx::query(
        "INSERT INTO usage_events (ref_id, tenant_id, metric, quantity, occurred_on) \
         SELECT '0' || upper(lpad(to_hex(i), 25, '0')), $1, \
                (ARRAY['tokens.input','tokens.output','images','minutes','requests'])[1 + i % 5], \
                1 + (i * 7919) % 1000, \
                timestamptz '2026-01-01 00:00:00+00' + ((i * 31) % 31536000) * interval '1 second' \
         FROM generate_series(1::bigint, $2) AS i",
    )
    .bind(tenant_id)
    .bind(USAGE_EVENTS)
    .execute(&mut owner)
    .await
    .expect("seed usage events");
    for table in ["usage_events", "skills", "activities"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {table}")))
            .execute(&mut owner)
            .await
            .expect("vacuum");
    }
    let _ = owner.close().await;
    refs
}

const WORKLOADS: [&str; 9] = [
    "split_write",
    "output_url",
    "stream_1mb",
    "record_create",
    "record_get",
    "record_list",
    "tool_call_batch",
    "skills_search",
    "usage_summary",
];

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let only: Option<Vec<String>> = std::env::var("STRATA_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let wanted = |w: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == w));
    let out = std::env::var_os("STRATA_BENCH_OUT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/side_by_side.json"),
        PathBuf::from,
    );
    let scratch = out.parent().expect("a directory").join("side_by_side");
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let binary_mb = std::fs::metadata(strata_bin())
        .expect("the release binary: cargo build --release")
        .len() as f64
        / 1e6;

    let setup = Instant::now();
    let fresh = fresh("sbs").await;
    let config = fresh.config.clone();
    let stores = Stores::new(&config).await.expect("stores");
    strata::schema::upgrade(&stores, &config, &|_| {})
        .await
        .expect("schema upgrade");
    let (tenant_ref, tenant_id, token) = tenant_with_token(&stores, "bench").await;
    let write_refs = seed(&stores, &config, tenant_id, &tenant_ref).await;
    eprintln!("seeded in {:.1} s", setup.elapsed().as_secs_f64());

    // The dependency probes alone, as a boot makes them (new clients).
    let mut probes = Vec::new();
    for _ in 0..5 {
        let fresh_stores = Stores::new(&config).await.expect("stores");
        let started = Instant::now();
        for (_, result) in strata::boot::probe_all(&fresh_stores, &config.boot).await {
            result.expect("probe");
        }
        probes.push(started.elapsed());
    }
    probes.sort();

    // Boot to ready on current stores, three times; the last one serves.
    let (api_port, admin_port) = (free_port(), free_port());
    let log = scratch.join("strata.log");
    let mut boots = Vec::new();
    let mut child = None;
    for i in 0..3 {
        let spawned = Instant::now();
        let mut c = spawn_strata(&config, api_port, admin_port, &log);
        boots.push(until_ready(admin_port, spawned).await);
        if i < 2 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        } else {
            child = Some(c);
        }
    }
    let mut child = child.expect("strata serving");
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = status_mb(pid, "VmRSS");

    let api = format!("http://127.0.0.1:{api_port}");
    let client = reqwest::Client::new();
    let markdown = bytes::Bytes::from(
        "# Output\n\nA line of the activity's Markdown output, forty-odd bytes.\n"
            .repeat(OUTPUT_BYTES / 64 + 1)[..OUTPUT_BYTES]
            .to_string(),
    );
    // The outputs the reads read, written through strata.
    let put = |activity: String, body: bytes::Bytes| {
        let (client, api, tenant_ref, token) = (
            client.clone(),
            api.clone(),
            tenant_ref.clone(),
            token.clone(),
        );
        async move {
            let r = client
                .put(format!(
                    "{api}/v1/tenants/{tenant_ref}/activities/{activity}/output"
                ))
                .bearer_auth(&token)
                .header("content-type", "text/markdown")
                .body(body)
                .send()
                .await
                .expect("put output");
            assert_eq!(r.status(), 201, "{:?}", r.text().await);
        }
    };
    let (output_ref, stream_ref, get_ref) = (
        write_refs[WRITE_REFS - 1].clone(),
        write_refs[WRITE_REFS - 2].clone(),
        write_refs[WRITE_REFS - 3].clone(),
    );
    put(output_ref.clone(), markdown.clone()).await;
    put(
        stream_ref.clone(),
        bytes::Bytes::from("x".repeat(STREAM_BYTES - 1) + "\n"),
    )
    .await;
    let split_refs: Vec<String> = write_refs[..WRITE_REFS - 3].to_vec();
    std::fs::write(scratch.join("refs.txt"), split_refs.join("\n") + "\n").expect("refs");
    std::fs::write(scratch.join("output.md"), &markdown).expect("markdown");
    std::fs::write(scratch.join("batch.json"), ingest_batch().to_string()).expect("batch");

    let bench = Arc::new(Bench {
        database: fresh.database.clone(),
        bucket: config.s3.bucket_name("content"),
        stores: stores.clone(),
        tenant_ref: tenant_ref.clone(),
        tenant_id,
        token_hash: strata::records::auth::secret_sha256(&token).to_vec(),
        token,
        write_refs: Arc::new(split_refs),
        get_ref,
        output_ref,
        stream_ref,
        markdown,
        api,
        scratch: scratch.clone(),
    });

    let mut plan: Vec<(&str, usize)> = Vec::new();
    for w in WORKLOADS {
        let levels: &[usize] = if w == "split_write" || w == "record_get" {
            &[1, 8, 32, 128]
        } else {
            &[1, 32]
        };
        for &c in levels {
            plan.push((w, c));
        }
    }
    let mut cells = Vec::new();
    for (workload, concurrency) in plan {
        if !wanted(workload) {
            continue;
        }
        let d = drivers(&bench, workload, concurrency).await;
        print_cell(&d);
        let s = strata_side(&bench, pid, workload, concurrency);
        print_cell(&s);
        cells.push(d);
        cells.push(s);
    }
    let mixed = if wanted("mixed") {
        let m = strata_side(&bench, pid, "mixed", 32);
        print_cell(&m);
        Some(m)
    } else {
        None
    };
    let peak_rss_process = status_mb(pid, "VmHWM");

    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    let ms_list = |v: &[Duration]| {
        v.iter()
            .map(|d| (ms(*d) * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    };
    let boot_median = boots.iter().copied().fold(Vec::new(), |mut v, d| {
        v.push(d);
        v
    });
    let mut sorted_boots = boot_median.clone();
    sorted_boots.sort();
    let report = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "secs_per_cell": env_secs("STRATA_BENCH_SECS", 6.0).as_secs_f64(),
        "binary_mb": binary_mb,
        "boot_to_ready_ms": ms_list(&boots),
        "dependency_probes_ms": ms_list(&probes),
        "boot_minus_probes_ms": ms(sorted_boots[1]) - ms(probes[probes.len() / 2]),
        "idle_rss_mb": idle_rss,
        "mixed_32": mixed,
        "peak_rss_whole_run_mb": peak_rss_process,
        "cells": cells,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json")).expect("write");
    print_table(&report, &cells);
    println!("written to {}", out.display());
    drop(stores);
    common::drop_database(&fresh.database).await;
}

fn print_cell(c: &Cell) {
    eprintln!(
        "  {:<16} {:<7} c={:<3} {:>9.1} ops/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  cpu {:>7.3} s/1k  rss {}  errors {}  pg rt/op {:.1}  cores {:.2}  machine {:.0}%",
        c.workload,
        c.side,
        c.concurrency,
        c.ops_per_sec,
        c.p50_ms,
        c.p99_ms,
        c.max_ms,
        c.cpu_secs_per_1k_ops,
        c.peak_rss_mb.map_or("-".into(), |m| format!("{m:.1} MB")),
        c.errors,
        c.pg_round_trips_per_op,
        c.process_cores,
        c.machine_busy * 100.0
    );
}

/// The table README.md holds: per workload and concurrency, both sides
/// and the ratios the targets are about.
fn print_table(report: &Value, cells: &[Cell]) {
    println!();
    println!(
        "| workload | c | strata ops/s | drivers ops/s | ratio | strata p50 / p99 / max ms | drivers p50 / p99 ms | strata CPU s/1k | drivers CPU s/1k | CPU ratio | strata peak RSS MB | errors strata / drivers | PG round trips per op strata / drivers |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in cells.iter().filter(|c| c.side == "strata") {
        let Some(d) = cells.iter().find(|d| {
            d.side == "drivers" && d.workload == s.workload && d.concurrency == s.concurrency
        }) else {
            continue;
        };
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.2} | {:.1} / {:.1} / {:.0} | {:.1} / {:.1} | {:.3} | {:.3} | {:.2} | {:.0} | {} / {} | {:.1} / {:.1} |",
            s.workload,
            s.concurrency,
            s.ops_per_sec,
            d.ops_per_sec,
            ratio(s.ops_per_sec, d.ops_per_sec),
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            d.p50_ms,
            d.p99_ms,
            s.cpu_secs_per_1k_ops,
            d.cpu_secs_per_1k_ops,
            ratio(s.cpu_secs_per_1k_ops, d.cpu_secs_per_1k_ops),
            s.peak_rss_mb.unwrap_or_default(),
            s.errors,
            d.errors,
            s.pg_round_trips_per_op,
            d.pg_round_trips_per_op,
        );
    }
    println!();
    for key in [
        "binary_mb",
        "boot_to_ready_ms",
        "dependency_probes_ms",
        "boot_minus_probes_ms",
        "idle_rss_mb",
        "peak_rss_whole_run_mb",
    ] {
        println!("{key}: {}", report[key]);
    }
    if let Some(m) = report["mixed_32"].as_object() {
        println!(
            "mixed load, 32 connections: {:.1} req/s, peak RSS {:.1} MB, errors {}",
            m["ops_per_sec"].as_f64().unwrap_or_default(),
            m["peak_rss_mb"].as_f64().unwrap_or_default(),
            m["errors"]
        );
    }
}
