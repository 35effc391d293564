//! Blog and social posts that reference an activity output, against the
//! real servers: `outputRef` must name an output of the post's tenant (as
//! must an activity's `outputRef` set by hand)
//! (422 naming the field otherwise), the post's content is read through
//! the post (streamed and pre-signed), another tenant gets 404, and
//! reconciliation counts posts' `outputRef` as pointers (an output only a
//! post points at is no orphan; one nothing points at any more is).

mod common;

use common::api::{Api, assert_problem};
use common::content::{check_presigned, get_bytes, orphans, put_raw, repair, scan, sha256};
use mongodb::bson::{Document, doc};
use reqwest::Method;
use serde_json::json;

/// A succeeded activity with `body` as its output: (activity, output).
async fn output(api: &Api, tenant: &str, token: &str, body: &[u8]) -> (String, String) {
    let created = api
        .post(
            &format!("/v1/tenants/{tenant}/activities"),
            token,
            json!({"kind": "blog", "status": "running"}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let activity = created.body["ref"].as_str().expect("ref").to_string();
    let written = put_raw(
        api,
        &format!("/v1/tenants/{tenant}/activities/{activity}/output"),
        token,
        "text/markdown",
        body,
    )
    .await
    .expect("put");
    assert_eq!(written.status, 201, "{written:?}");
    let output = written.body["ref"].as_str().expect("ref").to_string();
    (activity, output)
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_point_at_outputs_of_their_tenant_and_serve_them() {
    let api = Api::start("content-posts", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let other = api.tenant("globex").await;
    let other_token = api.token(Some(&other)).await;
    let article = "# Launch\n\nThe article — ünïcode.\n".as_bytes();
    let (activity, article_ref) = output(&api, &tenant, &token, article).await;
    let (_, foreign_ref) = output(&api, &other, &other_token, b"# theirs").await;

    // An activity's outputRef set by hand is checked the same way.
    let item = format!("/v1/tenants/{tenant}/activities/{activity}");
    for bad in [ulid::Ulid::generate().to_string(), foreign_ref.clone()] {
        let refused = api
            .call(
                Method::PATCH,
                &item,
                Some(&token),
                Some(&json!({"outputRef": bad})),
                &[("if-match", "*")],
            )
            .await;
        assert_problem(&refused, 422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "outputRef");
    }
    let refused = api
        .post(
            &format!("/v1/tenants/{tenant}/activities"),
            &token,
            json!({"kind": "blog", "outputRef": foreign_ref}),
        )
        .await;
    assert_problem(&refused, 422, "validation_failed");

    for (collection, create) in [
        ("blog-posts", json!({"title": "Launch"})),
        ("social-posts", json!({"platform": "linkedin"})),
    ] {
        let posts = format!("/v1/tenants/{tenant}/{collection}");
        // outputRef must be an output of this tenant.
        for bad in [ulid::Ulid::generate().to_string(), foreign_ref.clone()] {
            let mut body = create.clone();
            body["outputRef"] = json!(bad);
            let refused = api.post(&posts, &token, body).await;
            assert_problem(&refused, 422, "validation_failed");
            assert_eq!(
                refused.body["errors"][0]["field"], "outputRef",
                "{refused:?}"
            );
        }

        let mut body = create.clone();
        body["outputRef"] = json!(article_ref);
        body["activityRef"] = json!(activity);
        let created = api.post(&posts, &token, body).await;
        assert_eq!(created.status, 201, "{created:?}");
        let post = created.body["ref"].as_str().expect("ref").to_string();
        assert_eq!(created.body["outputRef"], article_ref.as_str());
        let content = format!("{posts}/{post}/content");

        // Read through the post: streamed, with type, ETag and ranges.
        let etag = format!("\"{}\"", sha256(article));
        let (status, headers, bytes) = get_bytes(&api, &content, &token, &[]).await;
        assert_eq!((status, bytes.as_slice()), (200, article), "{collection}");
        assert_eq!(headers["content-type"], "text/markdown");
        assert_eq!(headers["etag"], etag.as_str());
        let (status, _, _) = get_bytes(&api, &content, &token, &[("if-none-match", &etag)]).await;
        assert_eq!(status, 304);
        let (status, _, bytes) = get_bytes(&api, &content, &token, &[("range", "bytes=0-5")]).await;
        assert_eq!((status, bytes.as_slice()), (206, &article[..=5]));
        let url = api.get(&format!("{content}/url"), &token).await;
        assert_eq!(url.status, 200, "{url:?}");
        assert_eq!(url.body["sha256"], sha256(article));
        check_presigned(
            url.body["url"].as_str().expect("url"),
            article,
            &tenant,
            &other,
        )
        .await;

        // Another tenant: 404 on its own path and with its token.
        for (path, who) in [
            (content.clone(), &other_token),
            (
                format!("/v1/tenants/{other}/{collection}/{post}/content"),
                &other_token,
            ),
            (
                format!("/v1/tenants/{other}/{collection}/{post}/content/url"),
                &other_token,
            ),
        ] {
            let reply = api.get(&path, who).await;
            assert_problem(&reply, 404, "not_found");
        }

        // PATCH: a bad outputRef is refused, null clears (then no content).
        let item = format!("{posts}/{post}");
        let refused = api
            .call(
                Method::PATCH,
                &item,
                Some(&token),
                Some(&json!({"outputRef": foreign_ref})),
                &[("if-match", "*")],
            )
            .await;
        assert_problem(&refused, 422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "outputRef");
        let cleared = api
            .call(
                Method::PATCH,
                &item,
                Some(&token),
                Some(&json!({"outputRef": null})),
                &[("if-match", "*")],
            )
            .await;
        assert_eq!(cleared.status, 200, "{cleared:?}");
        assert_problem(&api.get(&content, &token).await, 404, "not_found");
        let repointed = api
            .call(
                Method::PATCH,
                &item,
                Some(&token),
                Some(&json!({"outputRef": article_ref})),
                &[("if-match", "*")],
            )
            .await;
        assert_eq!(repointed.status, 200, "{repointed:?}");
        let (status, _, _) = get_bytes(&api, &content, &token, &[]).await;
        assert_eq!(status, 200);
    }
}

/// Reconciliation counts posts' `outputRef`: the activity's output
/// replaced, the first output is kept while a post points at it, becomes
/// an orphan once none does, and is then reclaimed; a post whose output
/// went missing is a dangling pointer.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_counts_posts_as_pointers() {
    let api = Api::start("content-posts-rec", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let (activity, first) = output(&api, &tenant, &token, b"# first").await;
    let blog = api
        .post(
            &format!("/v1/tenants/{tenant}/blog-posts"),
            &token,
            json!({"title": "First", "outputRef": first}),
        )
        .await;
    assert_eq!(blog.status, 201, "{blog:?}");
    let blog_ref = blog.body["ref"].as_str().expect("ref").to_string();
    let social = api
        .post(
            &format!("/v1/tenants/{tenant}/social-posts"),
            &token,
            json!({"platform": "x", "outputRef": first}),
        )
        .await;
    assert_eq!(social.status, 201, "{social:?}");
    let social_ref = social.body["ref"].as_str().expect("ref").to_string();

    // The activity's output is replaced: the posts still point at the
    // first one, which is therefore no orphan, and a repair keeps it.
    let replaced = put_raw(
        &api,
        &format!("/v1/tenants/{tenant}/activities/{activity}/output"),
        &token,
        "text/markdown",
        b"# second",
    )
    .await
    .expect("put");
    assert_eq!(replaced.status, 201);
    let second = replaced.body["ref"].as_str().expect("ref").to_string();
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(report.dangling, vec![], "{report:?}");
    assert_eq!(orphans(&report), Vec::<String>::new(), "{report:?}");
    let repaired = repair(&api, &report, 0).await;
    assert_eq!(repaired.removed, Vec::<String>::new());
    let (status, _, bytes) = get_bytes(
        &api,
        &format!("/v1/tenants/{tenant}/blog-posts/{blog_ref}/content"),
        &token,
        &[],
    )
    .await;
    assert_eq!((status, bytes.as_slice()), (200, b"# first".as_slice()));

    // One post moves on: still pointed at by the other.
    let moved = api
        .call(
            Method::PATCH,
            &format!("/v1/tenants/{tenant}/blog-posts/{blog_ref}"),
            Some(&token),
            Some(&json!({"outputRef": second})),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(moved.status, 200, "{moved:?}");
    assert_eq!(
        orphans(&scan(&api, Some(&tenant)).await),
        Vec::<String>::new()
    );
    // The other too: now nothing points at the first output.
    let moved = api
        .call(
            Method::PATCH,
            &format!("/v1/tenants/{tenant}/social-posts/{social_ref}"),
            Some(&token),
            Some(&json!({"outputRef": second})),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(moved.status, 200, "{moved:?}");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(
        orphans(&report),
        vec![format!("mongo:activity_outputs/{first}")],
        "{report:?}"
    );
    let repaired = repair(&api, &report, 0).await;
    assert_eq!(
        repaired.removed,
        vec![format!("mongo:activity_outputs/{first}")]
    );
    let clean = scan(&api, Some(&tenant)).await;
    assert_eq!(
        (clean.dangling.len(), clean.orphans.len()),
        (0, 0),
        "{clean:?}"
    );

    // A post whose output document vanished (removed behind strata's
    // back) is reported as a dangling pointer.
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    stores
        .mongo
        .database()
        .collection::<Document>("activity_outputs")
        .delete_one(doc! {"tenantId": &tenant, "refId": &second})
        .await
        .expect("delete");
    let report = scan(&api, Some(&tenant)).await;
    let from: Vec<&str> = report.dangling.iter().map(|d| d.from.as_str()).collect();
    assert_eq!(
        from,
        vec![
            format!("postgres:activities/{activity}"),
            format!("postgres:blog_posts/{blog_ref}"),
            format!("postgres:social_posts/{social_ref}"),
        ],
        "{report:?}"
    );
    assert!(
        report
            .dangling
            .iter()
            .all(|d| d.missing == format!("mongo:activity_outputs/{second}"))
    );
}

/// A post pointed at an old orphan output while a repair is under way:
/// the repair, judged on a report from before, spares it (the post
/// claimed it), and nothing dangles afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_post_claims_an_orphan_output_from_a_running_repair() {
    let api = Api::start("content-posts-claim", &[]).await;
    let tenant = api.tenant("acme").await;
    let token = api.token(Some(&tenant)).await;
    let (activity, first) = output(&api, &tenant, &token, b"# first").await;
    let replaced = put_raw(
        &api,
        &format!("/v1/tenants/{tenant}/activities/{activity}/output"),
        &token,
        "text/markdown",
        b"# second",
    )
    .await
    .expect("put");
    assert_eq!(replaced.status, 201);
    // The replaced output, two hours old: past a one-hour grace.
    let config = api.fixture.config();
    let stores = strata::stores::Stores::new(&config).await.expect("stores");
    let two_hours_ago = mongodb::bson::DateTime::from_millis(
        (chrono::Utc::now() - chrono::Duration::hours(2)).timestamp_millis(),
    );
    stores
        .mongo
        .database()
        .collection::<Document>("activity_outputs")
        .update_one(
            doc! {"tenantId": &tenant, "refId": &first},
            doc! {"$set": {"createdOn": two_hours_ago}},
        )
        .await
        .expect("age");
    let report = scan(&api, Some(&tenant)).await;
    assert_eq!(
        orphans(&report),
        vec![format!("mongo:activity_outputs/{first}")],
        "{report:?}"
    );

    // A post points at it before the repair acts on that report.
    let post = api
        .post(
            &format!("/v1/tenants/{tenant}/blog-posts"),
            &token,
            json!({"title": "Old one", "outputRef": first}),
        )
        .await;
    assert_eq!(post.status, 201, "{post:?}");
    let post_ref = post.body["ref"].as_str().expect("ref").to_string();
    let repaired = repair(&api, &report, 1).await;
    assert_eq!(repaired.removed, Vec::<String>::new(), "{repaired:?}");
    assert_eq!(
        repaired.too_young,
        vec![format!("mongo:activity_outputs/{first}")]
    );
    let after = scan(&api, Some(&tenant)).await;
    assert_eq!(
        (after.dangling.len(), after.orphans.len()),
        (0, 0),
        "{after:?}"
    );
    let (status, _, bytes) = get_bytes(
        &api,
        &format!("/v1/tenants/{tenant}/blog-posts/{post_ref}/content"),
        &token,
        &[],
    )
    .await;
    assert_eq!((status, bytes.as_slice()), (200, b"# first".as_slice()));
}
