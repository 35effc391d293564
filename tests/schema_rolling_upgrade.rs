//! The migration runner, ready for rolling upgrades: migrations see every
//! tenant's rows (a backfill works), DDL waits for its locks only for
//! `postgres.migration_lock_timeout_secs` and is retried, and an older
//! binary keeps serving on a newer schema only when every newer migration
//! is declared compatible.

mod common;

use std::time::Duration;

use common::serve::Served;
use sqlx::{Connection, PgConnection};
use strata::retry::Backoff;
use strata::schema::SchemaError;
use strata::schema::postgres::{self, LockPolicy, Migration, embedded_migrations};
use strata::stores::Stores;

fn quick_locks(attempts: u32) -> LockPolicy {
    LockPolicy {
        lock_timeout: Duration::from_millis(300),
        attempts,
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(200)),
    }
}

async fn apply(
    stores: &Stores,
    migrations: &[Migration],
    locks: &LockPolicy,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<String>, SchemaError> {
    let mut direct = stores.postgres.connect_direct().await.expect("direct");
    let plan = postgres::plan(&mut direct, migrations, Some(&common::deps().pg_app_user))
        .await
        .expect("plan");
    postgres::apply(&mut direct, &plan, locks, progress).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_backfills_every_tenants_rows() {
    let fixture = common::Fixture::new("backfill").await;
    let config = fixture.config();
    let stores = Stores::new(&config).await.expect("stores");
    let all = embedded_migrations().expect("embedded");
    // The schema as it was before 0005 (tool calls without finish times).
    let before: Vec<Migration> = all.iter().filter(|m| m.version < 5).cloned().collect();
    apply(&stores, &before, &quick_locks(1), &|_| {})
        .await
        .expect("up to 0004");
    let pg = &stores.postgres;
    let mut tenants = Vec::new();
    for slug in ["one", "two"] {
        let (tenant, _) = common::create_tenant(pg, slug).await;
        let mut tx = pg.begin_tenant(tenant).await.expect("begin");
        pg.query(
            "INSERT INTO tool_calls (ref_id, tenant_id, tool_name, method, status, started_on, \
             duration_ms) VALUES ($1, $2, 't', 'm', 'succeeded', '2026-01-01T00:00:00Z', 1500)",
        )
        .bind(ulid::Ulid::generate().to_string())
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .expect("a finished call without its finish time");
        tx.commit().await.expect("commit");
        tenants.push(tenant);
    }

    let done = apply(&stores, &all, &quick_locks(1), &|_| {})
        .await
        .expect("0005 and later");
    assert!(
        done.iter().any(|d| d.contains("0005_state_machines")),
        "{done:?}"
    );
    for tenant in tenants {
        let mut tx = pg.begin_tenant(tenant).await.expect("begin");
        let finished: Vec<(Option<String>,)> = pg
            .query_as(
                "SELECT to_char(finished_on AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') FROM tool_calls",
            )
            .fetch_all(&mut *tx)
            .await
            .expect("read back");
        assert_eq!(
            finished,
            vec![(Some("00:00:01.500".to_string()),)],
            "{tenant}"
        );
        tx.commit().await.expect("commit");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_waits_for_its_locks_only_briefly_and_is_retried() {
    let fixture = common::Fixture::new("ddllock").await;
    let stores = fixture.migrated_stores().await;
    let pg = &stores.postgres;
    let (tenant, _) = common::create_tenant(pg, "busy").await;
    let mut all = embedded_migrations().expect("embedded");
    all.push(
        Migration::new(
            "9001_activity_note.sql",
            "ALTER TABLE activities ADD COLUMN note text;",
        )
        .expect("migration"),
    );

    // An older instance's long transaction holds a lock on activities.
    let mut blocker = pg.begin_tenant(tenant).await.expect("begin");
    pg.query("SELECT count(*) FROM activities")
        .execute(&mut *blocker)
        .await
        .expect("read");

    // With too few attempts the upgrade gives up, transiently, changing nothing.
    let gave_up = apply(&stores, &all, &quick_locks(2), &|_| {}).await;
    match &gave_up {
        Err(
            error @ SchemaError::Store {
                transient: true, ..
            },
        ) => {
            assert!(error.to_string().contains("9001_activity_note"), "{error}")
        }
        other => panic!("expected a transient lock failure, got {other:?}"),
    }

    // With enough attempts it waits between them without queueing traffic:
    // once it has been refused a lock, a new reader of the table is served.
    let (retrying_tx, mut retrying) = tokio::sync::mpsc::unbounded_channel::<String>();
    let progress = move |line: &str| {
        if line.contains("retrying") {
            let _ = retrying_tx.send(line.to_string());
        }
    };
    let upgrade = {
        let stores = stores.clone();
        let all = all.clone();
        tokio::spawn(async move { apply(&stores, &all, &quick_locks(200), &progress).await })
    };
    let line = tokio::time::timeout(Duration::from_secs(30), retrying.recv())
        .await
        .expect("the migration reports a lock wait")
        .expect("a line");
    assert!(line.contains("9001_activity_note"), "{line}");
    let mut reader = pg.begin_tenant(tenant).await.expect("begin");
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        pg.query("SELECT count(*) FROM activities")
            .execute(&mut *reader),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "a reader queued behind the migration: {read:?}"
    );
    reader.commit().await.expect("commit reader");

    blocker.commit().await.expect("the long transaction ends");
    let done = upgrade
        .await
        .expect("task")
        .expect("applied after the lock was freed");
    assert!(
        done.iter().any(|d| d.contains("9001_activity_note")),
        "{done:?}"
    );
}

async fn pretend_newer(fixture: &common::Fixture, compatible: bool) {
    let mut direct = PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    sqlx::query(
        "INSERT INTO strata_schema_history \
            (version, name, checksum, execution_ms, applied_by, compatible) \
         VALUES (9001, '9001_from_the_future', 'x', 1, 'strata 99', $1) \
         ON CONFLICT (version) DO UPDATE SET compatible = EXCLUDED.compatible",
    )
    .bind(compatible)
    .execute(&mut direct)
    .await
    .expect("pretend a newer strata migrated");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_binary_serves_on_a_compatible_newer_schema_but_never_migrates() {
    let fixture = common::Fixture::new("rolling").await;
    let (code, out, err) = common::run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    pretend_newer(&fixture, true).await;

    let (code, out, err) = common::run(fixture.strata(&["migrate"]));
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(
        err.contains("older than the database schema") && err.contains("9001_from_the_future"),
        "{err}"
    );
    let (code, out, err) = common::run(fixture.strata(&["check"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("WARN") && l.contains("9001_from_the_future")),
        "{out}"
    );

    let mut served = Served::start(
        fixture.strata(&["serve"]),
        fixture.admin_addr(),
        fixture.api_addr(),
    );
    assert!(
        served.wait_notification("READY=1", Duration::from_secs(60)),
        "{}",
        served.stderr()
    );
    let (status, body) = served
        .wait_readyz(Duration::from_secs(10), |status, _| status == 200)
        .await;
    assert_eq!(status, 200, "{body}");
    let schema_step = body["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == "schema"))
        .cloned()
        .unwrap_or_default();
    assert!(
        schema_step["detail"]
            .as_str()
            .is_some_and(|d| d.contains("9001_from_the_future") && d.contains("without migrating")),
        "{body}"
    );
    assert!(!served.stderr().contains("taking the schema lock"));
    assert_eq!(served.stop(), Some(0));

    // One newer migration that is not declared compatible: refused as before.
    pretend_newer(&fixture, false).await;
    let mut command = fixture.strata(&["serve"]);
    command.stdout(std::process::Stdio::null());
    let (code, _, err) = common::run(command);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("9001_from_the_future"), "{err}");
}
