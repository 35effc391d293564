//! Strategy versions through the split pattern, end to end against the
//! real servers: Markdown at `{tenantRef}/strategies/{ref}/v{n}.md`, a
//! document per version in `strategies_content`, `contentRef` moved in the
//! pointer's transaction; content written in draft only; approve/activate
//! keep one active strategy per tenant; reads streamed and pre-signed;
//! tenant isolation; reconciliation (a replaced version is an orphan,
//! reclaimed, and its number never reused); concurrent writes; and a
//! fault after every step of the write leaving no dangling pointer.

mod common;

use common::api::{Api, assert_problem};
use common::content::{
    check_presigned, draft_strategy, get_bytes, kinds, orphans, put_raw, record_state, repair,
    scan, sha256,
};
use reqwest::Method;
use serde_json::json;

async fn move_to(
    api: &Api,
    tenant: &str,
    token: &str,
    strategy: &str,
    to: &str,
) -> serde_json::Value {
    let moved = api
        .post(
            &format!("/v1/tenants/{tenant}/strategies/{strategy}/transitions"),
            token,
            json!({"to": to}),
        )
        .await;
    assert_eq!(moved.status, 200, "{to}: {moved:?}");
    moved.body
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_are_written_in_draft_read_and_reclaimed() {
    let api = Api::start(
        "content-strat",
        &[("STRATA_CONTENT__STRATEGY_MAX_BYTES", "1024")],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("globex").await;
    let other_token = api.token(Some(&other)).await;
    let first = draft_strategy(&api, &tenant, &token).await;
    let base = format!("/v1/tenants/{tenant}/strategies/{first}");
    let path = format!("{base}/content");

    // No content yet: 404. Refusals store nothing.
    let (status, _, _) = get_bytes(&api, &path, &token, &[]).await;
    assert_eq!(status, 404);
    let plain = put_raw(&api, &path, &token, "text/plain", b"x")
        .await
        .expect("put");
    assert_problem(&plain, 415, "unsupported_media_type");
    let large = put_raw(&api, &path, &token, "text/markdown", &[b'#'; 1025])
        .await
        .expect("put");
    assert_problem(&large, 413, "body_too_large");

    // Version 1, then 2: the strategy points at the newest.
    let v1 = b"# Strategy\n\nVersion one.\n";
    let written = put_raw(&api, &path, &token, "text/markdown; charset=utf-8", v1)
        .await
        .expect("put");
    assert_eq!(written.status, 201, "{written:?}");
    assert_eq!(written.body["version"], 1);
    assert_eq!(written.body["strategyRef"], first.as_str());
    assert_eq!(written.body["sha256"], sha256(v1));
    assert_eq!(written.header("location"), Some(path.as_str()));
    let v1_ref = written.body["ref"].as_str().expect("ref").to_string();
    let record = api.get(&base, &token).await;
    assert_eq!(record.body["contentRef"], v1_ref.as_str());
    assert_eq!(record.body["status"], "draft");
    let history = api.history(&base, &token).await;
    assert_eq!(history[0].0, "update", "{history:?}");
    assert_eq!(history[0].1["after"]["contentRef"], v1_ref.as_str());

    let v2 = "# Strategy\n\nVersion two — revised.\n".as_bytes();
    let written = put_raw(&api, &path, &token, "text/markdown", v2)
        .await
        .expect("put");
    assert_eq!(written.status, 201, "{written:?}");
    assert_eq!(written.body["version"], 2);
    let v2_ref = written.body["ref"].as_str().expect("ref").to_string();
    let etag = format!("\"{}\"", sha256(v2));
    let (status, headers, bytes) = get_bytes(&api, &path, &token, &[]).await;
    assert_eq!((status, bytes.as_slice()), (200, v2));
    assert_eq!(headers["content-type"], "text/markdown");
    assert_eq!(headers["etag"], etag.as_str());
    let (status, _, _) = get_bytes(&api, &path, &token, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);
    let (status, _, bytes) = get_bytes(&api, &path, &token, &[("range", "bytes=2-9")]).await;
    assert_eq!((status, bytes.as_slice()), (206, &v2[2..=9]));

    // Pre-signed: exactly v2's object.
    let url = api.get(&format!("{path}/url"), &token).await;
    assert_eq!(url.status, 200, "{url:?}");
    let presigned = url.body["url"].as_str().expect("url");
    assert!(
        presigned.contains(&format!("/{tenant}/strategies/{first}/v2.md")),
        "{presigned}"
    );
    check_presigned(presigned, v2, &tenant, &other).await;

    // Reconciliation: v1 (document and object) is the only orphan; the
    // repair removes it, v2 stays readable.
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    assert_eq!(
        orphans(&report),
        vec![format!("mongo:strategies_content/{v1_ref}")],
        "{report:?}"
    );
    let repaired = repair(&api, &report, 0).await;
    assert_eq!(
        repaired.removed,
        vec![format!("mongo:strategies_content/{v1_ref}")]
    );
    let after = scan(&api, Some(&tenant)).await;
    assert_eq!(
        (after.dangling.len(), after.orphans.len()),
        (0, 0),
        "{after:?}"
    );
    let (status, _, bytes) = get_bytes(&api, &path, &token, &[]).await;
    assert_eq!((status, bytes.as_slice()), (200, v2));

    // A version number is never reused, even once its version is gone.
    let v3 = b"# Strategy\n\nVersion three.\n";
    let written = put_raw(&api, &path, &token, "text/markdown", v3)
        .await
        .expect("put");
    assert_eq!(written.body["version"], 3, "{written:?}");

    // contentRef is not the client's to set.
    let refused = api
        .post(
            &format!("/v1/tenants/{tenant}/strategies"),
            &token,
            json!({"contentRef": v2_ref}),
        )
        .await;
    assert_problem(&refused, 422, "validation_failed");
    let refused = api
        .call(
            Method::PATCH,
            &base,
            Some(&token),
            Some(&json!({"contentRef": v2_ref})),
            &[("if-match", "*")],
        )
        .await;
    assert_problem(&refused, 422, "validation_failed");

    // Submitted, approved, active: the content no longer changes.
    for to in ["pending_approval", "approved", "active"] {
        move_to(&api, &tenant, &token, &first, to).await;
        let late = put_raw(&api, &path, &token, "text/markdown", b"# late")
            .await
            .expect("put");
        assert_problem(&late, 409, "illegal_transition");
        assert_eq!(late.body["currentState"], to);
        assert_eq!(late.body["allowedStates"], json!(["draft"]));
        let (_, _, bytes) = get_bytes(&api, &path, &token, &[]).await;
        assert_eq!(bytes, v3);
    }

    // A second strategy activated: the first is superseded, one active.
    let second = draft_strategy(&api, &tenant, &token).await;
    let second_path = format!("/v1/tenants/{tenant}/strategies/{second}/content");
    let written = put_raw(&api, &second_path, &token, "text/markdown", b"# Next")
        .await
        .expect("put");
    assert_eq!(written.status, 201);
    assert_eq!(written.body["version"], 1, "versions count per strategy");
    for to in ["pending_approval", "approved", "active"] {
        move_to(&api, &tenant, &token, &second, to).await;
    }
    let first_now = api.get(&base, &token).await;
    assert_eq!(first_now.body["status"], "superseded");
    let active = api
        .get(
            &format!("/v1/tenants/{tenant}/strategies?status=active"),
            &token,
        )
        .await;
    let items = active.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{active:?}");
    assert_eq!(items[0]["ref"], second.as_str());
    let (_, _, bytes) = get_bytes(&api, &path, &token, &[]).await;
    assert_eq!(bytes, v3, "a superseded strategy keeps its content");

    // Another tenant: 404 reading, pre-signing and writing.
    for path in [
        path.clone(),
        format!("/v1/tenants/{other}/strategies/{first}/content"),
        format!("/v1/tenants/{other}/strategies/{first}/content/url"),
    ] {
        let reply = api.get(&path, &other_token).await;
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
    }
    let foreign_draft = draft_strategy(&api, &other, &other_token).await;
    let foreign = put_raw(
        &api,
        &format!("/v1/tenants/{tenant}/strategies/{foreign_draft}/content"),
        &token,
        "text/markdown",
        b"# theirs",
    )
    .await
    .expect("put");
    assert_problem(&foreign, 404, "not_found");

    let report = scan(&api, None).await;
    assert_eq!(report.dangling, vec![], "{report:?}");

    // A deleted strategy's content is not served.
    let third = draft_strategy(&api, &tenant, &token).await;
    let third_path = format!("/v1/tenants/{tenant}/strategies/{third}/content");
    put_raw(&api, &third_path, &token, "text/markdown", b"# gone")
        .await
        .expect("put");
    let deleted = api
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tenant}/strategies/{third}"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_problem(&api.get(&third_path, &token).await, 404, "not_found");
    assert_problem(
        &api.get(&format!("{third_path}/url"), &token).await,
        404,
        "not_found",
    );
}

/// Concurrent writes of one draft: each is stored whole or refused with a
/// conflict; what is read is exactly one of the stored versions, and
/// nothing dangles.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_store_whole_versions() {
    let api = Api::start("content-strat-race", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let draft = draft_strategy(&api, &tenant, &token).await;
    let path = format!("/v1/tenants/{tenant}/strategies/{draft}/content");
    let bodies: Vec<Vec<u8>> = (0..8)
        .map(|i| format!("# Strategy\n\nWriter {i}.\n").into_bytes())
        .collect();
    let answers = futures_util::future::join_all(
        bodies
            .iter()
            .map(|b| put_raw(&api, &path, &token, "text/markdown", b)),
    )
    .await;
    let mut stored = Vec::new();
    for answer in answers {
        let answer = answer.expect("an answer");
        match answer.status {
            201 => stored.push((
                answer.body["version"].as_i64().expect("version"),
                answer.body["sha256"].as_str().expect("sha256").to_string(),
            )),
            409 => assert_eq!(answer.body["code"], "conflict", "{answer:?}"),
            _ => panic!("{answer:?}"),
        }
    }
    assert!(!stored.is_empty());
    let mut versions: Vec<i64> = stored.iter().map(|(v, _)| *v).collect();
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), stored.len(), "each version stored once");
    let (status, _, bytes) = get_bytes(&api, &path, &token, &[]).await;
    assert_eq!(status, 200);
    assert!(
        stored.iter().any(|(_, sha)| *sha == sha256(&bytes)),
        "the content read is one stored version, whole"
    );
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    // Each replaced version is an orphan document; no object is left
    // without one (a loser took its own back).
    assert_eq!(report.orphans.len(), stored.len() - 1, "{report:?}");
    assert!(kinds(&report).iter().all(|k| k == "mongo"), "{report:?}");
}

/// Kills strata right after `step` of a content write, then checks the
/// stores: no dangling pointer, the orphans expected, the pointer as it
/// was (or set, once committed).
async fn killed_after(step: &str, expected_kinds: &[&str]) {
    let fault = format!("{step}:kill");
    let mut api = Api::start(
        &format!("content-strat-kill-{step}"),
        &[("STRATA_TEST_FAULT", fault.as_str())],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let draft = draft_strategy(&api, &tenant, &token).await;
    let path = format!("/v1/tenants/{tenant}/strategies/{draft}/content");
    let answer = put_raw(&api, &path, &token, "text/markdown", b"# crash").await;
    assert!(answer.is_err(), "the process died mid-request: {answer:?}");
    let exit = api.served.child.wait().expect("wait");
    assert!(!exit.success(), "{exit:?}");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "after {step}: {report:?}");
    assert_eq!(kinds(&report), expected_kinds, "after {step}: {report:?}");
    let (status, pointer) = record_state(&api, "strategies", "content_ref", &draft).await;
    assert_eq!(status, "draft");
    assert_eq!(pointer.is_some(), step == "committed", "after {step}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_object_leaves_an_orphan_object() {
    killed_after("s3", &["s3"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_document_leaves_an_orphan_document() {
    killed_after("mongo", &["mongo"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_before_the_commit_leaves_an_orphan_document() {
    killed_after("postgres", &["mongo"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_commit_leaves_a_complete_write() {
    killed_after("committed", &[]).await;
}

/// The `fail` mode after each step: 500, strata keeps serving, the
/// strategy still reads its previous version whole, nothing dangles.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_keeps_the_previous_version() {
    let api = Api::start("content-strat-fail", &[]).await;
    for step in ["s3", "mongo", "postgres", "committed"] {
        let tenant = api.tenant(&format!("acme-{step}")).await;
        let token = api.token(Some(&tenant)).await;
        let draft = draft_strategy(&api, &tenant, &token).await;
        let path = format!("/v1/tenants/{tenant}/strategies/{draft}/content");
        let first = put_raw(&api, &path, &token, "text/markdown", b"# one")
            .await
            .expect("put");
        assert_eq!(first.status, 201, "{first:?}");
        let faulty = api.start_another(&[("STRATA_TEST_FAULT", step)]);
        let failed = api
            .client
            .put(format!("{}{path}", faulty.api))
            .bearer_auth(&token)
            .header("content-type", "text/markdown")
            .body("# two")
            .send()
            .await
            .expect("an answer");
        assert_eq!(failed.status(), 500, "after {step}");
        drop(faulty);
        let (status, _, bytes) = get_bytes(&api, &path, &token, &[]).await;
        assert_eq!(status, 200);
        let expected: &[u8] = if step == "committed" {
            b"# two"
        } else {
            b"# one"
        };
        assert_eq!(bytes, expected, "after {step}");
        let report = scan(&api, Some(&tenant)).await;
        assert_eq!(report.dangling, vec![], "after {step}: {report:?}");
        let expected_kinds: &[&str] = if step == "s3" { &["s3"] } else { &["mongo"] };
        assert_eq!(kinds(&report), expected_kinds, "after {step}: {report:?}");
    }
}
