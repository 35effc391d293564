//! A served strata with tenants and service tokens, and a small client for
//! its data API: what the `api_*` tests share.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use strata::records::admin::{self, NewTenant, TokenScope};
use strata::stores::postgres::Postgres;

use super::Fixture;
use super::serve::Served;

const BOOT: Duration = Duration::from_secs(120);

/// Field order matters: the server stops before its databases are dropped.
pub struct Api {
    pub served: Served,
    pub pg: Postgres,
    pub client: reqwest::Client,
    pub fixture: Fixture,
}

/// One answer: status, headers, body (JSON, or `Null`).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    /// `strata serve` on a fresh fixture, with extra `STRATA_*` settings;
    /// returns once it notified READY=1.
    pub async fn start(tag: &str, env: &[(&str, &str)]) -> Api {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Api::start_with(tag, |_| env).await
    }

    /// [`Api::start`] with settings that depend on the fixture (e.g. its
    /// database behind a relay).
    pub async fn start_with(tag: &str, env: impl FnOnce(&Fixture) -> Vec<(String, String)>) -> Api {
        let fixture = Fixture::new(tag).await;
        let mut command = fixture.strata(&["serve"]);
        command.envs(env(&fixture));
        let mut served = Served::start(command, fixture.admin_addr(), fixture.api_addr());
        assert!(
            served.wait_notification("READY=1", BOOT),
            "strata serve did not become ready:\n{}",
            served.stderr()
        );
        let pg = Postgres::new(&fixture.config().postgres).expect("postgres handle");
        Api {
            served,
            pg,
            client: reqwest::Client::new(),
            fixture,
        }
    }

    /// Another `strata serve` on the same stores (own ports, same settings
    /// plus `env`); returns once it notified READY=1. It stops when dropped.
    pub fn start_another(&self, env: &[(&str, &str)]) -> Served {
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], super::free_port()));
        let api = std::net::SocketAddr::from(([127, 0, 0, 1], super::free_port()));
        let mut command = self.fixture.strata(&["serve"]);
        command
            .envs(env.iter().copied())
            .env("STRATA_API__LISTEN", api.to_string())
            .env("STRATA_ADMIN__LISTEN", admin.to_string());
        let mut served = Served::start(command, admin, api);
        assert!(
            served.wait_notification("READY=1", BOOT),
            "the second strata serve did not become ready:\n{}",
            served.stderr()
        );
        served
    }

    /// A new active tenant (administrative path); its ref.
    pub async fn tenant(&self, slug: &str) -> String {
        admin::create_tenant(
            &self.pg,
            &NewTenant {
                slug: slug.to_string(),
                name: format!("Tenant {slug}"),
                plan: "basic".to_string(),
            },
        )
        .await
        .expect("create tenant")
        .tenant_ref
    }

    /// A service token for one tenant (or all, with `None`): its secret.
    pub async fn token(&self, tenant_ref: Option<&str>) -> String {
        self.token_with_ref(tenant_ref).await.0
    }

    /// [`Api::token`] and the token's ref.
    pub async fn token_with_ref(&self, tenant_ref: Option<&str>) -> (String, String) {
        let (secret, _) = strata::api::auth::new_token().expect("random token");
        let scope = match tenant_ref {
            Some(t) => TokenScope::Tenant(t.to_string()),
            None => TokenScope::AllTenants,
        };
        let info = admin::create_token(&self.pg, &secret, "test", &scope, None)
            .await
            .expect("create token");
        (secret, info.token_ref)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.api)
    }

    /// One request: `token` as bearer, `body` as JSON, extra headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        call_url(&self.client, method, &self.url(path), token, body, headers).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None, &[]).await
    }

    /// A call on the admin listener.
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{path}", self.served.admin);
        call_url(&self.client, method, &url, token, body, headers).await
    }

    /// A record's audit history, newest first: each change's action and
    /// its `{before, after}`. `item` is the record's path.
    pub async fn history(&self, item: &str, token: &str) -> Vec<(String, Value)> {
        let reply = self.get(&format!("{item}/history?limit=100"), token).await;
        assert_eq!(reply.status, 200, "history of {item}: {reply:?}");
        reply.body["items"]
            .as_array()
            .expect("history items")
            .iter()
            .map(|i| {
                let action = i["action"].as_str().expect("action").to_string();
                let diff = serde_json::json!({"before": i["before"], "after": i["after"]});
                (action, diff)
            })
            .collect()
    }

    /// The actions of [`Api::history`], newest first.
    pub async fn history_actions(&self, item: &str, token: &str) -> Vec<String> {
        self.history(item, token)
            .await
            .into_iter()
            .map(|(action, _)| action)
            .collect()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(&body), &[])
            .await
    }
}

/// One request to any URL (another instance, the admin listener).
pub async fn call_url(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("strata answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// Asserts that `reply` is a problem with `status` and `code`.
#[track_caller]
pub fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{reply:?}"
    );
    assert_eq!(reply.body["code"], code, "{reply:?}");
    assert_eq!(reply.body["status"], status, "{reply:?}");
    assert!(reply.body["type"].is_string() && reply.body["title"].is_string());
    assert_eq!(
        reply.body["requestId"].as_str(),
        reply.header("x-request-id"),
        "the problem carries the request id: {reply:?}"
    );
}
