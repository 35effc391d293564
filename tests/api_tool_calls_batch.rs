//! Tool-call batch ingest through `strata serve`, PgBouncer and MongoDB:
//! 1,000 calls land in both stores; a retried batch adds nothing to
//! either; a batch interrupted between the stores (MongoDB written,
//! PostgreSQL refused) is completed by its retry; an oversized payload is
//! refused for its call alone; no summary points at a missing payload;
//! the TTL index of `tool_call_logs` has the configured seconds.

mod common;

use common::api::{Api, assert_problem};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};
use sqlx::Connection;

fn ulid() -> String {
    ulid::Ulid::generate().to_string()
}

fn calls(count: usize, padding: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({
                "ref": ulid(),
                "toolName": "search",
                "method": "query",
                "status": if i % 2 == 0 { "succeeded" } else { "started" },
                "durationMs": i,
                "request": {"q": format!("question {i}"), "pad": "x".repeat(padding)},
                "response": {"hits": [i, i + 1], "ok": true},
            })
        })
        .collect()
}

fn outcomes(report: &Value) -> Vec<String> {
    report["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["outcome"].as_str().expect("outcome").to_string())
        .collect()
}

struct Stores {
    owner: sqlx::PgConnection,
    logs: mongodb::Collection<Document>,
}

impl Stores {
    async fn open(api: &Api) -> Stores {
        let owner = sqlx::PgConnection::connect(&api.fixture.direct_url())
            .await
            .expect("owner connection");
        let client = mongodb::Client::with_uri_str(&common::deps().mongo_url)
            .await
            .expect("mongo client");
        Stores {
            owner,
            logs: client
                .database(&api.fixture.mongo_database)
                .collection("tool_call_logs"),
        }
    }

    /// (summaries, payload documents) of a tenant.
    async fn counts(&mut self, tenant: &str) -> (i64, u64) {
        let (rows,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM tool_calls c JOIN tenants t ON t.id = c.tenant_id \
             WHERE t.ref_id = $1",
        )
        .bind(tenant)
        .fetch_one(&mut self.owner)
        .await
        .expect("count summaries");
        let documents = self
            .logs
            .count_documents(doc! {"tenantId": tenant})
            .await
            .expect("count payloads");
        (rows, documents)
    }

    /// Every payloadRef of the tenant's summaries names one of its payloads.
    async fn dangling(&mut self, tenant: &str) -> usize {
        let refs: Vec<(String,)> = sqlx::query_as(
            "SELECT c.payload_ref::text FROM tool_calls c JOIN tenants t ON t.id = c.tenant_id \
             WHERE t.ref_id = $1 AND c.payload_ref IS NOT NULL",
        )
        .bind(tenant)
        .fetch_all(&mut self.owner)
        .await
        .expect("payload refs");
        let mut missing = 0;
        for chunk in refs.chunks(500) {
            let wanted: Vec<&str> = chunk.iter().map(|(r,)| r.as_str()).collect();
            let found = self
                .logs
                .count_documents(doc! {"tenantId": tenant, "refId": {"$in": &wanted}})
                .await
                .expect("find payloads");
            missing += wanted.len() - found as usize;
        }
        missing
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_lands_in_both_stores_once_and_an_interrupted_one_completes_on_retry() {
    let api = Api::start(
        "api-tcb",
        &[
            ("STRATA_API__MAX_PAYLOAD_BYTES", "4096"),
            ("STRATA_MONGO__TOOL_CALL_LOGS_TTL_DAYS", "3"),
        ],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let url = format!("/v1/tenants/{tenant}/tool-calls:batch");
    let mut stores = Stores::open(&api).await;

    // 1,000 calls of ~1.2 KB: above api.max_body_bytes (1 MiB) as a whole,
    // within the batch limit.
    let batch = json!({"calls": calls(1000, 1100)});
    assert!(batch.to_string().len() > 1024 * 1024);
    let report = api.post(&url, &token, batch.clone()).await;
    assert_eq!(
        report.status,
        200,
        "{}",
        report.text.chars().take(500).collect::<String>()
    );
    assert_eq!(report.body["created"], 1000);
    assert_eq!(stores.counts(&tenant).await, (1000, 1000));
    assert_eq!(stores.dangling(&tenant).await, 0);
    // What was stored is what was sent, in both stores.
    let first = &batch["calls"][0];
    let first_ref = first["ref"].as_str().expect("ref").to_string();
    let first_ref = first_ref.as_str();
    let stored = api
        .get(
            &format!("/v1/tenants/{tenant}/tool-calls/{first_ref}"),
            &token,
        )
        .await;
    assert_eq!(
        (
            stored.body["status"].as_str(),
            stored.body["payloadRef"].as_str(),
            stored.body["durationMs"].as_i64()
        ),
        (Some("succeeded"), Some(first_ref), Some(0))
    );
    assert!(stored.body["finishedAt"].is_string());
    let item = format!("/v1/tenants/{tenant}/tool-calls/{first_ref}");
    let history = api.history(&item, &token).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].0, "create");
    assert_eq!(history[0].1["after"]["payloadRef"], first_ref);
    let payload = stores
        .logs
        .find_one(doc! {"tenantId": &tenant, "refId": first_ref})
        .await
        .expect("find")
        .expect("the payload");
    assert_eq!(
        payload.get_document("request").and_then(|r| r.get_str("q")),
        Ok("question 0")
    );
    assert_eq!(payload.get_str("toolCallRef"), Ok(first_ref));

    // The retry adds nothing anywhere.
    let retry = api.post(&url, &token, batch.clone()).await;
    assert_eq!(retry.status, 200);
    assert_eq!(outcomes(&retry.body), vec!["existing"; 1000]);
    assert_eq!(
        api.history(&item, &token).await.len(),
        1,
        "a retry adds no diff"
    );
    assert_eq!(stores.counts(&tenant).await, (1000, 1000));

    // Interrupted between the stores: PostgreSQL refuses every summary
    // (a constraint added for the test), after MongoDB took the payloads.
    sqlx::query("ALTER TABLE tool_calls ADD CONSTRAINT test_interrupt CHECK (false) NOT VALID")
        .execute(&mut stores.owner)
        .await
        .expect("interrupt");
    let second = json!({"calls": calls(100, 10)});
    let cut = api.post(&url, &token, second.clone()).await;
    assert!(cut.status >= 400, "{cut:?}");
    assert_eq!(stores.counts(&tenant).await, (1000, 1100), "payloads only");
    assert_eq!(stores.dangling(&tenant).await, 0);
    sqlx::query("ALTER TABLE tool_calls DROP CONSTRAINT test_interrupt")
        .execute(&mut stores.owner)
        .await
        .expect("resume");
    let completed = api.post(&url, &token, second).await;
    assert_eq!(
        outcomes(&completed.body),
        vec!["created"; 100],
        "{completed:?}"
    );
    assert_eq!(stores.counts(&tenant).await, (1100, 1100));
    assert_eq!(stores.dangling(&tenant).await, 0);

    // Per call: a payload over 4096 bytes, a repeated ref; the others land.
    let mut mixed = calls(3, 10);
    mixed[1]["request"]["pad"] = json!("x".repeat(5000));
    mixed[2]["ref"] = mixed[0]["ref"].clone();
    let no_payload = json!({"ref": ulid(), "toolName": "t", "method": "m"});
    mixed.push(no_payload.clone());
    let report = api.post(&url, &token, json!({"calls": mixed})).await;
    assert_eq!(
        outcomes(&report.body),
        vec!["created", "refused", "refused", "created"],
        "{report:?}"
    );
    assert_eq!(
        report.body["items"][1]["error"]["code"],
        "payload_too_large"
    );
    assert_eq!(report.body["items"][2]["error"]["code"], "duplicate_ref");
    assert_eq!(stores.counts(&tenant).await, (1102, 1101));
    let plain = api
        .get(
            &format!(
                "/v1/tenants/{tenant}/tool-calls/{}",
                no_payload["ref"].as_str().expect("ref")
            ),
            &token,
        )
        .await;
    assert_eq!(
        plain.body["payloadRef"],
        Value::Null,
        "no payload, no pointer"
    );

    // Whole-batch refusals.
    let mut invalid = calls(2, 10);
    invalid[1]["toolName"] = json!("");
    let refused = api.post(&url, &token, json!({"calls": invalid})).await;
    assert_problem(&refused, 422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "calls[1].toolName");
    let refused = api
        .post(&url, &token, json!({"calls": calls(1001, 0)}))
        .await;
    assert_problem(&refused, 422, "too_many_items");
    assert_eq!(stores.counts(&tenant).await, (1102, 1101));

    // Another tenant sees none of it, and cannot take its refs.
    let other = api.tenant("other").await;
    let other_token = api.token(Some(&other)).await;
    let reuse = json!({"calls": [{"ref": first_ref, "toolName": "t", "method": "m",
                                  "request": {"stolen": true}}]});
    let report = api
        .post(
            &format!("/v1/tenants/{other}/tool-calls:batch"),
            &other_token,
            reuse,
        )
        .await;
    assert_eq!(
        report.body["items"][0]["error"]["code"], "ref_taken",
        "{report:?}"
    );
    assert_eq!(stores.counts(&other).await.0, 0);

    // The TTL index has the configured 3 days.
    let mut indexes = stores.logs.list_indexes().await.expect("indexes");
    let mut ttl = None;
    while indexes.advance().await.expect("next index") {
        let index = indexes.deserialize_current().expect("index");
        if let Some(options) = index.options
            && let Some(after) = options.expire_after
        {
            ttl = Some((index.keys, after.as_secs()));
        }
    }
    assert_eq!(ttl, Some((doc! {"createdOn": 1}, 3 * 86_400)));
}
