//! Direct uploads (a pre-signed PUT, then a confirm) of onboarding runs'
//! parts and strategy versions, end to end against the real servers: the
//! checks every upload passes (declarations, never uploaded, S3 refusing
//! another type or size, wrong size or SHA-256, another tenant), what the
//! good confirm does to each record, repeated confirms, and a fault after
//! every step of the confirm leaving no dangling pointer (the same
//! confirm repeated on a healthy instance then completes the write).
//! Activity outputs' direct uploads are tested in content_outputs.rs.

mod common;

use common::api::{Api, assert_problem};
use common::content::{
    direct_upload_until_confirm, draft_strategy, get_bytes, kinds, onboarding_run, orphans,
    put_raw, record_state, repair, scan, sha256, upload_directly,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn onboarding_parts_are_uploaded_directly() {
    let api = Api::start("content-upl-onb", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("globex").await;
    let other_token = api.token(Some(&other)).await;
    let run = onboarding_run(&api, &tenant, &token, &["scraping"]).await;
    let content = format!("/v1/tenants/{tenant}/onboarding-runs/{run}/content");

    let scraped = b"scraped text, uploaded straight to S3".to_vec();
    let (_, confirm, declared) = direct_upload_until_confirm(
        &api,
        &format!("{content}/scraped-text/uploads"),
        &token,
        &other_token,
        "text/plain",
        &scraped,
        |upload| format!("/{tenant}/onboarding/{run}/scraped.{upload}.txt"),
    )
    .await;
    assert_eq!(
        record_state(&api, "onboarding_runs", "research_ref", &run).await,
        ("scraping".into(), None),
        "no pointer before a good confirm"
    );
    let confirmed = api.post(&confirm, &token, declared.clone()).await;
    assert_eq!(confirmed.status, 201, "{confirmed:?}");
    assert_eq!(confirmed.body["runStatus"], "researching");
    assert_eq!(confirmed.body["part"], "scraped-text");
    assert_eq!(confirmed.body["sha256"], declared["sha256"]);
    let (status, _, bytes) = get_bytes(&api, &format!("{content}/scraped-text"), &token, &[]).await;
    assert_eq!((status, bytes), (200, scraped.clone()));
    let again = api.post(&confirm, &token, declared.clone()).await;
    assert_eq!(again.status, 201, "a repeated confirm: {again:?}");
    assert_eq!(again.body["runStatus"], "researching");

    // A media type the part does not take, though another part does.
    let refused = api
        .post(
            &format!("{content}/research/uploads"),
            &token,
            json!({"contentType": "text/plain", "size": 1, "sha256": declared["sha256"]}),
        )
        .await;
    assert_problem(&refused, 422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "contentType");

    // The research as JSON, then the context file: the run completes.
    let research = br#"{"competitors": ["globex"]}"#;
    let (research_upload, research_declared) = upload_directly(
        &api,
        &format!("{content}/research/uploads"),
        &token,
        "application/json",
        research,
    )
    .await;
    let confirmed = api
        .post(
            &format!("{content}/research/uploads/{research_upload}/confirm"),
            &token,
            research_declared,
        )
        .await;
    assert_eq!(confirmed.status, 201, "{confirmed:?}");
    assert_eq!(confirmed.body["runStatus"], "researching");
    assert_eq!(confirmed.body["contentType"], "application/json");
    let context = b"# Context\n\nAcme sells anvils.\n";
    let (context_upload, context_declared) = upload_directly(
        &api,
        &format!("{content}/context-file/uploads"),
        &token,
        "text/markdown",
        context,
    )
    .await;
    let context_confirm = format!("{content}/context-file/uploads/{context_upload}/confirm");
    let confirmed = api
        .post(&context_confirm, &token, context_declared.clone())
        .await;
    assert_eq!(confirmed.status, 201, "{confirmed:?}");
    assert_eq!(confirmed.body["runStatus"], "completed");
    let again = api.post(&context_confirm, &token, context_declared).await;
    assert_eq!(
        again.status, 201,
        "repeated after the run completed: {again:?}"
    );
    assert_eq!(again.body["runStatus"], "completed");
    let (_, _, bytes) = get_bytes(&api, &format!("{content}/context-file"), &token, &[]).await;
    assert_eq!(bytes, context);
    let (_, _, bytes) = get_bytes(&api, &format!("{content}/scraped-text"), &token, &[]).await;
    assert_eq!(bytes, scraped, "the other parts stay");

    // A completed run takes no new upload.
    let late = api
        .post(
            &format!("{content}/research/uploads"),
            &token,
            json!({
                "contentType": "text/markdown", "size": 1, "sha256": declared["sha256"],
            }),
        )
        .await;
    assert_problem(&late, 409, "illegal_transition");
    assert_eq!(late.body["currentState"], "completed");

    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    assert_eq!(orphans(&report), Vec::<String>::new(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn strategy_versions_are_uploaded_directly() {
    let api = Api::start("content-upl-strat", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("globex").await;
    let other_token = api.token(Some(&other)).await;
    let strategy = draft_strategy(&api, &tenant, &token).await;
    let content = format!("/v1/tenants/{tenant}/strategies/{strategy}/content");
    let uploads = format!("{content}/uploads");
    let first = put_raw(&api, &content, &token, "text/markdown", b"# v1")
        .await
        .expect("put");
    assert_eq!(first.status, 201, "{first:?}");

    let markdown = b"# Strategy\n\nUploaded directly.\n".to_vec();
    let (upload, confirm, declared) = direct_upload_until_confirm(
        &api,
        &uploads,
        &token,
        &other_token,
        "text/markdown",
        &markdown,
        |upload| format!("/{tenant}/strategies/{strategy}/uploads/{upload}.md"),
    )
    .await;
    let confirmed = api.post(&confirm, &token, declared.clone()).await;
    assert_eq!(confirmed.status, 201, "{confirmed:?}");
    assert_eq!(confirmed.body["version"], 2, "the next version");
    let version_ref = confirmed.body["ref"].as_str().expect("ref").to_string();
    let record = api
        .get(
            &format!("/v1/tenants/{tenant}/strategies/{strategy}"),
            &token,
        )
        .await;
    assert_eq!(record.body["contentRef"], version_ref.as_str());
    let (status, _, bytes) = get_bytes(&api, &content, &token, &[]).await;
    assert_eq!((status, bytes), (200, markdown.clone()));
    let again = api.post(&confirm, &token, declared.clone()).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(
        (again.body["ref"].as_str(), again.body["version"].as_i64()),
        (Some(version_ref.as_str()), Some(2)),
        "a repeated confirm makes no new version"
    );
    // The bytes were copied to v2.md; the upload object is gone, and the
    // replaced v1 (object and document) is the only orphan.
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    assert_eq!(kinds(&report), vec!["mongo"], "{report:?}");
    assert!(
        !orphans(&report).iter().any(|o| o.contains(&upload)),
        "{report:?}"
    );

    // Only Markdown.
    let refused = api
        .post(
            &uploads,
            &token,
            json!({"contentType": "application/json", "size": 1, "sha256": declared["sha256"]}),
        )
        .await;
    assert_problem(&refused, 422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "contentType");

    // Two uploads in flight: each confirm takes its own number.
    let (a, a_declared) = upload_directly(&api, &uploads, &token, "text/markdown", b"# A").await;
    let (b, b_declared) = upload_directly(&api, &uploads, &token, "text/markdown", b"# B").await;
    let b_done = api
        .post(&format!("{uploads}/{b}/confirm"), &token, b_declared)
        .await;
    let a_confirm = format!("{uploads}/{a}/confirm");
    let a_done = api.post(&a_confirm, &token, a_declared.clone()).await;
    assert_eq!((b_done.status, a_done.status), (201, 201));
    assert_eq!(
        (
            b_done.body["version"].as_i64(),
            a_done.body["version"].as_i64()
        ),
        (Some(3), Some(4))
    );
    let (_, _, bytes) = get_bytes(&api, &content, &token, &[]).await;
    assert_eq!(bytes, b"# A");

    // Submitted: no new upload; the last confirm, repeated, still answers.
    let moved = api
        .post(
            &format!("/v1/tenants/{tenant}/strategies/{strategy}/transitions"),
            &token,
            json!({"to": "pending_approval"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{moved:?}");
    let late = api.post(&uploads, &token, declared.clone()).await;
    assert_problem(&late, 409, "illegal_transition");
    let again = api.post(&a_confirm, &token, a_declared).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.body["version"], 4);
    let stale = api.post(&confirm, &token, declared).await;
    assert_problem(&stale, 409, "illegal_transition");

    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
}

/// A confirm that fails after each step (on a second instance with the
/// fault armed): nothing dangles, what it left is an orphan, and the same
/// confirm on a healthy instance completes the write.
#[tokio::test(flavor = "multi_thread")]
async fn a_confirm_failing_after_any_step_leaves_no_dangling_pointer() {
    let api = Api::start("content-upl-fault", &[]).await;
    for (step, run_orphans, strategy_orphans) in [
        ("s3", vec!["s3"], vec!["s3", "s3"]),
        ("mongo", vec!["mongo"], vec!["mongo", "s3"]),
        ("postgres", vec!["mongo"], vec!["mongo"]),
        ("committed", vec![], vec![]),
    ] {
        let tenant = api.tenant(&format!("acme-{step}")).await;
        let token = api.token(Some(&tenant)).await;
        let faulty = api.start_another(&[("STRATA_TEST_FAULT", step)]);
        let failing_confirm = |path: String, declared: serde_json::Value| {
            let request = api
                .client
                .post(format!("{}{path}", faulty.api))
                .bearer_auth(&token)
                .json(&declared);
            async move { request.send().await.expect("an answer").status().as_u16() }
        };

        let run = onboarding_run(&api, &tenant, &token, &["scraping"]).await;
        let uploads =
            format!("/v1/tenants/{tenant}/onboarding-runs/{run}/content/scraped-text/uploads");
        let (upload, declared) = upload_directly(&api, &uploads, &token, "text/plain", b"t").await;
        let confirm = format!("{uploads}/{upload}/confirm");
        assert_eq!(
            failing_confirm(confirm.clone(), declared.clone()).await,
            500,
            "{step}"
        );
        let report = scan(&api, Some(&tenant)).await;
        assert_eq!(report.dangling, vec![], "run, after {step}: {report:?}");
        assert_eq!(kinds(&report), run_orphans, "run, after {step}: {report:?}");
        let (status, _) = record_state(&api, "onboarding_runs", "research_ref", &run).await;
        let committed = step == "committed";
        assert_eq!(status, if committed { "researching" } else { "scraping" });
        let retried = api.post(&confirm, &token, declared).await;
        assert_eq!(
            retried.status, 201,
            "run, retried after {step}: {retried:?}"
        );
        assert_eq!(retried.body["runStatus"], "researching");

        let strategy = draft_strategy(&api, &tenant, &token).await;
        let uploads = format!("/v1/tenants/{tenant}/strategies/{strategy}/content/uploads");
        let (upload, declared) =
            upload_directly(&api, &uploads, &token, "text/markdown", b"# s").await;
        let confirm = format!("{uploads}/{upload}/confirm");
        assert_eq!(
            failing_confirm(confirm.clone(), declared.clone()).await,
            500,
            "{step}"
        );
        let report = scan(&api, Some(&tenant)).await;
        assert_eq!(
            report.dangling,
            vec![],
            "strategy, after {step}: {report:?}"
        );
        // (The run's write is whole again: its retry pointed at what the
        // failure left.)
        assert_eq!(
            kinds(&report),
            strategy_orphans,
            "strategy, after {step}: {report:?}"
        );
        let retried = api.post(&confirm, &token, declared).await;
        assert_eq!(
            retried.status, 201,
            "strategy, retried after {step}: {retried:?}"
        );
        let (_, _, bytes) = get_bytes(
            &api,
            &format!("/v1/tenants/{tenant}/strategies/{strategy}/content"),
            &token,
            &[],
        )
        .await;
        assert_eq!(bytes, b"# s", "after {step}");
        assert_eq!(scan(&api, Some(&tenant)).await.dangling, vec![]);
        drop(faulty);
    }
}

/// A version put over the one a document recorded (here a pre-signed PUT
/// used again after its confirm; a racing strategy write that died before
/// taking its version back leaves the same) is an orphan: reads stay
/// pinned to the recorded bytes, and a repair removes the version for
/// good, so the recorded one is current again (noncurrent versions expire
/// by the bucket's lifecycle rule). A recorded version that is gone is a
/// dangling pointer.
#[tokio::test(flavor = "multi_thread")]
async fn a_version_over_the_recorded_one_is_an_orphan_and_repaired() {
    let api = Api::start("content-upl-version", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let run = onboarding_run(&api, &tenant, &token, &["scraping"]).await;
    let part = format!("/v1/tenants/{tenant}/onboarding-runs/{run}/content/scraped-text");
    let declared = json!({"contentType": "text/plain", "size": 5, "sha256": sha256(b"first")});
    let started = api
        .post(&format!("{part}/uploads"), &token, declared.clone())
        .await;
    assert_eq!(started.status, 201, "{started:?}");
    let upload = started.body["ref"].as_str().expect("ref").to_string();
    let url = started.body["url"].as_str().expect("url").to_string();
    let put = |body: &'static [u8]| {
        reqwest::Client::new()
            .put(&url)
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    assert_eq!(put(b"first").await.expect("S3").status(), 200);
    let confirmed = api
        .post(
            &format!("{part}/uploads/{upload}/confirm"),
            &token,
            declared,
        )
        .await;
    assert_eq!(confirmed.status, 201, "{confirmed:?}");

    // The URL is still valid: other bytes of the signed size go in.
    assert_eq!(put(b"again").await.expect("S3").status(), 200);
    let (_, _, bytes) = get_bytes(&api, &part, &token, &[]).await;
    assert_eq!(bytes, b"first", "reads are pinned to the recorded version");
    let key = format!("{tenant}/onboarding/{run}/scraped.{upload}.txt");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    let found = orphans(&report);
    assert_eq!(found.len(), 1, "{report:?}");
    assert!(
        found[0].starts_with(&format!("s3:{key}?versionId=")),
        "{report:?}"
    );

    let repaired = repair(&api, &report, 0).await;
    assert_eq!(repaired.removed, found, "{repaired:?}");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(
        (report.dangling.len(), report.orphans.len()),
        (0, 0),
        "{report:?}"
    );
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    let content = strata::content::Content::new(&stores, &config.content, &config.s3);
    let current = content
        .open(&key, None)
        .await
        .expect("the key's current version");
    let current = current.body.collect().await.expect("bytes").into_bytes();
    assert_eq!(
        current.as_ref(),
        b"first",
        "the recorded version is current again"
    );

    // The recorded version removed behind strata's back: a dangling pointer.
    let recorded = content
        .mongo()
        .collection::<mongodb::bson::Document>("onboarding_research")
        .find_one(mongodb::bson::doc! {"tenantId": &tenant, "refId": &run})
        .await
        .expect("find")
        .expect("the run's document");
    let version = recorded
        .get_document("scrapedText")
        .and_then(|m| m.get_str("versionId"))
        .expect("a recorded version")
        .to_string();
    content
        .delete_version(&key, &version)
        .await
        .expect("delete the version");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(
        report
            .dangling
            .iter()
            .map(|d| d.missing.clone())
            .collect::<Vec<_>>(),
        vec![format!("s3:{key}?versionId={version}")],
        "{report:?}"
    );
}
