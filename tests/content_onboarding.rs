//! Onboarding runs through the split pattern, end to end against the real
//! servers: the three parts (scraped text, research, context file) each
//! under their own key in `{tenantRef}/onboarding/{runRef}/`, one
//! `onboarding_research` document per run, `researchRef` set in the
//! transaction that moves the run (scraping → researching → completed);
//! reads streamed and pre-signed; the states that take no part; tenant
//! isolation; reconciliation (a replaced part is an orphan, reclaimed);
//! and a fault after every step of the write leaving no dangling pointer.

mod common;

use common::api::{Api, assert_problem};
use common::content::{
    check_presigned, get_bytes, kinds, onboarding_run, orphans, put_raw, record_state, repair,
    scan, sha256,
};
use mongodb::bson::{Document, doc};
use reqwest::Method;
use serde_json::json;

async fn research_document(api: &Api, tenant: &str, run: &str) -> Option<Document> {
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    stores
        .mongo
        .database()
        .collection::<Document>("onboarding_research")
        .find_one(doc! {"tenantId": tenant, "refId": run})
        .await
        .expect("find")
}

#[tokio::test(flavor = "multi_thread")]
async fn parts_are_written_read_and_move_the_run() {
    let api = Api::start(
        "content-onb",
        &[("STRATA_CONTENT__ONBOARDING_MAX_BYTES", "1024")],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("globex").await;
    let other_token = api.token(Some(&other)).await;
    let run = onboarding_run(&api, &tenant, &token, &["scraping"]).await;
    let base = format!("/v1/tenants/{tenant}/onboarding-runs/{run}");
    let part = |name: &str| format!("{base}/content/{name}");

    // Nothing yet: 404; a part the run is not ready for: 409, nothing stored.
    let (status, _, _) = get_bytes(&api, &part("scraped-text"), &token, &[]).await;
    assert_eq!(status, 404);
    let early = put_raw(
        &api,
        &part("context-file"),
        &token,
        "text/markdown",
        b"# ctx",
    )
    .await
    .expect("put");
    assert_problem(&early, 409, "illegal_transition");
    assert_eq!(early.body["currentState"], "scraping");
    assert_eq!(early.body["allowedStates"], json!(["researching"]));
    let unknown = put_raw(&api, &part("summary"), &token, "text/plain", b"x")
        .await
        .expect("put");
    assert_problem(&unknown, 404, "not_found");
    let wrong_type = put_raw(
        &api,
        &part("scraped-text"),
        &token,
        "application/pdf",
        b"%PDF",
    )
    .await
    .expect("put");
    assert_problem(&wrong_type, 415, "unsupported_media_type");
    let too_large = put_raw(
        &api,
        &part("scraped-text"),
        &token,
        "text/plain",
        &[b'x'; 1025],
    )
    .await
    .expect("put");
    assert_problem(&too_large, 413, "body_too_large");
    assert_eq!(
        record_state(&api, "onboarding_runs", "research_ref", &run).await,
        ("scraping".into(), None),
        "refusals store nothing"
    );

    // The scraped text: the run points at its document and moves on.
    let scraped = "Example Ltd makes widgets. Ünïcode too.\n".as_bytes();
    let written = put_raw(
        &api,
        &part("scraped-text"),
        &token,
        "text/plain; charset=utf-8",
        scraped,
    )
    .await
    .expect("put");
    assert_eq!(written.status, 201, "{written:?}");
    assert_eq!(written.body["part"], "scraped-text");
    assert_eq!(written.body["runStatus"], "researching");
    assert_eq!(written.body["sha256"], sha256(scraped));
    assert_eq!(written.body["size"], scraped.len());
    assert_eq!(
        written.header("location"),
        Some(part("scraped-text").as_str())
    );
    let record = api.get(&base, &token).await;
    assert_eq!(record.body["status"], "researching", "{record:?}");
    assert_eq!(record.body["researchRef"], run.as_str());
    let history = api.history(&base, &token).await;
    let (action, diff) = &history[0];
    assert_eq!(action, "transition", "{history:?}");
    assert_eq!(diff["before"]["status"], "scraping", "{diff}");
    assert_eq!(diff["after"]["status"], "researching", "{diff}");
    assert_eq!(diff["after"]["researchRef"], run.as_str(), "{diff}");

    // Streamed: bytes, type, ETag, 304, a range.
    let etag = format!("\"{}\"", sha256(scraped));
    let (status, headers, bytes) = get_bytes(&api, &part("scraped-text"), &token, &[]).await;
    assert_eq!((status, bytes.as_slice()), (200, scraped));
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["etag"], etag.as_str());
    let (status, _, _) = get_bytes(
        &api,
        &part("scraped-text"),
        &token,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, 304);
    let (status, headers, bytes) = get_bytes(
        &api,
        &part("scraped-text"),
        &token,
        &[("range", "bytes=0-6")],
    )
    .await;
    assert_eq!((status, bytes.as_slice()), (206, &scraped[..=6]));
    assert_eq!(
        headers["content-range"],
        format!("bytes 0-6/{}", scraped.len()).as_str()
    );

    // Research (JSON) while researching: the run stays.
    let research = serde_json::to_vec(&json!({"summary": "widgets", "sources": 3})).expect("json");
    let written = put_raw(
        &api,
        &part("research"),
        &token,
        "application/json",
        &research,
    )
    .await
    .expect("put");
    assert_eq!(written.status, 201, "{written:?}");
    assert_eq!(written.body["runStatus"], "researching");
    // Scraped text again: replaced, the run stays; the first object is
    // now an orphan.
    let rescraped = b"Example Ltd makes better widgets.\n";
    let replaced = put_raw(&api, &part("scraped-text"), &token, "text/plain", rescraped)
        .await
        .expect("put");
    assert_eq!(replaced.status, 201, "{replaced:?}");
    assert_eq!(replaced.body["runStatus"], "researching");
    let (_, _, bytes) = get_bytes(&api, &part("scraped-text"), &token, &[]).await;
    assert_eq!(bytes, rescraped);

    // The context file completes the run.
    let context = b"# Context\n\nTone: friendly.\n";
    let written = put_raw(
        &api,
        &part("context-file"),
        &token,
        "text/markdown",
        context,
    )
    .await
    .expect("put");
    assert_eq!(written.status, 201, "{written:?}");
    assert_eq!(written.body["runStatus"], "completed");
    let record = api.get(&base, &token).await;
    assert_eq!(record.body["status"], "completed");
    assert!(record.body["finishedAt"].is_string());

    // One document for the run, every key inside the run's prefix.
    let document = research_document(&api, &tenant, &run)
        .await
        .expect("the run's document");
    let prefix = format!("{tenant}/onboarding/{run}/");
    for (field, stem) in [
        ("scrapedTextKey", "scraped."),
        ("researchKey", "research."),
        ("contextKey", "context."),
    ] {
        let key = document.get_str(field).expect(field);
        assert!(
            key.starts_with(&format!("{prefix}{stem}")),
            "{field}: {key}"
        );
    }
    assert_eq!(document.get_str("onboardingRunRef"), Ok(run.as_str()));

    // Completed: no part changes any more.
    let late = put_raw(&api, &part("research"), &token, "text/markdown", b"# late")
        .await
        .expect("put");
    assert_problem(&late, 409, "illegal_transition");
    assert_eq!(late.body["currentState"], "completed");

    // Pre-signed GETs of each part, for exactly that object.
    for (name, bytes) in [
        ("scraped-text", rescraped.as_slice()),
        ("research", research.as_slice()),
        ("context-file", context.as_slice()),
    ] {
        let url = api.get(&format!("{}/url", part(name)), &token).await;
        assert_eq!(url.status, 200, "{url:?}");
        assert_eq!(url.body["sha256"], sha256(bytes));
        let presigned = url.body["url"].as_str().expect("url");
        assert!(presigned.contains(&prefix), "{presigned}");
        check_presigned(presigned, bytes, &tenant, &other).await;
    }

    // Another tenant: its token on this path, or this run under its own
    // tenant: 404, reading or writing.
    for path in [
        part("research"),
        format!("/v1/tenants/{other}/onboarding-runs/{run}/content/research"),
        format!("/v1/tenants/{other}/onboarding-runs/{run}/content/research/url"),
    ] {
        let reply = api.get(&path, &other_token).await;
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
    }
    let foreign = put_raw(
        &api,
        &format!("/v1/tenants/{other}/onboarding-runs/{run}/content/research"),
        &other_token,
        "text/markdown",
        b"# theirs",
    )
    .await
    .expect("put");
    assert_problem(&foreign, 404, "not_found");
    let anonymous = api
        .call(Method::GET, &part("research"), None, None, &[])
        .await;
    assert_problem(&anonymous, 401, "unauthorized");

    // researchRef is not the client's to set.
    let refused = api
        .call(
            Method::PATCH,
            &base,
            Some(&token),
            Some(&json!({"researchRef": "01JABCDEFGHJKMNPQRSTVWXYZ0"})),
            &[("if-match", "*")],
        )
        .await;
    assert_problem(&refused, 422, "validation_failed");

    // Reconciliation: nothing dangles; the replaced scraped text is the
    // only orphan, and a repair reclaims it (not what is pointed at).
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    let first_key = format!(
        "s3:{}",
        report
            .orphans
            .first()
            .map(|o| o.what.trim_start_matches("s3:").to_string())
            .unwrap_or_default()
    );
    assert_eq!(orphans(&report), vec![first_key.clone()], "{report:?}");
    assert!(first_key.starts_with(&format!("s3:{prefix}scraped.")));
    let kept = repair(&api, &report, 1).await;
    assert_eq!(kept.removed, Vec::<String>::new());
    assert_eq!(kept.too_young, vec![first_key.clone()]);
    let repaired = repair(&api, &report, 0).await;
    assert_eq!(repaired.removed, vec![first_key]);
    let after = scan(&api, Some(&tenant)).await;
    assert_eq!(after.dangling, vec![], "{after:?}");
    assert_eq!(after.orphans, vec![], "{after:?}");
    for name in ["scraped-text", "research", "context-file"] {
        let (status, _, _) = get_bytes(&api, &part(name), &token, &[]).await;
        assert_eq!(status, 200, "{name} survives the repair");
    }

    // A soft-deleted run's content is not served.
    let deleted = api
        .call(Method::DELETE, &base, Some(&token), None, &[])
        .await;
    assert_eq!(deleted.status, 204);
    let gone = api.get(&part("research"), &token).await;
    assert_problem(&gone, 404, "not_found");
    let gone = api.get(&format!("{}/url", part("research")), &token).await;
    assert_problem(&gone, 404, "not_found");
}

/// An orphan document (the first part of a run whose pointer was never
/// written) is removed by a repair with its objects; a document written
/// again after the scan is spared.
#[tokio::test(flavor = "multi_thread")]
async fn an_orphan_document_goes_with_its_objects() {
    let api = Api::start("content-onb-orphan", &[("STRATA_TEST_FAULT", "postgres")]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let run = onboarding_run(&api, &tenant, &token, &["scraping"]).await;
    let path = format!("/v1/tenants/{tenant}/onboarding-runs/{run}/content/scraped-text");
    let failed = put_raw(&api, &path, &token, "text/plain", b"scraped")
        .await
        .expect("an answer");
    assert_problem(&failed, 500, "internal");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    assert_eq!(
        orphans(&report),
        vec![format!("mongo:onboarding_research/{run}")],
        "the document's object goes with it: {report:?}"
    );
    assert_eq!(
        record_state(&api, "onboarding_runs", "research_ref", &run).await,
        ("scraping".into(), None)
    );
    let repaired = repair(&api, &report, 0).await;
    assert_eq!(
        repaired.removed,
        vec![format!("mongo:onboarding_research/{run}")]
    );
    assert!(research_document(&api, &tenant, &run).await.is_none());
    let after = scan(&api, Some(&tenant)).await;
    assert_eq!(
        (after.dangling.len(), after.orphans.len()),
        (0, 0),
        "{after:?}"
    );
}

/// Kills strata right after `step` of a part's write, then checks the
/// stores: no dangling pointer, and the run as it was (or as it became,
/// once committed).
async fn killed_after(step: &str, expected_kinds: &[&str], expected_state: &str) {
    let fault = format!("{step}:kill");
    let mut api = Api::start(
        &format!("content-onb-kill-{step}"),
        &[("STRATA_TEST_FAULT", fault.as_str())],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let run = onboarding_run(&api, &tenant, &token, &["scraping"]).await;
    let path = format!("/v1/tenants/{tenant}/onboarding-runs/{run}/content/scraped-text");
    let answer = put_raw(&api, &path, &token, "text/plain", b"crash").await;
    assert!(answer.is_err(), "the process died mid-request: {answer:?}");
    let exit = api.served.child.wait().expect("wait");
    assert!(!exit.success(), "{exit:?}");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "after {step}: {report:?}");
    assert_eq!(kinds(&report), expected_kinds, "after {step}: {report:?}");
    let (status, pointer) = record_state(&api, "onboarding_runs", "research_ref", &run).await;
    assert_eq!(status, expected_state, "after {step}");
    assert_eq!(pointer.is_some(), expected_state == "researching");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_object_leaves_an_orphan_object() {
    killed_after("s3", &["s3"], "scraping").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_document_leaves_an_orphan_document() {
    killed_after("mongo", &["mongo"], "scraping").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_before_the_commit_leaves_an_orphan_document() {
    killed_after("postgres", &["mongo"], "scraping").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_commit_leaves_a_complete_write() {
    killed_after("committed", &[], "researching").await;
}

/// A replacement that fails after each step (on a second instance with
/// the fault armed): the part read is the old or the new one, whole, and
/// nothing dangles; what the failure left is an orphan object (the new
/// one before the document moved, the old one after).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_replacement_leaves_whole_content_and_orphan_objects() {
    let api = Api::start("content-onb-fail", &[]).await;
    for (step, expect_new) in [
        ("s3", false),
        ("mongo", true),
        ("postgres", true),
        ("committed", true),
    ] {
        let tenant = api.tenant(&format!("acme-{step}")).await;
        let token = api.token(Some(&tenant)).await;
        let run = onboarding_run(&api, &tenant, &token, &["scraping"]).await;
        let path = format!("/v1/tenants/{tenant}/onboarding-runs/{run}/content/scraped-text");
        let first = put_raw(&api, &path, &token, "text/plain", b"first")
            .await
            .expect("put");
        assert_eq!(first.status, 201, "{first:?}");
        let faulty = api.start_another(&[("STRATA_TEST_FAULT", step)]);
        let failed = api
            .client
            .put(format!("{}{path}", faulty.api))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("second")
            .send()
            .await
            .expect("an answer");
        assert_eq!(failed.status(), 500, "after {step}");
        drop(faulty);
        let (status, _, bytes) = get_bytes(&api, &path, &token, &[]).await;
        assert_eq!(status, 200);
        let expected: &[u8] = if expect_new { b"second" } else { b"first" };
        assert_eq!(bytes, expected, "after {step}");
        let report = scan(&api, Some(&tenant)).await;
        assert_eq!(report.dangling, vec![], "after {step}: {report:?}");
        assert_eq!(kinds(&report), vec!["s3"], "after {step}: {report:?}");
        assert_eq!(
            record_state(&api, "onboarding_runs", "research_ref", &run).await,
            ("researching".into(), Some(run.clone())),
            "after {step}"
        );
    }
}
