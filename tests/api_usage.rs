//! Usage events and billing through `strata serve` and PgBouncer: the
//! idempotent single and batch create (a retry records nothing new), per-
//! item refusals, the batch limit, and the monthly summary against a
//! reference computed here from 100,000 events generated in SQL, many of
//! them on the first and last microsecond of a month; then the admin-wide
//! summary across tenants on the admin listener.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::api::{Api, assert_problem};
use serde_json::{Value, json};
use sqlx::Connection;

const ADMIN_TOKEN: &str = "usage-admin-token";

fn ulid() -> String {
    ulid::Ulid::generate().to_string()
}

fn outcomes(report: &Value) -> Vec<String> {
    report["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["outcome"].as_str().expect("outcome").to_string())
        .collect()
}

async fn start() -> Api {
    let hash = strata::api::auth::token_sha256(ADMIN_TOKEN);
    Api::start(
        "api-usage",
        &[
            ("STRATA_API__MAX_BATCH_ITEMS", "50"),
            ("STRATA_ADMIN__TOKEN_SHA256", hash.as_str()),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_events_are_recorded_once_per_ref() {
    let api = start().await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("other").await;
    let other_token = api.token(Some(&other)).await;
    let base = format!("/v1/tenants/{tenant}/usage-events");

    // One event with a ref: 201, then the retry is 200 with the same event.
    let event_ref = ulid();
    let body = json!({"ref": event_ref, "metric": "tokens.input", "quantity": 7});
    let first = api.post(&base, &token, body.clone()).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["ref"], event_ref.as_str());
    assert_eq!(
        first.header("location"),
        Some(format!("{base}/{event_ref}").as_str())
    );
    let again = api.post(&base, &token, body).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body, first.body);
    // The same ref from another tenant is not theirs to reuse.
    let taken = api
        .post(
            &format!("/v1/tenants/{other}/usage-events"),
            &other_token,
            json!({"ref": event_ref, "metric": "tokens.input", "quantity": 1}),
        )
        .await;
    assert_problem(&taken, 409, "conflict");

    // A batch: created, then all existing on retry; one statement each.
    let activity = api
        .post(
            &format!("/v1/tenants/{tenant}/activities"),
            &token,
            json!({"kind": "seed"}),
        )
        .await;
    let activity_ref = activity.body["ref"].as_str().expect("ref").to_string();
    let refs: Vec<String> = (0..5).map(|_| ulid()).collect();
    let batch = json!({"events": refs.iter().enumerate().map(|(i, r)| json!({
        "ref": r, "metric": "calls", "quantity": i, "activityRef": activity_ref,
        "occurredAt": "2026-01-31T23:59:59.999999Z",
    })).collect::<Vec<_>>()});
    let batch_url = format!("/v1/tenants/{tenant}/usage-events:batch");
    let report = api.post(&batch_url, &token, batch.clone()).await;
    assert_eq!(report.status, 200, "{report:?}");
    assert_eq!(outcomes(&report.body), vec!["created"; 5]);
    assert_eq!(
        (
            report.body["created"].as_u64(),
            report.body["existing"].as_u64()
        ),
        (Some(5), Some(0))
    );
    let retry = api.post(&batch_url, &token, batch).await;
    assert_eq!(outcomes(&retry.body), vec!["existing"; 5], "{retry:?}");
    // Each batch-created event has its create diff, and the retry adds none.
    for r in &refs {
        let history = api.history(&format!("{base}/{r}"), &token).await;
        assert_eq!(history.len(), 1, "{r}: {history:?}");
        assert_eq!(history[0].0, "create");
        assert_eq!(history[0].1["after"]["ref"], json!(r));
    }
    let listed = api.get(&format!("{base}?limit=200"), &token).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(6));

    // Per item: a repeated ref, another tenant's ref, an activity of
    // another tenant; the rest of the batch is recorded.
    let fresh = ulid();
    let mixed = json!({"events": [
        {"ref": fresh, "metric": "calls", "quantity": 1},
        {"ref": fresh, "metric": "calls", "quantity": 2},
        {"ref": ulid(), "metric": "calls", "quantity": 3, "activityRef": ulid()},
        {"ref": refs[0], "metric": "calls", "quantity": 4},
    ]});
    let report = api
        .post(
            &format!("/v1/tenants/{other}/usage-events:batch"),
            &other_token,
            mixed,
        )
        .await;
    assert_eq!(report.status, 200, "{report:?}");
    assert_eq!(
        outcomes(&report.body),
        vec!["created", "refused", "refused", "refused"]
    );
    let codes: Vec<&str> = report.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["error"]["code"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        codes,
        vec!["-", "duplicate_ref", "validation_failed", "ref_taken"]
    );
    assert_eq!(report.body["items"][2]["error"]["field"], "activityRef");

    // What the schema says refuses the whole batch, before anything is written.
    let bad = api
        .post(
            &batch_url,
            &token,
            json!({"events": [
                {"ref": ulid(), "metric": "calls", "quantity": 1},
                {"ref": ulid(), "metric": "Calls!", "quantity": 1},
            ]}),
        )
        .await;
    assert_problem(&bad, 422, "validation_failed");
    assert_eq!(bad.body["errors"][0]["field"], "events[1].metric");
    let too_many = json!({"events": (0..51).map(|_| json!({
        "ref": ulid(), "metric": "calls", "quantity": 1
    })).collect::<Vec<_>>()});
    let refused = api.post(&batch_url, &token, too_many).await;
    assert_problem(&refused, 422, "too_many_items");
    let empty = api.post(&batch_url, &token, json!({"events": []})).await;
    assert_problem(&empty, 422, "validation_failed");
    let listed = api.get(&format!("{base}?limit=200"), &token).await;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(6),
        "nothing more"
    );
}

/// The reference: sums per (month, metric) computed here, in UTC, from the
/// rows themselves.
fn reference(
    rows: &[(DateTime<Utc>, String, i64)],
    from: &str,
    to: &str,
) -> BTreeMap<(String, String), (i64, i64)> {
    let mut sums = BTreeMap::new();
    for (at, metric, quantity) in rows {
        let month = at.format("%Y-%m").to_string();
        if month.as_str() < from || month.as_str() > to {
            continue;
        }
        let entry = sums.entry((month, metric.clone())).or_insert((0, 0));
        entry.0 += quantity;
        entry.1 += 1;
    }
    sums
}

fn summary_map(items: &Value, tenant: Option<&str>) -> BTreeMap<(String, String), (i64, i64)> {
    items
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| tenant.is_none_or(|t| i["tenantRef"] == t))
        .map(|i| {
            (
                (
                    i["month"].as_str().expect("month").to_string(),
                    i["metric"].as_str().expect("metric").to_string(),
                ),
                (
                    i["quantity"].as_i64().expect("quantity"),
                    i["events"].as_i64().expect("events"),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_summary_matches_a_reference_on_100000_events() {
    let api = start().await;
    let tenant = api.tenant("billed").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("neighbour").await;

    // 100,000 events over 14 months from 2025-11, as the migration role:
    // every 5th on a month's first microsecond, every 5th + 1 on the last
    // microsecond before a month starts; 3 metrics; 500 soft-deleted; and
    // 1,000 of another tenant's in the same months.
    let mut owner = sqlx::PgConnection::connect(&api.fixture.direct_url())
        .await
        .expect("owner connection");
    let generate = "\
        INSERT INTO usage_events (ref_id, tenant_id, metric, quantity, occurred_on, deleted_on) \
        SELECT $3 || lpad(upper(to_hex(i)), 24, '0'), \
               (SELECT id FROM tenants WHERE ref_id = $1), \
               (ARRAY['tokens.input', 'tokens.output', 'images'])[1 + i % 3], \
               (i * 7919) % 1000, \
               CASE i % 5 \
                 WHEN 0 THEN timestamptz '2025-11-01 00:00:00+00' + make_interval(months => i % 14) \
                 WHEN 1 THEN timestamptz '2025-11-01 00:00:00+00' + make_interval(months => i % 14) \
                             - interval '1 microsecond' \
                 ELSE timestamptz '2025-11-01 00:00:00+00' + make_interval(secs => (i::bigint * 36721) % 36000000) \
               END, \
               CASE WHEN $4 AND i % 200 = 7 THEN now() END \
        FROM generate_series(1, $2) AS i";
    for (tenant_ref, count, prefix, with_deleted) in
        [(&tenant, 100_000, "01", true), (&other, 1_000, "02", false)]
    {
        sqlx::query(generate)
            .bind(tenant_ref)
            .bind(count)
            .bind(prefix)
            .bind(with_deleted)
            .execute(&mut owner)
            .await
            .expect("generate events");
    }
    let rows: Vec<(DateTime<Utc>, String, i64)> = sqlx::query_as(
        "SELECT u.occurred_on, u.metric, u.quantity FROM usage_events u \
         JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.ref_id = $1 AND u.deleted_on IS NULL",
    )
    .bind(&tenant)
    .fetch_all(&mut owner)
    .await
    .expect("read back");
    assert_eq!(rows.len(), 99_500);
    let on_boundary = rows
        .iter()
        .filter(|(at, _, _)| at.format("%d %H:%M:%S%.6f").to_string() == "01 00:00:00.000000")
        .count();
    assert!(
        on_boundary >= 19_000,
        "{on_boundary} events on a month's first instant"
    );

    for (from, to) in [
        ("2025-12", "2026-11"),
        ("2025-10", "2027-02"),
        ("2026-03", "2026-03"),
    ] {
        let summary = api
            .get(
                &format!("/v1/tenants/{tenant}/usage/summary?from={from}&to={to}"),
                &token,
            )
            .await;
        assert_eq!(summary.status, 200, "{summary:?}");
        assert_eq!(
            (summary.body["from"].as_str(), summary.body["to"].as_str()),
            (Some(from), Some(to))
        );
        let expected = reference(&rows, from, to);
        assert!(!expected.is_empty());
        assert_eq!(
            summary_map(&summary.body["items"], None),
            expected,
            "{from}..{to}"
        );
    }

    for (query, field) in [
        ("from=2026-03&to=2026-02", "to"),
        ("from=2026-13&to=2026-12", "from"),
        ("from=2026-1&to=2026-12", "from"),
    ] {
        let refused = api
            .get(
                &format!("/v1/tenants/{tenant}/usage/summary?{query}"),
                &token,
            )
            .await;
        assert_problem(&refused, 422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], field, "{query}");
    }

    // Across tenants, on the admin listener, with the admin token only.
    let url = format!(
        "{}/admin/usage/summary?from=2025-10&to=2027-02",
        api.served.admin
    );
    let unauthorized = api.client.get(&url).send().await.expect("admin answers");
    assert_eq!(unauthorized.status(), 401);
    let all: Value = api
        .client
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        summary_map(&all["items"], Some(&tenant)),
        reference(&rows, "2025-10", "2027-02")
    );
    let other_events: i64 = summary_map(&all["items"], Some(&other))
        .values()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        other_events, 1_000,
        "all of the neighbour's, in their own rows"
    );
}
