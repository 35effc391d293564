//! Activity outputs through the split pattern, end to end against the real
//! servers (PostgreSQL through PgBouncer, mongod, Ceph radosgw): write,
//! read streamed (Range, ETag, Content-Type) and by pre-signed URL
//! (tampered and expired URLs refused by S3 itself), the limits, tenant
//! isolation, soft delete, multipart streaming, and a fault injected after
//! every step of the write leaving no dangling pointer (the orphans it
//! leaves are what reconciliation reports).

mod common;

use std::time::{Duration, Instant};

use common::api::{Api, assert_problem};
use common::content::{direct_upload_until_confirm, get_bytes, kinds, put_raw, scan, sha256};
use reqwest::Method;
use serde_json::{Value, json};
use strata::content::reconcile::Report;
use strata::content::{Content, ContentError};

const MIB: usize = 1024 * 1024;

/// Pseudo-random bytes (xorshift), so multipart parts differ.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn running_activity(api: &Api, tenant: &str, token: &str) -> String {
    let created = api
        .post(
            &format!("/v1/tenants/{tenant}/activities"),
            token,
            json!({"kind": "blog", "status": "running"}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    created.body["ref"].as_str().expect("ref").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_are_written_read_streamed_and_presigned() {
    let api = Api::start(
        "content-out",
        &[
            ("STRATA_CONTENT__PRESIGN_EXPIRY_SECS", "4"),
            ("STRATA_CONTENT__PART_SIZE_BYTES", "5242880"),
            ("STRATA_CONTENT__ACTIVITY_OUTPUT_MAX_BYTES", "16777216"),
        ],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("globex").await;
    let other_token = api.token(Some(&other)).await;
    let activity = running_activity(&api, &tenant, &token).await;
    let path = format!("/v1/tenants/{tenant}/activities/{activity}/output");

    // Write: 201, the activity succeeded and points at the output.
    let markdown = "# Launch\n\nThe *first* post — ünïcode included.\n".as_bytes();
    let written = put_raw(
        &api,
        &path,
        &token,
        "text/markdown; charset=utf-8",
        markdown,
    )
    .await
    .expect("put");
    assert_eq!(written.status, 201, "{written:?}");
    assert_eq!(written.body["sha256"], sha256(markdown));
    assert_eq!(written.body["size"], markdown.len());
    assert_eq!(written.body["format"], "markdown");
    assert_eq!(written.header("location"), Some(path.as_str()));
    let etag = format!("\"{}\"", sha256(markdown));
    assert_eq!(written.header("etag"), Some(etag.as_str()));
    let first_output = written.body["ref"].as_str().expect("ref").to_string();
    let record = api
        .get(
            &format!("/v1/tenants/{tenant}/activities/{activity}"),
            &token,
        )
        .await;
    assert_eq!(record.body["status"], "succeeded", "{record:?}");
    assert_eq!(record.body["outputRef"], first_output.as_str());
    assert!(record.body["finishedAt"].is_string());
    // The write is a transition in the activity's history, pointer included.
    let history = api
        .history(
            &format!("/v1/tenants/{tenant}/activities/{activity}"),
            &token,
        )
        .await;
    let (action, diff) = &history[0];
    assert_eq!(action, "transition", "{history:?}");
    assert_eq!(diff["before"]["status"], "running", "{diff}");
    assert_eq!(diff["after"]["status"], "succeeded", "{diff}");
    assert_eq!(diff["after"]["outputRef"], first_output.as_str(), "{diff}");

    // Streamed read: the same bytes, type, ETag; If-None-Match; ranges.
    let (status, headers, bytes) = get_bytes(&api, &path, &token, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, markdown);
    assert_eq!(headers["content-type"], "text/markdown");
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    let (status, _, bytes) = get_bytes(&api, &path, &token, &[("if-none-match", &etag)]).await;
    assert_eq!((status, bytes.len()), (304, 0));
    let (status, headers, bytes) = get_bytes(&api, &path, &token, &[("range", "bytes=2-7")]).await;
    assert_eq!(status, 206);
    assert_eq!(bytes, &markdown[2..=7]);
    assert_eq!(
        headers["content-range"],
        format!("bytes 2-7/{}", markdown.len()).as_str()
    );
    let (status, _, bytes) = get_bytes(&api, &path, &token, &[("range", "bytes=-4")]).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (206, &markdown[markdown.len() - 4..])
    );
    let beyond = api
        .call(
            Method::GET,
            &path,
            Some(&token),
            None,
            &[("range", "bytes=100000-100010")],
        )
        .await;
    assert_problem(&beyond, 416, "range_not_satisfiable");

    // Pre-signed GET: works straight from S3, for exactly that key, until
    // it expires; a tampered signature or another key is refused by S3.
    let url = api.get(&format!("{path}/url"), &token).await;
    assert_eq!(url.status, 200, "{url:?}");
    let presigned = url.body["url"].as_str().expect("url").to_string();
    assert!(presigned.contains("X-Amz-Expires=4"), "{presigned}");
    assert!(presigned.contains(&format!("/{tenant}/activities/{activity}/outputs/")));
    let s3 = reqwest::Client::new();
    let fetched = s3.get(&presigned).send().await.expect("S3 answers");
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.expect("bytes").as_ref(), markdown);
    let mut tampered = presigned.clone();
    let last = tampered.pop().expect("a signature");
    tampered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(s3.get(&tampered).send().await.expect("S3").status(), 403);
    let elsewhere = presigned.replacen(&tenant, &other, 1);
    assert_eq!(s3.get(&elsewhere).send().await.expect("S3").status(), 403);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = s3.get(&presigned).send().await.expect("S3").status();
        if status == 403 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "the pre-signed URL never expired"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Replace the output of the succeeded activity with JSON.
    let document = serde_json::to_vec(&json!({"title": "Launch", "words": 7})).expect("json");
    let replaced = put_raw(&api, &path, &token, "application/json", &document)
        .await
        .expect("put");
    assert_eq!(replaced.status, 201, "{replaced:?}");
    assert_eq!(replaced.body["format"], "json");
    let (status, headers, bytes) = get_bytes(&api, &path, &token, &[]).await;
    assert_eq!((status, bytes), (200, document));
    assert_eq!(headers["content-type"], "application/json");

    // Multipart (12 MiB in parts of 5 MiB), read back byte-identical.
    let big_activity = running_activity(&api, &tenant, &token).await;
    let big_path = format!("/v1/tenants/{tenant}/activities/{big_activity}/output");
    let big = noise(12 * MIB + 17, 7);
    let stored = put_raw(&api, &big_path, &token, "text/markdown", &big)
        .await
        .expect("put");
    assert_eq!(stored.status, 201, "{stored:?}");
    assert_eq!(stored.body["size"], big.len());
    let (status, _, bytes) = get_bytes(&api, &big_path, &token, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(sha256(&bytes), sha256(&big), "multipart content differs");
    let (status, _, bytes) = get_bytes(
        &api,
        &big_path,
        &token,
        &[("range", "bytes=5242870-5242889")],
    )
    .await;
    assert_eq!(
        (status, bytes.as_slice()),
        (206, &big[5_242_870..5_242_890])
    );

    // Refusals: too large, wrong type, not running, no token, other tenant.
    let waiting = running_activity(&api, &tenant, &token).await;
    let waiting_path = format!("/v1/tenants/{tenant}/activities/{waiting}/output");
    let too_large = put_raw(
        &api,
        &waiting_path,
        &token,
        "text/markdown",
        &vec![b'x'; 16 * MIB + 1],
    )
    .await
    .expect("put");
    assert_problem(&too_large, 413, "body_too_large");
    let html = put_raw(&api, &waiting_path, &token, "text/html", b"<p>")
        .await
        .expect("put");
    assert_problem(&html, 415, "unsupported_media_type");
    let still = api
        .get(
            &format!("/v1/tenants/{tenant}/activities/{waiting}"),
            &token,
        )
        .await;
    assert_eq!(still.body["status"], "running");
    assert_eq!(still.body["outputRef"], Value::Null);
    let (status, _, _) = get_bytes(&api, &waiting_path, &token, &[]).await;
    assert_eq!(status, 404, "no output yet");

    let queued = api
        .post(
            &format!("/v1/tenants/{tenant}/activities"),
            &token,
            json!({"kind": "blog"}),
        )
        .await;
    let queued_ref = queued.body["ref"].as_str().expect("ref");
    let refused = put_raw(
        &api,
        &format!("/v1/tenants/{tenant}/activities/{queued_ref}/output"),
        &token,
        "text/markdown",
        b"early",
    )
    .await
    .expect("put");
    assert_problem(&refused, 409, "illegal_transition");
    assert_eq!(refused.body["currentState"], "queued");

    let anonymous = api.call(Method::GET, &path, None, None, &[]).await;
    assert_problem(&anonymous, 401, "unauthorized");
    let foreign = put_raw(&api, &path, &other_token, "text/markdown", b"x")
        .await
        .expect("put");
    assert_problem(&foreign, 404, "not_found");
    let cross = api
        .get(
            &format!("/v1/tenants/{other}/activities/{activity}/output"),
            &other_token,
        )
        .await;
    assert_problem(&cross, 404, "not_found");
    let cross_url = api
        .get(
            &format!("/v1/tenants/{other}/activities/{activity}/output/url"),
            &other_token,
        )
        .await;
    assert_problem(&cross_url, 404, "not_found");

    // Reconciliation: nothing dangles; the replaced output's document is
    // an orphan (its object goes with it), nothing else.
    let report = scan(&api, None).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    let orphans: Vec<&str> = report.orphans.iter().map(|o| o.what.as_str()).collect();
    assert_eq!(
        orphans,
        vec![format!("mongo:activity_outputs/{first_output}")],
        "{report:?}"
    );

    // A soft-deleted activity's content is not served.
    let deleted = api
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tenant}/activities/{activity}"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(deleted.status, 204);
    let gone = api.get(&path, &token).await;
    assert_problem(&gone, 404, "not_found");
    let gone_url = api.get(&format!("{path}/url"), &token).await;
    assert_problem(&gone_url, 404, "not_found");
}

/// The write path itself: a body over the limit, streamed in chunks past
/// the part size, aborts its multipart upload and leaves no object.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_stream_aborts_its_multipart_upload() {
    let fixture = common::Fixture::new("content-abort").await;
    let stores = fixture.migrated_stores().await;
    let mut config = fixture.config();
    config.content.part_size_bytes = 5 * MIB as u64;
    let content = Content::new(&stores, &config.content, &config.s3);
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..12)
        .map(|i| Ok(bytes::Bytes::from(noise(MIB, i + 1))))
        .collect();
    let key = "01JTENANT00000000000000000/activities/x/outputs/y.md";
    let refused = content
        .put(
            key,
            "text/markdown",
            11 * MIB as u64,
            futures_util::stream::iter(chunks),
        )
        .await;
    assert!(
        matches!(refused, Err(ContentError::TooLarge { .. })),
        "{refused:?}"
    );
    let uploads = stores
        .s3
        .client()
        .list_multipart_uploads()
        .bucket(content.bucket())
        .send()
        .await
        .expect("list uploads");
    assert_eq!(uploads.uploads().len(), 0, "{uploads:?}");
    assert!(!content.exists(key).await.expect("head"));

    // Within the limit, the same stream is stored whole, in three parts.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..12)
        .map(|i| Ok(bytes::Bytes::from(noise(MIB, i + 1))))
        .collect();
    let expected: Vec<u8> = (0..12).flat_map(|i| noise(MIB, i + 1)).collect();
    let stored = content
        .put(
            key,
            "text/markdown",
            12 * MIB as u64,
            futures_util::stream::iter(chunks),
        )
        .await
        .expect("stored");
    assert_eq!(stored.size, 12 * MIB as u64);
    assert_eq!(stored.sha256, sha256(&expected));
    let head = stores
        .s3
        .client()
        .head_object()
        .bucket(content.bucket())
        .key(key)
        .send()
        .await
        .expect("head");
    assert!(
        head.e_tag().is_some_and(|t| t.ends_with("-3\"")),
        "a three-part upload: {head:?}"
    );
}

/// Kills strata (abort, as a crash) right after `step` of an output write,
/// then checks the stores: no dangling pointer, and the orphans expected.
async fn killed_after(step: &str) -> (Api, String, String, Report) {
    let fault = format!("{step}:kill");
    let mut api = Api::start(
        &format!("content-kill-{step}"),
        &[("STRATA_TEST_FAULT", fault.as_str())],
    )
    .await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let activity = running_activity(&api, &tenant, &token).await;
    let path = format!("/v1/tenants/{tenant}/activities/{activity}/output");
    let answer = put_raw(&api, &path, &token, "text/markdown", b"# crash").await;
    assert!(answer.is_err(), "the process died mid-request: {answer:?}");
    let exit = api.served.child.wait().expect("wait");
    assert!(!exit.success(), "{exit:?}");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "after {step}: {report:?}");
    (api, tenant, activity, report)
}

async fn activity_state(api: &Api, activity: &str) -> (String, Option<String>) {
    let mut tx = api.pg.begin_admin().await.expect("admin");
    api.pg
        .query_as::<(String, Option<String>)>(
            "SELECT status, output_ref::text FROM activities WHERE ref_id = $1::ulid",
        )
        .bind(activity)
        .fetch_one(&mut *tx)
        .await
        .expect("activity")
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_object_leaves_an_orphan_object() {
    let (api, _, activity, report) = killed_after("s3").await;
    assert_eq!(kinds(&report), vec!["s3"], "{report:?}");
    assert_eq!(
        activity_state(&api, &activity).await,
        ("running".into(), None)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_document_leaves_an_orphan_document() {
    let (api, _, activity, report) = killed_after("mongo").await;
    assert_eq!(kinds(&report), vec!["mongo"], "{report:?}");
    assert_eq!(
        activity_state(&api, &activity).await,
        ("running".into(), None)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_before_the_commit_leaves_an_orphan_document() {
    let (api, _, activity, report) = killed_after("postgres").await;
    assert_eq!(kinds(&report), vec!["mongo"], "{report:?}");
    assert_eq!(
        activity_state(&api, &activity).await,
        ("running".into(), None)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_commit_leaves_a_complete_write() {
    let (api, _, activity, report) = killed_after("committed").await;
    assert_eq!(report.orphans, vec![], "{report:?}");
    let (status, output) = activity_state(&api, &activity).await;
    assert_eq!(status, "succeeded");
    assert!(output.is_some());
}

/// The `fail` mode: the request gets a 500, strata keeps serving, and the
/// next write goes through.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_answers_500_and_points_at_nothing() {
    let api = Api::start("content-fail", &[("STRATA_TEST_FAULT", "mongo")]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let activity = running_activity(&api, &tenant, &token).await;
    let path = format!("/v1/tenants/{tenant}/activities/{activity}/output");
    let failed = put_raw(&api, &path, &token, "text/markdown", b"# x")
        .await
        .expect("an answer");
    assert_problem(&failed, 500, "internal");
    let record = api
        .get(
            &format!("/v1/tenants/{tenant}/activities/{activity}"),
            &token,
        )
        .await;
    assert_eq!(record.body["status"], "running");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    assert_eq!(kinds(&report), vec!["mongo"], "{report:?}");
}

/// Direct uploads: a pre-signed PUT bound to the key, type and size, then a
/// confirm that checks what S3 holds before any pointer is written.
#[tokio::test(flavor = "multi_thread")]
async fn direct_uploads_are_confirmed_against_what_was_declared() {
    let api = Api::start("content-direct", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("globex").await;
    let other_token = api.token(Some(&other)).await;
    let activity = running_activity(&api, &tenant, &token).await;
    let uploads = format!("/v1/tenants/{tenant}/activities/{activity}/output/uploads");
    let bytes = b"# Uploaded directly\n\nstraight to S3.\n".to_vec();
    let (upload, confirm, declared) = direct_upload_until_confirm(
        &api,
        &uploads,
        &token,
        &other_token,
        "text/markdown",
        &bytes,
        |upload| format!("/{tenant}/activities/{activity}/outputs/{upload}.md"),
    )
    .await;
    let still = api
        .get(
            &format!("/v1/tenants/{tenant}/activities/{activity}"),
            &token,
        )
        .await;
    assert_eq!(
        still.body["status"], "running",
        "no pointer before a good confirm"
    );

    // The good confirm: the activity succeeds, pointing at the upload.
    let confirmed = api.post(&confirm, &token, declared.clone()).await;
    assert_eq!(confirmed.status, 201, "{confirmed:?}");
    assert_eq!(confirmed.body["ref"], upload.as_str());
    let record = api
        .get(
            &format!("/v1/tenants/{tenant}/activities/{activity}"),
            &token,
        )
        .await;
    assert_eq!(record.body["status"], "succeeded");
    assert_eq!(record.body["outputRef"], upload.as_str());
    let (status, _, read) = get_bytes(
        &api,
        &format!("/v1/tenants/{tenant}/activities/{activity}/output"),
        &token,
        &[],
    )
    .await;
    assert_eq!((status, read), (200, bytes.clone()));
    let again = api.post(&confirm, &token, declared.clone()).await;
    assert_eq!(
        again.status, 201,
        "a repeated confirm changes nothing: {again:?}"
    );

    // Bytes of the declared size but other content: the confirm says so.
    let second = running_activity(&api, &tenant, &token).await;
    let second_uploads = format!("/v1/tenants/{tenant}/activities/{second}/output/uploads");
    let started = api.post(&second_uploads, &token, declared.clone()).await;
    let second_upload = started.body["ref"].as_str().expect("ref").to_string();
    let second_url = started.body["url"].as_str().expect("url").to_string();
    let mut swapped = bytes.clone();
    swapped.reverse();
    let uploaded = reqwest::Client::new()
        .put(&second_url)
        .header("content-type", "text/markdown")
        .body(swapped)
        .send()
        .await
        .expect("S3");
    assert_eq!(uploaded.status(), 200);
    let refused = api
        .post(
            &format!("{second_uploads}/{second_upload}/confirm"),
            &token,
            declared.clone(),
        )
        .await;
    assert_problem(&refused, 422, "upload_mismatch");
    assert_eq!(refused.body["errors"][0]["field"], "sha256");

    // The unconfirmed upload is an orphan object; nothing dangles.
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    let orphans: Vec<&str> = report.orphans.iter().map(|o| o.what.as_str()).collect();
    assert_eq!(
        orphans,
        vec![format!(
            "s3:{tenant}/activities/{second}/outputs/{second_upload}.md"
        )],
        "{report:?}"
    );
}
