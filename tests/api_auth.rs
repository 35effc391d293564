//! Service tokens end to end: made and revoked with the CLI, checked by
//! PostgreSQL on every request. A revoked or expired token is refused on
//! the very next request; a suspended tenant is 403 tenant_suspended.

mod common;

use common::api::{Api, assert_problem};
use common::run;
use reqwest::Method;
use serde_json::{Value, json};
use strata::records::admin::TenantStatus;

fn cli_json(api: &Api, args: &[&str]) -> Value {
    let (code, out, err) = run(api.fixture.strata(args));
    assert_eq!(code, Some(0), "strata {args:?}\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("JSON from {args:?}: {e}\n{out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_tokens_work_until_revoked() {
    let api = Api::start("api-auth", &[]).await;
    let tenant = cli_json(
        &api,
        &[
            "tenant", "create", "--slug", "cli-co", "--name", "CLI Co", "--json",
        ],
    );
    let tenant_ref = tenant["ref"].as_str().expect("tenant ref").to_string();
    let made = cli_json(
        &api,
        &[
            "token",
            "create",
            "--tenant",
            &tenant_ref,
            "--name",
            "publisher",
            "--expires",
            "30",
            "--json",
        ],
    );
    let secret = made["token"].as_str().expect("secret").to_string();
    let token_ref = made["ref"].as_str().expect("token ref").to_string();
    assert_eq!(made["tenantRef"], tenant_ref.as_str());
    assert!(made["expiresAt"].is_string());

    // The list shows the token, never its secret.
    let (code, listed, _) = run(api.fixture.strata(&["token", "list", "--json"]));
    assert_eq!(code, Some(0));
    assert!(
        listed.contains(&token_ref) && !listed.contains(&secret),
        "{listed}"
    );

    let base = format!("/v1/tenants/{tenant_ref}/activities");
    assert_eq!(api.get(&base, &secret).await.status, 200);

    // No token, a wrong one, a wrong scheme: 401 with WWW-Authenticate.
    for reply in [
        api.call(Method::GET, &base, None, None, &[]).await,
        api.get(&base, "strata_not-a-token").await,
        api.call(
            Method::GET,
            &base,
            None,
            None,
            &[("authorization", &format!("Basic {secret}"))],
        )
        .await,
    ] {
        assert_problem(&reply, 401, "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }

    // Revoked: refused on the next request (nothing is cached).
    let (code, out, err) = run(api.fixture.strata(&["token", "revoke", &token_ref]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert_problem(&api.get(&base, &secret).await, 401, "unauthorized");
    let created = api
        .post(&base, &secret, json!({"kind": "after-revoke"}))
        .await;
    assert_problem(&created, 401, "unauthorized");

    // Bad CLI input: a token for an unknown tenant, a revoke of nothing.
    let (code, _, err) = run(api.fixture.strata(&[
        "token",
        "create",
        "--tenant",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "--name",
        "x",
    ]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--tenant"), "{err}");
    let (code, _, err) =
        run(api
            .fixture
            .strata(&["token", "revoke", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]));
    assert_eq!(code, Some(1), "{err}");
    let (code, _, err) = run(api.fixture.strata(&["token", "create", "--name", "x"]));
    assert_eq!(
        code,
        Some(2),
        "one of --tenant / --all-tenants is required: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_refused() {
    let api = Api::start("api-expiry", &[]).await;
    let tenant = api.tenant("expiry").await;
    let token = api.token(Some(&tenant)).await;
    let base = format!("/v1/tenants/{tenant}/activities");
    assert_eq!(api.get(&base, &token).await.status, 200);
    // Expire it (time cannot be moved forward from here): as the owner.
    let mut tx = api.pg.begin_admin().await.expect("admin");
    api.pg
        .query("UPDATE strata_service_tokens SET created_on = now() - interval '2 days', expires_on = now() - interval '1 second'")
        .execute(&mut *tx)
        .await
        .expect("expire");
    tx.commit().await.expect("commit");
    assert_problem(&api.get(&base, &token).await, 401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_tenant_is_refused_until_reactivated() {
    let api = Api::start("api-suspend", &[]).await;
    let tenant = api.tenant("sleepy").await;
    let own = api.token(Some(&tenant)).await;
    let platform = api.token(None).await;
    let base = format!("/v1/tenants/{tenant}/activities");
    let created = api.post(&base, &own, json!({"kind": "before"})).await;
    assert_eq!(created.status, 201);
    let one = format!("{base}/{}", created.body["ref"].as_str().expect("ref"));

    strata::records::admin::set_tenant_status(&api.pg, &tenant, TenantStatus::Suspended)
        .await
        .expect("suspend");
    for token in [&own, &platform] {
        assert_problem(&api.get(&base, token).await, 403, "tenant_suspended");
        assert_problem(&api.get(&one, token).await, 403, "tenant_suspended");
        let write = api.post(&base, token, json!({"kind": "during"})).await;
        assert_problem(&write, 403, "tenant_suspended");
    }
    // An unknown token still learns nothing about the tenant.
    assert_problem(&api.get(&base, "strata_unknown").await, 401, "unauthorized");

    strata::records::admin::set_tenant_status(&api.pg, &tenant, TenantStatus::Active)
        .await
        .expect("reactivate");
    let listed = api.get(&base, &own).await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(1),
        "nothing written while suspended"
    );
}
