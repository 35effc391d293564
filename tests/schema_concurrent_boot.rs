//! Eight `strata serve` processes booting at once on empty stores (serving
//! through PgBouncer, migrating on the direct URL): all become ready, and
//! every schema change is executed exactly once across all of them (counted
//! in their logs, so a duplicate execution that rolled back still shows);
//! a second wave on the current schema takes no lock at all.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::serve::Served;
use sqlx::{Connection, PgConnection};

const INSTANCES: usize = 8;

fn start_wave(fixture: &common::Fixture) -> Vec<Served> {
    (0..INSTANCES)
        .map(|_| {
            let api = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
            let admin = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
            let mut command = fixture.strata(&["serve"]);
            command
                .env("STRATA_API__LISTEN", api.to_string())
                .env("STRATA_ADMIN__LISTEN", admin.to_string())
                .env("STRATA_BOOT__DEPENDENCY_TIMEOUT_SECS", "60");
            Served::start(command, admin, api)
        })
        .collect()
}

async fn all_ready(wave: &mut [Served]) -> Duration {
    let started = Instant::now();
    for served in wave.iter_mut() {
        let ready = served.wait_notification("READY=1", Duration::from_secs(120));
        assert!(
            ready,
            "an instance did not become ready:\n{}",
            served.stderr()
        );
        let (status, body) = served
            .wait_readyz(Duration::from_secs(10), |status, _| status == 200)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["dependencies"]["postgres"]["ok"], true, "{body}");
    }
    started.elapsed()
}

/// Executions, counted: every time any instance logged `needle` (an
/// instance that began a migration and rolled back counts too).
fn count_logging(wave: &[Served], needle: &str) -> usize {
    wave.iter()
        .map(|s| s.stderr().matches(needle).count())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_instances_on_empty_stores_upgrade_exactly_once() {
    let fixture = common::Fixture::new("herd").await;
    let started = Instant::now();
    let mut wave = start_wave(&fixture);
    all_ready(&mut wave).await;
    eprintln!(
        "{INSTANCES} instances ready on empty stores after {:?}",
        started.elapsed()
    );

    let migrations = strata::schema::postgres::embedded_migrations().expect("embedded");
    for migration in &migrations {
        let needle = format!("applying migration {}", migration.name);
        assert_eq!(
            count_logging(&wave, &needle),
            1,
            "{needle}: exactly one instance"
        );
    }
    assert!(count_logging(&wave, "taking the schema lock") >= 1);
    for bucket in ["content", "contracts"] {
        let needle = format!("create bucket {}-{bucket}", fixture.bucket_prefix);
        assert_eq!(count_logging(&wave, &needle), 1, "{needle}: exactly once");
    }
    assert_eq!(
        count_logging(&wave, "create collection skills"),
        1,
        "one instance creates the collections"
    );
    let mut db = PgConnection::connect(&fixture.direct_url())
        .await
        .expect("direct");
    let recorded: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT version, count(*) FROM strata_schema_history GROUP BY version ORDER BY version",
    )
    .fetch_all(&mut db)
    .await
    .expect("history");
    assert_eq!(recorded.len(), migrations.len());
    assert!(recorded.iter().all(|(_, n)| *n == 1), "{recorded:?}");
    for served in wave {
        assert_eq!(served.stop(), Some(0));
    }

    // Restarting the fleet on a current schema: nobody queues on the lock.
    let started = Instant::now();
    let mut wave = start_wave(&fixture);
    all_ready(&mut wave).await;
    eprintln!(
        "{INSTANCES} instances ready on current stores after {:?}",
        started.elapsed()
    );
    assert_eq!(count_logging(&wave, "taking the schema lock"), 0);
    for served in wave {
        assert_eq!(served.stop(), Some(0));
    }
}
