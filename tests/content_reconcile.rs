//! `strata reconcile` against the real servers: it reports orphans (a
//! replaced output's document, a direct upload never confirmed), keeps
//! them while they are younger than the grace period, removes them after
//! it without touching what is pointed at, and exits 1 when a pointer
//! dangles.

mod common;

use common::api::Api;
use serde_json::{Value, json};
use sha2::Digest;
use strata::content::Content;

fn reconcile(api: &Api, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["reconcile", "--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = common::run(api.fixture.strata(&all));
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("JSON from reconcile ({e}): {stdout}{stderr}"));
    (code, report)
}

fn whats(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|v| {
            v.get("what")
                .unwrap_or(v)
                .as_str()
                .expect("what")
                .to_string()
        })
        .collect();
    out.sort();
    out
}

async fn put(api: &Api, path: &str, token: &str, body: &[u8]) -> Value {
    let response = api
        .client
        .put(api.url(path))
        .bearer_auth(token)
        .header("content-type", "text/markdown")
        .body(body.to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_reports_repairs_after_the_grace_period_and_flags_dangling_pointers() {
    let api = Api::start("content-reconcile", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let mut activities = Vec::new();
    for _ in 0..2 {
        let created = api
            .post(
                &format!("/v1/tenants/{tenant}/activities"),
                &token,
                json!({"kind": "blog", "status": "running"}),
            )
            .await;
        activities.push(created.body["ref"].as_str().expect("ref").to_string());
    }
    // A replaced output: the first document (and its object) is an orphan.
    let output = format!("/v1/tenants/{tenant}/activities/{}/output", activities[0]);
    let first = put(&api, &output, &token, b"# one").await;
    let second = put(&api, &output, &token, b"# two").await;
    // A direct upload never confirmed: an orphan object.
    let bytes = b"# never confirmed";
    let started = api
        .post(
            &format!(
                "/v1/tenants/{tenant}/activities/{}/output/uploads",
                activities[1]
            ),
            &token,
            json!({
                "contentType": "text/markdown",
                "size": bytes.len(),
                "sha256": hex::encode(sha2::Sha256::digest(bytes)),
            }),
        )
        .await;
    assert_eq!(started.status, 201, "{started:?}");
    let uploaded = reqwest::Client::new()
        .put(started.body["url"].as_str().expect("url"))
        .header("content-type", "text/markdown")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("S3");
    assert_eq!(uploaded.status(), 200);
    let upload_key = format!(
        "{tenant}/activities/{}/outputs/{}.md",
        activities[1],
        started.body["ref"].as_str().expect("ref")
    );
    let expected = vec![
        format!(
            "mongo:activity_outputs/{}",
            first["ref"].as_str().expect("ref")
        ),
        format!("s3:{upload_key}"),
    ];

    let (code, report) = reconcile(&api, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["dangling"], json!([]));
    assert_eq!(whats(&report["orphans"]), expected);

    // Younger than an hour: kept.
    let (code, report) = reconcile(&api, &["--repair", "--grace", "1"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["repair"]["removed"], json!([]));
    assert_eq!(whats(&report["repair"]["tooYoung"]), expected);

    // With no grace: removed; what is pointed at stays.
    let (code, report) = reconcile(&api, &["--repair", "--grace", "0"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(whats(&report["repair"]["removed"]), expected);
    let (code, report) = reconcile(&api, &["--tenant", &tenant]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["orphans"], json!([]), "{report}");
    let read = api
        .client
        .get(api.url(&output))
        .bearer_auth(&token)
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.expect("bytes").as_ref(), b"# two");

    // A delete marker put over a recorded version behind strata's back:
    // reads are pinned to the version and still work, the marker is an
    // orphan, and a repair removes it (the version would expire under it).
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    let content = Content::new(&stores, &config.content, &config.s3);
    let key = format!(
        "{tenant}/activities/{}/outputs/{}.md",
        activities[0],
        second["ref"].as_str().expect("ref")
    );
    assert!(content.exists(&key).await.expect("head"));
    assert!(!content.exists(&upload_key).await.expect("head"));
    let recorded = stores
        .s3
        .client()
        .head_object()
        .bucket(content.bucket())
        .key(&key)
        .send()
        .await
        .expect("head")
        .version_id()
        .expect("a versioned bucket")
        .to_string();
    stores
        .s3
        .client()
        .delete_object()
        .bucket(content.bucket())
        .key(&key)
        .send()
        .await
        .expect("delete behind strata's back");
    let (code, report) = reconcile(&api, &["--tenant", &tenant]);
    assert_eq!(code, Some(0), "{report}");
    let marker = report["orphans"][0]["what"].as_str().unwrap_or_default();
    assert!(
        marker.starts_with(&format!("s3:{key}?versionId=")),
        "{report}"
    );
    let (code, report) = reconcile(&api, &["--repair", "--grace", "0"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["repair"]["removed"], json!([marker]), "{report}");
    assert!(content.exists(&key).await.expect("head"), "current again");

    // The recorded version lost for good: a dangling pointer, exit 1.
    content
        .delete_version(&key, &recorded)
        .await
        .expect("delete behind strata's back");
    let (code, report) = reconcile(&api, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        report["dangling"][0]["missing"],
        format!("s3:{key}?versionId={recorded}").as_str(),
        "{report}"
    );
}

/// `serve` reconciles by itself (here every second, no grace): a replaced
/// output's document is removed without anyone asking.
#[tokio::test(flavor = "multi_thread")]
async fn serve_removes_orphans_periodically() {
    let api = Api::start(
        "content-periodic",
        &[
            ("STRATA_CONTENT__RECONCILE_INTERVAL_SECS", "1"),
            ("STRATA_CONTENT__RECONCILE_GRACE_HOURS", "0"),
        ],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let created = api
        .post(
            &format!("/v1/tenants/{tenant}/activities"),
            &token,
            json!({"kind": "blog", "status": "running"}),
        )
        .await;
    let activity = created.body["ref"].as_str().expect("ref");
    let output = format!("/v1/tenants/{tenant}/activities/{activity}/output");
    put(&api, &output, &token, b"# one").await;
    put(&api, &output, &token, b"# two").await;
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    let content = Content::new(&stores, &config.content, &config.s3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let report = strata::content::reconcile::scan(&stores.postgres, &content, Some(&tenant))
            .await
            .expect("scan");
        assert_eq!(report.dangling, vec![], "{report:?}");
        if report.orphans.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve never reconciled: {report:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let read = api
        .client
        .get(api.url(&output))
        .bearer_auth(&token)
        .send()
        .await
        .expect("read");
    assert_eq!(read.bytes().await.expect("bytes").as_ref(), b"# two");
}

/// One runner at a time: while another holds the advisory lock, a pass
/// does nothing; once it is released, the pass runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_periodic_pass_runs_only_on_the_instance_holding_the_lock() {
    let fixture = common::Fixture::new("content-lock").await;
    let stores = fixture.migrated_stores().await;
    let config = fixture.config();
    let content = Content::new(&stores, &config.content, &config.s3);
    let pg = &stores.postgres;
    let mut holder = pg.begin_admin().await.expect("admin");
    pg.query("SELECT pg_advisory_xact_lock($1)")
        .bind(strata::content::reconcile::LOCK_KEY)
        .execute(&mut *holder)
        .await
        .expect("lock");
    let skipped = strata::content::reconcile::run_locked(pg, &content, chrono::Duration::hours(1))
        .await
        .expect("pass");
    assert!(skipped.is_none(), "another instance holds the lock");
    holder.commit().await.expect("release");
    let ran = strata::content::reconcile::run_locked(pg, &content, chrono::Duration::hours(1))
        .await
        .expect("pass");
    assert!(ran.is_some(), "the lock is free again");
}

async fn admin_call(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let reply = api
        .admin_call(method, path, token, body.as_ref(), &[])
        .await;
    (reply.status, reply.body)
}

/// `/admin/reconcile` is the same pass on the admin listener: GET reports,
/// POST repairs after the grace period; the findings reach `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_reports_and_repairs() {
    let (admin_token, hash) = strata::api::auth::new_token().expect("random token");
    let api = Api::start(
        "content-admin-rec",
        &[("STRATA_ADMIN__TOKEN_SHA256", &hash)],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let created = api
        .post(
            &format!("/v1/tenants/{tenant}/activities"),
            &token,
            json!({"kind": "blog", "status": "running"}),
        )
        .await;
    let activity = created.body["ref"].as_str().expect("ref");
    let output = format!("/v1/tenants/{tenant}/activities/{activity}/output");
    let replaced = put(&api, &output, &token, b"# one").await;
    put(&api, &output, &token, b"# two").await;
    let orphan = vec![format!(
        "mongo:activity_outputs/{}",
        replaced["ref"].as_str().expect("ref")
    )];
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    let (status, _) = admin_call(&api, get.clone(), "/admin/reconcile", None, None).await;
    assert_eq!(status, 401, "the admin token is required");
    let (status, found) = admin_call(
        &api,
        get.clone(),
        "/admin/reconcile",
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        (found["dangling"].as_u64(), found["orphans"].as_u64()),
        (Some(0), Some(1)),
        "{found}"
    );
    assert_eq!(whats(&found["report"]["orphans"]), orphan);
    assert!(found.get("repair").is_none(), "a GET changes nothing");
    let metrics = reqwest::get(format!("{}/metrics", api.served.admin))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("strata_reconcile_findings{kind=\"orphan\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("reconcile"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let other = format!("/admin/reconcile?tenant={}", ulid::Ulid::generate());
    let (status, none) = admin_call(&api, get.clone(), &other, Some(&admin_token), None).await;
    assert_eq!((status, none["orphans"].as_u64()), (200, Some(0)), "{none}");
    let (status, refused) = admin_call(
        &api,
        get,
        "/admin/reconcile?tenant=nope",
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(status, 400, "{refused}");

    // Refused repairs change nothing.
    for bad in [
        json!({}),
        json!({"graceHours": 100000}),
        json!({"graceHours": 0, "x": 1}),
    ] {
        let (status, refused) = admin_call(
            &api,
            post.clone(),
            "/admin/reconcile",
            Some(&admin_token),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 422, "{bad}: {refused}");
    }
    let (status, kept) = admin_call(
        &api,
        post.clone(),
        "/admin/reconcile",
        Some(&admin_token),
        Some(json!({"graceHours": 1})),
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(whats(&kept["repair"]["tooYoung"]), orphan);
    assert_eq!(kept["repair"]["removed"], json!([]));
    let body = json!({"graceHours": 0, "tenant": tenant});
    let (status, repaired) = admin_call(
        &api,
        post,
        "/admin/reconcile",
        Some(&admin_token),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{repaired}");
    assert_eq!(whats(&repaired["repair"]["removed"]), orphan);
    let (_, after) = admin_call(
        &api,
        reqwest::Method::GET,
        "/admin/reconcile",
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(
        (after["dangling"].as_u64(), after["orphans"].as_u64()),
        (Some(0), Some(0)),
        "{after}"
    );
    let read = api
        .client
        .get(api.url(&output))
        .bearer_auth(&token)
        .send()
        .await
        .expect("read");
    assert_eq!(read.bytes().await.expect("bytes").as_ref(), b"# two");
}
