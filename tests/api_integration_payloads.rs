//! Integration payloads through `strata serve` and MongoDB: append, list
//! by integration and by entity newest first in pages that do not overlap,
//! tenant isolation, refusals; the configured TTLs in `/admin/status`.

mod common;

use common::api::{Api, assert_problem};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "payloads-admin-token";

fn refs(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["ref"].as_str().expect("ref").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_are_appended_and_listed_newest_first_per_tenant() {
    let hash = strata::api::auth::token_sha256(ADMIN_TOKEN);
    let api = Api::start(
        "api-payloads",
        &[
            ("STRATA_MONGO__INTEGRATION_PAYLOADS_TTL_DAYS", "2"),
            ("STRATA_ADMIN__TOKEN_SHA256", hash.as_str()),
        ],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let integrations = format!("/v1/tenants/{tenant}/integrations");
    let mut integration_refs = Vec::new();
    for account in ["a", "b"] {
        let made = api
            .post(
                &integrations,
                &token,
                json!({"provider": "hubspot", "externalAccount": account}),
            )
            .await;
        integration_refs.push(made.body["ref"].as_str().expect("ref").to_string());
    }
    let (first, second) = (&integration_refs[0], &integration_refs[1]);
    let entity = ulid::Ulid::generate().to_string();
    let url = format!("/v1/tenants/{tenant}/integration-payloads");

    let mut appended = Vec::new();
    for i in 0..5 {
        let mut body = json!({
            "integrationRef": first,
            "direction": if i % 2 == 0 { "inbound" } else { "outbound" },
            "payload": {"n": i, "items": [1, "two", {"three": 3.5}], "nested": {"ok": true}},
        });
        if i >= 3 {
            body["entity"] = json!("blog_posts");
            body["entityRef"] = json!(entity);
        }
        let reply = api.post(&url, &token, body.clone()).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        assert_eq!(reply.body["payload"], body["payload"]);
        appended.push(reply.body["ref"].as_str().expect("ref").to_string());
    }
    let elsewhere = api
        .post(
            &url,
            &token,
            json!({"integrationRef": second, "direction": "inbound", "payload": "text"}),
        )
        .await;
    assert_eq!(elsewhere.status, 201);

    // By integration, newest first, two at a time.
    let newest_first: Vec<String> = appended.iter().rev().cloned().collect();
    let mut listed = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let mut query = format!("{url}?integrationRef={first}&limit=2");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let page = api.get(&query, &token).await;
        assert_eq!(page.status, 200, "{page:?}");
        listed.extend(refs(&page.body));
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(listed, newest_first);
    let one = api
        .get(&format!("{url}?integrationRef={first}&limit=1"), &token)
        .await;
    assert_eq!(one.body["items"][0]["payload"]["items"][2]["three"], 3.5);
    assert_eq!(one.body["items"][0]["entity"], "blog_posts");

    // By entity.
    let about = api.get(&format!("{url}?entityRef={entity}"), &token).await;
    assert_eq!(refs(&about.body), newest_first[..2].to_vec());

    // Another tenant sees none of them and cannot append to this integration.
    let other = api.tenant("other").await;
    let other_token = api.token(Some(&other)).await;
    let other_url = format!("/v1/tenants/{other}/integration-payloads");
    let theirs = api
        .get(&format!("{other_url}?integrationRef={first}"), &other_token)
        .await;
    assert_eq!(theirs.body["items"], json!([]));
    let refused = api
        .post(
            &other_url,
            &other_token,
            json!({"integrationRef": first, "direction": "inbound", "payload": {}}),
        )
        .await;
    assert_problem(&refused, 422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "integrationRef");

    for (body, field) in [
        (
            json!({"integrationRef": first, "direction": "inbound", "payload": 1, "entity": "x"}),
            "entityRef",
        ),
        (
            json!({"integrationRef": ulid::Ulid::generate().to_string(), "direction": "inbound", "payload": 1}),
            "integrationRef",
        ),
    ] {
        let refused = api.post(&url, &token, body).await;
        assert_problem(&refused, 422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], field);
    }
    let neither = api.get(&url, &token).await;
    assert_problem(&neither, 422, "validation_failed");

    // The TTLs as the server has them, in /admin/status.
    let status: Value = api
        .client
        .get(format!("{}/admin/status", api.served.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        status["mongo_ttl_secs"],
        json!({
            "integration_payloads": 2 * 86_400,
            "tool_call_logs": 30 * 86_400,
            "entity_diffs": 365 * 86_400,
        }),
        "{status}"
    );
}
