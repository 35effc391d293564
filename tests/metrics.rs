//! `GET /metrics` on the admin listener: valid by `promtool check metrics`
//! (Debian's prometheus package, installed by scripts/deps), moving under
//! traffic, labelled by route templates and never by a tenant or a ref.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::api::Api;
use serde_json::json;

fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|needle| l.contains(needle)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn promtool_check(text: &str) {
    let promtool = std::env::var("STRATA_TEST_PROMTOOL").expect("STRATA_TEST_PROMTOOL");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success(),
        "promtool check metrics refused:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_valid_and_move_under_traffic_without_refs_in_labels() {
    let api = Api::start("metrics", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let scrape = || async {
        let response = reqwest::get(format!("{}/metrics", api.served.admin))
            .await
            .expect("admin listener answers");
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/plain; version=0.0.4"))
        );
        response.text().await.expect("text")
    };

    let before = scrape().await;
    promtool_check(&before);
    for name in [
        "strata_build_info",
        "strata_boot_step_duration_seconds",
        "strata_schema_info",
    ] {
        assert!(before.contains(name), "{name} missing:\n{before}");
    }

    let route = "route=\"/v1/tenants/{tenantRef}/activities\"";
    let created_before = sample(
        &before,
        "strata_http_requests_total",
        &[route, "method=\"POST\"", "status=\"201\""],
    );
    let mut refs = Vec::new();
    for _ in 0..3 {
        let reply = api
            .post(
                &format!("/v1/tenants/{tenant}/activities"),
                &token,
                json!({"kind": "k"}),
            )
            .await;
        assert_eq!(reply.status, 201);
        refs.push(reply.body["ref"].as_str().expect("ref").to_string());
    }
    let after = scrape().await;
    promtool_check(&after);
    assert_eq!(
        sample(
            &after,
            "strata_http_requests_total",
            &[route, "method=\"POST\"", "status=\"201\""]
        ),
        created_before + 3.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            "strata_store_operations_total",
            &[
                "store=\"postgres\"",
                "operation=\"record_create\"",
                "outcome=\"ok\""
            ]
        ) >= 3.0
    );
    assert!(
        sample(
            &after,
            "strata_http_request_duration_seconds_count",
            &[route, "method=\"POST\""]
        ) >= 3.0
    );
    // The health monitor (every second in tests) reports the pools and the
    // audit outbox's backlog.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut text = after.clone();
    while !(text.contains("strata_outbox_backlog{outbox=\"audit\"}")
        && text.contains("strata_postgres_pool_connections{pool=\"serving\""))
    {
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        text = scrape().await;
    }
    // No tenant and no record ref in any label.
    assert!(!after.contains(&tenant), "a tenant ref in a label");
    for r in &refs {
        assert!(!after.contains(r.as_str()), "a record ref in a label");
    }
}

/// `strata_postgres_pool_connections{state="waiting"}` counts the callers
/// waiting for a connection: with a pool of one held by a transaction, a
/// second caller waits, and is counted until it has the connection.
#[tokio::test(flavor = "multi_thread")]
async fn callers_waiting_for_a_connection_are_counted() {
    let fixture = common::Fixture::new("metrics-wait").await;
    let mut config = fixture.config();
    config.postgres.pool_size = 1;
    let pg = strata::stores::postgres::Postgres::new(&config.postgres).expect("pool");
    let held = pg.begin().await.expect("the only connection");
    assert_eq!(pg.waiting_for_connection(), 0);
    let second = pg.clone();
    let waiter = tokio::spawn(async move { second.begin().await.map(|_| ()) });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pg.waiting_for_connection() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter was never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    held.rollback().await.expect("give the connection back");
    waiter
        .await
        .expect("task")
        .expect("the waiter gets the connection");
    assert_eq!(pg.waiting_for_connection(), 0, "no longer waiting");
}
