//! Activities end to end through `strata serve` and PgBouncer: create, get,
//! list pages and filters, update with and without a stale ETag,
//! transitions legal and illegal (PostgreSQL's refusal as 409), concurrent
//! transitions, soft delete, and the request-level limits and errors.

mod common;

use common::api::{Api, assert_problem};
use reqwest::Method;
use serde_json::{Value, json};

fn refs(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["ref"].as_str().expect("ref").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn activities_create_get_list_update_transition_delete() {
    let api = Api::start("api-act", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let base = format!("/v1/tenants/{tenant}/activities");

    // Create: 201, Location, ETag, camelCase, only refs.
    let created = api
        .call(
            Method::POST,
            &base,
            Some(&token),
            Some(&json!({"kind": "blog"})),
            &[("x-request-id", "test-create-1")],
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.header("x-request-id"), Some("test-create-1"));
    let first = created.body["ref"].as_str().expect("ref").to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("{base}/{first}").as_str())
    );
    assert!(created.header("etag").is_some());
    assert_eq!(created.body["status"], "queued");
    assert_eq!(created.body["kind"], "blog");
    for hidden in ["id", "tenantId", "tenant_id", "createdOn"] {
        assert!(
            created.body.get(hidden).is_none(),
            "{hidden}: {}",
            created.body
        );
    }
    let created_at = created.body["createdAt"].as_str().expect("createdAt");
    assert!(created_at.ends_with('Z'), "RFC 3339 UTC: {created_at}");

    // Get: the same activity and the same ETag.
    let got = api.get(&format!("{base}/{first}"), &token).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.body, created.body);
    assert_eq!(got.header("etag"), created.header("etag"));

    // Four more (one running): five in all, listed in pages of two.
    let mut all = vec![first.clone()];
    for (i, status) in ["queued", "running", "queued", "queued"].iter().enumerate() {
        let reply = api
            .post(
                &base,
                &token,
                json!({"kind": format!("k{i}"), "status": status}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        assert_eq!(reply.body["status"], *status);
        all.push(reply.body["ref"].as_str().expect("ref").to_string());
    }
    let mut seen = Vec::new();
    let mut path = format!("{base}?limit=2");
    let mut pages = 0;
    loop {
        let page = api.get(&path, &token).await;
        assert_eq!(page.status, 200, "{page:?}");
        pages += 1;
        let items = refs(&page.body);
        assert!(items.len() <= 2);
        seen.extend(items);
        match page.body["next"].as_str() {
            Some(next) => path = format!("{base}?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "every activity once, in ref order");

    // Filters: status, created range.
    let running = api.get(&format!("{base}?status=running"), &token).await;
    assert_eq!(refs(&running.body), vec![all[2].clone()]);
    let future = "2999-01-01T00:00:00Z";
    let none = api
        .get(&format!("{base}?createdFrom={future}"), &token)
        .await;
    assert_eq!(refs(&none.body), Vec::<String>::new());
    let before = api
        .get(&format!("{base}?createdBefore={future}&limit=200"), &token)
        .await;
    assert_eq!(refs(&before.body).len(), 5);
    assert_problem(
        &api.get(&format!("{base}?limit=201"), &token).await,
        422,
        "validation_failed",
    );
    assert_problem(
        &api.get(&format!("{base}?status=bogus"), &token).await,
        422,
        "validation_failed",
    );
    assert_problem(
        &api.get(&format!("{base}?cursor=nope"), &token).await,
        422,
        "validation_failed",
    );

    // Update: If-Match required, a stale one refused, a current one wins.
    let one = format!("{base}/{first}");
    let etag = created.header("etag").expect("etag").to_string();
    let change = json!({"kind": "renamed", "error": "note"});
    let missing = api
        .call(Method::PATCH, &one, Some(&token), Some(&change), &[])
        .await;
    assert_problem(&missing, 428, "precondition_required");
    let updated = api
        .call(
            Method::PATCH,
            &one,
            Some(&token),
            Some(&change),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(updated.status, 200, "{updated:?}");
    assert_eq!(
        (
            updated.body["kind"].as_str(),
            updated.body["error"].as_str()
        ),
        (Some("renamed"), Some("note"))
    );
    let new_etag = updated.header("etag").expect("etag").to_string();
    assert_ne!(new_etag, etag);
    let stale = api
        .call(
            Method::PATCH,
            &one,
            Some(&token),
            Some(&json!({"kind": "lost"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_problem(&stale, 412, "precondition_failed");
    assert_eq!(
        api.get(&one, &token).await.body["kind"],
        "renamed",
        "the stale write changed nothing"
    );
    // null clears a nullable field; absent fields stay.
    let cleared = api
        .call(
            Method::PATCH,
            &one,
            Some(&token),
            Some(&json!({"error": null})),
            &[("if-match", &new_etag)],
        )
        .await;
    assert_eq!(cleared.status, 200, "{cleared:?}");
    assert_eq!(
        (cleared.body["error"].clone(), cleared.body["kind"].clone()),
        (Value::Null, json!("renamed"))
    );
    // Unknown fields (the status among them) and bad values are refused.
    let unknown = api
        .call(
            Method::PATCH,
            &one,
            Some(&token),
            Some(&json!({"status": "running"})),
            &[("if-match", "*")],
        )
        .await;
    assert_problem(&unknown, 422, "validation_failed");
    assert!(
        unknown.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("status"),
        "{unknown:?}"
    );
    let empty_kind = api.post(&base, &token, json!({"kind": ""})).await;
    assert_problem(&empty_kind, 422, "validation_failed");
    assert_eq!(empty_kind.body["errors"][0]["field"], "kind");
    let bad_json = api
        .call(
            Method::POST,
            &base,
            Some(&token),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_problem(&bad_json, 400, "invalid_json");

    // Transitions: legal, then illegal with PostgreSQL's allowed states.
    let transitions = format!("{one}/transitions");
    let started = api
        .post(&transitions, &token, json!({"to": "running"}))
        .await;
    assert_eq!(started.status, 200, "{started:?}");
    assert_eq!(started.body["status"], "running");
    assert!(started.body["startedAt"].is_string());
    let back = api
        .post(&transitions, &token, json!({"to": "queued"}))
        .await;
    assert_problem(&back, 409, "illegal_transition");
    assert_eq!(back.body["currentState"], "running");
    assert_eq!(
        back.body["allowedStates"],
        json!(["cancelled", "failed", "succeeded"])
    );
    let done = api
        .post(&transitions, &token, json!({"to": "succeeded"}))
        .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body["finishedAt"].is_string());
    let after_end = api
        .post(&transitions, &token, json!({"to": "failed"}))
        .await;
    assert_problem(&after_end, 409, "illegal_transition");
    assert_eq!(after_end.body["allowedStates"], json!([]));

    // Soft delete: 204, then 404 everywhere, and gone from lists.
    let deleted = api
        .call(Method::DELETE, &one, Some(&token), None, &[])
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_problem(&api.get(&one, &token).await, 404, "not_found");
    assert_problem(
        &api.call(Method::DELETE, &one, Some(&token), None, &[])
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &api.post(&transitions, &token, json!({"to": "failed"}))
            .await,
        404,
        "not_found",
    );
    let listed = api.get(&format!("{base}?limit=200"), &token).await;
    assert!(!refs(&listed.body).contains(&first));
    assert_eq!(refs(&listed.body).len(), 4);

    // A malformed ref is refused by the path extractor.
    assert_problem(
        &api.get(&format!("{base}/not-a-ulid"), &token).await,
        400,
        "invalid_ref",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_concurrent_transitions_exactly_one_wins() {
    let api = Api::start("api-race", &[]).await;
    let tenant = api.tenant("race").await;
    let token = api.token(Some(&tenant)).await;
    let base = format!("/v1/tenants/{tenant}/activities");
    for round in 0..5 {
        let created = api
            .post(
                &base,
                &token,
                json!({"kind": format!("race{round}"), "status": "running"}),
            )
            .await;
        let path = format!(
            "{base}/{}/transitions",
            created.body["ref"].as_str().expect("ref")
        );
        let (a, b) = tokio::join!(
            api.post(&path, &token, json!({"to": "succeeded"})),
            api.post(&path, &token, json!({"to": "failed"})),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{a:?}\n{b:?}");
        let loser = if a.status == 409 { &a } else { &b };
        let winner = if a.status == 200 { &a } else { &b };
        assert_eq!(loser.body["currentState"], winner.body["status"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn body_size_and_depth_limits_are_problems() {
    let api = Api::start(
        "api-limits",
        &[
            ("STRATA_API__MAX_BODY_BYTES", "2048"),
            ("STRATA_API__MAX_JSON_DEPTH", "4"),
        ],
    )
    .await;
    let tenant = api.tenant("limits").await;
    let token = api.token(Some(&tenant)).await;
    let base = format!("/v1/tenants/{tenant}/activities");
    let large = api
        .post(&base, &token, json!({"kind": "x".repeat(4096)}))
        .await;
    assert_problem(&large, 413, "body_too_large");
    let deep = api
        .post(
            &base,
            &token,
            json!({"kind": "x", "status": [[[["queued"]]]]}),
        )
        .await;
    assert_problem(&deep, 422, "json_too_deep");
    let plain = api
        .call(
            Method::POST,
            &base,
            Some(&token),
            None,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_problem(&plain, 415, "unsupported_media_type");
    // Within the limits the same route works.
    assert_eq!(
        api.post(&base, &token, json!({"kind": "fits"}))
            .await
            .status,
        201
    );
}
