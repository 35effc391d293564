//! Background jobs: three `serve` processes on the same stores run the
//! tenant purge on exactly one of them at a time; when that one is killed
//! (SIGKILL: no orderly release) another takes the job over once the lease
//! ran out. And the purge itself: a deleted tenant loses everything it owns
//! in the three stores except a contract PDF under Object Lock and its
//! row; a purge cut midway is completed by the next run.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::Fixture;
use common::serve::Served;
use mongodb::bson::doc;
use strata::jobs::purge;

const LEASE_SECS: u64 = 2;

struct Run {
    holder: String,
    started: chrono::DateTime<chrono::Utc>,
    finished: chrono::DateTime<chrono::Utc>,
}

async fn runs(stores: &strata::stores::Stores, job: &str) -> Vec<Run> {
    let mut tx = stores.postgres.begin_admin().await.expect("admin path");
    let rows: Vec<(
        String,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    )> = sqlx::query_as(
        "SELECT holder, started_on, finished_on FROM strata_job_runs \
             WHERE name = $1 ORDER BY started_on",
    )
    .bind(job)
    .fetch_all(&mut *tx)
    .await
    .expect("runs");
    rows.into_iter()
        .map(|(holder, started, finished)| Run {
            holder,
            started,
            finished,
        })
        .collect()
}

fn pid_of(holder: &str) -> u32 {
    holder
        .split(':')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("host:pid:random")
}

/// No two runs overlap: one runner at a time.
fn assert_one_at_a_time(runs: &[Run]) {
    for pair in runs.windows(2) {
        assert!(
            pair[1].started >= pair[0].finished,
            "runs overlap: {} ({}..{}) and {} ({}..)",
            pair[0].holder,
            pair[0].started,
            pair[0].finished,
            pair[1].holder,
            pair[1].started
        );
    }
}

async fn until_runs(
    stores: &strata::stores::Stores,
    job: &str,
    what: &str,
    done: impl Fn(&[Run]) -> bool,
) -> Vec<Run> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all = runs(stores, job).await;
        if done(&all) {
            return all;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_run_each_job_on_one_and_fail_over_when_it_dies() {
    let fixture = Fixture::new("jobs-three").await;
    let stores = fixture.migrated_stores().await;
    let mut served = Vec::new();
    for _ in 0..3 {
        let (admin, api) = (
            std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port())),
            std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port())),
        );
        let mut command = fixture.strata(&["serve"]);
        command
            .env("STRATA_API__LISTEN", api.to_string())
            .env("STRATA_ADMIN__LISTEN", admin.to_string())
            .env("STRATA_JOBS__LEASE_SECS", LEASE_SECS.to_string())
            .env("STRATA_JOBS__PURGE_INTERVAL_SECS", "1")
            .env("STRATA_CONTENT__RECONCILE_INTERVAL_SECS", "1");
        let mut one = Served::start(command, admin, api);
        assert!(
            one.wait_notification("READY=1", Duration::from_secs(120)),
            "{}",
            one.stderr()
        );
        served.push(one);
    }

    // Runs of each job come from one holder, one at a time.
    for job in ["reconcile", "tenant_purge"] {
        let before = until_runs(&stores, job, "five runs", |r| r.len() >= 5).await;
        assert_one_at_a_time(&before);
        assert!(
            before.iter().all(|r| r.holder == before[0].holder),
            "{job}: one holder while it lives: {:?}",
            before.iter().map(|r| &r.holder).collect::<Vec<_>>()
        );
    }
    let before = runs(&stores, "tenant_purge").await;
    let holder = before[0].holder.clone();
    let pids: Vec<u32> = served.iter().map(|s| s.child.id()).collect();
    let dead = pid_of(&holder);
    assert!(pids.contains(&dead), "the holder is one of the three");

    // Kill the holder without letting it give the lease back.
    let index = pids.iter().position(|p| *p == dead).expect("holder");
    let mut killed = served.remove(index);
    killed.child.kill().expect("SIGKILL");
    let _ = killed.child.wait();
    let killed_at = chrono::Utc::now();

    let after = until_runs(&stores, "tenant_purge", "a run by another instance", |r| {
        r.iter().any(|run| run.holder != holder)
    })
    .await;
    assert_one_at_a_time(&after);
    let takeover = after
        .iter()
        .find(|r| r.holder != holder)
        .expect("a new holder");
    assert!(
        pids.contains(&pid_of(&takeover.holder)) && pid_of(&takeover.holder) != dead,
        "a surviving instance took over"
    );
    let failover = (takeover.started - killed_at).num_milliseconds();
    // The stated bound: the lease (2 s) plus a third of it plus the purge
    // interval (1 s); generous margin for a loaded machine.
    println!("failover after SIGKILL: {failover} ms");
    assert!(
        failover < 20_000,
        "failover took {failover} ms, far beyond the lease"
    );
    for one in served {
        let stderr = one.stderr();
        assert_eq!(one.stop(), Some(0), "{stderr}");
    }
}

async fn count(stores: &strata::stores::Stores, sql: &str, tenant: uuid::Uuid) -> i64 {
    let mut tx = stores.postgres.begin_admin().await.expect("admin path");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await
        .expect("count")
}

/// A tenant's records (an activity, a blog post referencing it, a contract
/// without retention and, with `locked_contract`, one under retention),
/// a MongoDB document and S3 objects (two versions of an output and, with
/// `locked_contract`, a contract PDF under the bucket's default retention).
async fn seed(
    stores: &strata::stores::Stores,
    config: &strata::config::Config,
    (tenant_id, tenant_ref): &(uuid::Uuid, String),
    locked_contract: bool,
) {
    let content = config.s3.bucket_name("content");
    let contracts = config.s3.bucket_name("contracts");
    let mut tx = stores.postgres.begin_admin().await.expect("admin");
    sqlx::query("INSERT INTO activities (ref_id, tenant_id, kind) VALUES ($1, $2, 'k'); ")
        .bind(ulid::Ulid::generate().to_string())
        .bind(tenant_id)
        .execute(&mut *tx)
        .await
        .expect("activity");
    sqlx::query(
        "INSERT INTO blog_posts (ref_id, tenant_id, title, activity_id) \
         SELECT $1, $2, 't', id FROM activities WHERE tenant_id = $2",
    )
    .bind(ulid::Ulid::generate().to_string())
    .bind(tenant_id)
    .execute(&mut *tx)
    .await
    .expect("blog post referencing the activity");
    if locked_contract {
        sqlx::query(
            "INSERT INTO contracts (ref_id, tenant_id, template, template_version, \
                                    pdf_s3_key, retain_until) \
             VALUES ($1, $2, 'msa', '1', $3, now() + interval '1 day')",
        )
        .bind(ulid::Ulid::generate().to_string())
        .bind(tenant_id)
        .bind(format!("{tenant_ref}/contracts/c.pdf"))
        .execute(&mut *tx)
        .await
        .expect("contract under retention");
    }
    sqlx::query(
        "INSERT INTO contracts (ref_id, tenant_id, template, template_version) \
         VALUES ($1, $2, 'msa', '0')",
    )
    .bind(ulid::Ulid::generate().to_string())
    .bind(tenant_id)
    .execute(&mut *tx)
    .await
    .expect("contract without retention");
    tx.commit().await.expect("commit");
    stores
        .mongo
        .database()
        .collection::<mongodb::bson::Document>("tool_call_logs")
        .insert_one(doc! {
            "tenantId": tenant_ref.as_str(),
            "refId": ulid::Ulid::generate().to_string(),
            "createdOn": mongodb::bson::DateTime::now(),
            "toolCallRef": ulid::Ulid::generate().to_string(),
            "request": {}, "response": {},
        })
        .await
        .expect("document");
    for version in ["v1", "v2"] {
        stores
            .s3
            .client()
            .put_object()
            .bucket(&content)
            .key(format!("{tenant_ref}/outputs/o.md"))
            .body(ByteStream::from(version.as_bytes().to_vec()))
            .send()
            .await
            .expect("content object (two versions)");
    }
    if locked_contract {
        stores
            .s3
            .client()
            .put_object()
            .bucket(&contracts)
            .key(format!("{tenant_ref}/contracts/c.pdf"))
            .body(ByteStream::from_static(b"%PDF-1.7"))
            .send()
            .await
            .expect("contract PDF (locked by the bucket's default retention)");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_purge_removes_a_deleted_tenant_from_all_three_stores_but_locked_contracts() {
    let fixture = Fixture::new("jobs-purge").await;
    let stores = fixture.migrated_stores().await;
    let config = fixture.config();
    let doomed = common::create_tenant(&stores.postgres, "doomed").await;
    let kept = common::create_tenant(&stores.postgres, "kept").await;

    // Records, documents and objects of both tenants.
    let content = config.s3.bucket_name("content");
    let contracts = config.s3.bucket_name("contracts");
    for tenant in [&doomed, &kept] {
        seed(&stores, &config, tenant, true).await;
    }
    let mut tx = stores.postgres.begin_admin().await.expect("admin");
    sqlx::query("UPDATE tenants SET status = 'deleted', deleted_on = now() WHERE id = $1")
        .bind(doomed.0)
        .execute(&mut *tx)
        .await
        .expect("soft delete");
    tx.commit().await.expect("commit");

    // Twice: the second run finds the same state (idempotent, resumable).
    for round in 0..2 {
        let report = purge::purge_tenant(&stores, &config, doomed.0, &doomed.1)
            .await
            .expect("purge");
        if round == 0 {
            assert_eq!(report.s3_versions_deleted, 2, "{report:?}");
            assert_eq!(report.postgres.get("activities"), Some(&1), "{report:?}");
            assert_eq!(report.postgres.get("blog_posts"), Some(&1), "{report:?}");
            assert_eq!(report.mongo.get("tool_call_logs"), Some(&1), "{report:?}");
        }
        assert!(!report.complete, "a locked contract stays: {report:?}");
        assert!(
            report.kept.iter().any(|k| k.contains("contracts/c.pdf")),
            "{report:?}"
        );
    }

    // Each store read back on its own.
    let per_tenant = |table: &str| format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
    for table in ["activities", "blog_posts"] {
        assert_eq!(
            count(&stores, &per_tenant(table), doomed.0).await,
            0,
            "{table}"
        );
        assert_eq!(
            count(&stores, &per_tenant(table), kept.0).await,
            1,
            "{table}"
        );
    }
    assert_eq!(
        count(&stores, &per_tenant("contracts"), doomed.0).await,
        1,
        "only the contract under retention stays"
    );
    assert_eq!(count(&stores, &per_tenant("contracts"), kept.0).await, 2);
    let docs = |tenant: &str| {
        let tenant = tenant.to_string();
        let db = stores.mongo.database().clone();
        async move {
            db.collection::<mongodb::bson::Document>("tool_call_logs")
                .count_documents(doc! {"tenantId": tenant})
                .await
                .expect("count")
        }
    };
    assert_eq!(docs(&doomed.1).await, 0);
    assert_eq!(docs(&kept.1).await, 1);
    let versions = |bucket: String, prefix: String| {
        let s3 = stores.s3.client().clone();
        async move {
            let listed = s3
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
                .expect("list versions");
            listed.versions().len() + listed.delete_markers().len()
        }
    };
    assert_eq!(versions(content.clone(), format!("{}/", doomed.1)).await, 0);
    assert_eq!(versions(content.clone(), format!("{}/", kept.1)).await, 2);
    assert_eq!(
        versions(contracts.clone(), format!("{}/", doomed.1)).await,
        1
    );
    // The tenant row stays while something of it is kept.
    assert_eq!(
        count(
            &stores,
            "SELECT count(*) FROM tenants WHERE id = $1",
            doomed.0
        )
        .await,
        1
    );
}

/// What is left of a tenant, each store read on its own: rows in its
/// tables, its tool-call documents, its S3 versions (content bucket), its
/// tenant row.
async fn left_of(
    stores: &strata::stores::Stores,
    config: &strata::config::Config,
    (tenant_id, tenant_ref): &(uuid::Uuid, String),
) -> (i64, u64, usize, i64) {
    let mut rows = 0;
    for table in ["activities", "blog_posts", "contracts"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
        rows += count(stores, &sql, *tenant_id).await;
    }
    let documents = stores
        .mongo
        .database()
        .collection::<mongodb::bson::Document>("tool_call_logs")
        .count_documents(doc! {"tenantId": tenant_ref.as_str()})
        .await
        .expect("count");
    let listed = stores
        .s3
        .client()
        .list_object_versions()
        .bucket(config.s3.bucket_name("content"))
        .prefix(format!("{tenant_ref}/"))
        .send()
        .await
        .expect("list versions");
    let versions = listed.versions().len() + listed.delete_markers().len();
    let tenant_row = count(
        stores,
        "SELECT count(*) FROM tenants WHERE id = $1",
        *tenant_id,
    )
    .await;
    (rows, documents, versions, tenant_row)
}

/// `serve` purging with a deleted tenant due at once, every second.
fn purging_serve(fixture: &Fixture, fault: Option<&str>) -> Served {
    let (admin, api) = (
        std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port())),
        std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port())),
    );
    let mut command = fixture.strata(&["serve"]);
    command
        .env("STRATA_API__LISTEN", api.to_string())
        .env("STRATA_ADMIN__LISTEN", admin.to_string())
        .env("STRATA_JOBS__LEASE_SECS", LEASE_SECS.to_string())
        .env("STRATA_JOBS__PURGE_INTERVAL_SECS", "1")
        .env("STRATA_JOBS__PURGE_AFTER_DAYS", "0");
    if let Some(fault) = fault {
        command.env(strata::fault::ENV, fault);
    }
    Served::start(command, admin, api)
}

/// A purge killed (abort, as a crash) after each of its steps — PostgreSQL
/// rows gone, MongoDB documents gone, midway through the S3 versions — is
/// completed by the next run of another process, and nothing of the
/// tenant is left in any store; the other tenant keeps everything.
#[tokio::test(flavor = "multi_thread")]
async fn a_purge_killed_midway_is_completed_by_the_next_run() {
    let fixture = Fixture::new("jobs-purge-kill").await;
    let stores = fixture.migrated_stores().await;
    let config = fixture.config();
    let kept = common::create_tenant(&stores.postgres, "kept").await;
    seed(&stores, &config, &kept, false).await;
    let kept_before = left_of(&stores, &config, &kept).await;
    for (round, point) in ["purge-postgres", "purge-mongo", "purge-s3"]
        .iter()
        .enumerate()
    {
        let doomed = common::create_tenant(&stores.postgres, &format!("doomed{round}")).await;
        seed(&stores, &config, &doomed, false).await;
        let mut tx = stores.postgres.begin_admin().await.expect("admin");
        sqlx::query("UPDATE tenants SET status = 'deleted', deleted_on = now() WHERE id = $1")
            .bind(doomed.0)
            .execute(&mut *tx)
            .await
            .expect("soft delete");
        tx.commit().await.expect("commit");

        let mut crashing = purging_serve(&fixture, Some(&format!("{point}:kill")));
        let status = crashing
            .child
            .wait()
            .expect("the purge crashes the process");
        assert!(
            !status.success(),
            "{point}: {status:?}\n{}",
            crashing.stderr()
        );
        assert!(
            crashing.stderr().contains(point),
            "{point}: killed by the hook\n{}",
            crashing.stderr()
        );
        let (rows, documents, versions, tenant_row) = left_of(&stores, &config, &doomed).await;
        assert_eq!(
            (rows, tenant_row),
            (0, 1),
            "{point}: rows went first, the tenant row stays"
        );
        match *point {
            "purge-postgres" => assert_eq!((documents, versions), (1, 2), "{point}"),
            "purge-mongo" => assert_eq!((documents, versions), (0, 2), "{point}"),
            _ => assert_eq!((documents, versions), (0, 1), "{point}: one version gone"),
        }

        let next = purging_serve(&fixture, None);
        let deadline = Instant::now() + Duration::from_secs(90);
        while left_of(&stores, &config, &doomed).await != (0, 0, 0, 0) {
            assert!(
                Instant::now() < deadline,
                "{point}: the next run never completed the purge\n{}",
                next.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let stderr = next.stderr();
        assert_eq!(next.stop(), Some(0), "{stderr}");
        assert_eq!(
            left_of(&stores, &config, &kept).await,
            kept_before,
            "{point}"
        );
    }
}
