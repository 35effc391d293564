//! The admin API's tenants and service tokens, and the CLI's equivalents,
//! against real servers; and the revocation bound: every change (revoke,
//! expiry, suspend, resume, delete) is seen by every instance on its very
//! next request, because authentication reads PostgreSQL on each request.

mod common;

use common::api::{Api, Reply, assert_problem, call_url};
use common::run;
use common::serve::Served;
use reqwest::Method;
use serde_json::{Value, json};

/// An admin API client for one instance.
struct Admin {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Admin {
    fn of(served: &Served, token: &str) -> Admin {
        Admin {
            base: served.admin.clone(),
            token: token.to_string(),
            client: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let url = format!("{}{path}", self.base);
        call_url(
            &self.client,
            method,
            &url,
            Some(&self.token),
            body.as_ref(),
            &[],
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A tenant made through the API: its ref.
    async fn tenant(&self, slug: &str) -> String {
        let made = self
            .post("/admin/tenants", json!({"slug": slug, "name": slug}))
            .await;
        assert_eq!(made.status, 201, "{made:?}");
        made.body["ref"].as_str().expect("ref").to_string()
    }

    /// A service token made through the API: (secret, ref).
    async fn token(&self, scope: Value) -> (String, String) {
        let mut body = json!({"name": "svc"});
        if let (Some(body), Some(scope)) = (body.as_object_mut(), scope.as_object()) {
            body.extend(scope.clone());
        }
        let made = self.post("/admin/tokens", body).await;
        assert_eq!(made.status, 201, "{made:?}");
        (
            made.body["token"].as_str().expect("secret").to_string(),
            made.body["ref"].as_str().expect("ref").to_string(),
        )
    }
}

/// `strata serve` with an admin token configured: the server and the token.
async fn start(tag: &str) -> (Api, String, String) {
    let (token, hash) = strata::api::auth::new_token().expect("random token");
    let api = Api::start(tag, &[("STRATA_ADMIN__TOKEN_SHA256", &hash)]).await;
    (api, token, hash)
}

fn cli(api: &Api, args: &[&str]) -> (Option<i32>, String, String) {
    run(api.fixture.strata(args))
}

fn cli_json(api: &Api, args: &[&str]) -> Value {
    let (code, out, err) = cli(api, args);
    assert_eq!(code, Some(0), "strata {args:?}\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("JSON from {args:?}: {e}\n{out}"))
}

/// GET of a data API path on one instance.
async fn data_get(served: &Served, path: &str, token: &str) -> Reply {
    let url = format!("{}{path}", served.api);
    call_url(
        &reqwest::Client::new(),
        Method::GET,
        &url,
        Some(token),
        None,
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_errors_are_problems_and_need_the_admin_token() {
    let (api, token, _) = start("admin-auth").await;
    let admin = Admin::of(&api.served, &token);
    let url = format!("{}/admin/tenants", api.served.admin);
    let client = reqwest::Client::new();
    for reply in [
        call_url(&client, Method::GET, &url, None, None, &[]).await,
        call_url(&client, Method::GET, &url, Some("strata_wrong"), None, &[]).await,
        call_url(
            &client,
            Method::GET,
            &url,
            None,
            None,
            &[("authorization", &format!("Basic {token}"))],
        )
        .await,
    ] {
        assert_problem(&reply, 401, "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    assert_problem(&admin.get("/admin/nothing").await, 404, "not_found");
    assert_problem(
        &admin.call(Method::PUT, "/admin/tenants", None).await,
        405,
        "method_not_allowed",
    );
    // A body that is not JSON, not declared as JSON, or of the wrong shape.
    let raw = call_url(
        &client,
        Method::POST,
        &url,
        Some(&token),
        None,
        &[("content-type", "text/plain")],
    )
    .await;
    assert_problem(&raw, 415, "unsupported_media_type");
    let unknown = admin
        .post(
            "/admin/tenants",
            json!({"slug": "x", "name": "X", "color": "red"}),
        )
        .await;
    assert_problem(&unknown, 422, "validation_failed");
    let missing = admin.post("/admin/tenants", json!({"slug": "x"})).await;
    assert_problem(&missing, 422, "validation_failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_tenants_list_count_and_change_state() {
    let (api, token, _) = start("admin-tenants").await;
    let admin = Admin::of(&api.served, &token);

    let made = admin
        .post(
            "/admin/tenants",
            json!({"slug": "acme", "name": "Acme", "plan": "pro"}),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let acme = made.body["ref"].as_str().expect("ref").to_string();
    assert_eq!(
        made.header("location"),
        Some(format!("/admin/tenants/{acme}").as_str())
    );
    assert_eq!(made.body["status"], "active");
    assert_eq!(made.body["plan"], "pro");
    assert_eq!(made.body["counts"]["activities"], 0);
    assert!(made.body.get("id").is_none(), "ids never leave strata");

    // Refused input: a duplicate slug (the unique constraint), a bad slug.
    let twice = admin
        .post("/admin/tenants", json!({"slug": "acme", "name": "Again"}))
        .await;
    assert_problem(&twice, 409, "conflict");
    let bad = admin
        .post("/admin/tenants", json!({"slug": "Not A Slug", "name": "X"}))
        .await;
    assert_problem(&bad, 422, "validation_failed");
    assert_eq!(bad.body["errors"][0]["field"], "slug", "{bad:?}");

    // Counts: live rows only (a soft-deleted activity is not counted).
    let (own, _) = admin.token(json!({"tenant": acme})).await;
    let base = format!("/v1/tenants/{acme}/activities");
    let mut refs = Vec::new();
    for kind in ["a", "b", "c"] {
        let created = api.post(&base, &own, json!({"kind": kind})).await;
        assert_eq!(created.status, 201, "{created:?}");
        refs.push(created.body["ref"].as_str().expect("ref").to_string());
    }
    let deleted = api
        .call(
            Method::DELETE,
            &format!("{base}/{}", refs[0]),
            Some(&own),
            None,
            &[],
        )
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let one = admin.get(&format!("/admin/tenants/{acme}")).await;
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(one.body["counts"]["activities"], 2, "{one:?}");
    assert_eq!(one.body["counts"]["usageEvents"], 0, "{one:?}");

    // List: pages in ref order, each tenant with its counts.
    let other = admin.tenant("other").await;
    let first = admin.get("/admin/tenants?limit=1").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["items"][0]["ref"], acme.as_str());
    assert_eq!(first.body["items"][0]["counts"]["activities"], 2);
    let next = first.body["next"].as_str().expect("a next page");
    let second = admin
        .get(&format!("/admin/tenants?limit=1&cursor={next}"))
        .await;
    assert_eq!(second.body["items"][0]["ref"], other.as_str(), "{second:?}");
    assert!(second.body.get("next").is_none(), "{second:?}");
    assert_problem(
        &admin.get("/admin/tenants?limit=0").await,
        422,
        "validation_failed",
    );
    assert_problem(
        &admin.get("/admin/tenants?cursor=nope").await,
        422,
        "validation_failed",
    );
    assert_problem(
        &admin.get("/admin/tenants?status=gone").await,
        400,
        "invalid_query",
    );
    assert_problem(
        &admin.get("/admin/tenants/not-a-ulid").await,
        400,
        "invalid_ref",
    );
    assert_problem(
        &admin.get("/admin/tenants/01ARZ3NDEKTSV4RRFFQ69G5FAV").await,
        404,
        "not_found",
    );
    assert_problem(
        &admin
            .post(
                "/admin/tenants/01ARZ3NDEKTSV4RRFFQ69G5FAV/suspend",
                json!({}),
            )
            .await,
        404,
        "not_found",
    );

    // Suspend (twice: no change the second time), resume.
    let platform = admin.token(json!({"allTenants": true})).await.0;
    let suspended = admin
        .post(&format!("/admin/tenants/{acme}/suspend"), json!({}))
        .await;
    assert_eq!(suspended.body["status"], "suspended", "{suspended:?}");
    let again = admin
        .post(&format!("/admin/tenants/{acme}/suspend"), json!({}))
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["updatedAt"], suspended.body["updatedAt"]);
    for token in [&own, &platform] {
        assert_problem(&api.get(&base, token).await, 403, "tenant_suspended");
    }
    let listed = admin.get("/admin/tenants?status=suspended").await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    let resumed = admin
        .post(&format!("/admin/tenants/{acme}/resume"), json!({}))
        .await;
    assert_eq!(resumed.body["status"], "active", "{resumed:?}");
    assert_eq!(api.get(&base, &own).await.status, 200);

    // Delete (soft): gone from the data API for every token, at once.
    let gone = admin
        .call(Method::DELETE, &format!("/admin/tenants/{acme}"), None)
        .await;
    assert_eq!(gone.status, 200, "{gone:?}");
    assert_eq!(gone.body["status"], "deleted");
    assert!(gone.body["deletedAt"].is_string(), "{gone:?}");
    for token in [&own, &platform] {
        assert_problem(&api.get(&base, token).await, 404, "not_found");
        let record = format!("{base}/{}", refs[1]);
        assert_problem(&api.get(&record, token).await, 404, "not_found");
        let write = api.post(&base, token, json!({"kind": "late"})).await;
        assert_problem(&write, 404, "not_found");
    }
    // Deleted is final: PostgreSQL's state machine refuses the way back.
    for action in ["resume", "suspend"] {
        let refused = admin
            .post(&format!("/admin/tenants/{acme}/{action}"), json!({}))
            .await;
        assert_problem(&refused, 409, "illegal_transition");
        assert_eq!(refused.body["currentState"], "deleted", "{refused:?}");
        assert_eq!(refused.body["allowedStates"], json!([]), "{refused:?}");
    }
    let twice = admin
        .call(Method::DELETE, &format!("/admin/tenants/{acme}"), None)
        .await;
    assert_eq!(twice.status, 200, "{twice:?}");
    assert_eq!(twice.body["deletedAt"], gone.body["deletedAt"]);
    // Still listed (until the purge), and no new token for it.
    let deleted_list = admin.get("/admin/tenants?status=deleted").await;
    assert_eq!(deleted_list.body["items"][0]["ref"], acme.as_str());
    let refused = admin
        .post("/admin/tokens", json!({"name": "late", "tenant": acme}))
        .await;
    assert_problem(&refused, 422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "tenant");
    // The other tenant was never touched.
    let untouched = admin.get(&format!("/admin/tenants/{other}")).await;
    assert_eq!(untouched.body["status"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_tokens_show_the_secret_once() {
    let (api, token, admin_hash) = start("admin-tokens").await;
    let admin = Admin::of(&api.served, &token);
    let tenant = admin.tenant("tokened").await;

    let made = admin
        .post(
            "/admin/tokens",
            json!({"name": "publisher", "tenant": tenant, "expiresInDays": 30}),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.header("cache-control"), Some("no-store"));
    let secret = made.body["token"].as_str().expect("secret").to_string();
    let token_ref = made.body["ref"].as_str().expect("ref").to_string();
    assert_eq!(
        made.header("location"),
        Some(format!("/admin/tokens/{token_ref}").as_str())
    );
    assert_eq!(made.body["tenantRef"], tenant.as_str());
    assert_eq!(made.body["allTenants"], false);
    assert!(made.body["expiresAt"].is_string(), "{made:?}");
    let platform = admin
        .post(
            "/admin/tokens",
            json!({"name": "indexer", "allTenants": true}),
        )
        .await;
    assert_eq!(platform.status, 201, "{platform:?}");
    assert_eq!(platform.body["allTenants"], true);
    assert!(platform.body["tenantRef"].is_null());
    assert!(platform.body["expiresAt"].is_null());
    let platform_secret = platform.body["token"].as_str().expect("secret");

    // Refused: no scope, both scopes, a bad expiry, an unknown tenant.
    for (body, field) in [
        (json!({"name": "x"}), "tenant"),
        (
            json!({"name": "x", "tenant": tenant, "allTenants": true}),
            "tenant",
        ),
        (
            json!({"name": "x", "allTenants": true, "expiresInDays": 0}),
            "expiresInDays",
        ),
        (json!({"name": " ", "allTenants": true}), "name"),
        (
            json!({"name": "x", "tenant": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
            "tenant",
        ),
    ] {
        let refused = admin.post("/admin/tokens", body.clone()).await;
        assert_problem(&refused, 422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], field, "{body}");
    }

    // Never again: not in the list, not in get; no hash either.
    let secret_hash = strata::api::auth::token_sha256(&secret);
    let listed = admin.get("/admin/tokens").await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{listed:?}");
    let one = admin.get(&format!("/admin/tokens/{token_ref}")).await;
    assert_eq!(one.status, 200, "{one:?}");
    for reply in [&listed, &one] {
        assert!(
            !reply.text.contains(&secret)
                && !reply.text.contains(platform_secret)
                && !reply.text.contains(&secret_hash)
                && !reply.text.contains(&admin_hash),
            "{}",
            reply.text
        );
    }
    assert!(one.body.get("token").is_none(), "{one:?}");
    assert_eq!(one.body["name"], "publisher");
    assert!(one.body["revokedAt"].is_null());

    // Revoke: refused on the next request.
    let base = format!("/v1/tenants/{tenant}/activities");
    assert_eq!(api.get(&base, &secret).await.status, 200);
    let revoked = admin
        .post(&format!("/admin/tokens/{token_ref}/revoke"), json!({}))
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let revoked_at = revoked.body["revokedAt"].clone();
    assert!(revoked_at.is_string(), "{revoked:?}");
    assert_problem(&api.get(&base, &secret).await, 401, "unauthorized");
    let again = admin
        .post(&format!("/admin/tokens/{token_ref}/revoke"), json!({}))
        .await;
    assert_eq!(again.body["revokedAt"], revoked_at, "the first time stays");
    assert_problem(
        &admin
            .post("/admin/tokens/01ARZ3NDEKTSV4RRFFQ69G5FAV/revoke", json!({}))
            .await,
        404,
        "not_found",
    );
    // The platform token is untouched.
    assert_eq!(api.get(&base, platform_secret).await.status, 200);

    // Neither secrets nor hashes are logged.
    let logged = api.served.stderr();
    assert!(
        !logged.contains(&secret) && !logged.contains(&secret_hash),
        "{logged}"
    );
}

/// The revocation bound, on two instances at once: whatever one instance
/// (or the CLI) changes, both refuse on their very next request.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_refuse_on_the_very_next_request() {
    let (api, token, hash) = start("admin-two").await;
    let second = api.start_another(&[("STRATA_ADMIN__TOKEN_SHA256", &hash)]);
    let instances = [&api.served, &second];
    let admin_a = Admin::of(&api.served, &token);
    let admin_b = Admin::of(&second, &token);

    let tenant = admin_a.tenant("shared").await;
    let base = format!("/v1/tenants/{tenant}/activities");
    let (by_api, by_api_ref) = admin_b.token(json!({"tenant": tenant})).await;
    let cli_made = cli_json(
        &api,
        &[
            "token", "create", "--tenant", &tenant, "--name", "cli", "--json",
        ],
    );
    let by_cli = cli_made["token"].as_str().expect("secret").to_string();
    let by_cli_ref = cli_made["ref"].as_str().expect("ref").to_string();
    let (expiring, expiring_ref) = admin_a
        .token(json!({"tenant": tenant, "expiresInDays": 1}))
        .await;
    let (platform, _) = admin_a.token(json!({"allTenants": true})).await;
    for served in instances {
        for secret in [&by_api, &by_cli, &expiring, &platform] {
            assert_eq!(data_get(served, &base, secret).await.status, 200);
        }
    }

    // Revoked through instance A's admin API: both instances refuse it.
    let revoked = admin_a
        .post(&format!("/admin/tokens/{by_api_ref}/revoke"), json!({}))
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    for served in instances {
        assert_problem(&data_get(served, &base, &by_api).await, 401, "unauthorized");
        assert_eq!(data_get(served, &base, &by_cli).await.status, 200);
    }

    // Revoked with the CLI: the same.
    let (code, out, err) = cli(&api, &["token", "revoke", &by_cli_ref]);
    assert_eq!(code, Some(0), "{out}{err}");
    for served in instances {
        assert_problem(&data_get(served, &base, &by_cli).await, 401, "unauthorized");
    }

    // Expired (its expiry moved into the past, as the owner: the clock
    // cannot be moved from here): both refuse it.
    let mut tx = api.pg.begin_admin().await.expect("admin");
    api.pg
        .query(
            "UPDATE strata_service_tokens SET created_on = now() - interval '2 days', \
             expires_on = now() - interval '1 second' WHERE ref_id = $1",
        )
        .bind(&expiring_ref)
        .execute(&mut *tx)
        .await
        .expect("expire");
    tx.commit().await.expect("commit");
    for served in instances {
        assert_problem(
            &data_get(served, &base, &expiring).await,
            401,
            "unauthorized",
        );
    }

    // Suspended through A: 403 on both; resumed through B: 200 on both.
    let (own, _) = admin_b.token(json!({"tenant": tenant})).await;
    let suspended = admin_a
        .post(&format!("/admin/tenants/{tenant}/suspend"), json!({}))
        .await;
    assert_eq!(suspended.status, 200, "{suspended:?}");
    for served in instances {
        for secret in [&own, &platform] {
            assert_problem(
                &data_get(served, &base, secret).await,
                403,
                "tenant_suspended",
            );
        }
    }
    let resumed = admin_b
        .post(&format!("/admin/tenants/{tenant}/resume"), json!({}))
        .await;
    assert_eq!(resumed.status, 200, "{resumed:?}");
    for served in instances {
        for secret in [&own, &platform] {
            assert_eq!(data_get(served, &base, secret).await.status, 200);
        }
    }

    // The same with the CLI.
    let (code, out, err) = cli(&api, &["tenant", "suspend", &tenant]);
    assert_eq!(code, Some(0), "{out}{err}");
    for served in instances {
        assert_problem(
            &data_get(served, &base, &own).await,
            403,
            "tenant_suspended",
        );
    }
    let (code, out, err) = cli(&api, &["tenant", "resume", &tenant]);
    assert_eq!(code, Some(0), "{out}{err}");
    for served in instances {
        assert_eq!(data_get(served, &base, &own).await.status, 200);
    }

    // Deleted through B: 404 on both, like a tenant that never existed.
    let deleted = admin_b
        .call(Method::DELETE, &format!("/admin/tenants/{tenant}"), None)
        .await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let never = "/v1/tenants/01ARZ3NDEKTSV4RRFFQ69G5FAV/activities";
    for served in instances {
        for secret in [&own, &platform] {
            assert_problem(&data_get(served, &base, secret).await, 404, "not_found");
        }
        assert_problem(&data_get(served, never, &platform).await, 404, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_tenant_commands() {
    let (api, _, _) = start("admin-cli").await;
    let made = cli_json(
        &api,
        &[
            "tenant", "create", "--slug", "clico", "--name", "CLI Co", "--json",
        ],
    );
    let tenant = made["ref"].as_str().expect("ref").to_string();
    assert_eq!(made["status"], "active");
    let own = api.token(Some(&tenant)).await;
    let base = format!("/v1/tenants/{tenant}/activities");
    assert_eq!(
        api.post(&base, &own, json!({"kind": "x"})).await.status,
        201
    );

    let listed = cli_json(&api, &["tenant", "list", "--json"]);
    assert_eq!(listed[0]["ref"], tenant.as_str(), "{listed}");
    assert_eq!(listed[0]["counts"]["activities"], 1, "{listed}");
    let (code, text, _) = cli(&api, &["tenant", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains(&tenant) && text.contains("records=1"),
        "{text}"
    );
    let one = cli_json(&api, &["tenant", "get", &tenant, "--json"]);
    assert_eq!(one["slug"], "clico");
    let (code, text, _) = cli(&api, &["tenant", "get", &tenant]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("activities") && text.contains("CLI Co"),
        "{text}"
    );

    let suspended = cli_json(&api, &["tenant", "suspend", &tenant, "--json"]);
    assert_eq!(suspended["status"], "suspended");
    assert_problem(&api.get(&base, &own).await, 403, "tenant_suspended");
    let only = cli_json(&api, &["tenant", "list", "--status", "active", "--json"]);
    assert_eq!(only, json!([]));
    let resumed = cli_json(&api, &["tenant", "resume", &tenant, "--json"]);
    assert_eq!(resumed["status"], "active");
    assert_eq!(api.get(&base, &own).await.status, 200);
    let deleted = cli_json(&api, &["tenant", "delete", &tenant, "--json"]);
    assert_eq!(deleted["status"], "deleted");
    assert!(deleted["deletedAt"].is_string());
    assert_problem(&api.get(&base, &own).await, 404, "not_found");

    // Refusals: exit 1 with a message that says why.
    let (code, _, err) = cli(&api, &["tenant", "resume", &tenant]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("deleted") && err.contains("allowed: none"),
        "{err}"
    );
    let (code, _, err) = cli(&api, &["tenant", "get", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no such"), "{err}");
    let (code, _, err) = cli(&api, &["tenant", "suspend", "not-a-ref"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("REF") && err.contains("ULID"), "{err}");
    let (code, _, err) = cli(
        &api,
        &["tenant", "create", "--slug", "Bad Slug", "--name", "x"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--slug"), "{err}");
    let (code, _, err) = cli(&api, &["tenant", "list", "--status", "gone"]);
    assert_eq!(code, Some(2), "clap refuses an unknown status: {err}");
}

/// The README's admin walkthrough, run as printed (only the two base URLs
/// and the admin token come from the environment, as the block says).
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_admin_walkthrough_runs_as_printed() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let block = readme
        .split("<!-- admin-walkthrough -->\n```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the README has the admin walkthrough block");
    let (api, token, _) = start("admin-readme").await;
    let output = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .env("ADMIN", &api.served.admin)
        .env("API", &api.served.api)
        .env("ADMIN_TOKEN", &token)
        .output()
        .expect("run bash");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{out}\n{err}");
    for expected in [
        "\"tenant_suspended\"",
        " 403\n",
        "\"unauthorized\"",
        " 401\n",
        "\"illegal_transition\"",
        "\"allowedStates\":[]",
    ] {
        assert!(out.contains(expected), "{expected} in:\n{out}");
    }
    assert!(!out.contains(&token), "the admin token is never echoed");
}

/// The admin API's own OpenAPI document: every `/admin` route and method,
/// problem responses on each, and nothing of it in the data API's document.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_openapi_document_lists_every_route() {
    let (api, token, _) = start("admin-openapi").await;
    let admin = Admin::of(&api.served, &token);
    let served = admin.get("/admin/openapi.json").await;
    assert_eq!(served.status, 200, "{served:?}");
    let doc = &served.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{doc}"
    );
    let routes = [
        ("/admin/status", &["get"][..]),
        ("/admin/tenants", &["get", "post"]),
        ("/admin/tenants/{ref}", &["get", "delete"]),
        ("/admin/tenants/{ref}/suspend", &["post"]),
        ("/admin/tenants/{ref}/resume", &["post"]),
        ("/admin/tokens", &["get", "post"]),
        ("/admin/tokens/{ref}", &["get"]),
        ("/admin/tokens/{ref}/revoke", &["post"]),
        ("/admin/migrations", &["get"]),
        ("/admin/config", &["get"]),
        ("/admin/jobs", &["get"]),
        ("/admin/reconcile", &["get", "post"]),
        ("/admin/skills", &["get", "post"]),
        ("/admin/skills/{ref}", &["get", "patch", "delete"]),
        ("/admin/usage/summary", &["get"]),
    ];
    for (path, methods) in routes {
        for method in methods {
            let operation = &doc["paths"][path][method];
            assert!(operation.is_object(), "{method} {path}");
            assert!(operation["responses"]["4XX"].is_object(), "{method} {path}");
        }
    }
    assert_eq!(
        doc["paths"].as_object().map(|p| p.len()),
        Some(routes.len()),
        "no route outside the table above: {}",
        doc["paths"]
            .as_object()
            .map(|p| p.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
            .join(", ")
    );
    for schema in [
        "Tenant",
        "TokenInfo",
        "IssuedToken",
        "CreateToken",
        "Problem",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    // The document needs the admin token like every /admin route.
    let open = call_url(
        &reqwest::Client::new(),
        Method::GET,
        &format!("{}/admin/openapi.json", api.served.admin),
        None,
        None,
        &[],
    )
    .await;
    assert_problem(&open, 401, "unauthorized");
    // The data API's document stays the data API's.
    let data = api
        .call(Method::GET, "/v1/openapi.json", None, None, &[])
        .await;
    assert_eq!(data.status, 200);
    assert!(!data.text.contains("/admin/"), "admin routes leaked");
}
