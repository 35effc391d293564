//! Every collection end to end through `strata serve` and PgBouncer, from
//! one table of cases: create (201, Location, ETag), get, list pages and
//! the status filter, PATCH without / with a stale / with the current
//! ETag, a legal and an illegal transition (PostgreSQL's refusal as 409
//! with the allowed states), soft delete (404 after, gone from lists).
//! Then what is particular to some collections: strategy activation
//! supersedes the active one, global skills are readable but not
//! writable, usage events are append-only, a tool call may be created
//! finished, references to another tenant's activity do not resolve.

mod common;

use common::api::{Api, Reply, assert_problem};
use reqwest::Method;
use serde_json::{Value, json};

struct Case {
    collection: &'static str,
    create: Value,
    /// A PATCH body and a field it changes, with the value it then has.
    update: Option<(Value, &'static str)>,
    /// The state a new record is in, a legal next one (with its body) and
    /// an illegal one from the state after it.
    states: Option<(&'static str, Value, &'static str)>,
}

fn cases(activity_ref: &str) -> Vec<Case> {
    vec![
        Case {
            collection: "activities",
            create: json!({"kind": "research"}),
            update: Some((json!({"kind": "writing"}), "kind")),
            states: Some(("queued", json!({"to": "running"}), "queued")),
        },
        Case {
            collection: "blog-posts",
            create: json!({"title": "Hello", "activityRef": activity_ref, "wordCount": 10}),
            update: Some((json!({"title": "Hello again"}), "title")),
            states: Some(("draft", json!({"to": "in_review"}), "published")),
        },
        Case {
            collection: "social-posts",
            create: json!({"platform": "linkedin"}),
            update: Some((json!({"platform": "mastodon"}), "platform")),
            states: Some(("draft", json!({"to": "approved"}), "published")),
        },
        Case {
            collection: "onboarding-runs",
            create: json!({"website": "https://example.com"}),
            update: Some((json!({"contextFileId": "file-1"}), "contextFileId")),
            states: Some(("pending", json!({"to": "scraping"}), "completed")),
        },
        Case {
            collection: "strategies",
            create: json!({}),
            update: Some((
                json!({"effectiveFrom": "2027-01-01T00:00:00Z"}),
                "effectiveFrom",
            )),
            states: Some(("draft", json!({"to": "pending_approval"}), "active")),
        },
        Case {
            collection: "contracts",
            create: json!({"template": "msa", "templateVersion": "2026-1"}),
            update: Some((json!({"templateVersion": "2026-2"}), "templateVersion")),
            states: Some(("pending", json!({"to": "declined"}), "pending")),
        },
        Case {
            collection: "tool-calls",
            create: json!({"toolName": "search", "method": "query"}),
            update: Some((json!({"payloadRef": activity_ref}), "payloadRef")),
            states: Some((
                "started",
                json!({"to": "succeeded", "durationMs": 12}),
                "failed",
            )),
        },
        Case {
            collection: "skills",
            create: json!({"name": "Summarise", "slug": "summarise"}),
            update: Some((json!({"name": "Summarise text"}), "name")),
            states: None,
        },
        Case {
            collection: "integrations",
            create: json!({"provider": "hubspot", "externalAccount": "acct-1"}),
            update: Some((json!({"lastError": "token expired"}), "lastError")),
            states: Some(("connected", json!({"to": "disconnected"}), "connected")),
        },
        Case {
            collection: "usage-events",
            create: json!({"metric": "tokens.input", "quantity": 1200}),
            update: None,
            states: None,
        },
    ]
}

fn refs(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["ref"].as_str().expect("ref").to_string())
        .collect()
}

fn etag(reply: &Reply) -> String {
    reply.header("etag").expect("ETag").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_collection_creates_reads_lists_updates_moves_and_deletes() {
    let api = Api::start("api-coll", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let activity = api
        .post(
            &format!("/v1/tenants/{tenant}/activities"),
            &token,
            json!({"kind": "seed"}),
        )
        .await;
    assert_eq!(activity.status, 201, "{activity:?}");
    let activity_ref = activity.body["ref"].as_str().expect("ref").to_string();

    for case in cases(&activity_ref) {
        let c = case.collection;
        let base = format!("/v1/tenants/{tenant}/{c}");

        // Create three; the first is the one walked through.
        let mut created = Vec::new();
        for _ in 0..3 {
            let mut body = case.create.clone();
            if c == "skills" {
                // Slugs are unique per tenant and version.
                body["slug"] = json!(format!("summarise-{}", created.len()));
            }
            if c == "integrations" {
                body["externalAccount"] = json!(format!("acct-{}", created.len()));
            }
            let reply = api.post(&base, &token, body).await;
            assert_eq!(reply.status, 201, "{c}: {reply:?}");
            let record_ref = reply.body["ref"].as_str().expect("ref").to_string();
            assert_eq!(
                reply.header("location"),
                Some(format!("{base}/{record_ref}").as_str()),
                "{c}"
            );
            for hidden in ["id", "tenantId", "tenant_id", "etag", "createdOn"] {
                assert!(reply.body.get(hidden).is_none(), "{c}: {hidden} leaked");
            }
            assert!(
                reply.body["createdAt"]
                    .as_str()
                    .is_some_and(|t| t.ends_with('Z')),
                "{c}: RFC 3339 UTC"
            );
            for (field, value) in case.create.as_object().expect("object") {
                if !["slug", "externalAccount"].contains(&field.as_str()) {
                    assert_eq!(&reply.body[field], value, "{c}.{field}");
                }
            }
            created.push((record_ref, etag(&reply), reply.body));
        }
        let (first, first_etag, first_body) = created[0].clone();
        let item = format!("{base}/{first}");

        // Get: the same record and version.
        let got = api.get(&item, &token).await;
        assert_eq!(got.status, 200, "{c}: {got:?}");
        assert_eq!(got.body, first_body, "{c}");
        assert_eq!(etag(&got), first_etag, "{c}");

        // List: pages of two, in ref order, no repeats.
        let page1 = api.get(&format!("{base}?limit=2"), &token).await;
        assert_eq!(page1.status, 200, "{c}: {page1:?}");
        let cursor = page1.body["next"]
            .as_str()
            .expect("a next page")
            .to_string();
        let page2 = api
            .get(&format!("{base}?limit=2&cursor={cursor}"), &token)
            .await;
        let mut listed = refs(&page1.body);
        listed.extend(refs(&page2.body));
        let mut expected: Vec<String> = created.iter().map(|(r, _, _)| r.clone()).collect();
        if c == "activities" {
            expected.insert(0, activity_ref.clone());
        }
        expected.sort();
        assert_eq!(listed, expected, "{c}: both pages");

        // Update: If-Match required, a stale one refused, the current one
        // accepted with a new version.
        let mut current_etag = first_etag.clone();
        if let Some((patch, field)) = &case.update {
            let missing = api
                .call(Method::PATCH, &item, Some(&token), Some(patch), &[])
                .await;
            assert_problem(&missing, 428, "precondition_required");
            let stale = api
                .call(
                    Method::PATCH,
                    &item,
                    Some(&token),
                    Some(patch),
                    &[("if-match", "\"0000000000\"")],
                )
                .await;
            assert_problem(&stale, 412, "precondition_failed");
            let changed = api
                .call(
                    Method::PATCH,
                    &item,
                    Some(&token),
                    Some(patch),
                    &[("if-match", &current_etag)],
                )
                .await;
            assert_eq!(changed.status, 200, "{c}: {changed:?}");
            assert_eq!(changed.body[*field], patch[*field], "{c}.{field}");
            assert_ne!(etag(&changed), current_etag, "{c}: a new version");
            // The version read before the change is now stale.
            let again = api
                .call(
                    Method::PATCH,
                    &item,
                    Some(&token),
                    Some(patch),
                    &[("if-match", &current_etag)],
                )
                .await;
            assert_problem(&again, 412, "precondition_failed");
            current_etag = etag(&changed);
            // Unknown fields are refused, naming nothing of the record.
            let unknown = api
                .call(
                    Method::PATCH,
                    &item,
                    Some(&token),
                    Some(&json!({"tenantId": "x"})),
                    &[("if-match", "*")],
                )
                .await;
            assert_eq!(unknown.status, 422, "{c}: {unknown:?}");
        } else {
            let refused = api
                .call(
                    Method::PATCH,
                    &item,
                    Some(&token),
                    Some(&json!({})),
                    &[("if-match", "*")],
                )
                .await;
            assert_problem(&refused, 405, "method_not_allowed");
        }

        // Transitions: a legal one, then an illegal one with the allowed
        // next states from PostgreSQL.
        let transitions = format!("{item}/transitions");
        if let Some((initial, legal, illegal)) = &case.states {
            assert_eq!(first_body["status"], *initial, "{c}");
            let filtered = api.get(&format!("{base}?status={initial}"), &token).await;
            assert_eq!(filtered.status, 200, "{c}: {filtered:?}");
            assert!(refs(&filtered.body).contains(&first), "{c}: status filter");
            let moved = api
                .call(
                    Method::POST,
                    &transitions,
                    Some(&token),
                    Some(legal),
                    &[("if-match", &current_etag)],
                )
                .await;
            assert_eq!(moved.status, 200, "{c}: {moved:?}");
            assert_eq!(moved.body["status"], legal["to"], "{c}");
            current_etag = etag(&moved);
            let filtered = api.get(&format!("{base}?status={initial}"), &token).await;
            assert!(!refs(&filtered.body).contains(&first), "{c}: moved on");
            let refused = api.post(&transitions, &token, json!({"to": illegal})).await;
            assert_problem(&refused, 409, "illegal_transition");
            assert_eq!(refused.body["currentState"], legal["to"], "{c}");
            assert!(refused.body["allowedStates"].is_array(), "{c}");
            let unknown_state = api
                .post(&transitions, &token, json!({"to": "nonsense"}))
                .await;
            assert_eq!(unknown_state.status, 422, "{c}: {unknown_state:?}");
        } else {
            let refused = api.post(&transitions, &token, json!({"to": "x"})).await;
            assert_eq!(refused.status, 404, "{c}: no transitions route");
        }

        // Soft delete: 204, then 404 and gone from lists.
        let delete = api
            .call(
                Method::DELETE,
                &item,
                Some(&token),
                None,
                &[("if-match", &current_etag)],
            )
            .await;
        // Every change so far has its diff in the record's history.
        let mut expected_history = vec!["create"];
        if case.update.is_some() {
            expected_history.insert(0, "update");
        }
        if case.states.is_some() {
            expected_history.insert(0, "transition");
        }
        if c == "usage-events" {
            assert_problem(&delete, 405, "method_not_allowed");
            assert_eq!(
                api.history_actions(&item, &token).await,
                expected_history,
                "{c}"
            );
            continue;
        }
        assert_eq!(delete.status, 204, "{c}: {delete:?}");
        expected_history.insert(0, "delete");
        assert_eq!(
            api.history_actions(&item, &token).await,
            expected_history,
            "{c}"
        );
        assert_problem(&api.get(&item, &token).await, 404, "not_found");
        let after = api.get(&format!("{base}?limit=200"), &token).await;
        assert!(!refs(&after.body).contains(&first), "{c}: deleted");
        let twice = api
            .call(Method::DELETE, &item, Some(&token), None, &[])
            .await;
        assert_problem(&twice, 404, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn activating_a_strategy_supersedes_the_active_one_in_the_same_transaction() {
    let api = Api::start("api-strat", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let base = format!("/v1/tenants/{tenant}/strategies");

    let mut strategies = Vec::new();
    for expected_version in 1..=2 {
        let created = api.post(&base, &token, json!({})).await;
        assert_eq!(created.status, 201, "{created:?}");
        assert_eq!(
            created.body["version"], expected_version,
            "versions count up"
        );
        let r = created.body["ref"].as_str().expect("ref").to_string();
        for to in ["pending_approval", "approved", "active"] {
            let moved = api
                .post(
                    &format!("{base}/{r}/transitions"),
                    &token,
                    json!({"to": to}),
                )
                .await;
            assert_eq!(moved.status, 200, "{to}: {moved:?}");
        }
        strategies.push(r);
    }
    let first = api.get(&format!("{base}/{}", strategies[0]), &token).await;
    let second = api.get(&format!("{base}/{}", strategies[1]), &token).await;
    assert_eq!(first.body["status"], "superseded");
    assert!(first.body["effectiveUntil"].is_string());
    assert_eq!(second.body["status"], "active");
    // Approval recorded who: the acting token's name by default.
    assert_eq!(second.body["approvedBy"], "test");
    assert!(second.body["approvedAt"].is_string());
    let active = api.get(&format!("{base}?status=active"), &token).await;
    assert_eq!(refs(&active.body), vec![strategies[1].clone()]);
    // The supersession is a transition of the first strategy in its own
    // history, as any other.
    let history = api
        .history(&format!("{base}/{}", strategies[0]), &token)
        .await;
    let (action, diff) = &history[0];
    assert_eq!(action, "transition", "{history:?}");
    assert_eq!(diff["before"]["status"], "active", "{diff}");
    assert_eq!(diff["after"]["status"], "superseded", "{diff}");
    assert!(diff["after"]["effectiveUntil"].is_string(), "{diff}");
    assert_eq!(
        history.len(),
        5,
        "create, three moves, superseded: {history:?}"
    );

    // The active strategy cannot be deleted (PostgreSQL's check), and the
    // refusal names no 500.
    let refused = api
        .call(
            Method::DELETE,
            &format!("{base}/{}", strategies[1]),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert!(
        [409, 422].contains(&refused.status),
        "deleting the active strategy: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn particular_rules_of_some_collections() {
    let api = Api::start("api-rules", &[]).await;
    let tenant = api.tenant("acme").await;
    let other = api.tenant("other").await;
    let token = api.token(Some(&tenant)).await;
    let other_token = api.token(Some(&other)).await;
    let v1 = |rest: &str| format!("/v1/tenants/{tenant}/{rest}");

    // A reference to another tenant's activity does not resolve.
    let theirs = api
        .post(
            &format!("/v1/tenants/{other}/activities"),
            &other_token,
            json!({"kind": "x"}),
        )
        .await;
    let their_ref = theirs.body["ref"].as_str().expect("ref");
    let refused = api
        .post(
            &v1("blog-posts"),
            &token,
            json!({"title": "t", "activityRef": their_ref}),
        )
        .await;
    assert_problem(&refused, 422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "activityRef");
    assert!(!refused.text.contains(&other));

    // A constraint names its field: a blank title.
    let blank = api
        .post(&v1("blog-posts"), &token, json!({"title": ""}))
        .await;
    assert_problem(&blank, 422, "validation_failed");
    assert_eq!(blank.body["errors"][0]["field"], "title");
    // An invalid change is 422 whatever If-Match says; a stale version of
    // a valid one is 412; neither changes the record.
    let post = api
        .post(&v1("blog-posts"), &token, json!({"title": "kept"}))
        .await;
    let item = v1(&format!(
        "blog-posts/{}",
        post.body["ref"].as_str().expect("ref")
    ));
    for (patch, status) in [(json!({"title": ""}), 422), (json!({"title": "new"}), 412)] {
        let refused = api
            .call(
                Method::PATCH,
                &item,
                Some(&token),
                Some(&patch),
                &[("if-match", "\"stale\"")],
            )
            .await;
        assert_eq!(refused.status, status, "{patch}: {refused:?}");
    }
    let unchanged = api.get(&item, &token).await;
    assert_eq!(unchanged.body["title"], "kept");
    assert_eq!(unchanged.header("etag"), post.header("etag"));

    // Scheduling a blog post needs a time; with one it is accepted and
    // publishing records when.
    let post = api
        .post(&v1("blog-posts"), &token, json!({"title": "t"}))
        .await;
    let post_ref = post.body["ref"].as_str().expect("ref");
    let moves = format!("blog-posts/{post_ref}/transitions");
    for to in ["in_review", "approved"] {
        assert_eq!(
            api.post(&v1(&moves), &token, json!({"to": to}))
                .await
                .status,
            200
        );
    }
    let unscheduled = api
        .post(&v1(&moves), &token, json!({"to": "scheduled"}))
        .await;
    assert_eq!(unscheduled.status, 422, "{unscheduled:?}");
    let scheduled = api
        .post(
            &v1(&moves),
            &token,
            json!({"to": "scheduled", "scheduledFor": "2030-01-01T09:00:00+02:00"}),
        )
        .await;
    assert_eq!(scheduled.status, 200, "{scheduled:?}");
    assert_eq!(scheduled.body["scheduledFor"], "2030-01-01T07:00:00Z");
    let published = api
        .post(&v1(&moves), &token, json!({"to": "published"}))
        .await;
    assert!(published.body["publishedAt"].is_string(), "{published:?}");

    // Activities record when they ran.
    let activity = api
        .post(
            &v1("activities"),
            &token,
            json!({"kind": "k", "status": "running"}),
        )
        .await;
    assert_eq!(activity.status, 201, "{activity:?}");
    assert!(activity.body["startedAt"].is_string());
    let activity_ref = activity.body["ref"].as_str().expect("ref");
    let done = api
        .post(
            &v1(&format!("activities/{activity_ref}/transitions")),
            &token,
            json!({"to": "failed", "error": "boom"}),
        )
        .await;
    assert_eq!(done.body["error"], "boom", "{done:?}");
    assert!(done.body["finishedAt"].is_string());

    // A tool call may be recorded finished, with its duration.
    let call = api
        .post(
            &v1("tool-calls"),
            &token,
            json!({"toolName": "t", "method": "m", "status": "succeeded",
                   "startedAt": "2026-01-01T00:00:00Z", "durationMs": 1500}),
        )
        .await;
    assert_eq!(call.status, 201, "{call:?}");
    assert_eq!(call.body["finishedAt"], "2026-01-01T00:00:01.500Z");
    let unfinished = api
        .post(
            &v1("tool-calls"),
            &token,
            json!({"toolName": "t", "method": "m", "status": "failed"}),
        )
        .await;
    assert_eq!(unfinished.status, 422, "a finished call needs its duration");

    // Global skills: readable by every tenant, not writable by any.
    let global_ref = ulid::Ulid::generate().to_string();
    let mut tx = api.pg.begin_admin().await.expect("admin path");
    sqlx::query("INSERT INTO skills (ref_id, tenant_id, name, slug) VALUES ($1, NULL, 'G', 'g')")
        .bind(&global_ref)
        .execute(&mut *tx)
        .await
        .expect("global skill");
    tx.commit().await.expect("commit");
    for (t, tok) in [(&tenant, &token), (&other, &other_token)] {
        let got = api
            .get(&format!("/v1/tenants/{t}/skills/{global_ref}"), tok)
            .await;
        assert_eq!(got.status, 200, "{got:?}");
        assert_eq!(got.body["global"], true);
        let listed = api.get(&format!("/v1/tenants/{t}/skills"), tok).await;
        assert!(refs(&listed.body).contains(&global_ref));
    }
    let global = v1(&format!("skills/{global_ref}"));
    let patch = api
        .call(
            Method::PATCH,
            &global,
            Some(&token),
            Some(&json!({"name": "mine"})),
            &[("if-match", "*")],
        )
        .await;
    assert_problem(&patch, 404, "not_found");
    let delete = api
        .call(Method::DELETE, &global, Some(&token), None, &[])
        .await;
    assert_problem(&delete, 404, "not_found");

    // Usage events are append-only: no update, no delete.
    let event = api
        .post(
            &v1("usage-events"),
            &token,
            json!({"metric": "m", "quantity": 3}),
        )
        .await;
    let event_ref = event.body["ref"].as_str().expect("ref");
    for method in [Method::PATCH, Method::DELETE, Method::PUT] {
        let reply = api
            .call(
                method.clone(),
                &v1(&format!("usage-events/{event_ref}")),
                Some(&token),
                Some(&json!({})),
                &[("if-match", "*")],
            )
            .await;
        assert_problem(&reply, 405, "method_not_allowed");
    }

    // A second live connection of the same account is a conflict.
    let account = json!({"provider": "p", "externalAccount": "a"});
    assert_eq!(
        api.post(&v1("integrations"), &token, account.clone())
            .await
            .status,
        201
    );
    let duplicate = api.post(&v1("integrations"), &token, account).await;
    assert_problem(&duplicate, 409, "conflict");
}
